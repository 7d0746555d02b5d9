//! The lock-out checks: a default-drop input policy must leave the administrator's way in open,
//! and no forward may carry it away.
//!
//! Receives the rules in order (or a forward), where the administrator comes from — the SSH
//! session a request came over (client address and the server's port, as `SSH_CONNECTION` gives
//! them), or else the configured admin ports — and emits whether a *protected* accept rule lets
//! that traffic in before any rule drops or rejects it (protected, because only those cannot be
//! deleted later through the API), or whether a forward would DNAT it to another host. It decides
//! nothing else: the caller refuses the change when a check fails.

use std::net::IpAddr;

use super::{Action, Chain, Entry, Forward, Origin, Protocol, Rule};

/// The SSH session a request came over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    /// The administrator's address.
    pub client: IpAddr,
    /// The port of this host the session is connected to.
    pub port: u16,
}

/// Why a default-drop input policy would lock the administrator out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Lockout {
    #[error(
        "a default-drop input policy would lock out {who}: no protected accept rule for tcp port {port} \
         (add one to a firewall.d file with `protected = true`, or name the right port in [firewall] admin_port)"
    )]
    Uncovered { who: String, port: u16 },
    #[error(
        "a default-drop input policy would lock out {who}: {by} takes tcp port {port} before any \
         protected accept rule"
    )]
    Shadowed {
        who: String,
        port: u16,
        /// `rule 7 (…)`, or `the rule at firewall.d/FILE:LINE (…)`.
        by: String,
    },
    #[error(
        "forwarding tcp port {port} would take {who} away from this host: connections to it would \
         go to {to} (forward another port, or name another admin port in [firewall] admin_port)"
    )]
    Forwarded { who: String, port: u16, to: String },
}

/// Checks that, with a default-drop input policy, `rules` (in order) let in the SSH session
/// `session` came over, or, when there is none, every port of `admin_ports` (from any address).
pub fn check(
    rules: &[Entry<Rule>],
    session: Option<Session>,
    admin_ports: &[u16],
) -> Result<(), Lockout> {
    match session {
        Some(s) => reaches(
            rules,
            s.port,
            Some(s.client),
            format!("the SSH session from {} (port {})", s.client, s.port),
        ),
        None => admin_ports
            .iter()
            .try_for_each(|&port| reaches(rules, port, None, format!("admin port {port}"))),
    }
}

/// Checks that `forward` does not send the administrator's way in elsewhere: a tcp forward of
/// an admin port (or of the SSH session's port, from an address that includes its client)
/// would DNAT it away before any rule is read, whatever the policy.
pub fn check_forward(
    forward: &Forward,
    session: Option<Session>,
    admin_ports: &[u16],
) -> Result<(), Lockout> {
    if forward.protocol != Protocol::Tcp {
        return Ok(());
    }
    let takes = |port: u16, client: Option<IpAddr>| {
        forward.port == port
            && match (&forward.source, client) {
                (None, _) => true,
                (Some(source), Some(client)) => source.contains(client),
                // Some address of the administrator's may be in it: refused to be safe.
                (Some(_), None) => true,
            }
    };
    let to = forward.to.to_string();
    if let Some(s) = session
        && takes(s.port, Some(s.client))
    {
        let who = format!("the SSH session from {} (port {})", s.client, s.port);
        return Err(Lockout::Forwarded {
            who,
            port: s.port,
            to,
        });
    }
    match admin_ports.iter().find(|&&port| takes(port, None)) {
        Some(&port) => Err(Lockout::Forwarded {
            who: format!("admin port {port}"),
            port,
            to,
        }),
        None => Ok(()),
    }
}

/// Walks the input rules for tcp `port` from `client` (`None`: any address): the first protected
/// accept wins; a drop or reject before it loses. An unprotected accept does not count (it may be
/// deleted), and neither does a rule for other sources. For an unknown client, a protected
/// accept limited to some sources counts (the administrator chose them), and a drop limited to
/// some sources does not stand in the way.
fn reaches(
    rules: &[Entry<Rule>],
    port: u16,
    client: Option<IpAddr>,
    who: String,
) -> Result<(), Lockout> {
    for entry in rules.iter().filter(|e| e.item.chain == Chain::Input) {
        let rule = &entry.item;
        let limited = rule.source.is_some() && client.is_none();
        let applies = rule.matches(Protocol::Tcp, port, client)
            || (limited && rule.matches(Protocol::Tcp, port, rule.source.map(first_address)));
        if !applies {
            continue;
        }
        match rule.action {
            Action::Accept if rule.protected => return Ok(()),
            Action::Accept => {}
            Action::Drop | Action::Reject if limited => {}
            Action::Drop | Action::Reject => {
                let by = match &entry.origin {
                    Origin::File { .. } => format!("the rule at {} ({rule})", entry.origin),
                    Origin::Api => format!("rule {} ({rule})", entry.id),
                };
                return Err(Lockout::Shadowed { who, port, by });
            }
        }
    }
    Err(Lockout::Uncovered { who, port })
}

