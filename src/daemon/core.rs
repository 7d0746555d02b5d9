//! The core task: the one owner of all tracker state.
//!
//! Receives failures and checkpoints from the sources, calls from the control socket, reports
//! from the banner and a one-second tick; emits ban orders to the banner and replies to the
//! control clients. Everything that decides is here and nowhere else (no locks). It never waits
//! on the kernel inside its loop: a request that needs the kernel's answer gets it in a task of
//! its own, so failures keep flowing while a bulk ban is applied.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::hooks::{Action, HookRunner};
use super::matching::{Event, RunningSource, SourceOptions, start_sources};
use super::metrics::{JailMetrics, Snapshot};
use super::status;
use super::systemd;
use crate::addr::BanTarget;
use crate::banner::{Banner, Report};
use crate::config::{self, Config};
use crate::control::protocol::{Rejected, Reply};
use crate::control::{Call, Command};
use crate::jail::JailName;
use crate::state::{Position, Record};
use crate::tracker::{Ban, Counted, Order, Tracker};

/// Above this many expired bans in one tick, they are logged as one line.
const LOG_EXPIRED_UP_TO: usize = 100;
/// Seconds between two looks at the host's own addresses.
const SELF_ADDRESSES_EVERY: i64 = 30;
/// Addresses whose matched lines are kept for `on_ban` hooks (the oldest go first).
const HOOK_LINES_CAP: usize = 10_000;

/// The core's state.
pub struct Core {
    pub config: Arc<Config>,
    pub tracker: Tracker,
    pub banner: Banner,
    pub sources: Vec<RunningSource>,
    /// Latest position of every source (persisted through the banner).
    pub positions: HashMap<String, Position>,
    pub events_tx: mpsc::Sender<Event>,
    pub source_options: SourceOptions,
    pub clock: fn() -> i64,
    /// Orders sent since the state log was last compacted.
    pub orders_since_compaction: usize,
    pub hooks: HookRunner,
    /// Recent matched lines per (jail, target), for `on_ban` hooks; bounded.
    pub hook_lines: HashMap<(JailName, BanTarget), Vec<String>>,
    /// Unbans per jail (by hand and expired), for metrics.
    pub unbans: HashMap<JailName, u64>,
    /// When the host's own addresses were last read (for ignoreself).
    pub self_addresses_at: i64,
    /// Where the metrics endpoint reads its numbers, when it is on.
    pub metrics: Option<tokio::sync::watch::Sender<Arc<Snapshot>>>,
}

/// The core's inputs.
pub struct Inputs {
    pub events: mpsc::Receiver<Event>,
    pub calls: mpsc::Receiver<Call>,
    pub reports: mpsc::UnboundedReceiver<Report>,
}

