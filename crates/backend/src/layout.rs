//! What the backend builds in nftables: the table, its base chains, the jail sets and rules.
//!
//! Receives the validated nftables part of the config (from the banner); emits the set names
//! and the per-jail rule plan that every backend implements. It never talks to the kernel and
//! never decides about elements.
//!
//! Naming: every jail owns four sets, `JAIL_v4` / `JAIL_v6` (single addresses, hash sets with
//! per-element timeouts) and `JAIL_net4` / `JAIL_net6` (CIDR prefixes, interval sets with
//! per-element timeouts). A set name is parsed back with [`parse_set_name`] so that a dump can be
//! mapped to jail and target; names that are not ours are ignored.

use nftjail_core::addr::{BanTarget, Family};
use nftjail_core::jail::JailName;
pub use nftjail_core::ports::{PortRange, Ports, Protocol, normalize_ports};

/// The default table name (`inet nftjail`).
pub const DEFAULT_TABLE: &str = "nftjail";

/// Priority of the base chains: just before the default `filter` priority (0).
pub const CHAIN_PRIORITY: i32 = -10;

/// The whole nftables layout: one `inet` table owned by nftjail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub table: String,
    pub hooks: Vec<Hook>,
    pub verdict: Verdict,
    pub jails: Vec<JailRules>,
}

/// A netfilter hook that gets a base chain named after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Hook {
    Input,
    Forward,
}

impl Hook {
    pub const ALL: [Hook; 2] = [Hook::Input, Hook::Forward];

    /// The chain name, which is also the hook's name in `nft`.
    pub fn chain_name(self) -> &'static str {
        match self {
            Hook::Input => "input",
            Hook::Forward => "forward",
        }
    }

    pub fn from_chain_name(name: &str) -> Option<Hook> {
        Hook::ALL.into_iter().find(|h| h.chain_name() == name)
    }
}

/// What a rule does with a banned packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// `drop`.
    Drop,
    /// `reject with tcp reset` in tcp rules, `reject with icmpx admin-prohibited` otherwise.
    Reject,
}

/// The rules of one jail: which ports and protocols its bans close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JailRules {
    pub name: JailName,
    pub ports: Ports,
    pub protocols: Vec<Protocol>,
}

/// The four sets of a jail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SetKind {
    /// `JAIL_v4`: single IPv4 addresses.
    Addr4,
    /// `JAIL_v6`: single IPv6 addresses.
    Addr6,
    /// `JAIL_net4`: IPv4 prefixes (interval set).
    Net4,
    /// `JAIL_net6`: IPv6 prefixes (interval set).
    Net6,
}

impl SetKind {
    pub const ALL: [SetKind; 4] = [SetKind::Addr4, SetKind::Addr6, SetKind::Net4, SetKind::Net6];

    /// The set that holds `target`.
    pub fn of(target: &BanTarget) -> SetKind {
        match (target, target.family()) {
            (BanTarget::Addr(_), Family::V4) => SetKind::Addr4,
            (BanTarget::Addr(_), Family::V6) => SetKind::Addr6,
            (BanTarget::Net(_), Family::V4) => SetKind::Net4,
            (BanTarget::Net(_), Family::V6) => SetKind::Net6,
        }
    }

    pub fn suffix(self) -> &'static str {
        match self {
            SetKind::Addr4 => "_v4",
            SetKind::Addr6 => "_v6",
            SetKind::Net4 => "_net4",
            SetKind::Net6 => "_net6",
        }
    }

    pub fn family(self) -> Family {
        match self {
            SetKind::Addr4 | SetKind::Net4 => Family::V4,
            SetKind::Addr6 | SetKind::Net6 => Family::V6,
        }
    }

    /// Whether the set is an interval set (prefixes).
    pub fn is_interval(self) -> bool {
        matches!(self, SetKind::Net4 | SetKind::Net6)
    }
}

/// The name of `jail`'s set of `kind`, e.g. `postfix-sasl_net6`.
pub fn set_name(jail: &JailName, kind: SetKind) -> String {
    format!("{}{}", jail.as_str(), kind.suffix())
}

/// The jail and kind of a set name we created; `None` for any other name.
pub fn parse_set_name(name: &str) -> Option<(JailName, SetKind)> {
    SetKind::ALL.into_iter().find_map(|kind| {
        let jail = name.strip_suffix(kind.suffix())?;
        jail.parse().ok().map(|jail| (jail, kind))
    })
}

/// The comment (rule userdata) that marks a jail's rules: `nftjail:JAIL`.
pub fn rule_comment(jail: &JailName) -> String {
    format!("nftjail:{}", jail.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jail(name: &str) -> JailName {
        name.parse().unwrap()
    }

    #[test]
    fn set_names_round_trip_with_dashes() {
        for kind in SetKind::ALL {
            let name = set_name(&jail("postfix-sasl"), kind);
            assert_eq!(parse_set_name(&name), Some((jail("postfix-sasl"), kind)));
        }
        assert_eq!(set_name(&jail("sshd"), SetKind::Net6), "sshd_net6");
        assert_eq!(set_name(&jail("sshd"), SetKind::Addr4), "sshd_v4");
    }

    #[test]
    fn foreign_set_names_are_not_ours() {
        for name in ["__set0", "blocklist", "_v4", "1x_v4", "sshd_v5", "sshd"] {
            assert_eq!(parse_set_name(name), None, "{name}");
        }
    }

    #[test]
    fn set_kind_follows_target() {
        let cases = [
            ("192.0.2.1", SetKind::Addr4),
            ("2001:db8::1", SetKind::Addr6),
            ("192.0.2.0/24", SetKind::Net4),
            ("2001:db8::/64", SetKind::Net6),
        ];
        for (text, kind) in cases {
            assert_eq!(SetKind::of(&text.parse().unwrap()), kind, "{text}");
        }
    }
}
