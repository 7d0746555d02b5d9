//! Active bans and ban history, as the tracker sees them.
//!
//! [`ActiveBans`] indexes every live ban by jail and target, answers "is this address already
//! banned here (by itself or by a prefix)", and yields bans as they expire (a min-heap with lazy
//! deletion). [`History`] remembers when each target was banned, in which jail, for escalation
//! and recidive; it forgets entries older than its retention. Neither does I/O.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::IpAddr;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::addr::{BanTarget, Prefix, canonical};
use crate::fleet::NodeName;
use crate::hash::{FastMap, FastSet};
use crate::jail::JailName;

/// Why a ban exists. Written as `failures`, `manual`, `recidive`, `adopted` or `fleet:<node>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Origin {
    /// `maxretry` failures within `findtime`.
    Failures,
    /// `nftjail ban`.
    Manual,
    /// Banned `maxbans` times across jails.
    Recidive,
    /// Found in the kernel at start without a record (kept, never flushed).
    Adopted,
    /// Decided by this peer of the fleet (`[cluster]`); never published again.
    Fleet(NodeName),
    /// Carried over from another program (fail2ban's database) with its own times and count.
    Imported,
}

impl Origin {
    /// Whether a peer of the fleet decided it.
    pub fn is_fleet(&self) -> bool {
        matches!(self, Origin::Fleet(_))
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Failures => f.write_str("failures"),
            Origin::Manual => f.write_str("manual"),
            Origin::Recidive => f.write_str("recidive"),
            Origin::Adopted => f.write_str("adopted"),
            Origin::Imported => f.write_str("imported"),
            Origin::Fleet(node) => write!(f, "fleet:{node}"),
        }
    }
}

impl FromStr for Origin {
    type Err = String;

    fn from_str(text: &str) -> Result<Origin, String> {
        match text {
            "failures" => Ok(Origin::Failures),
            "manual" => Ok(Origin::Manual),
            "recidive" => Ok(Origin::Recidive),
            "adopted" => Ok(Origin::Adopted),
            "imported" => Ok(Origin::Imported),
            _ => match text.strip_prefix("fleet:") {
                Some(node) => node.parse().map(Origin::Fleet).map_err(|e| e.to_string()),
                None => Err(format!("unknown ban origin {text:?}")),
            },
        }
    }
}

impl Serialize for Origin {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Origin {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Origin, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// One ban of one target in one jail. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ban {
    pub jail: JailName,
    pub target: BanTarget,
    pub since: i64,
    /// `None`: permanent.
    pub expires: Option<i64>,
    /// This is the target's `count`-th ban (1 for a first offender), as escalation counted it.
    pub count: u32,
    pub origin: Origin,
}

impl Ban {
    /// Whether the ban is still in force at `now`.
    pub fn live_at(&self, now: i64) -> bool {
        self.expires.is_none_or(|e| e > now)
    }

    /// Seconds left at `now` (`None`: permanent).
    pub fn remaining(&self, now: i64) -> Option<u64> {
        self.expires.map(|e| u64::try_from(e - now).unwrap_or(0))
    }

    /// Whether this ban ends no earlier than `other`.
    pub fn outlasts(&self, other: &Ban) -> bool {
        match (self.expires, other.expires) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(a), Some(b)) => a >= b,
        }
    }
}

#[derive(Default)]
struct JailBans {
    by_target: FastMap<BanTarget, Ban>,
    /// The single addresses of `by_target`, for [`ActiveBans::covers`]: every failure of an
    /// address that is banned already asks, and under a distributed attack `by_target`'s
    /// 112-byte slots spread over megabytes while this is ~18 bytes a ban.
    addrs: FastSet<IpAddr>,
    /// How many active prefixes of each length (index = length) per family, so an address
    /// lookup probes only the lengths in use.
    net_lengths_v4: Vec<u32>,
    net_lengths_v6: Vec<u32>,
}

impl JailBans {
    /// The prefix ban holding `addr` (canonical), probing only the lengths in use.
    fn covering_net(&self, addr: IpAddr) -> Option<&Ban> {
        let lengths = match addr {
            IpAddr::V4(_) => &self.net_lengths_v4,
            IpAddr::V6(_) => &self.net_lengths_v6,
        };
        lengths
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .find_map(|(len, _)| {
                let p = Prefix::new(addr, u8::try_from(len).expect("invariant: length ≤ 128"))?;
                self.by_target.get(&BanTarget::Net(p))
            })
    }

