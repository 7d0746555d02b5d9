//! The HTTP API against a running daemon in its own namespace: every endpoint, and every
//! refusal (token, size, address, jail, rate, connections) with its status and no change.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::daemon::{BIN, Daemon, SSHD_JAIL};
use crate::web::{self, Call, LISTEN, http_section, send, token};

const MANUAL: &str = "\n[manual]\nenabled = true\nport = [\"all\"]\nbantime = \"1d\"\n";

fn daemon(tag: &str, http_extra: &str) -> Daemon {
    let d = Daemon::start(
        tag,
        &http_section(http_extra),
        &format!("{SSHD_JAIL}{MANUAL}"),
    );
    web::wait_for_api(&d);
    d
}

/// The kernel's view and the daemon's: every set's members, and `banned --json`'s bans.
fn everything(d: &Daemon) -> (Vec<Vec<String>>, serde_json::Value) {
    let sets = [
        "sshd_v4",
        "sshd_v6",
        "sshd_net4",
        "manual_v4",
        "manual_v6",
        "manual_net4",
    ]
    .iter()
    .map(|s| d.members(s))
    .collect();
    let banned: serde_json::Value = serde_json::from_str(&d.ok(&["banned", "--json"])).unwrap();
    (sets, banned["bans"].clone())
}

