#!/bin/bash
# A big banned list through the HTTP API: BANS addresses (default 100,000) banned in the manual
# jail, then `GET /api/v1/bans` three times (the first builds the list, the next take it from
# the core's cache), then CLIENTS slow readers at once (default 16, each limited to 2 MB/s):
# time and size of each answer, and the daemon's VmRSS/VmHWM before and after, to show that
# concurrent readers share one buffer instead of holding a copy each.
#
#   sudo benches/daemon/http-bans.sh
set -eu
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

BANS=${BANS:-100000}
CLIENTS=${CLIENTS:-16}

if [ "${NO_BUILD:-0}" != 1 ]; then
    log "cargo build --release --bin nftjail"
    (cd "$ROOT" && cargo build --release --quiet --bin nftjail)
fi
setup http-bans
machine

main_config
printf '\n[http]\nlisten = "127.0.0.1:9469"\n' >>"$TMP/nftjail.toml"
jail_config '[manual]
enabled = true
port = ["all"]
bantime = "1d"'
start_nftjail

report() {
    local rss_kb hwm_kb
    read -r rss_kb hwm_kb < <(rss "$DPID")
    echo "$1: VmRSS=$(kb_to_mb "$rss_kb") MB VmHWM=$(kb_to_mb "$hwm_kb") MB"
}

awk -v n="$BANS" 'BEGIN {for (i = 0; i < n; i++) printf "172.%d.%d.%d\n", 16 + int(i / 65536) % 16, int(i / 256) % 256, i % 256}' >"$TMP/list.txt"
nftjail ban manual --from-file "$TMP/list.txt"
report "after $BANS bans"
for n in 1 2 3; do
    echo "GET /api/v1/bans #$n: $(ip netns exec "$NS" curl -fsS -o /dev/null -w '%{http_code}, %{size_download} bytes in %{time_total} s' http://127.0.0.1:9469/api/v1/bans)"
done
report "after three GETs"
pids=""
t0=$(now_ns)
for _ in $(seq "$CLIENTS"); do
    ip netns exec "$NS" curl -fsS -o /dev/null --limit-rate 2M http://127.0.0.1:9469/api/v1/bans &
    pids="$pids $!"
done
sleep 2
report "$CLIENTS slow readers at once, 2 s in"
# shellcheck disable=SC2086 # one pid a word
wait $pids
echo "$CLIENTS slow readers done in $(ms_since "$t0") ms"
report "after them"
stop_nftjail
