//! The worker with the in-memory backend and a real state directory.

use super::*;
use nftjail_backend::{JailRules, MemoryBackend, Ports, Verdict};
use nftjail_core::jail::JailName;
use nftjail_core::tracker::{Action, Origin};

const NOW: i64 = 1_800_000_000;

fn layout() -> Layout {
    Layout {
        table: "nftjail".into(),
        hooks: vec![],
        verdict: Verdict::Drop,
        jails: vec![JailRules {
            name: "sshd".parse().unwrap(),
            ports: Ports::All,
            protocols: vec![],
        }],
    }
}

fn ban(target: &str, expires: Option<i64>) -> Ban {
    Ban {
        jail: "sshd".parse::<JailName>().unwrap(),
        target: target.parse().unwrap(),
        since: NOW,
        expires,
        count: 1,
        origin: Origin::Failures,
    }
}

fn worker(dir: &std::path::Path) -> Worker {
    let mut backend = MemoryBackend::new("nftjail");
    backend.apply_layout(&layout()).unwrap();
    let (store, recovered) = StateStore::open(dir).unwrap();
    drop(recovered);
    Worker::new(Box::new(backend), store, layout())
}

/// An order as the tracker would send it.
fn order(action: Action, ban: Ban) -> Order {
    Order {
        id: 1,
        action,
        previous: None,
        ban,
        fresh: true,
        superseded: Vec::new(),
    }
}

fn ok(out: &Outcome) -> Vec<bool> {
    out.orders.iter().map(|(_, r)| r.is_ok()).collect()
}

fn elements(w: &mut Worker) -> Vec<String> {
    let mut e: Vec<String> = w
        .backend
        .list()
        .unwrap()
        .iter()
        .map(|e| e.target.to_string())
        .collect();
    e.sort();
    e
}

#[test]
fn done_orders_are_in_the_kernel_and_durable() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = worker(dir.path());
    let job = Job {
        orders: vec![
            order(Action::Ban, ban("192.0.2.1", Some(NOW + 600))),
            order(Action::Ban, ban("2001:db8::/64", None)),
        ],
        positions: vec![(
            "sshd:/var/log/auth.log".into(),
            Position::File {
                dev: 1,
                ino: 2,
                offset: 3,
            },
        )],
        now: NOW,
        ..Job::default()
    };
    let out = w.run(job).unwrap();
    assert_eq!(ok(&out), [true, true]);
    assert_eq!(elements(&mut w), ["192.0.2.1", "2001:db8::/64"]);
    drop(w);
    let (_, recovered) = StateStore::open(dir.path()).unwrap();
    assert_eq!(recovered.bans.len(), 2);
    assert_eq!(recovered.positions.len(), 1);
}

#[test]
fn removing_what_the_kernel_already_expired_is_done() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = worker(dir.path());
    let out = w
        .run(Job {
            orders: vec![order(Action::Unban, ban("192.0.2.9", Some(NOW + 60)))],
            now: NOW,
            ..Job::default()
        })
        .unwrap();
    assert_eq!(ok(&out), [true]);
}

#[test]
fn a_vanished_table_is_recreated_and_the_batch_still_lands() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = worker(dir.path());
    w.backend.remove_table().unwrap();
    let out = w
        .run(Job {
            orders: vec![order(Action::Ban, ban("192.0.2.1", Some(NOW + 600)))],
            now: NOW,
            ..Job::default()
        })
        .unwrap();
    assert!(out.table_recreated);
    assert_eq!(ok(&out), [true]);
    assert_eq!(elements(&mut w), ["192.0.2.1"]);
}

#[test]
fn a_refused_change_fails_alone_and_is_not_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = worker(dir.path());
    w.run(Job {
        orders: vec![order(Action::Ban, ban("10.0.0.0/8", None))],
        now: NOW,
        ..Job::default()
    })
    .unwrap();
    // An overlapping prefix (the tracker never sends one; an adopted element could cause it).
    let out = w
        .run(Job {
            orders: vec![
                order(Action::Ban, ban("192.0.2.1", Some(NOW + 60))),
                order(Action::Ban, ban("10.1.0.0/16", None)),
                order(Action::Ban, ban("192.0.2.2", Some(NOW + 60))),
            ],
            now: NOW,
            ..Job::default()
        })
        .unwrap();
    assert_eq!(ok(&out), [true, false, true]);
    let error = out.orders[1].1.as_ref().unwrap_err();
    assert!(
        matches!(error, OrderError::Refused(_)) && error.to_string().contains("overlaps"),
        "{error}"
    );
    drop(w);
    let (_, recovered) = StateStore::open(dir.path()).unwrap();
    assert!(
        !recovered
            .bans
            .keys()
            .any(|(_, t)| t.to_string() == "10.1.0.0/16")
    );
    assert_eq!(recovered.bans.len(), 3);
}

#[test]
fn a_ban_already_over_needs_no_kernel_change() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = worker(dir.path());
    let out = w
        .run(Job {
            orders: vec![order(Action::Ban, ban("192.0.2.1", Some(NOW - 1)))],
            now: NOW,
            ..Job::default()
        })
        .unwrap();
    assert_eq!(ok(&out), [true]);
    assert!(elements(&mut w).is_empty());
}

