//! Backend benchmarks, in a private network namespace (the bench unshares one itself; root).
//!
//! Ids `backend/<workload>/<variant>`:
//! - `bulk_100k/netlink`: 100,000 IPv4 bans with timeouts in one `apply` (default limits).
//! - `bulk_100k/tx_<N>`: the same with N changes per transaction (picks the default).
//! - `single_ban/netlink`: one ban per `apply` (one transaction each).
//! - `single_ban/nft_process`: one `nft add element` process per ban, as fail2ban does.
//! - `dump_100k/netlink`: `list()` of a table holding 100,000 elements.
//! - `firewall_1000/unchanged`: `apply_firewall` of a 1,000-rule firewall the kernel already
//!   holds (the chains and rules read back and compared; nothing sent). What a restart and
//!   every drift check cost.
//! - `firewall_1000/add_one`: the same plus one rule at the end (read, compare, one insertion).
//!
//! Run: `cargo bench --bench backend` (as root). Results: benches/README.md.

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::Criterion;
use nftjail_backend::netlink::Limits;
use nftjail_backend::{
    Backend, Change, FirewallLayout, Hook, JailRules, Layout, NetlinkBackend, PortRange, Ports,
    Protocol, Verdict,
};
use nftjail_core::addr::BanTarget;
use nftjail_core::firewall::{Action, Chain, Policy, Rule};
use nftjail_core::jail::JailName;
use nix::sched::{CloneFlags, unshare};

const TABLE: &str = "nftjail";
const BULK: u32 = 100_000;

fn layout() -> Layout {
    Layout {
        table: TABLE.into(),
        hooks: vec![Hook::Input, Hook::Forward],
        verdict: Verdict::Drop,
        jails: vec![JailRules {
            name: jail(),
            ports: Ports::List(vec![PortRange::single(22)]),
            protocols: vec![Protocol::Tcp],
        }],
    }
}

fn jail() -> JailName {
    "sshd".parse().expect("a valid jail name")
}

fn ban(n: u32) -> Change {
    Change::Add {
        jail: jail(),
        target: BanTarget::addr(Ipv4Addr::from(0x0a00_0000 + n).into()),
        timeout: Some(Duration::from_secs(3600)),
    }
}

/// An empty table with the layout. The kernel frees a deleted table's elements in a worker
/// after the commit: give it a moment so that it does not compete with the next measurement.
fn fresh(backend: &mut NetlinkBackend) {
    if backend.remove_table().is_ok() {
        std::thread::sleep(Duration::from_millis(50));
    }
    backend.apply_layout(&layout()).expect("layout");
}

fn bulk(c: &mut Criterion) {
    let changes: Vec<Change> = (0..BULK).map(ban).collect();
    let mut group = c.benchmark_group("backend/bulk_100k");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    let variants = [
        ("netlink", Limits::default()),
        ("tx_1000", limits(1_000)),
        ("tx_2000", limits(2_000)),
        ("tx_5000", limits(5_000)),
        ("tx_20000", limits(20_000)),
        ("tx_100000", limits(100_000)),
    ];
    for (variant, limits) in variants {
        let mut backend = NetlinkBackend::open(TABLE)
            .expect("socket")
            .with_limits(limits);
        group.bench_function(variant, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    fresh(&mut backend); // not timed
                    let started = Instant::now();
                    backend.apply(&changes).expect("bulk apply");
                    total += started.elapsed();
                }
                total
            })
        });
    }
    group.finish();
}

fn limits(per_transaction: usize) -> Limits {
    Limits {
        elements_per_message: per_transaction.min(2_000),
        changes_per_transaction: per_transaction,
    }
}

