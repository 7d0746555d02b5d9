//! The fleet: bans shared between hosts, as messages (no I/O here).
//!
//! Receives the local bans and unbans worth sharing (as [`Ban`](crate::tracker::Ban)s) and,
//! from peers, raw messages (a subject and a payload, with the stream's own timestamp); emits
//! the wire format ([`message`]: one JSON object per ban or unban) and, for a peer's message,
//! either a decision to apply or a typed [`Rejection`] ([`check`]: node names, prefix limits,
//! expiry, a per-peer rate limit). The NATS client, the outbox and the consumer are the
//! daemon's `fleet` module; the local ignore lists are applied by the tracker when the decision
//! is entered (`Tracker::decide`). It never trusts a peer's text: every field is parsed and
//! bounded here, nothing of it is ever executed.

pub mod check;
pub mod message;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use check::{PeerCheck, PeerDecision, PeerLimits, Rejection};
pub use message::{BanMessage, MessageAction};

/// The longest node name.
pub const MAX_NODE_NAME: usize = 64;
/// Every fleet subject starts with this; a node publishes under `nftjail.bans.<node>.<jail>`.
pub const SUBJECT_ROOT: &str = "nftjail.bans";

/// A node's name in the fleet: one subject token (ASCII letters, digits, `_`, `-`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeName(Arc<str>);

/// Why a text is not a node name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a valid node name (letters, digits, '_' and '-', at most 64 characters: it is one token of a NATS subject)"
)]
pub struct NodeNameError(pub String);

impl NodeName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A node name made from a host name: every character that a subject token cannot hold
    /// (the dots of a fully qualified name among them) becomes `_`.
    pub fn from_host_name(host: &str) -> Result<NodeName, NodeNameError> {
        let name: String = host
            .trim()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        name.parse()
    }

    /// The subject this node publishes a ban of `jail` on.
    pub fn subject(&self, jail: &str) -> String {
        format!("{SUBJECT_ROOT}.{self}.{jail}")
    }
}

impl FromStr for NodeName {
    type Err = NodeNameError;

    fn from_str(text: &str) -> Result<NodeName, NodeNameError> {
        let ok = !text.is_empty()
            && text.len() <= MAX_NODE_NAME
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(NodeName(Arc::from(text)))
        } else {
            Err(NodeNameError(text.to_string()))
        }
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl Serialize for NodeName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for NodeName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<NodeName, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The node and jail a subject names (`nftjail.bans.<node>.<jail>`), if it has that shape.
pub fn parse_subject(subject: &str) -> Option<(&str, &str)> {
    let rest = subject.strip_prefix(SUBJECT_ROOT)?.strip_prefix('.')?;
    let (node, jail) = rest.split_once('.')?;
    (!node.is_empty() && !jail.is_empty() && !jail.contains('.')).then_some((node, jail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names() {
        for (text, ok) in [
            ("mail1", true),
            ("web-01", true),
            ("a_b", true),
            ("", false),
            ("a.b", false),
            ("a*", false),
            ("a>", false),
            ("a b", false),
            (&"x".repeat(65), false),
        ] {
            assert_eq!(text.parse::<NodeName>().is_ok(), ok, "{text:?}");
        }
    }

    #[test]
    fn node_name_from_a_fully_qualified_host_name() {
        let name = NodeName::from_host_name("mail.example.org\n").unwrap();
        assert_eq!(name.as_str(), "mail_example_org");
        assert_eq!(name.subject("sshd"), "nftjail.bans.mail_example_org.sshd");
    }

    #[test]
    fn subjects() {
        assert_eq!(parse_subject("nftjail.bans.a.sshd"), Some(("a", "sshd")));
        for bad in [
            "nftjail.bans.a",
            "nftjail.bans..sshd",
            "nftjail.bans.a.sshd.x",
            "nftjail.bansx.a.sshd",
            "other.a.sshd",
        ] {
            assert_eq!(parse_subject(bad), None, "{bad}");
        }
    }
}
