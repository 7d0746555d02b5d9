//! Writes realistic sshd, postfix, dovecot and exim logs (200,000 lines each by default) for
//! the fail2ban filter benchmark (`benches/fail2ban-filters.sh`) and the side-by-side test with
//! fail2ban-regex (`tests/nftjail/fail2ban/side_by_side.rs`, which includes this file). The lines
//! are the usual mix of failures, successes and noise, written from what the daemons print, not
//! from the filters' regexes.
//!
//! Usage: `cargo run --release --example fail2ban_logs -- DIR [LINES]`

use std::fmt::Write as _;
use std::io::Write as _;

struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
    fn address(&mut self) -> String {
        let value = self.next();
        if value.is_multiple_of(11) {
            format!("2001:db8:{:x}::{:x}", value % 97, (value >> 8) % 4096)
        } else {
            format!(
                "{}.{}.{}.{}",
                1 + value % 223,
                (value >> 8) % 256,
                (value >> 16) % 256,
                1 + (value >> 24) % 254
            )
        }
    }
}

/// A line generator: random source, second, process id.
type Generator = fn(&mut Random, u64, u64) -> String;

const USERS: [&str; 8] = [
    "root", "admin", "test", "oracle", "ubuntu", "postgres", "git", "user1",
];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn stamp(second: u64) -> String {
    let day = 1 + (second / 86_400) % 28;
    let month = MONTHS[((second / (86_400 * 28)) % 12) as usize];
    format!(
        "{month} {day:>2} {:02}:{:02}:{:02}",
        (second / 3600) % 24,
        (second / 60) % 60,
        second % 60
    )
}

fn sshd(random: &mut Random, second: u64, pid: u64) -> String {
    let ip = random.address();
    let user = random.pick(&USERS);
    let port = 1024 + random.next() % 60000;
    let body = match random.next() % 10 {
        0 => format!("Invalid user {user} from {ip} port {port}"),
        1 => format!("Failed password for invalid user {user} from {ip} port {port} ssh2"),
        2 => format!("Failed password for {user} from {ip} port {port} ssh2"),
        3 => format!("Connection closed by authenticating user {user} {ip} port {port} [preauth]"),
        4 => format!("Accepted publickey for {user} from {ip} port {port} ssh2: RSA SHA256:abc"),
        5 => format!("pam_unix(sshd:session): session opened for user {user}(uid=0) by (uid=0)"),
        6 => format!("Disconnected from invalid user {user} {ip} port {port} [preauth]"),
        7 => format!("Received disconnect from {ip} port {port}:11: Bye Bye [preauth]"),
        8 => format!(
            "error: maximum authentication attempts exceeded for {user} from {ip} port {port} ssh2 [preauth]"
        ),
        _ => format!("Connection from {ip} port {port} on 10.0.0.1 port 22"),
    };
    format!("{} mail sshd[{pid}]: {body}", stamp(second))
}

fn postfix(random: &mut Random, second: u64, pid: u64) -> String {
    let ip = random.address();
    let body = match random.next() % 8 {
        0 => format!(
            "postfix/smtpd[{pid}]: NOQUEUE: reject: RCPT from unknown[{ip}]: 554 5.7.1 <spam@example.com>: Relay access denied; from=<a@b.c> to=<spam@example.com> proto=ESMTP helo=<x>"
        ),
        1 => format!(
            "postfix/smtpd[{pid}]: warning: unknown[{ip}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6"
        ),
        2 => format!("postfix/smtpd[{pid}]: connect from unknown[{ip}]"),
        3 => format!(
            "postfix/smtpd[{pid}]: disconnect from unknown[{ip}] ehlo=1 auth=0/1 quit=1 commands=2/3"
        ),
        4 => format!(
            "postfix/smtpd[{pid}]: NOQUEUE: reject: RCPT from unknown[{ip}]: 450 4.7.1 Client host rejected: cannot find your hostname, [{ip}]; from=<a@b.c> to=<x@example.com> proto=ESMTP helo=<y>"
        ),
        5 => format!("postfix/smtpd[{pid}]: lost connection after AUTH from unknown[{ip}]"),
        6 => format!(
            "postfix/qmgr[{pid}]: 4F2C81E0: from=<a@example.com>, size=1024, nrcpt=1 (queue active)"
        ),
        _ => format!(
            "postfix/smtpd[{pid}]: improper command pipelining after CONNECT from unknown[{ip}]: \\r\\n"
        ),
    };
    format!("{} mail {body}", stamp(second))
}