    fn lengths(&mut self, p: &Prefix) -> &mut u32 {
        let (table, size) = match p.addr() {
            IpAddr::V4(_) => (&mut self.net_lengths_v4, 33),
            IpAddr::V6(_) => (&mut self.net_lengths_v6, 129),
        };
        if table.is_empty() {
            table.resize(size, 0);
        }
        &mut table[usize::from(p.prefix_len())]
    }
}

/// Every live ban, by jail.
#[derive(Default)]
pub struct ActiveBans {
    jails: FastMap<JailName, JailBans>,
    /// (expiry, jail, target); an entry is stale when the ban was removed or re-timed.
    expiry: BinaryHeap<Reverse<(i64, JailName, BanTarget)>>,
}

impl ActiveBans {
    /// Inserts or replaces the ban of `(ban.jail, ban.target)`; returns the one it replaced.
    pub fn insert(&mut self, ban: Ban) -> Option<Ban> {
        if let Some(e) = ban.expires {
            self.expiry.push(Reverse((e, ban.jail.clone(), ban.target)));
        }
        let jail = self.jails.entry(ban.jail.clone()).or_default();
        match &ban.target {
            BanTarget::Net(p) if !jail.by_target.contains_key(&ban.target) => {
                *jail.lengths(p) += 1;
            }
            BanTarget::Net(_) => {}
            BanTarget::Addr(addr) => {
                jail.addrs.insert(*addr);
            }
        }
        jail.by_target.insert(ban.target, ban)
    }

    pub fn remove(&mut self, jail: &JailName, target: &BanTarget) -> Option<Ban> {
        let bans = self.jails.get_mut(jail)?;
        let ban = bans.by_target.remove(target)?;
        match target {
            BanTarget::Net(p) => *bans.lengths(p) -= 1,
            BanTarget::Addr(addr) => {
                bans.addrs.remove(addr);
            }
        }
        Some(ban)
    }

    pub fn get(&self, jail: &JailName, target: &BanTarget) -> Option<&Ban> {
        self.jails.get(jail)?.by_target.get(target)
    }

    /// The ban in `jail` that covers `addr`, read from the bans themselves: the tests' check of
    /// [`covers`](Self::covers), which answers from the address set.
    #[cfg(test)]
    fn covering(&self, jail: &JailName, addr: IpAddr) -> Option<&Ban> {
        let bans = self.jails.get(jail)?;
        let addr = canonical(addr);
        if let Some(b) = bans.by_target.get(&BanTarget::Addr(addr)) {
            return Some(b);
        }
        bans.covering_net(addr)
    }

    /// Whether a ban in `jail` already covers `addr`: the address itself or a prefix holding
    /// it, answered without reading the ban.
    pub fn covers(&self, jail: &JailName, addr: IpAddr) -> bool {
        let Some(bans) = self.jails.get(jail) else {
            return false;
        };
        let addr = canonical(addr);
        bans.addrs.contains(&addr) || bans.covering_net(addr).is_some()
    }

    /// Active prefix bans of `jail` that overlap `net` (nested either way).
    pub fn overlapping(&self, jail: &JailName, net: &Prefix) -> Vec<Ban> {
        let Some(bans) = self.jails.get(jail) else {
            return Vec::new();
        };
        let lengths = match net.addr() {
            IpAddr::V4(_) => &bans.net_lengths_v4,
            IpAddr::V6(_) => &bans.net_lengths_v6,
        };
        if lengths.iter().all(|n| *n == 0) {
            return Vec::new();
        }
        bans.by_target
            .values()
            .filter(|b| matches!(&b.target, BanTarget::Net(p) if p.covers(net) || net.covers(p)))
            .cloned()
            .collect()
    }

    /// Removes and returns every ban that has ended at `now`.
    pub fn expire(&mut self, now: i64) -> Vec<Ban> {
        let mut ended = Vec::new();
        while let Some(Reverse((at, _, _))) = self.expiry.peek() {
            if *at > now {
                break;
            }
            let Reverse((at, jail, target)) = self.expiry.pop().expect("invariant: peeked");
            // Only a ban that still ends at this time is due; otherwise the entry is stale.
            if self
                .get(&jail, &target)
                .is_some_and(|b| b.expires == Some(at))
            {
                ended.extend(self.remove(&jail, &target));
            }
        }
        ended
    }

    /// Bans of one jail.
    pub fn in_jail(&self, jail: &JailName) -> impl Iterator<Item = &Ban> {
        self.jails
            .get(jail)
            .into_iter()
            .flat_map(|b| b.by_target.values())
    }

