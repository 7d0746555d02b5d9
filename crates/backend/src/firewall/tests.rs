use super::*;
use nftjail_core::firewall::text::{parse_ports, parse_to};

fn rule(
    chain: Chain,
    port: &str,
    source: Option<&str>,
    action: Action,
    comment: &str,
    protected: bool,
) -> Rule {
    Rule::new(
        chain,
        Protocol::Tcp,
        &parse_ports(port).unwrap(),
        source.map(|s| s.parse().unwrap()),
        action,
        comment,
        protected,
    )
    .unwrap()
}

fn forward(port: u16, to: &str, source: Option<&str>) -> Forward {
    Forward::new(
        Protocol::Tcp,
        port,
        parse_to(to).unwrap(),
        source.map(|s| s.parse().unwrap()),
        "mail",
    )
    .unwrap()
}

fn layout(enabled: bool, rules: Vec<(u64, Rule)>, forwards: Vec<(u64, Forward)>) -> FirewallLayout {
    FirewallLayout {
        enabled,
        input: Policy::Drop,
        output: Policy::Accept,
        forward: Policy::Accept,
        rules,
        forwards,
    }
}

fn names(plan: &[ChainPlan]) -> Vec<(&'static str, Policy, usize)> {
    plan.iter()
        .map(|c| (c.chain.name(), c.policy, c.rules.len()))
        .collect()
}

#[test]
fn off_means_no_chain_and_forwards_stay_without_filtering() {
    assert!(plan(&FirewallLayout::off()).is_empty());
    let rules = vec![(1, rule(Chain::Input, "22", None, Action::Accept, "", true))];
    assert!(plan(&layout(false, rules, vec![])).is_empty());
    let forwards = vec![(2, forward(2525, "10.0.0.2:25", None))];
    assert_eq!(
        names(&plan(&layout(false, vec![], forwards))),
        [
            ("firewall_forward", Policy::Accept, 2),
            ("firewall_prerouting", Policy::Accept, 1),
            ("firewall_postrouting", Policy::Accept, 1),
        ]
    );
    let mut drop_forwarding = layout(true, vec![], vec![]);
    drop_forwarding.forward = Policy::Drop;
    assert_eq!(
        names(&plan(&drop_forwarding))[2],
        ("firewall_forward", Policy::Drop, 1),
        "a drop policy for forwarding needs the chain even without forwards"
    );
}

#[test]
fn host_rules_come_first_then_each_chains_rules_in_order_one_per_port_range() {
    let rules = vec![
        (
            4,
            rule(Chain::Input, "22", None, Action::Accept, "SSH", true),
        ),
        (
            9,
            rule(
                Chain::Output,
                "25",
                Some("192.0.2.0/24"),
                Action::Reject,
                "",
                false,
            ),
        ),
        (
            7,
            rule(
                Chain::Input,
                "80,443,1000-2000",
                Some("2001:db8::/64"),
                Action::Drop,
                "web",
                false,
            ),
        ),
    ];
    let plan = plan(&layout(true, rules, vec![]));
    assert_eq!(
        names(&plan),
        [
            ("firewall_input", Policy::Drop, 9 + 1 + 3),
            ("firewall_output", Policy::Accept, 9 + 1)
        ]
    );
    let input = &plan[0].rules;
    assert_eq!(input[0].matches, [Match::CtState(6)]);
    assert_eq!(input[1].matches, [Match::InputInterface(1)]);
    assert_eq!(plan[1].rules[1].matches, [Match::OutputInterface(1)]);
    assert!(
        input[..9]
            .iter()
            .all(|r| !r.counter && r.verdict == KernelVerdict::Accept)
    );
    assert_eq!(input[9].comment, "rule 4: SSH [protected]");
    assert_eq!(
        input[9].matches,
        [Match::L4(6), Match::Port(PortRange::single(22))]
    );
    let web: Vec<_> = input[10..]
        .iter()
        .map(|r| (r.matches.clone(), r.verdict, r.comment.as_str()))
        .collect();
    let v6 = Match::Family(Family::V6);
    let net = Match::Source("2001:db8::/64".parse().unwrap());
    assert_eq!(
        web,
        [
            (
                vec![v6, net, Match::L4(6), Match::Port(PortRange::single(80))],
                KernelVerdict::Drop,
                "rule 7: web"
            ),
            (
                vec![v6, net, Match::L4(6), Match::Port(PortRange::single(443))],
                KernelVerdict::Drop,
                "rule 7: web"
            ),
            (
                vec![
                    v6,
                    net,
                    Match::L4(6),
                    Match::Port(PortRange {
                        first: 1000,
                        last: 2000
                    })
                ],
                KernelVerdict::Drop,
                "rule 7: web"
            ),
        ]
    );
    // In the output chain the address is the peer the host talks to.
    let out = &plan[1].rules[9];
    assert_eq!(
        out.matches[1],
        Match::Destination("192.0.2.0/24".parse().unwrap())
    );
    assert_eq!(
        (out.verdict, out.comment.as_str()),
        (KernelVerdict::Reject(Protocol::Tcp), "rule 9")
    );
}

#[test]
fn a_forward_is_a_dnat_a_masquerade_and_a_forward_accept() {
    let forwards = vec![(3, forward(2525, "10.0.0.2:25", Some("192.0.2.0/24")))];
    let plan = plan(&layout(true, vec![], forwards));
    let chain = |name: &str| &plan.iter().find(|c| c.chain.name() == name).unwrap().rules;
    let v4 = Match::Family(Family::V4);
    let dnat = &chain("firewall_prerouting")[0];
    assert_eq!(
        dnat.matches,
        [
            v4,
            Match::Source("192.0.2.0/24".parse().unwrap()),
            Match::L4(6),
            Match::Port(PortRange::single(2525))
        ]
    );
    assert_eq!(
        dnat.verdict,
        KernelVerdict::Dnat("10.0.0.2:25".parse().unwrap())
    );
    assert_eq!(dnat.comment, "forward 3: mail");
    let after_dnat = [
        v4,
        Match::Destination("10.0.0.2".parse().unwrap()),
        Match::L4(6),
        Match::Port(PortRange::single(25)),
        Match::CtStatusDnat,
    ];
    assert_eq!(chain("firewall_postrouting")[0].matches, after_dnat);
    assert_eq!(
        chain("firewall_postrouting")[0].verdict,
        KernelVerdict::Masquerade
    );
    let accept = &chain("firewall_forward")[1];
    assert_eq!(
        (accept.matches.as_slice(), accept.verdict),
        (&after_dnat[..], KernelVerdict::Accept)
    );
}

#[test]
fn a_source_of_the_whole_family_is_matched_by_family_alone() {
    let rules = vec![(
        1,
        rule(
            Chain::Input,
            "53",
            Some("0.0.0.0/0"),
            Action::Accept,
            "",
            false,
        ),
    )];
    let plan = plan(&layout(true, rules, vec![]));
    assert_eq!(
        plan[0].rules[9].matches,
        [
            Match::Family(Family::V4),
            Match::L4(6),
            Match::Port(PortRange::single(53))
        ]
    );
}
