//! The layout: chains, sets, rules and verdicts as `nft -j` shows them; removed jails.

use serde_json::{Value, json};

use super::*;

#[test]
#[ignore = "needs root"]
fn layout_is_exactly_as_specified_and_idempotent() {
    let (ns, mut backend) = setup("layout");
    backend.apply_layout(&four_jails()).unwrap();
    let json = ns.nft_json(TABLE);
    assert_ne!(json, Value::Null, "table missing in {}", ns.name());

    let chains: Vec<_> = objects(&json, "chain")
        .into_iter()
        .map(|c| json!([c["name"], c["type"], c["hook"], c["prio"], c["policy"]]))
        .collect();
    assert_eq!(
        chains,
        vec![
            json!(["input", "filter", "input", -10, "accept"]),
            json!(["forward", "filter", "forward", -10, "accept"]),
        ]
    );

    for jail in ["sshd", "postfix-sasl", "dovecot", "recidive"] {
        for (suffix, kind, flags) in [
            ("v4", "ipv4_addr", json!(["timeout"])),
            ("v6", "ipv6_addr", json!(["timeout"])),
            ("net4", "ipv4_addr", json!(["interval", "timeout"])),
            ("net6", "ipv6_addr", json!(["interval", "timeout"])),
        ] {
            let s = set(&json, &format!("{jail}_{suffix}"));
            assert_eq!(
                (&s["type"], &s["flags"]),
                (&json!(kind), &flags),
                "{jail}_{suffix}"
            );
        }
    }
    assert_eq!(objects(&json, "set").len(), 16);

    // Per hook: 4 sets x protocols (sshd 1, postfix-sasl 2, dovecot 1, recidive all ports 1).
    for chain in ["input", "forward"] {
        let count = |j| rule_exprs(&json, chain, j).len();
        assert_eq!(
            (
                count("sshd"),
                count("postfix-sasl"),
                count("dovecot"),
                count("recidive")
            ),
            (4, 8, 4, 4),
            "{chain}"
        );
    }
    let drop = json!({"drop": null});
    let sshd = rule_exprs(&json, "input", "sshd");
    assert_eq!(
        sshd[0],
        json!([
            saddr("ip", "sshd_v4"),
            dport("tcp", json!({"set": [22, 2222]})),
            counter(),
            drop
        ])
    );
    assert_eq!(sshd[3][0], saddr("ip6", "sshd_net6"));
    let dovecot = rule_exprs(&json, "input", "dovecot");
    assert_eq!(
        dovecot[1][1],
        dport("tcp", json!(993)),
        "a single port is a plain compare"
    );
    let recidive = rule_exprs(&json, "input", "recidive");
    assert_eq!(
        recidive[1],
        json!([saddr("ip6", "recidive_v6"), counter(), drop])
    );
    // Forward: the port as the client sent it (before DNAT), a range as an interval.
    let postfix = rule_exprs(&json, "forward", "postfix-sasl");
    assert_eq!(
        postfix[1],
        json!([
            saddr("ip", "postfix-sasl_v4"),
            {"match": {"left": {"meta": {"key": "l4proto"}}, "op": "==", "right": "udp"}},
            {"match": {"left": {"ct": {"dir": "original", "key": "proto-dst"}}, "op": "==",
                       "right": {"set": [25, {"range": [49152, 65534]}]}}},
            counter(),
            drop
        ])
    );

    // Again, from a fresh socket (a restart): the same table.
    let mut again = ns.enter(|| NetlinkBackend::open(TABLE)).unwrap();
    again.apply_layout(&four_jails()).unwrap();
    assert_eq!(without_handles(ns.nft_json(TABLE)), without_handles(json));
}

#[test]
#[ignore = "needs root"]
fn reject_verdict_is_tcp_reset_for_tcp_and_icmpx_otherwise() {
    let (ns, mut backend) = setup("reject");
    let layout = layout(
        &[Hook::Input],
        Verdict::Reject,
        vec![
            rules(
                "postfix",
                ports(&[(25, 25)]),
                &[Protocol::Tcp, Protocol::Udp],
            ),
            rules("recidive", Ports::All, &[]),
        ],
    );
    backend.apply_layout(&layout).unwrap();
    let json = ns.nft_json(TABLE);
    let postfix = rule_exprs(&json, "input", "postfix");
    let last = |e: &Value| e.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last(&postfix[0]), json!({"reject": {"type": "tcp reset"}}));
    let icmpx = json!({"reject": {"expr": "admin-prohibited", "type": "icmpx"}});
    assert_eq!(last(&postfix[1]), icmpx);
    assert_eq!(last(&rule_exprs(&json, "input", "recidive")[0]), icmpx);
}

#[test]
#[ignore = "needs root"]
fn a_removed_jail_disappears_and_the_others_keep_their_bans() {
    let (ns, mut backend) = setup("removejail");
    backend.apply_layout(&four_jails()).unwrap();
    backend
        .apply(&[
            add("sshd", "192.0.2.1", Some(3600)),
            add("postfix-sasl", "192.0.2.2", Some(3600)),
            add("postfix-sasl", "2001:db8::/64", None),
        ])
        .unwrap();
    let mut smaller = four_jails();
    smaller.jails.retain(|j| j.name.as_str() != "sshd");
    smaller.hooks = vec![Hook::Input];
    backend.apply_layout(&smaller).unwrap();

    let json = ns.nft_json(TABLE);
    let names: Vec<String> = objects(&json, "set")
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with("sshd_")), "{names:?}");
    assert_eq!(names.len(), 12);
    assert!(rule_exprs(&json, "input", "sshd").is_empty());
    let chains: Vec<_> = objects(&json, "chain")
        .iter()
        .map(|c| c["name"].clone())
        .collect();
    assert_eq!(chains, vec![json!("input")]);
    assert_eq!(rule_exprs(&json, "input", "postfix-sasl").len(), 8);
    let v4 = elements(&json, "postfix-sasl_v4");
    assert_eq!(element(&v4, &json!("192.0.2.2"))["timeout"], 3600);
    assert_eq!(elements(&json, "postfix-sasl_net6").len(), 1);
    assert_eq!(backend.list().unwrap().len(), 2);
}
