#!/bin/bash
# shellcheck disable=SC2317 # the part_* functions are called by name
# nftjail side by side with its peers, on the same inputs, in one run: fail2ban (Debian 1.0.2:
# fail2ban-regex, fail2ban-server), sshguard (Debian 2.4.2) and fail2ban-rs (crates.io). Prints
# one table:
#
#   filter      lines/s and failures found on the generated 200,000-line sshd log
#               (examples/gen-sshd-log.rs, seed 42), whole process, best of RUNS (fail2ban-regex:
#               one run, it takes seconds): `nftjail test-filter sshd`, `fail2ban-regex`,
#               sshguard's parser (`sshg-parser < LOG`), `fail2ban-rs dry-run`
#   rss         idle VmRSS with one sshd jail on an empty log, 5 s after it answers (sshguard:
#               the sum over its process group: the sh wrapper, tail, parser, blocker, backend)
#   latency     append of the 5th failure of an address -> its element in the kernel
#               (examples/nft-events.rs, as benches/daemon/latency.sh), LAT_ATTACKERS (200)
#               addresses one at a time, 10 ms apart: p50 and p99
#   bans        MANUAL_BANS (10,000) manual bans -> the last element in the kernel, each tool's
#               own command (nftjail `ban manual --from-file`, `fail2ban-client set sshd banip`,
#               fail2ban-rs `ban`); sshguard has no command for it
#
# Installs what is missing: Debian's fail2ban and sshguard (apt-get), fail2ban-rs with
# `cargo install --locked` into target/peers/ (its own CARGO_HOME: the host is not changed). A
# peer that cannot be installed or lacks a mode is shown as such in the table, never estimated.
# Each daemon runs in its own network namespace (lib.sh). Needs root, nft, ip, jq, bc.
#
#   sudo benches/peers.sh                      # PARTS="filter rss latency bans"
#   sudo PARTS="filter" RUNS=3 benches/peers.sh
set -eu
# shellcheck source-path=SCRIPTDIR source=daemon/lib.sh
. "$(dirname "$0")/daemon/lib.sh"

LINES=${LINES:-200000}
SEED=${SEED:-42}
RUNS=${RUNS:-5}
LAT_ATTACKERS=${LAT_ATTACKERS:-200}
MANUAL_BANS=${MANUAL_BANS:-10000}
PARTS=${PARTS:-filter rss latency bans}
PEERS="$ROOT/target/peers"
F2BRS="$PEERS/bin/fail2ban-rs"
SSHG=/usr/libexec/sshguard

install_peers() {
    local missing=""
    command -v fail2ban-regex >/dev/null || missing="$missing fail2ban"
    [ -x "$SSHG/sshg-parser" ] || missing="$missing sshguard"
    if [ -n "$missing" ]; then
        log "apt-get install$missing"
        # shellcheck disable=SC2086
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing >&2
        # Debian starts both services on install: the benchmark runs its own copies.
        systemctl disable --now fail2ban sshguard >/dev/null 2>&1 || true
    fi
    if [ ! -x "$F2BRS" ]; then
        log "cargo install fail2ban-rs --locked (into $PEERS)"
        mkdir -p "$PEERS"
        CARGO_HOME="$PEERS/cargo-home" CARGO_TARGET_DIR="$PEERS/build" \
            cargo install fail2ban-rs --locked --root "$PEERS" >"$PEERS/install.log" 2>&1 ||
            log "fail2ban-rs could not be built (see $PEERS/install.log)"
    fi
    [ "${NO_BUILD:-0}" = 1 ] || (cd "$ROOT" && cargo build --release --quiet --example gen-sshd-log)
}

# ROWS: one line per cell, "tool|column|value".
ROWS=""
cell() { ROWS="$ROWS$1|$2|$3"$'\n'; }

seconds_since() { printf "%.3f" "$(echo "($(now_ns) - $1) / 1000000000" | bc -l)"; }
rate() { echo "$LINES / $1" | bc -l | xargs printf '%.0f'; }

# best_of COMMAND...: the shortest wall time of RUNS runs, stdout to $TMP/out.
best_of() {
    local best="" t0 t
    for _ in $(seq "$RUNS"); do
        t0=$(now_ns)
        "$@" >"$TMP/out" 2>"$TMP/err"
        t=$(seconds_since "$t0")
        if [ -z "$best" ] || [ "$(echo "$t < $best" | bc -l)" = 1 ]; then best=$t; fi
    done
    echo "$best"
}

