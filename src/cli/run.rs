//! `nftjail run`: the daemon in the foreground (systemd `Type=notify`).
//!
//! Loads and validates the configuration (an invalid one starts nothing: exit 78), opens the
//! netlink backend, turns SIGTERM/SIGINT into a clean shutdown and SIGHUP into a reload, and
//! runs [`crate::daemon::run`] until it stops.

use std::path::PathBuf;

use clap::Args;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::CliError;
use crate::config::{self, DEFAULT_CONFIG};
use crate::daemon::{self, Options};
use nftjail_backend::{NetlinkBackend, TableMonitor};

/// Arguments of `nftjail run`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  nftjail run                                  # /etc/nftjail/nftjail.toml\n  \
    nftjail run --config /srv/nftjail/nftjail.toml\n  \
    systemctl start nftjail                      # how it normally runs (systemd/nftjail.service)\n\n\
    Signals: SIGHUP reloads the configuration (as `nftjail reload`), SIGTERM and SIGINT \
    stop cleanly; bans stay in the kernel and expire by themselves.\nLog level: [daemon] loglevel, or RUST_LOG."
)]
pub struct RunArgs {
    /// The main configuration file; jail.d/ and filter.d/ are read beside it [default:
    /// /etc/nftjail/nftjail.toml]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

pub fn run(args: &RunArgs) -> Result<(), CliError> {
    let path = args
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    let config = config::load(&path).map_err(CliError::Config)?;
    init_logging(&config.daemon.loglevel);
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let backend = NetlinkBackend::open(&config.nftables.table)
        .map_err(|e| CliError::Start(daemon::DaemonError::Backend(e)))?;
    // Changes to the table by anyone but this backend's socket are drift, repaired at once.
    let monitor = TableMonitor::open(&config.nftables.table, backend.portid())
        .map_err(|e| CliError::Start(daemon::DaemonError::Backend(e)))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("nftjail")
        .build()
        .map_err(|e| CliError::Io {
            what: "cannot start the runtime".into(),
            source: e,
        })?;
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        let (reload_tx, reload_rx) = mpsc::channel(4);
        let signals = signals(shutdown.clone(), reload_tx).map_err(|e| CliError::Io {
            what: "cannot install signal handlers".into(),
            source: e,
        })?;
        let result = daemon::run(
            config,
            Box::new(backend),
            Options {
                monitor: Some(monitor),
                ..Options::default()
            },
            shutdown,
            reload_rx,
        )
        .await;
        signals.abort();
        result.map_err(CliError::Start)
    })
}

/// SIGTERM and SIGINT cancel `shutdown`; SIGHUP asks for a reload.
fn signals(
    shutdown: CancellationToken,
    reload: mpsc::Sender<()>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => { tracing::info!("SIGTERM: stopping"); shutdown.cancel(); }
                _ = int.recv() => { tracing::info!("SIGINT: stopping"); shutdown.cancel(); }
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading the configuration");
                    let _ = reload.try_send(());
                }
            }
        }
    }))
}

/// Structured logs on stderr; under systemd (journald adds the time) without timestamps.
fn init_logging(level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("nftjail={level},warn")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.without_time().with_ansi(false).try_init()
    } else {
        builder.with_ansi(colour).try_init()
    };
}
