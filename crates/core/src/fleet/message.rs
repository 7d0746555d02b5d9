//! The wire format of the fleet: one JSON object per ban or unban.
//!
//! Receives a local [`Ban`] (or an unban) to share, and a peer's payload to read; emits the
//! payload, or the [`BanMessage`] read back. A ban:
//! `{"v":1,"action":"ban","node":"mail1","jail":"sshd","target":"203.0.113.7","since":1764560000,"expires":1764563600,"count":1,"failures":3}`
//! (`expires` null: permanent; `lines` only with `share_lines`). An unban:
//! `{"v":1,"action":"unban","node":"mail1","jail":"sshd","target":"203.0.113.7","since":1764561000}`.
//! Unknown fields are ignored (a newer peer may add some); a wrong version, a missing field or a
//! value that does not parse makes the message malformed. It never reads more than
//! [`MAX_PAYLOAD`] bytes nor keeps more than [`MAX_LINES`] lines of [`MAX_LINE_BYTES`].

use serde::{Deserialize, Serialize};

use super::NodeName;
use crate::addr::BanTarget;
use crate::jail::JailName;
use crate::tracker::Ban;

/// The format's version.
pub const VERSION: u32 = 1;
/// A larger payload is malformed.
pub const MAX_PAYLOAD: usize = 64 * 1024;
/// At most this many deciding log lines travel with a ban.
pub const MAX_LINES: usize = 32;
/// Each at most this long (cut at a character boundary).
pub const MAX_LINE_BYTES: usize = 1024;

/// Whether a message bans or unbans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageAction {
    Ban,
    Unban,
}

/// One ban or unban decided by one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanMessage {
    pub v: u32,
    pub action: MessageAction,
    pub node: NodeName,
    /// The jail that decided it on that node (informative: peers apply into their own jail).
    pub jail: JailName,
    pub target: BanTarget,
    /// Unix seconds: when the ban started (for an unban: when it was lifted).
    pub since: i64,
    /// Unix seconds; `None`: permanent. Always `None` for an unban.
    #[serde(default)]
    pub expires: Option<i64>,
    /// The target's ban count on that node (escalation).
    #[serde(default)]
    pub count: u32,
    /// Failures that decided the ban (0 for a manual ban).
    #[serde(default)]
    pub failures: u32,
    /// The deciding log lines, only when the node shares them (`share_lines`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<String>,
}

/// Why a payload is not a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("payload of {0} bytes is over the {MAX_PAYLOAD}-byte limit")]
    TooLarge(usize),
    #[error("not a ban message: {0}")]
    Json(String),
    #[error("message version {0} is not {VERSION}")]
    Version(u32),
    #[error("an unban carries no expiry")]
    UnbanExpires,
}

impl BanMessage {
    /// The message sharing `ban`, decided by `node` from `failures` failures and `lines`.
    pub fn ban(node: &NodeName, ban: &Ban, failures: u32, lines: &[String]) -> BanMessage {
        BanMessage {
            v: VERSION,
            action: MessageAction::Ban,
            node: node.clone(),
            jail: ban.jail.clone(),
            target: ban.target,
            since: ban.since,
            expires: ban.expires,
            count: ban.count,
            failures,
            lines: bounded_lines(lines),
        }
    }

