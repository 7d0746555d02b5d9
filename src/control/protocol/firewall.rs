//! The firewall's shapes on the control socket: the entries of `rules` and `forwards`, the
//! `firewall` status, and the SSH session a client says it came over.
//!
//! Receives the daemon's ruleset and settings; emits the JSON objects documented in the README
//! (`{"rules": [{"id", "chain", "protocol", "port", "source", "action", "comment", "protected",
//! "origin"}]}`), which the HTTP API mirrors. Fields may be added, never renamed.

use serde::{Deserialize, Serialize};

use nftjail_core::firewall::text::{ForwardText, RuleText};
use nftjail_core::firewall::{Entry, Forward, Rule};

/// One rule of `rules`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleEntry {
    pub id: u64,
    /// `input` or `output`.
    pub chain: String,
    /// `tcp` or `udp`.
    pub protocol: String,
    /// `22`, `1000-2000`, `25,465,587`.
    pub port: String,
    /// An address or CIDR prefix; `null` for any.
    pub source: Option<String>,
    /// `accept`, `drop` or `reject`.
    pub action: String,
    pub comment: String,
    pub protected: bool,
    /// `firewall.d/FILE.toml:LINE`, or `api`.
    pub origin: String,
}

impl From<&Entry<Rule>> for RuleEntry {
    fn from(entry: &Entry<Rule>) -> RuleEntry {
        let text = RuleText::from(&entry.item);
        RuleEntry {
            id: entry.id,
            chain: text.chain,
            protocol: text.protocol,
            port: text.port,
            source: text.source,
            action: text.action,
            comment: text.comment,
            protected: text.protected,
            origin: entry.origin.to_string(),
        }
    }
}

/// One forward of `forwards`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardEntry {
    pub id: u64,
    pub protocol: String,
    /// The port of this host that is forwarded.
    pub port: u16,
    /// `ADDR:PORT` (`[IPv6]:PORT`) of the backend.
    pub to: String,
    pub source: Option<String>,
    pub comment: String,
    pub origin: String,
}

impl From<&Entry<Forward>> for ForwardEntry {
    fn from(entry: &Entry<Forward>) -> ForwardEntry {
        let text = ForwardText::from(&entry.item);
        ForwardEntry {
            id: entry.id,
            protocol: text.protocol,
            port: text.port,
            to: text.to,
            source: text.source,
            comment: text.comment,
            origin: entry.origin.to_string(),
        }
    }
}

/// `firewall status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirewallStatus {
    /// Whether the filter chains (and the default policies) are in force.
    pub enabled: bool,
    /// `config` (`[firewall] enabled`), or `api` once `firewall enable|disable` was used.
    pub enabled_by: String,
    pub default_input: String,
    pub default_output: String,
    pub default_forward: String,
    /// The ports a default-drop input policy keeps open (when not asked over SSH).
    pub admin_ports: Vec<u16>,
    pub rules: usize,
    pub forwards: usize,
    /// An `enable --confirm-within` waiting for `firewall confirm`.
    pub pending: Option<PendingConfirm>,
    /// `net.ipv4.ip_forward` and `net.ipv6.conf.all.forwarding` (`null`: unreadable).
    pub ip_forward: IpForward,
}

/// An enable that rolls back unless confirmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingConfirm {
    /// Seconds left before the rollback.
    pub rollback_in: u64,
}

/// Whether the kernel forwards packets (forwards need it; nftjail never changes it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpForward {
    pub ipv4: Option<bool>,
    pub ipv6: Option<bool>,
}

/// The SSH session a client runs in, from its `SSH_CONNECTION` (`CLIENT_ADDR CLIENT_PORT
/// SERVER_ADDR SERVER_PORT`): who must not be locked out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionText {
    /// The administrator's address.
    pub client: String,
    /// The port of this host the session is connected to.
    pub port: u16,
}

impl SessionText {
    /// The session described by an `SSH_CONNECTION` value; `None` when it does not parse.
    pub fn from_ssh_connection(value: &str) -> Option<SessionText> {
        let words: Vec<&str> = value.split_whitespace().collect();
        let [client, _, _, port] = words.as_slice() else {
            return None;
        };
        client.parse::<std::net::IpAddr>().ok()?;
        Some(SessionText {
            client: client.to_string(),
            port: port.parse().ok()?,
        })
    }
}

/// A port as a client sends it: a number or a text (`22`, `"ssh"`, `"80,443"`).
pub fn port_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Port {
        Number(u64),
        Text(String),
    }
    Ok(match Port::deserialize(d)? {
        Port::Number(n) => n.to_string(),
        Port::Text(t) => t,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_connection_gives_the_client_and_the_servers_port() {
        assert_eq!(
            SessionText::from_ssh_connection("198.51.100.7 51234 192.0.2.1 2222"),
            Some(SessionText {
                client: "198.51.100.7".into(),
                port: 2222
            })
        );
        assert_eq!(
            SessionText::from_ssh_connection("2001:db8::7 51234 2001:db8::1 22").map(|s| s.port),
            Some(22)
        );
        for bad in [
            "",
            "198.51.100.7 51234 192.0.2.1",
            "x 1 y 22",
            "198.51.100.7 1 2 port",
        ] {
            assert_eq!(SessionText::from_ssh_connection(bad), None, "{bad:?}");
        }
    }
}
