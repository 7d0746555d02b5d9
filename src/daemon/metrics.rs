//! The numbers behind `/metrics`, in the Prometheus text format.
//!
//! Receives a [`Snapshot`] the core publishes every second (a `watch` channel: the HTTP server
//! never waits on the core) plus the banner's counters; emits the exposition text (format 0.0.4,
//! what `promtool check metrics` reads) through the `prometheus-client` crate, one collector that
//! encodes the snapshot at scrape time. Source lag (bytes of a log not read yet) is measured at
//! scrape time with one `stat` per followed file. The families and their names are a contract
//! with dashboards: never renamed. Serving them is the HTTP server's job (`crate::http`); this
//! module never opens a socket.

use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::banner::BannerStats;
use crate::state::Position;
use nftjail_core::tracker::JailStats;

/// The `Content-Type` of [`render`]'s text.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

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

/// Unread bytes of each followed file (its size past the read position; all of it if the path
/// now names another file).
pub async fn lags(snapshot: &Snapshot) -> Vec<(String, String, u64)> {
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

/// The exposition text of one scrape.
pub fn render(
    snapshot: Arc<Snapshot>,
    banner: &BannerStats,
    lags: Vec<(String, String, u64)>,
) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Exposition {
        snapshot,
        batches: banner.jobs.load(Ordering::Relaxed),
        changes: banner.orders_done.load(Ordering::Relaxed),
        errors: banner.orders_failed.load(Ordering::Relaxed),
        last_batch_seconds: banner.last_job_us.load(Ordering::Relaxed) as f64 / 1e6,
        lags,
    }));
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
        .expect("invariant: writing to a String cannot fail");
    out
}

/// One scrape's values, encoded when the registry asks.
#[derive(Debug)]
struct Exposition {
    snapshot: Arc<Snapshot>,
    batches: u64,
    changes: u64,
    errors: u64,
    last_batch_seconds: f64,
    lags: Vec<(String, String, u64)>,
}

/// A per-jail family: its name as scraped (counters without their `_total`, which the encoder
/// adds), its type, help and value.
type JailFamily = (
    &'static str,
    MetricType,
    &'static str,
    fn(&JailMetrics) -> u64,
);

const JAIL_FAMILIES: [JailFamily; 8] = [
    (
        "nftjail_lines_read",
        MetricType::Counter,
        "Log lines read by the jail's sources.",
        |j| j.lines,
    ),
    (
        "nftjail_lines_skipped",
        MetricType::Counter,
        "Unreadable log lines skipped (invalid UTF-8, binary, too long, no timestamp).",
        |j| j.skipped,
    ),
    (
        "nftjail_failures",
        MetricType::Counter,
        "Failures counted in the jail's window.",
        |j| j.stats.total_failed,
    ),
    (
        "nftjail_bans",
        MetricType::Counter,
        "Bans made (including refreshed re-bans).",
        |j| j.stats.total_banned,
    ),
    (
        "nftjail_unbans",
        MetricType::Counter,
        "Bans ended, by hand or expired.",
        |j| j.unbans,
    ),
    (
        "nftjail_banned",
        MetricType::Gauge,
        "Addresses and prefixes currently banned.",
        |j| j.stats.currently_banned as u64,
    ),
    (
        "nftjail_tracked_addresses",
        MetricType::Gauge,
        "Addresses with failures in the window (fail2ban's currently failed).",
        |j| j.stats.currently_failed as u64,
    ),
    (
        "nftjail_evicted_addresses",
        MetricType::Counter,
        "Addresses dropped from a full window (maxtracked).",
        |j| j.stats.evicted,
    ),
];

impl Collector for Exposition {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, kind, help, value) in JAIL_FAMILIES {
            let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
            for jail in &self.snapshot.jails {
                let labels = [("jail", jail.name.as_str())];
                let family = metric.encode_family(&labels)?;
                encode_value(family, kind, value(jail))?;
            }
        }
        for (name, help, value) in [
            (
                "nftjail_netlink_batches",
                "Batches applied to the kernel (each a few transactions and one fsync).",
                self.batches,
            ),
            (
                "nftjail_netlink_changes",
                "Element changes the kernel took.",
                self.changes,
            ),
            (
                "nftjail_netlink_errors",
                "Element changes the kernel refused.",
                self.errors,
            ),
        ] {
            let metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(value).encode(metric)?;
        }
        let metric = encoder.encode_descriptor(
            "nftjail_last_batch_seconds",
            "Duration of the last batch.",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(self.last_batch_seconds).encode(metric)?;
        let mut metric = encoder.encode_descriptor(
            "nftjail_source_lag_bytes",
            "Bytes of a followed log not read yet.",
            None,
            MetricType::Gauge,
        )?;
        for (jail, path, lag) in &self.lags {
            let labels = [("jail", jail.as_str()), ("path", path.as_str())];
            encode_value(metric.encode_family(&labels)?, MetricType::Gauge, *lag)?;
        }
        if let Some(cluster) = &self.snapshot.cluster {
            encode_cluster(&mut encoder, cluster)?;
        }
        let mut metric = encoder.encode_descriptor(
            "nftjail_build_info",
            "nftjail's version.",
            None,
            MetricType::Gauge,
        )?;
        let labels = [("version", env!("CARGO_PKG_VERSION"))];
        encode_value(metric.encode_family(&labels)?, MetricType::Gauge, 1)
    }
}

