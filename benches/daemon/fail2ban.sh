#!/bin/bash
# The same measurements for fail2ban-server (Debian's 1.0.2) with its nftables actions, for the
# side-by-side table in benches/README.md. fail2ban runs in the foreground (`-x -f`) in a private
# namespace, from a copy of /etc/fail2ban in a temp dir (own socket, pidfile, sqlite db and log;
# Debian's jail.d removed), `banaction = nftables-multiport`, `backend = pyinotify`, default
# loglevel (INFO). Parts (default: all):
#   latency     append of the maxretry-th line → element in the kernel (examples/nft-events.rs),
#               ATTACKERS (default 1000) addresses SPACING_MS (10) apart, as latency.sh
#   throughput  the attack log of throughput.sh, F2B_LINES lines (default 500,000: fail2ban is
#               ~40x slower, so fewer lines; lines/s is what compares) from ATTACKERS_T (10,000):
#               `counted` (maxretry 1000000) and `bans` (maxretry 5). Drain time = time stamp of
#               fail2ban's last "Found" log line − start of the append. Also `fail2ban-regex`.
#   rss         idle with the equivalent jails: sshd, postfix, postfix-sasl, dovecot, proftpd,
#               webmin-auth (stands in for "panel"), recidive (reads fail2ban's own log)
#   distributed DISTINCT (default 1,000,000) failures, each from another address, appended to the
#               sshd jail's log (maxretry 5, findtime 10m): RSS before and after (fail2ban has no
#               cap on tracked addresses; compare rss.sh's maxtracked)
#   restart     N bans (RESTART_BANS, default "1000 10000") with `set sshd banip …`, then stop,
#               delete the namespace ("reboot"), start again with the same db: time to `ping`
#               and until the N-th element is back in the kernel (nft-events count)
#
#   sudo benches/daemon/fail2ban.sh [latency|throughput|rss|distributed|restart]...
set -eu
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

ATTACKERS=${ATTACKERS:-1000}
SPACING_MS=${SPACING_MS:-10}
F2B_LINES=${F2B_LINES:-500000}
ATTACKERS_T=${ATTACKERS_T:-10000}
RESTART_BANS=${RESTART_BANS:-1000 10000}
DISTINCT=${DISTINCT:-1000000}
PARTS=${*:-latency throughput rss distributed restart}

build
setup fail2ban
machine
echo "fail2ban: $(fail2ban-server --version 2>&1 | head -1), $(/usr/bin/python3 --version)"
# shellcheck source-path=SCRIPTDIR source=f2b-lib.sh
. "$(dirname "$0")/f2b-lib.sh"

fresh_namespace() {
    ip netns del "$NS"
    new_namespace fail2ban
}

part_latency() {
    : >"$TMP/auth.log"
    f2b_config "$(sshd_jail 5 10m 1h)"
    f2b_start
    wait_for "the sshd jail" 60 f2b_client status sshd
    log "fail2ban answering after ${F_PING_MS} ms; $ATTACKERS attackers, maxretry 5, ${SPACING_MS} ms apart"
    ip netns exec "$NS" "$EXAMPLES/nft-events" latency "$TMP/auth.log" "$ATTACKERS" 5 "$SPACING_MS" 3000 30000 \
        >"$TMP/f2b-latency.txt"
    echo "fail2ban latency (append of the 5th failure -> element in the kernel set):"
    grep '^summary' "$TMP/f2b-latency.txt"
    echo "currently_banned=$(f2b_field sshd 'Currently banned') in_kernel=$(set_count addr-set-sshd f2b-table)"
    f2b_stop
    fresh_namespace
}