#[test]
fn compaction_keeps_the_snapshot_and_every_position() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = worker(dir.path());
    let position = (
        "sshd:/l".to_string(),
        Position::File {
            dev: 1,
            ino: 1,
            offset: 10,
        },
    );
    w.run(Job {
        orders: vec![order(Action::Ban, ban("192.0.2.1", None))],
        positions: vec![position],
        now: NOW,
        ..Job::default()
    })
    .unwrap();
    let out = w
        .run(Job {
            barrier: Some(BarrierJob::Compact(vec![Record::Ban(ban(
                "192.0.2.7",
                None,
            ))])),
            now: NOW,
            ..Job::default()
        })
        .unwrap();
    assert!(matches!(out.compacted, Some(Ok(()))));
    drop(w);
    let (_, recovered) = StateStore::open(dir.path()).unwrap();
    let bans: Vec<String> = recovered.bans.keys().map(|(_, t)| t.to_string()).collect();
    assert_eq!(bans, ["192.0.2.7"], "the snapshot replaced the log");
    assert_eq!(recovered.positions.len(), 1, "positions survive compaction");
}

/// Regression: a ban whose record could not be saved stayed in the kernel (reported failed,
/// not listed, not unbannable, "adopted" after a restart). Now the kernel change is undone, and
/// after a failed fsync nothing is reported saved until a compaction rewrote the log.
#[test]
fn a_ban_that_cannot_be_saved_is_taken_out_of_the_kernel_again() {
    let dir = tempfile::tempdir().unwrap();
    let faults = std::sync::Arc::new(crate::state::Faults::new());
    let mut backend = MemoryBackend::new("nftjail");
    backend.apply_layout(&layout()).unwrap();
    let (store, _) = StateStore::open_with(dir.path(), faults.clone()).unwrap();
    let mut w = Worker::new(Box::new(backend), store, layout());
    let ban_job = |target| Job {
        orders: vec![order(Action::Ban, ban(target, None))],
        now: NOW,
        ..Job::default()
    };
    let not_durable = |out: &Outcome| matches!(out.orders[0].1, Err(OrderError::NotDurable(_)));
    // A full disk: the write fails, the kernel change is undone, the log stays usable.
    faults.disk_full_after(10);
    let out = w.run(ban_job("192.0.2.1")).unwrap();
    assert!(not_durable(&out) && !out.state_poisoned, "{:?}", out.orders);
    assert!(elements(&mut w).is_empty(), "undone in the kernel");
    faults.disk_has_space();
    assert_eq!(ok(&w.run(ban_job("192.0.2.5")).unwrap()), [true]);
    // A failed fsync: undone, and the log refuses everything until it is rewritten.
    faults.fail_fsyncs(1);
    let out = w.run(ban_job("192.0.2.1")).unwrap();
    assert!(not_durable(&out) && out.state_poisoned, "{:?}", out.orders);
    let out = w.run(ban_job("192.0.2.2")).unwrap();
    assert!(not_durable(&out), "poisoned: {:?}", out.orders);
    assert_eq!(elements(&mut w), ["192.0.2.5"]);
    let out = w
        .run(Job {
            barrier: Some(BarrierJob::Compact(vec![Record::Ban(ban(
                "192.0.2.5",
                None,
            ))])),
            now: NOW,
            ..Job::default()
        })
        .unwrap();
    assert!(matches!(out.compacted, Some(Ok(()))) && !out.state_poisoned);
    assert_eq!(ok(&w.run(ban_job("192.0.2.4")).unwrap()), [true]);
    assert_eq!(elements(&mut w), ["192.0.2.4", "192.0.2.5"]);
    drop(w);
    let (_, recovered) = StateStore::open(dir.path()).unwrap();
    let mut bans: Vec<String> = recovered.bans.keys().map(|(_, t)| t.to_string()).collect();
    bans.sort();
    assert_eq!(bans, ["192.0.2.4", "192.0.2.5"], "kernel and state agree");
}

/// An unban or a refresh that cannot be saved is undone too: the element comes back with
/// its time (or its earlier time).
#[test]
fn an_unsaved_unban_or_refresh_is_undone_in_the_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let faults = std::sync::Arc::new(crate::state::Faults::new());
    let mut backend = MemoryBackend::new("nftjail");
    backend.apply_layout(&layout()).unwrap();
    let (store, _) = StateStore::open_with(dir.path(), faults.clone()).unwrap();
    let mut w = Worker::new(Box::new(backend), store, layout());
    let first = ban("192.0.2.1", Some(NOW + 600));
    w.run(Job {
        orders: vec![order(Action::Ban, first.clone())],
        now: NOW,
        ..Job::default()
    })
    .unwrap();
    faults.disk_full_after(0);
    let out = w
        .run(Job {
            orders: vec![order(Action::Unban, first.clone())],
            now: NOW,
            ..Job::default()
        })
        .unwrap();
    assert!(matches!(out.orders[0].1, Err(OrderError::NotDurable(_))));
    assert_eq!(elements(&mut w), ["192.0.2.1"], "the unban was undone");
    let refresh = Order {
        previous: Some(first.clone()),
        ..order(Action::Refresh, ban("192.0.2.1", None))
    };
    let out = w
        .run(Job {
            orders: vec![refresh],
            now: NOW,
            ..Job::default()
        })
        .unwrap();
    assert!(matches!(out.orders[0].1, Err(OrderError::NotDurable(_))));
    let listed = w.backend.list().unwrap();
    assert!(
        listed[0].timeout.is_some(),
        "the refresh to permanent was undone to the old timeout: {listed:?}"
    );
}
