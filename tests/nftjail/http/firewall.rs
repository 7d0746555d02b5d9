//! The firewall's endpoints: each answers as its control request does and lands in the kernel;
//! each refusal has its status and code and changes nothing (the kernel's table, the rules, the
//! forwards, the switch); an enable over HTTP keeps the admin ports open.

use serde_json::{Value, json};

use super::jails;
use crate::daemon::Daemon;
use crate::firewall::{PROTECTED_SSH, Reach, client_of, listen, reach, reach_open};
use crate::web::{self, Call, http_section, send, token};

/// A rule written in a file, not protected: the API cannot delete it either.
const WEB_RULE: &str =
    "[[rule]]\nprotocol = \"tcp\"\nport = 80\naction = \"accept\"\ncomment = \"web\"\n";

/// A daemon with `[http]`, `[firewall]` (plus `firewall`) and `firewall.d` files, its API up.
fn start(tag: &str, firewall: &str, drop_ins: &[(&str, &str)]) -> Daemon {
    let main = format!("{}[firewall]\n{firewall}", http_section(""));
    let mut d = Daemon::create(tag, &main, &jails());
    std::fs::create_dir_all(d.path("firewall.d")).unwrap();
    for (name, text) in drop_ins {
        std::fs::write(d.path("firewall.d").join(name), text).unwrap();
    }
    d.spawn();
    web::wait_for_api(&d);
    d
}

/// The CLI's JSON for `args`.
fn cli_json(d: &Daemon, args: &[&str]) -> Value {
    serde_json::from_str(&d.ok(args)).unwrap()
}

/// The firewall as the daemon and the kernel hold it.
fn firewall_state(d: &Daemon) -> (Value, Value, Value, String) {
    let mut status = cli_json(d, &["firewall", "status", "--json"])["firewall"].clone();
    status["ip_forward"] = Value::Null;
    (
        status,
        cli_json(d, &["rule", "list", "--json"]),
        cli_json(d, &["forward", "list", "--json"]),
        d.ns.nft_text("nftjail"),
    )
}

