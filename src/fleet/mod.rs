//! The fleet: bans shared with the other hosts through NATS JetStream (`[cluster]`).
//!
//! Receives, from the core, the messages of bans and unbans settled here (a bounded channel the
//! core never waits on), and, from the stream, the other nodes' messages; emits the former to
//! the stream through a persisted [`outbox`] ([`publisher`]) and the latter, checked by the
//! core crate's `PeerCheck`, to the core as [`PeerBatch`]es ([`consumer`]), which enters them
//! through the tracker into the `apply_to` jail and makes the stream position durable with
//! them. [`stats`] is what `status` and the metrics show: the link, the lag, the outbox.
//!
//! Topology: one publisher task and one consumer task over one client connection ([`link`]),
//! plus a watcher of the connection's state. It never blocks a local ban — when the server is
//! down bans go on here and wait in the outbox — never executes anything a message says, and
//! never publishes a ban that came from the fleet (the core does not hand it any).

pub mod consumer;
pub mod link;
pub mod outbox;
pub mod publisher;
pub mod stats;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::cluster::ClusterConfig;
use nftjail_core::fleet::{BanMessage, PeerDecision};
pub use stats::{ClusterStatus, FleetStats, Link};

/// Messages from the core waiting for the publisher, at most (past it they are dropped and
/// counted: the publisher drains the channel into the outbox at every turn).
pub const OUTGOING: usize = 65_536;
/// Batches from the consumer waiting for the core.
const INCOMING: usize = 4;

/// Peers' decisions for the core, and the stream sequence they take the position to.
#[derive(Debug)]
pub struct PeerBatch {
    pub decisions: Vec<PeerDecision>,
    pub seq: u64,
}

/// Why the fleet could not start.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error(transparent)]
    Outbox(#[from] outbox::OutboxError),
    #[error(transparent)]
    Link(#[from] link::LinkError),
}

/// What the core keeps of the fleet.
pub struct Fleet {
    pub config: ClusterConfig,
    pub outgoing: mpsc::Sender<BanMessage>,
    pub stats: Arc<FleetStats>,
}

/// The fleet's running tasks.
pub struct Running {
    pub fleet: Fleet,
    pub incoming: mpsc::Receiver<PeerBatch>,
    /// Ends once the core dropped its `Fleet` (the outbox is then on disk).
    pub task: JoinHandle<()>,
}

/// The key of the stream position in the state.
pub fn position_key(config: &ClusterConfig) -> String {
    format!("fleet:{}", config.stream)
}

/// Opens the outbox and starts the client, the publisher and the consumer. Returns at once:
/// the connection is made (and remade) in the background.
pub async fn start(
    config: ClusterConfig,
    state_dir: &Path,
    position: u64,
    clock: fn() -> i64,
    shutdown: CancellationToken,
) -> Result<Running, FleetError> {
    let dir = state_dir.to_path_buf();
    let max = config.outbox_max;
    let outbox = tokio::task::spawn_blocking(move || outbox::Outbox::open(&dir, max))
        .await
        .expect("invariant: opening the outbox does not panic")?;
    if outbox.damaged > 0 {
        tracing::warn!(
            lines = outbox.damaged,
            "damaged lines of the fleet outbox were skipped"
        );
    }
    let stats = Arc::new(FleetStats::default());
    stats
        .outbox
        .store(outbox.len() as u64, std::sync::atomic::Ordering::Relaxed);
    let client = link::connect(&config).await?;
    let js = link::jetstream(client.clone());
    let (outgoing, intake) = mpsc::channel(OUTGOING);
    let (incoming_tx, incoming) = mpsc::channel(INCOMING);
    tracing::info!(
        node = %config.node,
        stream = %config.stream,
        urls = ?config.urls,
        waiting = outbox.len(),
        after = position,
        "fleet on"
    );
    let publisher = tokio::spawn(publisher::run(
        js.clone(),
        outbox,
        intake,
        stats.clone(),
        shutdown.clone(),
    ));
    let consumer = tokio::spawn(consumer::run(
        js,
        config.clone(),
        position,
        clock,
        incoming_tx,
        stats.clone(),
        shutdown.clone(),
    ));
    let watcher = tokio::spawn(watch_link(client, stats.clone(), shutdown));
    let task = tokio::spawn(async move {
        let _ = publisher.await;
        let _ = consumer.await;
        let _ = watcher.await;
    });
    Ok(Running {
        fleet: Fleet {
            config,
            outgoing,
            stats,
        },
        incoming,
        task,
    })
}

/// Follows the connection's state for `status` and the metrics, and logs its changes.
async fn watch_link(
    client: async_nats::Client,
    stats: Arc<FleetStats>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let link = match client.connection_state() {
            async_nats::connection::State::Connected => Link::Connected,
            async_nats::connection::State::Disconnected => Link::Disconnected,
            async_nats::connection::State::Pending => Link::Connecting,
        };
        let before = stats.link();
        if link != before {
            match link {
                Link::Connected => tracing::info!("fleet: connected to the NATS server"),
                _ => tracing::warn!(
                    link = link.as_str(),
                    "fleet: no connection to the NATS server; bans wait in the outbox"
                ),
            }
            stats.set_link(link);
        }
    }
}
