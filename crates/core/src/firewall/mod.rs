//! The host firewall beside the bans: rules, port forwards, default policies, lock-out checks.
//!
//! Receives rules and forwards as their fields (from `firewall.d` files, the control socket and
//! the state log; service names already resolved to numbers by the daemon); emits validated
//! [`Rule`]s and [`Forward`]s ([`text`]: every refusal names its field), the [`Ruleset`] that
//! gives each one a stable id and its place in the order (file rules first, in file order, then
//! the rules added at run time, in creation order), the state records of every change, and the
//! verdict of the [`lockout`] check. Never touches the kernel, reads a file or resolves a name:
//! the backend turns a ruleset into nftables chains, the daemon owns the files and the socket.

pub mod lockout;
mod ruleset;
pub mod text;

use std::fmt;
use std::net::SocketAddr;

use crate::addr::BanTarget;
pub use crate::ports::{PortRange, Protocol};
pub use lockout::{Lockout, Session};
pub use ruleset::{
    Change, Entry, FileEntry, FirewallError, FirewallRecord, FirewallState, Origin, Ruleset,
};
pub use text::FieldError;

/// The chain a rule filters: traffic to the host, or traffic the host sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Chain {
    Input,
    Output,
}

impl Chain {
    pub fn name(self) -> &'static str {
        match self {
            Chain::Input => "input",
            Chain::Output => "output",
        }
    }
}

/// What a rule does with the packets it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    Accept,
    Drop,
    /// `tcp reset` for tcp, `icmpx port-unreachable` for udp.
    Reject,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Accept => "accept",
            Action::Drop => "drop",
            Action::Reject => "reject",
        }
    }
}

/// What a chain does with the packets no rule matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Policy {
    Accept,
    Drop,
}

impl Policy {
    pub fn name(self) -> &'static str {
        match self {
            Policy::Accept => "accept",
            Policy::Drop => "drop",
        }
    }
}

/// One firewall rule: `chain`, `protocol`, destination `ports`, an optional remote address or
/// prefix (`source`: the sender in `input`, the peer the host talks to in `output`), the
/// `action`, a `comment`, and whether it is `protected` (never deleted through the API).
///
/// Built through [`Rule::new`] (or parsed by [`text`]): `ports` is sorted, merged and never
/// empty, and `comment` is printable text of at most [`text::MAX_COMMENT`] bytes without `"` or
/// `\` (it is shown in `nft list ruleset`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rule {
    pub chain: Chain,
    pub protocol: Protocol,
    pub ports: Vec<PortRange>,
    pub source: Option<BanTarget>,
    pub action: Action,
    pub comment: String,
    pub protected: bool,
}

impl Rule {
    /// Whether the rule matches a packet of `protocol` to `port` from `address` (`None`: an
    /// address the caller does not know; only rules without a source then match for sure).
    pub fn matches(
        &self,
        protocol: Protocol,
        port: u16,
        address: Option<std::net::IpAddr>,
    ) -> bool {
        self.protocol == protocol
            && self.ports.iter().any(|r| r.first <= port && port <= r.last)
            && match (&self.source, address) {
                (None, _) => true,
                (Some(source), Some(address)) => source.contains(address),
                (Some(_), None) => false,
            }
    }

    /// Whether `other` does the same to the same packets (comments and protection aside).
    pub fn same_match(&self, other: &Rule) -> bool {
        (
            self.chain,
            self.protocol,
            &self.ports,
            self.source,
            self.action,
        ) == (
            other.chain,
            other.protocol,
            &other.ports,
            other.source,
            other.action,
        )
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} port {} from {} {}",
            self.chain.name(),
            text::protocol_name(self.protocol),
            text::format_ports(&self.ports),
            self.source
                .map_or_else(|| "any".to_string(), |s| s.to_string()),
            self.action.name()
        )?;
        if !self.comment.is_empty() {
            write!(f, " \"{}\"", self.comment)?;
        }
        Ok(())
    }
}

/// One port forward: packets of `protocol` to the host's `port` (from `source`, if given) are
/// sent on to `to` (DNAT), with the backend's answers coming back through the host
/// (masquerade), and accepted in the forward chain.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Forward {
    pub protocol: Protocol,
    pub port: u16,
    pub to: SocketAddr,
    pub source: Option<BanTarget>,
    pub comment: String,
}

