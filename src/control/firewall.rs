//! The firewall's requests, checked at the edge: what the core is asked to do.
//!
//! Receives the firewall requests of the control protocol (`firewall`, `firewall_enable`, …,
//! `rule_add`, `forward_delete`); emits a [`FirewallCommand`] whose rules, forwards, durations and
//! session are parsed and validated (service names resolved), or the reason it cannot be, naming
//! the field (`port: port 70000 is out of range (1-65535)`). Nothing is decided here.

use std::time::Duration;

use super::protocol::{Request, SessionText};
use crate::config::firewall::{ports_of, single_port};
use nftjail_core::duration::Span;
use nftjail_core::firewall::text::{self, FieldError};
use nftjail_core::firewall::{Chain, Forward, Rule, Session};

/// The longest `--confirm-within`.
pub const MAX_CONFIRM_WITHIN: Duration = Duration::from_secs(3_600);

/// A firewall request for the core.
#[derive(Debug, Clone, PartialEq)]
pub enum FirewallCommand {
    Status,
    Enable {
        confirm_within: Option<Duration>,
        session: Option<Session>,
    },
    Disable,
    Confirm,
    Rules,
    AddRule(Rule),
    DeleteRule(u64),
    Forwards,
    AddForward {
        forward: Forward,
        session: Option<Session>,
    },
    DeleteForward(u64),
}

impl FirewallCommand {
    /// The command of a firewall request; an error naming the field that is wrong (or saying
    /// that the request is not about the firewall).
    pub fn from_request(request: Request) -> Result<FirewallCommand, String> {
        Ok(match request {
            Request::Firewall => FirewallCommand::Status,
            Request::FirewallEnable {
                confirm_within,
                session,
            } => FirewallCommand::Enable {
                confirm_within: confirm_within.as_deref().map(confirm).transpose()?,
                session: session.map(|s| parse_session(&s)).transpose()?,
            },
            Request::FirewallDisable => FirewallCommand::Disable,
            Request::FirewallConfirm => FirewallCommand::Confirm,
            Request::Rules => FirewallCommand::Rules,
            Request::RuleAdd {
                chain,
                protocol,
                port,
                source,
                action,
                comment,
            } => {
                let rule = (|| -> Result<Rule, FieldError> {
                    let chain = match chain.as_deref() {
                        Some(c) => text::parse_chain(c)?,
                        None => Chain::Input,
                    };
                    Rule::new(
                        chain,
                        text::parse_protocol(&protocol)?,
                        &ports_of(&[port])?,
                        source.as_deref().map(text::parse_source).transpose()?,
                        text::parse_action(&action)?,
                        &comment,
                        false,
                    )
                })();
                FirewallCommand::AddRule(rule.map_err(|e| e.to_string())?)
            }
            Request::RuleDelete { id } => FirewallCommand::DeleteRule(id),
            Request::Forwards => FirewallCommand::Forwards,
            Request::ForwardAdd {
                protocol,
                port,
                to,
                source,
                comment,
                session,
            } => {
                let forward = (|| -> Result<Forward, FieldError> {
                    Forward::new(
                        text::parse_protocol(&protocol)?,
                        single_port(&port)?,
                        text::parse_to(&to)?,
                        source.as_deref().map(text::parse_source).transpose()?,
                        &comment,
                    )
                })();
                FirewallCommand::AddForward {
                    forward: forward.map_err(|e| e.to_string())?,
                    session: session.map(|s| parse_session(&s)).transpose()?,
                }
            }
            Request::ForwardDelete { id } => FirewallCommand::DeleteForward(id),
            other => return Err(format!("not a firewall request: {other:?}")),
        })
    }

    /// Whether the command only reads.
    pub fn reads(&self) -> bool {
        matches!(
            self,
            FirewallCommand::Status | FirewallCommand::Rules | FirewallCommand::Forwards
        )
    }
}

fn confirm(text: &str) -> Result<Duration, String> {
    let span: Span = text.parse().map_err(|e| format!("confirm_within: {e}"))?;
    match span.0 {
        d if d.is_zero() => Err("confirm_within: give a time to confirm in, e.g. 60s".into()),
        d if d > MAX_CONFIRM_WITHIN => {
            Err(format!("confirm_within: {text} is longer than an hour"))
        }
        d => Ok(d),
    }
}

fn parse_session(session: &SessionText) -> Result<Session, String> {
    let client = session
        .client
        .parse()
        .map_err(|_| format!("session: {:?} is not an address", session.client))?;
    if session.port == 0 {
        return Err("session: port 0 is not a port".into());
    }
    Ok(Session {
        client,
        port: session.port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(port: &str, source: Option<&str>, action: &str) -> Request {
        Request::RuleAdd {
            chain: None,
            protocol: "tcp".into(),
            port: port.into(),
            source: source.map(str::to_string),
            action: action.into(),
            comment: String::new(),
        }
    }

    #[test]
    fn requests_become_checked_commands() {
        let rule = match FirewallCommand::from_request(add("ssh", Some("192.0.2.0/24"), "accept")) {
            Ok(FirewallCommand::AddRule(rule)) => rule,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            rule.to_string(),
            "input tcp port 22 from 192.0.2.0/24 accept"
        );
        let enable = Request::FirewallEnable {
            confirm_within: Some("3s".into()),
            session: SessionText::from_ssh_connection("198.51.100.7 5 192.0.2.1 22"),
        };
        assert_eq!(
            FirewallCommand::from_request(enable),
            Ok(FirewallCommand::Enable {
                confirm_within: Some(Duration::from_secs(3)),
                session: Some(Session {
                    client: "198.51.100.7".parse().unwrap(),
                    port: 22
                }),
            })
        );
    }

    #[test]
    fn bad_fields_are_named() {
        let cases = [
            (
                add("70000", None, "accept"),
                "port: port 70000 is out of range",
            ),
            (add("all", None, "accept"), "port: \"all\" is not a port"),
            (
                add("22", Some("10.0.0.300"), "accept"),
                "source: \"10.0.0.300\" is not",
            ),
            (add("22", None, "permit"), "action: \"permit\": use"),
            (
                Request::ForwardAdd {
                    protocol: "tcp".into(),
                    port: "2525-2530".into(),
                    to: "10.0.0.2:25".into(),
                    source: None,
                    comment: String::new(),
                    session: None,
                },
                "port: \"2525-2530\": one port here",
            ),
            (
                Request::FirewallEnable {
                    confirm_within: Some("2h".into()),
                    session: None,
                },
                "confirm_within: 2h is longer than an hour",
            ),
            (Request::Reload, "not a firewall request"),
        ];
        for (request, want) in cases {
            let error = FirewallCommand::from_request(request).unwrap_err();
            assert!(
                error.starts_with(want),
                "{error:?} should start with {want:?}"
            );
        }
    }
}
