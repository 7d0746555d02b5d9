//! Configuration changes and start-up: which jails exist, and what happens to the bans of jails
//! that come and go.
//!
//! Receives the jail policies of a (new) configuration, the bans and history replayed from the
//! state, and bans found in the kernel without a record; emits the orders that put back the bans
//! of a jail that returns. A jail that is disabled or removed has its bans *parked*: kept (they
//! stay in the state log and keep running down), out of the kernel (its sets go with the layout),
//! and restored with their remaining time when the jail comes back. Nothing here deletes a ban
//! that is still running.

use super::bans::{Ban, HistoryEntry};
use super::order::{Action, Order};
use super::window::FailureWindow;
use super::{JailPolicy, JailState, Tracker};
use crate::jail::JailName;

/// What a new configuration did to the bans.
#[derive(Debug, Default)]
pub struct Reconfigured {
    /// Jails whose bans were parked (they were disabled or removed), with how many.
    pub parked: Vec<(JailName, usize)>,
    /// Orders putting back the parked bans of jails that came back.
    pub restored: Vec<Order>,
}

impl Tracker {
    /// Applies a new configuration. Jails that keep their window settings keep their failures;
    /// every jail keeps its lifetime counters (a jail that leaves and comes back too); the bans of jails that are gone are parked, and those of jails that come
    /// back are restored (if still running at `now`).
    pub fn reconfigure(
        &mut self,
        policies: Vec<JailPolicy>,
        history_retention: u64,
        now: i64,
    ) -> Reconfigured {
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
                None => {
                    let mut state = JailState::new(policy);
                    if let Some((failed, banned)) = self.retired_totals.remove(&state.policy.name) {
                        state.total_failed = failed;
                        state.total_banned = banned;
                    }
                    state
                }
            };
            self.jails.insert(state.policy.name.clone(), state);
        }
        self.history.set_retention(history_retention);
        self.generation += 1;

        let mut done = Reconfigured::default();
        for (gone, state) in &old {
            self.retired_totals
                .insert(gone.clone(), (state.total_failed, state.total_banned));
        }
        for gone in old.keys() {
            let bans = self.bans.remove_jail(gone);
            if bans.is_empty() {
                continue;
            }
            done.parked.push((gone.clone(), bans.len()));
            let parked = self.parked.entry(gone.clone()).or_default();
            parked.extend(bans.into_iter().map(|b| (b.target, b)));
        }
        let back: Vec<JailName> = self
            .parked
            .keys()
            .filter(|j| self.jails.contains_key(*j))
            .cloned()
            .collect();
        for jail in back {
            let bans = self.parked.remove(&jail).unwrap_or_default();
            for ban in bans.into_values().filter(|b| b.live_at(now)) {
                self.bans.insert(ban.clone());
                done.restored
                    .push(self.emit(Action::Ban, ban, None, false, Vec::new()));
            }
        }
        done
    }

    /// Loads the bans and history replayed from the state at start: bans of configured jails
    /// become active (the kernel is reconciled with them separately), those of other jails are
    /// parked. Returns how many had already ended.
    pub fn restore(
        &mut self,
        bans: impl IntoIterator<Item = Ban>,
        history: impl IntoIterator<Item = HistoryEntry>,
        now: i64,
    ) -> usize {
        for entry in history {
            self.history.record(entry.target, entry.jail, entry.at);
        }
        self.generation += 1;
        let mut ended = 0;
        for ban in bans {
            if !ban.live_at(now) {
                ended += 1;
            } else if self.jails.contains_key(&ban.jail) {
                self.bans.insert(ban);
            } else {
                self.parked
                    .entry(ban.jail.clone())
                    .or_default()
                    .insert(ban.target, ban);
            }
        }
        ended
    }

    /// Takes in bans found in the kernel without a record (kept, never flushed): they are in
    /// place already, and the caller makes them durable with the next snapshot.
    pub fn adopt(&mut self, bans: impl IntoIterator<Item = Ban>) {
        self.generation += 1;
        for ban in bans {
            if self.jails.contains_key(&ban.jail) && self.bans.get(&ban.jail, &ban.target).is_none()
            {
                self.bans.insert(ban);
            }
        }
    }
}
