//! The HTTP API against a running daemon in its own namespace: every endpoint (`api`), every
//! refusal (token, size, address, jail) with its status and no change, the caps and the listeners
//! (`guards`), `/metrics` (`metrics`), and the firewall's endpoints, refusals and lock-out check
//! (`firewall`).

mod api;
mod firewall;
mod guards;
mod metrics;

use crate::daemon::{Daemon, SSHD_JAIL};
use crate::web::{self, http_section};

const MANUAL: &str = "\n[manual]\nenabled = true\nport = [\"all\"]\nbantime = \"1d\"\n";

/// A daemon with the sshd and manual jails and `[http]` (plus `http_extra`), its API up.
fn daemon(tag: &str, http_extra: &str) -> Daemon {
    let d = Daemon::start(tag, &http_section(http_extra), &jails());
    web::wait_for_api(&d);
    d
}

fn jails() -> String {
    format!("{SSHD_JAIL}{MANUAL}")
}

/// The kernel's view and the daemon's: every set's members, and `banned --json`'s bans.
fn everything(d: &Daemon) -> (Vec<Vec<String>>, serde_json::Value) {
    let sets = [
        "sshd_v4",
        "sshd_v6",
        "sshd_net4",
        "manual_v4",
        "manual_v6",
        "manual_net4",
    ]
    .iter()
    .map(|s| d.members(s))
    .collect();
    let banned: serde_json::Value = serde_json::from_str(&d.ok(&["banned", "--json"])).unwrap();
    (sets, banned["bans"].clone())
}
