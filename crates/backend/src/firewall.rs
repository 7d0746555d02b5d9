//! What the backend builds for the host firewall: its chains, their policies and their rules.
//!
//! Receives a [`FirewallLayout`] (the ruleset in order, the policies, whether the firewall is
//! on); emits the [`ChainPlan`]s every backend implements, each rule as a [`KernelRule`] — the
//! matches and the verdict of one nftables rule, independent of its bytes. It never talks to the
//! kernel and never decides which rules exist (the core's ruleset does).
//!
//! The chains live in the same `inet` table as the bans, beside the jail chains:
//! - `firewall_input` / `firewall_output` (type filter, priority 0, the default policies; only
//!   while the firewall is on): established and related traffic, loopback and the ICMP types a
//!   host needs first, then the rules in order. The jail chains run at priority -10, so a banned
//!   address is dropped before any accept rule sees it.
//! - `firewall_forward` (filter, priority 0): established traffic and the forwarded
//!   connections; its policy is `default_forward` while the firewall is on, accept otherwise.
//! - `firewall_prerouting` (nat, priority -100: DNAT) and `firewall_postrouting` (nat, priority
//!   100: masquerade), while there are forwards. Forwards stay when the firewall is off: they
//!   route, they do not filter.
//!
//! A rule with several port ranges is one kernel rule per range (no anonymous sets: every rule
//! reads back from the kernel as it was written, so an unchanged ruleset is recognised and left
//! alone). Each carries a comment a person can read in `nft list ruleset`: `rule 3: SSH`.

pub mod diff;

use std::net::{IpAddr, SocketAddr};

use nftjail_core::addr::{BanTarget, Family};
pub use nftjail_core::firewall::{Action, Chain, Forward, Policy, Rule};
use nftjail_core::ports::{PortRange, Protocol};

/// The whole firewall as the kernel must hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallLayout {
    /// The filter chains exist (the default policies apply) only while the firewall is on.
    pub enabled: bool,
    pub input: Policy,
    pub output: Policy,
    pub forward: Policy,
    /// Rules in the order they apply, with their ids.
    pub rules: Vec<(u64, Rule)>,
    pub forwards: Vec<(u64, Forward)>,
}

impl FirewallLayout {
    /// No firewall at all: no chain.
    pub fn off() -> FirewallLayout {
        FirewallLayout {
            enabled: false,
            input: Policy::Accept,
            output: Policy::Accept,
            forward: Policy::Accept,
            rules: Vec::new(),
            forwards: Vec::new(),
        }
    }
}

/// What changed when a firewall layout was applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FirewallReport {
    pub chains_added: usize,
    pub chains_removed: usize,
    pub policies_changed: usize,
    pub rules_added: usize,
    pub rules_deleted: usize,
}

impl FirewallReport {
    /// Nothing was sent to the kernel.
    pub fn unchanged(&self) -> bool {
        *self == FirewallReport::default()
    }
}

/// A base chain of the firewall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FirewallChain {
    Input,
    Output,
    Forward,
    Prerouting,
    Postrouting,
}

impl FirewallChain {
    pub const ALL: [FirewallChain; 5] = [
        FirewallChain::Input,
        FirewallChain::Output,
        FirewallChain::Forward,
        FirewallChain::Prerouting,
        FirewallChain::Postrouting,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FirewallChain::Input => "firewall_input",
            FirewallChain::Output => "firewall_output",
            FirewallChain::Forward => "firewall_forward",
            FirewallChain::Prerouting => "firewall_prerouting",
            FirewallChain::Postrouting => "firewall_postrouting",
        }
    }

    pub fn from_name(name: &str) -> Option<FirewallChain> {
        FirewallChain::ALL.into_iter().find(|c| c.name() == name)
    }

    /// `nat` for the DNAT and masquerade chains, `filter` for the others.
    pub fn is_nat(self) -> bool {
        matches!(self, FirewallChain::Prerouting | FirewallChain::Postrouting)
    }

    /// nft's `filter` (0), `dstnat` (-100) and `srcnat` (100).
    pub fn priority(self) -> i32 {
        match self {
            FirewallChain::Prerouting => -100,
            FirewallChain::Postrouting => 100,
            _ => 0,
        }
    }
}

/// One chain as it must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainPlan {
    pub chain: FirewallChain,
    pub policy: Policy,
    pub rules: Vec<KernelRule>,
}

