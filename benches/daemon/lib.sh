# shellcheck shell=bash disable=SC2034 # variables set here are used by the scripts that source it
# Shared by the daemon benchmarks (sourced, not run). Each script gets: a private network
# namespace ($NS, `ip netns add`), a temp dir ($TMP), helpers to start and stop nftjail in that
# namespace, and a trap that stops what the script started (by pid), deletes the namespace and
# the temp dir on exit. Set KEEP=1 to keep the temp dir, NO_BUILD=1 to skip `cargo build`,
# NFTJAIL_BIN=PATH to run another nftjail binary.
#
# Needs root (namespaces, nftables), nft, ip, jq.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# NFTJAIL_BIN: another build to measure (say, main's, for a before/after in one run).
BIN="${NFTJAIL_BIN:-$ROOT/target/release/nftjail}"
EXAMPLES="$ROOT/target/release/examples"
NS=""
TMP=""
STARTED_PIDS=""
DPID=""

log() { printf '# %s\n' "$*" >&2; }

build() {
    if [ "${NO_BUILD:-0}" != 1 ]; then
        log "cargo build --release (nftjail; then examples nft-events and gen-attack-log)"
        # Two builds: with an example in the same build, the dev-dependencies' features (tokio's
        # test-util) join the binary's, its symbols' hashes change, and src/startup.order no
        # longer names its functions. Alone, it is the `cargo build --release` a user makes.
        (cd "$ROOT" && cargo build --release --quiet --bin nftjail &&
            cargo build --release --quiet --example nft-events --example gen-attack-log)
    fi
}

cleanup() {
    local pid
    for pid in $STARTED_PIDS; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            # Give a daemon its orderly shutdown, then insist.
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    wait 2>/dev/null || true
    if [ -n "$NS" ]; then ip netns del "$NS" 2>/dev/null || true; fi
    if [ -n "$TMP" ] && [ "${KEEP:-0}" != 1 ]; then rm -rf "$TMP"; fi
    if [ -n "$TMP" ] && [ "${KEEP:-0}" = 1 ]; then log "kept $TMP"; fi
}

# setup TAG: namespace, temp dir, trap.
setup() {
    [ "$(id -u)" = 0 ] || { echo "run as root (network namespaces, nftables)" >&2; exit 77; }
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    TMP=$(mktemp -d "/tmp/nftjail-bench-$1.XXXXXX")
    new_namespace "$1"
    log "namespace $NS, temp dir $TMP"
}

new_namespace() {
    NS="nfjb-$1-$$"
    ip netns add "$NS"
    ip -n "$NS" link set lo up
}

# Remembers a pid to stop on exit.
started() { STARTED_PIDS="$STARTED_PIDS $1"; }

now_ns() { date +%s%N; }

# ms_since START_NS
ms_since() { echo $(( ($(now_ns) - $1) / 1000000 )); }

# rss PID: "VmRSS_kB VmHWM_kB"
rss() {
    awk '/^VmRSS:/ {r=$2} /^VmHWM:/ {h=$2} END {print r, h}' "/proc/$1/status"
}

# kb_to_mb KB
kb_to_mb() { awk -v k="$1" 'BEGIN {printf "%.1f", k/1024}'; }

# main_config: the shipped dist/nftjail.toml with socket and state in $TMP.
main_config() {
    sed -e "s|^socket = .*|socket = \"$TMP/nftjail.sock\"|" \
        -e "s|^state_dir = .*|state_dir = \"$TMP/state\"|" \
        "$ROOT/dist/nftjail.toml" >"$TMP/nftjail.toml"
    mkdir -p "$TMP/jail.d"
}

# shipped_config [SSHD_EXTRA]: the shipped config (dist/nftjail.toml + jails/*.toml) with all six
# log jails enabled, reading empty temp files in $TMP/logs (sshd: auth.log), plus recidive and
# manual; SSHD_EXTRA is added to sshd's section.
shipped_config() {
    local sshd_extra=${1:-}
    main_config
    cp "$ROOT"/jails/*.toml "$TMP/jail.d/"
    mkdir -p "$TMP/logs"
    for f in auth mail proftpd panel; do : >"$TMP/logs/$f.log"; done
    cat >"$TMP/jail.d/zz-bench.toml" <<EOF
# The shipped jails, all enabled, reading temp files (read after the shipped drop-ins).
[sshd]
enabled = true
logpath = ["$TMP/logs/auth.log"]
$sshd_extra
[postfix]
enabled = true
logpath = ["$TMP/logs/mail.log"]
[postfix-sasl]
enabled = true
logpath = ["$TMP/logs/mail.log"]
[dovecot]
enabled = true
logpath = ["$TMP/logs/mail.log"]
[proftpd]
enabled = true
logpath = ["$TMP/logs/proftpd.log"]
[panel]
enabled = true
logpath = ["$TMP/logs/panel.log"]
EOF
}

# jail_config TEXT: $TMP/jail.d/bench.toml (the only drop-in unless the caller adds more).
jail_config() { printf '%s\n' "$1" >"$TMP/jail.d/bench.toml"; }

nftjail() { "$BIN" --socket "$TMP/nftjail.sock" "$@"; }

# wait_for WHAT SECONDS COMMAND...: runs COMMAND every $POLL seconds (default 0.01) until it
# succeeds.
wait_for() {
    local what=$1 secs=$2 deadline
    shift 2
    deadline=$(( $(date +%s) + secs ))
    until "$@" >/dev/null 2>&1; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            echo "timed out waiting for $what" >&2
            [ -f "$TMP/daemon.log" ] && tail -20 "$TMP/daemon.log" >&2
            exit 1
        fi
        sleep "${POLL:-0.01}"
    done
}

# at_least N COMMAND...: whether COMMAND prints a number >= N (for wait_for).
at_least() {
    local n=$1 got
    shift
    got=$("$@") || return 1
    [ "$got" -ge "$n" ]
}

# start_nftjail: runs `nftjail run` in $NS (ip netns exec execs it: $DPID is the daemon) and
# waits until its socket answers. Sets START_NS and READY_MS (wall clock start → answering).
start_nftjail() {
    START_NS=$(now_ns)
    ip netns exec "$NS" "$BIN" run --config "$TMP/nftjail.toml" >>"$TMP/daemon.log" 2>&1 &
    DPID=$!
    started "$DPID"
    wait_for "nftjail to answer on its socket" 60 nftjail status
    READY_MS=$(ms_since "$START_NS")
}

# stop_nftjail: SIGTERM and wait.
stop_nftjail() {
    kill -TERM "$DPID"
    wait "$DPID" || true
    DPID=""
}

# status_field JAIL JQ: one field of `status JAIL --json`.
status_field() { nftjail status "$1" --json | jq -r "$2"; }

# set_count SET [TABLE] [FAMILY]: elements in a set of $NS (0 when there is no such set).
set_count() {
    local n
    n=$(ip netns exec "$NS" nft -j list set "${3:-inet}" "${2:-nftjail}" "$1" 2>/dev/null |
        jq '[.nftables[] | select(.set) | .set.elem // [] | length] | add // 0' 2>/dev/null || true)
    echo "${n:-0}"
}

machine() {
    echo "machine: $(nproc) cores, $(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r), $(free -g | awk '/^Mem:/ {print $2}') GiB"
    echo "nftjail: ${NFTJAIL_BIN:-$(cd "$ROOT" && git rev-parse --short HEAD) (release build)}; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
}
