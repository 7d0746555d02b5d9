#!/bin/bash
# Restore of BANS bans (default 100,000; `nftjail ban manual --from-file`) after a "reboot":
# the daemon is stopped (SIGTERM), its network namespace deleted (the kernel table is gone), a
# new one created, and the daemon started again with the same state dir. Measured: the daemon's
# own `kernel reconciled … elapsed_ms=` (the bulk add), the wall clock from exec to the control
# socket answering (reconcile runs before the socket is bound), and the elements counted in the
# kernel right after. Target: < 2 s. Then, WATCH_RUNS times (default 3), the same with
# examples/nft-events.rs listening in the new namespace: what a user waits for, from the exec of
# `nftjail run` to the notification of the last element (`last_element_after_ms`; the listener
# makes the kernel build one notification per element, as `nft monitor` does), with the daemon
# log's phases (state replayed, kernel reconciled) as times after the exec. Target: <= 0.5 s. Last, a restart with the table still
# in the kernel: it must add and refresh nothing (`added=0 refreshed=0`).
#
#   sudo benches/daemon/restore.sh            # BANS=100000
set -eu
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

BANS=${BANS:-100000}

build
setup restore
machine
main_config
cp "$ROOT/jails/manual.toml" "$TMP/jail.d/"
: >"$TMP/auth.log"
jail_config "[sshd]
enabled = true
filter = \"sshd\"
logpath = \"$TMP/auth.log\"
port = [\"ssh\"]"
start_nftjail
awk -v n="$BANS" 'BEGIN {for (i = 0; i < n; i++) printf "172.%d.%d.%d\n", 16 + int(i / 65536) % 16, int(i / 256) % 256, i % 256}' >"$TMP/blocklist.txt"
t0=$(now_ns)
nftjail ban manual --from-file "$TMP/blocklist.txt" >/dev/null
echo "setup: $BANS bans with ban manual --from-file in $(ms_since "$t0") ms; in the kernel: $(set_count manual_v4)"

reconciled() { grep 'kernel reconciled' "$TMP/daemon.log" | tail -1 | sed -e 's/\x1b\[[0-9;]*m//g' -e 's/.*kernel reconciled *//'; }

# after_reconcile_ms: from the last `kernel reconciled` to the `nftjail running` after it (the
# tracker restore and the start-up compaction of the state log), by the log's time stamps.
after_reconcile_ms() {
    local a b
    a=$(grep 'kernel reconciled' "$TMP/daemon.log" | tail -1 | cut -d' ' -f1)
    b=$(grep 'nftjail running' "$TMP/daemon.log" | tail -1 | cut -d' ' -f1)
    echo $(( ($(date -d "$b" +%s%N) - $(date -d "$a" +%s%N)) / 1000000 ))
}

# at_ms PATTERN: when the last daemon log line matching PATTERN was written, in ms after
# START_NS (the exec of `nftjail run`).
at_ms() {
    local stamp
    stamp=$(grep "$1" "$TMP/daemon.log" | tail -1 | cut -d' ' -f1)
    if [ -z "$stamp" ]; then echo "?"; return; fi # a build without that line
    echo $(( ($(date -d "$stamp" +%s%N) - START_NS) / 1000000 ))
}

reboot_and_start() { # reboot_and_start WATCH(0|1)
    stop_nftjail
    ip netns del "$NS"
    new_namespace restore
    local watch_out=""
    if [ "$1" = 1 ]; then
        watch_out="$TMP/watch.txt"
        ip netns exec "$NS" "$EXAMPLES/nft-events" count "$BANS" 120 >"$watch_out" &
        started $!
        wait_for "the listener" 10 grep -q subscribed "$watch_out"
    fi
    start_nftjail
    local count
    count=$(set_count manual_v4)
    local extra=""
    if [ -n "$watch_out" ]; then
        wait_for "the listener's count" 120 grep -q '^count=' "$watch_out"
        local last
        last=$(sed -n 's/.*last_unix_ns=\([0-9]*\).*/\1/p' "$watch_out")
        extra=" last_element_after_ms=$(( (last - START_NS) / 1000000 )) ($(grep '^count=' "$watch_out" | cut -d' ' -f1))"
    fi
    echo "  socket_answering_ms=$READY_MS elements_in_kernel_then=$count$extra"
    echo "  daemon log: kernel reconciled $(reconciled); reconciled -> running: $(after_reconcile_ms) ms"
    echo "  after exec: state replayed at $(at_ms 'state replayed') ms, kernel reconciled at $(at_ms 'kernel reconciled') ms"
}

echo "restore after reboot (table gone), no listener:"
reboot_and_start 0
# What a user waits for: exec -> the last element in the kernel, seen by a listener (as `nft
# monitor` would). WATCH_RUNS runs (default 3), each after a fresh "reboot".
for run in $(seq "${WATCH_RUNS:-3}"); do
    echo "restore after reboot (table gone), nft-events listening (run $run):"
    reboot_and_start 1
done
echo "restart with the table still in the kernel:"
stop_nftjail
start_nftjail
echo "  socket_answering_ms=$READY_MS elements_in_kernel=$(set_count manual_v4)"
echo "  daemon log: kernel reconciled $(reconciled); reconciled -> running: $(after_reconcile_ms) ms"
read -r rss_kb hwm_kb < <(rss "$DPID")
echo "  after restart with $BANS bans: VmRSS=$(kb_to_mb "$rss_kb") MB VmHWM=$(kb_to_mb "$hwm_kb") MB"
