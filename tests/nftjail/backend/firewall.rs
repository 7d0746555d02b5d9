//! The firewall's chains against the real kernel: every expression reads back as written (an
//! unchanged firewall sends nothing), changes touch only the rules that differ, foreign rules
//! are taken out, and `nft list` reads like a ruleset a person wrote.

use nftjail_core::firewall::text::{parse_ports, parse_to};
use nftjail_core::firewall::{Action, Chain, Forward, Policy, Rule};

use super::*;

fn rule(
    chain: Chain,
    protocol: Protocol,
    port: &str,
    source: Option<&str>,
    action: Action,
    comment: &str,
) -> Rule {
    Rule::new(
        chain,
        protocol,
        &parse_ports(port).unwrap(),
        source.map(|s| s.parse().unwrap()),
        action,
        comment,
        comment == "SSH",
    )
    .unwrap()
}

fn forward(protocol: Protocol, port: u16, to: &str, source: Option<&str>) -> Forward {
    Forward::new(
        protocol,
        port,
        parse_to(to).unwrap(),
        source.map(|s| s.parse().unwrap()),
        "backend",
    )
    .unwrap()
}

/// A firewall with every kind of match and verdict the backend writes.
fn everything() -> FirewallLayout {
    FirewallLayout {
        enabled: true,
        input: Policy::Drop,
        output: Policy::Accept,
        forward: Policy::Drop,
        rules: vec![
            (
                1,
                rule(
                    Chain::Input,
                    Protocol::Tcp,
                    "22",
                    None,
                    Action::Accept,
                    "SSH",
                ),
            ),
            (
                2,
                rule(
                    Chain::Input,
                    Protocol::Tcp,
                    "80,443,8000-8080",
                    Some("192.0.2.0/24"),
                    Action::Accept,
                    "web",
                ),
            ),
            (
                3,
                rule(
                    Chain::Input,
                    Protocol::Udp,
                    "53",
                    Some("10.16.0.0/12"),
                    Action::Reject,
                    "",
                ),
            ),
            (
                4,
                rule(
                    Chain::Input,
                    Protocol::Tcp,
                    "25",
                    Some("2001:db8::/60"),
                    Action::Reject,
                    "mail",
                ),
            ),
            (
                5,
                rule(
                    Chain::Input,
                    Protocol::Tcp,
                    "993",
                    Some("2001:db8::7"),
                    Action::Drop,
                    "",
                ),
            ),
            (
                6,
                rule(
                    Chain::Output,
                    Protocol::Tcp,
                    "25",
                    Some("198.51.100.7"),
                    Action::Drop,
                    "no spam",
                ),
            ),
            (
                7,
                rule(
                    Chain::Input,
                    Protocol::Udp,
                    "5353",
                    Some("0.0.0.0/0"),
                    Action::Accept,
                    "",
                ),
            ),
        ],
        forwards: vec![
            (
                8,
                forward(Protocol::Tcp, 2525, "10.0.0.2:25", Some("192.0.2.0/24")),
            ),
            (9, forward(Protocol::Udp, 993, "[2001:db8::2]:993", None)),
        ],
    }
}

