//! Rules and forwards as text: the fields people write, checked one by one, and the one JSON
//! shape they take in the state log and on the control socket.
//!
//! Receives field values (`chain = "input"`, `port = "1000-2000"`, `to = "10.0.0.2:993"`, …);
//! emits [`Rule`]s and [`Forward`]s, or a [`FieldError`] that names the field and the value.
//! Ports arrive as numbers (`22`, `1000-2000`, `1000:2000`, `25,465,587`): service names are
//! resolved by the daemon before, since reading `/etc/services` is I/O. The JSON shape
//! ([`RuleText`], [`ForwardText`]) is what `nftjail rule list --json` prints and what the state
//! log stores, so a record written by one version reads the same in the next.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use super::{Action, Chain, Forward, Policy, Rule};
use crate::addr::BanTarget;
use crate::ports::{PortRange, Protocol, normalize_ports};

/// The longest comment, in bytes (nft shows it; its own limit is 128 with the rule's id).
pub const MAX_COMMENT: usize = 100;

/// A field that is not what it should be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The field's name as written in the files and requests (`port`, `source`, …).
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &'static str, message: impl Into<String>) -> FieldError {
        FieldError {
            field,
            message: message.into(),
        }
    }
}

pub fn parse_chain(text: &str) -> Result<Chain, FieldError> {
    match text {
        "input" => Ok(Chain::Input),
        "output" => Ok(Chain::Output),
        other => Err(FieldError::new(
            "chain",
            format!("{other:?}: use \"input\" or \"output\""),
        )),
    }
}

pub fn parse_protocol(text: &str) -> Result<Protocol, FieldError> {
    match text {
        "tcp" => Ok(Protocol::Tcp),
        "udp" => Ok(Protocol::Udp),
        other => Err(FieldError::new(
            "protocol",
            format!("{other:?}: use \"tcp\" or \"udp\""),
        )),
    }
}

pub fn protocol_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    }
}

pub fn parse_action(text: &str) -> Result<Action, FieldError> {
    match text {
        "accept" | "allow" => Ok(Action::Accept),
        "drop" | "deny" => Ok(Action::Drop),
        "reject" => Ok(Action::Reject),
        other => Err(FieldError::new(
            "action",
            format!("{other:?}: use \"accept\", \"drop\" or \"reject\""),
        )),
    }
}

/// A default policy; `field` names the key (`default_input`, …).
pub fn parse_policy(field: &'static str, text: &str) -> Result<Policy, FieldError> {
    match text {
        "accept" | "allow" => Ok(Policy::Accept),
        "drop" | "deny" => Ok(Policy::Drop),
        other => Err(FieldError::new(
            field,
            format!("{other:?}: use \"accept\" or \"drop\""),
        )),
    }
}

/// An address or CIDR prefix, IPv4 or IPv6.
pub fn parse_source(text: &str) -> Result<BanTarget, FieldError> {
    text.parse::<BanTarget>()
        .map_err(|e| FieldError::new("source", e.to_string()))
}

/// Port numbers, ranges (`1000-2000` or `1000:2000`) and comma-separated lists of them; sorted
/// and merged. Port 0 and anything past 65535 are refused, and so is `all`: a whole address is
/// blocked with a ban, not a rule.
pub fn parse_ports(text: &str) -> Result<Vec<PortRange>, FieldError> {
    let error = |message: String| FieldError::new("port", message);
    let number = |word: &str| -> Result<u16, FieldError> {
        let word = word.trim();
        match word.parse::<u32>() {
            Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
            Ok(n) => Err(error(format!("port {n} is out of range (1-65535)"))),
            Err(_) if word.eq_ignore_ascii_case("all") => Err(error(
                "\"all\" is not a port: give a port, a range or a list (a whole address is \
                 blocked with `nftjail ban manual ADDR`)"
                    .to_string(),
            )),
            Err(_) => Err(error(format!("{word:?} is not a port number"))),
        }
    };
    let mut ranges = Vec::new();
    for word in text.split(',').map(str::trim) {
        if word.is_empty() {
            return Err(error(format!("{text:?}: an empty port in the list")));
        }
        let range = match word.split_once(['-', ':']) {
            Some((first, last)) => {
                let (first, last) = (number(first)?, number(last)?);
                if first > last {
                    return Err(error(format!("range {word:?} is reversed")));
                }
                PortRange { first, last }
            }
            None => PortRange::single(number(word)?),
        };
        ranges.push(range);
    }
    Ok(normalize_ports(&ranges))
}

