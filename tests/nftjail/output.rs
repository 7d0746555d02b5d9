//! The command line's output when its reader goes away (`nftjail banned | head -3`).

use std::io::Write;
use std::process::{Command, Stdio};

use crate::daemon::{BIN, Daemon};

/// Runs `nftjail ARGS` with stdout a pipe whose reader is already closed; returns the exit code
/// and stderr.
fn into_closed_pipe(args: &[&str]) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// Regression: `nftjail test-filter … | head` ended with "cannot write to standard output:
// Broken pipe" and exit 1 (and the daemon commands panicked in println!).
#[test]
fn test_filter_into_a_closed_pipe_exits_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    let mut f = std::fs::File::create(&log).unwrap();
    for n in 0..20_000u32 {
        writeln!(
            f,
            "Nov 23 07:18:36 h sshd[1]: Failed password for root from 192.0.2.{} port 22 ssh2",
            n % 250
        )
        .unwrap();
    }
    drop(f);
    for json in [false, true] {
        let mut args = vec![
            "test-filter",
            "sshd",
            log.to_str().unwrap(),
            "--now",
            "2026-11-24T00:00:00Z",
        ];
        if json {
            args.push("--json");
        }
        let (code, stderr) = into_closed_pipe(&args);
        assert_eq!(code, Some(0), "json {json}: {stderr}");
        assert!(stderr.is_empty(), "json {json}: {stderr}");
    }
}

// Regression: `nftjail status | head -3` (and banned, status JAIL) panicked in println!
// ("failed printing to stdout: Broken pipe", exit 101).
#[test]
#[ignore = "needs root"]
fn daemon_commands_into_a_closed_pipe_exit_quietly() {
    let d = Daemon::start(
        "out-pipe",
        "",
        "[manual]\nenabled = true\nport = [\"all\"]\nbantime = \"1d\"\n",
    );
    let list: String = (0..5_000u32)
        .map(|n| format!("10.2.{}.{}\n", n >> 8, n & 255))
        .collect();
    std::fs::write(d.path("list.txt"), list).unwrap();
    d.ok(&[
        "ban",
        "manual",
        "--from-file",
        d.path("list.txt").to_str().unwrap(),
    ]);
    let socket = d.socket();
    let socket = socket.to_str().unwrap();
    for command in [
        &["status"][..],
        &["status", "--json"],
        &["status", "manual"],
        &["banned"],
        &["banned", "--json"],
    ] {
        let mut args = vec!["--socket", socket];
        args.extend_from_slice(command);
        let (code, stderr) = into_closed_pipe(&args);
        assert_eq!(code, Some(0), "{command:?}: {stderr}");
        assert!(stderr.is_empty(), "{command:?}: {stderr}");
    }
}
