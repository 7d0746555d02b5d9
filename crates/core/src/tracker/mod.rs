//! The tracker: turns failures into ban decisions.
//!
//! Receives failures (`jail`, address, log time), manual ban and unban requests, the clock, and
//! the [`Settlement`] of every order it emitted; emits [`Order`]s (ban, refresh, unban, forget)
//! for the banner. It owns every piece of decision state — per-jail sliding windows, ignore
//! lists, active and parked bans, ban history, escalation and recidive — and is the only owner of
//! it (one task, no locks). It is synchronous and deterministic: `now` is always an argument, the
//! randomness of `rndtime` comes from a seeded generator.
//!
//! An order is *pending* from the moment it is emitted until it is settled: decisions see it
//! at once (an address being banned is not counted again), but the history, the totals and
//! recidive count a ban only once it is applied, and a refused order puts back what was there
//! before (see `settle`). It must never do I/O, never wait, and never emit overlapping prefixes
//! in one jail (interval sets in the kernel refuse them): a wider prefix replaces the narrower
//! ones it holds only when it outlasts them; otherwise the request is refused and says why.

pub mod bans;
mod carry;
pub mod escalation;
pub mod ignore;
mod order;
mod parking;
mod settle;
pub mod window;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use serde::Serialize;

use crate::addr::BanTarget;
use crate::duration::BanTime;
use crate::hash::{FastMap, FastSet};
use crate::jail::JailName;

pub use bans::{ActiveBans, Ban, History, HistoryEntry, Origin};
pub use carry::CarriedBan;
pub use escalation::{Escalation, Jitter};
pub use ignore::IgnoreList;
pub use order::{Action, Order, OrderId, Settlement};
pub use parking::Reconfigured;
use settle::InFlight;
use window::FailureWindow;

/// What the tracker needs to know about one jail (validated and merged by `config`).
#[derive(Debug, Clone)]
pub struct JailPolicy {
    pub name: JailName,
    pub maxretry: u32,
    /// Seconds.
    pub findtime: u64,
    pub bantime: BanTime,
    pub escalation: Escalation,
    pub ignore: Arc<IgnoreList>,
    /// Fold IPv6 addresses into prefixes of this length (e.g. 64).
    pub fold_v6: Option<u8>,
    /// The most addresses the jail's window tracks at once.
    pub maxtracked: usize,
    /// Native recidive: `Some(maxbans)` makes this jail ban targets that other jails banned
    /// `maxbans` times within its findtime. Such a jail reads no log.
    pub recidive: Option<u32>,
    /// Never ban the host's own addresses (as they are now: see [`Tracker::set_self_addresses`]).
    pub ignoreself: bool,
}

/// What became of one failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Counted {
    /// Counted; the address has this many failures in the window.
    Counted(usize),
    /// The failure completed `maxretry`: apply these orders.
    Banned(Vec<Order>),
    /// The address (or a prefix holding it) is already banned in this jail.
    AlreadyBanned,
    /// The address is in the jail's ignore list.
    Ignored,
    /// Older than `findtime` (or its ban would already be over): not counted.
    TooOld,
    /// No such jail, or a jail that reads no log.
    UnknownJail,
}

/// Why a manual request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no jail named {0:?}")]
    UnknownJail(String),
    #[error(
        "{target} is in the ignore list of jail {jail} (ignoreip/ignoreself): refusing to ban it"
    )]
    Ignored { target: BanTarget, jail: JailName },
    #[error(
        "{target} is already banned in jail {jail} as part of {by} ({until}), which outlasts this ban"
    )]
    Covered {
        target: BanTarget,
        jail: JailName,
        by: BanTarget,
        until: Until,
    },
    #[error(
        "{target} overlaps {other} in jail {jail}, banned {until}: one set cannot hold both, and \
         this ban would end first (unban {other} first, or ban for longer)"
    )]
    Outlasted {
        target: BanTarget,
        jail: JailName,
        other: BanTarget,
        until: Until,
    },
}

/// When a ban ends, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Until(pub Option<i64>);

impl std::fmt::Display for Until {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            None => f.write_str("permanently"),
            Some(at) => match chrono::DateTime::from_timestamp(at, 0) {
                Some(t) => write!(f, "until {}", t.format("%Y-%m-%d %H:%M:%S UTC")),
                None => write!(f, "until {at}"),
            },
        }
    }
}

/// The counters `status` shows, as fail2ban-client names them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct JailStats {
    pub currently_failed: usize,
    pub total_failed: u64,
    pub currently_banned: usize,
    pub total_banned: u64,
    pub ignored: u64,
    /// Addresses dropped from a full window (`maxtracked`).
    pub evicted: u64,
}

struct JailState {
    policy: JailPolicy,
    window: FailureWindow,
    total_failed: u64,
    total_banned: u64,
    ignored: u64,
}

