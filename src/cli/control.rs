//! The commands that talk to the running daemon: `status`, `ban`, `unban`, `banned`, `reload`
//! (`log` has a file of its own).
//!
//! Each sends one request over the control socket and prints the reply: aligned text for
//! people, or the reply object itself with `--json` (stable; see the README). Exit codes: 0 ok,
//! 1 refused or failed (with the daemon's reason), 2 usage or cannot connect (with a hint).

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use chrono::{Local, TimeZone};
use clap::Args;

use super::{CliError, output};
use crate::control::client::Client;
use crate::control::protocol::{BanEntry, Reply, Request};
use crate::{errln, outln};

/// Arguments of `nftjail status`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    nftjail status                       # every enabled jail and its counters\n  \
    nftjail status sshd                  # one jail: filter, sources, settings, banned list\n  \
    nftjail status sshd --json           # the same as JSON, for panels and scripts\n  \
    nftjail --config /srv/nftjail.toml status   # the daemon of another configuration\n\n\
    With [cluster], a last line shows the fleet: the link to the NATS server, the outbox (bans\n\
    waiting to be sent), the lag (peers' messages not read yet) and the refused messages.")]
pub struct StatusArgs {
    #[command(flatten)]
    pub client: super::target::ClientArgs,
    /// One jail in detail (filter, sources, counters, banned list); all jails when omitted.
    pub jail: Option<String>,
    /// Print the daemon's reply as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `nftjail ban`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  nftjail ban sshd 192.0.2.7\n  nftjail ban manual 198.51.100.0/24 2001:db8:bad::/48 --for 180d\n  \
    nftjail ban manual --from-file /etc/nftjail/blocklist.txt\n  curl -s https://example.org/drop.txt | nftjail ban manual --from-file -"
)]
pub struct BanArgs {
    #[command(flatten)]
    pub client: super::target::ClientArgs,
    /// The jail whose sets and ports the bans use.
    pub jail: String,
    /// Addresses or CIDR prefixes.
    #[arg(value_name = "ADDR")]
    pub targets: Vec<String>,
    /// Ban length in fail2ban notation (600, 10m, 1h, 1d, 1w, 180d; -1 for permanent);
    /// default: the jail's bantime (with escalation).
    #[arg(long = "for", value_name = "DURATION", allow_hyphen_values = true)]
    pub length: Option<String>,
    /// A blocklist, one address or CIDR a line (`#`/`;` comments allowed); `-` reads stdin.
    /// Everything is banned in one request, in bulk.
    #[arg(long, value_name = "FILE")]
    pub from_file: Option<PathBuf>,
}

