//! Watches nf_tables set-element notifications (the `NFNLGRP_NFTABLES` multicast group, what
//! `nft monitor new elements` reads) for the daemon benchmarks in `benches/daemon/`. Run it in
//! the network namespace of the daemon under test (`ip netns exec NS …`); it works the same for
//! nftjail and for fail2ban's nftables actions, since it only watches the kernel.
//!
//! ```text
//! nft-events latency LOG ATTACKERS MAXRETRY [SPACING_MS] [SETTLE_MS] [TIMEOUT_MS]
//! nft-events count N [TIMEOUT_S]
//! ```
//!
//! `latency`: writes MAXRETRY-1 sshd failures of each of ATTACKERS addresses (10.200.0.1 …) to
//! LOG in one write, waits SETTLE_MS (default 3000) for the daemon to count them, then, one
//! attacker at a time, appends its MAXRETRY-th failure (one `write`) and waits until an element
//! with that address is added to any set (at most TIMEOUT_MS, default 10000), then SPACING_MS
//! (default 10). Prints every latency (`latency_us=…`) and the p50/p90/p99/max summary.
//!
//! `count`: prints `subscribed` once listening, then waits for N added elements (any set) and
//! prints the wall-clock times (Unix nanoseconds) of the first and the N-th.
//!
//! Plain netlink through nix's safe API and a small TLV walk; no `nft` process, no unsafe.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, setsockopt,
    socket, sockopt,
};

/// `NFNLGRP_NFTABLES` (linux/netfilter/nfnetlink.h); bound as a bit of the legacy group mask.
const NFNLGRP_NFTABLES: u32 = 7;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_FLAGS: u16 = 3;
/// The element closing an interval (an interval set's `A/32` is `A` and `A+1` with this flag).
const NFT_SET_ELEM_INTERVAL_END: u32 = 1;
const NFTA_DATA_VALUE: u16 = 1;
const NLA_TYPE_MASK: u16 = 0x3fff;
/// Notifications of a 100,000-element commit must fit while this thread catches up.
const RECV_QUEUE: usize = 512 << 20;

/// One added element: its key as an address (when it is 4 or 16 bytes) and when it was seen.
struct Added {
    addr: Option<IpAddr>,
    at: Instant,
    wall: SystemTime,
}

fn subscribe() -> io::Result<OwnedFd> {
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkNetFilter,
    )?;
    bind(
        fd.as_raw_fd(),
        &NetlinkAddr::new(0, 1 << (NFNLGRP_NFTABLES - 1)),
    )?;
    setsockopt(&fd, sockopt::RcvBufForce, &RECV_QUEUE)?;
    Ok(fd)
}

/// Netlink attributes of `data`: `(type, payload)`.
fn attributes(mut data: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if data.len() < 4 {
            return None;
        }
        let len = usize::from(u16::from_ne_bytes([data[0], data[1]]));
        let kind = u16::from_ne_bytes([data[2], data[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > data.len() {
            return None;
        }
        let payload = &data[4..len];
        data = &data[((len + 3) & !3).min(data.len())..];
        Some((kind, payload))
    })
}

fn find(data: &[u8], kind: u16) -> Option<&[u8]> {
    attributes(data).find(|(k, _)| *k == kind).map(|(_, p)| p)
}

/// The keys of the elements of one NEWSETELEM message (after the nfgenmsg header).
fn element_keys(attrs: &[u8], out: &mut Vec<Option<IpAddr>>) {
    let Some(list) = find(attrs, NFTA_SET_ELEM_LIST_ELEMENTS) else {
        return;
    };
    for (kind, element) in attributes(list) {
        if kind != NFTA_LIST_ELEM {
            continue;
        }
        // Not an address that was added: sshguard's interval set closes 10.200.0.1/32 with an
        // end element 10.200.0.2, which is the next attacker's address.
        let flags = find(element, NFTA_SET_ELEM_FLAGS)
            .and_then(|f| <[u8; 4]>::try_from(f).ok())
            .map_or(0, u32::from_be_bytes);
        if flags & NFT_SET_ELEM_INTERVAL_END != 0 {
            continue;
        }
        let key = find(element, NFTA_SET_ELEM_KEY).and_then(|k| find(k, NFTA_DATA_VALUE));
        out.push(match key {
            Some(k) if k.len() == 4 => Some(IpAddr::V4(Ipv4Addr::new(k[0], k[1], k[2], k[3]))),
            Some(k) if k.len() == 16 => {
                let bytes: [u8; 16] = k.try_into().expect("16 bytes");
                Some(IpAddr::V6(Ipv6Addr::from(bytes)))
            }
            _ => None,
        });
    }
}

/// Receives notifications until the channel's reader is gone; ENOBUFS (lost notifications) is
/// reported on stderr and counted.
fn listen(fd: OwnedFd, tx: mpsc::Sender<Added>) {
    let mut buf = vec![0u8; 1 << 20];
    let mut keys = Vec::new();
    loop {
        let n = match recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(Errno::ENOBUFS) => {
                eprintln!("nft-events: ENOBUFS: notifications were lost");
                continue;
            }
            Err(e) => {
                eprintln!("nft-events: recv: {e}");
                return;
            }
        };
        let (at, wall) = (Instant::now(), SystemTime::now());
        let mut data = &buf[..n];
        while data.len() >= 16 {
            let len = u32::from_ne_bytes(data[0..4].try_into().expect("4 bytes")) as usize;
            let kind = u16::from_ne_bytes([data[4], data[5]]);
            if len < 16 || len > data.len() {
                break;
            }
            if kind == (NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWSETELEM) && len >= 20 {
                keys.clear();
                element_keys(&data[20..len], &mut keys);
                for addr in keys.drain(..) {
                    if tx.send(Added { addr, at, wall }).is_err() {
                        return;
                    }
                }
            }
            data = &data[((len + 3) & !3).min(data.len())..];
        }
    }
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize, default: Option<T>) -> io::Result<T> {
    match args.get(i) {
        Some(a) => a
            .parse()
            .map_err(|_| io::Error::other(format!("bad argument {a:?}"))),
        None => default.ok_or_else(|| io::Error::other(USAGE)),
    }
}

