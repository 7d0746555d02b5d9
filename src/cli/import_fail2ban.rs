//! `nftjail import-fail2ban`: takes over a fail2ban installation — its configuration and
//! filters (`--config-dir DIR --out DIR`), and its active bans (`--db FILE`), in one command or
//! two.
//!
//! Receives fail2ban's configuration directory and an output directory, and/or fail2ban's
//! database and the way to the running daemon (`--config`/`--socket`). Emits the nftjail
//! configuration files (not with `--dry-run`), a report on stdout (each jail converted, and
//! everything not carried over with the reason), and the active bans sent to the daemon in one
//! streamed request. Never writes into fail2ban's files, never overwrites a file in the output
//! directory, never guesses a jail for a ban.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;

use super::CliError;
use crate::control::client::Client;
use crate::control::protocol::{Reply, Request};
use crate::fail2ban::import::{config, database};
use crate::fail2ban::{FAIL2BAN_DIR, unix_now};
use crate::{errln, outln};

/// Arguments of `nftjail import-fail2ban`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    # 1. the configuration and filters: read what fail2ban reads, write an nftjail configuration\n  \
    nftjail import-fail2ban --config-dir /etc/fail2ban --out /etc/nftjail --dry-run\n  \
    nftjail import-fail2ban --config-dir /etc/fail2ban --out /etc/nftjail\n  \
    nftjail check --config /etc/nftjail/nftjail.toml\n  \
    # 2. start nftjail, then move fail2ban's active bans over (remaining time and ban count kept)\n  \
    systemctl stop fail2ban && systemctl start nftjail\n  \
    nftjail import-fail2ban --db /var/lib/fail2ban/fail2ban.sqlite3\n  \
    nftjail import-fail2ban --db fail2ban.sqlite3 --socket /run/nftjail/nftjail.sock")]
pub struct ImportArgs {
    /// fail2ban's configuration directory (jail.conf, jail.local, jail.d/, filter.d/, …).
    #[arg(long, value_name = "DIR", requires = "out")]
    pub config_dir: Option<PathBuf>,

    /// Where to write the nftjail configuration (nftjail.toml, jail.d/, filter.d/); created if
    /// missing. A file already there (an installed nftjail.toml, say) is never overwritten.
    #[arg(long, value_name = "DIR", requires = "config_dir")]
    pub out: Option<PathBuf>,

    /// fail2ban's database: its active bans go into the running daemon's jails of the same name.
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,

    /// Print what would be written or imported; write nothing, send nothing.
    #[arg(long)]
    pub dry_run: bool,

    #[command(flatten)]
    pub client: super::target::ClientArgs,
}

pub fn run(args: &ImportArgs) -> Result<(), CliError> {
    if args.config_dir.is_none() && args.db.is_none() {
        return Err(CliError::Usage(format!(
            "give --config-dir {FAIL2BAN_DIR} --out DIR (configuration and filters), --db FILE (active bans), or both"
        )));
    }
    let mut failed = false;
    if let (Some(dir), Some(out)) = (&args.config_dir, &args.out) {
        failed |= import_config(dir, out, args.dry_run)?;
    }
    if let Some(db) = &args.db {
        failed |= import_bans(db, args)?;
    }
    if failed {
        return Err(CliError::Refused(
            "some of it could not be imported (see above)".into(),
        ));
    }
    Ok(())
}

/// Converts the configuration; `true` when a jail could not be converted.
fn import_config(dir: &Path, out: &Path, dry_run: bool) -> Result<bool, CliError> {
    if !dir.join("jail.conf").is_file() {
        return Err(CliError::Usage(format!(
            "{}: no jail.conf there: not a fail2ban configuration directory",
            dir.display()
        )));
    }
    let conversion = config::convert(dir, unix_now());
    let mut kept = Vec::new();
    for (relative, text) in &conversion.files {
        let path = out.join(relative);
        if let Ok(existing) = std::fs::read(&path) {
            // Never overwritten: an existing main file keeps the host's settings, an identical
            // filter file is already there.
            if existing != text.as_bytes() {
                kept.push(format!(
                    "{} exists and is kept as it is (not overwritten)",
                    path.display()
                ));
            }
            continue;
        }
        if dry_run {
            outln!("--- {} ({} bytes)", path.display(), text.len())?;
            if relative.extension().is_some_and(|x| x == "toml") {
                outln!("{}", text.trim_end())?;
            }
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| CliError::Io {
                what: format!("cannot create {}", parent.display()),
                source,
            })?;
        }
        std::fs::write(&path, text).map_err(|source| CliError::Io {
            what: format!("cannot write {}", path.display()),
            source,
        })?;
    }
    for note in &kept {
        outln!("note: {note}")?;
    }
    for jail in &conversion.report.converted {
        for other in other_definitions(out, jail) {
            outln!(
                "note: {} also defines [{jail}]: its keys that jail.d/{jail}.toml does not set still apply (files are merged key by key, in name order)",
                other.display()
            )?;
        }
    }
    outln!("{}", conversion.report.to_string().trim_end())?;
    if dry_run {
        outln!("dry run: nothing written")?;
    } else {
        outln!(
            "wrote {} files under {}; check them with: nftjail check --config {}",
            conversion.files.len(),
            out.display(),
            out.join("nftjail.toml").display()
        )?;
    }
    Ok(conversion.report.has_errors())
}

