#!/bin/bash
# Memory cost of the HTTP server ([http]): VmRSS of one daemon running the shipped config
# (dist/nftjail.toml + jails/*.toml, the six log jails enabled on temp files, plus recidive and
# manual), in these setups, each on a fresh daemon and state, RUNS times (default 5):
#   base   BASE_BIN, a build without the HTTP stack (optional; e.g. main before it landed)
#   off    this build, [http] not set: nothing of the HTTP stack is started
#   on     this build, [http] listen = "127.0.0.1:9469", idle
#   used   the same daemon as `on` after ROUNDS (default 50) rounds of what the console does
#          (the page, its script and style, ping, status, bans, history) plus a /metrics scrape
# Idle = 5 s after the daemon answers on its socket. Prints each run and the median per setup.
#
#   sudo BASE_BIN=/path/to/nftjail-before-http benches/daemon/http-rss.sh
set -eu
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

RUNS=${RUNS:-5}
ROUNDS=${ROUNDS:-50}
BASE_BIN=${BASE_BIN:-}
OWN_BIN=$BIN

if [ "${NO_BUILD:-0}" != 1 ]; then
    log "cargo build --release --bin nftjail"
    (cd "$ROOT" && cargo build --release --quiet --bin nftjail)
fi
setup http-rss
machine
[ -n "$BASE_BIN" ] && echo "base: $BASE_BIN"

# shipped_http_config HTTP(0|1): lib.sh's shipped configuration, with the HTTP server on when 1.
shipped_http_config() {
    shipped_config ""
    if [ "$1" = 1 ]; then
        printf '\n[http]\nlisten = "127.0.0.1:9469"\n' >>"$TMP/nftjail.toml"
    fi
}

get() { ip netns exec "$NS" curl -fsS -o /dev/null "http://127.0.0.1:9469$1"; }

console_rounds() {
    local path
    for _ in $(seq "$ROUNDS"); do
        for path in / /console.js /console.css /api/v1/ping /api/v1/status /api/v1/bans /api/v1/history /metrics; do
            get "$path"
        done
    done
}

rss_kb() { rss "$DPID" | cut -d' ' -f1; }

# parts: "anon A MB, file F MB" (RssAnon: heap and stacks; RssFile: the binary's and the
# libraries' pages in memory).
parts() {
    awk '/^RssAnon:/ {a=$2} /^RssFile:/ {f=$2} END {printf "anon %.1f MB, file %.1f MB", a/1024, f/1024}' "/proc/$DPID/status"
}

median() { sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

declare -A results
run() { # run SETUP BIN HTTP
    local setup=$1 kb
    BIN=$2
    ip netns del "$NS" 2>/dev/null || true
    new_namespace http-rss
    rm -rf "$TMP/state" "$TMP/jail.d" "$TMP/daemon.log"
    shipped_http_config "$3"
    start_nftjail
    sleep 5
    kb=$(rss_kb)
    results[$setup]+="$kb "
    echo "  $setup: VmRSS $(kb_to_mb "$kb") MB ($(parts))"
    if [ "$3" = 1 ]; then
        console_rounds
        sleep 2
        kb=$(rss_kb)
        results[used]+="$kb "
        echo "  used: VmRSS $(kb_to_mb "$kb") MB ($(parts); after $ROUNDS console rounds)"
    fi
    stop_nftjail
}

for r in $(seq "$RUNS"); do
    echo "run $r"
    [ -n "$BASE_BIN" ] && run base "$BASE_BIN" 0
    run off "$OWN_BIN" 0
    run on "$OWN_BIN" 1
done

echo "medians of $RUNS runs (VmRSS):"
for setup in base off on used; do
    [ -n "${results[$setup]:-}" ] || continue
    kb=$(tr ' ' '\n' <<<"${results[$setup]}" | grep . | median)
    echo "  $setup: $(kb_to_mb "$kb") MB ($kb kB)"
done
