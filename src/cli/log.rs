//! `nftjail log`: the ban history the daemon keeps (bans, unbans, expiries), as a table for
//! people or one JSON object a line, and `--follow` to keep printing new entries.
//!
//! Receives the command's options; asks the daemon over the control socket (`log` requests)
//! and prints what it answers. `--follow` asks again every second for what came after the last
//! entry it printed, and waits for a daemon that restarts (the history and its sequence numbers
//! survive restarts, so nothing is printed twice or skipped). Exit codes as every client
//! command: 0, 1 refused, 2 usage or cannot connect.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use clap::Args;

use super::{CliError, output};
use crate::control::client::Client;
use crate::control::protocol::{LogEvent, Reply, Request};
use crate::errln;
use nftjail_core::duration::{format_seconds, parse_seconds};
use nftjail_core::state::EventAction;

/// How often `--follow` asks for new entries.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);

/// Arguments of `nftjail log`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    nftjail log                          # everything kept (dbpurgeage, default 1d)\n  \
    nftjail log --jail sshd --since 1h   # the last hour of one jail\n  \
    nftjail log --follow                 # like tail -f: new bans and unbans as they happen\n  \
    nftjail log --json | jq -r 'select(.action == \"ban\") | .target'\n\n\
    Each ban shows the log lines that led to it while the daemon keeps them (the newest 1000).\n\
    --json prints one object a line: {\"seq\", \"time\", \"action\" (ban, unban, expire), \"jail\",\n\
    \"target\", \"duration\" (seconds, null when permanent), \"since\", \"expires\", \"count\",\n\
    \"origin\", \"lines\"}; times are Unix seconds.")]
pub struct LogArgs {
    #[command(flatten)]
    pub client: super::target::ClientArgs,
    /// Only this jail.
    #[arg(long, value_name = "JAIL")]
    pub jail: Option<String>,
    /// Only what happened within this long (600, 10m, 1h, 1d, 1w).
    #[arg(long, value_name = "DURATION")]
    pub since: Option<String>,
    /// Keep printing new entries as they come (Ctrl-C stops).
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// One JSON object a line.
    #[arg(long)]
    pub json: bool,
}

pub fn run(socket: &Path, args: &LogArgs) -> Result<(), CliError> {
    let since = match &args.since {
        None => None,
        Some(text) => {
            let seconds = parse_seconds(text)
                .ok()
                .filter(|s| *s >= 0)
                .ok_or_else(|| {
                    CliError::Usage(format!(
                        "--since {text:?}: write a duration as fail2ban does (600, 10m, 1h, 1d)"
                    ))
                })?;
            Some(crate::daemon::unix_now().saturating_sub(seconds))
        }
    };
    let mut request = Request::Log {
        jail: args.jail.clone(),
        since,
        after: None,
    };
    let mut client = Some(connect(socket)?);
    let mut header = !args.json;
    let mut waiting = false;
    loop {
        let reply = match client.as_mut().map(|c| c.request(&request)) {
            Some(Ok(reply)) => checked(reply)?,
            Some(Err(e)) if !args.follow => return Err(CliError::Connect(e)),
            // Following: the daemon went away (a restart?); wait for it quietly.
            Some(Err(_)) | None => {
                if !waiting {
                    errln!("nftjail log: the daemon is not answering; waiting for it");
                    waiting = true;
                }
                std::thread::sleep(FOLLOW_EVERY);
                client = Client::connect(socket).ok();
                continue;
            }
        };
        waiting = false;
        let events = reply.events.unwrap_or_default();
        output::print(&render(&events, args.json, std::mem::take(&mut header)))?;
        if !args.follow {
            return Ok(());
        }
        if let Request::Log { after, .. } = &mut request {
            *after = match (reply.last, *after) {
                // The daemon's numbers went back (its history ran out while it was down):
                // everything it has now is new.
                (Some(last), Some(seen)) if last < seen => Some(0),
                (last, seen) => last.or(seen),
            };
        }
        std::thread::sleep(FOLLOW_EVERY);
    }
}

fn connect(socket: &Path) -> Result<Client, CliError> {
    Client::connect(socket).map_err(CliError::Connect)
}

fn checked(reply: Reply) -> Result<Reply, CliError> {
    if reply.ok {
        Ok(reply)
    } else {
        Err(CliError::Refused(
            reply.error.unwrap_or_else(|| "refused".to_string()),
        ))
    }
}

/// The events as text (a header first when `header`), or one JSON object a line.
pub fn render(events: &[LogEvent], json: bool, header: bool) -> String {
    let mut text = String::new();
    if json {
        for e in events {
            text.push_str(&serde_json::to_string(e).expect("invariant: events serialize"));
            text.push('\n');
        }
        return text;
    }
    if header {
        let _ = writeln!(
            text,
            "{:<19}  {:<6}  {:<14} {:<20} {:>9} {:>5}  ORIGIN",
            "TIME", "ACTION", "JAIL", "ADDRESS", "DURATION", "COUNT"
        );
    }
    for e in events {
        let action = match e.action {
            EventAction::Ban => "ban",
            EventAction::Unban => "unban",
            EventAction::Expire => "expire",
        };
        let duration = e
            .duration
            .map_or_else(|| "permanent".to_string(), format_seconds);
        let _ = writeln!(
            text,
            "{:<19}  {:<6}  {:<14} {:<20} {:>9} {:>5}  {}",
            super::control::local(e.time),
            action,
            e.jail,
            e.target,
            duration,
            e.count,
            e.origin
        );
        for line in &e.lines {
            let _ = writeln!(text, "    | {line}");
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use nftjail_core::tracker::Origin;

    fn event(seq: u64, action: EventAction, duration: Option<u64>) -> LogEvent {
        LogEvent {
            seq,
            time: 1_800_000_000,
            action,
            jail: "sshd".into(),
            target: "192.0.2.1".into(),
            duration,
            since: 1_800_000_000,
            expires: duration.map(|d| 1_800_000_000 + d as i64),
            count: 2,
            origin: Origin::Failures,
            lines: vec!["Failed password for root from 192.0.2.1".into()],
        }
    }

    #[test]
    fn text_speaks_durations_as_people_write_them_and_json_is_one_object_a_line() {
        let events = [
            event(1, EventAction::Ban, Some(180 * 86_400)),
            event(2, EventAction::Expire, None),
        ];
        let text = render(&events, false, true);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("TIME"), "{text}");
        assert!(
            lines[1].contains(" ban ") && lines[1].contains(" 180d "),
            "{text}"
        );
        assert_eq!(lines[2], "    | Failed password for root from 192.0.2.1");
        assert!(
            lines[3].contains("expire") && lines[3].contains("permanent"),
            "{text}"
        );
        let json = render(&events, true, true);
        let objects: Vec<serde_json::Value> = json
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[0]["action"], "ban");
        assert_eq!(objects[0]["duration"], 180 * 86_400);
        assert_eq!(objects[1]["duration"], serde_json::Value::Null);
        assert!(render(&[], false, false).is_empty());
    }
}