part_filter() {
    "$EXAMPLES/gen-sshd-log" "$LINES" "$SEED" >"$TMP/sshd.log"
    local t
    t=$(best_of "$BIN" test-filter sshd "$TMP/sshd.log" --now 2026-11-30T00:00:00Z)
    cell nftjail "filter lines/s" "$(rate "$t") ($t s)"
    cell nftjail "failures found" "$(wc -l <"$TMP/out")"
    t=$(best_of sh -c "$SSHG/sshg-parser < '$TMP/sshd.log'")
    cell sshguard "filter lines/s" "$(rate "$t") ($t s)"
    cell sshguard "failures found" "$(wc -l <"$TMP/out") attacks"
    if [ -x "$F2BRS" ]; then
        f2brs_config "$TMP/sshd.log" 5
        t=$(best_of "$F2BRS" -c "$TMP/f2brs/config.toml" dry-run "$TMP/sshd.log" -j sshd)
        cell fail2ban-rs "filter lines/s" "$(rate "$t") ($t s)"
        cell fail2ban-rs "failures found" "$(f2brs_failures)"
    else
        cell fail2ban-rs "filter lines/s" "not built"
    fi
    local t0
    t0=$(now_ns)
    # As benches/compare-fail2ban-regex.sh: Debian's sshd filter widened to the sshd-session tag.
    fail2ban-regex "$TMP/sshd.log" 'sshd[_daemon="sshd(?:-session)?"]' >"$TMP/f2b.out" 2>&1
    t=$(seconds_since "$t0")
    cell fail2ban "filter lines/s" "$(rate "$t") ($t s, fail2ban-regex)"
    cell fail2ban "failures found" "$(sed -n 's/^Lines: [0-9]* lines, [0-9]* ignored, \([0-9]*\) matched.*/\1/p' "$TMP/f2b.out") matched"
}

# f2brs_failures: the "Matches:" of dry-run's report ($TMP/out).
f2brs_failures() {
    local n
    n=$(sed -n 's/^ *Matches: *\([0-9]*\).*/\1/p' "$TMP/out" | head -1)
    echo "${n:-?} matches"
}

# ---- daemons --------------------------------------------------------------------------------

