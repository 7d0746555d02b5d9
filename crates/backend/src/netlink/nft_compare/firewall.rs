//! Test-only: the firewall's chains and rules compared byte for byte with what `nft --debug=mnl`
//! sends for the same ruleset (every expression the firewall encodes appears at least once).

use super::super::firewall::{RulePlace, new_chain, new_rule};
use super::{attrs, nft_messages, ours, sorted, theirs};
use crate::firewall::{FirewallChain, KernelRule, KernelVerdict, Match, Policy};
use nftjail_core::addr::Family as F;
use nftjail_core::ports::{PortRange, Protocol};

const CHAINS: &str = "table inet nftjail {
  chain firewall_input { type filter hook input priority filter; policy drop; }
  chain firewall_output { type filter hook output priority filter; policy accept; }
  chain firewall_forward { type filter hook forward priority filter; policy accept; }
  chain firewall_prerouting { type nat hook prerouting priority dstnat; policy accept; }
  chain firewall_postrouting { type nat hook postrouting priority srcnat; policy accept; }
}
";

#[test]
#[ignore = "needs root and nft"]
fn firewall_chains_match_nft() {
    let all = nft_messages(CHAINS);
    let theirs = theirs(&all, 3);
    let chains = [
        (FirewallChain::Input, Policy::Drop),
        (FirewallChain::Output, Policy::Accept),
        (FirewallChain::Forward, Policy::Accept),
        (FirewallChain::Prerouting, Policy::Accept),
        (FirewallChain::Postrouting, Policy::Accept),
    ];
    assert_eq!(theirs.len(), chains.len());
    for ((chain, policy), theirs) in chains.into_iter().zip(&theirs) {
        let (_, body) = ours(|w| new_chain(w, 1, "nftjail", chain, policy));
        assert_eq!(sorted(attrs(&body)), sorted(attrs(theirs)), "{chain:?}");
    }
}

fn rule(matches: Vec<Match>, counter: bool, verdict: KernelVerdict, comment: &str) -> KernelRule {
    KernelRule {
        matches,
        counter,
        verdict,
        comment: comment.to_string(),
    }
}

