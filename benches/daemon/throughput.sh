#!/bin/bash
# Sustained throughput through the whole daemon (inotify tail → sshd filter → tracker → banner):
# a pre-generated sshd syslog log of LINES lines (~90 % failures from ATTACKERS addresses, the
# rest noise; examples/gen-attack-log.rs) is appended with `dd bs=4M` to the watched file of a
# running daemon; lines/s from the daemon's own counter (`status sshd --json` → lines_read),
# sampled every 0.25 s. Target: >= 500,000 lines/s. Variants (a fresh daemon, namespace and state
# for each):
#   ignored  the attackers are in ignoreip: filter and ignore check only, no tracker window
#   counted  maxretry 1000 (above any attacker's count): every failure goes through the window
#   bans     maxretry 5: every attacker is banned (ATTACKERS elements), the rest is AlreadyBanned
#
#   sudo benches/daemon/throughput.sh         # LINES=5000000 ATTACKERS=10000 VARIANTS="ignored counted bans"
set -eu
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

LINES=${LINES:-5000000}
ATTACKERS=${ATTACKERS:-10000}
VARIANTS=${VARIANTS:-ignored counted bans}

build
setup throughput
machine
log "generating $LINES lines from $ATTACKERS attackers"
"$EXAMPLES/gen-attack-log" attack "$LINES" "$ATTACKERS" >"$TMP/attack.log"
failures=$(grep -c 'Failed password' "$TMP/attack.log")
# The addresses that fail: with maxretry 5 the bans variant must ban exactly these (every
# attacker fails hundreds of times), no more; a ban of anyone else is a bug to chase.
attackers_seen=$(awk '/Failed password/ {for (i = NF; i > 0; i--) if ($i == "from") {a[$(i + 1)] = 1; break}}
    END {print length(a)}' "$TMP/attack.log")
log "$(du -h "$TMP/attack.log" | cut -f1) bytes, $failures failure lines from $attackers_seen addresses"

# cpu_ticks PID: utime + stime of all threads, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run_variant() {
    local variant=$1 jail_extra
    case $variant in
        ignored) jail_extra='maxretry = 5
ignoreip = ["127.0.0.0/8", "::1", "10.0.0.0/8"]' ;;
        counted) jail_extra='maxretry = 1000' ;;
        bans) jail_extra='maxretry = 5' ;;
        *) echo "unknown variant $variant" >&2; exit 2 ;;
    esac
    rm -rf "$TMP/state" "$TMP/daemon.log" "$TMP/samples.txt"
    : >"$TMP/auth.log"
    main_config
    jail_config "[sshd]
enabled = true
filter = \"sshd\"
logpath = \"$TMP/auth.log\"
port = [\"ssh\"]
findtime = \"1d\"
bantime = \"1d\"
$jail_extra"
    start_nftjail
    if [ "$variant" = bans ]; then
        # The ATTACKERS-th added element marks all bans in the kernel.
        ip netns exec "$NS" "$EXAMPLES/nft-events" count "$ATTACKERS" 600 >"$TMP/watch.txt" &
        started $!
        wait_for "the listener" 10 grep -q subscribed "$TMP/watch.txt"
    fi
    local ticks0 t0 t_dd now lines=0 last=-1 stalled=0
    # Dirty pages (the generated log, the last variant's copy) written back first: otherwise the
    # kernel throttles dd's writes, and the run measures the disk, not the daemon.
    sync
    ticks0=$(cpu_ticks "$DPID")
    t0=$(now_ns)
    dd if="$TMP/attack.log" of="$TMP/auth.log" bs=4M oflag=append conv=notrunc status=none
    t_dd=$(ms_since "$t0")
    while [ "$lines" -lt "$LINES" ]; do
        sleep 0.25
        lines=$(status_field sshd '.jail.lines_read')
        now=$(now_ns)
        echo "$(( (now - t0) / 1000000 )) $lines" >>"$TMP/samples.txt"
        if [ "$lines" = "$last" ]; then stalled=$((stalled + 1)); else stalled=0; fi
        last=$lines
        if [ "$stalled" -ge 40 ]; then echo "$variant: stalled at $lines lines" >&2; break; fi
    done
    local drain_ms ticks cpu_s
    drain_ms=$(tail -1 "$TMP/samples.txt" | cut -d' ' -f1)
    ticks=$(( $(cpu_ticks "$DPID") - ticks0 ))
    cpu_s=$(awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", t/hz}')
    # Steady rate: least-squares slope of the samples between 10 % and 90 % of the lines.
    local steady
    steady=$(awk -v n="$LINES" '$2 >= 0.1*n && $2 <= 0.9*n {c++; sx+=$1; sy+=$2; sxx+=$1*$1; sxy+=$1*$2}
        END {if (c < 2) {print "n/a"} else {printf "%.0f", 1000*(c*sxy - sx*sy)/(c*sxx - sx*sx)}}' "$TMP/samples.txt")
    # Bans: wait until the kernel has what the tracker decided.
    local banned matched in_kernel=0 bans_ms=0
    banned=$(status_field sshd '.jail.currently_banned')
    matched=$(status_field sshd '.jail.lines_matched')
    if [ "$variant" = bans ]; then
        POLL=0.1 wait_for "the bans in the kernel" 600 grep -q '^count=' "$TMP/watch.txt"
        bans_ms=$(( ($(sed -n 's/.*last_unix_ns=\([0-9]*\).*/\1/p' "$TMP/watch.txt") - t0) / 1000000 ))
    fi
    in_kernel=$(set_count sshd_v4)
    if [ "$variant" = bans ] && [ "$banned" != "$attackers_seen" ]; then
        echo "$variant: banned $banned addresses, but $attackers_seen addresses fail in the log" >&2
    fi
    read -r rss_kb hwm_kb < <(rss "$DPID")
    echo "variant=$variant lines=$lines failures_matched=$matched drain_ms=$drain_ms" \
        "lines_per_s=$(( lines * 1000 / (drain_ms > 0 ? drain_ms : 1) ))" \
        "steady_lines_per_s=$steady dd_ms=$t_dd daemon_cpu_s=$cpu_s" \
        "banned=$banned expected_bans=$([ "$variant" = bans ] && echo "$attackers_seen" || echo 0)" \
        "in_kernel=$in_kernel all_bans_in_kernel_ms=$bans_ms" \
        "rss_MB=$(kb_to_mb "$rss_kb") hwm_MB=$(kb_to_mb "$hwm_kb")"
    stop_nftjail
    ip netns del "$NS"
    new_namespace throughput
}

echo "nftjail throughput, $LINES lines ($failures failures) from $ATTACKERS attackers:"
for v in $VARIANTS; do run_variant "$v"; done