nftjail_start() { # nftjail_start MAXRETRY
    main_config
    : >"$TMP/auth.log"
    jail_config "[sshd]
enabled = true
filter = \"sshd\"
logpath = \"$TMP/auth.log\"
port = [\"ssh\"]
maxretry = $1
findtime = \"10m\"
bantime = \"1h\""
    cp "$ROOT/jails/manual.toml" "$TMP/jail.d/"
    start_nftjail
}

SG_PID=""
sshguard_start() {
    : >"$TMP/auth.log"
    # sshguard scores an sshd failure 10: a threshold of 50 is maxretry 5. setsid: its own
    # process group, stopped as a whole (sshguard's own EXIT trap does `kill 0`).
    ip netns exec "$NS" setsid "$(command -v sshguard)" -a 50 -p 3600 -s 600 -w 127.0.0.1 "$TMP/auth.log" \
        >>"$TMP/sshguard.out" 2>&1 &
    SG_PID=$!
    started "$SG_PID"
    wait_for "sshguard's table" 30 ip netns exec "$NS" nft list set ip sshguard attackers
}
sshguard_stop() {
    kill -TERM -- "-$SG_PID" 2>/dev/null || true
    wait "$SG_PID" 2>/dev/null || true
    SG_PID=""
}
# group_rss PGID: VmRSS of all processes of a process group, in kB.
group_rss() {
    local sum=0 pid r
    for pid in $(ps -o pid= -g "$1"); do
        r=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        sum=$((sum + ${r:-0}))
    done
    echo "$sum"
}

RS_PID=""
# f2brs_config LOG MAXRETRY: $TMP/f2brs/config.toml, its own sshd jail (`gen-config sshd`) on
# LOG, widened to the sshd-session tag as fail2ban's is (OpenSSH 9.8+; two thirds of the lines).
f2brs_config() {
    mkdir -p "$TMP/f2brs"
    {
        printf '[global]\nstate_file = "%s"\nsocket_path = "%s"\nlog_level = "info"\n\n' \
            "$TMP/f2brs/state.bin" "$TMP/f2brs/fail2ban-rs.sock"
        "$F2BRS" gen-config sshd | sed -e "s|^log_path = .*|log_path = \"$1\"|" \
            -e 's/sshd\\\[/sshd(?:-session)?\\[/'
        printf 'max_retry = %s\nfind_time = "10m"\nban_time = "1h"\n' "$2"
    } >"$TMP/f2brs/config.toml"
}
f2brs_start() { # f2brs_start MAXRETRY
    : >"$TMP/auth.log"
    rm -rf "$TMP/f2brs/state.bin" # a directory, despite its name
    f2brs_config "$TMP/auth.log" "$1"
    ip netns exec "$NS" "$F2BRS" -c "$TMP/f2brs/config.toml" run >>"$TMP/f2brs/out" 2>&1 &
    RS_PID=$!
    started "$RS_PID"
    wait_for "fail2ban-rs's socket" 30 test -S "$TMP/f2brs/fail2ban-rs.sock"
}
f2brs_stop() {
    kill -TERM "$RS_PID" 2>/dev/null || true
    wait "$RS_PID" 2>/dev/null || true
    RS_PID=""
}
f2brs() { "$F2BRS" -c "$TMP/f2brs/config.toml" "$@"; }

fresh() { ip netns del "$NS"; new_namespace peers; }

kb() { echo "$(kb_to_mb "$1") MiB"; }

part_rss() {
    local rss_kb
    nftjail_start 5
    sleep 5
    read -r rss_kb _ < <(rss "$DPID")
    cell nftjail "idle RSS, one sshd jail" "$(kb "$rss_kb")"
    stop_nftjail
    fresh
    : >"$TMP/auth.log"
    f2b_config "$(sshd_jail 5 10m 1h)"
    f2b_start
    wait_for "the sshd jail" 60 f2b_client status sshd
    sleep 5
    read -r rss_kb _ < <(rss "$FPID")
    cell fail2ban "idle RSS, one sshd jail" "$(kb "$rss_kb") (fail2ban-server)"
    f2b_stop
    fresh
    sshguard_start
    sleep 5
    cell sshguard "idle RSS, one sshd jail" "$(kb "$(group_rss "$SG_PID")") ($(ps -o pid= -g "$SG_PID" | wc -l) processes)"
    sshguard_stop
    fresh
    if [ -x "$F2BRS" ] && f2brs_start 5; then
        sleep 5
        read -r rss_kb _ < <(rss "$RS_PID")
        cell fail2ban-rs "idle RSS, one sshd jail" "$(kb "$rss_kb")"
        f2brs_stop
        fresh
    else
        cell fail2ban-rs "idle RSS, one sshd jail" "did not start (see $TMP/f2brs/out)"
    fi
}

# latency TOOL SETTLE_MS TIMEOUT_MS: runs nft-events in $NS against $TMP/auth.log.
latency() {
    ip netns exec "$NS" "$EXAMPLES/nft-events" latency "$TMP/auth.log" "$LAT_ATTACKERS" 5 10 "$2" "$3" \
        >"$TMP/latency-$1.txt" 2>>"$TMP/latency-$1.err" || true
    local summary
    summary=$(grep '^summary' "$TMP/latency-$1.txt" || true)
    if [ -z "$summary" ]; then
        cell "$1" "latency p50 / p99" "no summary (see $TMP/latency-$1.*)"
        return
    fi
    # summary n=… missed=… min_ms=… p50_ms=… p90_ms=… p99_ms=… max_ms=… mean_ms=…
    cell "$1" "latency p50 / p99" "$(sed -n 's/.*p50_ms=\([0-9.]*\).*p99_ms=\([0-9.]*\).*/\1 ms \/ \2 ms/p' <<<"$summary") ($(sed -n 's/.*\(n=[0-9]*\) \(missed=[0-9]*\).*/\1, \2/p' <<<"$summary"))"
    echo "$1: $summary" >>"$TMP/summaries.txt"
}

part_latency() {
    nftjail_start 5
    latency nftjail 3000 10000
    stop_nftjail
    fresh
    : >"$TMP/auth.log"
    f2b_config "$(sshd_jail 5 10m 1h)"
    f2b_start
    wait_for "the sshd jail" 60 f2b_client status sshd
    latency fail2ban 3000 30000
    f2b_stop
    fresh
    sshguard_start
    latency sshguard 3000 10000
    sshguard_stop
    fresh
    if [ -x "$F2BRS" ] && f2brs_start 5; then
        latency fail2ban-rs 3000 10000
        f2brs_stop
        fresh
    else
        cell fail2ban-rs "latency p50 / p99" "did not start"
    fi
}

# watch_count N: nft-events counting N added elements in $NS, in the background.
watch_count() {
    ip netns exec "$NS" "$EXAMPLES/nft-events" count "$1" 3600 >"$TMP/watch.txt" &
    started $!
    wait_for "the listener" 10 grep -q subscribed "$TMP/watch.txt"
}
last_ms_since() { # last_ms_since T0_NS
    echo $(( ($(sed -n 's/.*last_unix_ns=\([0-9]*\).*/\1/p' "$TMP/watch.txt") - $1) / 1000000 ))
}

part_bans() {
    local n=$MANUAL_BANS t0
    awk -v n="$n" 'BEGIN {for (i = 0; i < n; i++) printf "172.%d.%d.%d\n", 16 + int(i / 65536) % 16, int(i / 256) % 256, i % 256}' >"$TMP/bans.txt"
    nftjail_start 5
    watch_count "$n"
    t0=$(now_ns)
    nftjail ban manual --from-file "$TMP/bans.txt" >/dev/null
    POLL=0.1 wait_for "the bans in the kernel" 600 grep -q '^count=' "$TMP/watch.txt"
    cell nftjail "$n manual bans -> kernel" "$(last_ms_since "$t0") ms"
    stop_nftjail
    fresh
    : >"$TMP/auth.log"
    f2b_config "$(sshd_jail 5 10m 1d)"
    f2b_start
    wait_for "the sshd jail" 60 f2b_client status sshd
    watch_count "$n"
    t0=$(now_ns)
    # shellcheck disable=SC2046
    f2b_client set sshd banip $(cat "$TMP/bans.txt") >/dev/null
    POLL=0.5 wait_for "fail2ban's bans in the kernel" 3600 grep -q '^count=' "$TMP/watch.txt"
    cell fail2ban "$n manual bans -> kernel" "$(last_ms_since "$t0") ms (set sshd banip)"
    f2b_stop
    fresh
    cell sshguard "$n manual bans -> kernel" "no command (blocks only what it detects)"
    if [ -x "$F2BRS" ] && f2brs_start 5; then
        watch_count "$n"
        t0=$(now_ns)
        local ip
        while read -r ip; do f2brs ban "$ip" -j sshd >/dev/null 2>&1 || break; done <"$TMP/bans.txt"
        if POLL=0.1 wait_for "fail2ban-rs's bans in the kernel" 600 grep -q '^count=' "$TMP/watch.txt"; then
            cell fail2ban-rs "$n manual bans -> kernel" "$(last_ms_since "$t0") ms (one ban command each)"
        fi
        f2brs_stop
        fresh
    else
        cell fail2ban-rs "$n manual bans -> kernel" "did not start"
    fi
}

print_table() {
    local columns tools tool column value
    columns=$(cut -d'|' -f2 <<<"$ROWS" | awk 'NF && !seen[$0]++')
    tools="nftjail fail2ban-rs sshguard fail2ban"
    printf '| tool |'
    while read -r column; do printf ' %s |' "$column"; done <<<"$columns"
    printf '\n|---|'
    while read -r column; do printf -- '---|'; done <<<"$columns"
    printf '\n'
    for tool in $tools; do
        printf '| %s |' "$tool"
        while read -r column; do
            value=$(awk -F'|' -v t="$tool" -v c="$column" '$1 == t && $2 == c {print $3}' <<<"$ROWS")
            printf ' %s |' "${value:--}"
        done <<<"$columns"
        printf '\n'
    done
}

install_peers
build
setup peers
# shellcheck source-path=SCRIPTDIR source=daemon/f2b-lib.sh
. "$(dirname "$0")/daemon/f2b-lib.sh"
machine
echo "peers: $(fail2ban-server --version 2>&1 | head -1), sshguard $(sshguard -v 2>&1 | awk '{print $2}'), $("$F2BRS" --version 2>/dev/null || echo 'fail2ban-rs not built')"
for part in $PARTS; do
    log "part $part"
    "part_$part"
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
print_table
[ -f "$TMP/summaries.txt" ] && cat "$TMP/summaries.txt"
exit 0