#[test]
#[ignore = "needs root"]
fn every_firewall_endpoint_answers_as_the_control_socket_does() {
    let d = start(
        "http-fw",
        "enabled = false\ndefault_input = \"drop\"\n",
        &[("10-ssh.toml", PROTECTED_SSH), ("20-web.toml", WEB_RULE)],
    );
    let token = token(&d);
    let post = |path: &'static str| Call::new("POST", path).token(&token);

    let status = send(&d, Call::new("GET", "/api/v1/firewall"));
    assert_eq!(status.status, 200, "{}", status.text());
    assert_eq!(
        status.json()["firewall"],
        cli_json(&d, &["firewall", "status", "--json"])["firewall"]
    );
    assert_eq!(status.json()["firewall"]["enabled"], false);

    // On with a confirmation window, then confirmed: in the kernel when answered.
    let on = send(
        &d,
        post("/api/v1/firewall/enable").json(json!({"confirm_within": "60s"})),
    );
    assert_eq!(on.status, 200, "{}", on.text());
    let rollback_in = on.json()["firewall"]["pending"]["rollback_in"].as_u64();
    assert!(rollback_in.is_some_and(|s| s <= 60), "{}", on.text());
    assert!(d.ns.nft_text("nftjail").contains("policy drop;"));
    let kept = send(&d, post("/api/v1/firewall/confirm"));
    assert_eq!(kept.status, 200, "{}", kept.text());
    assert_eq!(
        (
            kept.json()["firewall"]["pending"].clone(),
            kept.json()["firewall"]["enabled_by"].clone()
        ),
        (Value::Null, json!("api"))
    );

    // A rule: the port as a number, read back through both doors and from the kernel.
    let added = send(
        &d,
        post("/api/v1/firewall/rules").json(json!({"protocol": "tcp", "port": 8080,
            "source": "192.0.2.2", "action": "accept", "comment": "panel"})),
    );
    assert_eq!(added.status, 200, "{}", added.text());
    let rule = added.json()["id"].as_u64().expect("the new rule's id");
    assert_eq!(rule, 3, "after the two file rules");
    assert!(
        d.ns.nft_text("nftjail")
            .contains(&format!("ip saddr 192.0.2.2 tcp dport 8080 counter packets 0 bytes 0 accept comment \"rule {rule}: panel\"")),
        "{}",
        d.ns.nft_text("nftjail")
    );
    let listed = send(&d, Call::new("GET", "/api/v1/firewall/rules"));
    assert_eq!(listed.status, 200);
    assert_eq!(
        listed.json()["rules"],
        cli_json(&d, &["rule", "list", "--json"])["rules"]
    );
    assert_eq!(
        listed.json()["rules"][2],
        json!({"id": rule, "chain": "input", "protocol": "tcp", "port": "8080",
            "source": "192.0.2.2", "action": "accept", "comment": "panel",
            "protected": false, "origin": "api"})
    );

    // A forward, then both deleted.
    let forwarded = send(
        &d,
        post("/api/v1/firewall/forwards").json(
            json!({"protocol": "tcp", "port": "2525", "to": "10.0.0.2:25", "comment": "mail"}),
        ),
    );
    assert_eq!(forwarded.status, 200, "{}", forwarded.text());
    let forward = forwarded.json()["id"].as_u64().unwrap();
    let comment = format!("comment \"forward {forward}: mail\"");
    assert!(d.ns.nft_text("nftjail").contains(&comment));
    let forwards = send(&d, Call::new("GET", "/api/v1/firewall/forwards")).json();
    assert_eq!(
        forwards["forwards"],
        cli_json(&d, &["forward", "list", "--json"])["forwards"]
    );
    assert_eq!(forwards["forwards"][0]["to"], "10.0.0.2:25");
    let gone = send(
        &d,
        Call::new("DELETE", &format!("/api/v1/firewall/forwards/{forward}")).token(&token),
    );
    assert_eq!(
        (gone.status, gone.json()["id"].clone()),
        (200, json!(forward))
    );
    assert!(!d.ns.nft_text("nftjail").contains(&comment));
    let gone = send(
        &d,
        Call::new("DELETE", &format!("/api/v1/firewall/rules/{rule}")).token(&token),
    );
    assert_eq!(gone.status, 200, "{}", gone.text());
    assert!(!d.ns.nft_text("nftjail").contains("panel"));
    assert_eq!(
        cli_json(&d, &["rule", "list", "--json"])["rules"][2],
        Value::Null
    );

    // Off, then on again without a body.
    let off = send(&d, post("/api/v1/firewall/disable"));
    assert_eq!(
        (off.status, off.json()["firewall"]["enabled"].clone()),
        (200, json!(false))
    );
    assert!(!d.ns.nft_text("nftjail").contains("chain firewall_input"));
    let on = send(&d, post("/api/v1/firewall/enable"));
    assert_eq!(
        (on.status, on.json()["firewall"]["enabled"].clone()),
        (200, json!(true)),
        "{}",
        on.text()
    );
    assert_eq!(on.json()["firewall"]["pending"], Value::Null);
}

