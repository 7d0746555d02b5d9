//! The banner's worker: the one thread that owns the backend (the netlink socket) and the state
//! store.
//!
//! Receives [`Job`]s — a batch of orders with read positions, a layout, a firewall update, or a
//! barrier job (compaction, repair) that runs alone — and runs each as: layout → firewall →
//! element changes (as few kernel transactions as the backend can) → one durable commit of
//! everything the kernel took (the firewall's part is in `firewall`).
//! Emits an [`Outcome`] per job: each order applied or failed with a typed [`OrderError`].
//!
//! One rule for durability: an order is applied only when the kernel holds its change **and**
//! its record is on disk. When the commit fails after the kernel took the changes, the kernel
//! changes of the job are undone (so kernel, state and the tracker agree) and the orders are
//! reported `NotDurable`; if even the undo fails, the job returns a fatal error and the daemon
//! stops (a restart reconciles the kernel with the state). It never decides anything.

use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;

mod firewall;

pub use firewall::FirewallUpdate;

use crate::state::{Position, Record, StateError, StateStore};
use nftjail_backend::{
    ApplyError, Backend, BackendError, Change, Element, FirewallLayout, FirewallReport, Layout,
    ReconcileReport, reconcile, refill,
};
use nftjail_core::tracker::{Action, Ban, Order};

/// Why an order was not applied.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OrderError {
    #[error("the kernel refused it: {0}")]
    Refused(Arc<BackendError>),
    #[error("the state could not be saved ({0}); the kernel change was undone")]
    NotDurable(Arc<StateError>),
}

/// What a barrier job does once everything before it is settled.
#[derive(Debug)]
pub enum BarrierJob {
    /// Replace the state log with these records (the settled bans and history; the store adds
    /// the read positions it holds).
    Compact(Vec<Record>),
    /// Bring the kernel back to these elements (after drift), re-applying the layout first
    /// when `layout` (the table's structure went away).
    Repair {
        elements: Vec<Element>,
        layout: bool,
    },
}

/// One batch of work.
#[derive(Debug, Default)]
pub struct Job {
    /// Applied first, in one transaction, when present.
    pub layout: Option<Layout>,
    /// Applied next (one transaction), its records made durable with the job. With a layout
    /// (a reload), either both are in place after the job or neither is.
    pub firewall: Option<FirewallUpdate>,
    pub orders: Vec<Order>,
    pub positions: Vec<(String, Position)>,
    /// Records without a kernel change (counters, the ban log), written with the job's commit.
    pub records: Vec<Record>,
    /// A compaction or a repair: such a job carries nothing else.
    pub barrier: Option<BarrierJob>,
    /// Delete the whole table (shutdown with `keep_on_stop = false`).
    pub remove_table: bool,
    /// Unix seconds, for the remaining time of each ban.
    pub now: i64,
}

/// What became of a job.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Every order of the job, in order, with its result.
    pub orders: Vec<(Order, Result<(), OrderError>)>,
    pub layout: Option<Result<(), OrderError>>,
    pub firewall: Option<Result<FirewallReport, OrderError>>,
    /// The table had vanished (deleted by hand?): the layout was re-applied before the orders.
    /// Bans made earlier are missing from the kernel until a repair.
    pub table_recreated: bool,
    pub compacted: Option<Result<(), Arc<StateError>>>,
    pub repaired: Option<Result<ReconcileReport, Arc<BackendError>>>,
    /// The state log refuses writes until a compaction succeeds.
    pub state_poisoned: bool,
    pub elapsed: Duration,
}

/// The job could not be finished safely: kernel and state may disagree. The daemon stops.
#[derive(Debug, thiserror::Error)]
#[error("the kernel changes of an unsaved job could not be undone: {0}")]
pub struct Fatal(pub BackendError);

/// The backend and the state store, driven one job at a time.
pub struct Worker {
    backend: Box<dyn Backend>,
    store: StateStore,
    layout: Option<Layout>,
    /// The firewall the kernel holds (set at start-up, changed by firewall updates).
    firewall: Option<FirewallLayout>,
}

impl Worker {
    pub fn new(backend: Box<dyn Backend>, store: StateStore, layout: Layout) -> Worker {
        Worker {
            backend,
            store,
            layout: Some(layout),
            firewall: None,
        }
    }

    /// The worker, knowing that the kernel holds `firewall` (start-up applied it): repairs
    /// and undos go back to it.
    pub fn with_firewall(mut self, firewall: FirewallLayout) -> Worker {
        self.firewall = Some(firewall);
        self
    }

