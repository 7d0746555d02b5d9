//! What operators rely on around the bans: hooks and metrics.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::daemon::{Daemon, SSHD_JAIL, ssh_failure};

#[test]
#[ignore = "needs root"]
fn on_ban_and_on_unban_hooks_run_with_the_ban_and_its_matched_lines() {
    let hook = r#"on_ban = ["/bin/sh", "-c", "printf '%s|%s|%s|%s\n%s\n' \"$NFTJAIL_ACTION\" \"$1\" \"$NFTJAIL_BANTIME\" \"$NFTJAIL_FAILURES\" \"$NFTJAIL_MATCHES\" >> {dir}/hook.out", "hook", "<ip>"]
on_unban = ["/bin/sh", "-c", "echo \"$NFTJAIL_ACTION|$1\" >> {dir}/hook.out", "hook", "<ip>"]
"#;
    let d = Daemon::start("ops-hooks", "", &format!("{SSHD_JAIL}{hook}"));
    // A user name an attacker chose: it must reach the hook as text, never as shell syntax.
    let evil = "x;touch {dir}/pwned".replace("{dir}", &d.dir.path().display().to_string());
    let lines: Vec<String> = (1..=3)
        .map(|n| {
            crate::daemon::syslog(
                "sshd",
                n,
                &format!("Failed password for invalid user {evil} from 192.0.2.30 port 22 ssh2"),
            )
        })
        .collect();
    d.append("auth.log", &lines);
    d.wait_until("the on_ban hook", || {
        std::fs::read_to_string(d.path("hook.out"))
            .is_ok_and(|t| t.contains("ban|192.0.2.30|3600|3"))
    });
    let out = std::fs::read_to_string(d.path("hook.out")).unwrap();
    assert_eq!(
        out.matches("Failed password for invalid user").count(),
        3,
        "the three matched lines:\n{out}"
    );
    assert!(
        !d.path("pwned").exists(),
        "no shell interpreted the user name"
    );
    d.ok(&["unban", "192.0.2.30"]);
    d.wait_until("the on_unban hook", || {
        std::fs::read_to_string(d.path("hook.out")).is_ok_and(|t| t.contains("unban|192.0.2.30"))
    });
}

#[test]
#[ignore = "needs root"]
fn the_metrics_endpoint_serves_prometheus_text() {
    let d = Daemon::start(
        "ops-metrics",
        "[metrics]\nlisten = \"127.0.0.1:9469\"\n",
        SSHD_JAIL,
    );
    d.append(
        "auth.log",
        &(1..=3)
            .map(|n| ssh_failure("192.0.2.31", n))
            .collect::<Vec<_>>(),
    );
    d.wait_until("the ban", || d.members("sshd_v4") == ["192.0.2.31"]);
    let scrape = |path: &str| {
        d.ns.enter(|| {
            let mut s = TcpStream::connect("127.0.0.1:9469").unwrap();
            s.write_all(
                format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .unwrap();
            let mut text = String::new();
            s.read_to_string(&mut text).unwrap();
            text
        })
    };
    // The snapshot is refreshed every second.
    d.wait_until("the ban in the metrics", || {
        scrape("/metrics").contains("nftjail_banned{jail=\"sshd\"} 1")
    });
    let text = scrape("/metrics");
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    for needle in [
        "nftjail_lines_read_total{jail=\"sshd\"} 3",
        "nftjail_failures_total{jail=\"sshd\"} 3",
        "nftjail_bans_total{jail=\"sshd\"} 1",
        "nftjail_source_lag_bytes{jail=\"sshd\",path=",
        "nftjail_netlink_batches_total ",
    ] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
    assert!(scrape("/").starts_with("HTTP/1.1 404"));
}

#[test]
#[ignore = "needs root"]
fn the_demo_shows_a_ban_and_cleans_up() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "nftjail demo needs root (this test is #[ignore]d by default)"
    );
    let out = std::process::Command::new(crate::daemon::BIN)
        .arg("demo")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "failures counted: 2",
        "192.0.2.66 in set sshd_v4, timeout 10m",
        "dropped: no answer within 1 s",
        "198.51.100.1:22  connected",
        "Banned IP list:   192.0.2.66",
        "Cleaned up",
    ] {
        assert!(stdout.contains(needle), "{needle:?} missing:\n{stdout}");
    }
    // Its namespaces are named after its pid, which the temp directory it printed names too.
    let dir = stdout
        .lines()
        .find_map(|l| {
            l.split_whitespace()
                .find(|w| w.starts_with("/tmp/nftjail-demo-"))
        })
        .expect("the demo names its log");
    let pid = dir
        .trim_start_matches("/tmp/nftjail-demo-")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let namespaces = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&namespaces.stdout).contains(&format!("nftjail-demo-{pid}-")),
        "namespaces left behind"
    );
    assert!(
        !std::path::Path::new(&format!("/tmp/nftjail-demo-{pid}")).exists(),
        "temporary files left behind"
    );
}

// Regression: out of file descriptors (EMFILE), the metrics endpoint retried `accept` at once,
// forever: the daemon spun a core for as long as connections waited in the backlog.
#[test]
#[ignore = "needs root"]
fn the_metrics_endpoint_backs_off_when_out_of_file_descriptors() {
    let d = Daemon::start(
        "ops-emfile",
        "[metrics]\nlisten = \"127.0.0.1:9469\"\n",
        SSHD_JAIL,
    );
    let pid = d.pid();
    let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    // Room for a few connections more, not for the MAX_CONNECTIONS (16) the endpoint would take.
    let limit = (open + 4).to_string();
    let out = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &pid.to_string(),
            &format!("--nofile={limit}:{limit}"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Connections that say nothing: the first take the last descriptors, the rest wait in the
    // backlog, so every accept fails with EMFILE.
    let idle: Vec<TcpStream> = d.ns.enter(|| {
        (0..40)
            .map(|_| TcpStream::connect("127.0.0.1:9469").unwrap())
            .collect()
    });
    let cpu_ticks = || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        // utime and stime, the 14th and 15th fields (11th and 12th after the command name).
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    };
    std::thread::sleep(Duration::from_millis(500));
    let before = cpu_ticks();
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_ticks() - before;
    // 100 ticks a second: spinning takes ~200 in these 2 s; backing off takes next to none.
    assert!(
        used < 40,
        "the daemon used {used} ticks of CPU in 2 s with accept failing\n{}",
        d.log()
    );
    assert!(
        d.log().contains("HTTP accept failed"),
        "accept did fail: {}",
        d.log()
    );
    // Once the descriptors are back, it serves again.
    drop(idle);
    d.ok(&["status"]);
}
