//! Reloading the configuration without stopping, and without ever blocking the core.
//!
//! Receives reload requests (SIGHUP, `nftjail reload`), the loaded configuration (from a
//! blocking thread) and the kernel's answer to its layout; emits a new configuration in the
//! core — tracker policies, parked and restored bans, sources kept or changed, the firewall's
//! `firewall.d` rules (sent with the layout: both are applied or neither) — and one reply per
//! request. Validation comes before the swap: an invalid configuration, or a layout the
//! kernel refuses, leaves the running one untouched. Requests that arrive while a reload runs
//! are coalesced into one more reload afterwards (a burst of SIGHUPs costs two loads, not a
//! hundred), and each request is answered by a load that started after it.

use std::sync::Arc;

use tokio::sync::oneshot;

use super::{Core, Internal};
use crate::banner::{Msg, OrderError};
use crate::config::{self, Config, Diagnostics};
use crate::control::protocol::{ErrorCode, Reply};
use crate::daemon::status;
use crate::daemon::systemd;
use nftjail_backend::BackendError;

/// Where the reload machine is.
#[derive(Default)]
pub struct Reload {
    running: bool,
    /// Replies owed by the running reload.
    waiting: Vec<oneshot::Sender<Reply>>,
    /// Requests that arrived while it ran: they get a reload of their own after it.
    next: Vec<oneshot::Sender<Reply>>,
}

impl Reload {
    /// Whether a reload is between its request and its answer.
    pub fn running(&self) -> bool {
        self.running
    }
}

impl Core {
    /// A reload was asked for.
    pub(super) fn reload_requested(&mut self, reply: oneshot::Sender<Reply>) {
        if self.reload.running {
            self.reload.next.push(reply);
        } else {
            self.reload.waiting.push(reply);
            self.start_load();
        }
    }

    /// Reads and validates the configuration on a blocking thread (files, host names).
    fn start_load(&mut self) {
        systemd::reloading();
        self.reload.running = true;
        let path = self.config.path.clone();
        let internal = self.internal.clone();
        tokio::task::spawn_blocking(move || {
            let loaded = config::load(&path).map(Box::new);
            let _ = internal.send(Internal::Loaded(loaded));
        });
    }

    /// The configuration was read: refuse it, or hand its layout to the kernel.
    pub(super) fn loaded(&mut self, result: Result<Box<Config>, Diagnostics>) {
        let new = match result.map(|c| self.firewall_defers_load(c)) {
            Ok(Some(c)) => c,
            // Taken up again when the firewall change in flight ends.
            Ok(None) => return,
            Err(diags) => {
                tracing::error!(
                    errors = diags.len(),
                    "reload refused: the configuration is invalid; the running one stays"
                );
                for d in diags.iter() {
                    tracing::error!("{d}");
                }
                return self.finish(Reply {
                    diagnostics: diags.iter().map(ToString::to_string).collect(),
                    code: Some(ErrorCode::InvalidConfig),
                    ..Reply::error(format!(
                        "configuration invalid ({} error(s)); still running the previous one",
                        diags.len()
                    ))
                });
            }
        };
        if new.nftables.table != self.config.nftables.table {
            let message = format!(
                "reload refused: [nftables] table changed from {:?} to {:?}, which needs a restart",
                self.config.nftables.table, new.nftables.table
            );
            tracing::error!("{message}");
            return self.finish(Reply::refuse(ErrorCode::InvalidConfig, message));
        }
        let firewall = match self.firewall_for_reload(&new) {
            Ok(update) => update,
            Err(message) => {
                tracing::error!("{message}");
                return self.finish(Reply::refuse(ErrorCode::InvalidConfig, message));
            }
        };
        let (done, answer) = oneshot::channel();
        self.push(Msg::Layout {
            layout: new.layout(),
            firewall: Some(Box::new(firewall)),
            done,
        });
        let internal = self.internal.clone();
        tokio::spawn(async move {
            let result = answer.await.unwrap_or_else(|_| {
                Err(OrderError::Refused(Arc::new(BackendError::Protocol(
                    "the banner stopped before applying the layout".into(),
                ))))
            });
            let _ = internal.send(Internal::LayoutApplied(new, result));
        });
    }

    /// The kernel took (or refused) the new layout: swap, or keep the running configuration.
    pub(super) fn layout_applied(&mut self, new: Config, result: Result<(), OrderError>) {
        if let Err(e) = result {
            tracing::error!(error = %e, "reload refused: the new rules were not applied");
            return self.finish(Reply::refuse(
                ErrorCode::Failed,
                format!("reload refused: the new rules were not applied: {e}"),
            ));
        }
        let now = (self.clock)();
        let policies = new.enabled().map(|j| j.policy.clone()).collect();
        let done = self
            .tracker
            .reconfigure(policies, new.history_retention(), now);
        let mut parked = 0;
        for (jail, bans) in &done.parked {
            parked += bans;
            tracing::warn!(jail = %jail, bans, "jail disabled or removed: its bans are parked (kept, out of the kernel) until it comes back; `nftjail unban --jail JAIL --all` drops them");
        }
        let restored = done.restored.len();
        if restored > 0 {
            tracing::info!(
                bans = restored,
                "parked bans restored with their remaining time"
            );
        }
        self.send(done.restored);
        self.history.log.set_retention(new.daemon.dbpurgeage);
        self.tracker
            .set_self_addresses(crate::daemon::host_addresses());
        if new.cluster.as_ref() != self.fleet.as_ref().map(|f| &f.config) {
            tracing::warn!("[cluster] changed: it takes effect at the next restart");
        }
        self.config = Arc::new(new);
        let config = self.config.clone();
        self.sources.reconcile(&config);
        tracing::info!(
            jails = self.config.enabled().count(),
            parked,
            restored,
            "configuration reloaded"
        );
        let mut reply = status::summary(&self.config, &self.tracker);
        reply.parked = Some(parked);
        reply.restored = Some(restored);
        self.finish(reply);
    }

    /// Answers the reload's requests, and starts the next one if more were asked for.
    fn finish(&mut self, reply: Reply) {
        for waiter in self.reload.waiting.drain(..) {
            let _ = waiter.send(reply.clone());
        }
        self.reload.running = false;
        systemd::ready(&self.status_line());
        if !self.reload.next.is_empty() {
            self.reload.waiting = std::mem::take(&mut self.reload.next);
            self.start_load();
        }
        // Firewall requests that waited for the reload.
        self.firewall_next();
    }
}