    pub fn run(&mut self, job: Job) -> Result<Outcome, Fatal> {
        let started = Instant::now();
        let mut outcome = Outcome::default();
        let before = (job.layout.is_some() || job.firewall.is_some()).then(|| self.before());
        if let Some(layout) = job.layout {
            let result = self.backend.apply_layout(&layout);
            if result.is_ok() {
                self.layout = Some(layout);
            }
            outcome.layout = Some(result.map_err(|e| OrderError::Refused(Arc::new(e))));
        }
        if let (Some(update), Some(before)) = (job.firewall, &before) {
            self.firewall_update(update, before, &mut outcome);
        }
        match job.barrier {
            Some(BarrierJob::Compact(records)) => {
                outcome.compacted = Some(self.store.compact(records).map_err(Arc::new));
            }
            Some(BarrierJob::Repair { elements, layout }) => {
                let repaired = self.repair(&elements, layout);
                outcome.repaired = Some(repaired.and_then(|report| {
                    self.repair_firewall()?;
                    Ok(report)
                }));
            }
            None => {}
        }
        let results = self.apply_orders(&job.orders, job.now, &mut outcome);
        for (source, position) in job.positions {
            self.store.position(source, position);
        }
        for record in &job.records {
            self.store.append(record);
        }
        let durable = self.store.commit();
        let results = match durable {
            Ok(()) => results,
            Err(error) => {
                let error = Arc::new(error);
                tracing::error!(error = %error, "the state could not be saved: undoing the job's kernel changes");
                self.undo(&job.orders, &results, job.now)?;
                if let Some(before) = before {
                    self.undo_firewall(before, &error, &mut outcome)?;
                }
                results
                    .into_iter()
                    .map(|r| r.and(Err(OrderError::NotDurable(error.clone()))))
                    .collect()
            }
        };
        if job.remove_table
            && let Err(e) = self.backend.remove_table()
        {
            tracing::warn!(error = %e, "could not remove the nftables table");
        }
        outcome.state_poisoned = self.store.is_poisoned();
        outcome.orders = job.orders.into_iter().zip(results).collect();
        outcome.elapsed = started.elapsed();
        Ok(outcome)
    }

    /// Applies the orders' kernel changes and queues the records of those the kernel took.
    fn apply_orders(
        &mut self,
        orders: &[Order],
        now: i64,
        outcome: &mut Outcome,
    ) -> Vec<Result<(), OrderError>> {
        let mut results: Vec<Option<Result<(), OrderError>>> = vec![None; orders.len()];
        let mut changes = Vec::with_capacity(orders.len());
        let mut owner = Vec::with_capacity(orders.len());
        for (i, order) in orders.iter().enumerate() {
            match change(order, now) {
                Some(c) => {
                    changes.push(c);
                    owner.push(i);
                }
                None => results[i] = Some(Ok(())),
            }
        }
        let mut start = 0;
        while start < changes.len() {
            match self.backend.apply(&changes[start..]) {
                Ok(()) => {
                    owner[start..]
                        .iter()
                        .for_each(|&i| results[i] = Some(Ok(())));
                    break;
                }
                Err(ApplyError { committed, error }) => {
                    owner[start..start + committed]
                        .iter()
                        .for_each(|&i| results[i] = Some(Ok(())));
                    let failed = start + committed;
                    if is_missing_table(&error) && !outcome.table_recreated && self.recreate_table()
                    {
                        outcome.table_recreated = true;
                        start = failed;
                        continue;
                    }
                    let i = owner[failed];
                    results[i] = Some(if is_already_gone(&changes[failed], &error) {
                        Ok(())
                    } else {
                        tracing::warn!(jail = %changes[failed].jail(), target = %changes[failed].target(), error = %error, "kernel refused a change");
                        Err(OrderError::Refused(Arc::new(error)))
                    });
                    start = failed + 1;
                }
            }
        }
        let results: Vec<Result<(), OrderError>> = results
            .into_iter()
            .map(|r| r.expect("invariant: every order has a result"))
            .collect();
        for (order, result) in orders.iter().zip(&results) {
            if result.is_ok() {
                self.store.append(&record(order, now));
            }
        }
        results
    }

