//! Prometheus metrics on an optional listen address (`[metrics] listen`, off by default).
//!
//! Receives a [`Snapshot`] the core publishes every second (a `watch` channel: the endpoint
//! never waits on the core) plus the banner's counters; emits the text exposition format on
//! `GET /metrics`. Source lag (bytes of a log not read yet) is measured at scrape time with
//! one `stat` per followed file. A tiny HTTP/1.0 responder: one request per connection, a 8 KiB
//! request cap and a read timeout, no keep-alive.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::banner::BannerStats;
use crate::state::Position;
use crate::tracker::JailStats;

/// One jail's numbers.
#[derive(Debug, Clone, Default)]
pub struct JailMetrics {
    pub name: String,
    pub stats: JailStats,
    pub unbans: u64,
    pub lines: u64,
    pub skipped: u64,
}

/// What the core publishes.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub jails: Vec<JailMetrics>,
    /// `(jail, path, position)` of every followed file.
    pub files: Vec<(String, String, Position)>,
}

/// Serves `/metrics` on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    snapshot: watch::Receiver<Arc<Snapshot>>,
    banner: Arc<BannerStats>,
    shutdown: CancellationToken,
) {
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        let (snapshot, banner) = (snapshot.clone(), banner.clone());
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(5), answer(stream, snapshot, banner))
                .await;
        });
    }
}

/// Binds the metrics address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

async fn answer(
    mut stream: TcpStream,
    snapshot: watch::Receiver<Arc<Snapshot>>,
    banner: Arc<BannerStats>,
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() + n > 8192 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let first = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let (status, body) =
        if first.starts_with(b"GET /metrics ") || first.starts_with(b"GET /metrics?") {
            let snap = snapshot.borrow().clone();
            ("200 OK", render(&snap, &banner, &lags(&snap).await))
        } else {
            ("404 Not Found", "nftjail serves /metrics\n".to_string())
        };
    let response = format!(
        "HTTP/1.0 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await
}

/// Unread bytes of each followed file (its size past the read position; all of it if the path
/// now names another file).
async fn lags(snapshot: &Snapshot) -> Vec<(String, String, u64)> {
    let mut out = Vec::new();
    for (jail, path, position) in &snapshot.files {
        let Position::File { dev, ino, offset } = position else {
            continue;
        };
        if let Ok(meta) = tokio::fs::metadata(path).await {
            let lag = if meta.dev() == *dev && meta.ino() == *ino {
                meta.len().saturating_sub(*offset)
            } else {
                meta.len()
            };
            out.push((jail.clone(), path.clone(), lag));
        }
    }
    out
}

/// The text exposition format.
pub fn render(snapshot: &Snapshot, banner: &BannerStats, lags: &[(String, String, u64)]) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, value: &dyn Fn(&JailMetrics) -> u64| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for j in &snapshot.jails {
            let _ = writeln!(out, "{name}{{jail=\"{}\"}} {}", escape(&j.name), value(j));
        }
    };
    family(
        "nftjail_lines_read_total",
        "counter",
        "Log lines read by the jail's sources.",
        &|j| j.lines,
    );
    family(
        "nftjail_lines_skipped_total",
        "counter",
        "Unreadable log lines skipped (invalid UTF-8, binary, too long, no timestamp).",
        &|j| j.skipped,
    );
    family(
        "nftjail_failures_total",
        "counter",
        "Failures counted in the jail's window.",
        &|j| j.stats.total_failed,
    );
    family(
        "nftjail_bans_total",
        "counter",
        "Bans made (including refreshed re-bans).",
        &|j| j.stats.total_banned,
    );
    family(
        "nftjail_unbans_total",
        "counter",
        "Bans ended, by hand or expired.",
        &|j| j.unbans,
    );
    family(
        "nftjail_banned",
        "gauge",
        "Addresses and prefixes currently banned.",
        &|j| j.stats.currently_banned as u64,
    );
    family(
        "nftjail_tracked_addresses",
        "gauge",
        "Addresses with failures in the window (fail2ban's currently failed).",
        &|j| j.stats.currently_failed as u64,
    );
    family(
        "nftjail_evicted_addresses_total",
        "counter",
        "Addresses dropped from a full window (maxtracked).",
        &|j| j.stats.evicted,
    );
    let counter = |out: &mut String, name: &str, kind: &str, help: &str, value: String| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    };
    counter(
        &mut out,
        "nftjail_netlink_batches_total",
        "counter",
        "Batches applied to the kernel (each a few transactions and one fsync).",
        banner.jobs.load(Ordering::Relaxed).to_string(),
    );
    counter(
        &mut out,
        "nftjail_netlink_changes_total",
        "counter",
        "Element changes the kernel took.",
        banner.orders_done.load(Ordering::Relaxed).to_string(),
    );
    counter(
        &mut out,
        "nftjail_netlink_errors_total",
        "counter",
        "Element changes the kernel refused.",
        banner.orders_failed.load(Ordering::Relaxed).to_string(),
    );
    counter(
        &mut out,
        "nftjail_last_batch_seconds",
        "gauge",
        "Duration of the last batch.",
        format!(
            "{:.6}",
            banner.last_job_us.load(Ordering::Relaxed) as f64 / 1e6
        ),
    );
    let _ = writeln!(
        out,
        "# HELP nftjail_source_lag_bytes Bytes of a followed log not read yet.\n# TYPE nftjail_source_lag_bytes gauge"
    );
    for (jail, path, lag) in lags {
        let _ = writeln!(
            out,
            "nftjail_source_lag_bytes{{jail=\"{}\",path=\"{}\"}} {lag}",
            escape(jail),
            escape(path)
        );
    }
    let _ = writeln!(
        out,
        "# HELP nftjail_build_info nftjail's version.\n# TYPE nftjail_build_info gauge\nnftjail_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    out
}

/// A label value as the exposition format wants it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_labels() {
        let snapshot = Snapshot {
            jails: vec![JailMetrics {
                name: "sshd".into(),
                stats: JailStats {
                    currently_failed: 2,
                    total_failed: 9,
                    currently_banned: 1,
                    total_banned: 3,
                    ignored: 0,
                    evicted: 0,
                },
                unbans: 2,
                lines: 1000,
                skipped: 4,
            }],
            files: vec![],
        };
        let banner = BannerStats::default();
        banner.jobs.store(5, Ordering::Relaxed);
        let text = render(
            &snapshot,
            &banner,
            &[("sshd".into(), "/var/log/a\"b.log".into(), 42)],
        );
        for line in [
            "nftjail_lines_read_total{jail=\"sshd\"} 1000",
            "nftjail_failures_total{jail=\"sshd\"} 9",
            "nftjail_bans_total{jail=\"sshd\"} 3",
            "nftjail_unbans_total{jail=\"sshd\"} 2",
            "nftjail_banned{jail=\"sshd\"} 1",
            "nftjail_tracked_addresses{jail=\"sshd\"} 2",
            "nftjail_netlink_batches_total 5",
            "nftjail_source_lag_bytes{jail=\"sshd\",path=\"/var/log/a\\\"b.log\"} 42",
            "# TYPE nftjail_banned gauge",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing in\n{text}"
            );
        }
    }
}
