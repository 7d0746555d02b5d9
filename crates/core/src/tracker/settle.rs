//! Pending orders and their settlement.
//!
//! Receives every order the tracker emits (`emit`) and, later, its [`Settlement`]; emits the
//! follow-up orders a settlement calls for (recidive after an applied ban, narrower prefixes put
//! back after a refused wider one). Keeps, per ban with orders in flight, the *settled* value —
//! what the kernel and the state log hold — so that a refused or unsaved order puts exactly that
//! back, and so that [`Tracker::settled`] lists what is really there (the state log's snapshot,
//! the kernel's desired elements, `banned`) while decisions already see what is on its way. It
//! never does I/O and never assumes an order took effect before it is told so.

use std::collections::HashMap;

use super::Tracker;
use super::bans::Ban;
use super::order::{Action, Order, Settlement};
use crate::addr::BanTarget;
use crate::jail::JailName;

/// The bookkeeping of one ban (jail, target) with orders in flight.
#[derive(Debug)]
pub(super) struct InFlight {
    /// What the kernel and the state hold for this ban, as far as settlements told.
    settled: Option<Ban>,
    /// Orders emitted and not settled yet.
    orders: u32,
    /// Whether the latest settlement applied its order.
    last_applied: bool,
}

impl Tracker {
    /// Records `ban`'s order as pending and returns it; `before` is the value the ban had
    /// before the caller changed it (what is settled, when nothing else is in flight).
    pub(super) fn emit(
        &mut self,
        action: Action,
        ban: Ban,
        before: Option<Ban>,
        fresh: bool,
        superseded: Vec<Ban>,
    ) -> Order {
        let entry = self
            .pending
            .entry((ban.jail.clone(), ban.target))
            .or_insert(InFlight {
                settled: before.clone(),
                orders: 0,
                last_applied: true,
            });
        entry.orders += 1;
        let id = self.next_order;
        self.next_order += 1;
        Order {
            id,
            action,
            previous: if action == Action::Refresh {
                before
            } else {
                None
            },
            ban,
            fresh,
            superseded,
        }
    }

    /// Takes the outcome of `order` and returns the orders it calls for.
    ///
    /// Applied: the settled value follows the order; a fresh ban enters the history and the
    /// totals and may trigger recidive. Refused or not durable: once no other order of the same
    /// ban is in flight, the ban is put back to its settled value, and narrower prefixes the
    /// order would have replaced come back.
    pub fn settle(&mut self, order: &Order, outcome: Settlement, now: i64) -> Vec<Order> {
        let key = (order.ban.jail.clone(), order.ban.target);
        self.generation += 1;
        let mut follow = Vec::new();
        let Some(entry) = self.pending.get_mut(&key) else {
            return follow;
        };
        entry.orders = entry.orders.saturating_sub(1);
        entry.last_applied = outcome == Settlement::Applied;
        if entry.last_applied {
            entry.settled = order.action.leaves_ban().then(|| order.ban.clone());
        }
        if entry.orders == 0 {
            let done = self.pending.remove(&key).expect("invariant: just seen");
            if !done.last_applied {
                self.put_back(&key, done.settled, now);
            }
        }
        if outcome == Settlement::Applied {
            if order.fresh && order.action.leaves_ban() {
                self.count_ban(&order.ban);
                // A peer's ban counts where it was decided (its node's recidive), not here.
                let from_log_jail = !order.ban.origin.is_fleet()
                    && self
                        .jails
                        .get(&order.ban.jail)
                        .is_some_and(|s| s.policy.recidive.is_none());
                if from_log_jail {
                    follow.extend(self.check_recidive(order.ban.target, now));
                }
            }
        } else {
            for narrower in &order.superseded {
                self.restore_superseded(narrower, now, &mut follow);
            }
            // A restoration that did not take: the state log must not keep a ban the kernel
            // does not hold (once nothing else of this ban is in flight).
            let gone = !self.pending.contains_key(&key) && self.bans.get(&key.0, &key.1).is_none();
            if order.action == Action::Ban
                && !order.fresh
                && gone
                && self.jails.contains_key(&key.0)
            {
                follow.push(self.emit(Action::Forget, order.ban.clone(), None, false, Vec::new()));
            }
        }
        follow
    }

