//! The control protocol, shared by the daemon and the client.
//!
//! Framing: one JSON object per line, each way. A request line longer than [`MAX_REQUEST`] is
//! refused. A bulk ban (`"stream": true`) is followed by one address per line (each also capped),
//! ended by an empty line or by the client closing its side, so a blocklist of any length goes
//! in one request without one giant line. Every request gets exactly one reply line:
//! `{"ok": true, ...}` or `{"ok": false, "error": "..."}`. The JSON shapes are documented in the
//! README ("Control socket and JSON output") and are stable: fields may be added, never renamed.
//!
//! A big reply (`banned` with 100k bans is ~11 MB of JSON) can travel as a [`SharedLine`]:
//! serialized once, straight from borrowed data, and written to every client that asked for the
//! same state from one reference-counted buffer, instead of one built copy per client.

mod code;
pub mod firewall;
mod line;

use serde::{Deserialize, Serialize};

pub use code::ErrorCode;
pub use firewall::{FirewallStatus, ForwardEntry, RuleEntry, SessionText};
pub use line::{ReplyLine, SharedLine};

use nftjail_core::addr::BanTarget;
use nftjail_core::state::{BanEvent, EventAction};
use nftjail_core::tracker::{JailStats, Origin};

/// The longest request line accepted.
pub const MAX_REQUEST: usize = 64 * 1024;

/// A request from a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "lowercase", deny_unknown_fields)]
pub enum Request {
    /// Is the daemon alive? (never mutates)
    Ping,
    Status {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        jail: Option<String>,
    },
    /// Bans `targets` (and, with `stream`, every address line that follows).
    Ban {
        jail: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        targets: Vec<String>,
        /// fail2ban notation (`1h`, `180d`, `-1`); the jail's bantime when absent.
        #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
        length: Option<String>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        stream: bool,
    },
    /// Unbans `target` from `jail` (all jails when absent), or everything in `jail` with `all`.
    Unban {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        jail: Option<String>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        all: bool,
    },
    Banned {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        jail: Option<String>,
    },
    Reload,
    /// The firewall's state (`nftjail firewall status`).
    #[serde(rename = "firewall")]
    Firewall,
    /// Switches the firewall on; with `confirm_within` (`60s`), it switches back off by itself
    /// unless `firewall_confirm` arrives in time. `session`: the SSH session the request came
    /// over, kept open by the lock-out check.
    #[serde(rename = "firewall_enable")]
    FirewallEnable {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        confirm_within: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<SessionText>,
    },
    #[serde(rename = "firewall_disable")]
    FirewallDisable,
    #[serde(rename = "firewall_confirm")]
    FirewallConfirm,
    /// Every rule, in the order they apply.
    #[serde(rename = "rules")]
    Rules,
    /// Adds a rule after all others; the reply carries its `id`.
    #[serde(rename = "rule_add")]
    RuleAdd {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        chain: Option<String>,
        protocol: String,
        #[serde(deserialize_with = "firewall::port_text")]
        port: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source: Option<String>,
        action: String,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        comment: String,
    },
    #[serde(rename = "rule_delete")]
    RuleDelete {
        id: u64,
    },
    #[serde(rename = "forwards")]
    Forwards,
    /// Adds a port forward; the reply carries its `id`.
    #[serde(rename = "forward_add")]
    ForwardAdd {
        protocol: String,
        #[serde(deserialize_with = "firewall::port_text")]
        port: String,
        to: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source: Option<String>,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        comment: String,
        /// The SSH session the request came over: a forward of its port is refused.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<SessionText>,
    },
    #[serde(rename = "forward_delete")]
    ForwardDelete {
        id: u64,
    },
    /// Takes bans decided elsewhere (fail2ban's database, `nftjail import-fail2ban --db`) with
    /// their own times and ban count. With `stream`, one [`ImportedBan`] object a line follows,
    /// ended by an empty line (as a streamed ban).
    Import {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        bans: Vec<ImportedBan>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        stream: bool,
    },
    /// The ban log: bans, unbans and expiries kept for `dbpurgeage`, oldest first.
    Log {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        jail: Option<String>,
        /// Only events at or after this instant (Unix seconds).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<i64>,
        /// Only events after this sequence number (the `last` of a previous reply).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<u64>,
    },
}

