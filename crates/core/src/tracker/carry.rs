//! Bans carried over from elsewhere with their own times and count (`nftjail import-fail2ban
//! --db`: fail2ban's active bans).
//!
//! Receives a ban decided by another program: target, when it started, when it ends, how many
//! times the target has been banned. Emits the orders that put it in place, like
//! [`Tracker::decide`] but keeping the given times and count instead of computing them from the
//! jail's bantime and escalation. Never shortens a ban already in place (a longer one of the same
//! target stays as it is), never takes an expired one, and never bans what the jail ignores.

use crate::addr::BanTarget;
use crate::jail::JailName;

use super::{Ban, Order, Origin, Refusal, Tracker, window_key};

/// A ban decided elsewhere. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarriedBan {
    pub target: BanTarget,
    pub since: i64,
    /// `None`: permanent.
    pub expires: Option<i64>,
    /// This is the target's `count`-th ban (at least 1).
    pub count: u32,
}

impl Tracker {
    /// Takes `carried` into `jail` with its own times and count. Empty orders: nothing to do
    /// (it has expired by `now`, or the target is already banned here at least as long).
    ///
    /// The count feeds escalation: the target's history gets the earlier bans it implies (just
    /// before `since`), so its next ban in this jail is its `count + 1`-th, as in fail2ban. They
    /// are written to the state log with the history at its next compaction.
    pub fn carry_over(
        &mut self,
        jail: &JailName,
        carried: CarriedBan,
        now: i64,
    ) -> Result<Vec<Order>, Refusal> {
        let state = self
            .jails
            .get(jail)
            .ok_or_else(|| Refusal::UnknownJail(jail.to_string()))?;
        if self.ignores(&state.policy, &carried.target) {
            return Err(Refusal::Ignored {
                target: carried.target,
                jail: jail.clone(),
            });
        }
        if carried.expires.is_some_and(|end| end <= now) {
            return Ok(Vec::new());
        }
        let ban = Ban {
            jail: jail.clone(),
            target: carried.target,
            since: carried.since.min(now),
            expires: carried.expires,
            count: carried.count.max(1),
            origin: Origin::Imported,
        };
        if let Some(existing) = self.bans.get(jail, &carried.target)
            && existing.outlasts(&ban)
        {
            return Ok(Vec::new());
        }
        let state = self.jails.get_mut(jail).expect("invariant: checked above");
        state.window.forget(window_key(&carried.target));
        let known = self.history.count(&carried.target, i64::MIN, |j| j == jail);
        // The ban itself enters the history when it settles: record the bans before it, a
        // second before it (an entry at the ban's own start is taken for the ban itself when the
        // state is compacted, and would not be written).
        for _ in known.saturating_add(1)..ban.count {
            self.history
                .record(carried.target, jail.clone(), ban.since.saturating_sub(1));
        }
        self.place(ban, now)
    }
}
