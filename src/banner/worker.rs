//! The banner's worker: the one thread that owns the backend (the netlink socket) and the state
//! store.
//!
//! Receives [`Job`]s — a batch of orders, read positions, compaction snapshots, a layout —
//! and runs each as: layout → element changes (as few kernel transactions as the backend can)
//! → one durable commit of everything that the kernel took. Emits an [`Outcome`] per job: which
//! orders are done, which failed and why. It never reports an order done before the kernel
//! acknowledged it and the record of it is on disk, and it never decides anything: a failed ban
//! goes back to the tracker, which rolls its bookkeeping back.

use std::time::{Duration, Instant};

use nix::errno::Errno;

use super::backend::{ApplyError, Backend, BackendError, Change, Layout};
use crate::state::{Position, Record, StateStore};
use crate::tracker::{Ban, Order};

/// One batch of work.
#[derive(Debug, Default)]
pub struct Job {
    /// Applied first, in one transaction, when present.
    pub layout: Option<Layout>,
    pub orders: Vec<Order>,
    pub positions: Vec<(String, Position)>,
    /// Bans of jails that are gone (their sets went with the layout): recorded as ended.
    pub forget: Vec<Ban>,
    /// Replace the state log with this snapshot (plus the known positions).
    pub compact: Option<Vec<Record>>,
    /// Delete the whole table (shutdown with `keep_on_stop = false`).
    pub remove_table: bool,
    /// Unix seconds, for the remaining time of each ban.
    pub now: i64,
}

/// What became of a job.
#[derive(Debug, Default)]
pub struct Outcome {
    /// One per order, in order: `Ok` when the kernel has it and the record is durable.
    pub orders: Vec<Result<(), String>>,
    /// The job's orders themselves, handed back (the banner reports them to the core).
    pub applied: Vec<Order>,
    pub layout: Option<Result<(), String>>,
    /// The table had vanished (deleted by hand?): the layout was re-applied before the orders.
    /// Bans made earlier are missing from the kernel until they are refreshed.
    pub table_recreated: bool,
    pub elapsed: Duration,
}

/// The backend and the state store, driven one job at a time.
pub struct Worker {
    backend: Box<dyn Backend>,
    store: StateStore,
    layout: Option<Layout>,
}

impl Worker {
    pub fn new(backend: Box<dyn Backend>, store: StateStore, layout: Layout) -> Worker {
        Worker {
            backend,
            store,
            layout: Some(layout),
        }
    }

    pub fn run(&mut self, job: Job) -> Outcome {
        let started = Instant::now();
        let mut outcome = Outcome::default();
        if let Some(layout) = job.layout {
            let result = self
                .backend
                .apply_layout(&layout)
                .map_err(|e| e.to_string());
            if result.is_ok() {
                self.layout = Some(layout);
            }
            outcome.layout = Some(result);
        }

        // Orders → changes; a ban already over needs no kernel change.
        let mut results: Vec<Option<Result<(), String>>> = vec![None; job.orders.len()];
        let mut changes = Vec::with_capacity(job.orders.len());
        let mut owner = Vec::with_capacity(job.orders.len());
        for (i, order) in job.orders.iter().enumerate() {
            match change(order, job.now) {
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
                        Err(error.to_string())
                    });
                    start = failed + 1;
                }
            }
        }

        // Everything the kernel took, and the positions reached, in one durable commit.
        for (order, result) in job.orders.iter().zip(&results) {
            if matches!(result, Some(Ok(()))) {
                self.store.append(&record(order, job.now));
            }
        }
        for ban in &job.forget {
            self.store.append(&Record::Unban {
                jail: ban.jail.clone(),
                target: ban.target,
                at: job.now,
            });
        }
        for (source, position) in job.positions {
            self.store.position(source, position);
        }
        let mut durable = self.store.commit();
        // Even after a failed commit: a compaction is the way out of a poisoned store.
        if let Some(snapshot) = job.compact {
            let compacted = self.store.compact(snapshot);
            durable = durable.and(compacted);
        }
        let durable = durable.map_err(|e| e.to_string());
        if let Err(e) = &durable {
            tracing::error!(error = %e, "state could not be saved: bans are in the kernel but would not survive a restart");
        }
        if job.remove_table
            && let Err(e) = self.backend.remove_table()
        {
            tracing::warn!(error = %e, "could not remove the nftables table");
        }
        outcome.orders = results
            .into_iter()
            .map(
                |r| match (r.expect("invariant: every order has a result"), &durable) {
                    (Ok(()), Err(e)) => Err(format!("in the kernel but not saved: {e}")),
                    (r, _) => r,
                },
            )
            .collect();
        outcome.applied = job.orders;
        outcome.elapsed = started.elapsed();
        outcome
    }

    /// Re-applies the last layout after the table vanished; `true` when that worked.
    fn recreate_table(&mut self) -> bool {
        let Some(layout) = &self.layout else {
            return false;
        };
        tracing::warn!(table = %layout.table, "the nftables table vanished: recreating it");
        self.backend.apply_layout(layout).is_ok()
    }

    /// Whether the log has grown enough past `live` records to be worth compacting.
    pub fn wants_compaction(&self, live: usize) -> bool {
        self.store.wants_compaction(live)
    }
}

/// The kernel change an order needs; `None` when the ban is already over.
fn change(order: &Order, now: i64) -> Option<Change> {
    let timeout = |ban: &Ban| ban.remaining(now).map(Duration::from_secs);
    match order {
        Order::Ban(b) | Order::Refresh(b) if !b.live_at(now) => None,
        Order::Ban(b) => Some(Change::Add {
            jail: b.jail.clone(),
            target: b.target,
            timeout: timeout(b),
        }),
        Order::Refresh(b) => Some(Change::Refresh {
            jail: b.jail.clone(),
            target: b.target,
            timeout: timeout(b),
        }),
        Order::Unban(b) => Some(Change::Remove {
            jail: b.jail.clone(),
            target: b.target,
        }),
    }
}

/// The state record of a done order.
fn record(order: &Order, now: i64) -> Record {
    match order {
        Order::Ban(b) | Order::Refresh(b) => Record::Ban(b.clone()),
        Order::Unban(b) => Record::Unban {
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
