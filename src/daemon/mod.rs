//! The daemon: `nftjail run`.
//!
//! Wires the stages into a fixed task topology:
//! - one thread per log source (`source`), running the jail's filter on what it reads (the
//!   filter stage, `crate::filter`) and sending failures to the core; the running set is kept
//!   by `sources`;
//! - the core task (`core`): the one owner of the tracker, answering the control socket
//!   (`core::requests`) and reloading without blocking (`core::reload`);
//! - the banner task and its worker thread (`banner`): the netlink socket, the batches, the
//!   state log;
//! - the control listener (`control::server`), one small task per client;
//! - when `[http]` or `[metrics]` is set, the HTTP server (`crate::http`), one task per
//!   connection, asking the core through the same door as the control socket.
//!
//! Start-up: state replayed → kernel reconciled (bans already there stay, missing ones are added
//! in bulk, nothing is flushed; the firewall's rules that are in place stay, only those that
//! differ are changed) → banner, socket and sources started → READY. Shutdown (the
//! token is cancelled): sources stopped → what they read is handled → positions and a compacted
//! snapshot made durable → bans left in the kernel (unless `keep_on_stop = false`) → socket
//! removed → STOPPING. The core and the banner are essential: if either stops on its own, the
//! daemon stops with an error (exit 70; systemd restarts it and the start-up reconcile repairs
//! the kernel).

pub mod core;
mod drift;
pub mod hooks;
pub mod metrics;
pub mod self_addresses;
pub mod sources;
pub mod status;
pub mod systemd;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::banner::worker::Worker;
use crate::config::Config;
use crate::control::server::{self, Access};
use crate::state::{Faults, Record, StateError, StateStore};
use nftjail_backend::{Backend, BackendError, Element, reconcile};
use nftjail_core::firewall::Ruleset;
use nftjail_core::jail::JailName;
use nftjail_core::state::BanLog;
use nftjail_core::tracker::{Ban, Tracker};
pub use self_addresses::host_addresses;
use sources::SourceOptions;

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("cannot bring the kernel in line with the saved bans: {0}")]
    Backend(BackendError),
    #[error("cannot open the control socket {path}: {source}")]
    Socket {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Http(#[from] crate::http::HttpError),
    /// The firewall as configured (and as switched through the API) would lock the
    /// administrator out.
    #[error("{0}")]
    Firewall(String),
    #[error("cannot start the fleet: {0}")]
    Fleet(#[from] crate::fleet::FleetError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl DaemonError {
    /// Whether this is a permission problem (exit 77).
    pub fn is_permission(&self) -> bool {
        match self {
            DaemonError::Backend(BackendError::Permission { .. }) => true,
            DaemonError::Socket { source, .. } => {
                source.kind() == std::io::ErrorKind::PermissionDenied
            }
            DaemonError::State(StateError::Io { source, .. }) => {
                source.kind() == std::io::ErrorKind::PermissionDenied
            }
            DaemonError::Http(e) => e.is_permission(),
            _ => false,
        }
    }

    /// Whether this is a configuration problem (exit 78).
    pub fn is_config(&self) -> bool {
        matches!(self, DaemonError::Firewall(_))
    }
}

/// What `run` needs besides the config and the backend.
pub struct Options {
    pub sources: SourceOptions,
    /// Unix seconds now (injected so tests can move time).
    pub clock: fn() -> i64,
    /// Seed of the `rndtime` jitter.
    pub seed: u64,
    /// Foreign changes to the table, when the backend is the kernel's (none with the memory
    /// backend).
    pub monitor: Option<nftjail_backend::TableMonitor>,
    /// Disk faults the state store injects (none unless a test sets some).
    pub state_faults: Arc<Faults>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            sources: SourceOptions::default(),
            clock: unix_now,
            seed: u64::from(std::process::id()) ^ unix_now() as u64,
            state_faults: Arc::new(Faults::new()),
            monitor: None,
        }
    }
}