    pub fn count_in(&self, jail: &JailName) -> usize {
        self.jails.get(jail).map_or(0, |b| b.by_target.len())
    }

    /// Drops a jail and returns its bans.
    pub fn remove_jail(&mut self, jail: &JailName) -> Vec<Ban> {
        self.jails
            .remove(jail)
            .map(|b| b.by_target.into_values().collect())
            .unwrap_or_default()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Ban> {
        self.jails.values().flat_map(|b| b.by_target.values())
    }

    pub fn len(&self) -> usize {
        self.jails.values().map(|b| b.by_target.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// When a target was banned, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub target: BanTarget,
    pub jail: JailName,
    pub at: i64,
}

/// The most bans remembered per target: enough for any escalation or recidive threshold.
const PER_TARGET: usize = 64;

/// Past bans per target, forgotten after `retention` seconds.
pub struct History {
    retention: i64,
    /// Oldest first. A `Vec`, not a `VecDeque`: most targets are banned once, and a `Vec` of
    /// one entry costs 24 bytes where a `VecDeque` reserves four.
    entries: FastMap<BanTarget, Vec<(JailName, i64)>>,
}

impl History {
    pub fn new(retention: u64) -> History {
        History {
            retention: i64::try_from(retention).unwrap_or(i64::MAX),
            entries: FastMap::default(),
        }
    }

    pub fn set_retention(&mut self, retention: u64) {
        self.retention = i64::try_from(retention).unwrap_or(i64::MAX);
    }

    pub fn record(&mut self, target: BanTarget, jail: JailName, at: i64) {
        let past = self
            .entries
            .entry(target)
            .or_insert_with(|| Vec::with_capacity(1));
        past.push((jail, at));
        if past.len() > PER_TARGET {
            past.remove(0);
        }
    }

    /// Bans of `target` after `after`, in the jails `counts` accepts.
    pub fn count(&self, target: &BanTarget, after: i64, counts: impl Fn(&JailName) -> bool) -> u32 {
        self.entries.get(target).map_or(0, |past| {
            let n = past
                .iter()
                .filter(|(jail, at)| *at > after && counts(jail))
                .count();
            u32::try_from(n).unwrap_or(u32::MAX)
        })
    }

    /// Forgets what is older than the retention.
    pub fn sweep(&mut self, now: i64) {
        let horizon = now.saturating_sub(self.retention);
        self.entries.retain(|_, past| {
            past.retain(|(_, at)| *at > horizon);
            !past.is_empty()
        });
    }

    pub fn entries(&self) -> impl Iterator<Item = HistoryEntry> + '_ {
        self.entries.iter().flat_map(|(target, past)| {
            past.iter().map(move |(jail, at)| HistoryEntry {
                target: *target,
                jail: jail.clone(),
                at: *at,
            })
        })
    }

    pub fn len(&self) -> usize {
        self.entries.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_written_as_words() {
        for (origin, text) in [
            (Origin::Failures, "\"failures\""),
            (Origin::Manual, "\"manual\""),
            (Origin::Recidive, "\"recidive\""),
            (Origin::Adopted, "\"adopted\""),
            (Origin::Fleet("mail1".parse().unwrap()), "\"fleet:mail1\""),
        ] {
            assert_eq!(serde_json::to_string(&origin).unwrap(), text);
            assert_eq!(serde_json::from_str::<Origin>(text).unwrap(), origin);
        }
        for bad in ["\"fleet:\"", "\"fleet:a.b\"", "\"other\""] {
            assert!(serde_json::from_str::<Origin>(bad).is_err(), "{bad}");
        }
    }

    fn jail(s: &str) -> JailName {
        s.parse().unwrap()
    }

    fn ban(j: &str, t: &str, expires: Option<i64>) -> Ban {
        Ban {
            jail: jail(j),
            target: t.parse().unwrap(),
            since: 0,
            expires,
            count: 1,
            origin: Origin::Failures,
        }
    }

    #[test]
    fn covering_finds_address_and_prefix_bans() {
        let mut a = ActiveBans::default();
        // `covers` answers from the address set and the prefixes; `covering` reads the bans.
        let check = |a: &ActiveBans, j: &str, addr: &str, want: bool| {
            let addr = addr.parse::<IpAddr>().unwrap();
            assert_eq!(
                a.covering(&jail(j), addr).is_some(),
                want,
                "covering {j} {addr}"
            );
            assert_eq!(a.covers(&jail(j), addr), want, "covers {j} {addr}");
        };
        a.insert(ban("sshd", "192.0.2.1", Some(100)));
        a.insert(ban("sshd", "2001:db8:1:2::/64", Some(100)));
        a.insert(ban("web", "198.51.100.0/24", None));
        check(&a, "sshd", "192.0.2.1", true);
        check(&a, "sshd", "::ffff:192.0.2.1", true);
        check(&a, "sshd", "2001:db8:1:2::99", true);
        check(&a, "sshd", "2001:db8:1:3::99", false);
        check(&a, "sshd", "198.51.100.7", false); // another jail's prefix
        check(&a, "web", "198.51.100.7", true);
        check(&a, "web", "192.0.2.1", false); // another jail's address
        check(&a, "mail", "192.0.2.1", false); // a jail without bans
        a.remove(&jail("sshd"), &"2001:db8:1:2::/64".parse().unwrap());
        check(&a, "sshd", "2001:db8:1:2::99", false);
        // Replaced, then removed, then expired: the address set follows the bans.
        a.insert(ban("sshd", "192.0.2.1", Some(200)));
        check(&a, "sshd", "192.0.2.1", true);
        a.remove(&jail("sshd"), &"192.0.2.1".parse().unwrap());
        check(&a, "sshd", "192.0.2.1", false);
        a.insert(ban("sshd", "192.0.2.9", Some(300)));
        check(&a, "sshd", "192.0.2.9", true);
        assert_eq!(a.expire(300).len(), 1);
        check(&a, "sshd", "192.0.2.9", false);
        a.insert(ban("sshd", "192.0.2.9", Some(400)));
        a.remove_jail(&jail("sshd"));
        check(&a, "sshd", "192.0.2.9", false);
    }

    #[test]
    fn expire_yields_due_bans_once_and_skips_retimed_ones() {
        let mut a = ActiveBans::default();
        a.insert(ban("sshd", "192.0.2.1", Some(100)));
        a.insert(ban("sshd", "192.0.2.2", Some(200)));
        a.insert(ban("sshd", "192.0.2.3", None));
        // 192.0.2.1 was re-banned until 300: its 100 entry is stale.
        a.insert(ban("sshd", "192.0.2.1", Some(300)));
        assert!(a.expire(150).is_empty());
        let ended = a.expire(250);
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].target.to_string(), "192.0.2.2");
        assert_eq!(a.expire(1_000).len(), 1);
        assert_eq!(a.len(), 1, "the permanent ban stays");
    }

    #[test]
    fn overlapping_finds_nested_prefixes_both_ways() {
        let mut a = ActiveBans::default();
        a.insert(ban("m", "10.0.0.0/8", None));
        a.insert(ban("m", "192.0.2.0/24", None));
        a.insert(ban("m", "192.0.2.7", None));
        let p = |s: &str| match s.parse::<BanTarget>().unwrap() {
            BanTarget::Net(p) => p,
            _ => panic!(),
        };
        assert_eq!(a.overlapping(&jail("m"), &p("10.1.0.0/16")).len(), 1);
        assert_eq!(a.overlapping(&jail("m"), &p("192.0.0.0/16")).len(), 1);
        assert!(a.overlapping(&jail("m"), &p("172.16.0.0/12")).is_empty());
    }

    #[test]
    fn history_counts_by_jail_and_time_and_forgets() {
        let mut h = History::new(1_000);
        let t: BanTarget = "192.0.2.1".parse().unwrap();
        h.record(t, jail("sshd"), 100);
        h.record(t, jail("postfix"), 200);
        h.record(t, jail("sshd"), 300);
        assert_eq!(h.count(&t, 0, |_| true), 3);
        assert_eq!(h.count(&t, 150, |_| true), 2);
        assert_eq!(h.count(&t, 0, |j| j.as_str() == "sshd"), 2);
        h.sweep(1_250);
        assert_eq!(
            h.count(&t, 0, |_| true),
            1,
            "only the ban at 300 is within 1000 s"
        );
        h.sweep(5_000);
        assert!(h.is_empty());
    }

    #[test]
    fn history_is_bounded_per_target() {
        let mut h = History::new(u64::MAX);
        let t: BanTarget = "192.0.2.1".parse().unwrap();
        for at in 0..1_000 {
            h.record(t, jail("sshd"), at);
        }
        assert_eq!(h.len(), PER_TARGET);
    }
}