/// `22`, `1000-2000`, `25,465,587`: the form [`parse_ports`] reads back.
pub fn format_ports(ports: &[PortRange]) -> String {
    ports
        .iter()
        .map(|r| match r.first == r.last {
            true => r.first.to_string(),
            false => format!("{}-{}", r.first, r.last),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A comment shown in `nft list ruleset`: printable, without `"` or `\`, at most
/// [`MAX_COMMENT`] bytes.
pub fn check_comment(text: &str) -> Result<(), FieldError> {
    if text.len() > MAX_COMMENT {
        return Err(FieldError::new(
            "comment",
            format!("{} bytes; at most {MAX_COMMENT}", text.len()),
        ));
    }
    if let Some(c) = text
        .chars()
        .find(|c| c.is_control() || *c == '"' || *c == '\\')
    {
        return Err(FieldError::new(
            "comment",
            format!("{c:?} is not allowed (no quotes, backslashes or control characters)"),
        ));
    }
    Ok(())
}

/// The backend of a forward: `ADDR:PORT`, `[IPv6]:PORT`.
pub fn parse_to(text: &str) -> Result<SocketAddr, FieldError> {
    let error = |message: String| FieldError::new("to", message);
    let to: SocketAddr = text.trim().parse().map_err(|_| {
        error(format!(
            "{text:?} is not ADDR:PORT (write IPv6 as [2001:db8::2]:993)"
        ))
    })?;
    let ip = match to.ip() {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    if to.port() == 0 {
        return Err(error(format!("{text:?}: port 0 is not a port")));
    }
    if ip.is_unspecified() || ip.is_multicast() || ip.is_loopback() {
        return Err(error(format!(
            "{ip} cannot receive forwarded connections (unspecified, multicast or loopback)"
        )));
    }
    if let IpAddr::V4(v4) = ip
        && v4.is_broadcast()
    {
        return Err(error(format!("{ip} is a broadcast address")));
    }
    Ok(SocketAddr::new(ip, to.port()))
}

impl Rule {
    /// A rule from its typed fields: `ports` normalized, comment checked.
    pub fn new(
        chain: Chain,
        protocol: Protocol,
        ports: &[PortRange],
        source: Option<BanTarget>,
        action: Action,
        comment: &str,
        protected: bool,
    ) -> Result<Rule, FieldError> {
        if ports.is_empty() {
            return Err(FieldError::new("port", "no port given"));
        }
        check_comment(comment)?;
        Ok(Rule {
            chain,
            protocol,
            ports: normalize_ports(ports),
            source,
            action,
            comment: comment.to_string(),
            protected,
        })
    }
}

impl Forward {
    /// A forward from its typed fields: the source must be of the backend's family.
    pub fn new(
        protocol: Protocol,
        port: u16,
        to: SocketAddr,
        source: Option<BanTarget>,
        comment: &str,
    ) -> Result<Forward, FieldError> {
        if port == 0 {
            return Err(FieldError::new("port", "port 0 is not a port"));
        }
        if let Some(source) = &source
            && (source.family() == crate::addr::Family::V4) != to.is_ipv4()
        {
            return Err(FieldError::new(
                "source",
                format!(
                    "{source} and the backend {} are of different address families",
                    to.ip()
                ),
            ));
        }
        check_comment(comment)?;
        Ok(Forward {
            protocol,
            port,
            to,
            source,
            comment: comment.to_string(),
        })
    }
}

/// A rule as JSON: `{"chain", "protocol", "port", "source", "action", "comment", "protected"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleText {
    pub chain: String,
    pub protocol: String,
    /// `22`, `1000-2000`, `25,465,587`.
    pub port: String,
    #[serde(default)]
    pub source: Option<String>,
    pub action: String,
    #[serde(default)]
    pub comment: String,
    #[serde(default)]
    pub protected: bool,
}

impl From<&Rule> for RuleText {
    fn from(rule: &Rule) -> RuleText {
        RuleText {
            chain: rule.chain.name().to_string(),
            protocol: protocol_name(rule.protocol).to_string(),
            port: format_ports(&rule.ports),
            source: rule.source.map(|s| s.to_string()),
            action: rule.action.name().to_string(),
            comment: rule.comment.clone(),
            protected: rule.protected,
        }
    }
}

impl TryFrom<RuleText> for Rule {
    type Error = FieldError;

    fn try_from(text: RuleText) -> Result<Rule, FieldError> {
        Rule::new(
            parse_chain(&text.chain)?,
            parse_protocol(&text.protocol)?,
            &parse_ports(&text.port)?,
            text.source.as_deref().map(parse_source).transpose()?,
            parse_action(&text.action)?,
            &text.comment,
            text.protected,
        )
    }
}

/// A forward as JSON: `{"protocol", "port", "to", "source", "comment"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardText {
    pub protocol: String,
    pub port: u16,
    /// `ADDR:PORT`, `[IPv6]:PORT`.
    pub to: String,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub comment: String,
}

impl From<&Forward> for ForwardText {
    fn from(forward: &Forward) -> ForwardText {
        ForwardText {
            protocol: protocol_name(forward.protocol).to_string(),
            port: forward.port,
            to: forward.to.to_string(),
            source: forward.source.map(|s| s.to_string()),
            comment: forward.comment.clone(),
        }
    }
}

impl TryFrom<ForwardText> for Forward {
    type Error = FieldError;

    fn try_from(text: ForwardText) -> Result<Forward, FieldError> {
        Forward::new(
            parse_protocol(&text.protocol)?,
            text.port,
            parse_to(&text.to)?,
            text.source.as_deref().map(parse_source).transpose()?,
            &text.comment,
        )
    }
}

impl Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        RuleText::from(self).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Rule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Rule, D::Error> {
        Rule::try_from(RuleText::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Forward {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ForwardText::from(self).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Forward {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Forward, D::Error> {
        Forward::try_from(ForwardText::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_numbers_ranges_and_lists() {
        let cases = [
            ("22", "22"),
            ("1000-2000", "1000-2000"),
            ("1000:2000", "1000-2000"),
            ("587, 25,465", "25,465,587"),
            ("20,21,22", "20-22"),
            ("65535", "65535"),
        ];
        for (text, want) in cases {
            assert_eq!(format_ports(&parse_ports(text).unwrap()), want, "{text}");
        }
    }

    #[test]
    fn every_bad_field_is_named_with_its_value() {
        let cases: [(Result<(), FieldError>, &str); 14] = [
            (parse_ports("0").map(drop), "port: port 0 is out of range"),
            (
                parse_ports("65536").map(drop),
                "port: port 65536 is out of range",
            ),
            (
                parse_ports("ssh").map(drop),
                "port: \"ssh\" is not a port number",
            ),
            (
                parse_ports("30-20").map(drop),
                "port: range \"30-20\" is reversed",
            ),
            (
                parse_ports("22,,23").map(drop),
                "port: \"22,,23\": an empty port",
            ),
            (parse_ports("all").map(drop), "port: \"all\" is not a port"),
            (parse_chain("forward").map(drop), "chain: \"forward\": use"),
            (parse_protocol("icmp").map(drop), "protocol: \"icmp\": use"),
            (
                parse_action("allowed").map(drop),
                "action: \"allowed\": use",
            ),
            (
                parse_source("10.0.0.0/33").map(drop),
                "source: \"10.0.0.0/33\"",
            ),
            (
                parse_to("10.0.0.2").map(drop),
                "to: \"10.0.0.2\" is not ADDR:PORT",
            ),
            (
                parse_to("127.0.0.1:25").map(drop),
                "to: 127.0.0.1 cannot receive",
            ),
            (check_comment("say \"hi\""), "comment: '\"' is not allowed"),
            (
                check_comment(&"x".repeat(101)),
                "comment: 101 bytes; at most 100",
            ),
        ];
        for (result, want) in cases {
            let error = result.unwrap_err().to_string();
            assert!(
                error.starts_with(want),
                "{error:?} should start with {want:?}"
            );
        }
    }

    #[test]
    fn a_forward_source_must_be_of_the_backends_family() {
        let to = parse_to("[2001:db8::2]:993").unwrap();
        let error = Forward::new(
            Protocol::Tcp,
            993,
            to,
            Some(parse_source("192.0.2.1").unwrap()),
            "",
        )
        .unwrap_err();
        assert_eq!(error.field, "source");
        assert_eq!(
            parse_to("[::ffff:10.0.0.2]:25").unwrap().to_string(),
            "10.0.0.2:25"
        );
    }

    #[test]
    fn rules_and_forwards_round_trip_through_their_json() {
        let json = r#"{"chain":"input","protocol":"tcp","port":"25,465,587","source":"2001:db8::/64","action":"accept","comment":"SMTP","protected":true}"#;
        let rule: Rule = serde_json::from_str(json).unwrap();
        assert_eq!(rule.ports.len(), 3);
        assert_eq!(serde_json::to_string(&rule).unwrap(), json);
        let json =
            r#"{"protocol":"udp","port":53,"to":"[2001:db8::53]:5353","source":null,"comment":""}"#;
        let forward: Forward = serde_json::from_str(json).unwrap();
        assert_eq!(serde_json::to_string(&forward).unwrap(), json);
        // A record that no longer validates is refused, never half-read.
        let bad = r#"{"chain":"input","protocol":"tcp","port":"0","action":"accept"}"#;
        assert!(serde_json::from_str::<Rule>(bad).is_err());
    }
}
