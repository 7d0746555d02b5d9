//! The tracker: turns failures into ban decisions.
//!
//! Receives failures (`jail`, address, log time), manual ban and unban requests, and the clock;
//! emits [`Order`]s (ban, refresh, unban) for the banner. It owns every piece of decision state —
//! per-jail sliding windows, ignore lists, active bans, ban history, escalation and recidive —
//! and is the only owner of it (one task, no locks). It is synchronous and deterministic: `now`
//! is always an argument, the randomness of `rndtime` comes from a seeded generator. It must
//! never do I/O, never wait, and never emit overlapping prefixes in one jail (interval sets in the
//! kernel refuse them): nested prefix bans are merged into the widest one, which keeps the
//! latest expiry of all.

pub mod bans;
pub mod escalation;
pub mod ignore;
pub mod window;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use serde::Serialize;

use crate::addr::BanTarget;
use crate::config::BanTime;
use crate::jail::JailName;

pub use bans::{ActiveBans, Ban, History, HistoryEntry, Origin};
pub use escalation::{Escalation, Jitter};
pub use ignore::IgnoreList;
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

/// A decision for the banner, in the order it must be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Order {
    /// A new element.
    Ban(Ban),
    /// The element is believed present; set its timeout anew.
    Refresh(Ban),
    /// Remove the element of this ban.
    Unban(Ban),
}

impl Order {
    pub fn ban(&self) -> &Ban {
        match self {
            Order::Ban(b) | Order::Refresh(b) | Order::Unban(b) => b,
        }
    }
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

/// How often the ban history is swept of entries past its retention.
const HISTORY_SWEEP_EVERY: i64 = 60;

/// All decision state of the daemon.
pub struct Tracker {
    jails: HashMap<JailName, JailState>,
    /// Jail names in configuration order, for listings.
    order: Vec<JailName>,
    bans: ActiveBans,
    history: History,
    jitter: Jitter,
    last_history_sweep: i64,
    /// The host's own addresses, for jails with `ignoreself`.
    self_addresses: HashSet<IpAddr>,
}

impl Tracker {
    /// A tracker for `policies`; history is kept `history_retention` seconds (fail2ban's
    /// `dbpurgeage`, at least the longest recidive findtime).
    pub fn new(policies: Vec<JailPolicy>, history_retention: u64, seed: u64) -> Tracker {
        let mut tracker = Tracker {
            jails: HashMap::new(),
            order: Vec::new(),
            bans: ActiveBans::default(),
            history: History::new(history_retention),
            jitter: Jitter::new(seed),
            last_history_sweep: i64::MIN,
            self_addresses: HashSet::new(),
        };
        tracker.reconfigure(policies, history_retention);
        tracker
    }

