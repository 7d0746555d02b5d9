//! Injection safety of every built-in filter, as a property: whatever text an attacker puts in
//! the fields it controls (user names, `sasl_username=`, HELO names, IMAP answers, URLs), a
//! failure is charged to the address the service saw, never to one written in those fields.
//!
//! Each template is a line with `{H}` (the real client) and `{U}` (an attacker's field). The
//! attacker's texts are random concatenations of pieces of the line itself with a decoy
//! address in place of the client (so they imitate the syntax that follows or precedes the
//! field), random bytes, and whole copies of the line's tail. A line may stop being a failure
//! (some filters refuse what they cannot read unambiguously); it must never name the decoy.
//! Each template is also checked with a plain user name, so a template that never matches
//! cannot pass.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use nftjail_core::filter::{FilterOptions, LocalZone, Matcher, Outcome, builtin};

const REAL: &str = "192.0.2.1";
const DECOY: &str = "203.0.113.66";
const DECOY6: &str = "2001:db8::66";

/// (filter, mode, template, characters the daemon never writes in that field).
const TEMPLATES: &[(&str, &str, &str, &str)] = &[
    (
        "sshd",
        "aggressive",
        "Nov 23 07:18:36 h sshd[{P}]: Failed password for invalid user {U} from {H} port 22 ssh2",
        "",
    ),
    (
        "sshd",
        "aggressive",
        "Nov 23 07:18:36 h sshd[{P}]: Failed password for {U} from {H} port 22 ssh2",
        "",
    ),
    (
        "sshd",
        "aggressive",
        "Nov 23 07:18:36 h sshd[{P}]: Failed publickey for invalid user {U} from {H} port 22 ssh2: ED25519 SHA256:Zm9v",
        "",
    ),
    (
        "sshd",
        "aggressive",
        "Nov 23 07:18:36 h sshd-session[{P}]: Invalid user {U} from {H} port 22",
        "",
    ),
    (
        "sshd",
        "aggressive",
        "Nov 23 07:18:36 h sshd[{P}]: User {U} from {H} not allowed because not listed in AllowUsers",
        "",
    ),
    (
        "sshd",
        "aggressive",
        "Nov 23 07:18:36 h sshd[{P}]: error: maximum authentication attempts exceeded for invalid user {U} from {H} port 22 ssh2 [preauth]",
        "",
    ),
    (
        "sshd",
        "aggressive",
        "Nov 23 07:18:36 h sshd[{P}]: error: PAM: Authentication failure for {U} from {H}",
        "",
    ),
    (
        "sshd",
        "aggressive",
        "Nov 23 07:18:36 h sshd[{P}]: Connection closed by invalid user {U} {H} port 22 [preauth]",
        "",
    ),
    (
        "sshd",
        "aggressive",
        "Nov 23 07:18:36 h sshd[{P}]: Disconnected from authenticating user {U} {H} port 22 [preauth]",
        "",
    ),
    (
        "sshd",
        "aggressive",
        "Nov 23 07:18:36 h sshd[{P}]: Bad protocol version identification '{U}' from {H} port 22",
        "",
    ),
    (
        "postfix",
        "aggressive",
        "Nov 23 07:18:36 mx postfix/smtpd[{P}]: warning: unknown[{H}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6, sasl_username={U}",
        "",
    ),
    (
        "postfix",
        "aggressive",
        "Nov 23 07:18:36 mx postfix/smtpd[{P}]: NOQUEUE: reject: RCPT from unknown[{H}]: 554 5.7.1 <{U}>: Relay access denied; from=<{U}> to=<x@example.net> proto=ESMTP helo=<{U}>",
        "",
    ),
    (
        "postfix",
        "aggressive",
        "Nov 23 07:18:36 mx postfix/smtpd[{P}]: improper command pipelining after CONNECT from unknown[{H}]: {U}",
        "",
    ),
    (
        "postfix-sasl",
        "normal",
        "Nov 23 07:18:36 mx postfix/submission/smtpd[{P}]: warning: unknown[{H}]: SASL PLAIN authentication failed: {U}, sasl_username={U}",
        "",
    ),
    (
        "dovecot",
        "aggressive",
        "Nov 23 07:18:36 mail dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<{U}>, method=PLAIN, rip={H}, lip=198.51.100.1, TLS, session=<r2Vb8pQ0uJLAAAAB>",
        "",
    ),
    // Dovecot refuses user names outside auth_username_chars before any passdb sees them.
    (
        "dovecot",
        "aggressive",
        "Nov 23 07:18:36 mail dovecot: auth: passwd-file({U},{H},<r2Vb8pQ0uJLAAAAB>): Password mismatch",
        " ,()<>:=[]'\"\t",
    ),
    (
        "exim",
        "aggressive",
        "2026-11-23 07:18:36 dovecot_login authenticator failed for (x) [{H}]: 535 Incorrect authentication data (set_id={U})",
        "",
    ),
    (
        "exim",
        "aggressive",
        "2026-11-23 07:18:36 [42] SMTP protocol error in \"{U}\" H=(x) [{H}]:60723 I=[198.51.100.1]:587 AUTH command used when not advertised",
        "",
    ),
    (
        "exim",
        "aggressive",
        "2026-11-23 07:18:36 [42] SMTP call from (x) [{H}]:3767 I=[198.51.100.1]:25 dropped: too many nonmail commands (last was \"{U}\")",
        "",
    ),
    (
        "exim-spam",
        "normal",
        "2026-11-23 07:18:36 [42] H=(x) [{H}]:52391 I=[198.51.100.1]:25 F=a@example.org rejected RCPT x@example.net: {U} dnsbl zen.spamhaus.org",
        "",
    ),
    (
        "proftpd",
        "normal",
        "Nov 23 07:18:36 ftp proftpd[{P}]: ftp.example.com (unknown[{H}]) - USER {U} (Login failed): Incorrect password",
        "",
    ),
    (
        "proftpd",
        "normal",
        "Nov 23 07:18:36 ftp proftpd[{P}]: ftp.example.com (unknown[{H}]) - USER {U}: no such user found from unknown [{H}] to 198.51.100.1:21",
        "",
    ),
    (
        "pure-ftpd",
        "normal",
        "Nov 23 07:18:36 ftp pure-ftpd: (?@{H}) [WARNING] Authentication failed for user [{U}]",
        "",
    ),
    (
        "vsftpd",
        "normal",
        "Mon Nov 23 07:18:36 2026 [pid {P}] [{U}] FAIL LOGIN: Client \"{H}\"",
        "",
    ),
    (
        "apache-auth",
        "aggressive",
        "[Mon Nov 23 07:18:36.1 2026] [auth_basic:error] [pid {P}] [client {H}:51380] AH01617: user {U}: authentication failure for \"/{U}\": Password Mismatch",
        "",
    ),
    (
        "nginx-http-auth",
        "aggressive",
        "2026/11/23 07:18:36 [error] {P}#{P}: *1 user \"{U}\": password mismatch, client: {H}, server: example.org, request: \"GET / HTTP/1.1\", host: \"example.org\"",
        "",
    ),
    // pam_unix writes `ruser=… rhost=…  user=…` unescaped: with both user fields free the line
    // is ambiguous (filters/pam-generic.toml). Services leave ruser empty, or (vsftpd) the
    // login name, which then has no spaces.
    (
        "pam-generic",
        "normal",
        "Nov 23 07:18:36 h login[{P}]: pam_unix(login:auth): authentication failure; logname= uid=0 euid=0 tty=pts/1 ruser= rhost={H}  user={U}",
        "",
    ),
    (
        "pam-generic",
        "normal",
        "Nov 23 07:18:36 h vsftpd: pam_unix(vsftpd:auth): authentication failure; logname= uid=0 euid=0 tty=ftp ruser={U} rhost={H}",
        " \t",
    ),
    (
        "roundcube-auth",
        "normal",
        "[23-Nov-2026 07:18:36 +0000]: <3z506z6r> IMAP Error: Login failed for {U} from {H}. AUTHENTICATE PLAIN: A0002 NO Login failed. in /usr/share/roundcube/x.php on line 211 (POST /?_task=login&_action=login)",
        "",
    ),
    (
        "roundcube-auth",
        "normal",
        "[23-Nov-2026 07:18:36 +0000]: <3z506z6r> IMAP Error: Login failed for {U} from {H}. AUTHENTICATE PLAIN: A0002 NO Login failed. user={U} in /usr/share/roundcube/x.php on line 211 (POST /?_task=login&_action=login)",
        "",
    ),
    (
        "roundcube-auth",
        "normal",
        "[23-Nov-2026 07:18:36 +0000]: <3z506z6r> Failed login for {U} from {H} in session 3z506z6rvddstv6k (error: 0)",
        "",
    ),
    (
        "sogo-auth",
        "normal",
        "Nov 23 07:18:36 sogod [{P}]: SOGoRootPage Login from '{H}' for user '{U}' might not have worked - password policy: 65535  grace: -1  expire: -1  bound: 0",
        "",
    ),
    (
        "webmin-auth",
        "normal",
        "Nov 23 07:18:36 h webmin[{P}]: Invalid login as {U} from {H}",
        "",
    ),
    (
        "directadmin",
        "normal",
        "2026:11:23-07:18:36: '{H}' 2 failed login attempts. Account '{U}'",
        "",
    ),
    (
        "panel",
        "normal",
        "[2026-11-23 07:18:36 -0500] info [cpaneld] {H} - {U} \"POST /login/?login_only=1 HTTP/1.1\" FAILED LOGIN cpaneld: user password incorrect",
        "",
    ),
    (
        "panel",
        "normal",
        "Nov 23 07:18:36 h webmin[{P}]: Invalid login as {U} from {H}",
        "",
    ),
];