/// One nftables rule: its matches in order, its verdict, its comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelRule {
    pub matches: Vec<Match>,
    /// Count the packets and bytes the rule took (`counter`).
    pub counter: bool,
    pub verdict: KernelVerdict,
    pub comment: String,
}

/// One match of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    /// `ct state`: any of these bits (`established` 0x2, `related` 0x4).
    CtState(u32),
    /// `ct status dnat`: the connection was DNATed.
    CtStatusDnat,
    /// `iif` / `oif` by interface index (`lo` is always 1).
    InputInterface(u32),
    OutputInterface(u32),
    /// `meta nfproto ipv4|ipv6`.
    Family(Family),
    /// `meta l4proto`.
    L4(u8),
    /// `ip saddr` / `ip6 saddr` (an address or a prefix; the family is matched before).
    Source(BanTarget),
    /// `ip daddr` / `ip6 daddr`.
    Destination(BanTarget),
    /// `th dport` in a range (a single port when `first == last`).
    Port(PortRange),
    /// `icmp type` / `icmpv6 type` in `first..=last` (the protocol is matched before).
    IcmpType(u8, u8),
}

/// What a rule does with the packets it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelVerdict {
    Accept,
    Drop,
    /// `reject with tcp reset` for tcp, `reject with icmpx port-unreachable` otherwise.
    Reject(Protocol),
    /// `dnat ip to ADDR:PORT` / `dnat ip6 to [ADDR]:PORT`.
    Dnat(SocketAddr),
    Masquerade,
}

const ESTABLISHED_RELATED: u32 = 0x2 | 0x4;
const LOOPBACK_INDEX: u32 = 1;
const ICMP: u8 = 1;
const ICMPV6: u8 = 58;

/// The chains `layout` needs, each with its rules in order; chains it does not need are absent.
pub fn plan(layout: &FirewallLayout) -> Vec<ChainPlan> {
    let mut chains = Vec::new();
    if layout.enabled {
        for (chain, policy) in [(Chain::Input, layout.input), (Chain::Output, layout.output)] {
            let mut rules = host_rules(chain);
            for (id, rule) in layout.rules.iter().filter(|(_, r)| r.chain == chain) {
                rules.extend(user_rules(*id, rule));
            }
            let chain = match chain {
                Chain::Input => FirewallChain::Input,
                Chain::Output => FirewallChain::Output,
            };
            chains.push(ChainPlan {
                chain,
                policy,
                rules,
            });
        }
    }
    let forward_policy = if layout.enabled {
        layout.forward
    } else {
        Policy::Accept
    };
    if !layout.forwards.is_empty() || forward_policy == Policy::Drop {
        let mut rules = vec![established()];
        for (id, forward) in &layout.forwards {
            rules.push(forward_rule(*id, forward, KernelVerdict::Accept));
        }
        chains.push(ChainPlan {
            chain: FirewallChain::Forward,
            policy: forward_policy,
            rules,
        });
    }
    if !layout.forwards.is_empty() {
        let dnat = layout
            .forwards
            .iter()
            .map(|(id, f)| dnat_rule(*id, f))
            .collect();
        let masquerade = layout
            .forwards
            .iter()
            .map(|(id, f)| forward_rule(*id, f, KernelVerdict::Masquerade))
            .collect();
        chains.push(ChainPlan {
            chain: FirewallChain::Prerouting,
            policy: Policy::Accept,
            rules: dnat,
        });
        chains.push(ChainPlan {
            chain: FirewallChain::Postrouting,
            policy: Policy::Accept,
            rules: masquerade,
        });
    }
    chains
}

fn fixed(matches: Vec<Match>, comment: &str) -> KernelRule {
    KernelRule {
        matches,
        counter: false,
        verdict: KernelVerdict::Accept,
        comment: format!("nftjail: {comment}"),
    }
}

fn established() -> KernelRule {
    fixed(
        vec![Match::CtState(ESTABLISHED_RELATED)],
        "established and related",
    )
}

