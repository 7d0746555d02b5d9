//! Watching the kernel for changes nftjail did not make.
//!
//! Receives the nf_tables notifications of foreign changes to our table (through the backend's
//! [`TableMonitor`], on a thread of its own); emits one [`Internal::Drift`] per burst to the
//! core, which repairs the kernel from the settled state once the burst settles. It logs what it
//! saw (which object, and that it will be repaired) and never touches the kernel itself.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::core::Internal;
use nftjail_backend::{Drift, TableMonitor};

/// How long one wait for notifications lasts before the thread checks for shutdown.
const WAIT: Duration = Duration::from_millis(500);

/// Starts the thread that turns foreign changes into repair requests.
pub fn spawn(
    mut monitor: TableMonitor,
    internal: mpsc::UnboundedSender<Internal>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("drift".into())
        .spawn(move || {
            while !shutdown.is_cancelled() {
                let drifts = match monitor.wait(WAIT) {
                    Ok(d) => d,
                    Err(e) => {
                        tracing::error!(error = %e, "the table monitor failed; checking the kernel");
                        vec![Drift::Overrun]
                    }
                };
                let repair: Vec<&Drift> = drifts.iter().filter(|d| d.needs_repair()).collect();
                if repair.is_empty() {
                    continue;
                }
                for d in &repair {
                    tracing::warn!(table = %monitor.table(), change = %d, "the table was changed by someone else: repairing it");
                }
                let structure = repair
                    .iter()
                    .any(|d| !matches!(d, Drift::ElementsDeleted { .. }));
                if internal.send(Internal::Drift { structure }).is_err() {
                    return;
                }
            }
        })
        .map(drop)
}