impl JailState {
    fn new(policy: JailPolicy) -> JailState {
        let window = FailureWindow::new(policy.findtime, policy.maxretry, policy.maxtracked);
        JailState {
            policy,
            window,
            total_failed: 0,
            total_banned: 0,
            ignored: 0,
        }
    }
}

/// How often the ban history and the parked bans are swept of what is past.
const SWEEP_EVERY: i64 = 60;

/// All decision state of the daemon.
pub struct Tracker {
    jails: FastMap<JailName, JailState>,
    /// Jail names in configuration order, for listings.
    order: Vec<JailName>,
    /// Bans of the configured jails: in the kernel, or on their way there.
    bans: ActiveBans,
    /// Bans of jails that are not configured any more: kept (in the state, out of the kernel)
    /// until they end or their jail comes back.
    parked: HashMap<JailName, FastMap<BanTarget, Ban>>,
    /// Orders emitted and not settled yet, by the ban they change.
    pending: FastMap<(JailName, BanTarget), InFlight>,
    next_order: OrderId,
    history: History,
    jitter: Jitter,
    last_sweep: i64,
    /// The host's own addresses, for jails with `ignoreself`.
    self_addresses: FastSet<IpAddr>,
    /// Changes whenever the settled bans may have changed (for replies built once and shared).
    generation: u64,
    /// Lifetime totals (failed, banned) of jails that are not configured now, kept for when
    /// they come back (and for the state log).
    retired_totals: HashMap<JailName, (u64, u64)>,
}

impl Tracker {
    /// A tracker for `policies`; history is kept `history_retention` seconds (fail2ban's
    /// `dbpurgeage`, at least the longest recidive findtime).
    pub fn new(policies: Vec<JailPolicy>, history_retention: u64, seed: u64) -> Tracker {
        let mut tracker = Tracker {
            jails: FastMap::default(),
            order: Vec::new(),
            bans: ActiveBans::default(),
            parked: HashMap::new(),
            pending: FastMap::default(),
            next_order: 1,
            history: History::new(history_retention),
            jitter: Jitter::new(seed),
            last_sweep: i64::MIN,
            self_addresses: FastSet::default(),
            generation: 0,
            retired_totals: HashMap::new(),
        };
        tracker.reconfigure(policies, history_retention, i64::MIN);
        tracker
    }

    /// The host's own addresses now (the daemon refreshes them: DHCP and hotplug change them).
    pub fn set_self_addresses(&mut self, addresses: impl IntoIterator<Item = IpAddr>) {
        self.self_addresses = addresses.into_iter().map(crate::addr::canonical).collect();
    }

    /// Whether `policy` refuses to ban any address of `target`: ignoreip, or ignoreself.
    fn ignores(&self, policy: &JailPolicy, target: &BanTarget) -> bool {
        policy.ignore.overlaps(target)
            || (policy.ignoreself && self.self_addresses.iter().any(|a| target.contains(*a)))
    }

    /// Counts one failure of `host` in `jail`, logged at `at`, seen at `now` (Unix seconds).
    pub fn failure(&mut self, jail: &JailName, host: IpAddr, at: i64, now: i64) -> Counted {
        let Some(state) = self.jails.get_mut(jail) else {
            return Counted::UnknownJail;
        };
        if state.policy.recidive.is_some() {
            return Counted::UnknownJail;
        }
        let is_self =
            state.policy.ignoreself && self.self_addresses.contains(&crate::addr::canonical(host));
        if is_self || state.policy.ignore.contains(host) {
            state.ignored += 1;
            return Counted::Ignored;
        }
        let at = at.min(now);
        let findtime = i64::try_from(state.policy.findtime).unwrap_or(i64::MAX);
        if at <= now.saturating_sub(findtime) {
            return Counted::TooOld;
        }
        if self.bans.covers(jail, host) {
            return Counted::AlreadyBanned;
        }
        let target = BanTarget::folded(host, state.policy.fold_v6);
        let key = window_key(&target);
        state.total_failed += 1;
        let failures = state.window.record(key, at);
        if failures < state.policy.maxretry as usize {
            return Counted::Counted(failures);
        }
        state.window.forget(key);
        let Some(ban) = self.new_ban(jail, target, None, Origin::Failures, at, now) else {
            return Counted::TooOld;
        };
        match self.place(ban, now) {
            Ok(orders) if !orders.is_empty() => Counted::Banned(orders),
            // A wider prefix ban of this jail that outlasts it already holds the address.
            _ => Counted::AlreadyBanned,
        }
    }

    /// A manual ban (`nftjail ban`). `length` overrides the jail's bantime and escalation.
    pub fn ban(
        &mut self,
        jail: &JailName,
        target: BanTarget,
        length: Option<BanTime>,
        now: i64,
    ) -> Result<Vec<Order>, Refusal> {
        self.decide(jail, target, length, Origin::Manual, now)
    }