/// xorshift64: deterministic, so a failure names the seed that reproduces it.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Pieces of `template` around `{U}`, with a decoy client: what an attacker would imitate.
fn pieces(template: &str) -> Vec<String> {
    let mut out = Vec::new();
    for decoy in [DECOY, DECOY6] {
        let line = template.replace("{H}", decoy).replace("{P}", "7");
        for part in line.split("{U}") {
            out.push(part.to_string());
            let mut start = 0;
            for (i, c) in part.char_indices() {
                if " ,;:()[]<>'\"=".contains(c) {
                    if i > start {
                        out.push(part[start..i].to_string());
                    }
                    out.push(c.to_string());
                    start = i + c.len_utf8();
                }
            }
            out.push(part[start..].to_string());
            // The line's tail after the field, from each space on: the strict tail a regex ends with.
            for (i, _) in part.match_indices(' ') {
                out.push(part[i..].to_string());
            }
        }
        out.push(decoy.to_string());
        out.push(format!(" from {decoy}"));
        out.push(format!("[{decoy}]"));
    }
    out.retain(|p| !p.is_empty());
    out
}

fn attacker_text(rng: &mut Rng, pieces: &[String], forbid: &str) -> String {
    let mut text = String::new();
    for _ in 0..rng.below(7) {
        if rng.below(5) == 0 {
            text.push(char::from(b' ' + rng.below(95) as u8));
        } else {
            text.push_str(&pieces[rng.below(pieces.len())]);
        }
    }
    text.retain(|c| !forbid.contains(c) && c != '\n');
    text
}

