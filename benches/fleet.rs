//! The fleet over a real nats-server with JetStream: one node bans, every other node applies.
//!
//! Sets up a hub namespace running `nats-server` (one user per node, the README's permissions)
//! and N daemons (default 10, `NFTJAIL_FLEET_NODES`), each in its own namespace linked to the
//! hub; node `n0` bans from log lines (its sshd jail bans at the first failure), the others
//! receive. Times come from the daemons' own logs (the `ban` line is written once the kernel
//! took the ban and it is on disk), against the moment the line was appended to n0's log:
//!
//! - `fleet/latency/<N>`: 200 bans, one every 25 ms: n0's own latency, and the time until the
//!   ban is in the kernel of *every* peer (p50, p99, max).
//! - `fleet/server-down/<N>`: the same 200 bans with nats-server stopped: n0's latency (local
//!   bans never wait for the cluster), then the time every peer needs to have them all once
//!   the server is back.
//! - `fleet/burst/<N>`: 10,000 bans at once on n0, until every peer has them all.
//! - the stream's size per message, and the server's and a daemon's memory.
//!
//! Run (as root, release build): `cargo bench --bench fleet`. Under `cargo test --all-targets`
//! it runs a small round (3 nodes, 20 bans, a burst of 500) so that it keeps working. Results:
//! benches/README.md.

#[allow(dead_code)]
#[path = "../tests/nftjail/daemon.rs"]
mod daemon;
#[allow(dead_code)]
#[path = "../tests/nftjail/hub.rs"]
mod hub;
#[allow(dead_code)]
#[path = "../tests/nftjail/netns.rs"]
mod netns;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use daemon::{Daemon, ssh_failure};
use hub::{Hub, fleet_daemon_with};

/// Each `ban` line of a daemon's log: (jail, ip) → when.
fn bans(d: &Daemon) -> HashMap<(String, String), DateTime<Utc>> {
    d.log()
        .lines()
        .filter(|l| l.contains(" INFO ban jail="))
        .filter_map(|l| {
            let at = DateTime::parse_from_rfc3339(l.split_whitespace().next()?).ok()?;
            let field = |k: &str| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix(k))
                    .map(str::to_string)
            };
            Some(((field("jail=")?, field("ip=")?), at.with_timezone(&Utc)))
        })
        .collect()
}

