//! The check of a peer's message before it may ban anything here.
//!
//! Receives a message as the stream delivered it (subject, payload, the stream's timestamp)
//! and the clock; emits a [`PeerDecision`] (a ban with its absolute expiry, an unban, or our
//! own message coming back) or a [`Rejection`] that says why. Checked here: the payload parses
//! ([`BanMessage::decode`]), the node in the message is the node of the subject (the server's
//! permissions let each node publish only under its own name, so a node cannot speak for
//! another), the prefix is not broader than the limits, the ban is not over already, and the
//! peer stays under its rate (a token bucket over the *stream's* timestamps, so a node that
//! catches up on an hour of bans is not throttled, but a node flooding the stream is). The
//! local ignore lists and ignoreself are the tracker's (`Tracker::decide`). It never does I/O.

use std::collections::HashMap;

use super::message::{BanMessage, MessageAction};
use super::{NodeName, parse_subject};
use crate::addr::{BanTarget, Family};

/// The limits a peer's bans must keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerLimits {
    /// An IPv4 prefix shorter than this is refused (`min_prefix_v4`, default 16).
    pub min_prefix_v4: u8,
    /// An IPv6 prefix shorter than this is refused (`min_prefix_v6`, default 32).
    pub min_prefix_v6: u8,
    /// Messages per second a peer may sustain (`peer_rate`).
    pub rate: u32,
    /// Messages a peer may send at once above its rate (`peer_burst`).
    pub burst: u32,
}

impl Default for PeerLimits {
    fn default() -> PeerLimits {
        PeerLimits {
            min_prefix_v4: 16,
            min_prefix_v6: 32,
            rate: 1_000,
            burst: 20_000,
        }
    }
}

/// What a peer's message asks for, once checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerDecision {
    /// This node's own message, read back from the stream: nothing to do.
    Own,
    Ban {
        node: NodeName,
        target: BanTarget,
        /// Unix seconds; `None`: permanent.
        expires: Option<i64>,
        message: BanMessage,
    },
    Unban {
        node: NodeName,
        target: BanTarget,
    },
}

/// Why a peer's message bans nothing here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("node {node:?} speaks on the subject of node {subject_node:?}")]
    Impostor {
        subject_node: String,
        node: NodeName,
    },
    #[error("{target} is broader than /{min} (the limit for a peer's ban)")]
    TooBroad { target: BanTarget, min: u8 },
    #[error("the ban of {target} is over already")]
    Expired { target: BanTarget },
    #[error("node {node} is over its rate of bans")]
    RateLimited { node: NodeName },
    /// The tracker refused it (the local ignore lists, ignoreself, an overlap).
    #[error("{0}")]
    Refused(String),
}

impl Rejection {
    /// The counter it goes to (metrics, `status`).
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::Malformed(_) => "malformed",
            Rejection::Impostor { .. } => "impostor",
            Rejection::TooBroad { .. } => "too_broad",
            Rejection::Expired { .. } => "expired",
            Rejection::RateLimited { .. } => "rate",
            Rejection::Refused(_) => "refused",
        }
    }

    /// Every reason, in the order `status` lists them.
    pub const REASONS: [&'static str; 6] = [
        "malformed",
        "impostor",
        "too_broad",
        "expired",
        "rate",
        "refused",
    ];
}

/// A peer's token bucket, over the stream's clock (milliseconds).
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at_ms: i64,
}

/// Checks peers' messages for one node.
#[derive(Debug)]
pub struct PeerCheck {
    own: NodeName,
    limits: PeerLimits,
    buckets: HashMap<NodeName, Bucket>,
}

impl PeerCheck {
    pub fn new(own: NodeName, limits: PeerLimits) -> PeerCheck {
        PeerCheck {
            own,
            limits,
            buckets: HashMap::new(),
        }
    }

    /// Checks one message: `stamped_ms` is the stream's timestamp of it (Unix milliseconds),
    /// `now` the local clock (Unix seconds).
    pub fn check(
        &mut self,
        subject: &str,
        payload: &[u8],
        stamped_ms: i64,
        now: i64,
    ) -> Result<PeerDecision, Rejection> {
        let Some((subject_node, _jail)) = parse_subject(subject) else {
            return Err(Rejection::Malformed(format!(
                "subject {subject:?} is not nftjail.bans.<node>.<jail>"
            )));
        };
        if subject_node == self.own.as_str() {
            return Ok(PeerDecision::Own);
        }
        let message =
            BanMessage::decode(payload).map_err(|e| Rejection::Malformed(e.to_string()))?;
        if message.node.as_str() != subject_node {
            return Err(Rejection::Impostor {
                subject_node: subject_node.to_string(),
                node: message.node,
            });
        }
        self.take_token(&message.node, stamped_ms)?;
        let target = message.target;
        if let BanTarget::Net(prefix) = target {
            let min = match prefix.family() {
                Family::V4 => self.limits.min_prefix_v4,
                Family::V6 => self.limits.min_prefix_v6,
            };
            if prefix.prefix_len() < min {
                return Err(Rejection::TooBroad { target, min });
            }
        }
        match message.action {
            MessageAction::Unban => Ok(PeerDecision::Unban {
                node: message.node,
                target,
            }),
            MessageAction::Ban => {
                if message.expires.is_some_and(|e| e <= now) {
                    return Err(Rejection::Expired { target });
                }
                Ok(PeerDecision::Ban {
                    node: message.node.clone(),
                    target,
                    expires: message.expires,
                    message,
                })
            }
        }
    }

