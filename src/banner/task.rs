//! The banner's async side: batches what arrives while the worker is busy.
//!
//! Receives [`Msg`]s from the core (orders, positions, layouts, firewall changes, barriers,
//! flushes) in order and never blocks on the kernel: while the worker thread applies one job,
//! everything that arrives queues up and becomes the next job — bans that arrive together share
//! one kernel transaction and one fsync. Emits [`Report`]s back to the core, in job order: every
//! order and firewall change with its outcome, and, at a barrier, a request for the settled
//! state. Read positions alone are written
//! at most once a second.
//!
//! A barrier (compaction, repair) is a job of its own: when it reaches the head of the queue, the
//! jobs before it are done and reported, so the core — which takes reports in order — answers
//! with exactly what is in the kernel and on disk, and nothing queued after it joins the job.
//! The queue is bounded: past [`MAX_QUEUED_ORDERS`] the banner stops taking messages, and the
//! back-pressure reaches the core and the sources. If the worker thread dies the task ends with
//! an error, which stops the daemon.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::worker::{BarrierJob, Fatal, FirewallUpdate, Job, OrderError, Outcome, Worker};
use crate::state::{Position, Record, StateError};
use nftjail_backend::{BackendError, Element, FirewallReport, Layout, ReconcileReport};
use nftjail_core::duration::format_seconds;
use nftjail_core::tracker::{Action, Order, Origin};

/// How often read positions alone are made durable.
const POSITION_EVERY: Duration = Duration::from_secs(1);
/// Above this many applied orders in one job, manual bans are logged as one summary line.
const LOG_EACH_UP_TO: usize = 100;
/// The banner takes no more messages while this many orders wait.
pub const MAX_QUEUED_ORDERS: usize = 200_000;
/// Messages in flight from the core to the banner.
const CHANNEL: usize = 64;

/// Work that must see exactly the settled state: it runs alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Barrier {
    /// Rewrite the state log to the settled state.
    Compact,
    /// Bring the kernel back to the settled bans (after drift); `layout`: re-apply the table,
    /// chains, sets and rules first (something of the structure went away).
    Repair { layout: bool },
}

/// What the core answers a barrier with.
#[derive(Debug)]
pub enum Settled {
    Records(Vec<Record>),
    Elements(Vec<Element>),
}

/// What the core sends the banner.
#[derive(Debug)]
pub enum Msg {
    Orders(Vec<Order>),
    Positions(Vec<(String, Position)>),
    /// Records that need no kernel change (counters, the ban log): written with the next job,
    /// at most a second later, like positions.
    Records(Vec<Record>),
    /// A new layout; with `firewall`, both are applied or neither (a reload).
    Layout {
        layout: Layout,
        firewall: Option<Box<FirewallUpdate>>,
        done: oneshot::Sender<Result<(), OrderError>>,
    },
    /// A firewall change (a rule, a forward, a switch); its outcome comes back as
    /// [`Report::Firewall`], in order with the others.
    Firewall(Box<FirewallUpdate>),
    Barrier(Barrier),
    /// Everything before it is applied and durable when `done` fires.
    Flush {
        remove_table: bool,
        done: oneshot::Sender<()>,
    },
}

/// What the banner tells the core, in order.
#[derive(Debug)]
pub enum Report {
    /// A job is done: each order with its outcome.
    Settled(Vec<(Order, Result<(), OrderError>)>),
    /// A firewall change (alone, or with a reload's layout) is in place and durable, or not.
    Firewall(Result<FirewallReport, OrderError>),
    /// The table had vanished and was recreated: the bans made before are missing.
    TableRecreated,
    /// A barrier reached the head of the queue: the banner waits for the settled state.
    Need(Barrier, oneshot::Sender<Settled>),
    Compacted(Result<(), Arc<StateError>>),
    Repaired(Result<ReconcileReport, Arc<BackendError>>),
    /// The state log takes no writes until a compaction succeeds.
    StatePoisoned,
}

/// Counters of the banner, read by the metrics endpoint.
#[derive(Debug, Default)]
pub struct BannerStats {
    /// Jobs run: each is at most a few kernel transactions and one fsync.
    pub jobs: AtomicU64,
    pub orders_done: AtomicU64,
    pub orders_failed: AtomicU64,
    /// Duration of the last job, microseconds.
    pub last_job_us: AtomicU64,
    /// When the running job started (Unix milliseconds); 0 when the worker is idle.
    pub busy_since_ms: AtomicU64,
}

