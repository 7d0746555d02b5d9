//! The banner's async side: batches what arrives while the worker is busy.
//!
//! Receives [`Msg`]s from the core (orders, positions, layouts, snapshots, flushes) in order and
//! never blocks on the kernel: while the worker thread applies one job, everything that arrives
//! queues up and becomes the next job — bans that arrive together share one kernel transaction
//! and one fsync. Emits replies to whoever waits for an order, one log line per ban and unban,
//! and [`Report`]s of failed orders back to the core. Read positions alone are written at most
//! once a second.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::backend::Layout;
use super::worker::{Job, Outcome, Worker};
use crate::config::duration::format_seconds;
use crate::state::{Position, Record};
use crate::tracker::{Ban, Order, Origin};

/// How often read positions alone are made durable.
const POSITION_EVERY: Duration = Duration::from_secs(1);
/// Above this many done orders in one job, manual bans are logged as one summary line.
const LOG_EACH_UP_TO: usize = 100;

/// Results of a batch of orders, one per order.
pub type OrderResults = Vec<Result<(), String>>;

/// What the core sends the banner.
pub enum Msg {
    Orders {
        orders: Vec<Order>,
        done: Option<oneshot::Sender<OrderResults>>,
    },
    Positions(Vec<(String, Position)>),
    Forget(Vec<Ban>),
    Compact(Vec<Record>),
    Layout {
        layout: Layout,
        done: oneshot::Sender<Result<(), String>>,
    },
    /// Everything before it is applied and durable when `done` fires.
    Flush {
        remove_table: bool,
        done: oneshot::Sender<()>,
    },
}

/// What the banner tells the core.
#[derive(Debug)]
pub enum Report {
    /// A job is done: `done` are in the kernel and on disk (run their hooks), `failed` are not
    /// (undo their bookkeeping).
    Applied {
        done: Vec<Order>,
        failed: Vec<Order>,
    },
    /// The table had vanished and was recreated: bans made before are missing from the kernel.
    TableRecreated,
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
}

/// The core's handle on the banner.
#[derive(Clone)]
pub struct Banner {
    tx: mpsc::Sender<Msg>,
    pub stats: Arc<BannerStats>,
}

impl Banner {
    /// Queues orders; their outcome comes back as [`Report`]s when they fail.
    pub async fn send(&self, orders: Vec<Order>) {
        if !orders.is_empty() {
            let _ = self.tx.send(Msg::Orders { orders, done: None }).await;
        }
    }

    /// Queues orders and returns a receiver of their results.
    pub async fn send_and_wait(&self, orders: Vec<Order>) -> oneshot::Receiver<OrderResults> {
        let (done, wait) = oneshot::channel();
        let _ = self
            .tx
            .send(Msg::Orders {
                orders,
                done: Some(done),
            })
            .await;
        wait
    }

    pub async fn positions(&self, positions: Vec<(String, Position)>) {
        let _ = self.tx.send(Msg::Positions(positions)).await;
    }

    pub async fn forget(&self, bans: Vec<Ban>) {
        if !bans.is_empty() {
            let _ = self.tx.send(Msg::Forget(bans)).await;
        }
    }

    pub async fn compact(&self, snapshot: Vec<Record>) {
        let _ = self.tx.send(Msg::Compact(snapshot)).await;
    }

    pub async fn layout(&self, layout: Layout) -> Result<(), String> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Msg::Layout { layout, done })
            .await
            .map_err(|_| "the banner has stopped".to_string())?;
        wait.await
            .map_err(|_| "the banner has stopped".to_string())?
    }

    /// Waits until everything queued so far is applied and durable.
    pub async fn flush(&self, remove_table: bool) {
        let (done, wait) = oneshot::channel();
        if self
            .tx
            .send(Msg::Flush { remove_table, done })
            .await
            .is_ok()
        {
            let _ = wait.await;
        }
    }
}

/// Starts the worker thread and the batching task. `clock` gives Unix seconds.
pub fn spawn(
    worker: Worker,
    reports: mpsc::UnboundedSender<Report>,
    clock: fn() -> i64,
) -> (Banner, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(4096);
    let (jobs, job_rx) = std::sync::mpsc::channel::<(Job, oneshot::Sender<Outcome>)>();
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
    let task = tokio::spawn(run(rx, jobs, reports, clock, stats.clone()));
    (Banner { tx, stats }, task)
}

/// Who waits for which part of a dispatched job.
#[derive(Default)]
struct Waiters {
    replies: Vec<(std::ops::Range<usize>, oneshot::Sender<OrderResults>)>,
    layout: Option<oneshot::Sender<Result<(), String>>>,
    flushes: Vec<oneshot::Sender<()>>,
}