/// One ban of an `import` request. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportedBan {
    pub jail: String,
    /// An address or CIDR prefix.
    pub target: String,
    pub since: i64,
    /// `null`: permanent.
    pub expires: Option<i64>,
    /// The target's ban count (its `count`-th ban), for escalation.
    pub count: u32,
}

impl Request {
    /// Whether the request changes anything (and so needs a privileged peer).
    pub fn mutates(&self) -> bool {
        matches!(
            self,
            Request::Ban { .. }
                | Request::Unban { .. }
                | Request::Reload
                | Request::FirewallEnable { .. }
                | Request::FirewallDisable
                | Request::FirewallConfirm
                | Request::RuleAdd { .. }
                | Request::RuleDelete { .. }
                | Request::ForwardAdd { .. }
                | Request::ForwardDelete { .. }
                | Request::Import { .. }
        )
    }
}

/// One jail in `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JailSummary {
    pub name: String,
    /// `log`, `recidive` or `manual`.
    pub kind: String,
    #[serde(flatten)]
    pub stats: JailStatsReply,
}

/// The counters of a jail (fail2ban-client's names).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JailStatsReply {
    pub currently_failed: usize,
    pub total_failed: u64,
    pub currently_banned: usize,
    pub total_banned: u64,
    #[serde(default)]
    pub ignored: u64,
    #[serde(default)]
    pub evicted: u64,
}

impl From<JailStats> for JailStatsReply {
    fn from(s: JailStats) -> JailStatsReply {
        JailStatsReply {
            currently_failed: s.currently_failed,
            total_failed: s.total_failed,
            currently_banned: s.currently_banned,
            total_banned: s.total_banned,
            ignored: s.ignored,
            evicted: s.evicted,
        }
    }
}

/// One log source of a jail in `status JAIL`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceStatus {
    /// A file path, or `journal MATCHES`.
    pub name: String,
    /// Byte offset for files, cursor for the journal; absent before the first read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<String>,
}

/// `status JAIL`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JailDetail {
    pub name: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    pub sources: Vec<SourceStatus>,
    #[serde(flatten)]
    pub stats: JailStatsReply,
    /// Log lines read by the jail's source.
    pub lines_read: u64,
    /// Lines the filter found to be failures.
    pub lines_matched: u64,
    /// Unreadable lines skipped (invalid UTF-8, binary, too long, no timestamp).
    pub lines_skipped: u64,
    pub maxretry: u32,
    pub findtime: u64,
    /// Seconds, or `null` when permanent.
    pub bantime: Option<u64>,
    /// The recidive jail: bans (in the other jails) within `findtime` that trigger it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maxbans: Option<u32>,
    /// The ports banned: `all`, or a list such as `22, 465, 49152:65534`.
    #[serde(default)]
    pub ports: String,
    /// Lines that might have been failures, skipped without their regexes because they were
    /// logged more than `findtime` ago.
    #[serde(default)]
    pub lines_too_old: u64,
    /// The nftables sets holding this jail's bans.
    pub sets: Vec<String>,
    pub banned: Vec<String>,
}

/// One active ban in `banned`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BanEntry {
    pub jail: String,
    pub target: String,
    /// Unix seconds.
    pub since: i64,
    /// Unix seconds, `null` when permanent.
    pub expires: Option<i64>,
    pub count: u32,
    pub origin: Origin,
}

/// A [`BanEntry`] that borrows what it shows, to serialize a `banned` reply without copying
/// every ban into owned strings first. Serializes exactly as a [`BanEntry`].
#[derive(Debug, Clone, Copy, Serialize)]
pub struct BanEntryRef<'a> {
    pub jail: &'a str,
    pub target: &'a BanTarget,
    pub since: i64,
    pub expires: Option<i64>,
    pub count: u32,
    pub origin: &'a Origin,
}

/// One entry of the ban log (`log`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEvent {
    /// Increases by one with every event, across restarts.
    pub seq: u64,
    /// When it happened (Unix seconds).
    pub time: i64,
    /// `ban`, `unban` or `expire`.
    pub action: EventAction,
    pub jail: String,
    pub target: String,
    /// The ban's length in seconds, `null` when permanent.
    pub duration: Option<u64>,
    /// The ban's start and end (Unix seconds; `expires` null when permanent).
    pub since: i64,
    pub expires: Option<i64>,
    pub count: u32,
    pub origin: Origin,
    /// The log lines that led to a ban, while the daemon keeps them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<String>,
}

