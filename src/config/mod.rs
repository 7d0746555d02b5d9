//! Configuration: `nftjail.toml`, `jail.d/*.toml`, `filter.d/*.toml` and `firewall.d/*.toml`,
//! read and validated.
//!
//! Receives paths; emits a validated, immutable [`Config`] or every [`Diagnostic`] found. Works in
//! two layers (ripgrep's low/high args): `raw` mirrors the TOML with `deny_unknown_fields`; `load`
//! and `jail` validate, resolve names and merge `[defaults]` and the drop-ins into jails, and
//! collect *all* errors of all files before refusing. It must never start anything or change the
//! system; it only reads files and resolves `ignoreip` host names (the host's own addresses, for
//! `ignoreself`, are read by the daemon while it runs).

pub mod cluster;
pub mod effective;
mod files;
mod filters;
pub mod firewall;
pub mod http;
mod jail;
mod load;
pub mod ports;
mod raw;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use files::{FileId, Files, Place};
pub use firewall::FirewallConfig;
pub use load::load;
pub use nftjail_backend::{Hook, JailRules, Layout, PortRange, Ports, Protocol, Verdict};
pub use nftjail_core::diag::{Diagnostic, Diagnostics};
pub use nftjail_core::duration::{BanTime, Span};

pub use crate::filter::engine::CompiledFilter;
use nftjail_core::jail::JailName;
use nftjail_core::tracker::JailPolicy;

/// Where the main file is when `--config` is not given.
pub const DEFAULT_CONFIG: &str = "/etc/nftjail/nftjail.toml";
/// Where the control socket is when neither `--socket` nor `daemon.socket` say otherwise.
pub const DEFAULT_SOCKET: &str = "/run/nftjail/nftjail.sock";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/nftjail";

/// A whole, valid configuration.
#[derive(Debug)]
pub struct Config {
    /// The main file.
    pub path: PathBuf,
    pub daemon: DaemonConfig,
    pub nftables: NftablesConfig,
    /// Prometheus endpoint, if any.
    pub metrics: Option<SocketAddr>,
    /// The HTTP API, console and `/metrics`, if on.
    pub http: Option<http::HttpConfig>,
    /// The fleet (`[cluster]`), when on.
    pub cluster: Option<cluster::ClusterConfig>,
    /// Every jail, enabled or not, in the order first defined.
    pub jails: Vec<JailConfig>,
    /// `[firewall]` and the rules and forwards of `firewall.d/`.
    pub firewall: FirewallConfig,
    /// Things worth saying that do not stop the daemon (a host name in ignoreip that does not
    /// resolve, say).
    pub warnings: Vec<Diagnostic>,
    /// Every file read.
    pub files: Vec<PathBuf>,
}

impl Config {
    pub fn enabled(&self) -> impl Iterator<Item = &JailConfig> {
        self.jails.iter().filter(|j| j.enabled)
    }

    /// The nftables layout this configuration asks for: a rule set per enabled jail.
    pub fn layout(&self) -> Layout {
        Layout {
            table: self.nftables.table.clone(),
            hooks: self.nftables.hooks.clone(),
            verdict: self.nftables.verdict,
            jails: self
                .enabled()
                .map(|j| JailRules {
                    name: j.name.clone(),
                    ports: j.ports.clone(),
                    protocols: j.protocols.clone(),
                })
                .collect(),
        }
    }

    /// How long ban history is kept: `dbpurgeage`, but at least the longest recidive window.
    pub fn history_retention(&self) -> u64 {
        self.enabled()
            .filter(|j| matches!(j.kind, JailKind::Recidive))
            .map(|j| j.policy.findtime)
            .fold(self.daemon.dbpurgeage, u64::max)
    }
}

/// `[daemon]`, with defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonConfig {
    pub socket: PathBuf,
    /// Group (name, gid) whose members may send mutating requests besides root.
    pub socket_group: Option<(String, u32)>,
    pub state_dir: PathBuf,
    /// Seconds past bans are remembered.
    pub dbpurgeage: u64,
    pub max_clients: usize,
    pub loglevel: String,
}