fn dovecot(random: &mut Random, second: u64, pid: u64) -> String {
    let ip = random.address();
    let user = random.pick(&USERS);
    let body = match random.next() % 6 {
        0 => format!(
            "dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<{user}>, method=PLAIN, rip={ip}, lip=10.0.0.1, TLS, session=<abc>"
        ),
        1 => format!(
            "dovecot: auth: pam_unix(dovecot:auth): authentication failure; logname= uid=0 euid=0 tty=dovecot ruser={user} rhost={ip}"
        ),
        2 => format!(
            "dovecot: imap-login: Login: user=<{user}>, method=PLAIN, rip={ip}, lip=10.0.0.1, mpid={pid}, TLS"
        ),
        3 => format!(
            "dovecot: pop3-login: Aborted login (auth failed, 2 attempts in 10 secs): user=<{user}>, method=PLAIN, rip={ip}, lip=10.0.0.1, session=<x>"
        ),
        4 => format!("dovecot: imap({user}): Logged out in=10 out=200"),
        _ => format!("dovecot: auth-worker({pid}): pam({user},{ip}): unknown user"),
    };
    format!("{} mail {body}", stamp(second))
}

fn exim(random: &mut Random, second: u64, _pid: u64) -> String {
    let ip = random.address();
    let user = random.pick(&USERS);
    let day = 1 + (second / 86_400) % 28;
    let time = format!(
        "2026-11-{day:02} {:02}:{:02}:{:02}",
        (second / 3600) % 24,
        (second / 60) % 60,
        second % 60
    );
    let body = match random.next() % 6 {
        0 => format!(
            "login authenticator failed for (User) [{ip}]: 535 Incorrect authentication data (set_id={user})"
        ),
        1 => format!(
            "H=({user}.example) [{ip}] F=<a@b.c> rejected RCPT <x@example.com>: relay not permitted"
        ),
        2 => format!(
            "SMTP protocol synchronization error (input sent without waiting for greeting): rejected connection from H=[{ip}] input=\"GET / HTTP/1.1\""
        ),
        3 => format!("1kXyZ-000abc-Q0 <= a@example.com H=mail.example [{ip}] P=esmtps S=1234"),
        4 => {
            format!("SMTP call from [{ip}] dropped: too many nonmail commands (last was \"RSET\")")
        }
        _ => format!("no host name found for IP address {ip}"),
    };
    format!("{time} {body}")
}

/// Writes `DIR/{sshd,postfix,dovecot,exim}.log` of `lines` lines each; returns their paths.
pub fn write_logs(dir: &std::path::Path, lines: u64) -> Vec<std::path::PathBuf> {
    std::fs::create_dir_all(dir).expect("create output directory");
    let generators: [(&str, Generator); 4] = [
        ("sshd", sshd),
        ("postfix", postfix),
        ("dovecot", dovecot),
        ("exim", exim),
    ];
    let mut paths = Vec::new();
    for (index, (name, generator)) in generators.iter().enumerate() {
        let mut random = Random(0x2545_f491_4f6c_dd1d + index as u64);
        let mut text = String::with_capacity(lines as usize * 120);
        for number in 0..lines {
            let pid = 1000 + random.next() % 50_000;
            let _ = writeln!(
                text,
                "{}",
                generator(&mut random, 30_000_000 + number * 3, pid)
            );
        }
        let path = dir.join(format!("{name}.log"));
        std::fs::File::create(&path)
            .and_then(|mut file| file.write_all(text.as_bytes()))
            .expect("write log");
        paths.push(path);
    }
    paths
}

#[allow(dead_code)]
fn main() {
    let mut arguments = std::env::args().skip(1);
    let dir = arguments
        .next()
        .unwrap_or_else(|| "/tmp/nftjail-fail2ban-bench".to_string());
    let lines: u64 = arguments
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200_000);
    for path in write_logs(std::path::Path::new(&dir), lines) {
        println!("{}: {lines} lines", path.display());
    }
}
