//! Start-up reconciliation: brings the kernel in line with the bans the state store holds.
//!
//! Receives a backend, the layout and the desired elements (from the state store, with their
//! remaining time); emits the bulk changes that add what the kernel lacks and refresh what has
//! drifted, and reports what the kernel has beyond the state. It never deletes an element and
//! never flushes a set: a restart with the table still present adds and deletes nothing.

use std::time::Duration;

use super::{ApplyError, Backend, Change, Element, Layout};
use nftjail_core::addr::BanTarget;
use nftjail_core::jail::JailName;

/// Remaining times that differ by no more than this are left alone.
pub const REFRESH_TOLERANCE: Duration = Duration::from_secs(5);

/// What [`reconcile`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Elements the kernel lacked and that were added.
    pub added: usize,
    /// Elements whose remaining time (or permanence) differed and that were refreshed.
    pub refreshed: usize,
    /// Elements already right in the kernel, left alone.
    pub kept: usize,
    /// Elements the kernel has and `desired` does not; left in the kernel for the caller to
    /// adopt.
    pub unknown: Vec<Element>,
}

/// Applies `layout`, lists the kernel and adds or refreshes what `desired` needs, in bulk.
///
/// A desired element is added with its remaining time (`expires`, or `timeout` when it has no
/// remaining time), and skipped when that time is zero. The error of the layout or the listing
/// comes back with `committed: 0`.
pub fn reconcile(
    backend: &mut dyn Backend,
    layout: &Layout,
    desired: &[Element],
) -> Result<ReconcileReport, ApplyError> {
    let before_changes = |error| ApplyError {
        committed: 0,
        error,
    };
    backend.apply_layout(layout).map_err(before_changes)?;
    refill(backend, desired)
}

/// Lists the kernel and adds or refreshes what `desired` needs, in bulk, without touching the
/// table's structure (the layout must be in place: see [`reconcile`]).
pub fn refill(
    backend: &mut dyn Backend,
    desired: &[Element],
) -> Result<ReconcileReport, ApplyError> {
    let before_changes = |error| ApplyError {
        committed: 0,
        error,
    };
    let kernel = backend.list().map_err(before_changes)?;
    let mut present: nftjail_core::hash::FastMap<(JailName, BanTarget), Element> = kernel
        .into_iter()
        .map(|e| ((e.jail.clone(), e.target), e))
        .collect();

    let mut report = ReconcileReport::default();
    let mut adds = Vec::new();
    let mut refreshes = Vec::new();
    for want in desired {
        let remaining = want.expires.or(want.timeout);
        if remaining == Some(Duration::ZERO) {
            continue;
        }
        let (jail, target) = (want.jail.clone(), want.target);
        match present.remove(&(jail.clone(), target)) {
            None => adds.push(Change::Add {
                jail,
                target,
                timeout: remaining,
            }),
            Some(have) if drifted(have.expires, remaining) => refreshes.push(Change::Refresh {
                jail,
                target,
                timeout: remaining,
            }),
            Some(_) => report.kept += 1,
        }
    }
    report.added = adds.len();
    report.refreshed = refreshes.len();
    adds.extend(refreshes);
    backend.apply(&adds)?;
    let mut unknown: Vec<Element> = present.into_values().collect();
    unknown.sort_by(|a, b| (&a.jail, a.target).cmp(&(&b.jail, b.target)));
    report.unknown = unknown;
    tracing::debug!(
        added = report.added,
        refreshed = report.refreshed,
        kept = report.kept,
        unknown = report.unknown.len(),
        "reconciled"
    );
    Ok(report)
}