fn addresses(from: u32, n: u32) -> Vec<String> {
    (from..from + n)
        .map(|i| format!("100.{}.{}.{}", 64 + (i >> 16), (i >> 8) & 255, i & 255))
        .collect()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// p50, p99 and max of `ms`, formatted.
fn quantiles(mut ms: Vec<f64>) -> String {
    ms.sort_by(f64::total_cmp);
    let q = |p: f64| ms[((ms.len() as f64 * p).ceil() as usize).clamp(1, ms.len()) - 1];
    format!(
        "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (n = {})",
        q(0.50),
        q(0.99),
        ms[ms.len() - 1],
        ms.len()
    )
}

/// Waits until every peer logged a fleet ban of every address of `ips`.
fn wait_all(peers: &[Daemon], ips: &[String], limit: Duration) {
    let start = Instant::now();
    for d in peers {
        loop {
            let have = bans(d);
            let missing = ips
                .iter()
                .filter(|ip| !have.contains_key(&("fleet".to_string(), ip.to_string())))
                .count();
            if missing == 0 {
                break;
            }
            assert!(
                start.elapsed() < limit,
                "{missing} bans missing on a peer after {limit:?}\n{}",
                d.log()
                    .lines()
                    .rev()
                    .take(30)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Appends one failure per address, `pace` apart; returns when each was written.
fn paced(a: &Daemon, ips: &[String], pace: Duration) -> Vec<DateTime<Utc>> {
    ips.iter()
        .enumerate()
        .map(|(i, ip)| {
            a.append("auth.log", &[ssh_failure(ip, 20_000 + i as u32)]);
            let at = Utc::now();
            std::thread::sleep(pace);
            at
        })
        .collect()
}

fn ms(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_microseconds().unwrap_or(0) as f64 / 1000.0
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let nodes: usize = if full {
        std::env::var("NFTJAIL_FLEET_NODES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(10)
    } else {
        3
    };
    let (latency_bans, burst_bans) = if full { (200, 10_000) } else { (20, 500) };
    let names: Vec<String> = (0..nodes).map(|i| format!("n{i}")).collect();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    println!("fleet: {nodes} daemons, load average before {}", loadavg());
    let mut hub = Hub::start(&name_refs, 3600);
    let env = [("RUST_LOG", "nftjail=info,warn")];
    let mut all: Vec<Daemon> = names
        .iter()
        .map(|n| fleet_daemon_with(&mut hub, n, "", "", &env))
        .collect();
    let peers = all.split_off(1);
    let a = all.pop().expect("node n0");
    let connected = |d: &Daemon| {
        let out = d.ok(&["status", "--json"]);
        out.contains("\"link\": \"connected\"") || out.contains("\"link\":\"connected\"")
    };
    for d in peers.iter().chain([&a]) {
        d.wait_until("connected", || connected(d));
    }

    // Latency with the server up.
    let ips = addresses(0, latency_bans);
    let written = paced(&a, &ips, Duration::from_millis(25));
    wait_all(&peers, &ips, Duration::from_secs(60));
    let own = bans(&a);
    let peer_bans: Vec<_> = peers.iter().map(bans).collect();
    let local: Vec<f64> = ips
        .iter()
        .zip(&written)
        .map(|(ip, at)| ms(*at, own[&("sshd".to_string(), ip.clone())]))
        .collect();
    let everywhere: Vec<f64> = ips
        .iter()
        .zip(&written)
        .map(|(ip, at)| {
            peer_bans
                .iter()
                .map(|b| ms(*at, b[&("fleet".to_string(), ip.clone())]))
                .fold(0.0, f64::max)
        })
        .collect();
    println!(
        "fleet/latency/{nodes}: log line → n0's kernel: {}",
        quantiles(local)
    );
    println!(
        "fleet/latency/{nodes}: log line → every peer's kernel: {}",
        quantiles(everywhere)
    );

    // The server down: n0's bans go on, then the peers catch up.
    hub.stop();
    a.wait_until("n0 sees the server gone", || !connected(&a));
    let ips = addresses(100_000, latency_bans);
    let written = paced(&a, &ips, Duration::from_millis(25));
    a.wait_until("n0 banned them all", || {
        let own = bans(&a);
        ips.iter()
            .all(|ip| own.contains_key(&("sshd".to_string(), ip.clone())))
    });
    let own = bans(&a);
    let local: Vec<f64> = ips
        .iter()
        .zip(&written)
        .map(|(ip, at)| ms(*at, own[&("sshd".to_string(), ip.clone())]))
        .collect();
    println!(
        "fleet/server-down/{nodes}: log line → n0's kernel, server stopped: {}",
        quantiles(local)
    );
    let back = Instant::now();
    hub.spawn();
    wait_all(&peers, &ips, Duration::from_secs(120));
    println!(
        "fleet/server-down/{nodes}: server restarted → all {} in every peer's kernel: {:.2} s",
        ips.len(),
        back.elapsed().as_secs_f64()
    );

    // A burst.
    let ips = addresses(200_000, burst_bans);
    let lines: Vec<String> = ips
        .iter()
        .enumerate()
        .map(|(i, ip)| ssh_failure(ip, 30_000 + i as u32))
        .collect();
    a.append("auth.log", &lines);
    let start = Utc::now();
    wait_all(&peers, &ips, Duration::from_secs(300));
    let own = bans(&a);
    let a_done = ips
        .iter()
        .map(|ip| ms(start, own[&("sshd".to_string(), ip.clone())]))
        .fold(0.0, f64::max);
    let slowest = peers
        .iter()
        .map(|d| {
            let b = bans(d);
            ips.iter()
                .map(|ip| ms(start, b[&("fleet".to_string(), ip.clone())]))
                .fold(0.0, f64::max)
        })
        .fold(0.0, f64::max);
    println!(
        "fleet/burst/{nodes}: {burst_bans} bans: all in n0's kernel after {:.2} s, in every peer's after {:.2} s",
        a_done / 1000.0,
        slowest / 1000.0
    );

    // Sizes.
    let (messages, bytes) = hub.admin(|client| async move {
        let js = async_nats::jetstream::new(client);
        let mut stream = js.get_stream(hub::STREAM).await.expect("the stream");
        let info = stream.info().await.expect("stream info");
        (info.state.messages, info.state.bytes)
    });
    let server_pid = hub.pid().unwrap_or(0);
    println!(
        "fleet/stream: {messages} messages, {bytes} bytes ({} bytes/message); nats-server RSS {} MiB; a peer's RSS {} MiB",
        bytes / messages.max(1),
        rss_kib(server_pid) / 1024,
        peers[0].rss_kib() / 1024
    );
    println!("fleet: load average after {}", loadavg());
}
