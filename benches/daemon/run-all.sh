#!/bin/bash
# Runs every daemon benchmark, nftjail then fail2ban, and keeps the output in
# benches/daemon/results-DATE.txt (one section per script). Takes ~15 minutes, most of it
# fail2ban's.
#
#   sudo benches/daemon/run-all.sh
set -eu
cd "$(dirname "$0")"
out="results-$(date +%F).txt"
: >"$out"
# The binary alone, as a user builds it (see lib.sh's build), then the examples.
(cd ../.. && cargo build --release --quiet --bin nftjail &&
    cargo build --release --quiet --example nft-events --example gen-attack-log)
for script in latency.sh throughput.sh rss.sh restore.sh fail2ban.sh; do
    echo "=== $script ($(date -Is))" | tee -a "$out"
    NO_BUILD=1 "./$script" 2>&1 | tee -a "$out"
done