    /// A ban decided elsewhere (`origin`): manual, or a peer's. Same checks as a manual ban.
    pub fn decide(
        &mut self,
        jail: &JailName,
        target: BanTarget,
        length: Option<BanTime>,
        origin: Origin,
        now: i64,
    ) -> Result<Vec<Order>, Refusal> {
        let policy = &self
            .jails
            .get(jail)
            .ok_or_else(|| Refusal::UnknownJail(jail.to_string()))?
            .policy;
        if self.ignores(policy, &target) {
            return Err(Refusal::Ignored {
                target,
                jail: jail.clone(),
            });
        }
        let state = self.jails.get_mut(jail).expect("invariant: checked above");
        state.window.forget(window_key(&target));
        let ban = self
            .new_ban(jail, target, length, origin, now, now)
            .expect("invariant: a ban starting now is live");
        self.place(ban, now)
    }

    /// Unbans `target` from `jail`, or from every jail. Empty when it was not banned.
    pub fn unban(&mut self, target: &BanTarget, jail: Option<&JailName>) -> Vec<Order> {
        let jails: Vec<JailName> = match jail {
            Some(j) => vec![j.clone()],
            None => self.order.clone(),
        };
        let mut orders = Vec::new();
        for j in jails {
            if let Some(state) = self.jails.get_mut(&j) {
                state.window.forget(window_key(target));
            }
            if let Some(ban) = self.bans.remove(&j, target) {
                orders.push(self.emit(Action::Unban, ban.clone(), Some(ban), false, Vec::new()));
            }
        }
        orders
    }

    /// Unbans everything in `jail`; for a parked jail, forgets its parked bans.
    pub fn unban_jail(&mut self, jail: &JailName) -> Vec<Order> {
        if let Some(parked) = self.parked.remove(jail) {
            return parked
                .into_values()
                .map(|ban| self.emit(Action::Forget, ban.clone(), Some(ban), false, Vec::new()))
                .collect();
        }
        let targets: Vec<BanTarget> = self.bans.in_jail(jail).map(|b| b.target).collect();
        let mut orders = Vec::with_capacity(targets.len());
        for target in targets {
            if let Some(ban) = self.bans.remove(jail, &target) {
                orders.push(self.emit(Action::Unban, ban.clone(), Some(ban), false, Vec::new()));
            }
        }
        orders
    }

    /// Bans that ended by `now` (the kernel drops their elements by itself). Also forgets
    /// failures that left their window and, once a minute, history past its retention and
    /// parked bans that ended.
    pub fn expire(&mut self, now: i64) -> Vec<Ban> {
        for state in self.jails.values_mut() {
            state.window.expire(now);
        }
        if now.saturating_sub(self.last_sweep) >= SWEEP_EVERY {
            self.history.sweep(now);
            self.parked.retain(|_, bans| {
                bans.retain(|_, b| b.live_at(now));
                !bans.is_empty()
            });
            self.last_sweep = now;
        }
        let ended = self.bans.expire(now);
        if !ended.is_empty() {
            self.generation += 1;
        }
        ended
    }