part_throughput() {
    "$EXAMPLES/gen-attack-log" attack "$F2B_LINES" "$ATTACKERS_T" >"$TMP/attack.log"
    local failures
    failures=$(grep -c 'Failed password' "$TMP/attack.log")
    echo "fail2ban throughput, $F2B_LINES lines ($failures failures) from $ATTACKERS_T attackers:"
    local t0 regex
    t0=$(now_ns)
    regex=$(fail2ban-regex "$TMP/attack.log" /etc/fail2ban/filter.d/sshd.conf 2>&1 | grep -E '^Lines:' || true)
    echo "  fail2ban-regex (filter only): ${regex} wall_ms=$(ms_since "$t0")" \
        "lines_per_s=$(( F2B_LINES * 1000 / $(ms_since "$t0") ))"
    local variant maxretry
    for variant in counted bans; do
        case $variant in counted) maxretry=1000000 ;; bans) maxretry=5 ;; esac
        : >"$TMP/auth.log"
        f2b_config "$(sshd_jail "$maxretry" 1d 1d)"
        f2b_start
        wait_for "the sshd jail" 60 f2b_client status sshd
        if [ "$variant" = bans ]; then
            ip netns exec "$NS" "$EXAMPLES/nft-events" count "$ATTACKERS_T" 3600 >"$TMP/watch.txt" &
            started $!
            wait_for "the listener" 10 grep -q subscribed "$TMP/watch.txt"
        fi
        sleep 1
        t0=$(now_ns)
        dd if="$TMP/attack.log" of="$TMP/auth.log" bs=4M oflag=append conv=notrunc status=none
        local total=0 last=-1 stalled=0
        while [ "$total" -lt "$failures" ]; do
            sleep 5
            total=$(f2b_field sshd 'Total failed')
            if [ "$total" = "$last" ]; then stalled=$((stalled + 1)); else stalled=0; fi
            last=$total
            if [ "$stalled" -ge 6 ]; then echo "  $variant: stalled at $total failures" >&2; break; fi
        done
        local found_last drain_ms banned in_kernel bans_ms=0
        found_last=$(grep ' Found ' "$F2B/fail2ban.log" | tail -1)
        drain_ms=$(( $(log_ms "$found_last") - t0 / 1000000 ))
        if [ "$variant" = bans ]; then
            POLL=0.5 wait_for "fail2ban's bans in the kernel" 3600 grep -q '^count=' "$TMP/watch.txt"
            bans_ms=$(( ($(sed -n 's/.*last_unix_ns=\([0-9]*\).*/\1/p' "$TMP/watch.txt") - t0) / 1000000 ))
        fi
        banned=$(f2b_field sshd 'Currently banned')
        in_kernel=$(set_count addr-set-sshd f2b-table)
        read -r rss_kb hwm_kb < <(rss "$FPID")
        echo "  variant=$variant total_failed=$total drain_ms=$drain_ms" \
            "lines_per_s=$(( F2B_LINES * 1000 / drain_ms ))" \
            "banned=$banned in_kernel=$in_kernel all_bans_in_kernel_ms=$bans_ms" \
            "rss_MB=$(kb_to_mb "$rss_kb") hwm_MB=$(kb_to_mb "$hwm_kb")"
        f2b_stop
        fresh_namespace
    done
}

part_rss() {
    mkdir -p "$TMP/logs"
    for f in auth mail proftpd panel; do : >"$TMP/logs/$f.log"; done
    f2b_config "[sshd]
enabled = true
logpath = $TMP/logs/auth.log
[postfix]
enabled = true
logpath = $TMP/logs/mail.log
[postfix-sasl]
enabled = true
logpath = $TMP/logs/mail.log
[dovecot]
enabled = true
logpath = $TMP/logs/mail.log
[proftpd]
enabled = true
logpath = $TMP/logs/proftpd.log
[webmin-auth]
enabled = true
logpath = $TMP/logs/panel.log
[recidive]
enabled = true
logpath = $F2B/fail2ban.log"
    f2b_start
    wait_for "the jails" 60 f2b_client status recidive
    sleep 5
    read -r rss_kb hwm_kb < <(rss "$FPID")
    echo "fail2ban idle ($(f2b_client status | sed -n 's/.*Jail list:[[:space:]]*//p')):" \
        "VmRSS=$(kb_to_mb "$rss_kb") MB VmHWM=$(kb_to_mb "$hwm_kb") MB"
    f2b_stop
    fresh_namespace
}