/// Why the banner stopped before it was asked to.
#[derive(Debug, thiserror::Error)]
pub enum BannerError {
    #[error("the banner's worker thread died")]
    WorkerDied,
    #[error(transparent)]
    Fatal(#[from] Fatal),
    #[error("the core stopped taking reports")]
    CoreGone,
}

/// The core's handle on the banner.
#[derive(Clone)]
pub struct Banner {
    tx: mpsc::Sender<Msg>,
    pub stats: Arc<BannerStats>,
}

impl Banner {
    /// Queues `msg` if there is room; gives it back otherwise (the caller keeps it for later).
    pub fn try_send(&self, msg: Msg) -> Result<(), Msg> {
        self.tx.try_send(msg).map_err(|e| match e {
            mpsc::error::TrySendError::Full(m) | mpsc::error::TrySendError::Closed(m) => m,
        })
    }

    /// Waits for room for one message.
    pub async fn reserve(&self) -> Option<mpsc::Permit<'_, Msg>> {
        self.tx.reserve().await.ok()
    }

    /// Queues `msg`, waiting for room (start-up and shutdown only: the core's loop never
    /// waits on the banner).
    pub async fn send(&self, msg: Msg) -> bool {
        self.tx.send(msg).await.is_ok()
    }

    /// Waits until everything queued so far is applied and durable.
    pub async fn flush(&self, remove_table: bool) {
        let (done, wait) = oneshot::channel();
        if self.send(Msg::Flush { remove_table, done }).await {
            let _ = wait.await;
        }
    }
}

/// Starts the worker thread and the batching task. `clock` gives Unix seconds.
pub fn spawn(
    worker: Worker,
    reports: mpsc::Sender<Report>,
    clock: fn() -> i64,
) -> (Banner, JoinHandle<Result<(), BannerError>>) {
    spawn_with(worker, reports, clock, MAX_QUEUED_ORDERS)
}

/// [`spawn`], taking no more messages while `max_queued_orders` orders wait.
pub fn spawn_with(
    worker: Worker,
    reports: mpsc::Sender<Report>,
    clock: fn() -> i64,
    max_queued_orders: usize,
) -> (Banner, JoinHandle<Result<(), BannerError>>) {
    let (tx, rx) = mpsc::channel(CHANNEL);
    type JobResult = Result<Outcome, Fatal>;
    let (jobs, job_rx) = std::sync::mpsc::channel::<(Job, oneshot::Sender<JobResult>)>();
    std::thread::Builder::new()
        .name("banner".into())
        .spawn(move || {
            let mut worker = worker;
            while let Ok((job, done)) = job_rx.recv() {
                let _ = done.send(worker.run(job));
            }
        })
        .expect("invariant: the banner thread can be spawned at start-up");
    let stats = Arc::new(BannerStats::default());
    let task = tokio::spawn(run(
        rx,
        jobs,
        reports,
        clock,
        stats.clone(),
        max_queued_orders,
    ));
    (Banner { tx, stats }, task)
}

/// Who waits for which part of a dispatched job.
#[derive(Default)]
struct Waiters {
    layout: Option<oneshot::Sender<Result<(), OrderError>>>,
    flushes: Vec<oneshot::Sender<()>>,
}

type Jobs = std::sync::mpsc::Sender<(Job, oneshot::Sender<Result<Outcome, Fatal>>)>;

/// The queue of messages not yet in a job, with the number of orders it holds.
#[derive(Default)]
struct Queue {
    msgs: VecDeque<Msg>,
    orders: usize,
}

impl Queue {
    fn push(&mut self, msg: Msg) {
        if let Msg::Orders(o) = &msg {
            self.orders += o.len();
        }
        self.msgs.push_back(msg);
    }

    fn pop(&mut self) -> Option<Msg> {
        let msg = self.msgs.pop_front()?;
        if let Msg::Orders(o) = &msg {
            self.orders -= o.len();
        }
        Some(msg)
    }

    fn push_front(&mut self, msg: Msg) {
        if let Msg::Orders(o) = &msg {
            self.orders += o.len();
        }
        self.msgs.push_front(msg);
    }

    /// Whether the queue holds work worth a job now: anything but positions and records, or
    /// those when due.
    fn ready(&self, positions_due: bool) -> bool {
        self.msgs
            .iter()
            .any(|m| !matches!(m, Msg::Positions(_) | Msg::Records(_)))
            || (positions_due && !self.msgs.is_empty())
    }
}