    /// Takes one token of `node`'s bucket at `at_ms`, or refuses.
    fn take_token(&mut self, node: &NodeName, at_ms: i64) -> Result<(), Rejection> {
        let limits = self.limits;
        let bucket = self.buckets.entry(node.clone()).or_insert(Bucket {
            tokens: f64::from(limits.burst),
            at_ms,
        });
        let elapsed = at_ms.saturating_sub(bucket.at_ms).max(0) as f64 / 1000.0;
        bucket.tokens =
            (bucket.tokens + elapsed * f64::from(limits.rate)).min(f64::from(limits.burst));
        bucket.at_ms = bucket.at_ms.max(at_ms);
        if bucket.tokens < 1.0 {
            return Err(Rejection::RateLimited { node: node.clone() });
        }
        bucket.tokens -= 1.0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;

    fn payload(node: &str, target: &str, expires: &str) -> Vec<u8> {
        format!(
            r#"{{"v":1,"action":"ban","node":"{node}","jail":"sshd","target":"{target}","since":{NOW},"expires":{expires},"count":1,"failures":3}}"#
        )
        .into_bytes()
    }

    fn checker() -> PeerCheck {
        PeerCheck::new("b".parse().unwrap(), PeerLimits::default())
    }

    #[test]
    fn decisions_and_rejections() {
        let later = (NOW + 600).to_string();
        let cases: Vec<(&str, Vec<u8>, Result<&str, &str>)> = vec![
            (
                "nftjail.bans.a.sshd",
                payload("a", "203.0.113.7", &later),
                Ok("ban"),
            ),
            (
                "nftjail.bans.a.sshd",
                payload("a", "203.0.113.0/24", "null"),
                Ok("ban"),
            ),
            (
                "nftjail.bans.a.sshd",
                payload("a", "203.0.0.0/16", &later),
                Ok("ban"),
            ),
            (
                "nftjail.bans.a.sshd",
                payload("a", "2001:db8::/32", &later),
                Ok("ban"),
            ),
            ("nftjail.bans.b.sshd", b"garbage".to_vec(), Ok("own")),
            (
                "nftjail.bans.a.sshd",
                payload("a", "203.0.0.0/15", &later),
                Err("too_broad"),
            ),
            (
                "nftjail.bans.a.sshd",
                payload("a", "0.0.0.0/0", &later),
                Err("too_broad"),
            ),
            (
                "nftjail.bans.a.sshd",
                payload("a", "2001:db8::/31", &later),
                Err("too_broad"),
            ),
            (
                "nftjail.bans.a.sshd",
                payload("c", "203.0.113.7", &later),
                Err("impostor"),
            ),
            (
                "nftjail.bans.a.sshd",
                payload("a", "203.0.113.7", &NOW.to_string()),
                Err("expired"),
            ),
            (
                "nftjail.bans.a.sshd",
                payload("a", "203.0.113.256", &later),
                Err("malformed"),
            ),
            (
                "nftjail.bans.a.sshd",
                b"{\"v\":1}".to_vec(),
                Err("malformed"),
            ),
            (
                "nftjail.bans.a",
                payload("a", "203.0.113.7", &later),
                Err("malformed"),
            ),
        ];
        for (subject, payload, expected) in cases {
            let got = checker().check(subject, &payload, NOW * 1000, NOW);
            let got = match &got {
                Ok(PeerDecision::Ban { .. }) => Ok("ban"),
                Ok(PeerDecision::Unban { .. }) => Ok("unban"),
                Ok(PeerDecision::Own) => Ok("own"),
                Err(r) => Err(r.reason()),
            };
            assert_eq!(
                got,
                expected,
                "{subject} {}",
                String::from_utf8_lossy(&payload)
            );
        }
    }

    #[test]
    fn an_unban_names_its_target() {
        let payload = br#"{"v":1,"action":"unban","node":"a","jail":"sshd","target":"203.0.113.7","since":5}"#;
        let got = checker()
            .check("nftjail.bans.a.sshd", payload, 0, NOW)
            .unwrap();
        assert_eq!(
            got,
            PeerDecision::Unban {
                node: "a".parse().unwrap(),
                target: "203.0.113.7".parse().unwrap()
            }
        );
    }

    #[test]
    fn the_rate_follows_the_stream_clock_not_the_arrival() {
        let limits = PeerLimits {
            rate: 10,
            burst: 20,
            ..PeerLimits::default()
        };
        let mut check = PeerCheck::new("b".parse().unwrap(), limits);
        let ban = payload("a", "203.0.113.7", "null");
        let at = NOW * 1000;
        // A burst: 20 pass, the 21st in the same millisecond is refused.
        for _ in 0..20 {
            assert!(check.check("nftjail.bans.a.sshd", &ban, at, NOW).is_ok());
        }
        let refused = check.check("nftjail.bans.a.sshd", &ban, at, NOW);
        assert_eq!(refused.unwrap_err().reason(), "rate");
        // Another peer has its own bucket.
        let other = payload("c", "203.0.113.8", "null");
        assert!(check.check("nftjail.bans.c.sshd", &other, at, NOW).is_ok());
        // Messages stamped a second apart each (a catch-up read all at once) all pass.
        for i in 1..=100 {
            assert!(
                check
                    .check("nftjail.bans.a.sshd", &ban, at + i * 1000, NOW)
                    .is_ok()
            );
        }
    }
}