async fn run(
    mut rx: mpsc::Receiver<Msg>,
    jobs: std::sync::mpsc::Sender<(Job, oneshot::Sender<Outcome>)>,
    reports: mpsc::UnboundedSender<Report>,
    clock: fn() -> i64,
    stats: Arc<BannerStats>,
) {
    let mut queue: VecDeque<Msg> = VecDeque::new();
    let mut busy: Option<(oneshot::Receiver<Outcome>, Waiters)> = None;
    let mut tick = tokio::time::interval(POSITION_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut positions_due = false;
    let mut closed = false;
    loop {
        tokio::select! {
            msg = rx.recv(), if !closed => match msg {
                Some(m) => queue.push_back(m),
                None => closed = true,
            },
            outcome = async { (&mut busy.as_mut().expect("invariant: guarded by busy.is_some()").0).await }, if busy.is_some() => {
                let (_, waiters) = busy.take().expect("invariant: busy");
                match outcome {
                    Ok(outcome) => deliver(outcome, waiters, &reports, &stats),
                    Err(_) => {
                        tracing::error!("the banner worker stopped");
                        return;
                    }
                }
            }
            _ = tick.tick() => positions_due = true,
        }
        if busy.is_none() && ready(&queue, positions_due || closed) {
            let (job, waiters) = next_job(&mut queue, clock());
            positions_due = false;
            let (done, outcome) = oneshot::channel();
            if jobs.send((job, done)).is_err() {
                tracing::error!("the banner worker stopped");
                return;
            }
            busy = Some((outcome, waiters));
        }
        if closed && busy.is_none() && queue.is_empty() {
            return;
        }
    }
}

/// Whether the queue holds work worth a job now: anything but positions, or positions due.
fn ready(queue: &VecDeque<Msg>, positions_due: bool) -> bool {
    queue.iter().any(|m| !matches!(m, Msg::Positions(_))) || (positions_due && !queue.is_empty())
}

/// Takes the next job off the queue. A layout starts a job of its own; a flush ends one.
fn next_job(queue: &mut VecDeque<Msg>, now: i64) -> (Job, Waiters) {
    let mut job = Job {
        now,
        ..Job::default()
    };
    let mut waiters = Waiters::default();
    while let Some(msg) = queue.pop_front() {
        match msg {
            Msg::Layout { .. } if !job_is_empty(&job) => {
                queue.push_front(msg);
                break;
            }
            Msg::Layout { layout, done } => {
                job.layout = Some(layout);
                waiters.layout = Some(done);
            }
            Msg::Orders { orders, done } => {
                let range = job.orders.len()..job.orders.len() + orders.len();
                job.orders.extend(orders);
                if let Some(done) = done {
                    waiters.replies.push((range, done));
                }
            }
            Msg::Positions(p) => job.positions.extend(p),
            Msg::Forget(bans) => job.forget.extend(bans),
            Msg::Compact(snapshot) => job.compact = Some(snapshot),
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
        && job.orders.is_empty()
        && job.positions.is_empty()
        && job.forget.is_empty()
        && job.compact.is_none()
}

/// Hands a finished job's results to whoever waits, logs, and reports to the core.
fn deliver(
    outcome: Outcome,
    waiters: Waiters,
    reports: &mpsc::UnboundedSender<Report>,
    stats: &BannerStats,
) {
    if outcome.table_recreated {
        let _ = reports.send(Report::TableRecreated);
    }
    let done_count = outcome.orders.iter().filter(|r| r.is_ok()).count();
    stats.jobs.fetch_add(1, Ordering::Relaxed);
    stats
        .orders_done
        .fetch_add(done_count as u64, Ordering::Relaxed);
    stats.orders_failed.fetch_add(
        (outcome.orders.len() - done_count) as u64,
        Ordering::Relaxed,
    );
    stats
        .last_job_us
        .store(outcome.elapsed.as_micros() as u64, Ordering::Relaxed);
    let (mut done, mut failed) = (Vec::with_capacity(done_count), Vec::new());
    let mut manual_summarized = 0usize;
    for (order, result) in outcome.applied.into_iter().zip(&outcome.orders) {
        match result {
            Ok(()) => {
                if done_count > LOG_EACH_UP_TO && order.ban().origin == Origin::Manual {
                    manual_summarized += 1;
                } else {
                    log_done(&order);
                }
                done.push(order);
            }
            Err(error) => {
                tracing::error!(jail = %order.ban().jail, ip = %order.ban().target, error = %error, "ban not applied");
                failed.push(order);
            }
        }
    }
    if manual_summarized > 0 {
        tracing::info!(
            orders = manual_summarized,
            elapsed_ms = outcome.elapsed.as_millis() as u64,
            "manual bans applied in bulk"
        );
    }
    if !done.is_empty() || !failed.is_empty() {
        let _ = reports.send(Report::Applied { done, failed });
    }
    for (range, reply) in waiters.replies {
        let _ = reply.send(outcome.orders[range].to_vec());
    }
    if let (Some(reply), Some(result)) = (waiters.layout, outcome.layout) {
        let _ = reply.send(result);
    }
    for reply in waiters.flushes {
        let _ = reply.send(());
    }
}

fn log_done(order: &Order) {
    let ban = order.ban();
    let duration = ban.expires.map_or_else(
        || "permanent".to_string(),
        |e| format_seconds(u64::try_from(e - ban.since).unwrap_or(0)),
    );
    match order {
        Order::Ban(_) => {
            tracing::info!(jail = %ban.jail, ip = %ban.target, duration = %duration, count = ban.count, origin = ?ban.origin, "ban")
        }
        Order::Refresh(_) => {
            tracing::info!(jail = %ban.jail, ip = %ban.target, duration = %duration, count = ban.count, origin = ?ban.origin, "ban refreshed")
        }
        Order::Unban(_) => tracing::info!(jail = %ban.jail, ip = %ban.target, "unban"),
    }
}
