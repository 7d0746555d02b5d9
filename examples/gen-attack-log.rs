//! Writes a deterministic sshd attack log for the daemon benchmarks (`benches/daemon/`):
//!
//! ```text
//! cargo run --release --example gen-attack-log -- attack LINES ATTACKERS [SEED] > auth.log
//! cargo run --release --example gen-attack-log -- distinct LINES [SEED] > auth.log
//! ```
//!
//! `attack`: about 90 % of the lines are sshd failures (`Failed password`, for valid and invalid
//! users) from ATTACKERS IPv4 addresses (10.0.0.1, 10.0.0.2, …, picked at random), the rest is
//! noise that is not a failure (accepted logins, pam_unix sessions, cron, systemd, kernel), each
//! noise line with a PID of its own, so that no login lands in an attacker's sshd session.
//! `distinct`: LINES failures, each from a different address (10.0.0.1 onwards), no noise: a
//! distributed attack where nobody fails twice.
//!
//! Every line is stamped with the local time at generation (rsyslog's `%b %e %H:%M:%S`), so a
//! jail with a `findtime` of a day or more counts them all. Same arguments and seed, same file
//! (but for the time stamps).

use std::io::{self, BufWriter, Write};
use std::net::Ipv4Addr;

/// xorshift64*: small, deterministic, good enough for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const USERS: &[&str] = &[
    "root", "admin", "test", "oracle", "ubuntu", "git", "user", "postgres", "guest", "pi",
];

/// The `n`-th attacker (0-based): 10.0.0.1, 10.0.0.2, … (past 255 the last byte runs through 0:
/// 10.0.1.0 is a host of 10.0.0.0/8, not a network address).
fn attacker(n: u64) -> Ipv4Addr {
    Ipv4Addr::from(0x0a00_0000u32 + 1 + u32::try_from(n).expect("fewer than 2^24 attackers"))
}

/// Noise lines get PIDs from here on, one each, never one of the failures' (1000..61000).
const NOISE_PIDS: u64 = 100_000;

fn usage() -> io::Error {
    io::Error::other("usage: gen-attack-log attack LINES ATTACKERS [SEED] | distinct LINES [SEED]")
}

fn number(arg: Option<String>, default: Option<u64>) -> io::Result<u64> {
    match arg {
        Some(a) => a.parse().map_err(|_| usage()),
        None => default.ok_or_else(usage),
    }
}

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().ok_or_else(usage)?;
    let lines = number(args.next(), None)?;
    let (attackers, seed) = match mode.as_str() {
        "attack" => (number(args.next(), None)?, number(args.next(), Some(42))?),
        "distinct" => (lines, number(args.next(), Some(42))?),
        _ => return Err(usage()),
    };
    if attackers == 0 {
        return Err(usage());
    }
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let stamp = chrono::Local::now().format("%b %e %H:%M:%S").to_string();
    let mut out = BufWriter::with_capacity(1 << 20, io::stdout().lock());
    for i in 0..lines {
        let pid = 1000 + rng.below(60_000);
        let port = 1024 + rng.below(64_000);
        let user = USERS[rng.below(USERS.len() as u64) as usize];
        let noise = mode == "attack" && rng.below(10) == 0;
        if noise {
            // A noise line is its own process, as in a real log (one sshd process per
            // connection): with a PID drawn from the failures' range, an `Accepted publickey`
            // line joined a session in which attackers had already tried two user names, and
            // the sshd filter then charged the login, as fail2ban does (a session that tries
            // several users is not let off by a login): 250 innocent 192.0.2.x addresses were
            // banned on top of the attackers (10,250 bans for 10,000). The PID drawn above is
            // still drawn, so the rest of the file is unchanged.
            let pid = NOISE_PIDS + i;
            match rng.below(5) {
                0 => writeln!(
                    out,
                    "{stamp} mail sshd[{pid}]: Accepted publickey for {user} from 192.0.2.{} port {port} ssh2: ED25519 SHA256:Yc1CQ0x7mZ0o",
                    1 + rng.below(250)
                )?,
                1 => writeln!(
                    out,
                    "{stamp} mail sshd[{pid}]: pam_unix(sshd:session): session opened for user {user}(uid=1000) by {user}(uid=0)"
                )?,
                2 => writeln!(
                    out,
                    "{stamp} mail CRON[{pid}]: pam_unix(cron:session): session closed for user root"
                )?,
                3 => writeln!(
                    out,
                    "{stamp} mail systemd[1]: Started session-{pid}.scope - Session {pid} of User {user}."
                )?,
                _ => writeln!(
                    out,
                    "{stamp} mail kernel: [UFW BLOCK] IN=eth0 OUT= SRC=198.51.100.{} DST=192.0.2.1 PROTO=TCP SPT={port} DPT=23",
                    1 + rng.below(250)
                )?,
            }
            continue;
        }
        let addr = if mode == "distinct" {
            attacker(i)
        } else {
            attacker(rng.below(attackers))
        };
        if rng.below(2) == 0 {
            writeln!(
                out,
                "{stamp} mail sshd[{pid}]: Failed password for {user} from {addr} port {port} ssh2"
            )?;
        } else {
            writeln!(
                out,
                "{stamp} mail sshd[{pid}]: Failed password for invalid user {user} from {addr} port {port} ssh2"
            )?;
        }
    }
    out.flush()
}