    /// A number that changes whenever the settled bans (what `banned` lists) may have changed.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn stats(&self, jail: &JailName) -> Option<JailStats> {
        let s = self.jails.get(jail)?;
        Some(JailStats {
            currently_failed: s.window.len(),
            total_failed: s.total_failed,
            currently_banned: self.settled_count(jail),
            total_banned: s.total_banned,
            ignored: s.ignored,
            evicted: s.window.evicted(),
        })
    }

    /// Sets a jail's lifetime totals (kept across restarts by the daemon's state); those of a
    /// jail not configured now are kept for when it comes back.
    pub fn set_totals(&mut self, jail: &JailName, total_failed: u64, total_banned: u64) {
        match self.jails.get_mut(jail) {
            Some(s) => {
                s.total_failed = total_failed;
                s.total_banned = total_banned;
            }
            None => {
                self.retired_totals
                    .insert(jail.clone(), (total_failed, total_banned));
            }
        }
    }

    /// Every jail's lifetime totals `(jail, failed, banned)`, configured or not.
    pub fn totals(&self) -> impl Iterator<Item = (&JailName, u64, u64)> {
        self.jails
            .iter()
            .map(|(name, s)| (name, s.total_failed, s.total_banned))
            .chain(self.retired_totals.iter().map(|(n, (f, b))| (n, *f, *b)))
    }

    pub fn policy(&self, jail: &JailName) -> Option<&JailPolicy> {
        self.jails.get(jail).map(|s| &s.policy)
    }

    /// Jail names in configuration order.
    pub fn jails(&self) -> &[JailName] {
        &self.order
    }

    /// The bans of the configured jails as decided (pending orders included).
    pub fn bans(&self) -> &ActiveBans {
        &self.bans
    }

    pub fn history(&self) -> &History {
        &self.history
    }

    /// Builds a ban of `target` in `jail` starting at `since`, with its escalated length;
    /// `None` when it would already be over at `now`.
    fn new_ban(
        &mut self,
        jail: &JailName,
        target: BanTarget,
        length: Option<BanTime>,
        origin: Origin,
        since: i64,
        now: i64,
    ) -> Option<Ban> {
        let policy = &self
            .jails
            .get(jail)
            .expect("invariant: caller checked the jail")
            .policy;
        let overall = policy.escalation.overalljails;
        let previous = self
            .history
            .count(&target, i64::MIN, |j| overall || j == jail);
        let expires = match length.unwrap_or(policy.bantime) {
            BanTime::Permanent => None,
            BanTime::For(base) if length.is_some() => {
                Some(since.saturating_add(secs(base.as_secs())))
            }
            BanTime::For(base) => {
                let seconds = policy.escalation.ban_seconds(
                    base.as_secs(),
                    previous,
                    self.jitter.next_unit(),
                );
                Some(since.saturating_add(secs(seconds)))
            }
        };
        if expires.is_some_and(|e| e <= now) {
            return None;
        }
        Some(Ban {
            jail: jail.clone(),
            target,
            since,
            expires,
            count: previous.saturating_add(1),
            origin,
        })
    }

    /// Enters `ban` into the index and returns the orders for the banner. A prefix may replace
    /// the narrower prefixes it holds only when it outlasts them; a prefix held by a wider one
    /// is refused (covered, or outlasting it: one interval set cannot hold both).
    fn place(&mut self, ban: Ban, _now: i64) -> Result<Vec<Order>, Refusal> {
        let jail = ban.jail.clone();
        let mut superseded = Vec::new();
        if let BanTarget::Net(net) = ban.target {
            for other in self.bans.overlapping(&jail, &net) {
                if other.target == ban.target {
                    continue;
                }
                let BanTarget::Net(o) = other.target else {
                    continue;
                };
                let until = Until(other.expires);
                if o.covers(&net) {
                    return Err(if other.outlasts(&ban) {
                        Refusal::Covered {
                            target: ban.target,
                            jail,
                            by: other.target,
                            until,
                        }
                    } else {
                        Refusal::Outlasted {
                            target: ban.target,
                            jail,
                            other: other.target,
                            until,
                        }
                    });
                }
                if other.outlasts(&ban) && other.expires != ban.expires {
                    return Err(Refusal::Outlasted {
                        target: ban.target,
                        jail,
                        other: other.target,
                        until,
                    });
                }
                superseded.push(other);
            }
        }
        let mut orders = Vec::with_capacity(superseded.len() + 1);
        for other in &superseded {
            self.bans.remove(&jail, &other.target);
            orders.push(self.emit(
                Action::Unban,
                other.clone(),
                Some(other.clone()),
                false,
                Vec::new(),
            ));
        }
        let previous = self.bans.insert(ban.clone());
        let action = if previous.is_some() {
            Action::Refresh
        } else {
            Action::Ban
        };
        orders.push(self.emit(action, ban, previous, true, superseded));
        Ok(orders)
    }

    /// Bans `target` in every recidive jail whose threshold its history now reaches.
    fn check_recidive(&mut self, target: BanTarget, now: i64) -> Vec<Order> {
        let recidive: Vec<(JailName, u32, u64)> = self
            .jails
            .values()
            .filter_map(|s| {
                s.policy
                    .recidive
                    .map(|maxbans| (s.policy.name.clone(), maxbans, s.policy.findtime))
            })
            .collect();
        let mut orders = Vec::new();
        for (name, maxbans, findtime) in recidive {
            let policy = &self.jails[&name].policy;
            if self.bans.get(&name, &target).is_some() || self.ignores(policy, &target) {
                continue;
            }
            let after = now.saturating_sub(secs(findtime));
            let jails = &self.jails;
            let bans = self.history.count(&target, after, |j| {
                jails.get(j).is_some_and(|s| s.policy.recidive.is_none())
            });
            if bans >= maxbans
                && let Some(ban) = self.new_ban(&name, target, None, Origin::Recidive, now, now)
                && let Ok(placed) = self.place(ban, now)
            {
                orders.extend(placed);
            }
        }
        orders
    }
}

/// The address a jail's window counts failures under: the address, or the network address of
/// the prefix it folds into.
fn window_key(target: &BanTarget) -> IpAddr {
    match target {
        BanTarget::Addr(a) => *a,
        BanTarget::Net(p) => p.addr(),
    }
}

fn secs(s: u64) -> i64 {
    i64::try_from(s).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
