#!/bin/bash
# Memory of the daemon (VmRSS and VmHWM from /proc/PID/status), in three steps on one daemon
# running the shipped config (dist/nftjail.toml + jails/*.toml, all six log jails enabled and
# pointed at temp files, plus recidive and manual):
#   1. idle, 5 s after start                                  (target: VmRSS <= 15 MB)
#   2. after `nftjail ban manual --from-file` of BANS addresses (default 100,000)
#   3. after a distributed attack: DISTINCT failures (default 1,000,000), each from another
#      address, appended to sshd's log; memory must stay bounded by maxtracked (100,000/jail)
# Then step 3 again on fresh daemons (no bans) for each sshd maxretry in FRESH_MAXRETRY (default
# "5 100"): the window's cost per tracked address alone, and how it depends on maxretry.
#
# IDLE_ONLY=1 stops after step 1 and its breakdown (anonymous and file pages, threads, mappings).
#
#   sudo benches/daemon/rss.sh
#   sudo IDLE_ONLY=1 NO_BUILD=1 benches/daemon/rss.sh
set -eu
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

BANS=${BANS:-100000}
DISTINCT=${DISTINCT:-1000000}
FRESH_MAXRETRY=${FRESH_MAXRETRY:-5 100}

build
setup rss
machine

report() { # report WHAT
    local rss_kb hwm_kb
    read -r rss_kb hwm_kb < <(rss "$DPID")
    echo "$1: VmRSS=$(kb_to_mb "$rss_kb") MB VmHWM=$(kb_to_mb "$hwm_kb") MB"
}

# breakdown: what the idle VmRSS is made of (/proc/PID/status and smaps): anonymous memory
# (heap, thread stacks, the allocator's per-thread arenas) against file pages (the executable and
# libraries mapped in: clean, shared with the page cache, dropped by the kernel under pressure),
# the threads by name, and the largest mappings.
breakdown() {
    echo "  $(grep -E '^(RssAnon|RssFile):' "/proc/$DPID/status" | tr -s ' \t' ' ' | paste -sd' ')"
    echo "  threads: $(cat /proc/"$DPID"/task/*/comm | sed 's/-.*//' | sort | uniq -c | awk '{printf "%s %s, ", $1, $2}')"
    echo "  largest mappings (Rss kB, Size kB, what):"
    awk '/^[0-9a-f]+-/ {name=$6} /^Size:/ {size=$2} /^Rss:/ {print $2, size, (name == "" ? "[anon]" : name)}' \
        "/proc/$DPID/smaps" | sort -rn | head -8 | sed 's/^/    /'
    local found
    found=$(startup_order_found)
    echo "  src/startup.order: $found listed functions defined in this executable"
    # "N of N": the list is current. Any code change renames some functions (ThinLTO's
    # `.llvm.<hash>` suffixes of the modules it touched), and each one missing from the layout
    # costs up to a 64 kB block of code: 12% of the names missing cost 2.6 MB on 2026-12-02.
    if [ "${found% of *}" != "${found#* of }" ]; then
        echo "  WARNING: src/startup.order is stale for this executable: its idle RSS is higher than a" \
            "current list gives (benches/daemon/startup-order.sh writes it again)"
    fi
    echo "  anonymous mappings of 132 kB (allocator arenas) and 2 MB (thread stacks):" \
        "$(awk '/^[0-9a-f]+-/ {name=$6} /^Size:/ {size=$2} /^Rss:/ {if (name == "" && (size == 132 || size == 2048)) {n++; r += $2}} END {printf "%d, %d kB resident", n, r}' "/proc/$DPID/smaps")"
}

# startup_order_found: how many of the names in src/startup.order this executable defines
# (fewer after any change of the code, the dependencies or the toolchain, and in a build whose
# features differ (built together with an example or a test): benches/daemon/startup-order.sh
# writes the list again).
startup_order_found() {
    awk 'NR == FNR {listed[$0] = 1; next} ($NF in listed) {found[$NF] = 1}
        END {printf "%d of %d", length(found), length(listed)}' \
        "$ROOT/src/startup.order" <(nm --defined-only "$BIN")
}

distributed_attack() {
    "$EXAMPLES/gen-attack-log" distinct "$DISTINCT" >"$TMP/distinct.log"
    local before t0 drain_ms
    before=$(status_field sshd '.jail.lines_read')
    t0=$(now_ns)
    dd if="$TMP/distinct.log" of="$TMP/logs/auth.log" bs=4M oflag=append conv=notrunc status=none
    POLL=0.1 wait_for "the attack to be read" 600 at_least $((before + DISTINCT)) status_field sshd .jail.lines_read
    drain_ms=$(ms_since "$t0")
    sleep 1
    echo "  sshd after $DISTINCT distinct failures (read in ${drain_ms} ms):" \
        "$(nftjail status sshd --json | jq -c '.jail | {currently_failed, total_failed, evicted, currently_banned}')"
}

shipped_config
start_nftjail
echo "jails: $(nftjail status --json | jq -r '[.jails[].name] | join(" ")')"
sleep 5
report "idle (8 jails)"
breakdown
[ "${IDLE_ONLY:-0}" = 1 ] && exit 0

awk -v n="$BANS" 'BEGIN {for (i = 0; i < n; i++) printf "172.%d.%d.%d\n", 16 + int(i / 65536) % 16, int(i / 256) % 256, i % 256}' >"$TMP/blocklist.txt"
t0=$(now_ns)
nftjail ban manual --from-file "$TMP/blocklist.txt" >/dev/null
ban_ms=$(ms_since "$t0")
echo "  ban manual --from-file: $BANS addresses in ${ban_ms} ms; in the kernel: $(set_count manual_v4)"
sleep 2
report "with $BANS active bans"

distributed_attack
report "after the distributed attack (sshd maxretry 5, maxtracked 100000)"
stop_nftjail

for maxretry in $FRESH_MAXRETRY; do
    ip netns del "$NS"
    new_namespace rss
    rm -rf "$TMP/state" "$TMP/daemon.log"
    shipped_config "maxretry = $maxretry"
    start_nftjail
    sleep 2
    report "fresh daemon, sshd maxretry $maxretry, idle"
    distributed_attack
    report "after the distributed attack (fresh daemon, sshd maxretry $maxretry, maxtracked 100000)"
    stop_nftjail
done
