//! Prometheus metrics on an optional listen address (`[metrics] listen`, off by default).
//!
//! Receives a [`Snapshot`] the core publishes every second (a `watch` channel: the endpoint
//! never waits on the core) plus the banner's counters; emits the text exposition format on
//! `GET /metrics`. Source lag (bytes of a log not read yet) is measured at scrape time with
//! one `stat` per followed file. A tiny HTTP/1.0 responder: one request per connection, a 8 KiB
//! request cap, no keep-alive. It never lets scrapers hurt the daemon: at most
//! [`MAX_CONNECTIONS`] are served at once (more are answered `503` without waiting and closed),
//! a request must arrive within [`READ_TIMEOUT`] and the answer be taken within
//! [`WRITE_TIMEOUT`], and a failing `accept` (EMFILE: out of file descriptors) is retried after
//! a delay that doubles up to [`ACCEPT_BACKOFF_MAX`], instead of spinning.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;

use crate::banner::BannerStats;
use crate::state::Position;
use nftjail_core::tracker::JailStats;

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
    /// The fleet, when `[cluster]` is on.
    pub cluster: Option<crate::fleet::ClusterStatus>,
}

/// Scrapes served at once; Prometheus scrapes one at a time, so this only bounds abuse.
pub const MAX_CONNECTIONS: usize = 16;
/// How long a client has to send its request.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client has to take the answer.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// The first wait after a failed `accept`; it doubles on each failure in a row.
pub const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
/// The longest wait after failed `accept`s.
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The answer to a client over [`MAX_CONNECTIONS`].
const BUSY: &[u8] = b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 23\r\nRetry-After: 1\r\nConnection: close\r\n\r\ntoo many scrapes; retry";

/// Serves `/metrics` on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    snapshot: watch::Receiver<Arc<Snapshot>>,
    banner: Arc<BannerStats>,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut backoff = Backoff::default();
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    backoff.reset();
                    stream
                }
                Err(e) => {
                    let wait = backoff.failed();
                    tracing::warn!(error = %e, retry_ms = wait.as_millis() as u64, "metrics accept failed");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(wait) => continue,
                    }
                }
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            // Best effort and without waiting: whatever fits in the socket buffer, then close.
            let _ = stream.try_write(BUSY);
            continue;
        };
        let (snapshot, banner) = (snapshot.clone(), banner.clone());
        tokio::spawn(async move {
            if let Err(e) = answer(stream, snapshot, banner).await {
                tracing::debug!(error = %e, "metrics scrape failed");
            }
            drop(permit);
        });
    }
}

/// The wait before retrying a failed `accept`: [`ACCEPT_BACKOFF_MIN`], doubling on each failure
/// in a row up to [`ACCEPT_BACKOFF_MAX`], back to the start after a success.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    /// The wait after one more failure.
    pub fn failed(&mut self) -> Duration {
        let wait = ACCEPT_BACKOFF_MIN
            .saturating_mul(1 << self.failures.min(16))
            .min(ACCEPT_BACKOFF_MAX);
        self.failures = self.failures.saturating_add(1);
        wait
    }

    pub fn reset(&mut self) {
        self.failures = 0;
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
    let head = tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no request in time"))??;
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
    tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(response.as_bytes()))
        .await
        .map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::TimedOut, "answer not taken in time")
        })?
}

/// The request head, up to its blank line (at most 8 KiB; the rest is not read).
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() + n > 8192 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(head)
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
    if let Some(cluster) = &snapshot.cluster {
        crate::fleet::stats::render_metrics(&mut out, cluster);
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
    fn accept_failures_back_off_exponentially_and_reset() {
        let mut backoff = Backoff::default();
        let waits: Vec<u64> = (0..10)
            .map(|_| backoff.failed().as_millis() as u64)
            .collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
        for _ in 0..100 {
            backoff.failed();
        }
        assert_eq!(backoff.failed(), ACCEPT_BACKOFF_MAX, "no overflow");
        backoff.reset();
        assert_eq!(backoff.failed(), ACCEPT_BACKOFF_MIN);
        let body = BUSY.split(|&b| b == b'\n').next_back().unwrap();
        assert_eq!(body.len(), 23, "Content-Length of the 503");
    }

    // Regression: every connection got a task of its own, without limit, so a flood of idle
    // connections held as many tasks and descriptors as it liked.
    #[tokio::test]
    async fn connections_over_the_cap_get_503_at_once() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (_tx, rx) = watch::channel(Arc::new(Snapshot::default()));
        let stop = CancellationToken::new();
        tokio::spawn(serve(
            listener,
            rx,
            Arc::new(BannerStats::default()),
            stop.clone(),
        ));
        let mut idle = Vec::new();
        for _ in 0..MAX_CONNECTIONS {
            idle.push(TcpStream::connect(addr).await.unwrap());
        }
        let mut extra = TcpStream::connect(addr).await.unwrap();
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(2), extra.read_to_string(&mut answer))
            .await
            .expect("answered at once")
            .unwrap();
        assert!(answer.starts_with("HTTP/1.0 503 "), "{answer}");
        // A slot frees when a scrape ends: the next client is served.
        drop(idle.pop());
        let served = async {
            loop {
                let mut s = TcpStream::connect(addr).await.unwrap();
                s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await.unwrap();
                let mut text = String::new();
                s.read_to_string(&mut text).await.unwrap();
                if text.starts_with("HTTP/1.0 200 ") {
                    return text;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let text = tokio::time::timeout(Duration::from_secs(2), served)
            .await
            .expect("a freed slot serves the next scrape");
        assert!(text.contains("nftjail_build_info"), "{text}");
        stop.cancel();
    }

    // Reading the request and writing the answer each have their deadline.
    #[tokio::test(start_paused = true)]
    async fn a_silent_scraper_is_dropped_after_the_read_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (_tx, rx) = watch::channel(Arc::new(Snapshot::default()));
        tokio::spawn(serve(
            listener,
            rx,
            Arc::new(BannerStats::default()),
            CancellationToken::new(),
        ));
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /metr").await.unwrap();
        let mut rest = Vec::new();
        let started = tokio::time::Instant::now();
        s.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        assert!(started.elapsed() >= READ_TIMEOUT);
    }

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
            cluster: None,
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