#[test]
#[ignore = "needs root and nft"]
fn firewall_rules_match_nft() {
    use KernelVerdict::*;
    use Match::*;
    let port = |p| Port(PortRange::single(p));
    let target = |t: &str| t.parse().unwrap();
    // (chain, nft's text, ours)
    let cases: Vec<(&str, &str, KernelRule)> = vec![
        (
            "firewall_input",
            "ct state established,related accept comment \"nftjail: established and related\"",
            rule(
                vec![CtState(6)],
                false,
                Accept,
                "nftjail: established and related",
            ),
        ),
        (
            "firewall_input",
            "iif \"lo\" accept comment \"nftjail: loopback\"",
            rule(vec![InputInterface(1)], false, Accept, "nftjail: loopback"),
        ),
        (
            "firewall_output",
            "oif \"lo\" accept comment \"nftjail: loopback\"",
            rule(vec![OutputInterface(1)], false, Accept, "nftjail: loopback"),
        ),
        (
            "firewall_input",
            "icmp type echo-request accept comment \"nftjail: ping\"",
            rule(
                vec![Family(F::V4), L4(1), IcmpType(8, 8)],
                false,
                Accept,
                "nftjail: ping",
            ),
        ),
        (
            "firewall_input",
            "icmpv6 type 130-136 accept comment \"nd\"",
            rule(
                vec![Family(F::V6), L4(58), IcmpType(130, 136)],
                false,
                Accept,
                "nd",
            ),
        ),
        (
            "firewall_input",
            "tcp dport 22 counter accept comment \"rule 1: SSH [protected]\"",
            rule(
                vec![L4(6), port(22)],
                true,
                Accept,
                "rule 1: SSH [protected]",
            ),
        ),
        (
            "firewall_input",
            "ip saddr 192.0.2.0/24 tcp dport 1000-2000 counter drop comment \"rule 2\"",
            rule(
                vec![
                    Family(F::V4),
                    Source(target("192.0.2.0/24")),
                    L4(6),
                    Port(PortRange {
                        first: 1000,
                        last: 2000,
                    }),
                ],
                true,
                Drop,
                "rule 2",
            ),
        ),
        (
            "firewall_input",
            "ip saddr 10.16.0.0/12 udp dport 53 counter reject with icmpx port-unreachable comment \"rule 3\"",
            rule(
                vec![
                    Family(F::V4),
                    Source(target("10.16.0.0/12")),
                    L4(17),
                    port(53),
                ],
                true,
                Reject(Protocol::Udp),
                "rule 3",
            ),
        ),
        (
            "firewall_input",
            "ip6 saddr 2001:db8::/60 tcp dport 25 counter reject with tcp reset comment \"rule 4\"",
            rule(
                vec![
                    Family(F::V6),
                    Source(target("2001:db8::/60")),
                    L4(6),
                    port(25),
                ],
                true,
                Reject(Protocol::Tcp),
                "rule 4",
            ),
        ),
        (
            "firewall_input",
            "ip6 saddr 2001:db8::7 tcp dport 80 counter accept comment \"rule 5\"",
            rule(
                vec![
                    Family(F::V6),
                    Source(target("2001:db8::7")),
                    L4(6),
                    port(80),
                ],
                true,
                Accept,
                "rule 5",
            ),
        ),
        (
            "firewall_output",
            "ip daddr 198.51.100.7 tcp dport 25 counter drop comment \"rule 6\"",
            rule(
                vec![
                    Family(F::V4),
                    Destination(target("198.51.100.7")),
                    L4(6),
                    port(25),
                ],
                true,
                Drop,
                "rule 6",
            ),
        ),
        (
            "firewall_forward",
            "ip daddr 10.0.0.2 tcp dport 25 ct status dnat counter accept comment \"forward 7: mail\"",
            rule(
                vec![
                    Family(F::V4),
                    Destination(target("10.0.0.2")),
                    L4(6),
                    port(25),
                    CtStatusDnat,
                ],
                true,
                Accept,
                "forward 7: mail",
            ),
        ),
        (
            "firewall_prerouting",
            "ip saddr 192.0.2.0/24 tcp dport 2525 counter dnat ip to 10.0.0.2:25 comment \"forward 7: mail\"",
            rule(
                vec![
                    Family(F::V4),
                    Source(target("192.0.2.0/24")),
                    L4(6),
                    port(2525),
                ],
                true,
                Dnat("10.0.0.2:25".parse().unwrap()),
                "forward 7: mail",
            ),
        ),
        (
            "firewall_prerouting",
            "meta nfproto ipv6 udp dport 993 counter dnat ip6 to [2001:db8::2]:993 comment \"forward 8\"",
            rule(
                vec![Family(F::V6), L4(17), port(993)],
                true,
                Dnat("[2001:db8::2]:993".parse().unwrap()),
                "forward 8",
            ),
        ),
        (
            "firewall_postrouting",
            "ip6 daddr 2001:db8::2 udp dport 993 ct status dnat counter masquerade comment \"forward 8\"",
            rule(
                vec![
                    Family(F::V6),
                    Destination(target("2001:db8::2")),
                    L4(17),
                    port(993),
                    CtStatusDnat,
                ],
                true,
                Masquerade,
                "forward 8",
            ),
        ),
    ];
    let script: String = cases
        .iter()
        .map(|(chain, text, _)| format!("add rule inet nftjail {chain} {text}\n"))
        .collect();
    let all = nft_messages(&format!("{CHAINS}{script}"));
    let theirs = theirs(&all, 6);
    assert_eq!(theirs.len(), cases.len());
    for ((chain, text, rule), theirs) in cases.iter().zip(&theirs) {
        let (_, body) = ours(|w| new_rule(w, 1, "nftjail", chain, rule, RulePlace::Append));
        assert_eq!(attrs(&body), attrs(theirs), "{text}");
    }
}
