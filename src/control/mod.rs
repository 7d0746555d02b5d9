//! The control socket: how `nftjail status / ban / unban / banned / reload / log / firewall /
//! rule / forward` (and a hosting panel) talk to the running daemon.
//!
//! `protocol` is the one definition of the wire format, shared by both ends; `server` is the
//! daemon's side (it turns requests into [`Call`]s for the core); `client` is the CLI's side.

pub mod client;
pub mod firewall;
pub mod protocol;
pub mod server;

use tokio::sync::oneshot;

use crate::config::BanTime;
use nftjail_core::addr::BanTarget;
use protocol::{Rejected, Reply};

/// A request decoded and checked at the edge, for the daemon's core.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Status {
        jail: Option<String>,
    },
    Ban {
        jail: String,
        targets: Vec<BanTarget>,
        length: Option<BanTime>,
        rejected: Vec<Rejected>,
    },
    /// `target: None` with `all`: everything in `jail`.
    Unban {
        target: Option<BanTarget>,
        jail: Option<String>,
        all: bool,
    },
    /// Bans decided elsewhere, with their jail (as named), times and count.
    Import {
        bans: Vec<(String, nftjail_core::tracker::CarriedBan)>,
        rejected: Vec<Rejected>,
    },
    Banned {
        jail: Option<String>,
    },
    Reload,
    /// The host firewall: status, switches, rules and forwards.
    Firewall(firewall::FirewallCommand),
    Log {
        jail: Option<String>,
        since: Option<i64>,
        after: Option<u64>,
    },
}

/// A command and where its reply goes.
pub struct Call {
    pub command: Command,
    pub reply: oneshot::Sender<Reply>,
}
