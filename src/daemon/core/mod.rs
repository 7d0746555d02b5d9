//! The core task: the one owner of all tracker state.
//!
//! Receives failures, checkpoints and `Stopped` events from the sources, calls from the control
//! socket, reports from the banner (every order's and firewall change's outcome, barrier
//! requests), its own internal events (a loaded configuration, an applied layout, kernel drift),
//! peers' bans from the fleet (`fleet`) and a one-second tick; emits orders, positions, layouts
//! and barriers to the banner, replies to the control clients, and the bans settled here to the
//! fleet task.
//! Everything that decides is here and nowhere else (no locks).
//!
//! It never waits inside its loop: messages for the banner go through an outbox (sent as room
//! frees), a reload loads and validates on a blocking thread and comes back as an event, and a
//! client waiting for a ban gets its reply when the ban's outcome comes back. When the outbox is
//! full it stops taking failures — the sources then wait, which is the back-pressure — while it
//! keeps answering the control socket. If the banner dies, the core returns an error and the
//! daemon stops (systemd restarts it; the start-up reconcile repairs the kernel).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::hooks::{Action as HookAction, HookRunner};
use super::metrics::{JailMetrics, Snapshot};
pub mod firewall;
mod fleet;
mod history;
mod import;
mod recent_lines;
mod reload;
mod requests;

use super::self_addresses::AddressWatcher;
use super::sources::Sources;
use super::systemd;
use crate::banner::{Banner, Barrier, Msg, OrderError, Report, Settled};
use crate::config::{Config, Diagnostics};
use crate::control::Call;
use crate::filter::Event;
use crate::state::Record;
pub use history::History;
use nftjail_backend::Element;
use nftjail_core::addr::BanTarget;
use nftjail_core::firewall::Ruleset;
use nftjail_core::jail::JailName;
use nftjail_core::state::EventAction;
use nftjail_core::tracker::{Action, Ban, Counted, Order, OrderId, Origin, Settlement, Tracker};
use reload::Reload;
use requests::Tickets;

/// How often systemd's STATUS= line is brought up to date (when it changed).
const STATUS_EVERY: Duration = Duration::from_secs(10);

/// Above this many expired bans in one tick, they are logged as one line.
const LOG_EXPIRED_UP_TO: usize = 100;
/// Seconds between two looks at the host's own addresses.
const SELF_ADDRESSES_EVERY: i64 = 30;
/// The core takes no failures while this many orders wait for room in the banner.
const OUTBOX_CAP: usize = 50_000;
/// Drift notifications come in bursts (one per deleted object): repair once they settle.
const DRIFT_SETTLE: Duration = Duration::from_millis(100);
/// The kernel's elements are checked against the state this often even without drift.
const CHECK_EVERY: Duration = Duration::from_secs(300);
/// A poisoned state log is rewritten at most this often.
const RETRY_COMPACTION: Duration = Duration::from_secs(5);
/// How long a stopping daemon waits for its sources to finish their round.
const SOURCES_STOP: Duration = Duration::from_secs(10);

/// What the core tells itself (results of work done off its loop).
pub enum Internal {
    Loaded(Result<Box<Config>, Diagnostics>),
    LayoutApplied(Box<Config>, Result<(), OrderError>),
    /// Someone else changed the table (or the drift monitor lost track): check it.
    Drift {
        structure: bool,
    },
}

/// The core's inputs.
pub struct Inputs {
    pub events: mpsc::Receiver<Event>,
    pub calls: mpsc::Receiver<Call>,
    pub reports: mpsc::Receiver<Report>,
    pub internal: mpsc::UnboundedReceiver<Internal>,
    /// Peers' bans, when the fleet is on.
    pub peers: Option<mpsc::Receiver<crate::fleet::PeerBatch>>,
}

/// Why the core stopped before it was asked to.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("the banner stopped: bans can no longer be applied")]
    BannerGone,
}

/// Messages for the banner that found no room yet, in order.
#[derive(Default)]
struct Outbox {
    msgs: VecDeque<Msg>,
    orders: usize,
}

/// What the core knows of the kernel's and the state log's health.
#[derive(Default)]
struct Upkeep {
    /// A repair is due at this instant (drift settles first).
    repair_due: Option<Instant>,
    /// The next repair must re-apply the layout (a table, chain, rule or set went away).
    repair_structure: bool,
    /// A repair barrier is queued or running.
    repair_queued: bool,
    /// A compaction barrier is queued or running.
    compaction_queued: bool,
    /// The state log refuses writes until a compaction succeeds.
    poisoned: bool,
    last_compaction_try: Option<Instant>,
    last_check: Option<Instant>,
}

