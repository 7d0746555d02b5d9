//! fail2ban's own filters and installation, taken over: the corpus scoring, side by side with
//! `fail2ban-regex`, the configuration import against `fail2ban-client -d`, active bans from a
//! real fail2ban database into a running daemon, and bad filter files through `nftjail check`.
//!
//! These tests need Debian's `fail2ban` package (its filters in /etc/fail2ban, its annotated test
//! logs, `fail2ban-regex`, `fail2ban-client` and its Python modules): they are
//! `#[ignore = "needs fail2ban"]`, and when run without it they fail and say why.

mod bad_input;
mod bans;
mod corpus;
mod jails;
mod side_by_side;

use std::path::Path;
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_nftjail");
/// fail2ban's annotated test logs (Debian's `fail2ban` package).
pub const CORPUS: &str = "/usr/lib/python3/dist-packages/fail2ban/tests/files/logs";
pub const CONFIG_DIR: &str = "/etc/fail2ban";
/// The Python that has fail2ban's modules (Debian's, not a user's own).
pub const PYTHON: &str = "/usr/bin/python3";

/// Panics with the reason unless fail2ban's files and tools are here.
pub fn require_fail2ban() {
    let missing: Vec<&str> = [
        CORPUS,
        "/etc/fail2ban/filter.d",
        "/usr/bin/fail2ban-regex",
        PYTHON,
    ]
    .into_iter()
    .filter(|path| !Path::new(path).exists())
    .collect();
    assert!(
        missing.is_empty(),
        "fail2ban is not installed (missing {missing:?}): `apt-get install fail2ban` (.ci/run does)"
    );
}

/// `nftjail ARGS…` with `stdin`, in fail2ban's test time zone.
pub fn nftjail(args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Output {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("nftjail runs");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let output = child.wait_with_output().expect("nftjail output");
    writer.join().expect("writer");
    output
}
