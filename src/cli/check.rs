//! `nftjail check`: validates the whole configuration without starting anything.
//!
//! Loads the main file, every `jail.d/*.toml` and `filter.d/*.toml`, compiles every regex and
//! resolves every reference; prints every problem as `PATH:LINE:COL: message` (stderr). When
//! all is well it prints (stdout) what each enabled jail will do, then every key of it with the
//! value in force and where that value was set — `jail.d/99-local.toml:4`, `[defaults]
//! nftjail.toml:21` or `built-in` — and one line per disabled jail. Exit 0 when clean, 78
//! otherwise.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Args;

use super::{CliError, output};
use crate::config::{self, DEFAULT_CONFIG, JailConfig, JailKind, Source};
use crate::errln;

/// Arguments of `nftjail check`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    nftjail check\n  \
    nftjail check --config /etc/nftjail/nftjail.toml\n  \
    nftjail check | grep -A30 '^dovecot'     # one jail: every key, its value and its origin\n\n\
    Exit status: 0 when every file is valid, 78 otherwise (errors as PATH:LINE:COL: message).")]
pub struct CheckArgs {
    /// The main configuration file; jail.d/ and filter.d/ are read beside it [default:
    /// /etc/nftjail/nftjail.toml]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

pub fn run(args: &CheckArgs) -> Result<(), CliError> {
    let path = args
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    let config = config::load(&path).map_err(CliError::Config)?;
    for warning in &config.warnings {
        errln!("{warning} (warning)");
    }
    output::print(&report(&path, &config))
}

/// What `check` prints for a valid configuration.
pub fn report(path: &std::path::Path, config: &config::Config) -> String {
    let files = config.files.len();
    let mut text = format!(
        "{}: OK, {files} file{} read\n",
        path.display(),
        if files == 1 { "" } else { "s" }
    );
    for jail in config.enabled() {
        let _ = writeln!(text, "\n{}: enabled — {}", jail.name, summary(jail));
        let width = jail
            .settings
            .iter()
            .map(|s| s.value.chars().count())
            .max()
            .unwrap_or(0)
            .min(40);
        for s in &jail.settings {
            let _ = writeln!(text, "  {:<24} {:<width$}  {}", s.key, s.value, s.origin);
        }
    }
    let disabled: Vec<&str> = config
        .jails
        .iter()
        .filter(|j| !j.enabled)
        .map(|j| j.name.as_str())
        .collect();
    if !disabled.is_empty() {
        let _ = writeln!(
            text,
            "\ndisabled: {} (enable one with `[NAME] enabled = true` in jail.d/99-local.toml)",
            disabled.join(", ")
        );
    }
    text
}

/// One line on what a jail does.
fn summary(jail: &JailConfig) -> String {
    let ports = config::effective::ports(&jail.ports);
    let on = if ports == "all" {
        "on all ports".to_string()
    } else if ports.contains([',', ':']) {
        format!("on ports {ports}")
    } else {
        format!("on port {ports}")
    };
    match &jail.kind {
        JailKind::Log { filter, source } => {
            let from = match source {
                Source::Files { paths, .. } => paths.join(", "),
                Source::Journal { matches, .. } => format!("the journal ({})", matches.join(" ")),
            };
            // A fail2ban filter without a `mode` option has none to show.
            let filter = match filter.filter.mode().as_str() {
                "" => format!("filter {}", filter.name),
                mode => format!("filter {}, mode {mode}", filter.name),
            };
            format!(
                "bans {on} after {} failures within {} ({filter}) read from {from}",
                jail.policy.maxretry,
                nftjail_core::duration::format_seconds(jail.policy.findtime),
            )
        }
        JailKind::Recidive => format!(
            "bans {on} an address the other jails banned {} times within {}",
            jail.policy.recidive.unwrap_or(0),
            nftjail_core::duration::format_seconds(jail.policy.findtime)
        ),
        JailKind::Manual => format!("bans {on}, by hand only (nftjail ban {})", jail.name),
    }
}
