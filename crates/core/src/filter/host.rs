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

/// What `<HOST>` expands to: [`BODY`] in the `host` group.
const EXPANSION: &str = r"(?P<host>(?:[0-9]{1,3}\.){3}[0-9]{1,3}|[0-9A-Fa-f]{0,4}:[0-9A-Fa-f:.]*(?:%[0-9A-Za-z_.\-]+)?)";

/// The group's body. Dotted quads first; anything else must contain a colon (IPv6). Brackets
/// around an IPv6 address stay outside the group. [`body_end`] reads it by hand.
pub(crate) const BODY: &str =
    r"(?:[0-9]{1,3}\.){3}[0-9]{1,3}|[0-9A-Fa-f]{0,4}:[0-9A-Fa-f:.]*(?:%[0-9A-Za-z_.\-]+)?";

/// Where the leftmost-first match of [`BODY`] that starts at `from` ends, read by hand: the
/// end a search of the body alone gives (a rule's locator chains its pieces this way, and the
/// host's is the piece on every failure line). Each repetition in the body is followed by a
/// byte it cannot take (a digit run by `.`, a hex run by `:`) or by nothing, so its only
/// successful length is its longest: there is nothing to backtrack into.
pub(crate) fn body_end(text: &[u8], from: usize) -> Option<usize> {
    let rest = text.get(from..)?;
    dotted_quad(rest)
        .or_else(|| colon_form(rest))
        .map(|end| from + end)
}

/// `(?:[0-9]{1,3}\.){3}[0-9]{1,3}`: where it ends in `text`, if it matches at its start.
fn dotted_quad(text: &[u8]) -> Option<usize> {
    let digits = |at: usize| text[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    let mut at = 0;
    for _ in 0..3 {
        let n = digits(at);
        if !(1..=3).contains(&n) || text.get(at + n) != Some(&b'.') {
            return None;
        }
        at += n + 1;
    }
    let last = digits(at);
    (last > 0).then(|| at + last.min(3))
}

/// `[0-9A-Fa-f]{0,4}:[0-9A-Fa-f:.]*(?:%[0-9A-Za-z_.\-]+)?`: where it ends in `text`, if it
/// matches at its start.
fn colon_form(text: &[u8]) -> Option<usize> {
    let hex = text.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if hex > 4 || text.get(hex) != Some(&b':') {
        return None;
    }
    let mut at = hex + 1;
    at += text[at..]
        .iter()
        .take_while(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'))
        .count();
    if text.get(at) == Some(&b'%') {
        let zone = text[at + 1..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
            .count();
        if zone > 0 {
            at += 1 + zone;
        }
    }
    Some(at)
}

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
    fn the_expansion_is_the_body_in_the_group() {
        assert_eq!(EXPANSION, format!("(?P<host>{BODY})"));
    }

    /// [`body_end`] against the regex crate's own search of the body, from every position of
    /// texts made of the bytes the body cares about (and a few it does not): random ones, and
    /// every failure line of the shipped filters' corpora.
    #[test]
    fn body_end_is_where_a_search_of_the_body_ends() {
        let body = regex::bytes::Regex::new(&format!("(?-u)^(?:{BODY})")).unwrap();
        let check = |text: &[u8]| {
            for from in 0..=text.len() {
                let searched = body.find(&text[from..]).map(|m| from + m.end());
                assert_eq!(
                    body_end(text, from),
                    searched,
                    "{:?} from {from}",
                    String::from_utf8_lossy(text)
                );
            }
        };
        let alphabet = b"0123456789abcdefABCDEFxyz:.%_- []\xff";
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let len = (next() % 40) as usize;
            let text: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            check(&text);
        }
        for shape in [
            "1.2.3.4",
            "255.255.255.2555",
            "1234.1.1.1",
            "1.2.3.",
            "1.2.3",
            "::1",
            "::ffff:1.2.3.4",
            "fe80::1%eth0",
            "fe80::1%",
            "2001:db8::7]:22",
            "12345:1",
            "abcd:",
            ":",
            "",
            "1.2.3.4:5",
            "a:b%_.-x y",
            "0.0.0.0.0",
        ] {
            check(shape.as_bytes());
        }
        // An attacker's long runs (the line limit is 64 kB): read to their end once, as the
        // search does.
        for long in [
            "1".repeat(70_000),
            format!("1.2.3.{}", "4".repeat(70_000)),
            format!("a:{}", "f:".repeat(35_000)),
            format!("::1%{}", "z".repeat(70_000)),
        ] {
            let searched = body.find(long.as_bytes()).map(|m| m.end());
            assert_eq!(
                body_end(long.as_bytes(), 0),
                searched,
                "{} bytes",
                long.len()
            );
        }
        let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/filters");
        for entry in std::fs::read_dir(corpus).unwrap() {
            for line in std::fs::read(entry.unwrap().path())
                .unwrap()
                .split(|&b| b == b'\n')
            {
                check(line);
            }
        }
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
