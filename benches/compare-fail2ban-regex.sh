#!/usr/bin/env bash
# Side by side: `nftjail test-filter sshd LOG` (release build) and `fail2ban-regex LOG sshd` on
# the same generated syslog sshd log (examples/gen-sshd-log.rs, deterministic: same LINES and
# SEED, same file). Prints lines/s for both, the speed-up, and checks the failure counts agree.
#
#   benches/compare-fail2ban-regex.sh            # 200,000 lines, seed 42
#   LINES=1000000 SEED=7 benches/compare-fail2ban-regex.sh
#
# nftjail's rate is the best of RUNS runs of the whole process (wall clock, including start-up,
# filter compilation and writing every failure to /dev/null); its own stderr summary (matching
# only) is shown too. fail2ban-regex runs once (it takes seconds). Needs fail2ban (Debian:
# apt-get install fail2ban).
set -euo pipefail
cd "$(dirname "$0")/.."

LINES=${LINES:-200000}
SEED=${SEED:-42}
RUNS=${RUNS:-5}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

command -v fail2ban-regex >/dev/null || { echo "fail2ban-regex not found (apt-get install fail2ban)" >&2; exit 2; }
# The binary alone, as a user builds it (see daemon/lib.sh's build), then the example.
cargo build --release --quiet --bin nftjail
cargo build --release --quiet --example gen-sshd-log
./target/release/examples/gen-sshd-log "$LINES" "$SEED" > "$work/auth.log"
lines=$(wc -l < "$work/auth.log")

now() { date +%s.%N; }
best=""
for _ in $(seq "$RUNS"); do
  t0=$(now)
  ./target/release/nftjail test-filter sshd "$work/auth.log" --now 2026-11-30T00:00:00Z \
    > "$work/nftjail.out" 2> "$work/nftjail.err"
  t1=$(now)
  t=$(echo "$t1 - $t0" | bc -l)
  if [ -z "$best" ] || [ "$(echo "$t < $best" | bc -l)" = 1 ]; then best=$t; cp "$work/nftjail.err" "$work/nftjail.best"; fi
done
nft_failures=$(wc -l < "$work/nftjail.out")
nft_rate=$(echo "$lines / $best" | bc -l)

t0=$(now)
# Debian 12's fail2ban 1.0.2 sshd filter only knows the `sshd` tag; OpenSSH 9.8+ logs as
# `sshd-session` (two thirds of the generated lines), so widen its _daemon to compare like with like.
fail2ban-regex "$work/auth.log" 'sshd[_daemon="sshd(?:-session)?"]' > "$work/f2b.out" 2>&1
t1=$(now)
f2b_time=$(echo "$t1 - $t0" | bc -l)
f2b_rate=$(echo "$lines / $f2b_time" | bc -l)
f2b_failures=$(sed -n 's/^Lines: [0-9]* lines, [0-9]* ignored, \([0-9]*\) matched.*/\1/p' "$work/f2b.out")

printf 'log: %s lines (seed %s), %s, kernel %s, %s cores\n' "$lines" "$SEED" "$(. /etc/os-release; echo "$PRETTY_NAME")" "$(uname -r)" "$(nproc)"
printf 'nftjail test-filter sshd: %8.3f s  %10.0f lines/s  %s failures\n' "$best" "$nft_rate" "$nft_failures"
sed 's/^/    /' "$work/nftjail.best"
printf 'fail2ban-regex LOG sshd:  %8.3f s  %10.0f lines/s  %s failures\n' "$f2b_time" "$f2b_rate" "${f2b_failures:-?}"
printf 'speed-up: %.1fx\n' "$(echo "$nft_rate / $f2b_rate" | bc -l)"
# fail2ban-regex's "matched" also counts the few `Accepted …` lines its sshd filter matches as
# helpers (to forget a session's failures after a login, not as failures): allow 0.1%.
if [ -z "${f2b_failures:-}" ] || [ "$(echo "d = $nft_failures - $f2b_failures; if (d < 0) d = -d; d * 1000 > $f2b_failures" | bc -l)" = 1 ]; then
  echo "failure counts differ by more than 0.1%: nftjail $nft_failures, fail2ban-regex ${f2b_failures:-unknown}" >&2
  exit 1
fi
echo "failure counts agree within 0.1% (nftjail $nft_failures, fail2ban-regex $f2b_failures matched lines)"
