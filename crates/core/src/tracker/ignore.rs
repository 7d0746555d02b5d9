//! `ignoreip` and `ignoreself`: addresses that are never banned.
//!
//! Receives the resolved list (addresses, prefixes; host names are resolved by the config
//! loader, the host's own addresses by the daemon) and answers `contains`. Lookups are O(1) for
//! single addresses and O(prefix lengths) for prefixes: one hash probe per distinct prefix length.

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::addr::{BanTarget, Prefix, canonical};
use crate::hash::FastSet;

/// Addresses and prefixes a jail never bans.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IgnoreList {
    addrs: FastSet<IpAddr>,
    prefixes: FastSet<Prefix>,
    /// Distinct prefix lengths per family, longest first, so `contains` probes each once.
    lengths_v4: BTreeSet<u8>,
    lengths_v6: BTreeSet<u8>,
}

impl IgnoreList {
    pub fn new(targets: impl IntoIterator<Item = BanTarget>) -> IgnoreList {
        let mut list = IgnoreList::default();
        for target in targets {
            list.insert(target);
        }
        list
    }

    pub fn insert(&mut self, target: BanTarget) {
        match target {
            BanTarget::Addr(a) => {
                self.addrs.insert(a);
            }
            BanTarget::Net(p) => {
                match p.addr() {
                    IpAddr::V4(_) => self.lengths_v4.insert(p.prefix_len()),
                    IpAddr::V6(_) => self.lengths_v6.insert(p.prefix_len()),
                };
                self.prefixes.insert(p);
            }
        }
    }

    /// Whether `addr` is ignored.
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = canonical(addr);
        if self.addrs.contains(&addr) {
            return true;
        }
        let lengths = match addr {
            IpAddr::V4(_) => &self.lengths_v4,
            IpAddr::V6(_) => &self.lengths_v6,
        };
        lengths
            .iter()
            .any(|&len| Prefix::new(addr, len).is_some_and(|p| self.prefixes.contains(&p)))
    }

    /// Whether any address of `target` is ignored (a prefix ban that would cover an ignored
    /// address is refused as a whole).
    pub fn overlaps(&self, target: &BanTarget) -> bool {
        match target {
            BanTarget::Addr(a) => self.contains(*a),
            BanTarget::Net(net) => {
                self.contains(net.addr())
                    || self.addrs.iter().any(|a| net.contains(*a))
                    || self.prefixes.iter().any(|p| net.covers(p) || p.covers(net))
            }
        }
    }

    pub fn len(&self) -> usize {
        self.addrs.len() + self.prefixes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> IgnoreList {
        IgnoreList::new(items.iter().map(|s| s.parse::<BanTarget>().unwrap()))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn matches_addresses_and_prefixes() {
        let l = list(&[
            "127.0.0.0/8",
            "::1",
            "192.0.2.10",
            "2001:db8:1::/48",
            "10.0.0.0/8",
            "10.1.2.0/24",
        ]);
        let cases = [
            ("127.0.0.1", true),
            ("127.255.255.254", true),
            ("::1", true),
            ("::ffff:127.0.0.1", true),
            ("192.0.2.10", true),
            ("192.0.2.11", false),
            ("2001:db8:1:ffff::1", true),
            ("2001:db8:2::1", false),
            ("10.200.0.1", true),
            ("11.0.0.1", false),
            ("8.8.8.8", false),
        ];
        for (addr, want) in cases {
            assert_eq!(l.contains(ip(addr)), want, "{addr}");
        }
    }

    #[test]
    fn prefix_bans_overlapping_ignored_space_are_caught() {
        let l = list(&["192.0.2.10", "198.51.100.0/24"]);
        let t = |s: &str| s.parse::<BanTarget>().unwrap();
        assert!(l.overlaps(&t("192.0.2.0/24")), "covers an ignored address");
        assert!(l.overlaps(&t("198.51.0.0/16")), "covers an ignored prefix");
        assert!(
            l.overlaps(&t("198.51.100.128/25")),
            "inside an ignored prefix"
        );
        assert!(!l.overlaps(&t("203.0.113.0/24")));
        assert!(!l.overlaps(&t("192.0.2.11")));
    }

    #[test]
    fn empty_list_ignores_nothing() {
        assert!(!IgnoreList::default().contains(ip("127.0.0.1")));
    }
}
