#!/usr/bin/env bash
# How long `nftjail import-fail2ban --db` takes to move 5,000 active bans (plus one permanent,
# two expired and three of a jail nftjail lacks) from a database written by fail2ban's own
# Fail2BanDb into a running daemon in a private network namespace, until all are in the kernel
# and on disk. Runs the end-to-end test `fail2ban_active_bans_move_into_the_running_daemon`
# (tests/nftjail/fail2ban/bans.rs) in release mode RUNS times and prints each time it measured
# (the client's whole run: reading the database, the request, the daemon's reply after the
# kernel and the state log took every ban).
#
#   sudo benches/fail2ban-import.sh          # 5 runs
#   RUNS=10 sudo benches/fail2ban-import.sh
#
# Needs root (namespaces), nft, and fail2ban (its Python modules write the database).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
cargo test --release --quiet --test nftjail --no-run
# shellcheck source=/dev/null
printf '%s, kernel %s, %s cores, load average %s\n' "$(. /etc/os-release; echo "$PRETTY_NAME")" \
  "$(uname -r)" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
for run in $(seq "$RUNS"); do
  took=$(cargo test --release --quiet --test nftjail fail2ban_active_bans -- --include-ignored --nocapture 2>&1 \
    | sed -n 's/^import took //p')
  echo "run $run: import of 5,001 active bans took $took"
done