fn single(c: &mut Criterion) {
    let mut group = c.benchmark_group("backend/single_ban");
    let mut backend = NetlinkBackend::open(TABLE).expect("socket");

    // fail2ban's way first, on an empty set: one `nft` process per ban.
    fresh(&mut backend);
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(2));
    let mut n = 0;
    group.bench_function("nft_process", |b| {
        b.iter(|| {
            n += 1;
            let addr = Ipv4Addr::from(0x0a00_0000 + n);
            let status = Command::new("nft")
                .args(["add", "element", "inet", TABLE, "sshd_v4"])
                .arg(format!("{{ {addr} timeout 1h }}"))
                .status()
                .expect("nft runs");
            assert!(status.success());
        })
    });
    let listed = backend.list().expect("list").len();
    println!("single_ban/nft_process: {n} processes run, {listed} bans in the kernel");
    assert_eq!(listed, n as usize);

    // One transaction per ban; the set is emptied (untimed) every 100,000 bans so that it
    // stays the size of a busy server's.
    group.sample_size(100);
    group.measurement_time(Duration::from_secs(5));
    let (mut n, mut total) = (0u32, 0u64);
    group.bench_function("netlink", |b| {
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iters {
                if n % BULK == 0 {
                    fresh(&mut backend);
                }
                n += 1;
                total += 1;
                let started = Instant::now();
                backend.apply(&[ban(n % BULK)]).expect("one ban");
                elapsed += started.elapsed();
            }
            elapsed
        })
    });
    // Every acknowledged ban since the last reset is in the kernel.
    let listed = backend.list().expect("list").len();
    println!("single_ban/netlink: {total} bans acknowledged, {listed} in the kernel now");
    // (Nothing was banned when a filter left this group out: `cargo bench -- firewall`.)
    if n > 0 {
        assert_eq!(listed as u32, (n - 1) % BULK + 1);
    }
    group.finish();
}

fn dump(c: &mut Criterion) {
    let mut backend = NetlinkBackend::open(TABLE).expect("socket");
    fresh(&mut backend);
    let changes: Vec<Change> = (0..BULK).map(ban).collect();
    backend.apply(&changes).expect("bulk apply");
    let mut group = c.benchmark_group("backend/dump_100k");
    group.sample_size(10);
    group.bench_function("netlink", |b| {
        b.iter(|| {
            let listed = backend.list().expect("list");
            assert_eq!(listed.len(), BULK as usize);
        })
    });
    group.finish();
    let _ = backend.remove_table();
}

/// A firewall of `rules` input rules: a port each, every other one from a /24.
fn firewall_of(rules: u16) -> FirewallLayout {
    let rule = |n: u16| {
        let source = n.is_multiple_of(2).then(|| {
            format!("10.{}.{}.0/24", n / 256, n % 256)
                .parse()
                .expect("a prefix")
        });
        let port = [PortRange::single(1000 + n)];
        Rule::new(
            Chain::Input,
            Protocol::Tcp,
            &port,
            source,
            Action::Accept,
            "bench",
            false,
        )
        .expect("a rule")
    };
    FirewallLayout {
        enabled: true,
        input: Policy::Drop,
        output: Policy::Accept,
        forward: Policy::Accept,
        rules: (0..rules).map(|n| (u64::from(n) + 1, rule(n))).collect(),
        forwards: Vec::new(),
    }
}

fn firewall(c: &mut Criterion) {
    let mut backend = NetlinkBackend::open(TABLE).expect("socket");
    fresh(&mut backend);
    let thousand = firewall_of(1_000);
    let one_more = firewall_of(1_001);
    backend.apply_firewall(&thousand).expect("firewall");
    let mut group = c.benchmark_group("backend/firewall_1000");
    group.sample_size(20);
    group.bench_function("unchanged", |b| {
        b.iter(|| {
            let report = backend.apply_firewall(&thousand).expect("firewall");
            assert!(report.unchanged());
        })
    });
    group.bench_function("add_one", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                backend.apply_firewall(&thousand).expect("back to 1000"); // not timed
                let started = Instant::now();
                let report = backend.apply_firewall(&one_more).expect("one more");
                total += started.elapsed();
                assert_eq!((report.rules_added, report.rules_deleted), (1, 0));
            }
            total
        })
    });
    group.finish();
    let _ = backend.remove_table();
}

fn main() {
    if let Err(errno) = unshare(CloneFlags::CLONE_NEWNET) {
        eprintln!("skipping: cannot create a private network namespace ({errno}); run as root");
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    bulk(&mut c);
    single(&mut c);
    dump(&mut c);
    firewall(&mut c);
    c.final_summary();
}
