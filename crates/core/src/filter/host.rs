//! `<HOST>`: the placeholder a failregex puts where the offending address is.
//!
//! Receives a regex as written in a filter file; emits the regex text with `<HOST>` replaced by
//! a capture group named `host`, and later turns the captured text into an address. The group
//! accepts the shapes of IPv4, IPv6 (any compressed form, with an optional `%zone`, optionally
//! in brackets) and `::ffff:`-mapped IPv4; whatever it captures is then checked by
//! [`addr::parse_ip`](crate::addr::parse_ip), so a host name or garbage is never an address. It
//! never matches a host name: resolving names is not a filter's business.

use std::net::IpAddr;

use crate::addr::{canonical, parse_ip};

/// The placeholder as written in filter files.
pub const PLACEHOLDER: &str = "<HOST>";

/// The name of the capture group `<HOST>` becomes; filter authors cannot use it themselves.
pub const GROUP: &str = "host";

/// What `<HOST>` expands to. Dotted quads first; anything else must contain a colon (IPv6).
/// Brackets around an IPv6 address stay outside the group.
const EXPANSION: &str = r"(?P<host>(?:[0-9]{1,3}\.){3}[0-9]{1,3}|[0-9A-Fa-f]{0,4}:[0-9A-Fa-f:.]*(?:%[0-9A-Za-z_.\-]+)?)";

/// Why a regex's use of `<HOST>` is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("has no <HOST>")]
    Missing,
    #[error("has <HOST> more than once")]
    Repeated,
    #[error("must not contain <HOST>")]
    Unexpected,
    #[error("uses the reserved group name `host` (write <HOST> instead)")]
    ReservedGroup,
}

/// Whether a regex must, may or must not contain `<HOST>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostRule {
    Required,
    Optional,
    Forbidden,
}

/// Replaces `<HOST>` in `pattern` with the address group, checking `rule`.
pub fn expand(pattern: &str, rule: HostRule) -> Result<String, HostError> {
    if pattern.contains("(?P<host>") || pattern.contains("(?<host>") {
        return Err(HostError::ReservedGroup);
    }
    let count = pattern.matches(PLACEHOLDER).count();
    match (rule, count) {
        (_, n) if n > 1 => Err(HostError::Repeated),
        (HostRule::Required, 0) => Err(HostError::Missing),
        (HostRule::Forbidden, 1) => Err(HostError::Unexpected),
        _ => Ok(pattern.replacen(PLACEHOLDER, EXPANSION, 1)),
    }
}

/// The address a `host` group captured, canonical (`::ffff:a.b.c.d` becomes IPv4); `None` when
/// the text is not an address (`999.1.1.1`, `dead:beef`).
pub fn address(captured: &str) -> Option<IpAddr> {
    parse_ip(captured).map(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;

    fn host_of(pattern: &str, text: &str) -> Option<String> {
        let re = Regex::new(&expand(pattern, HostRule::Required).unwrap()).unwrap();
        let caps = re.captures(text)?;
        address(caps.name(GROUP)?.as_str()).map(|a| a.to_string())
    }

    #[test]
    fn matches_address_forms() {
        let from = r"^Failed password for \S+ from <HOST> port \d+";
        let bracket = r"^connect from \S+\[<HOST>\]";
        let end = r"^Invalid user \S+ from <HOST>$";
        let comma = r"rip=<HOST>, lip=";
        let cases: &[(&str, &str, Option<&str>)] = &[
            (
                from,
                "Failed password for root from 192.0.2.7 port 22",
                Some("192.0.2.7"),
            ),
            (
                from,
                "Failed password for root from 2001:db8::7 port 22",
                Some("2001:db8::7"),
            ),
            (
                from,
                "Failed password for root from ::1 port 22",
                Some("::1"),
            ),
            (
                from,
                "Failed password for root from 2001:DB8:0:0:1:0:0:7 port 22",
                Some("2001:db8::1:0:0:7"),
            ),
            (
                from,
                "Failed password for root from ::ffff:192.0.2.7 port 22",
                Some("192.0.2.7"),
            ),
            (
                from,
                "Failed password for root from fe80::1%eth0 port 22",
                Some("fe80::1"),
            ),
            (
                bracket,
                "connect from unknown[203.0.113.9]",
                Some("203.0.113.9"),
            ),
            (
                bracket,
                "connect from unknown[2001:db8:1::9]",
                Some("2001:db8:1::9"),
            ),
            (
                bracket,
                "connect from mx.example[::ffff:203.0.113.9]",
                Some("203.0.113.9"),
            ),
            (
                end,
                "Invalid user x from 198.51.100.4",
                Some("198.51.100.4"),
            ),
            (end, "Invalid user x from 2001:db8::", Some("2001:db8::")),
            (
                comma,
                "rip=2001:db8::5, lip=2001:db8::1",
                Some("2001:db8::5"),
            ),
            // Host names and garbage are never addresses.
            (
                from,
                "Failed password for root from example.com port 22",
                None,
            ),
            (
                from,
                "Failed password for root from 999.0.2.7 port 22",
                None,
            ),
            (
                from,
                "Failed password for root from dead:beef port 22",
                None,
            ),
            (from, "Failed password for root from 1.2.3 port 22", None),
            (end, "Invalid user x from 198.51.100.4.example.net", None),
            (bracket, "connect from unknown[unknown]", None),
        ];
        for (pattern, text, want) in cases {
            assert_eq!(host_of(pattern, text).as_deref(), *want, "{text:?}");
        }
    }

    #[test]
    fn checks_the_placeholder_count() {
        assert_eq!(
            expand("no host here", HostRule::Required),
            Err(HostError::Missing)
        );
        assert_eq!(
            expand("<HOST> and <HOST>", HostRule::Optional),
            Err(HostError::Repeated)
        );
        assert_eq!(
            expand("from <HOST>", HostRule::Forbidden),
            Err(HostError::Unexpected)
        );
        assert_eq!(
            expand("(?P<host>x) <HOST>", HostRule::Required),
            Err(HostError::ReservedGroup)
        );
        assert!(expand("no host", HostRule::Forbidden).is_ok());
        assert!(expand("no host", HostRule::Optional).is_ok());
    }
}
