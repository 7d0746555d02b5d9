//! The worker with the in-memory backend and a real state directory.

use super::*;
use crate::banner::backend::{JailRules, MemoryBackend, Ports, Verdict};
use crate::jail::JailName;
use crate::tracker::{Action, Origin};

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