/// The fleet's families (`[cluster]`), labelled with the node's name.
fn encode_cluster(
    encoder: &mut DescriptorEncoder,
    c: &crate::fleet::ClusterStatus,
) -> Result<(), std::fmt::Error> {
    let node = [("node", c.node.as_str())];
    let connected = u64::from(c.link == crate::fleet::stats::Link::Connected.as_str());
    for (name, kind, help, value) in [
        (
            "nftjail_cluster_connected",
            MetricType::Gauge,
            "1 when the link to the NATS server is up.",
            connected,
        ),
        (
            "nftjail_cluster_outbox",
            MetricType::Gauge,
            "Bans waiting in the outbox for the server.",
            c.outbox,
        ),
        (
            "nftjail_cluster_outbox_dropped",
            MetricType::Counter,
            "Bans not shared because the outbox was full.",
            c.outbox_dropped,
        ),
        (
            "nftjail_cluster_published",
            MetricType::Counter,
            "Bans and unbans the stream stored.",
            c.published,
        ),
        (
            "nftjail_cluster_received",
            MetricType::Counter,
            "Messages read from the stream.",
            c.received,
        ),
        (
            "nftjail_cluster_applied",
            MetricType::Counter,
            "Peers' bans and unbans applied here.",
            c.applied,
        ),
        (
            "nftjail_cluster_lag_messages",
            MetricType::Gauge,
            "Messages in the stream not read yet.",
            c.lag,
        ),
    ] {
        let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
        encode_value(metric.encode_family(&node)?, kind, value)?;
    }
    let mut metric = encoder.encode_descriptor(
        "nftjail_cluster_rejected",
        "Peers' messages refused, by reason.",
        None,
        MetricType::Counter,
    )?;
    for (reason, n) in &c.rejected {
        let labels = [("node", c.node.as_str()), ("reason", reason.as_str())];
        encode_value(metric.encode_family(&labels)?, MetricType::Counter, *n)?;
    }
    Ok(())
}

fn encode_value(
    encoder: prometheus_client::encoding::MetricEncoder<'_>,
    kind: MetricType,
    value: u64,
) -> Result<(), std::fmt::Error> {
    match kind {
        MetricType::Counter => ConstCounter::new(value).encode(encoder),
        _ => ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX)).encode(encoder),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every family and sample line the hand-written responder served before the HTTP server
    /// moved to prometheus-client: dashboards depend on these names.
    #[test]
    fn renders_every_family_under_its_old_name() {
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
        banner.last_job_us.store(1_500, Ordering::Relaxed);
        let text = render(
            Arc::new(snapshot),
            &banner,
            vec![("sshd".into(), "/var/log/a\"b.log".into(), 42)],
        );
        for line in [
            "nftjail_lines_read_total{jail=\"sshd\"} 1000",
            "nftjail_lines_skipped_total{jail=\"sshd\"} 4",
            "nftjail_failures_total{jail=\"sshd\"} 9",
            "nftjail_bans_total{jail=\"sshd\"} 3",
            "nftjail_unbans_total{jail=\"sshd\"} 2",
            "nftjail_banned{jail=\"sshd\"} 1",
            "nftjail_tracked_addresses{jail=\"sshd\"} 2",
            "nftjail_evicted_addresses_total{jail=\"sshd\"} 0",
            "nftjail_netlink_batches_total 5",
            "nftjail_netlink_changes_total 0",
            "nftjail_netlink_errors_total 0",
            "nftjail_last_batch_seconds 0.0015",
            "nftjail_source_lag_bytes{jail=\"sshd\",path=\"/var/log/a\\\"b.log\"} 42",
            "# TYPE nftjail_banned gauge",
            "# TYPE nftjail_bans_total counter",
            "# TYPE nftjail_build_info gauge",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing in\n{text}"
            );
        }
        let version = format!(
            "nftjail_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        assert!(text.lines().any(|l| l == version), "{text}");
        assert!(
            !text.contains("# EOF"),
            "the Prometheus format, not OpenMetrics"
        );
    }

    #[test]
    fn the_fleet_families_keep_their_names() {
        let stats = crate::fleet::stats::FleetStats::default();
        stats.set_link(crate::fleet::stats::Link::Connected);
        stats.outbox.store(3, Ordering::Relaxed);
        stats.reject(&nftjail_core::fleet::Rejection::Malformed("x".into()));
        stats.reject(&nftjail_core::fleet::Rejection::Malformed("y".into()));
        let snapshot = Snapshot {
            jails: vec![],
            files: vec![],
            cluster: Some(stats.status("mail1", "NFTJAIL_BANS")),
        };
        let text = render(Arc::new(snapshot), &BannerStats::default(), vec![]);
        for line in [
            "nftjail_cluster_connected{node=\"mail1\"} 1",
            "nftjail_cluster_outbox{node=\"mail1\"} 3",
            "nftjail_cluster_rejected_total{node=\"mail1\",reason=\"malformed\"} 2",
            "# TYPE nftjail_cluster_lag_messages gauge",
            "# TYPE nftjail_cluster_published_total counter",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing in\n{text}"
            );
        }
    }
}
