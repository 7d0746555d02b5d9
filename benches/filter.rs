//! Filter stage benchmarks (`cargo bench --bench filter`).
//!
//! - `filter/prefix/*`: the hand-written syslog header parser alone, per format.
//! - `filter/sshd-200k/matcher`: 200,000 generated sshd lines through one `Matcher` (no I/O).
//! - `filter/sshd-200k/test-filter`: the same lines through the `test-filter` binary's code path
//!   (line splitting, matching, JSON output to a sink), which is what the ≥1.5 M lines/s target
//!   and `benches/compare-fail2ban-regex.sh` measure.
//! - `filter/sshd-200k/matcher-with-limit`: `matcher` with an age limit none of the lines
//!   reaches (what the daemon runs: every line's time is resolved before its regexes).
//! - `filter/sshd-200k/readback-too-old`: the same lines, all older than the limit — a log read
//!   back on first sight, whose lines older than findtime are skipped without a regex.
//! - `filter/modes/*`: one line kind through each sshd mode.
//!
//! The log is the one `examples/gen-sshd-log.rs` writes (seed 42), generated in-process.
//! Criterion's own iteration adds `Matcher` construction (one per 200k lines): negligible.

use std::hint::black_box;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use nftjail::cli::test_filter;
use nftjail_core::filter::{FilterOptions, Matcher, Outcome, builtin};

fn now() -> DateTime<Utc> {
    "2026-11-30T00:00:00Z"
        .parse()
        .expect("a valid RFC 3339 time")
}

fn matcher(name: &str, mode: &str) -> Matcher {
    let file = builtin::load(name)
        .expect("a built-in")
        .expect("a valid built-in");
    let options = FilterOptions {
        mode: Some(mode.to_string()),
        timezone: "UTC".parse().expect("UTC"),
        ..FilterOptions::default()
    };
    Matcher::new(
        Arc::new(file.compile(&options).expect("built-ins compile")),
        nftjail_core::filter::LocalZone::utc(),
    )
}

#[path = "../examples/gen-sshd-log.rs"]
mod generator;

/// The generator's log (200,000 lines, seed 42), as `gen-sshd-log` writes it.
fn sshd_log() -> Vec<u8> {
    let mut log = Vec::new();
    generator::generate(200_000, 42, &mut log).expect("writing to a Vec cannot fail");
    log
}

fn prefix(c: &mut Criterion) {
    let mut group = c.benchmark_group("filter/prefix");
    let lines: [(&str, &[u8]); 3] = [
        (
            "syslog",
            b"Nov 23 07:18:36 web1 CRON[4242]: (root) CMD (command -v debian-sa1 > /dev/null)",
        ),
        (
            "rfc3339",
            b"2026-11-23T07:18:36.123456+01:00 web1 CRON[4242]: (root) CMD (command -v x)",
        ),
        (
            "no-host",
            b"Nov 23 07:18:36 CRON[4242]: (root) CMD (command -v debian-sa1 > /dev/null)",
        ),
    ];
    // Another daemon's line: the matcher parses the header, rejects the tag, and stops.
    let mut m = matcher("sshd", "normal");
    for (name, line) in lines {
        group.throughput(Throughput::Elements(1));
        group.bench_function(name, |b| {
            b.iter(|| assert_eq!(m.feed_line(black_box(line), now()), Outcome::NoMatch))
        });
    }
    group.finish();
}

fn sshd_200k(c: &mut Criterion) {
    let log = sshd_log();
    let lines: Vec<&[u8]> = log
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let mut group = c.benchmark_group("filter/sshd-200k");
    group.sample_size(20);
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.bench_function("matcher", |b| {
        b.iter(|| {
            let mut m = matcher("sshd", "normal");
            let mut failures = 0u32;
            for line in &lines {
                if let Outcome::Failure(f) = m.feed_line(line, now()) {
                    failures += 1;
                    black_box(f);
                }
            }
            failures
        })
    });
    for (name, limit) in [
        ("matcher-with-limit", 0),
        ("readback-too-old", now().timestamp() + 10 * 365 * 86_400),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut m = matcher("sshd", "normal");
                m.set_not_before(Some(limit));
                let mut failures = 0u32;
                for line in &lines {
                    if let Outcome::Failure(f) = m.feed_line(line, now()) {
                        failures += 1;
                        black_box(f);
                    }
                }
                failures
            })
        });
    }
    group.bench_function("test-filter", |b| {
        b.iter(|| {
            let mut m = nftjail::filter::engine::AnyMatcher::Native(matcher("sshd", "normal"));
            let mut sink = std::io::sink();
            let summary = test_filter::scan(&mut m, &log[..], now(), |number, failure| {
                test_filter::write_failure(&mut sink, number, failure, true)
            })
            .expect("reading a slice cannot fail");
            black_box(summary.failures)
        })
    });
    group.finish();
}

fn modes(c: &mut Criterion) {
    let mut group = c.benchmark_group("filter/modes");
    let line: &[u8] = b"Nov 23 07:18:36 web1 sshd-session[4242]: Failed password for invalid user admin from 2001:db8::7 port 52211 ssh2";
    for mode in ["normal", "ddos", "extra", "aggressive"] {
        let mut m = matcher("sshd", mode);
        group.throughput(Throughput::Elements(1));
        group.bench_function(mode, |b| {
            b.iter(|| matches!(m.feed_line(black_box(line), now()), Outcome::Failure(_)))
        });
    }
    group.finish();
}

criterion_group!(benches, prefix, sshd_200k, modes);
criterion_main!(benches);
