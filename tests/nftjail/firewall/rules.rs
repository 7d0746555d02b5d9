//! Default deny, rules in creation order, protected rules, IPv6, bans first, `nft list`.

use super::*;

#[test]
#[ignore = "needs root"]
fn default_deny_lets_in_protected_ports_and_a_rule_opens_a_port_to_its_source_only() {
    let d = start(
        "fw-deny",
        "enabled = true\ndefault_input = \"drop\"\n",
        &[("10-ssh.toml", PROTECTED_SSH)],
    );
    let client = client_of(&d);
    let _ssh = listen(&d.ns, "[::]:22");
    let _web = listen(&d.ns, "[::]:8080");
    assert_eq!(
        reach_open(&client, "192.0.2.2", "192.0.2.1:22"),
        Reach::Open
    );
    assert_eq!(
        reach_open(&client, "2001:db8::2", "[2001:db8::1]:22"),
        Reach::Open,
        "IPv6, neighbour discovery included"
    );
    assert_eq!(
        reach(&client, "192.0.2.2", "192.0.2.1:8080"),
        Reach::Dropped
    );
    assert_eq!(
        reach(&client, "2001:db8::2", "[2001:db8::1]:8080"),
        Reach::Dropped
    );

    let v4 = d.ok(&[
        "rule",
        "add",
        "--protocol",
        "tcp",
        "--port",
        "8080",
        "--source",
        "192.0.2.2",
        "--action",
        "accept",
        "--comment",
        "panel",
    ]);
    let v6 = d.ok(&[
        "rule",
        "add",
        "--protocol",
        "tcp",
        "--port",
        "http-alt",
        "--source",
        "2001:db8::2/128",
        "--action",
        "accept",
        "--json",
    ]);
    let v4: u64 = v4.trim().parse().expect("rule add prints the id");
    let v6: serde_json::Value = serde_json::from_str(&v6).unwrap();
    assert_eq!(v6, serde_json::json!({"id": v4 + 1}));
    assert_eq!(
        reach_open(&client, "192.0.2.2", "192.0.2.1:8080"),
        Reach::Open
    );
    assert_eq!(
        reach_open(&client, "2001:db8::2", "[2001:db8::1]:8080"),
        Reach::Open
    );
    assert_eq!(
        reach(&client, "192.0.2.3", "192.0.2.1:8080"),
        Reach::Dropped,
        "another source"
    );
    assert_eq!(
        reach(&client, "2001:db8::3", "[2001:db8::1]:8080"),
        Reach::Dropped,
        "another IPv6 source"
    );

    // `rule list --json`: every field, in order, with the origin.
    let listed = rules(&d);
    assert_eq!(
        listed[0],
        serde_json::json!({"id": 1, "chain": "input", "protocol": "tcp", "port": "22", "source": null,
            "action": "accept", "comment": "SSH", "protected": true, "origin": "firewall.d/10-ssh.toml:1"})
    );
    assert_eq!(
        listed[1],
        serde_json::json!({"id": v4, "chain": "input", "protocol": "tcp", "port": "8080", "source": "192.0.2.2",
            "action": "accept", "comment": "panel", "protected": false, "origin": "api"})
    );

    // A protected rule cannot be deleted; a normal one closes its port.
    let error = refused(&d, &["rule", "delete", "1"]);
    assert!(error.contains("rule 1 is protected"), "{error}");
    assert_eq!(
        reach_open(&client, "192.0.2.2", "192.0.2.1:22"),
        Reach::Open
    );
    d.ok(&["rule", "delete", &v4.to_string()]);
    assert_eq!(
        reach(&client, "192.0.2.2", "192.0.2.1:8080"),
        Reach::Dropped
    );
    assert_eq!(
        reach_open(&client, "2001:db8::2", "[2001:db8::1]:8080"),
        Reach::Open,
        "the IPv6 rule stays"
    );

    // Creation order: a drop for one source before an accept for all keeps that source out;
    // a reject answers at once.
    let _other = listen(&d.ns, "[::]:9090");
    d.ok(&[
        "rule",
        "add",
        "--protocol",
        "tcp",
        "--port",
        "9090",
        "--source",
        "192.0.2.3",
        "--action",
        "drop",
    ]);
    d.ok(&[
        "rule",
        "add",
        "--protocol",
        "tcp",
        "--port",
        "9090",
        "--source",
        "2001:db8::3",
        "--action",
        "reject",
    ]);
    d.ok(&[
        "rule",
        "add",
        "--protocol",
        "tcp",
        "--port",
        "9090",
        "--action",
        "accept",
    ]);
    assert_eq!(
        reach_open(&client, "192.0.2.2", "192.0.2.1:9090"),
        Reach::Open
    );
    assert_eq!(
        reach(&client, "192.0.2.3", "192.0.2.1:9090"),
        Reach::Dropped
    );
    assert_eq!(
        reach_open(&client, "2001:db8::2", "[2001:db8::1]:9090"),
        Reach::Open
    );
    assert_eq!(
        reach(&client, "2001:db8::3", "[2001:db8::1]:9090"),
        Reach::Refused
    );

    // Bad input is refused naming the field, and changes nothing.
    let before = rules(&d);
    for (args, want) in [
        (
            vec!["--port", "70000", "--action", "accept"],
            "port: port 70000 is out of range",
        ),
        (
            vec![
                "--port",
                "22",
                "--source",
                "10.0.0.0/33",
                "--action",
                "accept",
            ],
            "source: \"10.0.0.0/33\"",
        ),
        (
            vec!["--port", "22", "--action", "allowed"],
            "action: \"allowed\"",
        ),
        (
            vec!["--port", "9090", "--action", "accept"],
            "already does this",
        ),
    ] {
        let mut full = vec!["rule", "add", "--protocol", "tcp"];
        full.extend(args);
        let error = refused(&d, &full);
        assert!(error.contains(want), "{full:?}: {error}");
    }
    assert_eq!(rules(&d), before);
}

