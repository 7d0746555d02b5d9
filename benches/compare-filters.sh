#!/usr/bin/env bash
# Every built-in filter side by side with fail2ban-regex on the same file: the filter's annotated
# corpus (tests/filters/NAME.log, comments dropped) repeated to LINES lines, through
# `nftjail test-filter NAME LOG` (release build, whole process, best of RUNS) and
# `fail2ban-regex LOG NAME` (Debian's fail2ban 1.0.2, once), each in its filter's default
# mode. Prints lines/s for both (wall clock, whole process) and what each counted: nftjail's
# failures, fail2ban-regex's "matched" lines (which include the lines of a multi-line failure
# and helper lines, so the two differ where the corpus has those). Needs fail2ban (Debian:
# apt-get install fail2ban).
#
#   benches/compare-filters.sh                 # 100,000 lines per filter
#   LINES=100000 FILTERS="exim vsftpd" benches/compare-filters.sh
set -euo pipefail
cd "$(dirname "$0")/.."

LINES=${LINES:-100000}
RUNS=${RUNS:-3}
FILTERS=${FILTERS:-"apache-auth directadmin dovecot exim exim-spam nginx-http-auth pam-generic panel postfix postfix-sasl proftpd pure-ftpd roundcube-auth sogo-auth sshd vsftpd webmin-auth"}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

command -v fail2ban-regex >/dev/null || { echo "fail2ban-regex not found (apt-get install fail2ban)" >&2; exit 2; }
cargo build --release --quiet --bin nftjail

now() { date +%s.%N; }
printf 'load: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-16s %8s %14s %10s %14s %10s %8s\n' filter lines "nftjail l/s" failures "f2b l/s" "f2b hits" speed-up
for name in $FILTERS; do
  corpus=tests/filters/$name.log
  [ -f "$corpus" ] || continue
  grep -av '^#' "$corpus" | grep -av '^[[:space:]]*$' > "$work/one.log"
  per=$(wc -l < "$work/one.log")
  for _ in $(seq $((LINES / per + 1))); do cat "$work/one.log"; done > "$work/many.log"
  head -n "$LINES" "$work/many.log" > "$work/$name.log"
  lines=$(wc -l < "$work/$name.log")
  best=""
  for _ in $(seq "$RUNS"); do
    t0=$(now)
    ./target/release/nftjail test-filter "$name" "$work/$name.log" --now 2026-11-23T12:00:00Z \
      > "$work/out" 2> "$work/err"
    t1=$(now)
    t=$(echo "$t1 - $t0" | bc -l)
    if [ -z "$best" ] || [ "$(echo "$t < $best" | bc -l)" = 1 ]; then best=$t; fi
  done
  ours=$(wc -l < "$work/out")
  # fail2ban has no `panel` filter: its nearest neighbours do not read cPanel's log.
  if [ -f "/etc/fail2ban/filter.d/$name.conf" ]; then
    f2b_filter=$name
    # Debian 12's fail2ban 1.0.2 knows only the `sshd` tag; OpenSSH 9.8+ logs as `sshd-session`.
    [ "$name" = sshd ] && f2b_filter='sshd[_daemon="sshd(?:-session)?"]'
    t0=$(now)
    fail2ban-regex "$work/$name.log" "$f2b_filter" > "$work/f2b" 2>&1 || true
    t1=$(now)
    f2b_time=$(echo "$t1 - $t0" | bc -l)
    f2b_rate=$(echo "$lines / $f2b_time" | bc -l)
    f2b_hits=$(sed -n 's/^Lines: [0-9]* lines, [0-9]* ignored, \([0-9]*\) matched.*/\1/p' "$work/f2b")
    printf '%-16s %8d %14.0f %10d %14.0f %10s %7.1fx\n' "$name" "$lines" "$(echo "$lines / $best" | bc -l)" "$ours" "$f2b_rate" "${f2b_hits:-?}" "$(echo "($lines / $best) / $f2b_rate" | bc -l)"
  else
    printf '%-16s %8d %14.0f %10d %14s %10s %8s\n' "$name" "$lines" "$(echo "$lines / $best" | bc -l)" "$ours" "-" "-" "-"
  fi
done