#[test]
#[ignore = "needs root"]
fn every_endpoint_answers_as_the_control_socket_does() {
    let d = daemon("http-api", "");
    let token = token(&d);
    let ping = send(&d, Call::new("GET", "/api/v1/ping")).json();
    assert_eq!(ping["version"], env!("CARGO_PKG_VERSION"));

    // Reads mirror the socket's replies.
    let status = send(&d, Call::new("GET", "/api/v1/status"));
    assert_eq!(status.status, 200);
    assert_eq!(status.header("content-type"), Some("application/json"));
    let socket: serde_json::Value = serde_json::from_str(&d.ok(&["status", "--json"])).unwrap();
    assert_eq!(status.json()["jails"], socket["jails"]);
    let sshd = send(&d, Call::new("GET", "/api/v1/jails/sshd")).json();
    assert_eq!(sshd["jail"]["name"], "sshd");
    assert_eq!(sshd["jail"]["maxretry"], 3);

    // One address, then many with a length, then a prefix: each answered once in the kernel.
    let one = send(
        &d,
        Call::new("POST", "/api/v1/jails/manual/bans")
            .token(&token)
            .json(json!({"target": "192.0.2.7"})),
    );
    assert_eq!(
        (one.status, one.json()["banned"].clone()),
        (200, json!(1)),
        "{}",
        one.text()
    );
    assert_eq!(
        d.members("manual_v4"),
        ["192.0.2.7"],
        "in the kernel when answered"
    );
    let many = send(
        &d,
        Call::new("POST", "/api/v1/jails/manual/bans")
            .token(&token)
            .json(
                json!({"targets": ["198.51.100.1", "2001:db8::1", "203.0.113.0/24"], "for": "2h"}),
            ),
    );
    assert_eq!(many.json()["banned"], 3, "{}", many.text());
    let (timeout, _) = d.timing("manual_v4", "198.51.100.1").expect("banned");
    assert_eq!(timeout, Some(7200), "`for` is the ban's length");
    assert_eq!(d.members("manual_net4"), ["203.0.113.0/24"]);
    send(
        &d,
        Call::new("POST", "/api/v1/jails/sshd/bans")
            .token(&token)
            .json(json!({"target": "192.0.2.7"})),
    );

    let bans = send(&d, Call::new("GET", "/api/v1/bans")).json();
    let socket_bans: serde_json::Value =
        serde_json::from_str(&d.ok(&["banned", "--json"])).unwrap();
    assert_eq!(bans, socket_bans, "the same reply through both doors");
    assert_eq!(bans["bans"].as_array().unwrap().len(), 5);
    let sshd_bans = send(&d, Call::new("GET", "/api/v1/bans?jail=sshd")).json();
    assert_eq!(sshd_bans["bans"].as_array().unwrap().len(), 1);

    // Unbans: one jail, a prefix written with its slash (or %2F), every jail, a whole jail.
    let one = send(
        &d,
        Call::new("DELETE", "/api/v1/jails/manual/bans/198.51.100.1").token(&token),
    );
    assert_eq!(one.status, 200, "{}", one.text());
    assert_eq!(one.json()["unbanned"], json!([["manual", "198.51.100.1"]]));
    assert!(!d.members("manual_v4").contains(&"198.51.100.1".to_string()));
    let prefix = send(
        &d,
        Call::new("DELETE", "/api/v1/jails/manual/bans/203.0.113.0/24").token(&token),
    );
    assert_eq!(prefix.status, 200, "{}", prefix.text());
    assert!(d.members("manual_net4").is_empty());
    let everywhere = send(
        &d,
        Call::new("DELETE", "/api/v1/bans/192.0.2.7").token(&token),
    );
    assert_eq!(everywhere.json()["unbanned"].as_array().unwrap().len(), 2);
    assert!(
        d.members("sshd_v4").is_empty() && !d.members("manual_v4").contains(&"192.0.2.7".into())
    );
    let all = send(
        &d,
        Call::new("DELETE", "/api/v1/jails/manual/bans").token(&token),
    );
    assert_eq!(all.json()["unbanned"], json!([["manual", "2001:db8::1"]]));
    assert!(d.members("manual_v6").is_empty());

    // Reload: accepted, then a broken configuration refused with its diagnostics.
    let reload = send(&d, Call::new("POST", "/api/v1/reload").token(&token));
    assert_eq!(reload.status, 200, "{}", reload.text());
    std::fs::write(
        d.path("jail.d/zz-broken.toml"),
        "[sshd]\nmaxretry = \"many\"\n",
    )
    .unwrap();
    let refused = send(&d, Call::new("POST", "/api/v1/reload").token(&token));
    assert_eq!(
        (refused.status, refused.code()),
        (422, "invalid_config".into())
    );
    let diagnostics = refused.json()["diagnostics"].to_string();
    assert!(diagnostics.contains("zz-broken.toml:2:"), "{diagnostics}");

    // The chart's series and the metrics.
    let history = send(&d, Call::new("GET", "/api/v1/history")).json();
    assert_eq!(
        (history["ok"].clone(), history["bucket_seconds"].clone()),
        (json!(true), json!(300))
    );
    d.wait_until("the series has both jails", || {
        let h = send(&d, Call::new("GET", "/api/v1/history")).json();
        h["jails"].as_array().is_some_and(|j| j.len() == 2)
    });
    let metrics = send(&d, Call::new("GET", "/metrics"));
    assert_eq!(
        metrics.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(
        metrics.text().contains("nftjail_banned{jail=\"manual\"}"),
        "{}",
        metrics.text()
    );
}

#[test]
#[ignore = "needs root"]
fn refusals_answer_their_status_and_change_nothing() {
    let d = daemon("http-refuse", "");
    let token = token(&d);
    let ban = |call: Call<'_>| send(&d, call);
    let seed = ban(Call::new("POST", "/api/v1/jails/manual/bans")
        .token(&token)
        .json(json!({"target": "192.0.2.50"})));
    assert_eq!(seed.status, 200);
    let before = everything(&d);
    let body = json!({"target": "192.0.2.99"});
    let post = || Call::new("POST", "/api/v1/jails/manual/bans");
    let cases: Vec<(&str, Call<'_>, u16, &str)> = vec![
        ("no token", post().json(body.clone()), 401, "unauthorized"),
        (
            "a wrong token",
            post().token("0123456789abcdef0123").json(body.clone()),
            401,
            "unauthorized",
        ),
        // CSRF: a cookie is never a credential.
        (
            "a cookie only",
            post()
                .header("Cookie", &format!("token={token}"))
                .json(body.clone()),
            401,
            "unauthorized",
        ),
        (
            "a CORS preflight",
            Call::new("OPTIONS", "/api/v1/jails/manual/bans")
                .header("Origin", "http://evil.example")
                .header("Access-Control-Request-Method", "POST"),
            401,
            "unauthorized",
        ),
        (
            "a form post",
            post()
                .token(&token)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .raw_body(b"target=192.0.2.99".to_vec()),
            415,
            "unsupported_media_type",
        ),
        (
            "an oversized body",
            post()
                .token(&token)
                .header("Content-Type", "application/json")
                .declared(2_000_000),
            413,
            "body_too_large",
        ),
        (
            "an invalid address",
            post()
                .token(&token)
                .json(json!({"targets": ["192.0.2.99", "192.0.2.300"]})),
            400,
            "invalid_address",
        ),
        (
            "an invalid duration",
            post()
                .token(&token)
                .json(json!({"target": "192.0.2.99", "for": "soon"})),
            400,
            "invalid_duration",
        ),
        (
            "malformed JSON",
            post()
                .token(&token)
                .header("Content-Type", "application/json")
                .raw_body(b"{\"target\":".to_vec()),
            400,
            "bad_request",
        ),
        (
            "an unknown field",
            post()
                .token(&token)
                .json(json!({"target": "192.0.2.99", "forever": true})),
            400,
            "bad_request",
        ),
        (
            "an unknown jail",
            Call::new("POST", "/api/v1/jails/nosuch/bans")
                .token(&token)
                .json(body.clone()),
            404,
            "unknown_jail",
        ),
        (
            "an ignored address",
            post().token(&token).json(json!({"target": "127.0.0.1"})),
            409,
            "refused",
        ),
        (
            "unknown jail, read",
            Call::new("GET", "/api/v1/jails/nosuch"),
            404,
            "unknown_jail",
        ),
        (
            "unknown jail, list",
            Call::new("GET", "/api/v1/bans?jail=nosuch"),
            404,
            "unknown_jail",
        ),
        (
            "unknown jail, unban",
            Call::new("DELETE", "/api/v1/jails/nosuch/bans/192.0.2.50").token(&token),
            404,
            "unknown_jail",
        ),
        (
            "not banned",
            Call::new("DELETE", "/api/v1/jails/manual/bans/192.0.2.51").token(&token),
            404,
            "not_banned",
        ),
        (
            "unban of garbage",
            Call::new("DELETE", "/api/v1/bans/not-an-ip").token(&token),
            400,
            "invalid_address",
        ),
        (
            "unban without a token",
            Call::new("DELETE", "/api/v1/bans/192.0.2.50"),
            401,
            "unauthorized",
        ),
        (
            "reload without a token",
            Call::new("POST", "/api/v1/reload"),
            401,
            "unauthorized",
        ),
        (
            "an unknown query",
            Call::new("GET", "/api/v1/bans?jial=manual"),
            400,
            "bad_request",
        ),
        (
            "an unknown path",
            Call::new("GET", "/api/v2/status"),
            404,
            "not_found",
        ),
        (
            "a wrong method",
            Call::new("PUT", "/api/v1/status").token(&token),
            405,
            "method_not_allowed",
        ),
    ];
    for (what, call, status, code) in cases {
        let answer = send(&d, call);
        assert_eq!(
            (answer.status, answer.code()),
            (status, code.to_string()),
            "{what}: {}",
            answer.text()
        );
        assert!(
            answer.header("access-control-allow-origin").is_none(),
            "{what}: no CORS"
        );
        if status == 401 {
            assert_eq!(
                answer.header("www-authenticate"),
                Some("Bearer realm=\"nftjail\"")
            );
        }
    }
    let invalid = send(
        &d,
        post()
            .token(&token)
            .json(json!({"targets": ["192.0.2.99", "192.0.2.300"]})),
    )
    .json();
    assert_eq!(invalid["rejected"][0]["text"], "192.0.2.300");
    assert_eq!(
        everything(&d),
        before,
        "nothing changed in the kernel or the state"
    );
    // The daemon is still well.
    assert_eq!(send(&d, Call::new("GET", "/api/v1/ping")).status, 200);
}

#[test]
#[ignore = "needs root"]
fn a_read_token_guards_reads_and_wrong_tokens_are_logged_once_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let read_file = dir.path().join("read-token");
    std::fs::write(&read_file, "read-only-token-0123456789\n").unwrap();
    let d = daemon(
        "http-read",
        &format!("read_token_file = \"{}\"", read_file.display()),
    );
    let admin = token(&d);
    let read = "read-only-token-0123456789";
    let status = |call: Call<'_>| send(&d, call).status;
    assert_eq!(status(Call::new("GET", "/api/v1/status")), 401);
    assert_eq!(status(Call::new("GET", "/metrics")), 401);
    assert_eq!(status(Call::new("GET", "/api/v1/status").token(read)), 200);
    assert_eq!(status(Call::new("GET", "/metrics").token(read)), 200);
    assert_eq!(status(Call::new("GET", "/api/v1/bans").token(&admin)), 200);
    assert_eq!(status(Call::new("GET", "/")), 200, "the page holds no data");
    assert_eq!(
        status(
            Call::new("POST", "/api/v1/jails/manual/bans")
                .token(read)
                .json(json!({"target": "192.0.2.8"}))
        ),
        401,
        "the read token changes nothing"
    );
    assert!(d.members("manual_v4").is_empty());

    let logged = |d: &Daemon| d.log().matches("wrong token refused").count();
    // The read token offered for a ban above was a wrong token, logged: let its second pass.
    std::thread::sleep(Duration::from_millis(1100));
    let already = logged(&d);
    let started = Instant::now();
    for _ in 0..40 {
        assert_eq!(
            status(Call::new("GET", "/api/v1/status").token("guess-guess-guess")),
            401
        );
    }
    let seconds = started.elapsed().as_secs();
    std::thread::sleep(Duration::from_millis(300));
    let lines = logged(&d) - already;
    assert!(
        lines >= 1 && lines as u64 <= seconds + 1,
        "{lines} log lines for 40 wrong tokens in {seconds} s\n{}",
        d.log()
    );
    assert!(
        !d.log().contains("guess-guess-guess"),
        "a token is never logged"
    );
}