/// The core's state.
pub struct Core {
    pub config: Arc<Config>,
    pub tracker: Tracker,
    pub(super) banner: Banner,
    outbox: Outbox,
    pub(super) sources: Sources,
    pub(super) clock: fn() -> i64,
    /// Orders sent since the state log was last compacted.
    orders_since_compaction: usize,
    hooks: HookRunner,
    /// Recent matched lines per (jail, target), for `on_ban` hooks; bounded.
    hook_lines: recent_lines::RecentLines,
    /// Unbans per jail (by hand and expired), for metrics.
    unbans: HashMap<JailName, u64>,
    /// When the host's own addresses were last read (for ignoreself).
    self_addresses_at: i64,
    /// Where the metrics endpoint reads its numbers, when it is on.
    metrics: Option<tokio::sync::watch::Sender<Arc<Snapshot>>>,
    pub(super) tickets: Tickets,
    /// `banned` replies of the current settled bans, built once and shared.
    pub(super) banned_cache: super::status::BannedCache,
    pub(super) reload: Reload,
    upkeep: Upkeep,
    pub(super) internal: mpsc::UnboundedSender<Internal>,
    /// Tells when the host's addresses change (ignoreself), if it could be opened.
    addresses: Option<AddressWatcher>,
    /// The host firewall's ruleset and its changes.
    pub(super) firewall: firewall::Firewall,
    /// The fleet (`[cluster]`), when on: its settings as started, the channel to its task.
    pub(super) fleet: Option<crate::fleet::Fleet>,
    /// Orders of administrators' unbans to share once settled.
    fleet_unbans: HashSet<OrderId>,
    /// The ban log and the counters, and what of them the state log lacks.
    pub(super) history: History,
}

/// What the core starts with.
pub struct Parts {
    pub config: Arc<Config>,
    pub tracker: Tracker,
    pub banner: Banner,
    pub sources: Sources,
    pub clock: fn() -> i64,
    pub metrics: Option<tokio::sync::watch::Sender<Arc<Snapshot>>>,
    pub internal: mpsc::UnboundedSender<Internal>,
    pub addresses: Option<AddressWatcher>,
    /// The firewall's ruleset as start-up put it in the kernel and the state.
    pub firewall: Ruleset,
    pub fleet: Option<crate::fleet::Fleet>,
    pub history: History,
}

impl Core {
    pub fn new(parts: Parts) -> Core {
        let now = (parts.clock)();
        Core {
            config: parts.config,
            tracker: parts.tracker,
            banner: parts.banner,
            outbox: Outbox::default(),
            sources: parts.sources,
            clock: parts.clock,
            orders_since_compaction: 0,
            hooks: HookRunner::default(),
            hook_lines: Default::default(),
            unbans: HashMap::new(),
            self_addresses_at: now,
            metrics: parts.metrics,
            tickets: Tickets::default(),
            banned_cache: super::status::BannedCache::default(),
            reload: Reload::default(),
            // The start-up reconcile has just compared the kernel with the state: the next
            // periodic check is CHECK_EVERY from now, not at the first tick (a second full
            // listing right after start-up, 1.7 s of kernel time with 100,000 bans).
            upkeep: Upkeep {
                last_check: Some(Instant::now()),
                ..Upkeep::default()
            },
            internal: parts.internal,
            addresses: parts.addresses,
            firewall: firewall::Firewall::new(parts.firewall),
            fleet: parts.fleet,
            fleet_unbans: HashSet::new(),
            history: parts.history,
        }
    }

