//! The worker with the in-memory backend and a real state directory.

use super::*;
use crate::banner::backend::{JailRules, MemoryBackend, Ports, Verdict};
use crate::jail::JailName;
use crate::tracker::Origin;

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
    let (store, _) = StateStore::open(dir).unwrap();
    Worker::new(Box::new(backend), store, layout())
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
            Order::Ban(ban("192.0.2.1", Some(NOW + 600))),
            Order::Ban(ban("2001:db8::/64", None)),
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
    let out = w.run(job);
    assert_eq!(out.orders, vec![Ok(()), Ok(())]);
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
    let out = w.run(Job {
        orders: vec![Order::Unban(ban("192.0.2.9", Some(NOW + 60)))],
        now: NOW,
        ..Job::default()
    });
    assert_eq!(out.orders, vec![Ok(())]);
}

#[test]
fn a_vanished_table_is_recreated_and_the_batch_still_lands() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = worker(dir.path());
    w.backend.remove_table().unwrap();
    let out = w.run(Job {
        orders: vec![Order::Ban(ban("192.0.2.1", Some(NOW + 600)))],
        now: NOW,
        ..Job::default()
    });
    assert!(out.table_recreated);
    assert_eq!(out.orders, vec![Ok(())]);
    assert_eq!(elements(&mut w), ["192.0.2.1"]);
}

#[test]
fn a_refused_change_fails_alone_and_is_not_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = worker(dir.path());
    w.run(Job {
        orders: vec![Order::Ban(ban("10.0.0.0/8", None))],
        now: NOW,
        ..Job::default()
    });
    // An overlapping prefix (the tracker never sends one; an adopted element could cause it).
    let out = w.run(Job {
        orders: vec![
            Order::Ban(ban("192.0.2.1", Some(NOW + 60))),
            Order::Ban(ban("10.1.0.0/16", None)),
            Order::Ban(ban("192.0.2.2", Some(NOW + 60))),
        ],
        now: NOW,
        ..Job::default()
    });
    assert!(
        out.orders[0].is_ok() && out.orders[2].is_ok(),
        "{:?}",
        out.orders
    );
    assert!(
        out.orders[1].as_ref().unwrap_err().contains("overlaps"),
        "{:?}",
        out.orders
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
    let out = w.run(Job {
        orders: vec![Order::Ban(ban("192.0.2.1", Some(NOW - 1)))],
        now: NOW,
        ..Job::default()
    });
    assert_eq!(out.orders, vec![Ok(())]);
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
        orders: vec![Order::Ban(ban("192.0.2.1", None))],
        positions: vec![position],
        now: NOW,
        ..Job::default()
    });
    w.run(Job {
        compact: Some(vec![Record::Ban(ban("192.0.2.7", None))]),
        now: NOW,
        ..Job::default()
    });
    drop(w);
    let (_, recovered) = StateStore::open(dir.path()).unwrap();
    let bans: Vec<String> = recovered.bans.keys().map(|(_, t)| t.to_string()).collect();
    assert_eq!(bans, ["192.0.2.7"], "the snapshot replaced the log");
    assert_eq!(recovered.positions.len(), 1, "positions survive compaction");
}

#[test]
fn after_a_failed_fsync_bans_are_not_reported_saved_until_a_compaction() {
    // A compaction used to run only after a successful commit: a poisoned store never got out.
    let dir = tempfile::tempdir().unwrap();
    let faults = std::sync::Arc::new(crate::state::Faults::new());
    let mut backend = MemoryBackend::new("nftjail");
    backend.apply_layout(&layout()).unwrap();
    let (store, _) = StateStore::open_with(dir.path(), faults.clone()).unwrap();
    let mut w = Worker::new(Box::new(backend), store, layout());
    faults.fail_fsyncs(1);
    let ban_job = |target| Job {
        orders: vec![Order::Ban(ban(target, None))],
        now: NOW,
        ..Job::default()
    };
    let out = w.run(ban_job("192.0.2.1"));
    assert!(out.orders[0].as_ref().unwrap_err().contains("not saved"));
    let out = w.run(ban_job("192.0.2.2"));
    assert!(
        out.orders[0]
            .as_ref()
            .unwrap_err()
            .contains("accepts nothing")
    );
    let out = w.run(Job {
        compact: Some(vec![Record::Ban(ban("192.0.2.2", None))]),
        ..ban_job("192.0.2.3")
    });
    assert!(
        out.orders[0].is_err(),
        "its commit came before the compaction"
    );
    let out = w.run(ban_job("192.0.2.4"));
    assert_eq!(out.orders, vec![Ok(())]);
    drop(w);
    let (_, recovered) = StateStore::open(dir.path()).unwrap();
    let mut bans: Vec<String> = recovered.bans.keys().map(|(_, t)| t.to_string()).collect();
    bans.sort();
    assert_eq!(bans, ["192.0.2.2", "192.0.2.4"]);
}
