#!/bin/sh
# systemd/verify.sh — CI check of the shipped systemd unit.
#
#   systemd/verify.sh [BINARY]
#
# 1. `systemd-analyze verify` on systemd/nftjail.service: any message at all is a failure,
#    because systemd only warns (exit 0) about unknown keys or values it cannot parse, and
#    systemd 252 "ignores" Type=notify-reload that way.
# 2. `systemd-analyze security --offline=yes`: prints the exposure score and fails when it is
#    2.0 or more (--threshold compares the score ×10 and fails when it is above the value).
#
# `verify` insists that ExecStart's program exists and is executable, so the unit is checked
# from a temporary copy whose /usr/bin/nftjail is replaced by BINARY (default: the release
# build, else the debug build). Needs systemd-analyze ≥ 252; no running systemd.
# Exit status: 0 when everything is clean, 1 on any problem, 2 on a usage error.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
unit="$here/nftjail.service"
# Fail when the exposure is above 1.9, i.e. 2.0 or more.
threshold=19

if [ $# -gt 1 ]; then
    echo "usage: $0 [BINARY]" >&2
    exit 2
fi
binary=${1:-}
if [ -z "$binary" ]; then
    for candidate in "$root/target/release/nftjail" "$root/target/debug/nftjail"; do
        if [ -x "$candidate" ]; then
            binary=$candidate
            break
        fi
    done
fi
if [ -z "$binary" ] || [ ! -x "$binary" ]; then
    echo "$0: no nftjail binary to check the unit against; run \`cargo build\` or pass one" >&2
    exit 2
fi
case $binary in
    /*) ;;
    *) binary="$(pwd)/$binary" ;;
esac
if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "$0: systemd-analyze is not installed (apt-get install systemd)" >&2
    exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
failed=0

# 1. The unit as shipped, only the binary's path substituted; any output is a failure.
#    --man=no: Documentation= pages need not be installed on the CI machine.
sed "s#/usr/bin/nftjail#$binary#g" "$unit" >"$work/nftjail.service"
if ! systemd-analyze verify --man=no "$work/nftjail.service" >"$work/verify.out" 2>&1 \
    || [ -s "$work/verify.out" ]; then
    echo "FAIL systemd-analyze verify: messages (a setting systemd does not understand?)"
    sed 's/^/    /' "$work/verify.out"
    failed=1
else
    echo "ok   systemd-analyze verify: no messages"
fi

# 2. The exposure score of the unit exactly as shipped (offline: no running systemd needed).
if systemd-analyze security --offline=yes --threshold="$threshold" --no-pager "$unit" \
    >"$work/security.out" 2>&1; then
    verdict="ok  "
else
    verdict=FAIL
fi
# The arrow and the smiley depend on the locale ("→" or "->"): take only the number.
score=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' "$work/security.out")
if [ -z "$score" ]; then
    sed 's/^/    /' "$work/security.out"
    verdict=FAIL
fi
echo "$verdict systemd-analyze security --offline=yes: exposure ${score:-unknown} (must be below 2.0)"
if [ "$verdict" = FAIL ]; then
    failed=1
    # The rows that cost points are those ending in an exposure number.
    grep -E '[0-9]\.[0-9][[:space:]]*$' "$work/security.out" | sed 's/^/    /' || true
fi

exit "$failed"
