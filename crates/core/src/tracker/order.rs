//! Orders: what the tracker asks of the banner, and what it is told back.
//!
//! An [`Order`] is one change of one ban, in the kernel and in the state log, with everything the
//! banner needs to apply it and to undo it. The tracker records each order as pending when it
//! emits it and is told its [`Settlement`] later (`Tracker::settle`): the outcome is an input,
//! never a rollback of bookkeeping done too early.

use super::bans::Ban;

/// Identifies an order for its whole life (unique within one tracker).
pub type OrderId = u64;

/// What an order does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// A new element, and its record.
    Ban,
    /// The element is believed present: set its timeout anew, and record the new ban.
    Refresh,
    /// Remove the element and record the unban.
    Unban,
    /// The ban is out of the kernel already (its jail is parked): record its end only.
    Forget,
}

impl Action {
    /// Whether the order changes the kernel.
    pub fn touches_kernel(self) -> bool {
        matches!(self, Action::Ban | Action::Refresh | Action::Unban)
    }

    /// Whether the ban exists once the order is applied.
    pub fn leaves_ban(self) -> bool {
        matches!(self, Action::Ban | Action::Refresh)
    }
}

/// A decision for the banner, in the order it must be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: OrderId,
    pub action: Action,
    pub ban: Ban,
    /// The ban this order replaces (a refresh's earlier version), to undo it in the kernel.
    pub previous: Option<Ban>,
    /// A new decision — counted in the history and the totals, may trigger recidive and hooks —
    /// rather than the restoration of one made before (a parked ban coming back).
    pub fresh: bool,
    /// Narrower prefix bans this one replaces: put back if this one does not take.
    pub superseded: Vec<Ban>,
}

impl Order {
    pub fn ban(&self) -> &Ban {
        &self.ban
    }

    pub fn is(&self, action: Action) -> bool {
        self.action == action
    }
}

/// What became of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// In the kernel (when it touches the kernel) and on disk.
    Applied,
    /// The kernel refused it; nothing changed.
    Refused,
    /// The kernel took it but the state could not be saved: the kernel change was undone.
    NotDurable,
}
