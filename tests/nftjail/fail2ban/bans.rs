//! fail2ban's active bans move into a running daemon: a database written by fail2ban's own
//! `Fail2BanDb` (`tests/fail2ban/make-db.py`), `nftjail import-fail2ban --db`, then the kernel
//! sets read back with `nft -j`.

use std::process::Command;
use std::time::Instant;

use serde_json::Value;

use super::{PYTHON, require_fail2ban};
use crate::daemon::Daemon;

const ACTIVE: usize = 5_000;

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

// Done means (issue 11): 5,000 active bans, remaining times within a few seconds (the time it
// takes is printed; benches/fail2ban-import.sh runs this test in release mode to measure it).
#[test]
#[ignore = "needs fail2ban"]
fn fail2ban_active_bans_move_into_the_running_daemon() {
    require_fail2ban();
    let d = Daemon::start(
        "f2b-import",
        "",
        "[sshd]\nenabled = true\nport = [\"ssh\"]\nbantime = \"1h\"\n",
    );
    let db = d.path("fail2ban.sqlite3");
    let now = unix_now();
    let made = Command::new(PYTHON)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fail2ban/make-db.py"
        ))
        .arg(&db)
        .arg(ACTIVE.to_string())
        .arg(now.to_string())
        .output()
        .expect("python3 runs");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let written: Vec<Value> = String::from_utf8_lossy(&made.stdout)
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(written.len(), ACTIVE + 6);

    let started = Instant::now();
    let out = d.cli(&["import-fail2ban", "--db", db.to_str().unwrap()]);
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    println!("import took {took:?}\n{stdout}{stderr}");
    // The three bans of a jail nftjail does not have are reported (exit 1), never guessed.
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "not imported: 3 ban(s) of jail apache-auth: no enabled jail named \"apache-auth\""
        ),
        "{stderr}"
    );
    assert!(
        stdout.contains(&format!("imported {} bans", ACTIVE + 1)),
        "{stdout}"
    );
    // The speed itself is measured by benches/fail2ban-import.sh (release build, quiet machine);
    // here only a bound no healthy run comes near (one transaction per ban would).
    assert!(took.as_secs_f64() < 20.0, "import took {took:?}");

    let v4 = d.elements("sshd_v4");
    let v6 = d.elements("sshd_v6");
    assert_eq!(
        v4.len() + v6.len(),
        ACTIVE + 1,
        "every active ban in the kernel"
    );
    let read_at = unix_now();
    let mut worst = 0i64;
    for ban in written.iter().filter(|b| b["jail"] == "sshd") {
        let ip = ban["ip"].as_str().unwrap();
        let addr: std::net::IpAddr = ip.parse().unwrap();
        let elements = if addr.is_ipv6() { &v6 } else { &v4 };
        let element = elements
            .iter()
            .find(|e| crate::daemon::element_text(e).parse().ok() == Some(addr));
        match ban["end"].as_i64() {
            None => {
                let element = element.unwrap_or_else(|| panic!("permanent {ip} missing"));
                assert!(
                    element["elem"]["expires"].is_null(),
                    "{ip} is permanent: {element}"
                );
            }
            Some(end) if end <= now => assert!(element.is_none(), "{ip} was over: never imported"),
            Some(end) => {
                let element = element.unwrap_or_else(|| panic!("{ip} missing"));
                let expires = element["elem"]["expires"].as_i64().expect("expires");
                let want = end - read_at;
                worst = worst.max((expires - want).abs());
            }
        }
    }
    println!("remaining times: at most {worst} s from fail2ban's");
    assert!(worst <= 3, "remaining times differ by up to {worst} s");

    // The ban count came along (escalation goes on from it).
    let banned = d.ok(&["banned", "--jail", "sshd", "--json"]);
    let reply: Value = serde_json::from_str(&banned).unwrap();
    let first = reply["bans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["target"] == "198.18.0.5")
        .expect("198.18.0.5 banned");
    assert_eq!(first["count"], 5);
    assert_eq!(first["origin"], "imported");

    // Importing again changes nothing and unbans nobody.
    let again = d.cli(&["import-fail2ban", "--db", db.to_str().unwrap()]);
    let again_out = String::from_utf8_lossy(&again.stdout);
    assert!(again_out.contains("imported 0 bans"), "{again_out}");
    assert_eq!(
        d.elements("sshd_v4").len() + d.elements("sshd_v6").len(),
        ACTIVE + 1
    );
}

// A jail running fail2ban's own sshd filter (a path with options) bans as a native one does.
#[test]
#[ignore = "needs fail2ban"]
fn a_jail_with_fail2bans_own_sshd_filter_bans_into_the_kernel() {
    require_fail2ban();
    let d = Daemon::start(
        "f2b-filter",
        "",
        "[sshd]\nenabled = true\nfilter = \"/etc/fail2ban/filter.d/sshd.conf[mode=aggressive]\"\n\
         logpath = \"{dir}/auth.log\"\nport = [\"ssh\"]\nmaxretry = 3\nbantime = \"1h\"\n",
    );
    let status = d.ok(&["status", "sshd", "--json"]);
    assert!(status.contains("\"mode\": \"aggressive\""), "{status}");
    let lines: Vec<String> = (1..=3)
        .map(|pid| {
            crate::daemon::syslog(
                "sshd",
                pid,
                "Failed password for invalid user bob from 192.0.2.9 port 4022 ssh2",
            )
        })
        .collect();
    d.append("auth.log", &lines);
    d.wait_until("the ban in the kernel", || {
        d.members("sshd_v4") == ["192.0.2.9"]
    });
    let (timeout, _) = d.timing("sshd_v4", "192.0.2.9").unwrap();
    assert_eq!(timeout, Some(3600));
}