async fn run(
    mut rx: mpsc::Receiver<Msg>,
    jobs: Jobs,
    reports: mpsc::Sender<Report>,
    clock: fn() -> i64,
    stats: Arc<BannerStats>,
    max_queued_orders: usize,
) -> Result<(), BannerError> {
    let mut queue = Queue::default();
    let mut busy: Option<(oneshot::Receiver<Result<Outcome, Fatal>>, Waiters)> = None;
    // A barrier at the head of the queue, waiting for the core's settled state.
    let mut awaiting: Option<(Barrier, oneshot::Receiver<Settled>)> = None;
    let mut tick = tokio::time::interval(POSITION_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut positions_due = false;
    let mut closed = false;
    loop {
        let room = queue.orders < max_queued_orders;
        tokio::select! {
            msg = rx.recv(), if !closed && room => match msg {
                Some(m) => queue.push(m),
                None => closed = true,
            },
            outcome = async { (&mut busy.as_mut().expect("invariant: guarded by busy.is_some()").0).await }, if busy.is_some() => {
                let (_, waiters) = busy.take().expect("invariant: busy");
                match outcome {
                    Ok(Ok(outcome)) => deliver(outcome, waiters, &reports, &stats).await?,
                    Ok(Err(fatal)) => {
                        tracing::error!(error = %fatal, "the banner cannot go on: kernel and state may disagree until a restart reconciles them");
                        return Err(fatal.into());
                    }
                    Err(_) => {
                        tracing::error!("the banner worker thread died");
                        return Err(BannerError::WorkerDied);
                    }
                }
            }
            settled = async { (&mut awaiting.as_mut().expect("invariant: guarded by awaiting.is_some()").1).await }, if awaiting.is_some() => {
                let (barrier, _) = awaiting.take().expect("invariant: awaiting");
                let Ok(settled) = settled else {
                    return Err(BannerError::CoreGone);
                };
                let job = Job {
                    barrier: Some(match (barrier, settled) {
                        (Barrier::Compact, Settled::Records(r)) => BarrierJob::Compact(r),
                        (Barrier::Repair { layout }, Settled::Elements(elements)) => {
                            BarrierJob::Repair { elements, layout }
                        }
                        (b, _) => {
                            tracing::warn!(barrier = ?b, "the core answered a barrier with the wrong kind: skipped");
                            continue;
                        }
                    }),
                    now: clock(),
                    ..Job::default()
                };
                busy = Some(dispatch(&jobs, job, Waiters::default(), &stats)?);
                continue;
            }
            _ = tick.tick() => positions_due = true,
        }
        if busy.is_none() && awaiting.is_none() {
            if let Some(Msg::Barrier(_)) = queue.msgs.front() {
                let Some(Msg::Barrier(barrier)) = queue.pop() else {
                    unreachable!("invariant: the front is a barrier");
                };
                let (reply, wait) = oneshot::channel();
                reports
                    .send(Report::Need(barrier, reply))
                    .await
                    .map_err(|_| BannerError::CoreGone)?;
                awaiting = Some((barrier, wait));
            } else if queue.ready(positions_due || closed) {
                let (job, waiters) = next_job(&mut queue, clock());
                positions_due = false;
                busy = Some(dispatch(&jobs, job, waiters, &stats)?);
            }
        }
        if closed && busy.is_none() && awaiting.is_none() && queue.msgs.is_empty() {
            return Ok(());
        }
    }
}

fn dispatch(
    jobs: &Jobs,
    job: Job,
    waiters: Waiters,
    stats: &BannerStats,
) -> Result<(oneshot::Receiver<Result<Outcome, Fatal>>, Waiters), BannerError> {
    let now_ms = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(1);
    stats.busy_since_ms.store(now_ms.max(1), Ordering::Relaxed);
    let (done, outcome) = oneshot::channel();
    if jobs.send((job, done)).is_err() {
        tracing::error!("the banner worker thread died");
        return Err(BannerError::WorkerDied);
    }
    Ok((outcome, waiters))
}

/// Takes the next job off the queue: up to a barrier (which runs alone); a layout starts a job
/// of its own; a flush ends one.
fn next_job(queue: &mut Queue, now: i64) -> (Job, Waiters) {
    let mut job = Job {
        now,
        ..Job::default()
    };
    let mut waiters = Waiters::default();
    while let Some(msg) = queue.pop() {
        match msg {
            Msg::Barrier(_) => {
                queue.push_front(msg);
                break;
            }
            Msg::Layout { .. } if !job_is_empty(&job) => {
                queue.push_front(msg);
                break;
            }
            Msg::Layout {
                layout,
                firewall,
                done,
            } => {
                job.layout = Some(layout);
                job.firewall = firewall.map(|f| *f);
                waiters.layout = Some(done);
            }
            // One firewall change a job, never joined to a reload's.
            Msg::Firewall(_) if job.firewall.is_some() || job.layout.is_some() => {
                queue.push_front(msg);
                break;
            }
            Msg::Firewall(update) => job.firewall = Some(*update),
            Msg::Orders(orders) => job.orders.extend(orders),
            Msg::Positions(p) => job.positions.extend(p),
            Msg::Records(r) => job.records.extend(r),
            Msg::Flush { remove_table, done } => {
                job.remove_table |= remove_table;
                waiters.flushes.push(done);
                break;
            }
        }
    }
    (job, waiters)
}

fn job_is_empty(job: &Job) -> bool {
    job.layout.is_none()
        && job.firewall.is_none()
        && job.orders.is_empty()
        && job.positions.is_empty()
        && job.records.is_empty()
}

/// Reports a finished job to the core (in order), logs, and wakes whoever waits.
async fn deliver(
    outcome: Outcome,
    waiters: Waiters,
    reports: &mpsc::Sender<Report>,
    stats: &BannerStats,
) -> Result<(), BannerError> {
    let send = |r| async { reports.send(r).await.map_err(|_| BannerError::CoreGone) };
    if outcome.table_recreated {
        send(Report::TableRecreated).await?;
    }
    let applied = outcome.orders.iter().filter(|(_, r)| r.is_ok()).count();
    stats.busy_since_ms.store(0, Ordering::Relaxed);
    stats.jobs.fetch_add(1, Ordering::Relaxed);
    stats
        .orders_done
        .fetch_add(applied as u64, Ordering::Relaxed);
    stats
        .orders_failed
        .fetch_add((outcome.orders.len() - applied) as u64, Ordering::Relaxed);
    stats
        .last_job_us
        .store(outcome.elapsed.as_micros() as u64, Ordering::Relaxed);
    let mut summarized = 0usize;
    for (order, result) in &outcome.orders {
        match result {
            Ok(()) if applied > LOG_EACH_UP_TO && order.ban.origin == Origin::Manual => {
                summarized += 1;
            }
            Ok(()) => log_applied(order),
            Err(error) => {
                tracing::error!(jail = %order.ban.jail, ip = %order.ban.target, action = ?order.action, error = %error, "order not applied")
            }
        }
    }
    if summarized > 0 {
        tracing::info!(
            orders = summarized,
            elapsed_ms = outcome.elapsed.as_millis() as u64,
            "manual bans applied in bulk"
        );
    }
    if let Some(result) = outcome.firewall {
        send(Report::Firewall(result)).await?;
    }
    if !outcome.orders.is_empty() {
        send(Report::Settled(outcome.orders)).await?;
    }
    if let Some(result) = outcome.compacted {
        send(Report::Compacted(result)).await?;
    }
    if let Some(result) = outcome.repaired {
        send(Report::Repaired(result)).await?;
    }
    if outcome.state_poisoned {
        send(Report::StatePoisoned).await?;
    }
    if let (Some(reply), Some(result)) = (waiters.layout, outcome.layout) {
        let _ = reply.send(result);
    }
    for reply in waiters.flushes {
        let _ = reply.send(());
    }
    Ok(())
}

fn log_applied(order: &Order) {
    let ban = &order.ban;
    let duration = ban.expires.map_or_else(
        || "permanent".to_string(),
        |e| format_seconds(u64::try_from(e - ban.since).unwrap_or(0)),
    );
    match order.action {
        Action::Ban if order.fresh => {
            tracing::info!(jail = %ban.jail, ip = %ban.target, duration = %duration, count = ban.count, origin = ?ban.origin, "ban")
        }
        Action::Ban => {
            tracing::info!(jail = %ban.jail, ip = %ban.target, duration = %duration, "ban restored")
        }
        Action::Refresh => {
            tracing::info!(jail = %ban.jail, ip = %ban.target, duration = %duration, count = ban.count, origin = ?ban.origin, "ban refreshed")
        }
        Action::Unban => tracing::info!(jail = %ban.jail, ip = %ban.target, "unban"),
        Action::Forget => {
            tracing::info!(jail = %ban.jail, ip = %ban.target, "parked ban forgotten")
        }
    }
}

#[cfg(test)]
mod tests;