/// An address inside `target`.
fn first_address(target: crate::addr::BanTarget) -> IpAddr {
    match target {
        crate::addr::BanTarget::Addr(a) => a,
        crate::addr::BanTarget::Net(p) => p.addr(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::text::parse_ports;

    fn rule(
        id: u64,
        port: &str,
        source: Option<&str>,
        action: Action,
        protected: bool,
    ) -> Entry<Rule> {
        Entry {
            id,
            origin: Origin::Api,
            item: Rule::new(
                Chain::Input,
                Protocol::Tcp,
                &parse_ports(port).unwrap(),
                source.map(|s| s.parse().unwrap()),
                action,
                "",
                protected,
            )
            .unwrap(),
        }
    }

    fn session(client: &str, port: u16) -> Option<Session> {
        Some(Session {
            client: client.parse().unwrap(),
            port,
        })
    }

    #[test]
    fn the_administrators_way_in_must_stay_open() {
        use Action::*;
        let office = Some("198.51.100.0/24");
        // (rules, session, admin ports, verdict: Ok, or the start of the error)
        type Case = (
            Vec<Entry<Rule>>,
            Option<Session>,
            &'static [u16],
            Result<(), &'static str>,
        );
        let cases: Vec<Case> = vec![
            (vec![rule(1, "22", None, Accept, true)], None, &[22], Ok(())),
            (
                vec![rule(1, "20-30", None, Accept, true)],
                None,
                &[22],
                Ok(()),
            ),
            (
                vec![rule(1, "22", None, Accept, false)],
                None,
                &[22],
                Err("a default-drop input policy would lock out admin port 22: no protected"),
            ),
            (
                vec![],
                None,
                &[22, 8443],
                Err("a default-drop input policy would lock out admin port 22"),
            ),
            (
                vec![rule(1, "22", None, Accept, true)],
                None,
                &[22, 8443],
                Err("a default-drop input policy would lock out admin port 8443"),
            ),
            (
                vec![
                    rule(1, "22", None, Drop, false),
                    rule(2, "22", None, Accept, true),
                ],
                None,
                &[22],
                Err(
                    "a default-drop input policy would lock out admin port 22: rule 1 (input tcp port 22 from any drop)",
                ),
            ),
            // A drop for some sources does not stand in the way of an unknown administrator…
            (
                vec![
                    rule(1, "22", Some("192.0.2.66"), Drop, false),
                    rule(2, "22", None, Accept, true),
                ],
                None,
                &[22],
                Ok(()),
            ),
            // …and an accept limited to the office counts for them.
            (
                vec![rule(1, "22", office, Accept, true)],
                None,
                &[22],
                Ok(()),
            ),
            // Over SSH, the session's own port and address decide, not the admin ports.
            (
                vec![rule(1, "22", None, Accept, true)],
                session("203.0.113.5", 2222),
                &[22],
                Err(
                    "a default-drop input policy would lock out the SSH session from 203.0.113.5 (port 2222): no protected",
                ),
            ),
            (
                vec![rule(1, "2222", None, Accept, true)],
                session("203.0.113.5", 2222),
                &[22],
                Ok(()),
            ),
            (
                vec![rule(1, "22", office, Accept, true)],
                session("203.0.113.5", 22),
                &[22],
                Err(
                    "a default-drop input policy would lock out the SSH session from 203.0.113.5 (port 22): no protected",
                ),
            ),
            (
                vec![rule(1, "22", office, Accept, true)],
                session("198.51.100.9", 22),
                &[22],
                Ok(()),
            ),
            (
                vec![
                    rule(1, "22", Some("203.0.113.5"), Reject, false),
                    rule(2, "22", None, Accept, true),
                ],
                session("203.0.113.5", 22),
                &[22],
                Err(
                    "a default-drop input policy would lock out the SSH session from 203.0.113.5 (port 22): rule 1",
                ),
            ),
        ];
        for (i, (rules, session, admin, want)) in cases.into_iter().enumerate() {
            let got = check(&rules, session, admin).map_err(|e| e.to_string());
            match (got, want) {
                (Ok(()), Ok(())) => {}
                (Err(got), Err(want)) => assert!(
                    got.starts_with(want),
                    "case {i}: {got:?} should start with {want:?}"
                ),
                (got, want) => panic!("case {i}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn a_forward_of_the_way_in_is_refused() {
        let forward = |port: u16, protocol: Protocol, source: Option<&str>| Forward {
            protocol,
            port,
            to: "10.0.0.2:22".parse().unwrap(),
            source: source.map(|s| s.parse().unwrap()),
            comment: String::new(),
        };
        let error = check_forward(&forward(22, Protocol::Tcp, None), None, &[22]).unwrap_err();
        assert!(
            error.to_string().starts_with("forwarding tcp port 22 would take admin port 22 away from this host: connections to it would go to 10.0.0.2:22"),
            "{error}"
        );
        assert!(check_forward(&forward(22, Protocol::Udp, None), None, &[22]).is_ok());
        assert!(check_forward(&forward(2222, Protocol::Tcp, None), None, &[22]).is_ok());
        // A source that may hold the administrator is refused; over SSH the client decides.
        assert!(
            check_forward(
                &forward(22, Protocol::Tcp, Some("192.0.2.0/24")),
                None,
                &[22]
            )
            .is_err()
        );
        let ssh = session("203.0.113.5", 22);
        assert!(check_forward(&forward(22, Protocol::Tcp, Some("192.0.2.0/24")), ssh, &[]).is_ok());
        assert!(
            check_forward(
                &forward(22, Protocol::Tcp, Some("203.0.113.0/24")),
                ssh,
                &[]
            )
            .is_err()
        );
    }

    #[test]
    fn output_and_udp_rules_do_not_count() {
        let mut udp = rule(1, "22", None, Action::Accept, true);
        udp.item.protocol = Protocol::Udp;
        let mut output = rule(2, "22", None, Action::Accept, true);
        output.item.chain = Chain::Output;
        assert!(check(&[udp, output], None, &[22]).is_err());
    }
}
