#!/bin/bash
# Writes src/startup.order: the functions of the executable that the daemon runs from its start
# to idle with the shipped jails, through a first ban and while it answers `status`; then those
# the HTTP server adds (a second daemon with [http] set, asked what the console asks for and
# scraped). Each in the order callgrind first lists them (callgrind sees every function entered,
# however short). build.rs hands the file to the linker (lld's --symbol-ordering-file) for
# release builds, and the linker lays those functions out side by side, in that order.
#
# Why: the kernel maps a process's code in around every page it touches (fault-around, 64 kB
# blocks). Start-up runs about 2 MB of functions (clap, toml, the regex compiler, tokio, netlink)
# that the linker otherwise scatters over the 11 MB of code, so that nearly all of it ended up
# resident: three quarters of the idle RSS (benches/README.md, "Idle memory").
#
# Run it again after any change of the code, the dependencies or the toolchain, and before a
# release: the listed names carry hashes that change with them (ThinLTO's `.llvm.<hash>`
# suffixes change for every module a change touches), and a name the executable no longer has
# is passed over, its function left where the linker puts it. rss.sh says how many of the
# listed functions the executable being measured has, and warns when that is not all.
#
#   sudo benches/daemon/startup-order.sh        # then: cargo build --release; rss.sh to compare
set -eu
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
build
setup order
machine
REAL=$BIN
# `run` under callgrind; the client commands (status) as they are.
BIN="$TMP/under-callgrind"
cat >"$BIN" <<EOF
#!/bin/sh
if [ "\$1" = run ]; then
    exec valgrind --tool=callgrind --demangle=no --dump-instr=no \
        --callgrind-out-file="$TMP/callgrind.out" "$REAL" "\$@"
fi
exec "$REAL" "\$@"
EOF
chmod +x "$BIN"

# trace NAME HTTP(0|1): the functions one daemon under callgrind enters, first seen first, into
# $TMP/met-NAME: the shipped jails from start through a first ban to idle; with the HTTP server
# when 1, then what the console asks for and a /metrics scrape.
trace() {
    ip netns del "$NS" 2>/dev/null || true
    new_namespace order
    rm -rf "$TMP/state" "$TMP/jail.d" "$TMP/daemon.log" "$TMP/callgrind.out"
    shipped_config ""
    if [ "$2" = 1 ]; then
        printf '\n[http]\nlisten = "127.0.0.1:9469"\n' >>"$TMP/nftjail.toml"
    fi
    start_nftjail
    log "$1: started under callgrind in ${READY_MS} ms"
    # A first ban: the failure path from the tail to the kernel.
    "$EXAMPLES/gen-attack-log" attack 200 2 >>"$TMP/logs/auth.log"
    POLL=0.5 wait_for "a ban in sshd" 120 at_least 1 status_field sshd .jail.currently_banned
    nftjail status >/dev/null
    nftjail status sshd >/dev/null
    if [ "$2" = 1 ]; then
        for path in / /console.js /console.css /api/v1/ping /api/v1/status /api/v1/bans /api/v1/history /metrics; do
            ip netns exec "$NS" curl -fsS -o /dev/null "http://127.0.0.1:9469$path"
        done
    fi
    sleep 5
    stop_nftjail
    # `fn=(id) name` where callgrind first names a function.
    sed -n -E 's/^c?fn=\([0-9]+\) (.*)$/\1/p' "$TMP/callgrind.out" | awk '!seen[$0]++' >"$TMP/met-$1"
}

trace plain 0
trace http 1
# The daemon without the HTTP server first, then what the server adds: a daemon without it
# touches one stretch, not one spread by the server's functions; with it, the stretch after.
# Kept when the executable defines them.
nm --defined-only "$REAL" | awk '{print $NF}' | sort -u >"$TMP/defined"
cat "$TMP/met-plain" "$TMP/met-http" | awk '!seen[$0]++' >"$TMP/met"
awk 'NR == FNR {defined[$0] = 1; next} $0 in defined' "$TMP/defined" "$TMP/met" >"$ROOT/src/startup.order"
echo "src/startup.order: $(wc -l <"$ROOT/src/startup.order") functions of $(wc -l <"$TMP/met") met under callgrind" \
    "($(wc -l <"$TMP/met-plain") without the HTTP server)"