#[test]
#[ignore = "needs root"]
fn a_banned_client_cannot_reach_a_protected_port() {
    let d = start(
        "fw-ban",
        "enabled = true\n",
        &[("10-ssh.toml", PROTECTED_SSH)],
    );
    let client = client_of(&d);
    let _ssh = listen(&d.ns, "[::]:22");
    assert_eq!(
        reach_open(&client, "192.0.2.2", "192.0.2.1:22"),
        Reach::Open
    );
    d.ok(&["ban", "manual", "192.0.2.2", "2001:db8::2"]);
    assert_eq!(reach(&client, "192.0.2.2", "192.0.2.1:22"), Reach::Dropped);
    assert_eq!(
        reach(&client, "2001:db8::2", "[2001:db8::1]:22"),
        Reach::Dropped
    );
    assert_eq!(
        reach_open(&client, "192.0.2.3", "192.0.2.1:22"),
        Reach::Open,
        "others still reach it"
    );
    d.ok(&["unban", "192.0.2.2"]);
    assert_eq!(
        reach_open(&client, "192.0.2.2", "192.0.2.1:22"),
        Reach::Open
    );
}

#[test]
#[ignore = "needs root"]
fn nft_list_shows_each_rule_with_its_comment() {
    let hosting = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/firewall/hosting.toml"
    ))
    .unwrap();
    let d = start(
        "fw-text",
        "enabled = true\n",
        &[("10-hosting.toml", &hosting)],
    );
    d.ok(&[
        "rule",
        "add",
        "--chain",
        "output",
        "--protocol",
        "tcp",
        "--port",
        "25",
        "--source",
        "198.51.100.0/24",
        "--action",
        "reject",
        "--comment",
        "no direct mail to them",
    ]);
    let text = d.ns.nft_text("nftjail");
    for line in [
        "chain firewall_input {",
        "type filter hook input priority filter; policy drop;",
        "ct state established,related accept comment \"nftjail: established and related\"",
        "tcp dport 22 counter packets 0 bytes 0 accept comment \"rule 1: SSH [protected]\"",
        "tcp dport 443 counter packets 0 bytes 0 accept comment \"rule 2: HTTP, HTTPS [protected]\"",
        "chain firewall_output {",
        "ip daddr 198.51.100.0/24 tcp dport 25 counter packets 0 bytes 0 reject with tcp reset comment",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    // Every rule of the shipped set is listed, and protected.
    let listed = rules(&d);
    assert!(listed.len() >= 10, "{listed:?}");
    assert!(
        listed[..listed.len() - 1]
            .iter()
            .all(|r| r["protected"] == true)
    );
}

#[test]
#[ignore = "needs root"]
fn output_rules_filter_what_the_host_sends() {
    let d = start(
        "fw-output",
        "enabled = true\n",
        &[("10-ssh.toml", PROTECTED_SSH)],
    );
    let client = client_of(&d);
    let _relay = listen(&client, "[::]:2500");
    assert_eq!(
        reach_open(&d.ns, "192.0.2.1", "192.0.2.2:2500"),
        Reach::Open
    );
    d.ok(&[
        "rule",
        "add",
        "--chain",
        "output",
        "--protocol",
        "tcp",
        "--port",
        "2500",
        "--source",
        "192.0.2.2",
        "--action",
        "reject",
    ]);
    assert_eq!(reach(&d.ns, "192.0.2.1", "192.0.2.2:2500"), Reach::Refused);
    assert_eq!(
        reach(&d.ns, "192.0.2.1", "192.0.2.3:2500"),
        Reach::Open,
        "another peer"
    );
    assert_eq!(
        reach_open(&d.ns, "2001:db8::1", "[2001:db8::2]:2500"),
        Reach::Open
    );
    // A drop policy for what the host sends: its own connections' answers still flow.
    let d2 = start(
        "fw-output-drop",
        "enabled = true\ndefault_output = \"drop\"\n",
        &[("10-ssh.toml", PROTECTED_SSH)],
    );
    let client2 = client_of(&d2);
    let _ssh = listen(&d2.ns, "[::]:22");
    let _relay2 = listen(&client2, "[::]:2500");
    assert_eq!(
        reach_open(&client2, "192.0.2.2", "192.0.2.1:22"),
        Reach::Open,
        "answers leave"
    );
    assert_eq!(
        reach_open(&client2, "2001:db8::2", "[2001:db8::1]:22"),
        Reach::Open,
        "with neighbour discovery"
    );
    assert_eq!(
        reach(&d2.ns, "192.0.2.1", "192.0.2.2:2500"),
        Reach::Dropped,
        "new connections do not"
    );
    d2.ok(&[
        "rule",
        "add",
        "--chain",
        "output",
        "--protocol",
        "tcp",
        "--port",
        "2500",
        "--action",
        "accept",
    ]);
    assert_eq!(
        reach_open(&d2.ns, "192.0.2.1", "192.0.2.2:2500"),
        Reach::Open
    );
}