#[test]
#[ignore = "needs root"]
fn firewall_refusals_answer_their_code_and_change_nothing() {
    let d = start(
        "http-fw-refuse",
        "enabled = true\ndefault_input = \"drop\"\n",
        &[("10-ssh.toml", PROTECTED_SSH), ("20-web.toml", WEB_RULE)],
    );
    let token = token(&d);
    let seed = |path: &'static str, body: Value| {
        let answer = send(&d, Call::new("POST", path).token(&token).json(body));
        assert_eq!(answer.status, 200, "{}", answer.text());
        answer.json()["id"].as_u64().unwrap()
    };
    let rule = seed(
        "/api/v1/firewall/rules",
        json!({"protocol": "tcp", "port": 8080, "action": "accept"}),
    );
    let forward = seed(
        "/api/v1/firewall/forwards",
        json!({"protocol": "tcp", "port": 2525, "to": "10.0.0.2:25"}),
    );
    let before = firewall_state(&d);
    let rule_path = |id: u64| format!("/api/v1/firewall/rules/{id}");
    let forward_path = |id: u64| format!("/api/v1/firewall/forwards/{id}");
    let (protected_path, file_path, unknown_path) = (rule_path(1), rule_path(2), rule_path(99));
    let (forward_as_rule, rule_as_forward) = (rule_path(forward), forward_path(rule));
    let add_rule = |body: Value| {
        Call::new("POST", "/api/v1/firewall/rules")
            .token(&token)
            .json(body)
    };
    let add_forward = |body: Value| {
        Call::new("POST", "/api/v1/firewall/forwards")
            .token(&token)
            .json(body)
    };
    let enable = |body: Value| {
        Call::new("POST", "/api/v1/firewall/enable")
            .token(&token)
            .json(body)
    };
    let cases: Vec<(&str, Call<'_>, u16, &str)> = vec![
        (
            "no token",
            Call::new("POST", "/api/v1/firewall/rules")
                .json(json!({"protocol": "tcp", "port": 9090, "action": "accept"})),
            401,
            "unauthorized",
        ),
        (
            "disable without a token",
            Call::new("POST", "/api/v1/firewall/disable"),
            401,
            "unauthorized",
        ),
        (
            "a port out of range",
            add_rule(json!({"protocol": "tcp", "port": 70000, "action": "accept"})),
            400,
            "bad_request",
        ),
        (
            "an invalid source",
            add_rule(
                json!({"protocol": "tcp", "port": 9090, "source": "10.0.0.0/33", "action": "accept"}),
            ),
            400,
            "bad_request",
        ),
        (
            "an invalid action",
            add_rule(json!({"protocol": "tcp", "port": 9090, "action": "permit"})),
            400,
            "bad_request",
        ),
        (
            "a missing field",
            add_rule(json!({"port": 9090, "action": "accept"})),
            400,
            "bad_request",
        ),
        (
            "a protected rule asked of the API",
            add_rule(
                json!({"protocol": "tcp", "port": 9090, "action": "accept", "protected": true}),
            ),
            400,
            "bad_request",
        ),
        (
            "a form post",
            Call::new("POST", "/api/v1/firewall/rules")
                .token(&token)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .raw_body(b"protocol=tcp&port=9090&action=accept".to_vec()),
            415,
            "unsupported_media_type",
        ),
        (
            "a rule that already is",
            add_rule(json!({"protocol": "tcp", "port": "8080", "action": "accept"})),
            409,
            "duplicate",
        ),
        (
            "a protected rule deleted",
            Call::new("DELETE", &protected_path).token(&token),
            409,
            "protected",
        ),
        (
            "a firewall.d rule deleted",
            Call::new("DELETE", &file_path).token(&token),
            409,
            "from_file",
        ),
        (
            "an unknown id",
            Call::new("DELETE", &unknown_path).token(&token),
            404,
            "unknown_id",
        ),
        (
            "a forward's id as a rule",
            Call::new("DELETE", &forward_as_rule).token(&token),
            404,
            "unknown_id",
        ),
        (
            "a rule's id as a forward",
            Call::new("DELETE", &rule_as_forward).token(&token),
            404,
            "unknown_id",
        ),
        (
            "an id that is not a number",
            Call::new("DELETE", "/api/v1/firewall/rules/seven").token(&token),
            400,
            "bad_request",
        ),
        (
            "an overlapping forward",
            add_forward(json!({"protocol": "tcp", "port": 2525, "to": "10.0.0.3:25"})),
            409,
            "overlap",
        ),
        (
            "SSH forwarded away",
            add_forward(json!({"protocol": "tcp", "port": "ssh", "to": "10.0.0.2:22"})),
            409,
            "lockout",
        ),
        (
            "a forward of a range",
            add_forward(json!({"protocol": "tcp", "port": "2526-2530", "to": "10.0.0.2:25"})),
            400,
            "bad_request",
        ),
        (
            "a backend without a port",
            add_forward(json!({"protocol": "tcp", "port": 2526, "to": "10.0.0.2"})),
            400,
            "bad_request",
        ),
        (
            "a confirm with nothing waiting",
            Call::new("POST", "/api/v1/firewall/confirm").token(&token),
            409,
            "not_pending",
        ),
        (
            "a confirm window on a firewall already on",
            enable(json!({"confirm_within": "60s"})),
            409,
            "already_enabled",
        ),
        (
            "a confirm window over an hour",
            enable(json!({"confirm_within": "2h"})),
            400,
            "bad_request",
        ),
        (
            "a session claimed over HTTP",
            enable(json!({"session": {"client": "198.51.100.7", "port": 2222}})),
            400,
            "bad_request",
        ),
        (
            "an enable body that is not JSON",
            Call::new("POST", "/api/v1/firewall/enable")
                .token(&token)
                .header("Content-Type", "text/plain")
                .raw_body(b"60s".to_vec()),
            415,
            "unsupported_media_type",
        ),
        (
            "an unknown path",
            Call::new("GET", "/api/v1/firewall/chains"),
            404,
            "not_found",
        ),
        (
            "a wrong method",
            Call::new("PUT", "/api/v1/firewall/rules").token(&token),
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
        assert!(answer.json()["message"].is_string(), "{what}");
        assert_eq!(firewall_state(&d), before, "{what}: nothing changed");
    }

    // An enable waiting for its confirmation refuses a second one.
    let off = send(
        &d,
        Call::new("POST", "/api/v1/firewall/disable").token(&token),
    );
    assert_eq!(off.status, 200);
    let first = send(&d, enable(json!({"confirm_within": "60s"})));
    assert_eq!(first.status, 200, "{}", first.text());
    let waiting = firewall_state(&d);
    let second = send(&d, enable(json!({"confirm_within": "60s"})));
    assert_eq!((second.status, second.code()), (409, "pending".to_string()));
    let (mut now, mut then) = (firewall_state(&d), waiting);
    // The countdown moves on; nothing else may.
    now.0["pending"] = Value::Null;
    then.0["pending"] = Value::Null;
    assert_eq!(now, then);
}

