//! `nftjail firewall`, `nftjail rule` and `nftjail forward`: the host firewall from the command
//! line.
//!
//! Each sends one request over the control socket and prints the reply: aligned text for
//! people, or JSON with `--json` (`rule list --json` prints `{"rules": [...]}`, `rule add
//! --json` prints `{"id": N}`). `firewall enable` and `forward add` send the SSH session they
//! run in (`SSH_CONNECTION`), so that the daemon refuses a default-drop policy or a forward that
//! would cut it.
//! Warnings of the daemon (IP forwarding off) go to stderr. Exit codes as for every client
//! command: 0 ok, 1 refused, 2 usage or cannot connect.

use std::path::Path;

use clap::{Args, Subcommand};

use super::control::{ask, print_json};
use super::target::ClientArgs;
use super::{CliError, output};
use crate::control::protocol::{FirewallStatus, Reply, Request, SessionText};
use crate::{errln, outln};

/// `--json` and where the daemon is, for commands that take nothing else.
#[derive(Debug, Args)]
pub struct Plain {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Print the daemon's reply as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `nftjail firewall`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  nftjail firewall status\n  nftjail firewall enable --confirm-within 60s   # then, if you can still connect:\n  nftjail firewall confirm\n  nftjail firewall disable                       # every port open; bans still enforced"
)]
pub struct FirewallArgs {
    #[command(subcommand)]
    pub action: FirewallAction,
}

#[derive(Debug, Subcommand)]
pub enum FirewallAction {
    /// On or off, the default policies, counts of rules and forwards, a pending enable.
    Status(Plain),
    /// Switch the firewall on: the default policies apply. Refused when a default-drop input
    /// policy would cut the SSH session you run in (or the admin ports) because no protected
    /// accept rule keeps it open.
    Enable(EnableArgs),
    /// Switch the firewall off: every port open, bans still enforced, forwards kept.
    Disable(Plain),
    /// Keep an `enable --confirm-within` (otherwise it rolls back by itself).
    Confirm(Plain),
}

/// Arguments of `nftjail firewall enable`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  nftjail firewall enable --confirm-within 60s\n  nftjail firewall confirm\n\n\
    Over SSH, the session you run in (SSH_CONNECTION) must stay open through a protected accept\n\
    rule; otherwise the admin ports of [firewall] admin_port must."
)]
pub struct EnableArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Roll back by itself unless `nftjail firewall confirm` comes within this time (as
    /// iptables-apply does), e.g. 60s, 5m; at most 1h.
    #[arg(long, value_name = "DURATION")]
    pub confirm_within: Option<String>,
    /// Print the daemon's reply as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `nftjail rule`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  nftjail rule list\n  nftjail rule add --protocol tcp --port 8443 --action accept --comment panel\n  \
    nftjail rule add --protocol tcp --port 2526 --source 10.0.0.2 --action accept\n  \
    nftjail rule add --chain output --protocol tcp --port 25 --source 198.51.100.0/24 --action reject\n  \
    nftjail rule delete 7"
)]
pub struct RuleArgs {
    #[command(subcommand)]
    pub action: RuleAction,
}

#[derive(Debug, Subcommand)]
pub enum RuleAction {
    /// Every rule in the order they apply: firewall.d files first, then those added here.
    List(Plain),
    /// Add a rule after all others; prints its id.
    Add(RuleAddArgs),
    /// Delete a rule added here (protected and firewall.d rules are refused).
    Delete(DeleteArgs),
}

/// Arguments of `nftjail rule add`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  nftjail rule add --protocol tcp --port 8443 --action accept --comment panel\n  \
    nftjail rule add --protocol tcp --port 2526 --source 10.0.0.2 --action accept\n  \
    nftjail rule add --protocol udp --port 60000-61000 --source 2001:db8::/48 --action accept --json\n\n\
    Rules apply in creation order, after the firewall.d rules; banned addresses are dropped before."
)]
pub struct RuleAddArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// `input` (traffic to this host) or `output` (traffic it sends).
    #[arg(long, default_value = "input")]
    pub chain: String,
    /// `tcp` or `udp`.
    #[arg(long)]
    pub protocol: String,
    /// A port, a service name, a range (1000-2000) or a list (25,465,587).
    #[arg(long)]
    pub port: String,
    /// Only this address or CIDR prefix, IPv4 or IPv6 (in output rules: the peer).
    #[arg(long, value_name = "ADDR|CIDR")]
    pub source: Option<String>,
    /// `accept`, `drop` or `reject`.
    #[arg(long)]
    pub action: String,
    /// Shown in `rule list` and in `nft list ruleset`.
    #[arg(long, default_value = "")]
    pub comment: String,
    /// Print `{"id": N}`.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `nftjail rule delete` and `nftjail forward delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The id `list` shows.
    pub id: u64,
}

