//! The consumer: the stream → checked decisions → the core.
//!
//! Receives every message of the stream after the position the state holds (an ordered,
//! ephemeral consumer: no acknowledgements, no state on the server; the position is ours, made
//! durable by the core together with the bans it caused); emits [`PeerBatch`]es to the core —
//! the decisions that passed [`PeerCheck`] and the stream sequence they cover. Rejections are
//! counted and logged with their reason here. A new node (no position) reads the whole stream,
//! which holds `max_age` of bans; bans already over are refused as expired, so only the active
//! ones are applied. When the core is busy, it waits (back-pressure); it never waits on the
//! core's account for anything else.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::PeerBatch;
use super::link;
use super::stats::FleetStats;
use crate::config::cluster::ClusterConfig;
use nftjail_core::fleet::{PeerCheck, PeerDecision};

/// Messages handed to the core at once, at most.
const BATCH: usize = 2_000;
/// How long a batch waits for more messages once it has one.
const GATHER: Duration = Duration::from_millis(2);
/// Rejections logged one by one per batch; the rest are summed up.
const LOG_EACH_UP_TO: usize = 10;
/// Pause before setting the consumer up again after a failure.
const RETRY: Duration = Duration::from_millis(500);

/// Reads the stream from after `position` until `shutdown`.
pub async fn run(
    js: jetstream::Context,
    config: ClusterConfig,
    mut position: u64,
    clock: fn() -> i64,
    core: mpsc::Sender<PeerBatch>,
    stats: Arc<FleetStats>,
    shutdown: CancellationToken,
) {
    let mut check = PeerCheck::new(config.node.clone(), config.limits);
    stats.position.store(position, Ordering::Relaxed);
    loop {
        let result = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = follow(&js, &config, &mut position, &mut check, clock, &core, &stats) => r,
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "fleet: reading the stream failed; trying again");
            stats.set_error(Some(e));
        }
        if core.is_closed() {
            return;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(RETRY) => {}
        }
    }
}

/// Sets the consumer up after `position` and follows it until something fails.
async fn follow(
    js: &jetstream::Context,
    config: &ClusterConfig,
    position: &mut u64,
    check: &mut PeerCheck,
    clock: fn() -> i64,
    core: &mpsc::Sender<PeerBatch>,
    stats: &FleetStats,
) -> Result<(), String> {
    let mut stream = link::stream(js, config).await.map_err(|e| e.to_string())?;
    let info = stream.info().await.map_err(|e| e.to_string())?;
    let last = info.state.last_sequence;
    let deliver_policy = if *position == 0 {
        consumer::DeliverPolicy::All
    } else if *position > last {
        // The stream was made anew (its sequence went back): read it all.
        tracing::warn!(
            position = *position,
            last,
            "fleet: the stream is behind our position (recreated?); reading it from the start"
        );
        consumer::DeliverPolicy::All
    } else {
        consumer::DeliverPolicy::ByStartSequence {
            start_sequence: *position + 1,
        }
    };
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            deliver_policy,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("cannot create a consumer: {e}"))?;
    let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
    tracing::info!(stream = %config.stream, after = *position, "fleet: reading the stream");
    stats.set_error(None);
    let epoch = stats.reconnects.load(Ordering::Relaxed);
    loop {
        let mut batch = Vec::new();
        // After a reconnect the server may have lost the consumer (a restart): set it up again
        // at once rather than wait for its heartbeats to be missed.
        let next = tokio::select! {
            m = messages.next() => m,
            _ = reconnected(stats, epoch) => return Err("reconnected: reading on from our position".into()),
        };
        match next {
            Some(Ok(m)) => batch.push(m),
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("the consumer ended".into()),
        }
        while batch.len() < BATCH {
            match tokio::time::timeout(GATHER, messages.next()).await {
                Ok(Some(Ok(m))) => batch.push(m),
                Ok(Some(Err(e))) => {
                    tracing::debug!(error = %e, "fleet: consumer error");
                    break;
                }
                Ok(None) | Err(_) => break,
            }
        }
        let now = clock();
        let mut decisions = Vec::new();
        let mut rejected = 0;
        let mut seq = *position;
        for message in &batch {
            let Ok(info) = message.info() else {
                continue;
            };
            seq = seq.max(info.stream_sequence);
            stats.lag.store(info.pending, Ordering::Relaxed);
            let stamped_ms =
                i64::try_from(info.published.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
            match check.check(&message.subject, &message.payload, stamped_ms, now) {
                Ok(PeerDecision::Own) => {}
                Ok(decision) => decisions.push(decision),
                Err(rejection) => {
                    stats.reject(&rejection);
                    rejected += 1;
                    if rejected <= LOG_EACH_UP_TO {
                        tracing::warn!(
                            subject = %message.subject,
                            reason = rejection.reason(),
                            error = %rejection,
                            "fleet: a peer's message refused"
                        );
                    }
                }
            }
        }
        if rejected > LOG_EACH_UP_TO {
            tracing::warn!(
                refused = rejected,
                "fleet: peers' messages refused (the first ones are logged above)"
            );
        }
        stats
            .received
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        if core.send(PeerBatch { decisions, seq }).await.is_err() {
            return Ok(());
        }
        *position = seq;
        stats.position.store(seq, Ordering::Relaxed);
    }
}

/// Returns once the link came back after `epoch` (checked every 100 ms).
pub(super) async fn reconnected(stats: &FleetStats, epoch: u64) {
    while stats.reconnects.load(Ordering::Relaxed) == epoch {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