    /// Takes back the kernel changes of the orders that were applied, newest first.
    fn undo(
        &mut self,
        orders: &[Order],
        results: &[Result<(), OrderError>],
        now: i64,
    ) -> Result<(), Fatal> {
        let inverse: Vec<Change> = orders
            .iter()
            .zip(results)
            .rev()
            .filter(|(_, r)| r.is_ok())
            .filter_map(|(o, _)| inverse(o, now))
            .collect();
        let mut start = 0;
        while start < inverse.len() {
            match self.backend.apply(&inverse[start..]) {
                Ok(()) => break,
                Err(ApplyError { committed, error }) => {
                    let failed = start + committed;
                    // Undoing an add of an element that expired meanwhile is done.
                    if !is_already_gone(&inverse[failed], &error) {
                        return Err(Fatal(error));
                    }
                    start = failed + 1;
                }
            }
        }
        Ok(())
    }

    /// Adds or refreshes what the kernel lacks of `desired`, after re-applying the last layout
    /// when `layout` (or when the table is gone).
    fn repair(
        &mut self,
        desired: &[Element],
        layout: bool,
    ) -> Result<ReconcileReport, Arc<BackendError>> {
        let Some(current) = self.layout.clone() else {
            return Ok(ReconcileReport::default());
        };
        let result = if layout {
            reconcile(&mut *self.backend, &current, desired)
        } else {
            match refill(&mut *self.backend, desired) {
                Err(e) if matches!(e.error, BackendError::NoSuchTable { .. }) => {
                    reconcile(&mut *self.backend, &current, desired)
                }
                other => other,
            }
        };
        result.map_err(|e| Arc::new(e.error))
    }

    /// Re-applies the last layout after the table vanished; `true` when that worked.
    fn recreate_table(&mut self) -> bool {
        let Some(layout) = &self.layout else {
            return false;
        };
        tracing::warn!(table = %layout.table, "the nftables table vanished: recreating it");
        self.backend.apply_layout(layout).is_ok() && self.repair_firewall().is_ok()
    }
}

/// The time left of `ban` at `now` as a kernel timeout.
fn timeout(ban: &Ban, now: i64) -> Option<Duration> {
    ban.remaining(now).map(Duration::from_secs)
}

/// The kernel change an order needs; `None` when it needs none (a ban already over, or an
/// order that only records).
fn change(order: &Order, now: i64) -> Option<Change> {
    let b = &order.ban;
    match order.action {
        Action::Ban | Action::Refresh if !b.live_at(now) => None,
        Action::Ban => Some(Change::Add {
            jail: b.jail.clone(),
            target: b.target,
            timeout: timeout(b, now),
        }),
        Action::Refresh => Some(Change::Refresh {
            jail: b.jail.clone(),
            target: b.target,
            timeout: timeout(b, now),
        }),
        Action::Unban => Some(Change::Remove {
            jail: b.jail.clone(),
            target: b.target,
        }),
        Action::Forget => None,
    }
}

/// The kernel change that takes an applied order back.
fn inverse(order: &Order, now: i64) -> Option<Change> {
    let b = &order.ban;
    let remove = || Change::Remove {
        jail: b.jail.clone(),
        target: b.target,
    };
    match order.action {
        Action::Ban if b.live_at(now) => Some(remove()),
        Action::Refresh => match &order.previous {
            Some(p) if p.live_at(now) => Some(Change::Refresh {
                jail: b.jail.clone(),
                target: b.target,
                timeout: timeout(p, now),
            }),
            _ if b.live_at(now) => Some(remove()),
            _ => None,
        },
        Action::Unban if b.live_at(now) => Some(Change::Add {
            jail: b.jail.clone(),
            target: b.target,
            timeout: timeout(b, now),
        }),
        _ => None,
    }
}

/// The state record of an applied order.
fn record(order: &Order, now: i64) -> Record {
    let b = &order.ban;
    match order.action {
        Action::Ban | Action::Refresh => Record::Ban(b.clone()),
        Action::Unban | Action::Forget => Record::Unban {
            jail: b.jail.clone(),
            target: b.target,
            at: now,
        },
    }
}

/// A removal of an element that is not there (it expired in the kernel meanwhile) is done.
fn is_already_gone(change: &Change, error: &BackendError) -> bool {
    matches!(change, Change::Remove { .. })
        && matches!(
            error,
            BackendError::ElementRefused {
                errno: Errno::ENOENT,
                ..
            } | BackendError::Kernel {
                errno: Errno::ENOENT,
                ..
            }
        )
}

fn is_missing_table(error: &BackendError) -> bool {
    matches!(error, BackendError::NoSuchTable { .. })
}

#[cfg(test)]
mod tests;