const USAGE: &str = "usage: nft-events latency LOG ATTACKERS MAXRETRY [SPACING_MS] [SETTLE_MS] [TIMEOUT_MS] | nft-events count N [TIMEOUT_S]";

fn failure(addr: Ipv4Addr, n: u64) -> String {
    format!(
        "{} mail sshd[{}]: Failed password for root from {addr} port {} ssh2\n",
        chrono::Local::now().format("%b %e %H:%M:%S"),
        10_000 + n % 50_000,
        30_000 + n % 30_000
    )
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

fn latency(args: &[String], rx: mpsc::Receiver<Added>) -> io::Result<()> {
    let log: String = arg(args, 0, None)?;
    let attackers: u32 = arg(args, 1, None)?;
    let maxretry: u64 = arg(args, 2, None)?;
    let spacing = Duration::from_millis(arg(args, 3, Some(10))?);
    let settle = Duration::from_millis(arg(args, 4, Some(3000))?);
    let timeout = Duration::from_millis(arg(args, 5, Some(10_000))?);
    let addr = |i: u32| Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 200, 0, 1)) + i);
    let mut file = OpenOptions::new().append(true).open(&log)?;

    let mut warmup = String::new();
    for round in 1..maxretry {
        for i in 0..attackers {
            warmup.push_str(&failure(addr(i), u64::from(i) * 7 + round));
        }
    }
    file.write_all(warmup.as_bytes())?;
    std::thread::sleep(settle);
    // Anything added during the warm-up (there should be nothing) is not a measurement.
    let early = rx.try_iter().count();
    if early > 0 {
        eprintln!("nft-events: {early} elements were added during the warm-up");
    }

    let mut seen: HashMap<IpAddr, Instant> = HashMap::new();
    let mut latencies = Vec::with_capacity(attackers as usize);
    let mut missed = 0u32;
    for i in 0..attackers {
        let target = IpAddr::V4(addr(i));
        let line = failure(addr(i), u64::from(i) * 7 + maxretry);
        let written = Instant::now();
        file.write_all(line.as_bytes())?;
        let deadline = written + timeout;
        let at = loop {
            if let Some(at) = seen.remove(&target) {
                break Some(at);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(Added {
                    addr: Some(a), at, ..
                }) => {
                    seen.insert(a, at);
                }
                Ok(_) => {}
                Err(_) => break None,
            }
        };
        match at {
            Some(at) => {
                let d = at.saturating_duration_since(written);
                println!("latency_us={} addr={target}", d.as_micros());
                latencies.push(d);
            }
            None => {
                println!("missed addr={target}");
                missed += 1;
            }
        }
        std::thread::sleep(spacing);
    }
    latencies.sort();
    if latencies.is_empty() {
        println!("summary n=0 missed={missed}");
        return Ok(());
    }
    let mean = latencies.iter().sum::<Duration>() / latencies.len() as u32;
    println!(
        "summary n={} missed={missed} min_ms={} p50_ms={} p90_ms={} p99_ms={} max_ms={} mean_ms={}",
        latencies.len(),
        ms(latencies[0]),
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.90)),
        ms(percentile(&latencies, 0.99)),
        ms(*latencies.last().expect("not empty")),
        ms(mean),
    );
    Ok(())
}

fn unix_ns(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

fn count(args: &[String], rx: mpsc::Receiver<Added>) -> io::Result<()> {
    let until: u64 = arg(args, 0, None)?;
    let timeout = Duration::from_secs(arg(args, 1, Some(600))?);
    println!("subscribed");
    io::stdout().flush()?;
    let deadline = Instant::now() + timeout;
    let (mut first, mut last, mut n) = (None, None, 0u64);
    while n < until {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(added) => {
                n += 1;
                first.get_or_insert(added.wall);
                last = Some(added.wall);
            }
            Err(_) => break,
        }
    }
    println!(
        "count={n} first_unix_ns={} last_unix_ns={}",
        first.map_or(0, unix_ns),
        last.map_or(0, unix_ns)
    );
    Ok(())
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let fd = subscribe()?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || listen(fd, tx));
    match args.first().map(String::as_str) {
        Some("latency") => latency(&args[1..], rx),
        Some("count") => count(&args[1..], rx),
        _ => Err(io::Error::other(USAGE)),
    }
}
