//! Benches of the pure stages behind the daemon: the tracker and the banner's worker.
//!
//! - `tracker/failures/10k-attackers`: 100,000 failures from 10,000 addresses into a fresh
//!   tracker (sshd's policy: maxretry 5, findtime 10m): every attacker is banned on its fifth
//!   failure, later failures are `AlreadyBanned`, as in the daemon's throughput bench.
//! - `tracker/failures/1m-distinct`: 1,000,000 failures, each from another address, into a
//!   tracker that tracks at most 100,000 (the default `maxtracked`): the eviction path.
//! - `banner/job/memory-backend`: `Worker::run` of a job of 1,000 ban orders with the in-memory
//!   backend and a real state dir (one durable commit, with fsync, per job).
//!
//! `cargo bench --bench tracker`; results in `benches/README.md` ("Daemon").

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

use nftjail::banner::worker::{BarrierJob, Job, Worker};
use nftjail::config::BanTime;
use nftjail::state::StateStore;
use nftjail_backend::{Backend, JailRules, Layout, MemoryBackend, Ports, Verdict};
use nftjail_core::addr::BanTarget;
use nftjail_core::jail::JailName;
use nftjail_core::tracker::{
    Action, Ban, Escalation, IgnoreList, JailPolicy, Order, Origin, Tracker,
};

const NOW: i64 = 1_800_000_000;

fn sshd() -> JailName {
    "sshd".parse().expect("a valid jail name")
}

fn policy(maxtracked: usize) -> JailPolicy {
    JailPolicy {
        name: sshd(),
        maxretry: 5,
        findtime: 600,
        bantime: BanTime::For(Duration::from_secs(3_600)),
        escalation: Escalation::default(),
        ignore: Arc::new(IgnoreList::new([
            "127.0.0.0/8".parse().expect("a prefix"),
            "::1".parse().expect("an address"),
        ])),
        fold_v6: None,
        maxtracked,
        recidive: None,
        ignoreself: true,
    }
}

/// The `n`-th address of 10.0.0.0/8.
fn addr(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0001 + n))
}

/// Deterministic picks in `0..n` (xorshift64*).
fn picks(count: usize, n: u64, mut seed: u64) -> Vec<u32> {
    (0..count)
        .map(|_| {
            seed ^= seed >> 12;
            seed ^= seed << 25;
            seed ^= seed >> 27;
            (seed.wrapping_mul(0x2545_f491_4f6c_dd1d) % n) as u32
        })
        .collect()
}

fn tracker_failures(c: &mut Criterion) {
    let jail = sshd();
    let mut group = c.benchmark_group("tracker/failures");

    // 100,000 failures from 10,000 attackers, spread over 100 s of log time.
    let failures: Vec<(IpAddr, i64)> = picks(100_000, 10_000, 42)
        .into_iter()
        .enumerate()
        .map(|(i, n)| (addr(n), NOW + (i / 1_000) as i64))
        .collect();
    group.throughput(Throughput::Elements(failures.len() as u64));
    group.bench_function("10k-attackers", |b| {
        b.iter_batched(
            || Tracker::new(vec![policy(100_000)], 86_400, 7),
            |mut tracker| {
                for &(host, at) in &failures {
                    black_box(tracker.failure(&jail, host, at, at));
                }
                tracker
            },
            BatchSize::LargeInput,
        )
    });

    // 1,000,000 addresses failing once each; the window keeps the latest 100,000.
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(1_000_000));
    group.bench_function("1m-distinct", |b| {
        b.iter_batched(
            || Tracker::new(vec![policy(100_000)], 86_400, 7),
            |mut tracker| {
                for n in 0..1_000_000u32 {
                    let at = NOW + i64::from(n / 10_000);
                    black_box(tracker.failure(&jail, addr(n), at, at));
                }
                tracker
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn layout() -> Layout {
    Layout {
        table: "nftjail".into(),
        hooks: vec![],
        verdict: Verdict::Drop,
        jails: vec![JailRules {
            name: sshd(),
            ports: Ports::All,
            protocols: vec![],
        }],
    }
}

fn ban(n: u32) -> Ban {
    Ban {
        jail: sshd(),
        target: BanTarget::Addr(addr(n)),
        since: NOW,
        expires: Some(NOW + 3_600),
        count: 1,
        origin: Origin::Failures,
    }
}

/// Orders of one kind for `bans`, as the tracker would send them.
fn orders(bans: &[Ban], action: Action) -> Vec<Order> {
    bans.iter()
        .zip(1..)
        .map(|(ban, id)| Order {
            id,
            action,
            ban: ban.clone(),
            previous: None,
            fresh: true,
            superseded: Vec::new(),
        })
        .collect()
}

fn banner_job(c: &mut Criterion) {
    const ORDERS: u32 = 1_000;
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut backend = MemoryBackend::new("nftjail");
    backend.apply_layout(&layout()).expect("the layout");
    let (store, recovered) = StateStore::open(dir.path()).expect("a state store");
    drop(recovered);
    let mut worker = Worker::new(Box::new(backend), store, layout());
    let bans: Vec<Ban> = (0..ORDERS).map(ban).collect();

    let mut group = c.benchmark_group("banner/job");
    group.measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Elements(u64::from(ORDERS)));
    group.bench_function("memory-backend", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for i in 0..iters {
                let job = Job {
                    orders: orders(&bans, Action::Ban),
                    now: NOW,
                    ..Job::default()
                };
                let started = Instant::now();
                let outcome = worker.run(job).expect("no fatal error");
                timed += started.elapsed();
                assert!(outcome.orders.iter().all(|(_, r)| r.is_ok()));
                // Untimed: unban them again, and now and then compact, so that neither the
                // backend nor the state log grows from one iteration to the next.
                let undo = Job {
                    orders: orders(&bans, Action::Unban),
                    now: NOW,
                    ..Job::default()
                };
                let _ = black_box(worker.run(undo));
                if i % 16 == 15 {
                    let compact = Job {
                        barrier: Some(BarrierJob::Compact(Vec::new())),
                        now: NOW,
                        ..Job::default()
                    };
                    let _ = black_box(worker.run(compact));
                }
            }
            timed
        })
    });
    group.finish();
}

criterion_group!(benches, tracker_failures, banner_job);
criterion_main!(benches);
