//! Tokens, caps and listeners: a read token, wrong tokens logged once a second, the request rate
//! and connection caps, a Unix socket listener, and nothing at all without `[http]`.

use std::io::Read;
use std::time::{Duration, Instant};

use serde_json::json;

use super::{daemon, jails};
use crate::daemon::Daemon;
use crate::web::{self, Call, send, token};

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
    assert_eq!(status(Call::new("GET", "/console-firewall.js")), 200);
    assert_eq!(status(Call::new("GET", "/api/v1/firewall/rules")), 401);
    assert_eq!(
        status(Call::new("GET", "/api/v1/firewall/rules").token(read)),
        200
    );
    assert_eq!(
        status(Call::new("POST", "/api/v1/firewall/disable").token(read)),
        401,
        "nor the firewall"
    );
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
    let d = daemon("http-caps", "requests_per_second = 1\nmax_connections = 2");
    let started = Instant::now();
    let answers: Vec<web::Answer> = (0..20)
        .map(|_| send(&d, Call::new("GET", "/api/v1/ping")))
        .collect();
    let seconds = started.elapsed().as_secs();
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    let served = statuses.iter().filter(|&&s| s == 200).count() as u64;
    assert_eq!(&statuses[..2], [200, 200], "a burst of twice the rate");
    assert!(
        served <= 2 + seconds + 1,
        "{served} served in {seconds} s at 1 a second: {statuses:?}"
    );
    let limited = answers
        .iter()
        .find(|a| a.status == 429)
        .expect("some requests over the rate");
    assert_eq!(limited.code(), "rate_limited");
    assert_eq!(limited.header("retry-after"), Some("1"));
    assert!(
        statuses.iter().all(|&s| s == 200 || s == 429),
        "{statuses:?}"
    );
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
        &jails(),
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
    let d = Daemon::start("http-off", "", &jails());
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