/// Arguments of `nftjail forward`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  nftjail forward add --protocol tcp --port 993 --to 10.0.0.2:993 --comment 'IMAPS to the mail backend'\n  \
    nftjail forward add --protocol tcp --port 2525 --to [2001:db8::2]:25\n  nftjail forward list\n  nftjail forward delete 9\n\n\
    Forwarding needs net.ipv4.ip_forward (and net.ipv6.conf.all.forwarding) set to 1: nftjail checks\n\
    and says so, it never changes them."
)]
pub struct ForwardArgs {
    #[command(subcommand)]
    pub action: ForwardAction,
}

#[derive(Debug, Subcommand)]
pub enum ForwardAction {
    /// Every port forward.
    List(Plain),
    /// Forward a port of this host to a backend (DNAT, masquerade, forward accept); prints its
    /// id.
    Add(ForwardAddArgs),
    /// Delete a forward added here.
    Delete(DeleteArgs),
}

/// Arguments of `nftjail forward add`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  nftjail forward add --protocol tcp --port 993 --to 10.0.0.2:993 --comment 'IMAPS to the mail backend'\n  \
    nftjail forward add --protocol tcp --port submission --to 10.0.0.2:587 --source 192.0.2.0/24"
)]
pub struct ForwardAddArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// `tcp` or `udp`.
    #[arg(long)]
    pub protocol: String,
    /// The port of this host (a number or a service name).
    #[arg(long)]
    pub port: String,
    /// The backend: ADDR:PORT, or [IPv6]:PORT.
    #[arg(long, value_name = "ADDR:PORT")]
    pub to: String,
    /// Only connections from this address or CIDR prefix.
    #[arg(long, value_name = "ADDR|CIDR")]
    pub source: Option<String>,
    #[arg(long, default_value = "")]
    pub comment: String,
    /// Print `{"id": N}`.
    #[arg(long)]
    pub json: bool,
}

/// The SSH session this command runs in (`SSH_CONNECTION`), which the daemon keeps open.
fn ssh_session() -> Option<SessionText> {
    std::env::var("SSH_CONNECTION")
        .ok()
        .and_then(|v| SessionText::from_ssh_connection(&v))
}

/// Asks, prints the daemon's warnings on stderr.
fn request(socket: &Path, request: &Request) -> Result<Reply, CliError> {
    let reply = ask(socket, request)?;
    for warning in &reply.warnings {
        errln!("warning: {warning}");
    }
    Ok(reply)
}

fn print_value(value: &serde_json::Value) -> Result<(), CliError> {
    let mut text = serde_json::to_string_pretty(value).expect("invariant: JSON values serialize");
    text.push('\n');
    output::print(&text)
}

pub fn firewall(outer: &ClientArgs, args: &FirewallArgs) -> Result<(), CliError> {
    let (client, json, req) = match &args.action {
        FirewallAction::Status(a) => (&a.client, a.json, Request::Firewall),
        FirewallAction::Enable(a) => (
            &a.client,
            a.json,
            Request::FirewallEnable {
                confirm_within: a.confirm_within.clone(),
                session: ssh_session(),
            },
        ),
        FirewallAction::Disable(a) => (&a.client, a.json, Request::FirewallDisable),
        FirewallAction::Confirm(a) => (&a.client, a.json, Request::FirewallConfirm),
    };
    let reply = request(&client.or(outer).socket()?, &req)?;
    if json {
        return print_json(&reply);
    }
    let Some(status) = &reply.firewall else {
        return Ok(());
    };
    print_status(status)
}

fn print_status(s: &FirewallStatus) -> Result<(), CliError> {
    let by = match s.enabled_by.as_str() {
        "api" => "set with `nftjail firewall enable|disable`",
        _ => "[firewall] enabled",
    };
    outln!(
        "firewall:         {} ({by})",
        if s.enabled {
            "on"
        } else {
            "off: every port open, bans enforced"
        }
    )?;
    outln!(
        "default policies: input {}, output {}, forward {}",
        s.default_input,
        s.default_output,
        s.default_forward
    )?;
    let ports: Vec<String> = s.admin_ports.iter().map(u16::to_string).collect();
    outln!("admin ports:      {}", ports.join(", "))?;
    outln!("rules:            {} (`nftjail rule list`)", s.rules)?;
    outln!("forwards:         {} (`nftjail forward list`)", s.forwards)?;
    let state = |v: Option<bool>| match v {
        Some(true) => "on",
        Some(false) => "off",
        None => "unknown",
    };
    outln!(
        "ip forwarding:    ipv4 {}, ipv6 {}",
        state(s.ip_forward.ipv4),
        state(s.ip_forward.ipv6)
    )?;
    if let Some(p) = &s.pending {
        outln!(
            "pending:          rolls back in {} s unless `nftjail firewall confirm`",
            p.rollback_in
        )?;
    }
    Ok(())
}

