//! `MemoryBackend`: the backend in memory, for unit tests and benches of other stages.
//!
//! Receives the same calls as the netlink backend and answers like the kernel does: a change to
//! a table that does not exist fails with `NoSuchTable`, interval (prefix) sets refuse
//! overlapping prefixes, removing a missing element fails with `ENOENT`, an element re-added
//! gets its new timeout, and elements expire. The firewall's chains are kept as their plan: a
//! firewall applied twice is one transaction, and the report counts the rules that differ. Time is injected with [`MemoryBackend::advance`]:
//! it never sleeps and never reads the clock.

use std::collections::BTreeMap;
use std::time::Duration;

use nix::errno::Errno;

use super::firewall::diff::diff;
use super::{
    ApplyError, Backend, BackendError, ChainPlan, Change, Element, FirewallLayout, FirewallReport,
    Layout, SetKind, firewall_plan, parse_set_name, set_name,
};
use nftjail_core::addr::BanTarget;
use nftjail_core::jail::JailName;

/// An in-memory stand-in for the kernel's nftables table.
#[derive(Debug, Clone)]
pub struct MemoryBackend {
    table: String,
    now: Duration,
    /// The table, when it exists: its sets by name.
    sets: Option<BTreeMap<String, Set>>,
    /// The firewall's chains, while the table exists.
    firewall: Vec<ChainPlan>,
    transactions: usize,
}

#[derive(Debug, Clone, Default)]
struct Set {
    elements: BTreeMap<BanTarget, Stored>,
}

#[derive(Debug, Clone, Copy)]
struct Stored {
    timeout: Option<Duration>,
    /// Virtual time at which the element expires.
    deadline: Option<Duration>,
}

impl MemoryBackend {
    /// A backend for table `inet <table>`, which does not exist yet.
    pub fn new(table: &str) -> MemoryBackend {
        MemoryBackend {
            table: table.to_string(),
            now: Duration::ZERO,
            sets: None,
            firewall: Vec::new(),
            transactions: 0,
        }
    }

    /// Moves the virtual clock forward; elements whose timeout ran out disappear.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        self.expire();
    }

    /// The virtual time since the backend was created.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// How many transactions `apply_layout` and `apply` have committed (one per call that
    /// changed something), to check that callers batch.
    pub fn transactions(&self) -> usize {
        self.transactions
    }

    /// The firewall's chains as they are now (empty without a table).
    pub fn firewall_chains(&self) -> &[ChainPlan] {
        &self.firewall
    }

    fn expire(&mut self) {
        let now = self.now;
        if let Some(sets) = &mut self.sets {
            for set in sets.values_mut() {
                set.elements
                    .retain(|_, stored| stored.deadline.is_none_or(|d| d > now));
            }
        }
    }

    fn no_table(&self) -> BackendError {
        BackendError::NoSuchTable {
            table: self.table.clone(),
        }
    }

    fn apply_one(&mut self, change: &Change) -> Result<(), BackendError> {
        let now = self.now;
        let table = self.table.clone();
        let sets = self
            .sets
            .as_mut()
            .ok_or(BackendError::NoSuchTable { table })?;
        let (jail, target) = (change.jail(), *change.target());
        let name = set_name(jail, SetKind::of(&target));
        // A missing set (a jail not in the layout) answers ENOENT, as the kernel does.
        let Some(set) = sets.get_mut(&name) else {
            return Err(match change {
                Change::Remove { .. } => BackendError::ElementRefused {
                    jail: jail.clone(),
                    target,
                    errno: Errno::ENOENT,
                },
                _ => BackendError::Kernel {
                    operation: format!("add an element to set {name} (no such set)"),
                    errno: Errno::ENOENT,
                },
            });
        };
        match change {
            Change::Add { timeout, .. } => set.insert(jail, target, *timeout, now),
            Change::Refresh { timeout, .. } => {
                set.elements.remove(&target);
                set.insert(jail, target, *timeout, now)
            }
            Change::Remove { .. } => match set.elements.remove(&target) {
                Some(_) => Ok(()),
                None => Err(BackendError::ElementRefused {
                    jail: jail.clone(),
                    target,
                    errno: Errno::ENOENT,
                }),
            },
        }
    }
}

