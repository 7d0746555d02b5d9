#!/bin/bash
# Where the daemon's time goes under the throughput load (throughput.sh's `bans` variant:
# LINES lines, ~90 % failures from ATTACKERS addresses, maxretry 5): `perf record` of the
# running daemon (all its threads) while it drains the log, then the top symbols per thread
# (comm: source-sshd is the tail + filter thread, tokio-runtime-w the core and banner tasks,
# banner the netlink + state worker). Set CALLGRAPH=1 for DWARF call graphs (perf.data is large),
# MAXRETRY=1000 for throughput.sh's `counted` variant (every failure counted, none banned).
#
#   sudo benches/daemon/profile.sh            # LINES=5000000 ATTACKERS=10000 TOP=25 MAXRETRY=5
set -eu
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

LINES=${LINES:-5000000}
ATTACKERS=${ATTACKERS:-10000}
TOP=${TOP:-25}
MAXRETRY=${MAXRETRY:-5}
command -v perf >/dev/null || { echo "perf is needed (apt-get install linux-perf)" >&2; exit 1; }

build
setup profile
machine
"$EXAMPLES/gen-attack-log" attack "$LINES" "$ATTACKERS" >"$TMP/attack.log"
main_config
: >"$TMP/auth.log"
jail_config "[sshd]
enabled = true
filter = \"sshd\"
logpath = \"$TMP/auth.log\"
port = [\"ssh\"]
findtime = \"1d\"
bantime = \"1d\"
maxretry = $MAXRETRY"
start_nftjail
if [ "${CALLGRAPH:-0}" = 1 ]; then graph=(--call-graph "dwarf,16384" -F 499); else graph=(-F 2999); fi
perf record "${graph[@]}" -o "$TMP/perf.data" -p "$DPID" 2>"$TMP/perf.err" &
perf_pid=$!
started "$perf_pid"
sleep 1
t0=$(now_ns)
dd if="$TMP/attack.log" of="$TMP/auth.log" bs=4M oflag=append conv=notrunc status=none
POLL=0.1 wait_for "the log to be read" 300 at_least "$LINES" status_field sshd .jail.lines_read
echo "drained $LINES lines in $(ms_since "$t0") ms under perf"
sleep 0.5
kill -INT "$perf_pid"
wait "$perf_pid" || true
echo "samples per thread:"
perf report -i "$TMP/perf.data" --no-children --sort comm --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -8
echo "top $TOP symbols (share of all samples, by thread):"
perf report -i "$TMP/perf.data" --no-children --sort comm,sym --stdio 2>/dev/null |
    grep -E '^ +[0-9]' | head -"$TOP"
if [ "${CALLGRAPH:-0}" = 1 ]; then
    perf report -i "$TMP/perf.data" --children --sort sym --stdio -g none 2>/dev/null |
        grep -E '^ +[0-9]' | grep nftjail | head -"$TOP"
fi