impl From<&BanEvent> for LogEvent {
    fn from(e: &BanEvent) -> LogEvent {
        LogEvent {
            seq: e.seq,
            time: e.at,
            action: e.action,
            jail: e.jail.to_string(),
            target: e.target.to_string(),
            duration: e.length(),
            since: e.since,
            expires: e.expires,
            count: e.count,
            origin: e.origin.clone(),
            lines: e.lines.clone(),
        }
    }
}

/// An input a bulk ban could not use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rejected {
    /// 1-based line of the streamed list (0 for `targets`).
    pub line: usize,
    pub text: String,
    pub error: String,
}

/// A reply. `ok` tells success; the other fields depend on the request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why, as a stable word (with `error`, on refusals that know their reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<ErrorCode>,
    /// `PATH:LINE:COL: message` lines of a refused reload.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jails: Option<Vec<JailSummary>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jail: Option<JailDetail>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bans: Option<Vec<BanEntry>>,
    /// Bans newly made by a `ban`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub banned: Option<usize>,
    /// Bans whose timeout a `ban` refreshed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refreshed: Option<usize>,
    /// `import`: bans left as they were (already in place at least as long, or over by now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept: Option<usize>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<Rejected>,
    /// `unban`: `JAIL TARGET` pairs removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unbanned: Option<Vec<(String, String)>>,
    /// `reload`: bans parked because their jail was disabled or removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parked: Option<usize>,
    /// `reload`: parked bans put back because their jail came back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored: Option<usize>,
    /// `rules`: every rule in the order they apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<RuleEntry>>,
    /// `forwards`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwards: Option<Vec<ForwardEntry>>,
    /// `rule_add`, `forward_add`: the new entry's id (`rule_delete`, `forward_delete`: the
    /// deleted one's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// `firewall` and the firewall's switches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firewall: Option<FirewallStatus>,
    /// Things the request did not fail on but that need a look (`net.ipv4.ip_forward` is off).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// `status`: the fleet (`[cluster]`), when on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<crate::fleet::ClusterStatus>,
    /// `log`: the events asked for, oldest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<LogEvent>>,
    /// `log`: the sequence number of the daemon's last event (ask for what comes `after` it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<u64>,
    /// The whole reply already serialized (see [`SharedLine`]). When set, it is what goes on
    /// the wire and the fields above are not looked at. Never part of the JSON.
    #[serde(skip)]
    pub line: Option<SharedLine>,
}

impl Reply {
    pub fn ok() -> Reply {
        Reply {
            ok: true,
            ..Reply::default()
        }
    }

    pub fn error(message: impl Into<String>) -> Reply {
        Reply {
            ok: false,
            error: Some(message.into()),
            ..Reply::default()
        }
    }

    /// A refusal with its stable reason.
    pub fn refuse(code: ErrorCode, message: impl Into<String>) -> Reply {
        Reply {
            code: Some(code),
            ..Reply::error(message)
        }
    }

    /// A reply whose body is a line serialized beforehand (successful by construction: only
    /// answers are shared, never refusals).
    pub fn shared(line: SharedLine) -> Reply {
        Reply {
            line: Some(line),
            ..Reply::ok()
        }
    }

    /// The reply as one line (with its newline); a copy of the shared line when there is one.
    pub fn to_line(&self) -> Vec<u8> {
        match &self.line {
            Some(line) => line.to_vec(),
            None => serialize_line(self),
        }
    }

    /// The reply as the bytes to write, consuming it: the shared line itself (no copy), or the
    /// reply serialized (and its fields freed before the bytes are written).
    pub fn into_line(self) -> ReplyLine {
        match self.line {
            Some(line) => ReplyLine::Shared(line),
            None => ReplyLine::Owned(serialize_line(&self)),
        }
    }
}

fn serialize_line(value: &impl Serialize) -> Vec<u8> {
    let mut line = serde_json::to_vec(value).expect("invariant: replies serialize");
    line.push(b'\n');
    line
}

/// Why a request line was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error(
        "request too large (the limit is {MAX_REQUEST} bytes; stream long address lists with \"stream\": true)"
    )]
    TooLarge,
    #[error("request is not UTF-8")]
    NotUtf8,
    #[error("malformed request: {0}")]
    Malformed(String),
}