/// `[nftables]`, with defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftablesConfig {
    pub table: String,
    pub hooks: Vec<Hook>,
    pub verdict: Verdict,
    pub keep_on_stop: bool,
}

/// What feeds a jail.
#[derive(Debug, Clone)]
pub enum JailKind {
    /// Log lines matched by a filter.
    Log {
        filter: FilterChoice,
        source: Source,
    },
    /// Bans of the other jails (native recidive).
    Recidive,
    /// Nothing: manual bans only.
    Manual,
}

/// The filter a log jail uses, compiled in the jail's mode with its date options.
#[derive(Debug, Clone)]
pub struct FilterChoice {
    pub name: String,
    /// The filter file (`filter.d/NAME.toml`, `filters/NAME.toml (built-in)`, or a fail2ban
    /// `.conf`).
    pub path: PathBuf,
    pub filter: CompiledFilter,
}

/// Where a log jail reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Files (globs allowed), tailed with inotify; `poll_only` disables inotify. A file seen
    /// for the first time (no saved position) is read back from its start, skipping what is
    /// older than `findtime`, unless its pattern is in `tail` (fail2ban's `logpath = PATH tail`):
    /// then it is read from its end.
    Files {
        paths: Vec<String>,
        poll_only: bool,
        tail: Vec<String>,
    },
    /// The systemd journal, filtered by `FIELD=value` matches; `paths` reads given journal
    /// directories or files instead of the system journal.
    Journal {
        matches: Vec<String>,
        paths: Vec<PathBuf>,
    },
}

/// One jail, validated and merged with `[defaults]`.
#[derive(Debug, Clone)]
pub struct JailConfig {
    pub name: JailName,
    pub enabled: bool,
    pub kind: JailKind,
    pub ports: Ports,
    pub protocols: Vec<Protocol>,
    pub policy: JailPolicy,
    /// Commands run after a ban / unban (argv; no shell).
    pub on_ban: Option<Vec<String>>,
    pub on_unban: Option<Vec<String>>,
    /// Every key in force and where it was set, for `nftjail check`.
    pub settings: Vec<Setting>,
}

/// One key of a jail as it is in force, and where it was set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The key as written in a jail table (`escalation.factor` for the sub-table's).
    pub key: &'static str,
    /// As a person writes it: `1w`, `all`, `sshd`.
    pub value: String,
    /// `jail.d/99-local.toml:4`, `[defaults] nftjail.toml:21`, or `built-in`.
    pub origin: String,
}

#[cfg(test)]
mod tests;

/// The keys a configuration table accepts, as the code knows them (`daemon`, `nftables`,
/// `metrics`, `http`, `cluster`, `jail`, `escalation`, `firewall`, `firewall rule`, `firewall
/// forward`): used to check the README's reference against the code.
#[doc(hidden)]
pub fn section_keys(section: &str) -> Vec<String> {
    fn keys<T: serde::de::DeserializeOwned>() -> Vec<String> {
        // deny_unknown_fields names every field it knows when it meets one it does not.
        let err = toml::from_str::<T>("__no_such_key__ = 1")
            .err()
            .map(|e| e.message().to_string())
            .unwrap_or_default();
        err.split('`')
            .skip(3)
            .step_by(2)
            .map(str::to_string)
            .collect()
    }
    match section {
        "daemon" => keys::<raw::DaemonRaw>(),
        "nftables" => keys::<raw::NftablesRaw>(),
        "metrics" => keys::<raw::MetricsRaw>(),
        "http" => keys::<http::HttpRaw>(),
        "cluster" => keys::<cluster::ClusterRaw>(),
        "jail" => keys::<raw::JailRaw>(),
        "escalation" => keys::<raw::EscalationRaw>(),
        "firewall" => keys::<firewall::FirewallRaw>(),
        "firewall rule" => keys::<firewall::RuleRaw>(),
        "firewall forward" => keys::<firewall::ForwardRaw>(),
        _ => Vec::new(),
    }
}
