//! The publisher: the core's bans → the outbox on disk → the stream.
//!
//! Receives the messages of bans settled here (a bounded channel the core fills without
//! waiting); emits them to the stream on `nftjail.bans.<node>.<jail>`, each with a message ID
//! made of what it says (node, jail, target, action, times), so a message sent again after a
//! lost acknowledgement is stored once (the stream's duplicate window). A message leaves the
//! outbox only once the stream acknowledged it; while the server is away the outbox grows (to
//! its bound) and is sent in order on reconnect. It never holds up the core: the core only
//! ever `try_send`s to it, and the channel is drained into the outbox at every turn.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::outbox::Outbox;
use super::stats::{FleetStats, Link};
use nftjail_core::fleet::{BanMessage, MessageAction};

/// Messages sent before their acknowledgements are awaited.
const IN_FLIGHT: usize = 512;
/// The longest pause between two tries while the server does not acknowledge.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// The message ID that makes a resend harmless: what the message says, not when it was sent.
pub fn message_id(m: &BanMessage) -> String {
    let action = match m.action {
        MessageAction::Ban => "ban",
        MessageAction::Unban => "unban",
    };
    let expires = m.expires.map_or_else(|| "-".to_string(), |e| e.to_string());
    format!(
        "{}/{}/{}/{action}/{}/{expires}",
        m.node, m.jail, m.target, m.since
    )
}

/// Runs until the core closes the channel; sends to the stream until `shutdown`.
pub async fn run(
    js: jetstream::Context,
    mut outbox: Outbox,
    mut intake: mpsc::Receiver<BanMessage>,
    stats: Arc<FleetStats>,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(50);
    let mut closed = false;
    loop {
        // Everything the core sent so far goes to disk first (one fsync).
        let mut fresh = Vec::new();
        while let Ok(m) = intake.try_recv() {
            fresh.push(m);
        }
        keep(&mut outbox, fresh, &stats);
        if closed {
            return;
        }
        if outbox.is_empty() || shutdown.is_cancelled() {
            tokio::select! {
                m = intake.recv() => match m {
                    Some(m) => keep(&mut outbox, vec![m], &stats),
                    None => closed = true,
                },
                _ = shutdown.cancelled(), if !shutdown.is_cancelled() => {}
            }
            continue;
        }
        // Nothing is handed to the client while the link is down: it would only pile up in
        // its buffers; the outbox on disk is the buffer.
        if stats.link() != Link::Connected {
            tokio::select! {
                m = intake.recv() => match m {
                    Some(m) => keep(&mut outbox, vec![m], &stats),
                    None => closed = true,
                },
                _ = connected(&stats) => {}
                _ = shutdown.cancelled() => {}
            }
            continue;
        }
        match send(&js, &outbox, &stats).await {
            Ok(upto) => {
                if let Err(e) = outbox.sent(upto) {
                    tracing::error!(error = %e, "the fleet outbox could not be updated");
                }
                stats.outbox.store(outbox.len() as u64, Ordering::Relaxed);
                backoff = Duration::from_millis(50);
            }
            Err((upto, error)) => {
                if let Some(upto) = upto
                    && let Err(e) = outbox.sent(upto)
                {
                    tracing::error!(error = %e, "the fleet outbox could not be updated");
                }
                stats.outbox.store(outbox.len() as u64, Ordering::Relaxed);
                tracing::debug!(error = %error, waiting = outbox.len(), "fleet: not sent, trying again");
                stats.set_error(Some(format!("publish: {error}")));
                let epoch = stats.reconnects.load(Ordering::Relaxed);
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.cancelled() => {}
                    _ = super::consumer::reconnected(&stats, epoch) => backoff = Duration::from_millis(50),
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Adds messages to the outbox (to disk), and counts.
fn keep(outbox: &mut Outbox, fresh: Vec<BanMessage>, stats: &FleetStats) {
    if fresh.is_empty() {
        return;
    }
    let dropped = outbox.dropped;
    if let Err(e) = outbox.put(fresh) {
        // Kept in memory all the same: sent while the daemon runs, lost if it stops first.
        tracing::error!(error = %e, "the fleet outbox could not be written");
    }
    stats
        .outbox_dropped
        .fetch_add(outbox.dropped - dropped, Ordering::Relaxed);
    stats.outbox.store(outbox.len() as u64, Ordering::Relaxed);
}

/// Sends the oldest messages and awaits their acknowledgements, in order. Returns the last
/// sequence acknowledged, or, on a failure, the last acknowledged before it and the error.
async fn send(
    js: &jetstream::Context,
    outbox: &Outbox,
    stats: &FleetStats,
) -> Result<u64, (Option<u64>, String)> {
    let mut acks = Vec::with_capacity(IN_FLIGHT);
    for (seq, message) in outbox.oldest(IN_FLIGHT) {
        let publish = PublishMessage::build()
            .payload(message.encode().into())
            .message_id(message_id(message));
        match js
            .send_publish(message.node.subject(message.jail.as_str()), publish)
            .await
        {
            Ok(ack) => acks.push((*seq, ack)),
            Err(e) => {
                if acks.is_empty() {
                    return Err((None, e.to_string()));
                }
                break;
            }
        }
    }
    let mut upto = None;
    for (seq, ack) in acks {
        match ack.await {
            Ok(_) => {
                upto = Some(seq);
                stats.published.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => return Err((upto, e.to_string())),
        }
    }
    stats.set_error(None);
    Ok(upto.expect("invariant: at least one message was sent"))
}

/// Returns once the link is up (checked every 100 ms).
async fn connected(stats: &FleetStats) {
    while stats.link() != Link::Connected {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nftjail_core::tracker::{Ban, Origin};

    #[test]
    fn a_message_id_names_the_decision() {
        let ban = Ban {
            jail: "sshd".parse().unwrap(),
            target: "2001:db8::/64".parse().unwrap(),
            since: 100,
            expires: None,
            count: 1,
            origin: Origin::Failures,
        };
        let node = "a".parse().unwrap();
        let ban_id = message_id(&BanMessage::ban(&node, &ban, 3, &[]));
        assert_eq!(ban_id, "a/sshd/2001:db8::/64/ban/100/-");
        let unban_id = message_id(&BanMessage::unban(&node, &ban, 200));
        assert_eq!(unban_id, "a/sshd/2001:db8::/64/unban/200/-");
    }
}
