#!/usr/bin/env bash
# fail2ban's own filters in nftjail (`nftjail test-filter 'NAME[options]' LOG`, release build,
# PCRE2) and in `fail2ban-regex` (Debian's fail2ban 1.0.2), side by side on the same generated
# 200,000-line sshd, postfix, dovecot and exim logs (examples/fail2ban_logs.rs: deterministic).
# Prints lines/s for both, the speed-up, and whether the addresses found agree.
#
#   benches/fail2ban-filters.sh                # 200,000 lines a log, best of 3 nftjail runs
#   LINES=50000 RUNS=5 benches/fail2ban-filters.sh
#
# Both rates are for the whole process (start-up and filter loading included); nftjail writes
# every failure as JSON, fail2ban-regex every address (`-o ip`), both to a file. fail2ban-regex
# runs once (it takes seconds). Needs fail2ban (apt-get install fail2ban) and bc.
set -euo pipefail
cd "$(dirname "$0")/.."

LINES=${LINES:-200000}
RUNS=${RUNS:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

command -v fail2ban-regex >/dev/null || { echo "fail2ban-regex not found (apt-get install fail2ban)" >&2; exit 2; }
# The binary alone, as a user builds it (see daemon/lib.sh's build), then the example.
cargo build --release --quiet --bin nftjail
cargo build --release --quiet --example fail2ban_logs
./target/release/examples/fail2ban_logs "$work" "$LINES" > /dev/null

now() { date +%s.%N; }
# shellcheck source=/dev/null
printf 'logs: %s lines each; %s, kernel %s, %s cores, load average %s\n' "$LINES" \
  "$(. /etc/os-release; echo "$PRETTY_NAME")" "$(uname -r)" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-26s %12s %12s %8s %9s %9s\n' filter 'nftjail l/s' 'f2b l/s' speed-up failures agree
status=0
for pair in 'sshd=sshd' 'sshd[mode=aggressive]=sshd' 'postfix[mode=aggressive]=postfix' 'dovecot=dovecot' 'exim=exim'; do
  filter=${pair%=*}
  log="$work/${pair##*=}.log"
  case "$filter" in *'['*) reference=$filter ;; *) reference="$filter.conf" ;; esac
  best=""
  for _ in $(seq "$RUNS"); do
    t0=$(now)
    ./target/release/nftjail test-filter "$reference" "$log" --json > "$work/ours.json" 2> /dev/null
    t=$(echo "$(now) - $t0" | bc -l)
    if [ -z "$best" ] || [ "$(echo "$t < $best" | bc -l)" = 1 ]; then best=$t; fi
  done
  t0=$(now)
  fail2ban-regex -o ip --usedns no "$log" "/etc/fail2ban/filter.d/${filter/\[/.conf[}$([[ $filter == *'['* ]] || echo .conf)" > "$work/theirs.ip"
  theirs_time=$(echo "$(now) - $t0" | bc -l)
  sed -n 's/.*"host": "\([^"]*\)".*/\1/p' "$work/ours.json" > "$work/ours.ip"
  ours_rate=$(echo "$LINES / $best" | bc -l)
  theirs_rate=$(echo "$LINES / $theirs_time" | bc -l)
  agree=no
  if cmp -s "$work/ours.ip" "$work/theirs.ip"; then agree=yes; else status=1; fi
  printf '%-26s %12.0f %12.0f %7.1fx %9s %9s\n' "$filter" "$ours_rate" "$theirs_rate" \
    "$(echo "$ours_rate / $theirs_rate" | bc -l)" "$(wc -l < "$work/ours.ip")" "$agree"
done
exit $status
