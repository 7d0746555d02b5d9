//! nftjail-backend: the only door from nftjail to the packet filter.
//!
//! # Layout
//!
//! - `layout`: what is built — the `inet` table, its base chains, four sets per jail, the
//!   rules — and the set names that map elements back to jail and target.
//! - `firewall`: what the host firewall builds beside them — its chains, policies and rules.
//! - [`netlink`]: the kernel implementation, over a netlink socket with nftjail's own nf_tables
//!   encoder (messages, batches, element codecs, transactions, dumps), and the table monitor.
//! - `memory`: the same semantics in memory (injected time), for tests and benches.
//! - `faulty`: a wrapper that fails on demand (refusals mid-batch, panics, a broken socket).
//! - `reconcile`: brings the kernel in line with desired elements, never flushing.
//!
//! Receives a [`Layout`] (table, hooks, verdict, jail rules), element [`Change`]s and the
//! [`FirewallLayout`] from the banner; emits acknowledgements, typed errors, element listings
//! and what a firewall change changed. It never decides who is
//! banned or for how long (the tracker and banner do), never flushes a set, and never reports a
//! change as done before the kernel acknowledged it.
//!
//! Two implementations: [`NetlinkBackend`] (the only code in the crate that speaks netlink) and
//! [`MemoryBackend`] (same semantics, in memory, with injected time, for tests and benches of
//! other stages). [`reconcile`] brings the kernel in line with the state store at start, and
//! again after [`TableMonitor`] reported [`Drift`]: a change someone else made to the table.

mod faulty;
mod firewall;
mod layout;
mod memory;
pub mod netlink;
mod reconcile;

use std::time::Duration;

use nix::errno::Errno;

use nftjail_core::addr::BanTarget;
use nftjail_core::jail::JailName;

pub use faulty::{BackendFaults, FaultyBackend};
pub use firewall::{
    ChainPlan, FirewallChain, FirewallLayout, FirewallReport, KernelRule, KernelVerdict, Match,
    plan as firewall_plan,
};
pub use layout::{
    CHAIN_PRIORITY, DEFAULT_TABLE, Hook, JailRules, Layout, PortRange, Ports, Protocol, SetKind,
    Verdict, normalize_ports, parse_set_name, rule_comment, set_name,
};
pub use memory::MemoryBackend;
pub use netlink::{Drift, NetlinkBackend, TableMonitor};
pub use reconcile::{REFRESH_TOLERANCE, ReconcileReport, reconcile, refill};

/// Writes the layout and the bans into the packet filter.
pub trait Backend: Send {
    /// Creates or updates, idempotently and in ONE transaction: the table, the base chains of
    /// `layout.hooks`, the four sets of every jail, and the rules. Never removes or re-adds an
    /// element of a set that stays. Removes the sets and rules of jails (and chains of hooks)
    /// that are no longer in the layout. The rules are rebuilt atomically (the base chains are
    /// flushed and refilled in the same transaction): packets never see a gap.
    fn apply_layout(&mut self, layout: &Layout) -> Result<(), BackendError>;

    /// Applies element changes in as few transactions as possible. Returns only after the
    /// kernel acknowledged every one. On failure, [`ApplyError::committed`] tells how many
    /// leading changes are in the kernel (none after them is).
    fn apply(&mut self, changes: &[Change]) -> Result<(), ApplyError>;

    /// Brings the firewall's chains (`firewall_*`) in line with `firewall`, in ONE transaction,
    /// or none at all when the kernel already holds exactly that: rules that stay are neither
    /// flushed nor re-added (they keep their counters), and only the rules that differ are
    /// deleted or inserted in place. Creates the table when it is missing; never touches the
    /// jail chains and sets.
    fn apply_firewall(&mut self, firewall: &FirewallLayout)
    -> Result<FirewallReport, BackendError>;

    /// Every element of every jail set of the table, mapped back to jail + target, with its
    /// configured timeout and remaining time. Sets not named like ours are ignored.
    fn list(&mut self) -> Result<Vec<Element>, BackendError>;

    /// Deletes the whole table (when bans must not outlive the daemon, and for the demo).
    fn remove_table(&mut self) -> Result<(), BackendError>;
}

/// One element change in a jail's sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Ban `target` for `timeout` (`None`: permanent). Adding an element that is already there
    /// is not an error.
    Add {
        jail: JailName,
        target: BanTarget,
        timeout: Option<Duration>,
    },
    /// `target` is believed present: reset its timeout (deleted and re-added in one
    /// transaction, so that it works on kernels without element-timeout update). If it is not
    /// there any more, it is added.
    Refresh {
        jail: JailName,
        target: BanTarget,
        timeout: Option<Duration>,
    },
    /// Unban `target`. Removing an element that is not there fails like the kernel does.
    Remove { jail: JailName, target: BanTarget },
}

impl Change {
    pub fn jail(&self) -> &JailName {
        match self {
            Change::Add { jail, .. }
            | Change::Refresh { jail, .. }
            | Change::Remove { jail, .. } => jail,
        }
    }

    pub fn target(&self) -> &BanTarget {
        match self {
            Change::Add { target, .. }
            | Change::Refresh { target, .. }
            | Change::Remove { target, .. } => target,
        }
    }
}

/// An element as the kernel holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub jail: JailName,
    pub target: BanTarget,
    /// The timeout the element was added with (`None`: permanent).
    pub timeout: Option<Duration>,
    /// The time left before the kernel removes it (`None`: permanent).
    pub expires: Option<Duration>,
}

/// Why the backend could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("table inet {table} does not exist")]
    NoSuchTable { table: String },
    #[error("permission denied by the kernel (nftables needs CAP_NET_ADMIN): {operation}")]
    Permission { operation: String },
    #[error("kernel refused element {target} of jail {jail}: {errno}")]
    ElementRefused {
        jail: JailName,
        target: BanTarget,
        errno: Errno,
    },
    #[error(
        "prefix {target} of jail {jail} overlaps a prefix already in its interval set (interval sets refuse overlaps)"
    )]
    Overlap { jail: JailName, target: BanTarget },
    #[error("netlink message of {bytes} bytes is too large for the socket")]
    MessageTooLarge { bytes: usize },
    #[error("kernel refused {operation}: {errno}")]
    Kernel { operation: String, errno: Errno },
    #[error("netlink socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("malformed netlink reply: {0}")]
    Protocol(String),
}

/// A failed [`Backend::apply`]: the first `committed` changes are in the kernel, the others not.
#[derive(Debug, thiserror::Error)]
#[error("{error} (after {committed} committed changes)")]
pub struct ApplyError {
    pub committed: usize,
    #[source]
    pub error: BackendError,
}