part_distributed() {
    "$EXAMPLES/gen-attack-log" distinct "$DISTINCT" >"$TMP/distinct.log"
    : >"$TMP/auth.log"
    f2b_config "$(sshd_jail 5 10m 1h)"
    f2b_start
    wait_for "the sshd jail" 60 f2b_client status sshd
    sleep 2
    read -r rss_kb hwm_kb < <(rss "$FPID")
    echo "fail2ban, sshd jail idle: VmRSS=$(kb_to_mb "$rss_kb") MB VmHWM=$(kb_to_mb "$hwm_kb") MB"
    local t0 total=0 last=-1 stalled=0
    t0=$(now_ns)
    dd if="$TMP/distinct.log" of="$TMP/auth.log" bs=4M oflag=append conv=notrunc status=none
    while [ "$total" -lt "$DISTINCT" ]; do
        sleep 5
        total=$(f2b_field sshd 'Total failed')
        if [ "$total" = "$last" ]; then stalled=$((stalled + 1)); else stalled=0; fi
        last=$total
        if [ "$stalled" -ge 6 ]; then echo "  stalled at $total failures" >&2; break; fi
    done
    sleep 2
    read -r rss_kb hwm_kb < <(rss "$FPID")
    echo "  after $DISTINCT distinct failures (read in $(ms_since "$t0") ms; Total failed $total," \
        "Currently failed $(f2b_field sshd 'Currently failed')): VmRSS=$(kb_to_mb "$rss_kb") MB VmHWM=$(kb_to_mb "$hwm_kb") MB"
    f2b_stop
    fresh_namespace
}

part_restart() {
    local n
    for n in $RESTART_BANS; do
        : >"$TMP/auth.log"
        f2b_config "$(sshd_jail 5 10m 1d)"
        f2b_start
        wait_for "the sshd jail" 60 f2b_client status sshd
        local ips t0 watch="$TMP/watch.txt"
        ips=$(awk -v n="$n" 'BEGIN {for (i = 0; i < n; i++) printf "172.%d.%d.%d ", 16 + int(i / 65536) % 16, int(i / 256) % 256, i % 256}')
        ip netns exec "$NS" "$EXAMPLES/nft-events" count "$n" 3600 >"$watch" &
        started $!
        wait_for "the listener" 10 grep -q subscribed "$watch"
        t0=$(now_ns)
        # shellcheck disable=SC2086
        f2b_client set sshd banip $ips >/dev/null
        POLL=0.5 wait_for "the $n bans in the kernel" 3600 grep -q '^count=' "$watch"
        echo "fail2ban, $n bans with 'set sshd banip': the last in the kernel after" \
            "$(( ($(sed -n 's/.*last_unix_ns=\([0-9]*\).*/\1/p' "$watch") - t0) / 1000000 )) ms ($(grep '^count=' "$watch" | cut -d' ' -f1))"
        f2b_stop
        fresh_namespace
        ip netns exec "$NS" "$EXAMPLES/nft-events" count "$n" 3600 >"$watch" &
        started $!
        wait_for "the listener" 10 grep -q subscribed "$watch"
        f2b_start
        wait_for "the listener's count" 3600 grep -q '^count=' "$watch"
        local last
        last=$(sed -n 's/.*last_unix_ns=\([0-9]*\).*/\1/p' "$watch")
        read -r rss_kb hwm_kb < <(rss "$FPID")
        echo "  restart after reboot with $n bans in the db: ping_answering_ms=$F_PING_MS" \
            "last_element_after_ms=$(( (last - F_START_NS) / 1000000 )) ($(grep '^count=' "$watch" | cut -d' ' -f1))" \
            "in_kernel=$(set_count addr-set-sshd f2b-table) VmRSS=$(kb_to_mb "$rss_kb") MB"
        f2b_stop
        fresh_namespace
    done
}

for part in $PARTS; do "part_$part"; done