/// The wall clock in Unix seconds.
pub fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Runs the daemon until `shutdown` is cancelled. `reload` requests (SIGHUP) re-read the config.
pub async fn run(
    config: Config,
    mut backend: Box<dyn Backend>,
    options: Options,
    shutdown: CancellationToken,
    mut reload: mpsc::Receiver<()>,
) -> Result<(), DaemonError> {
    let clock = options.clock;
    let state_dir = config.daemon.state_dir.clone();
    let faults = options.state_faults.clone();
    let replay_started = std::time::Instant::now();
    let (store, mut recovered) =
        tokio::task::spawn_blocking(move || StateStore::open_with(&state_dir, faults))
            .await
            .map_err(|e| DaemonError::Internal(e.to_string()))??;
    tracing::info!(
        records = recovered.records,
        elapsed_ms = replay_started.elapsed().as_millis() as u64,
        "state replayed"
    );
    if recovered.damaged > 0 {
        tracing::warn!(
            lines = recovered.damaged,
            "damaged lines in the state log were skipped"
        );
    }

    // The kernel: keep what is there, add what the state has and the kernel lacks. What the
    // kernel must hold is known from the replay alone (the live bans of enabled jails, which
    // is what the tracker keeps of them), so the kernel is reconciled on a blocking thread
    // while this one builds the tracker: on a restore of many bans the two take about as long.
    let now = clock();
    let enabled: HashSet<JailName> = config.enabled().map(|j| j.name.clone()).collect();
    let desired: Vec<Element> = recovered
        .bans
        .values()
        .filter(|b| b.live_at(now) && enabled.contains(&b.jail))
        .map(|b| {
            let left = b.remaining(now).map(Duration::from_secs);
            Element {
                jail: b.jail.clone(),
                target: b.target,
                timeout: left,
                expires: left,
            }
        })
        .collect();
    // The firewall: the state's ruleset, with the configuration's firewall.d entries.
    let firewall = Ruleset::restore(std::mem::take(&mut recovered.firewall))
        .with_files(&config.firewall.rules, &config.firewall.forwards);
    let firewall_on = core::firewall::enabled(&config.firewall, &firewall.ruleset);
    core::firewall::check_lockout(&config.firewall, &firewall.ruleset, firewall_on, None)
        .map_err(|e| DaemonError::Firewall(format!("the firewall cannot be started: {e}")))?;
    let firewall_layout = core::firewall::layout(&config.firewall, &firewall.ruleset, firewall_on);
    let firewall_records: Vec<Record> = firewall
        .records
        .iter()
        .cloned()
        .map(Record::Firewall)
        .collect();

    let layout = config.layout();
    let started = std::time::Instant::now();
    let applied = firewall_layout.clone();
    let reconciled = tokio::task::spawn_blocking(move || {
        let mut store = store;
        let report = reconcile(&mut *backend, &layout, &desired);
        let firewall_report: Result<_, DaemonError> = match report {
            Ok(_) => (|| {
                let report = backend
                    .apply_firewall(&applied)
                    .map_err(DaemonError::Backend)?;
                // New firewall.d entries got ids: kept, so they keep them after a restart.
                firewall_records.iter().for_each(|r| store.append(r));
                store.commit()?;
                Ok(report)
            })(),
            Err(_) => Ok(nftjail_backend::FirewallReport::default()),
        };
        (backend, store, report, firewall_report)
    });

    let mut tracker = Tracker::new(
        config.enabled().map(|j| j.policy.clone()).collect(),
        config.history_retention(),
        options.seed,
    );
    // Taken out of the replay, not copied: the map would otherwise live as long as the daemon.
    let replayed: Vec<Ban> = std::mem::take(&mut recovered.bans).into_values().collect();
    tracker.restore(replayed, std::mem::take(&mut recovered.history), now);
    for (jail, totals) in &recovered.totals {
        tracker.set_totals(jail, totals.failed, totals.banned);
    }
    let mut ban_log = BanLog::new(config.daemon.dbpurgeage);
    ban_log.restore(std::mem::take(&mut recovered.events), now);
    let history = core::History::new(
        ban_log,
        std::mem::take(&mut recovered.totals)
            .into_iter()
            .map(|(j, t)| (j, t.failed, t.banned)),
    );
    let parked = tracker.parked().count();
    if parked > 0 {
        tracing::info!(
            bans = parked,
            "bans of jails not configured are parked (kept, out of the kernel)"
        );
    }

    let (backend, store, report, firewall_report) = reconciled
        .await
        .map_err(|e| DaemonError::Internal(e.to_string()))?;
    let report = report.map_err(|e| DaemonError::Backend(e.error))?;
    let firewall_report = firewall_report?;
    tracing::info!(
        enabled = firewall_on,
        rules = firewall.ruleset.rules().len(),
        forwards = firewall.ruleset.forwards().len(),
        rules_added = firewall_report.rules_added,
        rules_deleted = firewall_report.rules_deleted,
        chains_added = firewall_report.chains_added,
        "firewall reconciled"
    );
    for warning in
        core::firewall::forwarding_warnings(&firewall.ruleset, core::firewall::ip_forward())
    {
        tracing::warn!("{warning}");
    }
    tracing::info!(
        added = report.added,
        refreshed = report.refreshed,
        kept = report.kept,
        adopted = report.unknown.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "kernel reconciled"
    );
    tracker.adopt(report.unknown.into_iter().map(|e| core::adopted(e, now)));
    // Opened before the first read of the host's addresses, so no change falls between.
    let addresses = self_addresses::AddressWatcher::open()
        .map_err(|e| tracing::warn!(error = %e, "cannot watch the host's addresses; ignoreself re-reads them every 30 s"))
        .ok();
    tracker.set_self_addresses(host_addresses());

    let (reports_tx, reports) = mpsc::channel(64);
    let worker = Worker::new(backend, store, config.layout()).with_firewall(firewall_layout);
    let (banner, banner_task) = crate::banner::task::spawn(worker, reports_tx, clock);

    let socket = server::bind(
        &config.daemon.socket,
        config.daemon.socket_group.as_ref().map(|(_, gid)| *gid),
    )
    .map_err(|source| DaemonError::Socket {
        path: config.daemon.socket.clone(),
        source,
    })?;
    let (calls_tx, calls) = mpsc::channel(64);
    let access = Access {
        group: config.daemon.socket_group.as_ref().map(|(_, gid)| *gid),
        max_clients: config.daemon.max_clients,
    };
    let server_task = tokio::spawn(server::serve(
        socket,
        access,
        calls_tx.clone(),
        shutdown.clone(),
    ));
    let http_calls = calls_tx.clone();

    // Reload requests (SIGHUP) go through the same door as `nftjail reload`; the core
    // coalesces them, so nothing here waits for a reload to finish.
    let reload_calls = calls_tx;
    let reload_shutdown = shutdown.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = reload_shutdown.cancelled() => return,
                r = reload.recv() => if r.is_none() { return },
            }
            let (reply, _answer) = tokio::sync::oneshot::channel();
            let call = crate::control::Call {
                command: crate::control::Command::Reload,
                reply,
            };
            if reload_calls.send(call).await.is_err() {
                return;
            }
        }
    });

    // The HTTP API, console and /metrics: nothing at all is started when they are off.
    let mut http_tasks = Vec::new();
    let metrics = if crate::http::wanted(&config) {
        let (tx, rx) = tokio::sync::watch::channel(Arc::new(metrics::Snapshot::default()));
        let parts = crate::http::Parts {
            calls: http_calls,
            scrape: crate::http::Scrape {
                snapshot: rx,
                banner: banner.stats.clone(),
            },
            socket_group: config.daemon.socket_group.as_ref().map(|(_, gid)| *gid),
        };
        http_tasks = crate::http::start(&config, parts, shutdown.clone()).await?;
        Some(tx)
    } else {
        drop(http_calls);
        None
    };

    let (events_tx, events) = mpsc::channel(1024);
    let (internal_tx, internal) = mpsc::unbounded_channel();
    if let Some(monitor) = options.monitor {
        drift::spawn(monitor, internal_tx.clone(), shutdown.clone())
            .map_err(|e| DaemonError::Internal(format!("cannot start the table monitor: {e}")))?;
    }
    // The fleet: its stream position is the state's, not a log source's.
    let fleet = match config.cluster.clone() {
        Some(cluster) => {
            let key = crate::fleet::position_key(&cluster);
            let position = match recovered.positions.remove(&key) {
                Some(crate::state::Position::Stream { seq }) => seq,
                _ => 0,
            };
            Some(
                crate::fleet::start(
                    cluster,
                    &config.daemon.state_dir,
                    position,
                    clock,
                    shutdown.clone(),
                )
                .await?,
            )
        }
        None => None,
    };
    let (fleet, peers, fleet_task) = match fleet {
        Some(r) => (Some(r.fleet), Some(r.incoming), Some(r.task)),
        None => (None, None, None),
    };
    let sources = sources::Sources::new(
        std::mem::take(&mut recovered.positions),
        events_tx,
        options.sources,
    );
    let core = core::Core::new(core::Parts {
        config: Arc::new(config),
        tracker,
        banner: banner.clone(),
        sources,
        clock,
        metrics,
        internal: internal_tx,
        addresses,
        firewall: firewall.ruleset,
        fleet,
        history,
    });
    // A clean, compact state log from the start (adopted bans included, stale ones gone).
    banner
        .send(crate::banner::Msg::Barrier(crate::banner::Barrier::Compact))
        .await;
    tracing::info!(
        jails = core.config.enabled().count(),
        bans = core.tracker.bans().len(),
        "nftjail running"
    );
    drop(banner);

    let inputs = core::Inputs {
        events,
        calls,
        reports,
        internal,
        peers,
    };
    let result = core.run(inputs, shutdown.clone()).await;
    if result.is_err() {
        // The core stopped on its own: stop everything else too.
        shutdown.cancel();
    }
    let banner_result = banner_task.await;
    if let Some(task) = fleet_task
        && tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .is_err()
    {
        tracing::warn!("the fleet task did not stop in time");
    }
    let _ = server_task.await;
    for task in http_tasks {
        let _ = task.await;
    }
    systemd::stopping();
    match (result, banner_result) {
        (Ok(()), Ok(Ok(()))) => {
            tracing::info!("nftjail stopped");
            Ok(())
        }
        (_, Ok(Err(e))) => Err(DaemonError::Internal(e.to_string())),
        (_, Err(e)) => Err(DaemonError::Internal(format!(
            "the banner task failed: {e}"
        ))),
        (Err(e), _) => Err(DaemonError::Internal(e.to_string())),
    }
}