/// Files of `out/jail.d` other than `NAME.toml` that define the jail `name`.
fn other_definitions(out: &Path, name: &str) -> Vec<PathBuf> {
    let header = format!("[{name}]");
    let mut found: Vec<PathBuf> = std::fs::read_dir(out.join("jail.d"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|path| {
                    path.file_name()
                        .is_some_and(|n| *n != *format!("{name}.toml"))
                })
                .filter(|path| path.extension().is_some_and(|x| x == "toml"))
                .filter(|path| {
                    std::fs::read_to_string(path)
                        .is_ok_and(|text| text.lines().any(|line| line.trim() == header))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// Sends the database's active bans to the daemon; `true` when some were rejected.
fn import_bans(db: &Path, args: &ImportArgs) -> Result<bool, CliError> {
    let now = unix_now();
    let bans = database::active_bans(db, now).map_err(|e| CliError::Refused(e.to_string()))?;
    let mut per_jail: BTreeMap<&str, usize> = BTreeMap::new();
    for ban in &bans {
        *per_jail.entry(ban.jail.as_str()).or_default() += 1;
    }
    let summary: Vec<String> = per_jail.iter().map(|(j, n)| format!("{j} {n}")).collect();
    outln!(
        "{}: {} active bans ({})",
        db.display(),
        bans.len(),
        summary.join(", ")
    )?;
    if args.dry_run {
        for ban in &bans {
            let expires = ban
                .expires
                .map_or_else(|| "permanent".to_string(), |e| format!("{}s left", e - now));
            outln!(
                "  {} {} ({expires}, ban count {})",
                ban.jail,
                ban.target,
                ban.count
            )?;
        }
        outln!("dry run: nothing sent")?;
        return Ok(false);
    }
    if bans.is_empty() {
        return Ok(false);
    }
    let mut lines = Vec::with_capacity(bans.len() * 96);
    for ban in &bans {
        serde_json::to_writer(&mut lines, ban).expect("invariant: bans serialize");
        lines.push(b'\n');
    }
    let socket = args.client.socket()?;
    let request = Request::Import {
        bans: Vec::new(),
        stream: true,
    };
    let reply = Client::connect(&socket)
        .map_err(CliError::Connect)?
        .ban_stream(&request, &mut &lines[..])
        .map_err(CliError::Connect)?;
    report_bans(&reply)
}

/// Prints the daemon's answer: bans taken, kept, and rejected grouped by jail and reason.
fn report_bans(reply: &Reply) -> Result<bool, CliError> {
    if !reply.ok && reply.rejected.is_empty() {
        return Err(CliError::Refused(
            reply.error.clone().unwrap_or_else(|| "refused".into()),
        ));
    }
    outln!(
        "imported {} bans ({} refreshed to last longer; {} already in place at least as long, or over)",
        reply.banned.unwrap_or(0),
        reply.refreshed.unwrap_or(0),
        reply.kept.unwrap_or(0)
    )?;
    let mut grouped: BTreeMap<(String, String), usize> = BTreeMap::new();
    for rejected in &reply.rejected {
        let jail = rejected
            .text
            .split(' ')
            .next()
            .unwrap_or_default()
            .to_string();
        *grouped.entry((jail, rejected.error.clone())).or_default() += 1;
    }
    for ((jail, error), count) in &grouped {
        errln!("not imported: {count} ban(s) of jail {jail}: {error}");
    }
    if let Some(error) = reply.error.as_ref().filter(|_| !reply.ok) {
        errln!("{error}");
    }
    Ok(!reply.rejected.is_empty() || !reply.ok)
}
