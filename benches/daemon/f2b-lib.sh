# shellcheck shell=bash disable=SC2034 # variables set here are used by the scripts that source it
# fail2ban-server helpers shared by fail2ban.sh and ../peers.sh (sourced after lib.sh and after
# `setup`): a private copy of /etc/fail2ban in $TMP/f2b (own socket, pidfile, sqlite db and log;
# Debian's jail.d removed), `banaction = nftables-multiport`, `backend = pyinotify`.

F2B="$TMP/f2b"
FPID=""

# f2b_config JAILS: a private copy of /etc/fail2ban with JAILS as jail.local.
f2b_config() {
    rm -rf "$F2B"
    mkdir -p "$F2B"
    cp -r /etc/fail2ban "$F2B/etc"
    rm -f "$F2B/etc/jail.d/"* "$F2B/etc/jail.local" "$F2B/etc/fail2ban.local"
    : >"$F2B/fail2ban.log" # recidive's log must exist
    cat >"$F2B/etc/fail2ban.local" <<EOF
[Definition]
logtarget = $F2B/fail2ban.log
socket = $F2B/f2b.sock
pidfile = $F2B/f2b.pid
dbfile = $F2B/f2b.sqlite3
EOF
    cat >"$F2B/etc/jail.local" <<EOF
[DEFAULT]
banaction = nftables-multiport
banaction_allports = nftables-allports
backend = pyinotify
ignoreip = 127.0.0.0/8 ::1

$1
EOF
}

f2b_client() { fail2ban-client -c "$F2B/etc" -s "$F2B/f2b.sock" "$@"; }

# f2b_start: the server in $NS; sets F_START_NS, F_PING_MS (exec → ping answered).
f2b_start() {
    F_START_NS=$(now_ns)
    ip netns exec "$NS" fail2ban-server -c "$F2B/etc" -s "$F2B/f2b.sock" -p "$F2B/f2b.pid" -x -f \
        >>"$F2B/server.out" 2>&1 &
    FPID=$!
    started "$FPID"
    wait_for "fail2ban to answer ping" 120 f2b_client ping
    F_PING_MS=$(ms_since "$F_START_NS")
}

f2b_stop() {
    f2b_client stop >/dev/null 2>&1 || kill -TERM "$FPID"
    wait "$FPID" || true
    FPID=""
}

# f2b_field JAIL NAME: a counter of `fail2ban-client status JAIL` ("Total failed", …).
f2b_field() { f2b_client status "$1" | sed -n "s/.*$2:[[:space:]]*//p"; }

# log_ms LINE: the time stamp of a fail2ban log line as Unix ms.
log_ms() {
    local stamp
    stamp=$(cut -c1-23 <<<"$1")
    echo $(( $(date -d "${stamp%,*}" +%s) * 1000 + 10#${stamp#*,} ))
}

sshd_jail() { # sshd_jail MAXRETRY FINDTIME BANTIME
    echo "[sshd]
enabled = true
port = ssh
logpath = $TMP/auth.log
maxretry = $1
findtime = $2
bantime = $3"
}

