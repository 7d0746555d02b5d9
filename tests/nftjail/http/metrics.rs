//! `/metrics`: what promtool reads, under the names dashboards know, on `[http]` and on the
//! older `[metrics] listen`.

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use super::{daemon, jails};
use crate::daemon::{BIN, Daemon};
use crate::web::{self, Call, LISTEN, http_section, send};

#[test]
#[ignore = "needs root and promtool (Debian's prometheus)"]
fn metrics_pass_promtool_and_keep_their_names() {
    let d = daemon("http-metrics", "");
    d.ok(&["ban", "manual", "192.0.2.10"]);
    d.append("auth.log", &["a line that is no failure".to_string()]);
    let scrape = || send(&d, Call::new("GET", "/metrics")).text();
    d.wait_until("the lag of auth.log is measured", || {
        scrape().contains("nftjail_source_lag_bytes{jail=\"sshd\",path=")
    });
    let text = scrape();
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (apt-get install prometheus)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let families: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .collect();
    assert_eq!(
        families,
        [
            "nftjail_lines_read_total counter",
            "nftjail_lines_skipped_total counter",
            "nftjail_failures_total counter",
            "nftjail_bans_total counter",
            "nftjail_unbans_total counter",
            "nftjail_banned gauge",
            "nftjail_tracked_addresses gauge",
            "nftjail_evicted_addresses_total counter",
            "nftjail_netlink_batches_total counter",
            "nftjail_netlink_changes_total counter",
            "nftjail_netlink_errors_total counter",
            "nftjail_last_batch_seconds gauge",
            "nftjail_source_lag_bytes gauge",
            "nftjail_build_info gauge",
        ],
        "the names dashboards know"
    );
    assert!(text.contains("nftjail_banned{jail=\"manual\"} 1"), "{text}");
}

#[test]
#[ignore = "needs root"]
fn the_older_metrics_listen_keeps_working_beside_http() {
    let d = Daemon::start(
        "http-legacy",
        &format!(
            "[metrics]\nlisten = \"127.0.0.1:9470\"\n{}",
            http_section("")
        ),
        &jails(),
    );
    let scrape = d.ns.enter(|| {
        let mut s = std::net::TcpStream::connect("127.0.0.1:9470").unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        web::parse(&raw)
    });
    assert_eq!(scrape.status, 200);
    assert!(scrape.text().contains("# TYPE nftjail_bans_total counter"));
    let api = d.ns.enter(|| {
        let mut s = std::net::TcpStream::connect("127.0.0.1:9470").unwrap();
        s.write_all(b"GET /api/v1/status HTTP/1.0\r\n\r\n").unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        web::parse(&raw)
    });
    assert_eq!(api.status, 404, "[metrics] serves /metrics only");
    // Both on one address is refused by `nftjail check`, pointing at [http].
    std::fs::write(
        d.path("nftjail.toml"),
        format!("[metrics]\nlisten = \"{LISTEN}\"\n{}", http_section("")),
    )
    .unwrap();
    let check = Command::new(BIN)
        .args(["check", "--config"])
        .arg(d.path("nftjail.toml"))
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(
        stderr.contains("nftjail.toml:2:") && stderr.contains("[http] serves /metrics too"),
        "{stderr}"
    );
}
