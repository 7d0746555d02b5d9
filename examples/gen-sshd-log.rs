//! Writes a deterministic syslog auth log of sshd traffic for benchmarks:
//! `cargo run --release --example gen-sshd-log -- [LINES] [SEED] > auth.log`.
//!
//! The mix (by weight): failed passwords and invalid users (failures), `maximum authentication
//! attempts` (failures), pam_unix auth lines and `Connection closed … [preauth]` (not failures in
//! normal mode), accepted logins and sessions (successes), and other daemons' noise (cron,
//! systemd, kernel, postfix). About a quarter of the addresses are IPv6, some `::ffff:`-mapped.
//! OpenSSH 9.8+'s `sshd-session` and older `sshd` tags are mixed. Same LINES and SEED, same file.

use std::io::{self, BufWriter, Write};

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

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const USERS: &[&str] = &[
    "admin", "test", "oracle", "ubuntu", "git", "user", "postgres", "guest", "ftpuser", "pi",
];
const MONTHS: &[&str] = &[
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn address(rng: &mut Rng) -> String {
    match rng.below(8) {
        0 => format!(
            "2001:db8:{:x}:{:x}::{:x}",
            rng.below(0xffff),
            rng.below(0xffff),
            rng.below(0xffff) + 1
        ),
        1 => format!(
            "2001:db8::{:x}:{:x}",
            rng.below(0xffff),
            rng.below(0xffff) + 1
        ),
        2 => format!("::ffff:198.51.{}.{}", rng.below(256), rng.below(254) + 1),
        _ => format!("203.0.{}.{}", rng.below(256), rng.below(254) + 1),
    }
}

#[allow(dead_code)] // benches/filter.rs includes this file for `generate` only
fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let lines: u64 = args
        .next()
        .map_or(Ok(200_000), |a| a.parse())
        .map_err(io::Error::other)?;
    let seed: u64 = args
        .next()
        .map_or(Ok(42), |a| a.parse())
        .map_err(io::Error::other)?;
    let mut out = BufWriter::new(io::stdout().lock());
    generate(lines, seed, &mut out)?;
    out.flush()
}

/// Writes `lines` log lines generated from `seed` to `out`.
pub fn generate(lines: u64, seed: u64, out: &mut impl Write) -> io::Result<()> {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    // 2026-11-01 00:00:00 onwards, a few lines per second.
    let (mut day, mut second) = (1u64, 0u64);
    for i in 0..lines {
        second += rng.below(3);
        if second >= 86_400 {
            second -= 86_400;
            day += 1;
        }
        let (month, mday) = if day <= 30 { (10, day) } else { (11, day - 30) };
        let stamp = format!(
            "{} {:>2} {:02}:{:02}:{:02}",
            MONTHS[month],
            mday,
            second / 3600,
            second / 60 % 60,
            second % 60
        );
        let pid = 1000 + rng.below(60_000);
        let tag = if i % 3 == 0 { "sshd" } else { "sshd-session" };
        let ip = address(&mut rng);
        let port = 1024 + rng.below(64_000);
        let user = rng.pick(USERS);
        let message = match rng.below(100) {
            0..=24 => format!("Failed password for root from {ip} port {port} ssh2"),
            25..=32 => {
                format!("Failed password for invalid user {user} from {ip} port {port} ssh2")
            }
            33..=42 => format!("Invalid user {user} from {ip} port {port}"),
            43..=44 => format!(
                "error: maximum authentication attempts exceeded for root from {ip} port {port} ssh2 [preauth]"
            ),
            45..=49 => format!(
                "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}  user=root"
            ),
            50..=57 => {
                format!("Connection closed by authenticating user root {ip} port {port} [preauth]")
            }
            58..=61 => format!("Received disconnect from {ip} port {port}:11: Bye Bye [preauth]"),
            62..=67 => format!(
                "Accepted publickey for alice from {ip} port {port} ssh2: ED25519 SHA256:n1VvB0xK3u9p8Q2mZ4rT6yW0aE5cD7fG9hJ1kL3mN5o"
            ),
            68..=71 => {
                "pam_unix(sshd:session): session opened for user alice(uid=1000) by alice(uid=0)"
                    .to_string()
            }
            72..=75 => format!("Disconnected from user alice {ip} port {port}"),
            76..=79 => "pam_unix(sshd:session): session closed for user alice".to_string(),
            80..=85 => {
                let line = format!(
                    "{stamp} web1 CRON[{pid}]: (root) CMD (command -v debian-sa1 > /dev/null && debian-sa1 1 1)"
                );
                writeln!(out, "{line}")?;
                continue;
            }
            86..=90 => {
                let line =
                    format!("{stamp} web1 systemd-logind[612]: New session {pid} of user alice.");
                writeln!(out, "{line}")?;
                continue;
            }
            91..=95 => {
                let line = format!(
                    "{stamp} web1 kernel: [{}.{:06}] IN=eth0 OUT= SRC={ip} DST=198.51.100.1 LEN=60 PROTO=TCP DPT=23",
                    pid, port
                );
                writeln!(out, "{line}")?;
                continue;
            }
            _ => {
                let line = format!("{stamp} web1 postfix/smtpd[{pid}]: connect from unknown[{ip}]");
                writeln!(out, "{line}")?;
                continue;
            }
        };
        writeln!(out, "{stamp} web1 {tag}[{pid}]: {message}")?;
    }
    Ok(())
}