    /// A ban that is really in place: the history and the jail's total count it.
    fn count_ban(&mut self, ban: &Ban) {
        self.history.record(ban.target, ban.jail.clone(), ban.since);
        if let Some(state) = self.jails.get_mut(&ban.jail) {
            state.total_banned += 1;
        }
    }

    /// Sets the ban of `key` back to `settled` (what the kernel and the state hold).
    fn put_back(&mut self, key: &(JailName, BanTarget), settled: Option<Ban>, now: i64) {
        let (jail, target) = key;
        let settled = settled.filter(|b| b.live_at(now));
        if !self.jails.contains_key(jail) {
            let parked = self.parked.entry(jail.clone()).or_default();
            match settled {
                Some(ban) => parked.insert(*target, ban),
                None => parked.remove(target),
            };
            return;
        }
        match settled {
            Some(ban) => {
                self.bans.insert(ban);
            }
            None => {
                self.bans.remove(jail, target);
            }
        }
    }

    /// Brings back a narrower prefix that a refused wider ban was to replace, if it still runs
    /// and nothing holds its place now.
    fn restore_superseded(&mut self, narrower: &Ban, now: i64, follow: &mut Vec<Order>) {
        if !narrower.live_at(now) || !self.jails.contains_key(&narrower.jail) {
            return;
        }
        if self.bans.get(&narrower.jail, &narrower.target).is_some() {
            return;
        }
        if let BanTarget::Net(net) = narrower.target
            && !self.bans.overlapping(&narrower.jail, &net).is_empty()
        {
            return;
        }
        self.bans.insert(narrower.clone());
        follow.push(self.emit(Action::Ban, narrower.clone(), None, false, Vec::new()));
    }

    /// Whether any order is in flight.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The bans the kernel and the state hold, as far as settlements told: the active bans of
    /// configured jails, with in-flight orders replaced by what they will change.
    pub fn settled(&self) -> impl Iterator<Item = &Ban> {
        let unchanged = self
            .bans
            .iter()
            .filter(|b| !self.pending.contains_key(&(b.jail.clone(), b.target)));
        let in_flight = self
            .pending
            .iter()
            .filter(|((jail, _), _)| self.jails.contains_key(jail))
            .filter_map(|(_, p)| p.settled.as_ref());
        unchanged.chain(in_flight)
    }

    /// Bans of jails that are not configured (kept in the state, out of the kernel), settled.
    pub fn parked(&self) -> impl Iterator<Item = &Ban> {
        let unchanged = self
            .parked
            .values()
            .flat_map(HashMap::values)
            .filter(|b| !self.pending.contains_key(&(b.jail.clone(), b.target)));
        let in_flight = self
            .pending
            .iter()
            .filter(|((jail, _), _)| !self.jails.contains_key(jail))
            .filter_map(|(_, p)| p.settled.as_ref());
        unchanged.chain(in_flight)
    }

    /// How many bans are parked in `jail`.
    pub fn parked_in(&self, jail: &JailName) -> usize {
        self.parked.get(jail).map_or(0, HashMap::len)
    }

    /// How many bans of `jail` are settled in the kernel (pending orders not counted yet).
    pub fn settled_count(&self, jail: &JailName) -> usize {
        let mut count = self.bans.count_in(jail);
        for ((j, target), p) in &self.pending {
            if j != jail {
                continue;
            }
            match (self.bans.get(j, target).is_some(), p.settled.is_some()) {
                (true, false) => count -= 1,
                (false, true) => count += 1,
                _ => {}
            }
        }
        count
    }
}
