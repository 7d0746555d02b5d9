//! The fleet's counters: written by the fleet task and the core, read by `status` and metrics.
//!
//! Receives increments (atomics, no locks on the hot path) and the link's state; emits a
//! [`ClusterStatus`] snapshot — the `cluster` object of a `status` reply — and its metrics
//! (rendered by the daemon's metrics). It decides nothing.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use nftjail_core::fleet::Rejection;

/// The link to the NATS server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Link {
    Connecting = 0,
    Connected = 1,
    Disconnected = 2,
}

impl Link {
    pub fn as_str(self) -> &'static str {
        match self {
            Link::Connecting => "connecting",
            Link::Connected => "connected",
            Link::Disconnected => "disconnected",
        }
    }
}

/// Counters of the fleet, shared between the fleet task, the core and the metrics endpoint.
#[derive(Debug, Default)]
pub struct FleetStats {
    link: AtomicU8,
    /// Messages waiting in the outbox.
    pub outbox: AtomicU64,
    /// Messages dropped because the outbox (or the channel to it) was full.
    pub outbox_dropped: AtomicU64,
    /// Messages the stream stored (acknowledged).
    pub published: AtomicU64,
    /// Peers' messages read from the stream.
    pub received: AtomicU64,
    /// Peers' bans and unbans applied here.
    pub applied: AtomicU64,
    /// Messages in the stream not read yet.
    pub lag: AtomicU64,
    /// Stream sequence of the last message read.
    pub position: AtomicU64,
    /// Times the link came back after it was lost.
    pub reconnects: AtomicU64,
    rejected: [AtomicU64; Rejection::REASONS.len()],
    last_error: Mutex<Option<String>>,
}

impl FleetStats {
    pub fn set_link(&self, link: Link) {
        let before = self.link.swap(link as u8, Ordering::Relaxed);
        if link == Link::Connected && before == Link::Disconnected as u8 {
            self.reconnects.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn link(&self) -> Link {
        match self.link.load(Ordering::Relaxed) {
            1 => Link::Connected,
            2 => Link::Disconnected,
            _ => Link::Connecting,
        }
    }

    /// Counts a rejected message under its reason.
    pub fn reject(&self, rejection: &Rejection) {
        if let Some(i) = Rejection::REASONS
            .iter()
            .position(|r| *r == rejection.reason())
        {
            self.rejected[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Rejections by reason.
    pub fn rejected(&self) -> BTreeMap<String, u64> {
        Rejection::REASONS
            .iter()
            .zip(&self.rejected)
            .map(|(r, n)| (r.to_string(), n.load(Ordering::Relaxed)))
            .collect()
    }

    pub fn set_error(&self, error: Option<String>) {
        if let Ok(mut e) = self.last_error.lock() {
            *e = error;
        }
    }

    /// The `cluster` object of a `status` reply.
    pub fn status(&self, node: &str, stream: &str) -> ClusterStatus {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ClusterStatus {
            node: node.to_string(),
            stream: stream.to_string(),
            link: self.link().as_str().to_string(),
            outbox: load(&self.outbox),
            outbox_dropped: load(&self.outbox_dropped),
            published: load(&self.published),
            received: load(&self.received),
            applied: load(&self.applied),
            lag: load(&self.lag),
            position: load(&self.position),
            rejected: self.rejected(),
            last_error: self.last_error.lock().ok().and_then(|e| e.clone()),
        }
    }
}

/// The fleet as `status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub node: String,
    pub stream: String,
    /// `connected`, `connecting` or `disconnected`.
    pub link: String,
    pub outbox: u64,
    pub outbox_dropped: u64,
    pub published: u64,
    pub received: u64,
    pub applied: u64,
    pub lag: u64,
    pub position: u64,
    pub rejected: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_counts_refusals_by_reason() {
        let stats = FleetStats::default();
        stats.set_link(Link::Connected);
        stats.outbox.store(3, Ordering::Relaxed);
        stats.reject(&Rejection::Malformed("x".into()));
        stats.reject(&Rejection::Malformed("y".into()));
        let status = stats.status("mail1", "NFTJAIL_BANS");
        assert_eq!(status.link, "connected");
        assert_eq!(status.rejected["malformed"], 2);
        assert_eq!(status.rejected["rate"], 0);
    }
}