    /// The message lifting `ban` everywhere, at `now`.
    pub fn unban(node: &NodeName, ban: &Ban, now: i64) -> BanMessage {
        BanMessage {
            v: VERSION,
            action: MessageAction::Unban,
            node: node.clone(),
            jail: ban.jail.clone(),
            target: ban.target,
            since: now,
            expires: None,
            count: ban.count,
            failures: 0,
            lines: Vec::new(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("invariant: messages serialize")
    }

    /// Reads a payload; every field is checked, lines are bounded.
    pub fn decode(payload: &[u8]) -> Result<BanMessage, MessageError> {
        if payload.len() > MAX_PAYLOAD {
            return Err(MessageError::TooLarge(payload.len()));
        }
        let mut message: BanMessage =
            serde_json::from_slice(payload).map_err(|e| MessageError::Json(e.to_string()))?;
        if message.v != VERSION {
            return Err(MessageError::Version(message.v));
        }
        if message.action == MessageAction::Unban && message.expires.is_some() {
            return Err(MessageError::UnbanExpires);
        }
        message.lines = bounded_lines(&message.lines);
        Ok(message)
    }
}

/// At most `MAX_LINES` lines (the last ones), each at most `MAX_LINE_BYTES`.
fn bounded_lines(lines: &[String]) -> Vec<String> {
    let skip = lines.len().saturating_sub(MAX_LINES);
    lines[skip..]
        .iter()
        .map(|l| {
            let mut end = l.len().min(MAX_LINE_BYTES);
            while !l.is_char_boundary(end) {
                end -= 1;
            }
            l[..end].to_string()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracker::Origin;

    fn ban() -> Ban {
        Ban {
            jail: "sshd".parse().unwrap(),
            target: "203.0.113.7".parse().unwrap(),
            since: 1_000,
            expires: Some(4_600),
            count: 2,
            origin: Origin::Failures,
        }
    }

    #[test]
    fn a_ban_round_trips() {
        let node: NodeName = "mail1".parse().unwrap();
        let message = BanMessage::ban(&node, &ban(), 3, &["line one".to_string()]);
        let text = String::from_utf8(message.encode()).unwrap();
        assert_eq!(
            text,
            r#"{"v":1,"action":"ban","node":"mail1","jail":"sshd","target":"203.0.113.7","since":1000,"expires":4600,"count":2,"failures":3,"lines":["line one"]}"#
        );
        assert_eq!(BanMessage::decode(text.as_bytes()).unwrap(), message);
        let unban = BanMessage::unban(&node, &ban(), 2_000);
        assert_eq!(BanMessage::decode(&unban.encode()).unwrap(), unban);
    }

    #[test]
    fn malformed_payloads() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "not a ban message"),
            (b"\xff\xfe", "not a ban message"),
            (b"[1,2]", "not a ban message"),
            (
                br#"{"v":1,"action":"ban","node":"a","jail":"sshd","target":"300.1.2.3","since":1}"#,
                "not an IP address",
            ),
            (
                br#"{"v":1,"action":"ban","node":"a.b","jail":"sshd","target":"192.0.2.1","since":1}"#,
                "not a valid node name",
            ),
            (
                br#"{"v":1,"action":"ban","node":"a","jail":"$(reboot)","target":"192.0.2.1","since":1}"#,
                "not a valid jail name",
            ),
            (
                br#"{"v":2,"action":"ban","node":"a","jail":"sshd","target":"192.0.2.1","since":1}"#,
                "version 2",
            ),
            (
                br#"{"v":1,"action":"drop","node":"a","jail":"sshd","target":"192.0.2.1","since":1}"#,
                "unknown variant",
            ),
            (
                br#"{"v":1,"action":"unban","node":"a","jail":"sshd","target":"192.0.2.1","since":1,"expires":5}"#,
                "no expiry",
            ),
        ];
        for (payload, expected) in cases {
            let error = BanMessage::decode(payload).unwrap_err().to_string();
            assert!(error.contains(expected), "{payload:?}: {error}");
        }
        let huge = vec![b' '; MAX_PAYLOAD + 1];
        assert_eq!(
            BanMessage::decode(&huge),
            Err(MessageError::TooLarge(MAX_PAYLOAD + 1))
        );
    }

    #[test]
    fn lines_are_bounded() {
        let lines: Vec<String> = (0..40).map(|i| format!("{i}{}", "é".repeat(600))).collect();
        let message = BanMessage::ban(&"a".parse().unwrap(), &ban(), 40, &lines);
        assert_eq!(message.lines.len(), MAX_LINES);
        assert!(message.lines[0].starts_with("8"));
        assert!(message.lines.iter().all(|l| l.len() <= MAX_LINE_BYTES));
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let payload = br#"{"v":1,"action":"ban","node":"a","jail":"sshd","target":"192.0.2.0/24","since":1,"expires":null,"extra":{"x":1}}"#;
        let message = BanMessage::decode(payload).unwrap();
        assert_eq!(message.expires, None);
        assert_eq!(message.target.to_string(), "192.0.2.0/24");
    }
}