/// Whether the kernel's remaining time `have` is off from `want` by more than the tolerance,
/// or one is permanent and the other not.
fn drifted(have: Option<Duration>, want: Option<Duration>) -> bool {
    match (have, want) {
        (None, None) => false,
        (Some(have), Some(want)) => have.abs_diff(want) > REFRESH_TOLERANCE,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Hook, JailRules, MemoryBackend, Ports, Verdict};

    fn jail(name: &str) -> JailName {
        name.parse().unwrap()
    }

    fn layout() -> Layout {
        Layout {
            table: "nftjail".into(),
            hooks: vec![Hook::Input],
            verdict: Verdict::Drop,
            jails: vec![JailRules {
                name: jail("sshd"),
                ports: Ports::All,
                protocols: vec![],
            }],
        }
    }

    fn element(target: &str, timeout: Option<u64>, expires: Option<u64>) -> Element {
        Element {
            jail: jail("sshd"),
            target: target.parse().unwrap(),
            timeout: timeout.map(Duration::from_secs),
            expires: expires.map(Duration::from_secs),
        }
    }

    #[test]
    fn a_restart_with_the_table_present_changes_nothing() {
        let mut backend = MemoryBackend::new("nftjail");
        let desired = vec![
            element("192.0.2.1", Some(3600), Some(3600)),
            element("2001:db8::/64", None, None),
        ];
        let first = reconcile(&mut backend, &layout(), &desired).unwrap();
        assert_eq!(first.added, 2);
        backend.advance(Duration::from_secs(100));
        let transactions = backend.transactions();
        // The state store now says 3500 s are left, as the kernel does (within tolerance).
        let desired = vec![
            element("192.0.2.1", Some(3600), Some(3498)),
            element("2001:db8::/64", None, None),
        ];
        let second = reconcile(&mut backend, &layout(), &desired).unwrap();
        assert_eq!(
            second,
            ReconcileReport {
                added: 0,
                refreshed: 0,
                kept: 2,
                unknown: vec![]
            }
        );
        // Only the layout transaction: no element change was sent.
        assert_eq!(backend.transactions(), transactions + 1);
        let listed = backend.list().unwrap();
        let v4 = listed.iter().find(|e| e.target.to_string() == "192.0.2.1");
        assert_eq!(v4.unwrap().expires, Some(Duration::from_secs(3500)));
    }

    #[test]
    fn adds_missing_refreshes_drifted_and_reports_unknown() {
        let mut backend = MemoryBackend::new("nftjail");
        backend.apply_layout(&layout()).unwrap();
        backend
            .apply(&[
                Change::Add {
                    jail: jail("sshd"),
                    target: "192.0.2.1".parse().unwrap(),
                    timeout: Some(Duration::from_secs(60)),
                },
                Change::Add {
                    jail: jail("sshd"),
                    target: "192.0.2.99".parse().unwrap(),
                    timeout: None,
                },
            ])
            .unwrap();
        let desired = vec![
            element("192.0.2.1", Some(3600), Some(3000)),
            element("192.0.2.2", Some(3600), Some(1200)),
            element("192.0.2.3", Some(3600), Some(0)),
        ];
        let report = reconcile(&mut backend, &layout(), &desired).unwrap();
        assert_eq!((report.added, report.refreshed, report.kept), (1, 1, 0));
        assert_eq!(report.unknown.len(), 1);
        assert_eq!(report.unknown[0].target.to_string(), "192.0.2.99");
        let listed = backend.list().unwrap();
        let expires = |t: &str| {
            listed
                .iter()
                .find(|e| e.target.to_string() == t)
                .and_then(|e| e.expires)
        };
        assert_eq!(expires("192.0.2.1"), Some(Duration::from_secs(3000)));
        assert_eq!(expires("192.0.2.2"), Some(Duration::from_secs(1200)));
        // Never deleted: the unknown element stays.
        assert_eq!(listed.len(), 3);
    }

    #[test]
    fn drift_detection() {
        let s = |n| Some(Duration::from_secs(n));
        assert!(!drifted(s(100), s(104)));
        assert!(drifted(s(100), s(106)));
        assert!(drifted(None, s(100)));
        assert!(drifted(s(100), None));
        assert!(!drifted(None, None));
    }
}
