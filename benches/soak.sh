#!/usr/bin/env bash
# A soak test of the daemon: SOAK_SECONDS (default 1800) under a mixed load, in a private network
# namespace, printing the daemon's RSS over time and every disagreement between the kernel's
# sets, the state log on disk and `nftjail banned`. Not part of CI's default run (it takes half
# an hour); run it as root after `cargo build --release`:
#
#   benches/soak.sh                 # 30 minutes
#   SOAK_SECONDS=300 benches/soak.sh
#
# The load, all at once: failure lines written to the sshd log (~2,000 lines/s, attackers that
# reach maxretry and get banned for 2 minutes, so bans also expire), manual bans and unbans,
# a SIGHUP every 5 s, `nft` tampering with the table every 20 s (table deleted, set flushed,
# element deleted, chain deleted), and every 30 s sixteen clients that pipeline `banned`
# requests for 10 s and never read a byte. Every 60 s the load pauses for a moment and the three
# views of the bans are compared; they must be equal. Exit status: 0 when they always agreed.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_TOTAL="${SOAK_SECONDS:-1800}"
BIN="${NFTJAIL:-target/release/nftjail}"
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "run as root (namespaces, nft)" >&2; exit 2; }

NS="nfj-soak-$$"
DIR="$(mktemp -d /tmp/nftjail-soak.XXXXXX)"
PAUSE="$DIR/pause"
ip netns add "$NS"
ip netns exec "$NS" ip link set lo up
cleanup() {
  touch "$DIR/stop"
  [ -n "${DAEMON:-}" ] && kill "$DAEMON" 2>/dev/null || true
  jobs -p | xargs -r kill 2>/dev/null || true
  wait 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  echo "logs kept in $DIR"
}
trap cleanup EXIT

mkdir -p "$DIR/jail.d"
cat > "$DIR/nftjail.toml" <<EOF
[daemon]
socket = "$DIR/nftjail.sock"
state_dir = "$DIR/state"
[defaults]
ignoreself = false
EOF
cat > "$DIR/jail.d/soak.toml" <<EOF
[sshd]
enabled = true
filter = "sshd"
logpath = "$DIR/auth.log"
port = ["ssh"]
maxretry = 3
findtime = "10m"
bantime = "2m"

[manual]
enabled = true
port = ["all"]
bantime = "3m"
EOF
: > "$DIR/auth.log"
ip netns exec "$NS" "$BIN" run --config "$DIR/nftjail.toml" > "$DIR/daemon.log" 2>&1 &
DAEMON=$!
cli() { "$BIN" --socket "$DIR/nftjail.sock" "$@"; }
for _ in $(seq 100); do cli status > /dev/null 2>&1 && break; sleep 0.1; done

paused() { [ -e "$PAUSE" ]; }
running() { [ ! -e "$DIR/stop" ]; }

# 1. Failure lines: 200 lines every 100 ms, attackers drawn from 20,000 addresses.
(
  n=0
  while running; do
    if ! paused; then
      python3 - "$n" >> "$DIR/auth.log" <<'PY'
import sys, time, random
n = int(sys.argv[1]); random.seed(n)
stamp = time.strftime("%b %e %H:%M:%S")
for i in range(200):
    a = random.randrange(20000)
    print(f"{stamp} soak sshd[{1000+i}]: Failed password for root from 10.{a>>16}.{(a>>8)&255}.{a&255} port {40000+i} ssh2")
PY
      n=$((n + 1))
    fi
    sleep 0.1
  done
) &
# 2. Manual bans and unbans.
(
  while running; do
    if ! paused; then
      a=$((RANDOM % 500))
      cli ban manual "172.16.$((a / 250)).$((a % 250))" > /dev/null 2>&1 || true
      b=$((RANDOM % 500))
      cli unban "172.16.$((b / 250)).$((b % 250))" > /dev/null 2>&1 || true
    fi
    sleep 0.2
  done
) &
# 3. Reloads.
( while running; do paused || kill -HUP "$DAEMON" 2>/dev/null || true; sleep 5; done ) &
# 4. Tampering.
(
  k=0
  while running; do
    sleep 20
    paused && continue
    case $((k % 4)) in
      0) ip netns exec "$NS" nft delete table inet nftjail ;;
      1) ip netns exec "$NS" nft flush set inet nftjail sshd_v4 ;;
      2) ip netns exec "$NS" nft delete chain inet nftjail input ;;
      3) ip netns exec "$NS" nft flush set inet nftjail manual_v4 ;;
    esac > /dev/null 2>&1 || true
    k=$((k + 1))
  done
) &
# 5. Clients that pipeline and never read.
(
  while running; do
    sleep 30
    paused && continue
    python3 - "$DIR/nftjail.sock" <<'PY' || true
import socket, sys, time
socks = []
for _ in range(16):
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.setblocking(False)
    socks.append(s)
deadline = time.time() + 10
while time.time() < deadline:
    for s in socks:
        try: s.send(b'{"command":"banned"}\n')
        except (BlockingIOError, OSError): pass
    time.sleep(0.05)
for s in socks: s.close()
PY
  done
) &