#[test]
#[ignore = "needs root"]
fn the_request_rate_and_the_connections_are_capped() {
    let d = daemon("http-caps", "requests_per_second = 5\nmax_connections = 2");
    let statuses: Vec<u16> = (0..30)
        .map(|_| send(&d, Call::new("GET", "/api/v1/ping")).status)
        .collect();
    let limited = statuses.iter().filter(|&&s| s == 429).count();
    assert!(
        statuses[..10].iter().all(|&s| s == 200),
        "a burst of twice the rate: {statuses:?}"
    );
    assert!(limited >= 10, "{statuses:?}");
    let answer = send(&d, Call::new("GET", "/api/v1/ping"));
    if answer.status == 429 {
        assert_eq!(answer.header("retry-after"), Some("1"));
        assert_eq!(answer.code(), "rate_limited");
    }
    // Two idle connections take both slots; a third is turned away at once.
    let _a = web::connect(&d);
    let _b = web::connect(&d);
    std::thread::sleep(Duration::from_millis(100));
    let mut third = web::connect(&d);
    third
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut raw = Vec::new();
    third.read_to_end(&mut raw).expect("answered at once");
    let busy = web::parse(&raw);
    assert_eq!((busy.status, busy.code()), (503, "busy".to_string()));
}

#[test]
#[ignore = "needs root"]
fn a_unix_socket_listener_serves_the_same_api() {
    let d = Daemon::start(
        "http-unix",
        "[http]\nlisten = \"{dir}/http.sock\"\n",
        &format!("{SSHD_JAIL}{MANUAL}"),
    );
    let socket = d.path("http.sock");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&socket).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o660);
    let token = token(&d);
    let post =
        || Call::new("POST", "/api/v1/jails/manual/bans").json(json!({"target": "192.0.2.9"}));
    assert_eq!(
        web::send_unix(&socket, post()).status,
        401,
        "a token even on the socket"
    );
    assert_eq!(web::send_unix(&socket, post().token(&token)).status, 200);
    assert_eq!(d.members("manual_v4"), ["192.0.2.9"]);
    // The CLI prints the token the daemon made; the console's address needs TCP.
    let printed = d.ok(&[
        "http-token",
        "--config",
        d.path("nftjail.toml").to_str().unwrap(),
    ]);
    assert_eq!(printed.trim(), token);
    let url = d.cli(&[
        "http-token",
        "--url",
        "--config",
        d.path("nftjail.toml").to_str().unwrap(),
    ]);
    assert_eq!(
        url.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&url.stderr)
    );
}

#[test]
#[ignore = "needs root"]
fn without_http_nothing_listens_and_no_token_is_made() {
    let d = Daemon::start("http-off", "", &format!("{SSHD_JAIL}{MANUAL}"));
    let listening = d.ns.run("ss", &["-Hltn"]);
    assert!(listening.trim().is_empty(), "{listening}");
    assert!(!d.path("state/http-token").exists());
    let out = d.cli(&[
        "http-token",
        "--config",
        d.path("nftjail.toml").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("[http] listen"));
}

#[test]
#[ignore = "needs root and promtool (Debian's prometheus)"]
fn metrics_pass_promtool_and_keep_their_names_on_both_listeners() {
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
        &format!("{SSHD_JAIL}{MANUAL}"),
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