pub fn rule(outer: &ClientArgs, args: &RuleArgs) -> Result<(), CliError> {
    match &args.action {
        RuleAction::List(a) => {
            let reply = request(&a.client.or(outer).socket()?, &Request::Rules)?;
            let rules = reply.rules.unwrap_or_default();
            if a.json {
                return print_value(&serde_json::json!({ "rules": rules }));
            }
            let mut rows = vec![
                [
                    "ID",
                    "CHAIN",
                    "PROTO",
                    "PORT",
                    "SOURCE",
                    "ACTION",
                    "PROTECTED",
                    "ORIGIN",
                    "COMMENT",
                ]
                .map(str::to_string),
            ];
            rows.extend(rules.iter().map(|r| {
                [
                    r.id.to_string(),
                    r.chain.clone(),
                    r.protocol.clone(),
                    r.port.clone(),
                    r.source.clone().unwrap_or_else(|| "any".into()),
                    r.action.clone(),
                    if r.protected { "yes" } else { "no" }.to_string(),
                    r.origin.clone(),
                    r.comment.clone(),
                ]
            }));
            print_table(&rows)
        }
        RuleAction::Add(a) => {
            let req = Request::RuleAdd {
                chain: Some(a.chain.clone()),
                protocol: a.protocol.clone(),
                port: a.port.clone(),
                source: a.source.clone(),
                action: a.action.clone(),
                comment: a.comment.clone(),
            };
            let reply = request(&a.client.or(outer).socket()?, &req)?;
            print_id(reply.id, a.json)
        }
        RuleAction::Delete(a) => {
            request(
                &a.client.or(outer).socket()?,
                &Request::RuleDelete { id: a.id },
            )?;
            outln!("deleted rule {}", a.id)
        }
    }
}

pub fn forward(outer: &ClientArgs, args: &ForwardArgs) -> Result<(), CliError> {
    match &args.action {
        ForwardAction::List(a) => {
            let reply = request(&a.client.or(outer).socket()?, &Request::Forwards)?;
            let forwards = reply.forwards.unwrap_or_default();
            if a.json {
                return print_value(&serde_json::json!({ "forwards": forwards }));
            }
            let mut rows = vec![
                ["ID", "PROTO", "PORT", "TO", "SOURCE", "ORIGIN", "COMMENT"].map(str::to_string),
            ];
            rows.extend(forwards.iter().map(|f| {
                [
                    f.id.to_string(),
                    f.protocol.clone(),
                    f.port.to_string(),
                    f.to.clone(),
                    f.source.clone().unwrap_or_else(|| "any".into()),
                    f.origin.clone(),
                    f.comment.clone(),
                ]
            }));
            print_table(&rows)
        }
        ForwardAction::Add(a) => {
            let req = Request::ForwardAdd {
                protocol: a.protocol.clone(),
                port: a.port.clone(),
                to: a.to.clone(),
                source: a.source.clone(),
                comment: a.comment.clone(),
                session: ssh_session(),
            };
            let reply = request(&a.client.or(outer).socket()?, &req)?;
            print_id(reply.id, a.json)
        }
        ForwardAction::Delete(a) => {
            request(
                &a.client.or(outer).socket()?,
                &Request::ForwardDelete { id: a.id },
            )?;
            outln!("deleted forward {}", a.id)
        }
    }
}

fn print_id(id: Option<u64>, json: bool) -> Result<(), CliError> {
    let id = id.ok_or_else(|| CliError::Refused("the daemon did not say the new id".into()))?;
    if json {
        return print_value(&serde_json::json!({ "id": id }));
    }
    outln!("{id}")
}

/// Columns padded to their widest cell (the last one is not padded).
fn print_table<const N: usize>(rows: &[[String; N]]) -> Result<(), CliError> {
    let widths: Vec<usize> = (0..N)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut text = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, cell)| match c + 1 == N {
                true => cell.clone(),
                false => format!("{cell:<width$}", width = widths[c]),
            })
            .collect();
        text.push_str(cells.join("  ").trim_end());
        text.push('\n');
    }
    output::print(&text)
}
