//! The worker's firewall part: a firewall update applied and its records kept, taken back when
//! the disk refuses them, and put back after drift.
//!
//! Receives [`FirewallUpdate`]s (the firewall the kernel must hold and the state records that
//! say so) inside jobs; emits each one's outcome: applied (with what changed), refused by the
//! kernel (nothing changed: one transaction), or not durable (the kernel change was undone).
//! An update that comes with a layout (a reload) succeeds or fails with it: when one of the two
//! fails, the other is put back as it was. It never decides what the firewall holds.

use std::sync::Arc;

use super::{Fatal, OrderError, Outcome, Worker};
use crate::state::{Record, StateError};
use nftjail_backend::{BackendError, FirewallLayout, Layout};

/// A change of the firewall: what the kernel must hold, and the records that make it durable.
#[derive(Debug, Clone)]
pub struct FirewallUpdate {
    pub layout: FirewallLayout,
    pub records: Vec<Record>,
}

/// What the kernel held before a job that changes its structure.
#[derive(Debug)]
pub struct Before {
    layout: Option<Layout>,
    firewall: Option<FirewallLayout>,
}

impl Worker {
    pub(super) fn before(&self) -> Before {
        Before {
            layout: self.layout.clone(),
            firewall: self.firewall.clone(),
        }
    }

    /// Applies `update` and queues its records; with a layout in the same job, either both
    /// stay or neither does.
    pub(super) fn firewall_update(
        &mut self,
        update: FirewallUpdate,
        before: &Before,
        outcome: &mut Outcome,
    ) {
        if let Some(Err(e)) = &outcome.layout {
            outcome.firewall = Some(Err(e.clone()));
            return;
        }
        match self.backend.apply_firewall(&update.layout) {
            Ok(report) => {
                if !report.unchanged() {
                    tracing::info!(
                        chains_added = report.chains_added,
                        chains_removed = report.chains_removed,
                        policies_changed = report.policies_changed,
                        rules_added = report.rules_added,
                        rules_deleted = report.rules_deleted,
                        "firewall changed"
                    );
                }
                self.firewall = Some(update.layout);
                for record in &update.records {
                    self.store.append(record);
                }
                outcome.firewall = Some(Ok(report));
            }
            Err(error) => {
                tracing::warn!(error = %error, "the kernel refused the firewall change");
                let error = OrderError::Refused(Arc::new(error));
                if outcome.layout.is_some() {
                    self.restore_layout(before);
                    outcome.layout = Some(Err(error.clone()));
                }
                outcome.firewall = Some(Err(error));
            }
        }
    }

    /// The job's records could not be saved: its firewall change (and the layout that came
    /// with it) go back to what the kernel held before. Failing that, kernel and state disagree.
    pub(super) fn undo_firewall(
        &mut self,
        before: Before,
        error: &Arc<StateError>,
        outcome: &mut Outcome,
    ) -> Result<(), Fatal> {
        if !matches!(outcome.firewall, Some(Ok(_))) {
            return Ok(());
        }
        let previous = before.firewall.clone().unwrap_or_else(FirewallLayout::off);
        self.backend.apply_firewall(&previous).map_err(Fatal)?;
        self.firewall = before.firewall.clone();
        let not_durable = OrderError::NotDurable(error.clone());
        if outcome.layout.is_some() {
            self.restore_layout(&before);
            outcome.layout = Some(Err(not_durable.clone()));
        }
        outcome.firewall = Some(Err(not_durable));
        Ok(())
    }

    fn restore_layout(&mut self, before: &Before) {
        if let Some(layout) = &before.layout {
            if let Err(e) = self.backend.apply_layout(layout) {
                tracing::warn!(error = %e, "could not put the previous layout back");
            }
            self.layout = Some(layout.clone());
        }
    }

    /// Puts the firewall the kernel should hold back in place (after drift): only what differs
    /// is changed.
    pub(super) fn repair_firewall(&mut self) -> Result<(), Arc<BackendError>> {
        let Some(firewall) = &self.firewall else {
            return Ok(());
        };
        let report = self.backend.apply_firewall(firewall).map_err(Arc::new)?;
        if !report.unchanged() {
            tracing::warn!(
                chains_added = report.chains_added,
                chains_removed = report.chains_removed,
                policies_changed = report.policies_changed,
                rules_added = report.rules_added,
                rules_deleted = report.rules_deleted,
                "firewall repaired"
            );
        }
        Ok(())
    }
}