impl Forward {
    /// Whether `self` and `other` would claim the same packets: same protocol and port, same
    /// address family, and sources that overlap (no source overlaps every source).
    pub fn overlaps(&self, other: &Forward) -> bool {
        let sources_overlap = match (&self.source, &other.source) {
            (None, _) | (_, None) => true,
            (Some(a), Some(b)) => covers(a, b) || covers(b, a),
        };
        self.protocol == other.protocol
            && self.port == other.port
            && self.to.is_ipv4() == other.to.is_ipv4()
            && sources_overlap
    }
}

/// Whether every address of `inner` lies in `outer`.
fn covers(outer: &BanTarget, inner: &BanTarget) -> bool {
    match (outer, inner) {
        (BanTarget::Addr(a), BanTarget::Addr(b)) => a == b,
        (BanTarget::Addr(_), BanTarget::Net(_)) => false,
        (BanTarget::Net(p), BanTarget::Addr(a)) => p.contains(*a),
        (BanTarget::Net(p), BanTarget::Net(q)) => p.covers(q),
    }
}

impl fmt::Display for Forward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} port {} from {} to {}",
            text::protocol_name(self.protocol),
            self.port,
            self.source
                .map_or_else(|| "any".to_string(), |s| s.to_string()),
            self.to
        )?;
        if !self.comment.is_empty() {
            write!(f, " \"{}\"", self.comment)?;
        }
        Ok(())
    }
}

/// The firewall's settings from `[firewall]`: whether it is on (unless the API switched it),
/// the default policies, and the ports an administrator must keep reaching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub enabled: bool,
    pub default_input: Policy,
    pub default_output: Policy,
    pub default_forward: Policy,
    /// TCP ports a default-drop input policy must leave open through a protected accept rule
    /// when the request to enable it did not come over SSH.
    pub admin_ports: Vec<u16>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            enabled: false,
            default_input: Policy::Drop,
            default_output: Policy::Accept,
            default_forward: Policy::Accept,
            admin_ports: vec![22],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forward(port: u16, to: &str, source: Option<&str>) -> Forward {
        Forward {
            protocol: Protocol::Tcp,
            port,
            to: to.parse().unwrap(),
            source: source.map(|s| s.parse().unwrap()),
            comment: String::new(),
        }
    }

    #[test]
    fn forwards_overlap_on_the_same_port_family_and_sources() {
        let any = forward(2525, "10.0.0.2:25", None);
        let cases = [
            (forward(2525, "10.0.0.3:25", None), true),
            (forward(2525, "10.0.0.3:25", Some("192.0.2.0/24")), true),
            (forward(2526, "10.0.0.2:25", None), false),
            (forward(2525, "[2001:db8::2]:25", None), false),
        ];
        for (other, want) in cases {
            assert_eq!(any.overlaps(&other), want, "{other}");
            assert_eq!(other.overlaps(&any), want, "{other} (reversed)");
        }
        let office = forward(2525, "10.0.0.2:25", Some("192.0.2.0/24"));
        let inside = forward(2525, "10.0.0.3:25", Some("192.0.2.7"));
        let elsewhere = forward(2525, "10.0.0.3:25", Some("198.51.100.0/24"));
        assert!(office.overlaps(&inside) && inside.overlaps(&office));
        assert!(!office.overlaps(&elsewhere));
    }

    #[test]
    fn rules_match_protocol_port_and_source() {
        let rule = Rule {
            chain: Chain::Input,
            protocol: Protocol::Tcp,
            ports: vec![
                PortRange::single(22),
                PortRange {
                    first: 1000,
                    last: 2000,
                },
            ],
            source: Some("192.0.2.0/24".parse().unwrap()),
            action: Action::Accept,
            comment: String::new(),
            protected: false,
        };
        let inside = Some("192.0.2.9".parse().unwrap());
        assert!(rule.matches(Protocol::Tcp, 22, inside));
        assert!(rule.matches(Protocol::Tcp, 1500, inside));
        assert!(!rule.matches(Protocol::Udp, 22, inside));
        assert!(!rule.matches(Protocol::Tcp, 23, inside));
        assert!(!rule.matches(Protocol::Tcp, 22, Some("198.51.100.1".parse().unwrap())));
        assert!(!rule.matches(Protocol::Tcp, 22, None), "unknown sender");
    }
}