# The three views of the bans, compared while the load pauses.
compare() {
  touch "$PAUSE"
  sleep 3
  ip netns exec "$NS" nft -j list table inet nftjail > "$DIR/kernel.json" 2>/dev/null || echo '{}' > "$DIR/kernel.json"
  cli banned --json > "$DIR/banned.json" 2>/dev/null || echo '{}' > "$DIR/banned.json"
  cp "$DIR/state/state.log" "$DIR/state.copy"
  rm -f "$PAUSE"
  python3 - "$DIR" <<'PY'
import json, sys, zlib, time
d = sys.argv[1]; now = time.time()
def members():
    out = set()
    try: items = json.load(open(f"{d}/kernel.json"))["nftables"]
    except Exception: return out
    for i in items:
        s = i.get("set")
        if not s or "elem" not in s: continue
        jail = s["name"].rsplit("_", 1)[0]
        for e in s["elem"]:
            v = e["elem"]["val"] if isinstance(e, dict) and "elem" in e else e
            if isinstance(v, dict) and "prefix" in v: v = f'{v["prefix"]["addr"]}/{v["prefix"]["len"]}'
            out.add((jail, v))
    return out
def banned():
    try: bans = json.load(open(f"{d}/banned.json"))["bans"]
    except Exception: return None
    return {(b["jail"], b["target"]) for b in bans if b["expires"] is None or b["expires"] > now + 2}
def state():
    live = {}
    for line in open(f"{d}/state.copy", "rb"):
        crc, _, body = line.rstrip(b"\n").partition(b" ")
        if len(crc) != 8 or zlib.crc32(body) != int(crc, 16): continue
        r = json.loads(body)
        if "ban" in r: b = r["ban"]; live[(b["jail"], b["target"])] = b
        elif "unban" in r: live.pop((r["unban"]["jail"], r["unban"]["target"]), None)
    return {k for k, b in live.items() if b["expires"] is None or b["expires"] > now + 2}
k, b, s = members(), banned(), state()
if b is None:
    print("  banned: no answer"); sys.exit(1)
# Elements about to expire may differ by a second: compare what runs for more than 2 s.
k = {x for x in k if x in b or x in s}
bad = (k ^ b) | (b ^ s)
print(f"  kernel {len(k)}  banned {len(b)}  state {len(s)}  disagreements {len(bad)}")
for x in sorted(bad)[:10]: print("   ", x, "kernel" if x in k else "", "banned" if x in b else "", "state" if x in s else "")
sys.exit(1 if bad else 0)
PY
}

echo "soak: ${SECONDS_TOTAL}s, logs in $DIR"
printf '%8s %10s %8s\n' "time_s" "rss_kib" "bans"
start=$(date +%s)
failed=0
next_compare=$((start + 60))
while :; do
  now=$(date +%s)
  elapsed=$((now - start))
  [ "$elapsed" -ge "$SECONDS_TOTAL" ] && break
  kill -0 "$DAEMON" 2>/dev/null || { echo "the daemon died"; tail -20 "$DIR/daemon.log"; exit 1; }
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$DAEMON/status")
  bans=$(cli banned --json 2>/dev/null | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["bans"]))' 2>/dev/null || echo "?")
  printf '%8d %10s %8s\n' "$elapsed" "$rss" "$bans"
  if [ "$now" -ge "$next_compare" ]; then
    compare || failed=$((failed + 1))
    next_compare=$((now + 60))
  fi
  sleep 10
done
echo "final comparison:"
compare || failed=$((failed + 1))
echo "comparisons with disagreements: $failed"
echo "errors in the daemon's log: $(grep -c ' ERROR ' "$DIR/daemon.log" || true)"
[ "$failed" -eq 0 ]