impl Set {
    fn insert(
        &mut self,
        jail: &JailName,
        target: BanTarget,
        timeout: Option<Duration>,
        now: Duration,
    ) -> Result<(), BackendError> {
        if let BanTarget::Net(prefix) = target {
            // The kernel's interval sets refuse a prefix that overlaps another one; the same
            // prefix again is an update. Prefixes of one set are disjoint and sorted by start,
            // so only the neighbours can overlap.
            let before = self.elements.range(..target).next_back();
            let after = self.elements.range(target..).find(|(t, _)| **t != target);
            for (other, _) in before.into_iter().chain(after) {
                let overlaps = match other {
                    BanTarget::Net(other) => other.covers(&prefix) || prefix.covers(other),
                    BanTarget::Addr(_) => false,
                };
                if overlaps {
                    return Err(BackendError::Overlap {
                        jail: jail.clone(),
                        target,
                    });
                }
            }
        }
        // Like the encoder: a timeout below one millisecond is one millisecond (zero would mean
        // "no timeout" to the kernel).
        let timeout = timeout.map(|t| t.max(Duration::from_millis(1)));
        self.elements.insert(
            target,
            Stored {
                timeout,
                deadline: timeout.map(|t| now + t),
            },
        );
        Ok(())
    }
}

impl Backend for MemoryBackend {
    fn apply_layout(&mut self, layout: &Layout) -> Result<(), BackendError> {
        self.expire();
        self.table = layout.table.clone();
        let mut sets = self.sets.take().unwrap_or_default();
        sets.retain(|name, _| match parse_set_name(name) {
            Some((jail, _)) => layout.jails.iter().any(|j| j.name == jail),
            None => true,
        });
        for jail in &layout.jails {
            for kind in SetKind::ALL {
                sets.entry(set_name(&jail.name, kind)).or_default();
            }
        }
        self.sets = Some(sets);
        self.transactions += 1;
        Ok(())
    }

    fn apply(&mut self, changes: &[Change]) -> Result<(), ApplyError> {
        self.expire();
        if changes.is_empty() {
            return Ok(());
        }
        for (index, change) in changes.iter().enumerate() {
            if let Err(error) = self.apply_one(change) {
                return Err(ApplyError {
                    committed: index,
                    error,
                });
            }
        }
        self.transactions += 1;
        Ok(())
    }

    fn apply_firewall(
        &mut self,
        firewall: &FirewallLayout,
    ) -> Result<FirewallReport, BackendError> {
        let wanted = firewall_plan(firewall);
        let mut report = FirewallReport::default();
        for chain in &wanted {
            match self.firewall.iter().find(|c| c.chain == chain.chain) {
                None => {
                    report.chains_added += 1;
                    report.rules_added += chain.rules.len();
                }
                Some(have) => {
                    report.policies_changed += usize::from(have.policy != chain.policy);
                    let edit = diff(&have.rules, &chain.rules);
                    report.rules_added += edit.insert.len();
                    report.rules_deleted += edit.delete.len();
                }
            }
        }
        report.chains_removed = self
            .firewall
            .iter()
            .filter(|have| !wanted.iter().any(|c| c.chain == have.chain))
            .count();
        if report.unchanged() {
            return Ok(report);
        }
        self.sets.get_or_insert_with(BTreeMap::new);
        self.firewall = wanted;
        self.transactions += 1;
        Ok(report)
    }

    fn list(&mut self) -> Result<Vec<Element>, BackendError> {
        self.expire();
        let now = self.now;
        let sets = self.sets.as_ref().ok_or_else(|| self.no_table())?;
        let mut elements = Vec::new();
        for (name, set) in sets {
            let Some((jail, _)) = parse_set_name(name) else {
                continue;
            };
            for (target, stored) in &set.elements {
                elements.push(Element {
                    jail: jail.clone(),
                    target: *target,
                    timeout: stored.timeout,
                    expires: stored.deadline.map(|d| d - now),
                });
            }
        }
        Ok(elements)
    }

    fn remove_table(&mut self) -> Result<(), BackendError> {
        self.firewall.clear();
        match self.sets.take() {
            Some(_) => {
                self.transactions += 1;
                Ok(())
            }
            None => Err(self.no_table()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Hook, JailRules, Ports, Verdict};

    fn jail(name: &str) -> JailName {
        name.parse().unwrap()
    }

    fn layout(jails: &[&str]) -> Layout {
        Layout {
            table: "nftjail".into(),
            hooks: vec![Hook::Input],
            verdict: Verdict::Drop,
            jails: jails
                .iter()
                .map(|name| JailRules {
                    name: jail(name),
                    ports: Ports::All,
                    protocols: vec![],
                })
                .collect(),
        }
    }

    fn add(j: &str, target: &str, secs: Option<u64>) -> Change {
        Change::Add {
            jail: jail(j),
            target: target.parse().unwrap(),
            timeout: secs.map(Duration::from_secs),
        }
    }

    #[test]
    fn changes_before_the_layout_fail_with_no_such_table() {
        let mut backend = MemoryBackend::new("nftjail");
        let err = backend
            .apply(&[add("sshd", "192.0.2.1", None)])
            .unwrap_err();
        assert_eq!(err.committed, 0);
        assert!(matches!(err.error, BackendError::NoSuchTable { .. }));
        assert!(matches!(
            backend.list(),
            Err(BackendError::NoSuchTable { .. })
        ));
    }

    #[test]
    fn elements_expire_with_injected_time() {
        let mut backend = MemoryBackend::new("nftjail");
        backend.apply_layout(&layout(&["sshd"])).unwrap();
        backend
            .apply(&[
                add("sshd", "192.0.2.1", Some(60)),
                add("sshd", "2001:db8::1", None),
            ])
            .unwrap();
        backend.advance(Duration::from_secs(20));
        let listed = backend.list().unwrap();
        let v4 = listed.iter().find(|e| e.target.to_string() == "192.0.2.1");
        assert_eq!(v4.unwrap().expires, Some(Duration::from_secs(40)));
        assert_eq!(v4.unwrap().timeout, Some(Duration::from_secs(60)));
        backend.advance(Duration::from_secs(40));
        let listed = backend.list().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].expires, None);
    }

