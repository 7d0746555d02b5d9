//! Every endpoint answers as the control socket does; every refusal has its status and changes
//! nothing.

use serde_json::json;

use super::{daemon, everything};
use crate::web::{Call, send, token};

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

    // The ban log: the same events as the socket's `log`, filtered by jail and sequence.
    let log = send(&d, Call::new("GET", "/api/v1/log?jail=manual")).json();
    let events = log["events"].as_array().unwrap().clone();
    let actions: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().into(),
                e["target"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        actions.contains(&("ban".into(), "2001:db8::1".into()))
            && actions.contains(&("unban".into(), "2001:db8::1".into()))
            && events.iter().all(|e| e["jail"] == "manual"),
        "{log}"
    );
    let last = log["last"].as_u64().unwrap();
    let after = send(&d, Call::new("GET", &format!("/api/v1/log?after={last}"))).json();
    assert_eq!(after["events"], json!([]), "{after}");
    let future = send(&d, Call::new("GET", "/api/v1/log?since=99999999999")).json();
    assert_eq!(future["events"], json!([]), "{future}");
    let bad = send(&d, Call::new("GET", "/api/v1/log?since=yesterday"));
    assert_eq!((bad.status, bad.code()), (400, "bad_request".into()));

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
            "a name rebound to loopback (DNS rebinding)",
            Call::new("GET", "/api/v1/bans").header("Host", "evil.example:9469"),
            421,
            "wrong_host",
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