/// Arguments of `nftjail unban`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    nftjail unban 192.0.2.7              # from every jail\n  \
    nftjail unban 198.51.100.0/24 --jail manual\n  \
    nftjail unban --jail manual --all    # empty a jail (also a disabled jail's parked bans)\n\n\
    With [cluster], unbanning an address this host shares (or a peer's ban, in the fleet jail)\n\
    lifts it from the fleet jail of every host; --all stays local.")]
pub struct UnbanArgs {
    #[command(flatten)]
    pub client: super::target::ClientArgs,
    /// The address or prefix to unban (as it was banned).
    #[arg(required_unless_present = "all")]
    pub target: Option<String>,
    /// Only from this jail (default: from every jail).
    #[arg(long, value_name = "JAIL", required_if_eq("all", "true"))]
    pub jail: Option<String>,
    /// Unban everything in --jail.
    #[arg(long, conflicts_with = "target")]
    pub all: bool,
}

/// Arguments of `nftjail banned`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    nftjail banned\n  \
    nftjail banned --jail sshd\n  \
    nftjail banned --json | jq -r '.bans[] | select(.count > 1) | .target'   # repeat offenders")]
pub struct BannedArgs {
    #[command(flatten)]
    pub client: super::target::ClientArgs,
    /// Only this jail.
    #[arg(long, value_name = "JAIL")]
    pub jail: Option<String>,
    /// Print the daemon's reply as JSON.
    #[arg(long)]
    pub json: bool,
}

fn connect(socket: &Path) -> Result<Client, CliError> {
    Client::connect(socket).map_err(CliError::Connect)
}

/// A reply that is not ok becomes exit 1 with the daemon's reason (and diagnostics). Each
/// reason is printed once: a ban refused for its only address says why in the error alone.
fn checked(reply: Reply) -> Result<Reply, CliError> {
    if reply.ok {
        print_rejected(&reply);
        return Ok(reply);
    }
    for d in &reply.diagnostics {
        errln!("{d}");
    }
    let error = reply.error.clone().unwrap_or_else(|| "refused".to_string());
    match reply.rejected.len() {
        0 | 1 => Err(CliError::Refused(error)),
        n => {
            print_rejected(&reply);
            Err(CliError::Refused(format!(
                "nothing banned: all {n} addresses were rejected"
            )))
        }
    }
}

/// The inputs a ban could not use, on stderr.
fn print_rejected(reply: &Reply) {
    for r in &reply.rejected {
        let line = if r.line > 0 {
            format!(" (line {})", r.line)
        } else {
            String::new()
        };
        errln!("rejected {:?}{line}: {}", r.text, r.error);
    }
}

/// One request, its reply checked.
pub(super) fn ask(socket: &Path, request: &Request) -> Result<Reply, CliError> {
    checked(
        connect(socket)?
            .request(request)
            .map_err(CliError::Connect)?,
    )
}

pub(super) fn print_json(reply: &Reply) -> Result<(), CliError> {
    let mut text = serde_json::to_string_pretty(reply).expect("invariant: replies serialize");
    text.push('\n');
    output::print(&text)
}

pub fn status(socket: &Path, args: &StatusArgs) -> Result<(), CliError> {
    let reply = ask(
        socket,
        &Request::Status {
            jail: args.jail.clone(),
        },
    )?;
    if args.json {
        return print_json(&reply);
    }
    if let Some(jails) = &reply.jails {
        outln!(
            "{:<16} {:<9} {:>8} {:>13} {:>8} {:>13}",
            "JAIL",
            "KIND",
            "FAILED",
            "TOTAL FAILED",
            "BANNED",
            "TOTAL BANNED"
        )?;
        for j in jails {
            let s = &j.stats;
            outln!(
                "{:<16} {:<9} {:>8} {:>13} {:>8} {:>13}",
                j.name,
                j.kind,
                s.currently_failed,
                s.total_failed,
                s.currently_banned,
                s.total_banned
            )?;
        }
    }
    if let Some(c) = &reply.cluster {
        let rejected: u64 = c.rejected.values().sum();
        outln!(
            "\nfleet: node {} on stream {}: {}; outbox {}, lag {}, published {}, received {}, applied {}, refused {rejected}",
            c.node,
            c.stream,
            c.link,
            c.outbox,
            c.lag,
            c.published,
            c.received,
            c.applied
        )?;
        if let Some(e) = &c.last_error {
            outln!("fleet: last error: {e}")?;
        }
    }
    if let Some(j) = &reply.jail {
        let s = &j.stats;
        outln!("Status for the jail: {}", j.name)?;
        outln!("|- Filter")?;
        if let Some(filter) = &j.filter {
            outln!(
                "|  |- Filter:           {filter} (mode {})",
                j.mode.as_deref().unwrap_or("normal")
            )?;
        }
        outln!("|  |- Currently failed: {}", s.currently_failed)?;
        outln!("|  |- Total failed:     {}", s.total_failed)?;
        outln!(
            "|  |- Lines read:       {} ({} matched, {} skipped)",
            j.lines_read,
            j.lines_matched,
            j.lines_skipped
        )?;
        let sources: Vec<String> = j
            .sources
            .iter()
            .map(|src| match &src.position {
                Some(p) if src.name.starts_with("journal") => format!("{} (cursor {p})", src.name),
                Some(p) => format!("{} (at byte {p})", src.name),
                None => format!("{} (not read yet)", src.name),
            })
            .collect();
        outln!(
            "|  `- Sources:          {}",
            if sources.is_empty() {
                "-".to_string()
            } else {
                sources.join(", ")
            }
        )?;
        outln!("`- Actions")?;
        outln!("   |- {}", terms(j))?;
        outln!("   |- Sets:             {}", j.sets.join(", "))?;
        outln!("   |- Currently banned: {}", s.currently_banned)?;
        outln!("   |- Total banned:     {}", s.total_banned)?;
        outln!("   `- Banned IP list:   {}", j.banned.join(" "))?;
    }
    Ok(())
}

pub fn ban(socket: &Path, args: &BanArgs) -> Result<(), CliError> {
    if args.targets.is_empty() && args.from_file.is_none() {
        return Err(CliError::Usage(
            "give addresses to ban, or --from-file FILE".into(),
        ));
    }
    let request = Request::Ban {
        jail: args.jail.clone(),
        targets: args.targets.clone(),
        length: args.length.clone(),
        stream: args.from_file.is_some(),
    };
    let mut client = connect(socket)?;
    let reply = match &args.from_file {
        None => client.request(&request),
        Some(path) if path.as_os_str() == "-" => {
            client.ban_stream(&request, &mut io::stdin().lock())
        }
        Some(path) => {
            let file = File::open(path).map_err(|e| CliError::Io {
                what: format!("cannot read {}", path.display()),
                source: e,
            })?;
            client.ban_stream(
                &request,
                &mut BufReader::with_capacity(1 << 16, file) as &mut dyn BufRead,
            )
        }
    }
    .map_err(CliError::Connect)?;
    let reply = checked(reply)?;
    outln!(
        "banned {} in {}, refreshed {}{}",
        reply.banned.unwrap_or(0),
        args.jail,
        reply.refreshed.unwrap_or(0),
        if reply.rejected.is_empty() {
            String::new()
        } else {
            format!(", rejected {}", reply.rejected.len())
        }
    )?;
    Ok(())
}

pub fn unban(socket: &Path, args: &UnbanArgs) -> Result<(), CliError> {
    let request = Request::Unban {
        target: args.target.clone(),
        jail: args.jail.clone(),
        all: args.all,
    };
    let reply = ask(socket, &request)?;
    for (jail, target) in reply.unbanned.unwrap_or_default() {
        outln!("unbanned {target} from {jail}")?;
    }
    Ok(())
}

pub fn banned(socket: &Path, args: &BannedArgs) -> Result<(), CliError> {
    let reply = ask(
        socket,
        &Request::Banned {
            jail: args.jail.clone(),
        },
    )?;
    if args.json {
        return print_json(&reply);
    }
    let bans = reply.bans.unwrap_or_default();
    let width = bans
        .iter()
        .map(|b| b.target.len())
        .max()
        .unwrap_or(7)
        .max(7);
    // One buffer, one write: a list of 100k bans is not 100k writes.
    let mut text = format!(
        "{:<16} {:<width$} {:<19} {:<19} {:>5} ORIGIN\n",
        "JAIL", "ADDRESS", "SINCE", "EXPIRES", "COUNT"
    );
    for b in &bans {
        let _ = writeln!(
            text,
            "{:<16} {:<width$} {:<19} {:<19} {:>5} {}",
            b.jail,
            b.target,
            local(b.since),
            b.expires.map_or_else(|| "never".to_string(), local),
            b.count,
            origin(b)
        );
    }
    output::print(&text)
}

/// Arguments of `nftjail reload`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    nftjail reload                       # or: systemctl reload nftjail, or SIGHUP\n  \
    nftjail check && nftjail reload      # see every error first (PATH:LINE:COL)\n\n\
    An invalid configuration is refused with its errors and the running one stays.")]
pub struct ReloadArgs {
    #[command(flatten)]
    pub client: super::target::ClientArgs,
    /// Print the daemon's reply as JSON (jails, parked and restored bans).
    #[arg(long)]
    pub json: bool,
}

pub fn reload(socket: &Path, args: &ReloadArgs) -> Result<(), CliError> {
    let reply = ask(socket, &Request::Reload)?;
    if args.json {
        return print_json(&reply);
    }
    let jails: Vec<String> = reply
        .jails
        .unwrap_or_default()
        .into_iter()
        .map(|j| j.name)
        .collect();
    outln!("reloaded: {} jails ({})", jails.len(), jails.join(", "))?;
    if let Some(parked) = reply.parked.filter(|n| *n > 0) {
        outln!(
            "parked: {parked} ban(s) of disabled or removed jails (kept, out of the kernel; \
             restored when their jail returns; `nftjail unban --jail JAIL --all` drops them)"
        )?;
    }
    if let Some(restored) = reply.restored.filter(|n| *n > 0) {
        outln!("restored: {restored} parked ban(s) with their remaining time")?;
    }
    Ok(())
}

/// A jail's terms in its own words: what bans, for how long, on which ports.
fn terms(j: &crate::control::protocol::JailDetail) -> String {
    use nftjail_core::duration::format_seconds;
    let bantime = j.bantime.map_or_else(
        || "permanently".to_string(),
        |b| format!("for {}", format_seconds(b)),
    );
    let ports = match j.ports.as_str() {
        "" => String::new(),
        "all" => " on all ports".to_string(),
        list if list.contains([',', ':']) => format!(" on ports {list}"),
        one => format!(" on port {one}"),
    };
    let within = format_seconds(j.findtime);
    match (j.kind.as_str(), j.maxbans) {
        ("recidive", Some(bans)) => {
            format!("{bans} bans (in the other jails) within {within} ban {bantime}{ports}")
        }
        ("manual", _) => format!("bans by hand, {bantime} unless --for says otherwise,{ports}"),
        _ => format!(
            "{} failures within {within} ban {bantime}{ports}",
            j.maxretry
        ),
    }
}

pub(super) fn local(at: i64) -> String {
    Local.timestamp_opt(at, 0).single().map_or_else(
        || at.to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
    )
}

fn origin(b: &BanEntry) -> String {
    b.origin.to_string()
}