    #[test]
    fn overlapping_prefixes_are_refused_like_the_kernel() {
        let mut backend = MemoryBackend::new("nftjail");
        backend.apply_layout(&layout(&["sshd", "web"])).unwrap();
        backend.apply(&[add("sshd", "10.0.0.0/8", None)]).unwrap();
        for inner in ["10.1.0.0/16", "0.0.0.0/0", "10.255.255.0/24"] {
            let err = backend.apply(&[add("sshd", inner, None)]).unwrap_err();
            assert!(
                matches!(err.error, BackendError::Overlap { .. }),
                "{inner}: {err}"
            );
        }
        // The same prefix again is an update, and another jail has its own sets.
        backend
            .apply(&[add("sshd", "10.0.0.0/8", Some(5))])
            .unwrap();
        backend.apply(&[add("web", "10.1.0.0/16", None)]).unwrap();
        // An address inside a banned prefix lives in the address set.
        backend.apply(&[add("sshd", "10.1.2.3", None)]).unwrap();
        backend.apply(&[add("sshd", "11.0.0.0/8", None)]).unwrap();
        assert_eq!(backend.list().unwrap().len(), 4);
    }

    #[test]
    fn a_failed_change_reports_the_committed_prefix() {
        let mut backend = MemoryBackend::new("nftjail");
        backend.apply_layout(&layout(&["sshd"])).unwrap();
        let err = backend
            .apply(&[
                add("sshd", "192.0.2.1", None),
                Change::Remove {
                    jail: jail("sshd"),
                    target: "192.0.2.2".parse().unwrap(),
                },
                add("sshd", "192.0.2.3", None),
            ])
            .unwrap_err();
        assert_eq!(err.committed, 1);
        assert!(matches!(
            err.error,
            BackendError::ElementRefused {
                errno: Errno::ENOENT,
                ..
            }
        ));
        assert_eq!(backend.list().unwrap().len(), 1);
    }

    #[test]
    fn refresh_resets_the_timeout_and_adds_when_missing() {
        let mut backend = MemoryBackend::new("nftjail");
        backend.apply_layout(&layout(&["sshd"])).unwrap();
        backend
            .apply(&[add("sshd", "192.0.2.1", Some(10))])
            .unwrap();
        backend.advance(Duration::from_secs(8));
        let refresh = |target: &str| Change::Refresh {
            jail: jail("sshd"),
            target: target.parse().unwrap(),
            timeout: Some(Duration::from_secs(10)),
        };
        backend
            .apply(&[refresh("192.0.2.1"), refresh("192.0.2.9")])
            .unwrap();
        let listed = backend.list().unwrap();
        assert_eq!(listed.len(), 2);
        assert!(
            listed
                .iter()
                .all(|e| e.expires == Some(Duration::from_secs(10)))
        );
    }

    #[test]
    fn a_removed_jail_loses_its_sets_and_others_keep_theirs() {
        let mut backend = MemoryBackend::new("nftjail");
        backend
            .apply_layout(&layout(&["sshd", "postfix-sasl"]))
            .unwrap();
        backend
            .apply(&[
                add("sshd", "192.0.2.1", None),
                add("postfix-sasl", "192.0.2.2", None),
            ])
            .unwrap();
        backend.apply_layout(&layout(&["postfix-sasl"])).unwrap();
        let listed = backend.list().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].jail.as_str(), "postfix-sasl");
        let err = backend
            .apply(&[add("sshd", "192.0.2.1", None)])
            .unwrap_err();
        assert!(matches!(
            err.error,
            BackendError::Kernel {
                errno: Errno::ENOENT,
                ..
            }
        ));
        backend.remove_table().unwrap();
        assert!(matches!(
            backend.remove_table(),
            Err(BackendError::NoSuchTable { .. })
        ));
    }
}