#[test]
#[ignore = "needs root"]
fn an_http_enable_that_would_cut_the_admin_port_is_refused() {
    // sshd listens on 2222 (the admin port), but the protected rule opens 22: a panel's enable
    // would lock the administrator out.
    let d = start(
        "http-fw-lockout",
        "enabled = false\ndefault_input = \"drop\"\nadmin_port = 2222\n",
        &[("10-ssh.toml", PROTECTED_SSH)],
    );
    let token = token(&d);
    let client = client_of(&d);
    let _ssh = listen(&d.ns, "[::]:2222");
    let _web = listen(&d.ns, "[::]:8080");
    let enable = |body: Option<Value>| {
        let call = Call::new("POST", "/api/v1/firewall/enable").token(&token);
        send(
            &d,
            match body {
                Some(body) => call.json(body),
                None => call,
            },
        )
    };
    // An accept rule the API could delete again does not count.
    let open = send(
        &d,
        Call::new("POST", "/api/v1/firewall/rules")
            .token(&token)
            .json(json!({"protocol": "tcp", "port": 2222, "action": "accept"})),
    );
    assert_eq!(open.status, 200);
    let before = firewall_state(&d);
    for body in [None, Some(json!({"confirm_within": "60s"}))] {
        let refused = enable(body.clone());
        assert_eq!(
            (refused.status, refused.code()),
            (409, "lockout".to_string()),
            "{body:?}: {}",
            refused.text()
        );
        let message = refused.json()["message"].as_str().unwrap().to_string();
        assert!(
            message.contains("would lock out admin port 2222: no protected accept rule"),
            "{message}"
        );
        assert_eq!(firewall_state(&d), before, "nothing changed");
        assert!(!d.ns.nft_text("nftjail").contains("chain firewall_input"));
    }
    assert_eq!(
        reach_open(&client, "192.0.2.2", "192.0.2.1:8080"),
        Reach::Open,
        "still off: every port open"
    );

    // With the admin port protected in a file (and a reload through the API), it goes through,
    // and the administrator's port stays open while the others close.
    std::fs::write(
        d.path("firewall.d/20-ssh-2222.toml"),
        "[[rule]]\nprotocol = \"tcp\"\nport = 2222\naction = \"accept\"\ncomment = \"SSH on 2222\"\nprotected = true\n",
    )
    .unwrap();
    let reload = send(&d, Call::new("POST", "/api/v1/reload").token(&token));
    assert_eq!(reload.status, 200, "{}", reload.text());
    let on = enable(None);
    assert_eq!(on.status, 200, "{}", on.text());
    assert_eq!(on.json()["firewall"]["enabled"], true);
    assert_eq!(
        reach_open(&client, "192.0.2.2", "192.0.2.1:2222"),
        Reach::Open
    );
    assert_eq!(
        reach(&client, "192.0.2.2", "192.0.2.1:8080"),
        Reach::Dropped
    );
}
