//! The banner task driven by a stand-in core: barriers, refusals and a dying worker, with the
//! in-memory backend (faults on demand) and a real state directory.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::config::BanTime;
use crate::state::StateStore;
use nftjail_backend::{Backend, BackendFaults, FaultyBackend, JailRules, MemoryBackend, Ports};
use nftjail_core::tracker::{Escalation, IgnoreList, JailPolicy, Settlement, Tracker};

const NOW: i64 = 1_800_000_000;

fn clock() -> i64 {
    NOW
}

fn layout() -> Layout {
    Layout {
        table: "nftjail".into(),
        hooks: vec![],
        verdict: nftjail_backend::Verdict::Drop,
        jails: vec![JailRules {
            name: "manual".parse().unwrap(),
            ports: Ports::All,
            protocols: vec![],
        }],
    }
}

fn tracker() -> Tracker {
    let policy = JailPolicy {
        name: "manual".parse().unwrap(),
        maxretry: 1,
        findtime: 600,
        bantime: BanTime::For(Duration::from_secs(3_600)),
        escalation: Escalation::default(),
        ignore: Arc::new(IgnoreList::default()),
        fold_v6: None,
        maxtracked: 100,
        recidive: None,
        ignoreself: false,
    };
    Tracker::new(vec![policy], 86_400, 1)
}

type Started = (
    Banner,
    JoinHandle<Result<(), BannerError>>,
    mpsc::Receiver<Report>,
    Arc<BackendFaults>,
);

/// A banner over a faulty memory backend and a state directory.
fn banner(dir: &std::path::Path) -> Started {
    banner_with(dir, MAX_QUEUED_ORDERS)
}

fn banner_with(dir: &std::path::Path, max_queued_orders: usize) -> Started {
    let faults = Arc::new(BackendFaults::new());
    let mut memory = MemoryBackend::new("nftjail");
    memory.apply_layout(&layout()).unwrap();
    let backend = FaultyBackend::new(Box::new(memory), faults.clone());
    let (store, _) = StateStore::open(dir).unwrap();
    let worker = Worker::new(Box::new(backend), store, layout());
    let (reports_tx, reports) = mpsc::channel(64);
    let (banner, task) = spawn_with(worker, reports_tx, clock, max_queued_orders);
    (banner, task, reports, faults)
}

/// Plays the core: settles every order, answers barriers with the settled state, until
/// `compactions` compactions are done and nothing is pending.
async fn serve(t: &mut Tracker, reports: &mut mpsc::Receiver<Report>, mut compactions: usize) {
    while compactions > 0 || t.has_pending() {
        let report = tokio::time::timeout(Duration::from_secs(5), reports.recv())
            .await
            .expect("a report within 5 s")
            .expect("the banner is alive");
        match report {
            Report::Settled(outcomes) => {
                for (order, result) in outcomes {
                    let s = if result.is_ok() {
                        Settlement::Applied
                    } else {
                        Settlement::Refused
                    };
                    assert!(t.settle(&order, s, NOW).is_empty());
                }
            }
            Report::Need(Barrier::Compact, reply) => {
                let records = t.settled().cloned().map(Record::Ban).collect();
                reply.send(Settled::Records(records)).unwrap();
            }
            Report::Compacted(result) => {
                result.unwrap();
                compactions -= 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn saved(dir: &std::path::Path) -> Vec<String> {
    // A dead worker thread lets go of the state's lock only as it finishes unwinding.
    let mut opened = StateStore::open(dir);
    for _ in 0..100 {
        if opened.is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
        opened = StateStore::open(dir);
    }
    let (_, recovered) = opened.unwrap();
    let mut bans: Vec<String> = recovered.bans.keys().map(|(_, t)| t.to_string()).collect();
    bans.sort();
    bans
}

/// Regression: orders queued after a compaction joined its job, were committed, then erased by
/// the older snapshot that replaced the log — bans already reported done were lost.
#[tokio::test]
async fn a_compaction_between_orders_loses_none_of_them() {
    let dir = tempfile::tempdir().unwrap();
    let (banner, task, mut reports, faults) = banner(dir.path());
    let mut t = tracker();
    let jail = "manual".parse().unwrap();
    let ban = |t: &mut Tracker, what: &str| t.ban(&jail, what.parse().unwrap(), None, NOW).unwrap();
    banner.send(Msg::Orders(ban(&mut t, "192.0.2.1"))).await;
    banner.send(Msg::Barrier(Barrier::Compact)).await;
    banner.send(Msg::Orders(ban(&mut t, "192.0.2.2"))).await;
    // A refused change in the middle: not in the kernel, not in the state.
    faults.refuse("192.0.2.4".parse().unwrap());
    let mut two = ban(&mut t, "192.0.2.3");
    two.extend(ban(&mut t, "192.0.2.4"));
    banner.send(Msg::Orders(two)).await;
    banner.send(Msg::Barrier(Barrier::Compact)).await;
    banner.send(Msg::Orders(ban(&mut t, "192.0.2.5"))).await;
    serve(&mut t, &mut reports, 2).await;
    drop(banner);
    task.await.unwrap().unwrap();
    let settled: Vec<String> = {
        let mut s: Vec<String> = t.settled().map(|b| b.target.to_string()).collect();
        s.sort();
        s
    };
    assert_eq!(
        settled,
        ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.5"]
    );
    assert_eq!(
        saved(dir.path()),
        settled,
        "the state log holds what was settled"
    );
}

/// Regression: when the worker thread panicked, orders were dropped by `let _ = tx.send(..)`,
/// the tracker believed them applied and the watchdog kept being pinged.
#[tokio::test]
async fn a_worker_that_dies_ends_the_banner_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (banner, task, mut reports, faults) = banner(dir.path());
    let mut t = tracker();
    faults.panic_next();
    let orders = t
        .ban(
            &"manual".parse().unwrap(),
            "192.0.2.1".parse().unwrap(),
            None,
            NOW,
        )
        .unwrap();
    banner.send(Msg::Orders(orders)).await;
    // A bound against hanging, not a speed claim: the panic's backtrace alone (RUST_BACKTRACE)
    // took over 5 s to print on a machine busy with other builds.
    let result = tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(result, Err(BannerError::WorkerDied)), "{result:?}");
    assert!(
        reports.recv().await.is_none(),
        "the core sees the banner gone"
    );
    assert!(t.has_pending(), "never reported applied");
    assert!(saved(dir.path()).is_empty());
}

/// The queue is bounded: past its cap the banner takes no more messages (back-pressure),
/// instead of draining its channel into an unbounded queue.
#[tokio::test]
async fn the_banner_queue_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let (banner, _task, _reports, faults) = banner_with(dir.path(), 100);
    faults.slow_down(Duration::from_secs(2));
    let mut t = tracker();
    let jail = "manual".parse().unwrap();
    let mut accepted = 0;
    for n in 0..500u32 {
        let orders: Vec<Order> = (0..10u32)
            .flat_map(|i| {
                let target = format!("10.{}.{}.{i}", n >> 8, n & 255);
                t.ban(&jail, target.parse().unwrap(), None, NOW).unwrap()
            })
            .collect();
        if banner.try_send(Msg::Orders(orders)).is_err() {
            break;
        }
        accepted += 1;
        tokio::task::yield_now().await;
    }
    // One job at the worker, 100 orders queued (10 messages), the channel full (64).
    assert!(
        accepted <= 1 + 10 + CHANNEL + 1,
        "the banner took {accepted} messages"
    );
}