/// `(chain, handle, comment)` of the firewall rules, in kernel order.
fn firewall_rules(json: &Value) -> Vec<(String, u64, String)> {
    objects(json, "rule")
        .into_iter()
        .filter(|r| {
            r["chain"]
                .as_str()
                .is_some_and(|c| c.starts_with("firewall_"))
        })
        .map(|r| {
            (
                r["chain"].as_str().unwrap().to_string(),
                r["handle"].as_u64().unwrap(),
                r["comment"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
#[ignore = "needs root"]
fn every_rule_reads_back_as_written_so_an_unchanged_firewall_sends_nothing() {
    let (ns, mut backend) = setup("fw-same");
    backend.apply_layout(&four_jails()).unwrap();
    let first = backend.apply_firewall(&everything()).unwrap();
    assert_eq!(
        (first.chains_added, first.rules_added),
        (5, 17 + 10 + 3 + 2 + 2)
    );
    let before = ns.nft_json(TABLE);
    // Nothing differs: no message at all (the monitor would see any).
    let mut monitor = ns.enter(|| TableMonitor::open(TABLE, 0)).unwrap();
    let again = backend.apply_firewall(&everything()).unwrap();
    assert!(again.unchanged(), "{again:?}\n{}", ns.nft_text(TABLE));
    assert!(monitor.wait(Duration::from_millis(200)).unwrap().is_empty());
    assert_eq!(ns.nft_json(TABLE), before, "not even the handles moved");
    // The jail chains are untouched by the firewall, and the other way round.
    backend.apply_layout(&four_jails()).unwrap();
    assert_eq!(firewall_rules(&ns.nft_json(TABLE)), firewall_rules(&before));
}

#[test]
#[ignore = "needs root"]
fn changes_touch_only_the_rules_that_differ() {
    let (ns, mut backend) = setup("fw-diff");
    let mut layout = everything();
    backend.apply_firewall(&layout).unwrap();
    let before = firewall_rules(&ns.nft_json(TABLE));

    // A rule added at the end of input: one insertion, every other rule keeps its handle.
    layout.rules.push((
        10,
        rule(
            Chain::Input,
            Protocol::Tcp,
            "8443",
            None,
            Action::Accept,
            "panel",
        ),
    ));
    let report = backend.apply_firewall(&layout).unwrap();
    assert_eq!(
        (
            report.rules_added,
            report.rules_deleted,
            report.chains_added
        ),
        (1, 0, 0)
    );
    let after = firewall_rules(&ns.nft_json(TABLE));
    assert!(before.iter().all(|r| after.contains(r)), "handles kept");
    let input: Vec<&str> = after
        .iter()
        .filter(|r| r.0 == "firewall_input")
        .map(|r| r.2.as_str())
        .collect();
    assert_eq!(input.last(), Some(&"rule 10: panel"));

    // A rule deleted in the middle, and one inserted before rule 2: in place.
    layout.rules.retain(|(id, _)| *id != 4);
    layout.rules.insert(
        1,
        (
            11,
            rule(Chain::Input, Protocol::Tcp, "2222", None, Action::Drop, ""),
        ),
    );
    let report = backend.apply_firewall(&layout).unwrap();
    assert_eq!((report.rules_added, report.rules_deleted), (1, 1));
    let input: Vec<String> = firewall_rules(&ns.nft_json(TABLE))
        .into_iter()
        .filter(|r| r.0 == "firewall_input")
        .map(|r| r.2)
        .skip(9)
        .collect();
    assert_eq!(
        input,
        [
            "rule 1: SSH [protected]",
            "rule 11",
            "rule 2: web",
            "rule 2: web",
            "rule 2: web",
            "rule 3",
            "rule 5",
            "rule 7",
            "rule 10: panel"
        ]
    );

    // A policy: one chain update, no rule touched.
    layout.input = Policy::Accept;
    let report = backend.apply_firewall(&layout).unwrap();
    assert_eq!(
        (
            report.policies_changed,
            report.rules_added,
            report.rules_deleted
        ),
        (1, 0, 0)
    );

    // Off, with the forwards kept: the input and output chains go, forwarding stays (accept).
    layout.enabled = false;
    let report = backend.apply_firewall(&layout).unwrap();
    assert_eq!((report.chains_removed, report.policies_changed), (2, 1));
    let chains: Vec<String> = objects(&ns.nft_json(TABLE), "chain")
        .into_iter()
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        chains,
        [
            "firewall_forward",
            "firewall_prerouting",
            "firewall_postrouting"
        ]
    );
    // No firewall at all.
    let report = backend.apply_firewall(&FirewallLayout::off()).unwrap();
    assert_eq!(report.chains_removed, 3);
    assert!(firewall_rules(&ns.nft_json(TABLE)).is_empty());
}

#[test]
#[ignore = "needs root"]
fn a_foreign_rule_in_a_firewall_chain_is_taken_out_and_a_deleted_chain_put_back() {
    let (ns, mut backend) = setup("fw-foreign");
    backend.apply_firewall(&everything()).unwrap();
    let before = firewall_rules(&ns.nft_json(TABLE));
    ns.run(
        "nft",
        &["insert rule inet nftjail firewall_input tcp dport 23 accept"],
    );
    let report = backend.apply_firewall(&everything()).unwrap();
    assert_eq!((report.rules_added, report.rules_deleted), (0, 1));
    assert_eq!(firewall_rules(&ns.nft_json(TABLE)), before);
    ns.run("nft", &["delete chain inet nftjail firewall_prerouting"]);
    ns.run("nft", &["add chain inet nftjail firewall_output { type filter hook output priority 0; policy drop; }"]);
    let report = backend.apply_firewall(&everything()).unwrap();
    assert_eq!(
        (
            report.chains_added,
            report.policies_changed,
            report.rules_added
        ),
        (1, 1, 2)
    );
    assert!(backend.apply_firewall(&everything()).unwrap().unchanged());
}

#[test]
#[ignore = "needs root"]
fn nft_list_reads_like_a_ruleset_a_person_wrote() {
    let (ns, mut backend) = setup("fw-text");
    backend.apply_firewall(&everything()).unwrap();
    let text = ns.nft_text(TABLE);
    for line in [
        "chain firewall_input {",
        "type filter hook input priority filter; policy drop;",
        "ct state established,related accept comment \"nftjail: established and related\"",
        "iif \"lo\" accept comment \"nftjail: loopback\"",
        "icmpv6 type 130-136 accept comment \"nftjail: IPv6 neighbour discovery, multicast listeners\"",
        "tcp dport 22 counter packets 0 bytes 0 accept comment \"rule 1: SSH [protected]\"",
        "ip saddr 192.0.2.0/24 tcp dport 8000-8080 counter packets 0 bytes 0 accept comment \"rule 2: web\"",
        "ip saddr 10.16.0.0/12 udp dport 53 counter packets 0 bytes 0 reject comment \"rule 3\"",
        "ip6 saddr 2001:db8::/60 tcp dport 25 counter packets 0 bytes 0 reject with tcp reset comment \"rule 4: mail\"",
        "meta nfproto ipv4 udp dport 5353 counter packets 0 bytes 0 accept comment \"rule 7\"",
        "ip daddr 198.51.100.7 tcp dport 25 counter packets 0 bytes 0 drop comment \"rule 6: no spam\"",
        "type nat hook prerouting priority dstnat; policy accept;",
        "ip saddr 192.0.2.0/24 tcp dport 2525 counter packets 0 bytes 0 dnat ip to 10.0.0.2:25 comment \"forward 8: backend\"",
        "meta nfproto ipv6 udp dport 993 counter packets 0 bytes 0 dnat ip6 to [2001:db8::2]:993 comment \"forward 9: backend\"",
        "ip6 daddr 2001:db8::2 udp dport 993 ct status dnat counter packets 0 bytes 0 masquerade comment \"forward 9: backend\"",
        "ip daddr 10.0.0.2 tcp dport 25 ct status dnat counter packets 0 bytes 0 accept comment \"forward 8: backend\"",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
}