/// What every host needs whatever the rules say: its own connections' traffic, loopback, and
/// the ICMP types of path MTU discovery, errors, ping and IPv6 neighbour discovery.
fn host_rules(chain: Chain) -> Vec<KernelRule> {
    let interface = match chain {
        Chain::Input => Match::InputInterface(LOOPBACK_INDEX),
        Chain::Output => Match::OutputInterface(LOOPBACK_INDEX),
    };
    // nft writes `icmp type` as `meta nfproto ipv4 meta l4proto icmp …` (and ICMPv6 likewise).
    let icmp = |protocol: u8, first: u8, last: u8, comment: &str| {
        let family = match protocol {
            ICMP => Family::V4,
            _ => Family::V6,
        };
        fixed(
            vec![
                Match::Family(family),
                Match::L4(protocol),
                Match::IcmpType(first, last),
            ],
            comment,
        )
    };
    vec![
        established(),
        fixed(vec![interface], "loopback"),
        icmp(ICMP, 3, 3, "ICMP destination unreachable"),
        icmp(ICMP, 8, 8, "ping"),
        icmp(ICMP, 11, 12, "ICMP time exceeded, parameter problem"),
        icmp(ICMPV6, 1, 4, "ICMPv6 errors and packet too big"),
        icmp(ICMPV6, 128, 128, "ping (IPv6)"),
        icmp(
            ICMPV6,
            130,
            136,
            "IPv6 neighbour discovery, multicast listeners",
        ),
        icmp(ICMPV6, 143, 143, "IPv6 multicast listener reports"),
    ]
}

/// The kernel rules of rule `id`: one per port range.
fn user_rules(id: u64, rule: &Rule) -> Vec<KernelRule> {
    let mut comment = match rule.comment.is_empty() {
        true => format!("rule {id}"),
        false => format!("rule {id}: {}", rule.comment),
    };
    if rule.protected {
        comment.push_str(" [protected]");
    }
    let verdict = match rule.action {
        Action::Accept => KernelVerdict::Accept,
        Action::Drop => KernelVerdict::Drop,
        Action::Reject => KernelVerdict::Reject(rule.protocol),
    };
    rule.ports
        .iter()
        .map(|range| {
            let mut matches = Vec::new();
            if let Some(address) = rule.source {
                matches.push(Match::Family(address.family()));
                if !is_everything(&address) {
                    matches.push(match rule.chain {
                        Chain::Input => Match::Source(address),
                        Chain::Output => Match::Destination(address),
                    });
                }
            }
            matches.push(Match::L4(rule.protocol.number()));
            matches.push(Match::Port(*range));
            KernelRule {
                matches,
                counter: true,
                verdict,
                comment: comment.clone(),
            }
        })
        .collect()
}

/// `0.0.0.0/0`, `::/0`: the whole family, matched by `meta nfproto` alone.
fn is_everything(target: &BanTarget) -> bool {
    matches!(target, BanTarget::Net(p) if p.prefix_len() == 0)
}

fn forward_comment(id: u64, forward: &Forward) -> String {
    match forward.comment.is_empty() {
        true => format!("forward {id}"),
        false => format!("forward {id}: {}", forward.comment),
    }
}

fn address_family(ip: IpAddr) -> Family {
    match ip {
        IpAddr::V4(_) => Family::V4,
        IpAddr::V6(_) => Family::V6,
    }
}

/// `ip daddr BACKEND th dport BACKEND_PORT ct status dnat VERDICT`: the forwarded connection,
/// after the DNAT (forward chain accept, postrouting masquerade).
fn forward_rule(id: u64, forward: &Forward, verdict: KernelVerdict) -> KernelRule {
    KernelRule {
        matches: vec![
            Match::Family(address_family(forward.to.ip())),
            Match::Destination(BanTarget::addr(forward.to.ip())),
            Match::L4(forward.protocol.number()),
            Match::Port(PortRange::single(forward.to.port())),
            Match::CtStatusDnat,
        ],
        counter: true,
        verdict,
        comment: forward_comment(id, forward),
    }
}

/// `[ip saddr SOURCE] th dport PORT dnat ip to BACKEND` in prerouting.
fn dnat_rule(id: u64, forward: &Forward) -> KernelRule {
    let mut matches = vec![Match::Family(address_family(forward.to.ip()))];
    if let Some(source) = forward.source.filter(|s| !is_everything(s)) {
        matches.push(Match::Source(source));
    }
    matches.push(Match::L4(forward.protocol.number()));
    matches.push(Match::Port(PortRange::single(forward.port)));
    KernelRule {
        matches,
        counter: true,
        verdict: KernelVerdict::Dnat(forward.to),
        comment: forward_comment(id, forward),
    }
}

#[cfg(test)]
mod tests;
