//! `nftjail check`: validates the whole configuration without starting anything.
//!
//! Loads the main file, every `jail.d/*.toml` and `filter.d/*.toml`, compiles every regex and
//! resolves every reference; prints every problem as `PATH:LINE:COL: message` (stderr) and a
//! summary of the jails (stdout). Exit 0 when clean, 78 otherwise.

use std::path::PathBuf;

use clap::Args;

use super::CliError;
use crate::config::{self, BanTime, DEFAULT_CONFIG, JailKind, Ports, Source};
use crate::{errln, outln};

/// Arguments of `nftjail check`.
#[derive(Debug, Args)]
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
    outln!("{}: OK ({} files)", path.display(), config.files.len())?;
    for jail in &config.jails {
        let what = match &jail.kind {
            JailKind::Log { filter, source } => {
                let from = match source {
                    Source::Files { paths, .. } => paths.join(", "),
                    Source::Journal { matches, .. } => format!("journal {}", matches.join(" ")),
                };
                // A fail2ban filter without a `mode` option has none to show.
                match filter.filter.mode() {
                    mode if mode.is_empty() => format!("filter {} on {from}", filter.name),
                    mode => format!("filter {} (mode {mode}) on {from}", filter.name),
                }
            }
            JailKind::Recidive => format!(
                "recidive: {} bans within the findtime",
                jail.policy.recidive.unwrap_or(0)
            ),
            JailKind::Manual => "manual bans only".to_string(),
        };
        let ports = match &jail.ports {
            Ports::All => "all ports".to_string(),
            Ports::List(ranges) => ranges
                .iter()
                .map(|r| {
                    if r.first == r.last {
                        r.first.to_string()
                    } else {
                        format!("{}-{}", r.first, r.last)
                    }
                })
                .collect::<Vec<_>>()
                .join(","),
        };
        let bantime = match jail.policy.bantime {
            BanTime::Permanent => "permanent".to_string(),
            b => b.to_string(),
        };
        outln!(
            "  {:<14} {:<8} {what}; ports {ports}; maxretry {} findtime {}s bantime {bantime}",
            jail.name.as_str(),
            if jail.enabled { "enabled" } else { "disabled" },
            jail.policy.maxretry,
            jail.policy.findtime
        )?;
    }
    Ok(())
}