    /// Runs until `shutdown`; then stops the sources, handles what they already read, and
    /// leaves everything durable (a compacted snapshot, the positions) before returning.
    pub async fn run(
        mut self,
        mut inputs: Inputs,
        shutdown: CancellationToken,
    ) -> Result<(), CoreError> {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let watchdog = systemd::watchdog_interval();
        let mut last_watchdog = Instant::now();
        self.sources.reconcile(&self.config);
        // Ready once the sources are started (each then opens its log on its own thread; a line
        // written meanwhile is read back on first sight, or found at the saved position).
        let mut status = self.status_line();
        systemd::ready(&status);
        let mut last_status = Instant::now();
        loop {
            let banner = self.banner.clone();
            let take_events = self.outbox.orders < OUTBOX_CAP;
            let repair_due = self.upkeep.repair_due;
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {
                    self.tick();
                    if let Some(every) = watchdog
                        && last_watchdog.elapsed() >= every
                        && self.banner_is_alive()
                    {
                        systemd::watchdog();
                        last_watchdog = Instant::now();
                    }
                    // `systemctl status` shows the counts as they are, at most every 10 s.
                    if last_status.elapsed() >= STATUS_EVERY {
                        let now = self.status_line();
                        if now != status {
                            systemd::status(&now);
                            status = now;
                        }
                        last_status = Instant::now();
                    }
                }
                report = inputs.reports.recv() => match report {
                    Some(r) => self.report(r),
                    None => return Err(CoreError::BannerGone),
                },
                Some(call) = inputs.calls.recv() => self.call(call),
                Some(internal) = inputs.internal.recv() => self.internal_event(internal),
                Some(event) = inputs.events.recv(), if take_events => self.event(event),
                Some(batch) = recv_some(&mut inputs.peers), if take_events => self.peer_batch(batch),
                permit = banner.reserve(), if !self.outbox.msgs.is_empty() => match permit {
                    Some(p) => {
                        let msg = self.outbox_pop();
                        p.send(msg);
                    }
                    None => return Err(CoreError::BannerGone),
                },
                _ = sleep_until(repair_due), if repair_due.is_some() => self.queue_repair(),
            }
        }
        self.stop(inputs).await
    }

    /// Stops the sources, handles what they read, and makes everything durable.
    async fn stop(mut self, mut inputs: Inputs) -> Result<(), CoreError> {
        self.sources.stop_all();
        let deadline = Instant::now() + SOURCES_STOP;
        while !self.sources.all_stopped() {
            let banner = self.banner.clone();
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {
                    tracing::warn!("a log source did not stop in time; its last position is kept");
                    break;
                }
                Some(event) = inputs.events.recv() => self.event(event),
                report = inputs.reports.recv() => match report {
                    Some(r) => self.report(r),
                    None => return Err(CoreError::BannerGone),
                },
                permit = banner.reserve(), if !self.outbox.msgs.is_empty() => match permit {
                    Some(p) => { let msg = self.outbox_pop(); p.send(msg); }
                    None => return Err(CoreError::BannerGone),
                },
            }
        }
        while let Ok(event) = inputs.events.try_recv() {
            self.event(event);
        }
        let (done, mut flushed) = oneshot::channel();
        self.push(Msg::Barrier(Barrier::Compact));
        self.push(Msg::Flush {
            remove_table: !self.config.nftables.keep_on_stop,
            done,
        });
        loop {
            let banner = self.banner.clone();
            tokio::select! {
                _ = &mut flushed => break,
                report = inputs.reports.recv() => match report {
                    Some(r) => self.report(r),
                    None => return Err(CoreError::BannerGone),
                },
                permit = banner.reserve(), if !self.outbox.msgs.is_empty() => match permit {
                    Some(p) => { let msg = self.outbox_pop(); p.send(msg); }
                    None => return Err(CoreError::BannerGone),
                },
            }
        }
        self.tickets.abandon();
        Ok(())
    }

    /// Whether the banner is making progress (a job stuck for minutes stops the watchdog).
    fn banner_is_alive(&self) -> bool {
        let busy_since = self
            .banner
            .stats
            .busy_since_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        let now_ms = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
        busy_since == 0 || now_ms.saturating_sub(busy_since) < 60_000
    }

    /// Queues a message for the banner: at once if there is room, else in the outbox.
    pub(super) fn push(&mut self, msg: Msg) {
        let msg = if self.outbox.msgs.is_empty() {
            match self.banner.try_send(msg) {
                Ok(()) => return,
                Err(msg) => msg,
            }
        } else {
            msg
        };
        if let Msg::Orders(o) = &msg {
            self.outbox.orders += o.len();
        }
        self.outbox.msgs.push_back(msg);
    }

    fn outbox_pop(&mut self) -> Msg {
        let msg = self
            .outbox
            .msgs
            .pop_front()
            .expect("invariant: popped only when not empty");
        if let Msg::Orders(o) = &msg {
            self.outbox.orders -= o.len();
        }
        msg
    }

    /// Sends orders to the banner.
    pub(super) fn send(&mut self, orders: Vec<Order>) {
        if !orders.is_empty() {
            self.orders_since_compaction += orders.len();
            self.push(Msg::Orders(orders));
        }
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::Failures {
                jail,
                failures,
                mut lines,
            } => {
                lines.release();
                self.follow_host_addresses();
                let now = (self.clock)();
                let mut orders = Vec::new();
                // Looked up once per batch, not per line.
                let hook = self
                    .config
                    .enabled()
                    .any(|j| j.name == jail && j.on_ban.is_some());
                for matched in failures {
                    let f = &matched.failure;
                    let counted = match self.tracker.failure(&jail, f.host, f.at, now) {
                        Counted::Banned(o) => {
                            orders.extend(o);
                            true
                        }
                        Counted::Counted(n) => {
                            tracing::debug!(jail = %jail, ip = %f.host, failures = n, "failure");
                            true
                        }
                        other => {
                            tracing::debug!(jail = %jail, ip = %f.host, outcome = ?other, "failure not counted");
                            false
                        }
                    };
                    // Only a counted failure's line can lead to a ban: an ignored, too old or
                    // already banned address's lines would only crowd the bounded store.
                    if counted && let Some(line) = lines.line(&matched) {
                        self.keep_line(&jail, f.host, line, hook);
                    }
                }
                self.send(orders);
            }
            Event::Checkpoint(positions) => {
                // The counters of what was read up to these positions go with them.
                self.send_history();
                self.push(Msg::Positions(positions));
            }
            Event::Stopped {
                jail,
                id,
                positions,
            } => {
                let config = self.config.clone();
                self.sources.stopped(&config, &jail, id, positions);
            }
        }
    }

    fn report(&mut self, report: Report) {
        match report {
            Report::Settled(outcomes) => {
                let now = (self.clock)();
                let mut follow = Vec::new();
                for (order, result) in outcomes {
                    let settlement = match &result {
                        Ok(()) => Settlement::Applied,
                        Err(OrderError::Refused(_)) => Settlement::Refused,
                        Err(OrderError::NotDurable(_)) => Settlement::NotDurable,
                    };
                    follow.extend(self.tracker.settle(&order, settlement, now));
                    if result.is_ok() {
                        self.after(&order);
                    }
                    self.fleet_settled(&order, result.is_ok());
                    self.tickets.settle(&order, &result);
                }
                self.send(follow);
            }
            Report::Firewall(result) => self.firewall_settled(result),
            Report::TableRecreated => {
                tracing::warn!("the table had vanished: putting every ban back");
                self.drift(true);
            }
            Report::Need(Barrier::Compact, reply) => {
                let mut records = self.snapshot();
                records.extend(self.history_snapshot());
                let _ = reply.send(Settled::Records(records));
            }
            Report::Need(Barrier::Repair { .. }, reply) => {
                let _ = reply.send(Settled::Elements(self.desired()));
            }
            Report::Compacted(result) => {
                self.upkeep.compaction_queued = false;
                match result {
                    Ok(()) => {
                        if self.upkeep.poisoned {
                            tracing::info!("the state log was rewritten and takes writes again");
                        }
                        self.upkeep.poisoned = false;
                        self.orders_since_compaction = 0;
                    }
                    Err(e) => tracing::error!(error = %e, "the state log could not be compacted"),
                }
            }
            Report::Repaired(result) => {
                self.upkeep.repair_queued = false;
                match result {
                    Ok(report) => {
                        if report.added + report.refreshed > 0 || !report.unknown.is_empty() {
                            tracing::warn!(
                                added = report.added,
                                refreshed = report.refreshed,
                                kept = report.kept,
                                adopted = report.unknown.len(),
                                "kernel repaired from the state"
                            );
                        }
                        if !report.unknown.is_empty() {
                            let now = (self.clock)();
                            self.tracker
                                .adopt(report.unknown.into_iter().map(|e| adopted(e, now)));
                            self.queue_compaction();
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "the kernel could not be repaired; retrying");
                        self.drift(true);
                    }
                }
            }
            Report::StatePoisoned => {
                if !self.upkeep.poisoned {
                    tracing::error!(
                        "the state log failed to sync: no ban is accepted until it is rewritten"
                    );
                }
                self.upkeep.poisoned = true;
            }
        }
    }

    fn internal_event(&mut self, internal: Internal) {
        match internal {
            Internal::Loaded(result) => self.loaded(result),
            Internal::LayoutApplied(config, result) => self.layout_applied(*config, result),
            Internal::Drift { structure } => self.drift(structure),
        }
    }

    /// The kernel drifted from the state: repair once the burst of notifications settles.
    fn drift(&mut self, structure: bool) {
        self.upkeep.repair_structure |= structure;
        self.upkeep.repair_due = Some(Instant::now() + DRIFT_SETTLE);
    }

    fn queue_repair(&mut self) {
        if self.upkeep.repair_queued {
            // One is on its way; look again shortly after it.
            self.upkeep.repair_due = Some(Instant::now() + DRIFT_SETTLE);
            return;
        }
        self.upkeep.repair_due = None;
        self.upkeep.repair_queued = true;
        self.upkeep.last_check = Some(Instant::now());
        let layout = std::mem::take(&mut self.upkeep.repair_structure);
        self.push(Msg::Barrier(Barrier::Repair { layout }));
    }

    fn queue_compaction(&mut self) {
        if !self.upkeep.compaction_queued {
            self.upkeep.compaction_queued = true;
            self.upkeep.last_compaction_try = Some(Instant::now());
            self.push(Msg::Barrier(Barrier::Compact));
        }
    }

    /// Bookkeeping after an order took effect: counters and hooks.
    fn after(&mut self, order: &Order) {
        let ban = &order.ban;
        match order.action {
            Action::Ban | Action::Refresh if order.fresh => {
                let lines = self.hook_lines.take(&(ban.jail.clone(), ban.target));
                self.publish_ban(ban, &lines);
                if let Some(command) = self.jail_hook(&ban.jail, |j| j.on_ban.as_ref()) {
                    self.hooks.run(&command, HookAction::Ban, ban, &lines);
                }
                self.log_event(EventAction::Ban, ban, lines);
            }
            Action::Unban => {
                self.log_event(EventAction::Unban, ban, Vec::new());
                self.unbanned(ban);
            }
            Action::Ban | Action::Refresh | Action::Forget => {}
        }
    }

    fn jail_hook(
        &self,
        jail: &JailName,
        pick: fn(&crate::config::JailConfig) -> Option<&Vec<String>>,
    ) -> Option<Vec<String>> {
        self.config
            .enabled()
            .find(|j| &j.name == jail)
            .and_then(pick)
            .cloned()
    }

    /// Counts an unban (by hand or expired) and runs the jail's `on_unban` hook.
    fn unbanned(&mut self, ban: &Ban) {
        *self.unbans.entry(ban.jail.clone()).or_default() += 1;
        if let Some(command) = self.jail_hook(&ban.jail, |j| j.on_unban.as_ref()) {
            self.hooks.run(&command, HookAction::Unban, ban, &[]);
        }
    }

    /// Remembers a counted failure's line for the ban log and the jail's `on_ban` hook (`hook`:
    /// the jail has one), keeping at most
    /// `maxretry` lines per address, within `RecentLines`' caps. Without a hook only the ban
    /// log wants them: no more lines than it keeps, cut as it cuts them, so an attacker's long
    /// lines cost no more memory than the log would keep of them.
    fn keep_line(&mut self, jail: &JailName, host: std::net::IpAddr, line: &str, hook: bool) {
        let Some(policy) = self.tracker.policy(jail) else {
            return;
        };
        let key = (jail.clone(), BanTarget::folded(host, policy.fold_v6));
        let mut keep = policy.maxretry.max(1) as usize;
        if !hook {
            keep = keep.min(nftjail_core::state::events::MAX_LINES);
        }
        self.hook_lines.keep(key, line, keep, !hook);
    }

    /// The host's addresses change (DHCP, hotplug, an address added by hand): ignoreself
    /// follows them. The kernel queues the change notification before `ip addr add` returns,
    /// so a look here, before failures are decided, never misses an address added earlier.
    pub(super) fn follow_host_addresses(&mut self) {
        let now = (self.clock)();
        let changed = self.addresses.as_mut().is_some_and(AddressWatcher::changed);
        if changed || now - self.self_addresses_at >= SELF_ADDRESSES_EVERY {
            self.tracker.set_self_addresses(super::host_addresses());
            self.self_addresses_at = now;
        }
    }

    fn tick(&mut self) {
        let now = (self.clock)();
        self.follow_host_addresses();
        self.firewall_tick();
        let ended = self.tracker.expire(now);
        for ban in &ended {
            self.log_event(EventAction::Expire, ban, Vec::new());
            self.unbanned(ban);
        }
        self.history.log.sweep(now);
        self.send_history();
        if ended.len() <= LOG_EXPIRED_UP_TO {
            for ban in &ended {
                tracing::info!(jail = %ban.jail, ip = %ban.target, "unban (expired)");
            }
        } else {
            tracing::info!(bans = ended.len(), "bans expired");
        }
        self.publish_metrics();
        let live =
            self.tracker.bans().len() + self.tracker.history().len() + self.history.log.len();
        let retry_due = self
            .upkeep
            .last_compaction_try
            .is_none_or(|t| t.elapsed() >= RETRY_COMPACTION);
        if (self.orders_since_compaction > 10_000 + 2 * live || self.upkeep.poisoned) && retry_due {
            self.queue_compaction();
        }
        if self
            .upkeep
            .last_check
            .is_none_or(|t| t.elapsed() >= CHECK_EVERY)
            && self.upkeep.repair_due.is_none()
        {
            self.upkeep.repair_due = Some(Instant::now());
        }
    }

    /// Hands the metrics endpoint fresh numbers (cheap: counters and a few strings).
    fn publish_metrics(&self) {
        let Some(metrics) = &self.metrics else { return };
        let jails = self
            .config
            .enabled()
            .map(|j| {
                let source = self.sources.of(&j.name);
                let load = |f: fn(&crate::filter::SourceCounters) -> u64| {
                    source.map_or(0, |s| f(&s.stage.counters))
                };
                JailMetrics {
                    name: j.name.to_string(),
                    stats: self.tracker.stats(&j.name).unwrap_or_default(),
                    unbans: self.unbans.get(&j.name).copied().unwrap_or(0),
                    lines: load(|c| c.lines.load(std::sync::atomic::Ordering::Relaxed)),
                    skipped: load(|c| c.skipped.load(std::sync::atomic::Ordering::Relaxed)),
                }
            })
            .collect();
        let files = self
            .sources
            .running()
            .iter()
            .flat_map(|s| {
                s.stage
                    .positions
                    .lock()
                    .map(|p| p.clone())
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|(_, p)| matches!(p, crate::state::Position::File { .. }))
                    .filter_map(|(key, p)| {
                        key.split_once(':')
                            .map(|(jail, path)| (jail.to_string(), path.to_string(), p))
                    })
            })
            .collect();
        let cluster = self.cluster_status();
        metrics.send_replace(Arc::new(Snapshot {
            jails,
            files,
            cluster,
        }));
    }

    /// The settled state as records: active and parked bans, the history they do not already
    /// carry, and the firewall's ruleset.
    pub fn snapshot(&self) -> Vec<Record> {
        let bans: HashMap<(&JailName, &BanTarget), i64> = self
            .tracker
            .settled()
            .chain(self.tracker.parked())
            .map(|b| ((&b.jail, &b.target), b.since))
            .collect();
        let mut records: Vec<Record> = self
            .tracker
            .settled()
            .chain(self.tracker.parked())
            .cloned()
            .map(Record::Ban)
            .collect();
        records.extend(
            self.tracker
                .history()
                .entries()
                .filter(|h| bans.get(&(&h.jail, &h.target)) != Some(&h.at))
                .map(Record::History),
        );
        records.extend(self.firewall.records());
        records
    }

    /// The elements the kernel must hold: the settled bans of the configured jails.
    fn desired(&self) -> Vec<Element> {
        let now = (self.clock)();
        self.tracker
            .settled()
            .filter(|b| b.live_at(now))
            .map(|b| {
                let left = b.remaining(now).map(Duration::from_secs);
                Element {
                    jail: b.jail.clone(),
                    target: b.target,
                    timeout: left,
                    expires: left,
                }
            })
            .collect()
    }

    /// One line for `systemctl status`.
    pub fn status_line(&self) -> String {
        format!(
            "{} jails, {} bans",
            self.config.enabled().count(),
            self.tracker.bans().len()
        )
    }
}

/// A ban for an element found in the kernel without a record.
pub fn adopted(e: Element, now: i64) -> Ban {
    Ban {
        jail: e.jail,
        target: e.target,
        since: now,
        expires: e
            .expires
            .map(|d| now + i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2)),
        count: 1,
        origin: Origin::Adopted,
    }
}

/// The next item of an optional channel (never, when there is none).
async fn recv_some<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