    /// Applies a new configuration. Jails that keep their window settings keep their failures
    /// and counters; every jail keeps its bans. Returns the bans of jails that are gone.
    pub fn reconfigure(&mut self, policies: Vec<JailPolicy>, history_retention: u64) -> Vec<Ban> {
        let mut old = std::mem::take(&mut self.jails);
        self.order = policies.iter().map(|p| p.name.clone()).collect();
        for policy in policies {
            let state = match old.remove(&policy.name) {
                Some(mut s) => {
                    let same_window = s.policy.findtime == policy.findtime
                        && s.policy.maxretry == policy.maxretry
                        && s.policy.maxtracked == policy.maxtracked
                        && s.policy.fold_v6 == policy.fold_v6;
                    if !same_window {
                        s.window =
                            FailureWindow::new(policy.findtime, policy.maxretry, policy.maxtracked);
                    }
                    s.policy = policy;
                    s
                }
                None => JailState::new(policy),
            };
            self.jails.insert(state.policy.name.clone(), state);
        }
        self.history.set_retention(history_retention);
        old.keys()
            .flat_map(|gone| self.bans.remove_jail(gone))
            .collect()
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

    /// Loads persisted bans and history. Bans of unknown jails or already over are returned.
    pub fn restore(
        &mut self,
        bans: impl IntoIterator<Item = Ban>,
        history: impl IntoIterator<Item = HistoryEntry>,
        now: i64,
    ) -> Vec<Ban> {
        for entry in history {
            self.history.record(entry.target, entry.jail, entry.at);
        }
        let mut dropped = Vec::new();
        for ban in bans {
            if self.jails.contains_key(&ban.jail) && ban.live_at(now) {
                self.bans.insert(ban);
            } else {
                dropped.push(ban);
            }
        }
        dropped
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
        if self.bans.covering(jail, host).is_some() {
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
        match self.new_ban(jail, target, None, Origin::Failures, at, now) {
            Some(ban) => Counted::Banned(self.place(ban, now)),
            None => Counted::TooOld,
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
            .new_ban(jail, target, length, Origin::Manual, now, now)
            .expect("invariant: a ban starting now is live");
        Ok(self.place(ban, now))
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
                orders.push(Order::Unban(ban));
            }
        }
        orders
    }

    /// Unbans everything in `jail`.
    pub fn unban_jail(&mut self, jail: &JailName) -> Vec<Order> {
        let targets: Vec<BanTarget> = self.bans.in_jail(jail).map(|b| b.target).collect();
        targets
            .iter()
            .flat_map(|t| self.bans.remove(jail, t))
            .map(Order::Unban)
            .collect()
    }

    /// Bans that ended by `now` (the kernel drops their elements by itself). Also forgets
    /// failures that left their window and, once a minute, history past its retention.
    pub fn expire(&mut self, now: i64) -> Vec<Ban> {
        for state in self.jails.values_mut() {
            state.window.expire(now);
        }
        if now.saturating_sub(self.last_history_sweep) >= HISTORY_SWEEP_EVERY {
            self.history.sweep(now);
            self.last_history_sweep = now;
        }
        self.bans.expire(now)
    }

    /// Undoes the bookkeeping of an order the kernel did not take.
    pub fn rollback(&mut self, order: &Order) {
        match order {
            Order::Ban(ban) => {
                if self.bans.get(&ban.jail, &ban.target) == Some(ban) {
                    self.bans.remove(&ban.jail, &ban.target);
                }
            }
            Order::Refresh(_) => {}
            Order::Unban(ban) => {
                if self.bans.get(&ban.jail, &ban.target).is_none() {
                    self.bans.insert(ban.clone());
                }
            }
        }
    }

    pub fn stats(&self, jail: &JailName) -> Option<JailStats> {
        let s = self.jails.get(jail)?;
        Some(JailStats {
            currently_failed: s.window.len(),
            total_failed: s.total_failed,
            currently_banned: self.bans.count_in(jail),
            total_banned: s.total_banned,
            ignored: s.ignored,
            evicted: s.window.evicted(),
        })
    }

    pub fn policy(&self, jail: &JailName) -> Option<&JailPolicy> {
        self.jails.get(jail).map(|s| &s.policy)
    }

    /// Jail names in configuration order.
    pub fn jails(&self) -> &[JailName] {
        &self.order
    }

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

    /// Enters `ban` into the index (merging nested prefixes), records it in the history,
    /// checks recidive, and returns the orders for the banner.
    fn place(&mut self, ban: Ban, now: i64) -> Vec<Order> {
        let mut orders = Vec::new();
        let jail = ban.jail.clone();
        let placed = match ban.target {
            BanTarget::Net(net) => {
                let overlapping = self.bans.overlapping(&jail, &net);
                let exact = overlapping.iter().any(|b| b.target == ban.target);
                if overlapping.is_empty() || (exact && overlapping.len() == 1) {
                    ban
                } else {
                    let mut merged = ban;
                    for other in &overlapping {
                        if let (BanTarget::Net(o), BanTarget::Net(m)) =
                            (other.target, merged.target)
                            && o.covers(&m)
                        {
                            merged.target = other.target;
                        }
                        if other.outlasts(&merged) {
                            merged.expires = other.expires;
                        }
                        merged.count = merged.count.max(other.count);
                    }
                    for other in overlapping
                        .into_iter()
                        .filter(|o| o.target != merged.target)
                    {
                        self.bans.remove(&jail, &other.target);
                        orders.push(Order::Unban(other));
                    }
                    merged
                }
            }
            BanTarget::Addr(_) => ban,
        };
        let previous = self.bans.insert(placed.clone());
        self.history
            .record(placed.target, jail.clone(), placed.since);
        if let Some(state) = self.jails.get_mut(&jail) {
            state.total_banned += 1;
        }
        let recidive_source = self
            .jails
            .get(&jail)
            .is_some_and(|s| s.policy.recidive.is_none());
        orders.push(if previous.is_some() {
            Order::Refresh(placed.clone())
        } else {
            Order::Ban(placed.clone())
        });
        if recidive_source && placed.origin != Origin::Adopted {
            orders.extend(self.check_recidive(placed.target, now));
        }
        orders
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
            {
                orders.extend(self.place(ban, now));
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