/// Decodes one request line (without its newline).
pub fn decode_request(line: &[u8]) -> Result<Request, RequestError> {
    if line.len() > MAX_REQUEST {
        return Err(RequestError::TooLarge);
    }
    let text = std::str::from_utf8(line).map_err(|_| RequestError::NotUtf8)?;
    serde_json::from_str(text.trim()).map_err(|e| RequestError::Malformed(e.to_string()))
}

/// Encodes a request as one line (with its newline).
pub fn encode_request(request: &Request) -> Vec<u8> {
    let mut line = serde_json::to_vec(request).expect("invariant: requests serialize");
    line.push(b'\n');
    line
}

/// Parses one line of a streamed blocklist: an address or CIDR, optionally followed by a
/// comment (`#` or `;`) — the formats of common public blocklists. `Ok(None)` for a blank or
/// comment-only line.
pub fn parse_list_line(line: &str) -> Result<Option<BanTarget>, String> {
    let text = line.split(['#', ';']).next().unwrap_or("").trim();
    if text.is_empty() {
        return Ok(None);
    }
    // Some lists carry extra columns after the address.
    let word = text.split_whitespace().next().unwrap_or(text);
    word.parse::<BanTarget>()
        .map(Some)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_through_their_json() {
        let requests = [
            Request::Ping,
            Request::Status { jail: None },
            Request::Status {
                jail: Some("sshd".into()),
            },
            Request::Ban {
                jail: "sshd".into(),
                targets: vec!["192.0.2.1".into()],
                length: Some("1h".into()),
                stream: false,
            },
            Request::Ban {
                jail: "manual".into(),
                targets: vec![],
                length: None,
                stream: true,
            },
            Request::Unban {
                target: Some("192.0.2.1".into()),
                jail: None,
                all: false,
            },
            Request::Unban {
                target: None,
                jail: Some("sshd".into()),
                all: true,
            },
            Request::Banned { jail: None },
            Request::Reload,
            Request::Firewall,
            Request::FirewallEnable {
                confirm_within: Some("60s".into()),
                session: Some(SessionText {
                    client: "198.51.100.7".into(),
                    port: 22,
                }),
            },
            Request::FirewallDisable,
            Request::FirewallConfirm,
            Request::Rules,
            Request::RuleAdd {
                chain: Some("input".into()),
                protocol: "tcp".into(),
                port: "8080".into(),
                source: Some("192.0.2.0/24".into()),
                action: "accept".into(),
                comment: "panel".into(),
            },
            Request::RuleDelete { id: 7 },
            Request::Forwards,
            Request::ForwardAdd {
                protocol: "tcp".into(),
                port: "2525".into(),
                to: "10.0.0.2:25".into(),
                source: None,
                comment: String::new(),
                session: None,
            },
            Request::ForwardDelete { id: 8 },
            Request::Import {
                bans: vec![ImportedBan {
                    jail: "sshd".into(),
                    target: "192.0.2.1".into(),
                    since: 1_800_000_000,
                    expires: None,
                    count: 3,
                }],
                stream: true,
            },
            Request::Log {
                jail: Some("sshd".into()),
                since: Some(1_800_000_000),
                after: Some(41),
            },
            Request::Log {
                jail: None,
                since: None,
                after: None,
            },
        ];
        for r in requests {
            let line = encode_request(&r);
            assert_eq!(
                decode_request(line.strip_suffix(b"\n").unwrap()),
                Ok(r.clone()),
                "{}",
                String::from_utf8_lossy(&line)
            );
        }
        assert_eq!(
            encode_request(&Request::Status { jail: None }),
            b"{\"command\":\"status\"}\n"
        );
        let ban = br#"{"command":"ban","jail":"sshd","targets":["192.0.2.1"],"for":"1h"}"#;
        assert!(decode_request(ban).unwrap().mutates());
        assert!(
            !decode_request(br#"{"command":"banned"}"#)
                .unwrap()
                .mutates()
        );
        // A port may come as a number from an HTTP client.
        let add = br#"{"command":"rule_add","protocol":"tcp","port":22,"action":"accept"}"#;
        match decode_request(add).unwrap() {
            Request::RuleAdd { port, chain, .. } => {
                assert_eq!((port.as_str(), chain), ("22", None))
            }
            other => panic!("{other:?}"),
        }
        assert!(
            decode_request(br#"{"command":"rule_delete","id":3}"#)
                .unwrap()
                .mutates()
        );
        assert!(!decode_request(br#"{"command":"rules"}"#).unwrap().mutates());
    }

    #[test]
    fn hostile_lines_are_refused_with_a_reason() {
        let cases: [(&[u8], &str); 6] = [
            (b"", "malformed"),
            (b"garbage", "malformed"),
            (b"{\"command\":\"selfdestruct\"}", "unknown variant"),
            (b"{\"command\":\"status\",\"extra\":1}", "unknown field"),
            (b"\xff\xfe", "not UTF-8"),
            (b"[1,2,3]", "malformed"),
        ];
        for (line, needle) in cases {
            let err = decode_request(line).unwrap_err().to_string();
            assert!(
                err.contains(needle),
                "{:?}: {err}",
                String::from_utf8_lossy(line)
            );
        }
        let huge = vec![b' '; MAX_REQUEST + 1];
        assert_eq!(decode_request(&huge), Err(RequestError::TooLarge));
    }

    #[test]
    fn blocklist_lines() {
        assert_eq!(
            parse_list_line("192.0.2.1"),
            Ok(Some("192.0.2.1".parse().unwrap()))
        );
        assert_eq!(
            parse_list_line("  198.51.100.0/24 ; SBL12345"),
            Ok(Some("198.51.100.0/24".parse().unwrap()))
        );
        assert_eq!(
            parse_list_line("2001:db8::1 # scanner"),
            Ok(Some("2001:db8::1".parse().unwrap()))
        );
        assert_eq!(
            parse_list_line("203.0.113.9\t17\t2026-11-01"),
            Ok(Some("203.0.113.9".parse().unwrap()))
        );
        assert_eq!(parse_list_line("# header"), Ok(None));
        assert_eq!(parse_list_line(""), Ok(None));
        assert!(parse_list_line("not-an-ip").is_err());
    }

    #[test]
    fn replies_omit_empty_fields() {
        assert_eq!(
            String::from_utf8(Reply::ok().to_line()).unwrap(),
            "{\"ok\":true}\n"
        );
        assert_eq!(
            String::from_utf8(Reply::error("no such jail").to_line()).unwrap(),
            "{\"ok\":false,\"error\":\"no such jail\"}\n"
        );
        assert_eq!(
            String::from_utf8(Reply::refuse(ErrorCode::UnknownJail, "no such jail").to_line())
                .unwrap(),
            "{\"ok\":false,\"error\":\"no such jail\",\"code\":\"unknown_jail\"}\n"
        );
    }

    #[test]
    fn a_shared_banned_line_is_the_reply_it_replaces() {
        let targets: Vec<BanTarget> = ["192.0.2.1", "2001:db8::/48"]
            .iter()
            .map(|t| t.parse().unwrap())
            .collect();
        let entries = [
            BanEntryRef {
                jail: "sshd",
                target: &targets[0],
                since: 10,
                expires: Some(3_610),
                count: 2,
                origin: &Origin::Failures,
            },
            BanEntryRef {
                jail: "manual \"x\"",
                target: &targets[1],
                since: 11,
                expires: None,
                count: 1,
                origin: &Origin::Manual,
            },
        ];
        let owned = Reply {
            bans: Some(
                entries
                    .iter()
                    .map(|e| BanEntry {
                        jail: e.jail.to_string(),
                        target: e.target.to_string(),
                        since: e.since,
                        expires: e.expires,
                        count: e.count,
                        origin: e.origin.clone(),
                    })
                    .collect(),
            ),
            ..Reply::ok()
        };
        let shared = SharedLine::banned(entries.iter().copied());
        assert_eq!(shared.to_vec(), owned.to_line());
        assert_eq!(
            SharedLine::banned(std::iter::empty()).to_vec(),
            b"{\"ok\":true,\"bans\":[]}\n"
        );
        // Written as is, from the same buffer, however often it is handed out.
        let reply = Reply::shared(shared.clone());
        assert_eq!(reply.to_line(), shared.to_vec());
        match reply.clone().into_line() {
            ReplyLine::Shared(line) => assert!(line.same_buffer(&shared)),
            ReplyLine::Owned(_) => panic!("a shared reply was copied"),
        }
        assert_eq!(shared.holders(), 2, "`shared` and `reply`");
        // What the client reads back is the ordinary reply.
        let back: Reply = serde_json::from_slice(&shared.to_vec()).unwrap();
        assert_eq!(back, owned);
    }
}