fn matcher(filter: &str, mode: &str) -> Matcher {
    let file = builtin::load(filter)
        .unwrap_or_else(|| panic!("no built-in filter {filter}"))
        .unwrap();
    let options = FilterOptions {
        mode: Some(mode.to_string()),
        timezone: "UTC".parse().unwrap(),
        ..FilterOptions::default()
    };
    Matcher::new(Arc::new(file.compile(&options).unwrap()), LocalZone::utc())
}

#[test]
fn no_attacker_text_makes_another_address_the_culprit() {
    let now: DateTime<Utc> = "2026-11-23T12:00:00Z".parse().unwrap();
    let real: std::net::IpAddr = REAL.parse().unwrap();
    let mut problems = Vec::new();
    let mut tried = 0;
    let mut charged = 0;
    for (index, (filter, mode, template, forbid)) in TEMPLATES.iter().enumerate() {
        let mut m = matcher(filter, mode);
        let line = |user: &str, pid: usize| {
            template
                .replace("{U}", user)
                .replace("{H}", REAL)
                .replace("{P}", &pid.to_string())
        };
        // A plain user name is a failure of the real client: the template is live.
        match m.feed_line(line("bob", 1).as_bytes(), now) {
            Outcome::Failure(f) if f.host == real => {}
            other => problems.push(format!(
                "{filter}: template never matches ({other:?}): {template}"
            )),
        }
        let pieces = pieces(template);
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (index as u64 + 1));
        for round in 0..1500 {
            let user = attacker_text(&mut rng, &pieces, forbid);
            // A fresh PID each time: no session state carries over between attempts.
            let text = line(&user, 100 + round);
            tried += 1;
            if let Outcome::Failure(f) = m.feed_line(text.as_bytes(), now) {
                charged += 1;
                if f.host != real {
                    problems.push(format!(
                        "{filter} ({mode}): {} charged for user {user:?}\n    {text}",
                        f.host
                    ));
                }
            }
        }
    }
    eprintln!("{tried} lines with attacker text, {charged} charged to the real client");
    problems.truncate(20);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_builtin_filter_has_an_injection_template() {
    for name in builtin::names() {
        assert!(
            TEMPLATES.iter().any(|(filter, ..)| *filter == name),
            "no injection template for {name}"
        );
    }
}