impl Core {
    /// Runs until `shutdown`; then stops the sources, handles what they already read, and
    /// leaves everything durable (positions and a compacted snapshot) before returning.
    pub async fn run(mut self, mut inputs: Inputs, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let watchdog = systemd::watchdog_interval();
        let mut last_watchdog = tokio::time::Instant::now();
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                Some(report) = inputs.reports.recv() => self.report(report).await,
                Some(call) = inputs.calls.recv() => self.call(call).await,
                Some(event) = inputs.events.recv() => self.event(event).await,
                _ = tick.tick() => {
                    self.tick().await;
                    if let Some(every) = watchdog && last_watchdog.elapsed() >= every {
                        systemd::watchdog();
                        last_watchdog = tokio::time::Instant::now();
                    }
                }
            }
        }
        self.stop(inputs).await;
    }

    /// Stops the sources, drains what they read, and makes everything durable.
    async fn stop(mut self, mut inputs: Inputs) {
        let sources = std::mem::take(&mut self.sources);
        let _ =
            tokio::task::spawn_blocking(move || sources.into_iter().for_each(RunningSource::stop))
                .await;
        while let Ok(event) = inputs.events.try_recv() {
            self.event(event).await;
        }
        self.banner
            .positions(
                self.positions
                    .iter()
                    .map(|(k, p)| (k.clone(), p.clone()))
                    .collect(),
            )
            .await;
        self.banner.compact(self.snapshot()).await;
        self.banner.flush(!self.config.nftables.keep_on_stop).await;
    }

    async fn event(&mut self, event: Event) {
        match event {
            Event::Failures { jail, failures } => {
                let now = (self.clock)();
                let mut orders = Vec::new();
                for matched in failures {
                    let f = &matched.failure;
                    if let Some(line) = matched.line {
                        self.keep_line(&jail, f.host, line);
                    }
                    match self.tracker.failure(&jail, f.host, f.at, now) {
                        Counted::Banned(o) => orders.extend(o),
                        Counted::Counted(n) => {
                            tracing::debug!(jail = %jail, ip = %f.host, failures = n, "failure")
                        }
                        other => {
                            tracing::debug!(jail = %jail, ip = %f.host, outcome = ?other, "failure not counted")
                        }
                    }
                }
                self.send(orders).await;
            }
            Event::Checkpoint(positions) => {
                self.positions.extend(positions.iter().cloned());
                self.banner.positions(positions).await;
            }
        }
    }

    async fn send(&mut self, orders: Vec<Order>) {
        self.orders_since_compaction += orders.len();
        self.banner.send(orders).await;
    }

    async fn report(&mut self, report: Report) {
        match report {
            Report::Applied { done, failed } => {
                failed.iter().for_each(|o| self.tracker.rollback(o));
                for order in &done {
                    self.after(order);
                }
            }
            Report::TableRecreated => {
                // Every live ban is missing from the new table: put them back.
                let orders: Vec<Order> = self
                    .tracker
                    .bans()
                    .iter()
                    .cloned()
                    .map(Order::Refresh)
                    .collect();
                tracing::warn!(
                    bans = orders.len(),
                    "restoring the bans of the recreated table"
                );
                self.send(orders).await;
            }
        }
    }

    /// Bookkeeping after an order took effect: counters and hooks.
    fn after(&mut self, order: &Order) {
        let ban = order.ban();
        let jail = self.config.enabled().find(|j| j.name == ban.jail);
        match order {
            Order::Ban(_) | Order::Refresh(_) => {
                let lines = self
                    .hook_lines
                    .remove(&(ban.jail.clone(), ban.target))
                    .unwrap_or_default();
                if let Some(command) = jail.and_then(|j| j.on_ban.as_ref()) {
                    self.hooks.run(command, Action::Ban, ban, &lines);
                }
            }
            Order::Unban(_) => self.unbanned(ban),
        }
    }

    /// Counts an unban (by hand or expired) and runs the jail's `on_unban` hook.
    fn unbanned(&mut self, ban: &Ban) {
        *self.unbans.entry(ban.jail.clone()).or_default() += 1;
        if let Some(command) = self
            .config
            .enabled()
            .find(|j| j.name == ban.jail)
            .and_then(|j| j.on_unban.as_ref())
        {
            self.hooks.run(command, Action::Unban, ban, &[]);
        }
    }

    /// Remembers a matched line for the jail's `on_ban` hook, keeping at most `maxretry` lines
    /// per address and `HOOK_LINES_CAP` addresses.
    fn keep_line(&mut self, jail: &JailName, host: std::net::IpAddr, line: String) {
        let Some(policy) = self.tracker.policy(jail) else {
            return;
        };
        let key = (jail.clone(), BanTarget::folded(host, policy.fold_v6));
        let keep = policy.maxretry.max(1) as usize;
        if self.hook_lines.len() >= HOOK_LINES_CAP && !self.hook_lines.contains_key(&key) {
            // Any entry will do: the map only has to stay bounded under a flood.
            if let Some(victim) = self.hook_lines.keys().next().cloned() {
                self.hook_lines.remove(&victim);
            }
        }
        let lines = self.hook_lines.entry(key).or_default();
        lines.push(line);
        if lines.len() > keep {
            lines.remove(0);
        }
    }

    async fn tick(&mut self) {
        let now = (self.clock)();
        // The host's addresses change (DHCP, hotplug): ignoreself follows them.
        if now - self.self_addresses_at >= SELF_ADDRESSES_EVERY {
            self.tracker.set_self_addresses(super::host_addresses());
            self.self_addresses_at = now;
        }
        let ended = self.tracker.expire(now);
        for ban in &ended {
            self.unbanned(ban);
        }
        if ended.len() <= LOG_EXPIRED_UP_TO {
            for ban in &ended {
                tracing::info!(jail = %ban.jail, ip = %ban.target, "unban (expired)");
            }
        } else {
            tracing::info!(bans = ended.len(), "bans expired");
        }
        self.publish_metrics();
        let live = self.tracker.bans().len() + self.tracker.history().len();
        if self.orders_since_compaction > 10_000 + 2 * live {
            self.banner.compact(self.snapshot()).await;
            self.orders_since_compaction = 0;
        }
    }

    /// Hands the metrics endpoint fresh numbers (cheap: counters and a few strings).
    fn publish_metrics(&self) {
        let Some(metrics) = &self.metrics else { return };
        let load = |jail: &JailName, f: fn(&super::matching::SourceCounters) -> u64| {
            self.sources
                .iter()
                .find(|s| &s.jail == jail)
                .map_or(0, |s| f(&s.counters))
        };
        let jails = self
            .config
            .enabled()
            .map(|j| JailMetrics {
                name: j.name.to_string(),
                stats: self.tracker.stats(&j.name).unwrap_or_default(),
                unbans: self.unbans.get(&j.name).copied().unwrap_or(0),
                lines: load(&j.name, |c| {
                    c.lines.load(std::sync::atomic::Ordering::Relaxed)
                }),
                skipped: load(&j.name, |c| {
                    c.skipped.load(std::sync::atomic::Ordering::Relaxed)
                }),
            })
            .collect();
        let files = self
            .positions
            .iter()
            .filter(|(_, p)| matches!(p, Position::File { .. }))
            .filter_map(|(key, p)| {
                key.split_once(':')
                    .map(|(jail, path)| (jail.to_string(), path.to_string(), p.clone()))
            })
            .collect();
        metrics.send_replace(Arc::new(Snapshot { jails, files }));
    }

    /// The live state as records: active bans and the history they do not already carry.
    pub fn snapshot(&self) -> Vec<Record> {
        let bans = self.tracker.bans();
        let mut records: Vec<Record> = bans.iter().cloned().map(Record::Ban).collect();
        records.extend(
            self.tracker
                .history()
                .entries()
                .filter(|h| bans.get(&h.jail, &h.target).is_none_or(|b| b.since != h.at))
                .map(Record::History),
        );
        records
    }

    async fn call(&mut self, call: Call) {
        let Call { command, reply } = call;
        let answer = match command {
            Command::Status { jail: None } => status::summary(&self.config, &self.tracker),
            Command::Status { jail: Some(name) } => status::detail(
                &self.config,
                &self.tracker,
                &self.sources,
                &self.positions,
                &name,
            ),
            Command::Banned { jail } => status::banned(&self.tracker, jail.as_deref()),
            Command::Reload => self.reload().await,
            Command::Ban {
                jail,
                targets,
                length,
                rejected,
            } => {
                return self.ban(jail, targets, length, rejected, reply).await;
            }
            Command::Unban { target, jail, all } => {
                return self.unban(target, jail, all, reply).await;
            }
        };
        let _ = reply.send(answer);
    }

    async fn ban(
        &mut self,
        jail: String,
        targets: Vec<crate::addr::BanTarget>,
        length: Option<config::BanTime>,
        mut rejected: Vec<Rejected>,
        reply: tokio::sync::oneshot::Sender<Reply>,
    ) {
        let jail = match status::enabled_jail(&self.config, &jail) {
            Ok(j) => j,
            Err(e) => {
                let _ = reply.send(Reply::error(e));
                return;
            }
        };
        let now = (self.clock)();
        let mut orders = Vec::with_capacity(targets.len());
        for target in targets {
            match self.tracker.ban(&jail, target, length, now) {
                Ok(o) => orders.extend(o),
                Err(refusal) => rejected.push(Rejected {
                    line: 0,
                    text: target.to_string(),
                    error: refusal.to_string(),
                }),
            }
        }
        if orders.is_empty() {
            let error = rejected
                .first()
                .map_or_else(|| "nothing to ban".to_string(), |r| r.error.clone());
            let _ = reply.send(Reply {
                rejected,
                ..Reply::error(error)
            });
            return;
        }
        self.orders_since_compaction += orders.len();
        let wait = self.banner.send_and_wait(orders.clone()).await;
        // The kernel's answer comes later; the core goes on meanwhile.
        tokio::spawn(async move {
            let answer = match wait.await {
                Ok(results) => {
                    let failed: Vec<String> = results
                        .iter()
                        .filter_map(|r| r.as_ref().err().cloned())
                        .collect();
                    let count = |kind: fn(&Order) -> bool| {
                        orders
                            .iter()
                            .zip(&results)
                            .filter(|(o, r)| kind(o) && r.is_ok())
                            .count()
                    };
                    let banned = count(|o| matches!(o, Order::Ban(_)));
                    let refreshed = count(|o| matches!(o, Order::Refresh(_)));
                    match failed.first() {
                        Some(e) => Reply {
                            banned: Some(banned),
                            refreshed: Some(refreshed),
                            rejected,
                            ..Reply::error(format!("{} ban(s) failed: {e}", failed.len()))
                        },
                        None => Reply {
                            banned: Some(banned),
                            refreshed: Some(refreshed),
                            rejected,
                            ..Reply::ok()
                        },
                    }
                }
                Err(_) => Reply::error("the daemon is stopping"),
            };
            let _ = reply.send(answer);
        });
    }

    async fn unban(
        &mut self,
        target: Option<crate::addr::BanTarget>,
        jail: Option<String>,
        all: bool,
        reply: tokio::sync::oneshot::Sender<Reply>,
    ) {
        let jail = match jail
            .map(|j| status::enabled_jail(&self.config, &j))
            .transpose()
        {
            Ok(j) => j,
            Err(e) => {
                let _ = reply.send(Reply::error(e));
                return;
            }
        };
        let orders = match (&target, &jail) {
            (_, Some(j)) if all => self.tracker.unban_jail(j),
            (Some(t), j) => self.tracker.unban(t, j.as_ref()),
            (None, _) => Vec::new(),
        };
        if orders.is_empty() {
            let what = target.map_or_else(|| "nothing".to_string(), |t| t.to_string());
            let place = jail.map_or_else(|| "any jail".to_string(), |j| format!("jail {j}"));
            let _ = reply.send(Reply::error(format!("{what} is not banned in {place}")));
            return;
        }
        let pairs: Vec<(String, String)> = orders
            .iter()
            .map(|o| (o.ban().jail.to_string(), o.ban().target.to_string()))
            .collect();
        let wait = self.banner.send_and_wait(orders).await;
        tokio::spawn(async move {
            let answer = match wait.await {
                Ok(results) => match results.iter().find_map(|r| r.as_ref().err()) {
                    Some(e) => Reply::error(format!("unban failed: {e}")),
                    None => Reply {
                        unbanned: Some(pairs),
                        ..Reply::ok()
                    },
                },
                Err(_) => Reply::error("the daemon is stopping"),
            };
            let _ = reply.send(answer);
        });
    }

    /// Re-reads the configuration; an invalid one changes nothing.
    async fn reload(&mut self) -> Reply {
        systemd::reloading();
        let path: PathBuf = self.config.path.clone();
        let loaded = tokio::task::spawn_blocking(move || config::load(&path)).await;
        let new = match loaded {
            Ok(Ok(c)) => c,
            Ok(Err(diags)) => {
                tracing::error!(
                    errors = diags.len(),
                    "reload refused: the configuration is invalid; the running one stays"
                );
                for d in diags.iter() {
                    tracing::error!("{d}");
                }
                systemd::ready(&self.status_line());
                return Reply {
                    diagnostics: diags.iter().map(ToString::to_string).collect(),
                    ..Reply::error(format!(
                        "configuration invalid ({} error(s)); still running the previous one",
                        diags.len()
                    ))
                };
            }
            Err(e) => return Reply::error(format!("reload failed: {e}")),
        };
        if let Err(e) = self.banner.layout(new.layout()).await {
            systemd::ready(&self.status_line());
            return Reply::error(format!(
                "reload refused: the kernel did not take the new rules: {e}"
            ));
        }
        let policies = new.enabled().map(|j| j.policy.clone()).collect();
        let dropped = self.tracker.reconfigure(policies, new.history_retention());
        self.tracker.set_self_addresses(super::host_addresses());
        self.banner.forget(dropped).await;
        let old = std::mem::take(&mut self.sources);
        let _ = tokio::task::spawn_blocking(move || old.into_iter().for_each(RunningSource::stop))
            .await;
        self.sources = start_sources(&new, &self.positions, &self.events_tx, &self.source_options);
        self.config = Arc::new(new);
        tracing::info!(
            jails = self.config.enabled().count(),
            "configuration reloaded"
        );
        systemd::ready(&self.status_line());
        status::summary(&self.config, &self.tracker)
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
