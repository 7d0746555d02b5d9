#!/bin/bash
# Write-to-kernel latency: from appending the maxretry-th failure line of an address to its
# element being added to the kernel set (seen as an nf_tables NEWSETELEM notification by
# examples/nft-events.rs in the daemon's namespace). ATTACKERS distinct addresses, one at a
# time, SPACING_MS apart. Target: p99 <= 10 ms.
#
#   sudo benches/daemon/latency.sh            # ATTACKERS=1000 SPACING_MS=10 MAXRETRY=5
set -eu
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

ATTACKERS=${ATTACKERS:-1000}
SPACING_MS=${SPACING_MS:-10}
MAXRETRY=${MAXRETRY:-5}

build
setup latency
machine
main_config
: >"$TMP/auth.log"
jail_config "[sshd]
enabled = true
filter = \"sshd\"
logpath = \"$TMP/auth.log\"
port = [\"ssh\"]
maxretry = $MAXRETRY
findtime = \"10m\"
bantime = \"1h\""
start_nftjail
log "nftjail answering after ${READY_MS} ms; $ATTACKERS attackers, maxretry $MAXRETRY, ${SPACING_MS} ms apart"

ip netns exec "$NS" "$EXAMPLES/nft-events" latency "$TMP/auth.log" "$ATTACKERS" "$MAXRETRY" "$SPACING_MS" \
    >"$TMP/latency.txt"
grep '^missed' "$TMP/latency.txt" | head -5 >&2 || true
banned=$(status_field sshd '.jail.currently_banned')
in_kernel=$(set_count sshd_v4)
echo "nftjail latency (append of the ${MAXRETRY}th failure -> element in the kernel set):"
grep '^summary' "$TMP/latency.txt"
read -r rss_kb hwm_kb < <(rss "$DPID")
echo "currently_banned=$banned elements_in_sshd_v4=$in_kernel VmRSS=$(kb_to_mb "$rss_kb") MB VmHWM=$(kb_to_mb "$hwm_kb") MB"
