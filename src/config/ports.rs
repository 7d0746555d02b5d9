//! Ports and protocols as fail2ban users write them: `ssh`, `22`, `"smtp,submission"`,
//! `49152:65534` (or `49152-65534`), `all`.
//!
//! Service names are resolved from `/etc/services` when it exists, otherwise (and for names it
//! lacks) from a built-in table of the services nftjail's shipped jails use, so a minimal
//! container without `/etc/services` still loads the shipped config.

use std::collections::HashMap;
use std::sync::OnceLock;

use super::{PortRange, Ports};

/// The services the shipped jails name, in case `/etc/services` is missing.
const BUILT_IN: &[(&str, u16)] = &[
    ("ftp-data", 20),
    ("ftp", 21),
    ("ssh", 22),
    ("smtp", 25),
    ("http", 80),
    ("pop3", 110),
    ("imap2", 143),
    ("imap", 143),
    ("https", 443),
    ("submissions", 465),
    ("smtps", 465),
    ("ssmtp", 465),
    ("submission", 587),
    ("imaps", 993),
    ("pop3s", 995),
    ("sieve", 4190),
    ("managesieve", 4190),
    ("cpanel", 2082),
    ("cpanels", 2083),
    ("whm", 2086),
    ("whms", 2087),
    ("webmin", 10000),
];

fn services() -> &'static HashMap<String, u16> {
    static SERVICES: OnceLock<HashMap<String, u16>> = OnceLock::new();
    SERVICES.get_or_init(|| {
        let mut map: HashMap<String, u16> =
            BUILT_IN.iter().map(|(n, p)| (n.to_string(), *p)).collect();
        if let Ok(text) = std::fs::read_to_string("/etc/services") {
            map.extend(parse_services(&text));
        }
        map
    })
}

/// `name port/proto aliases…` lines of `/etc/services` (tcp entries; udp-only names too).
fn parse_services(text: &str) -> Vec<(String, u16)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let (Some(name), Some(port)) = (words.next(), words.next()) else {
            continue;
        };
        let Some(port) = port.split('/').next().and_then(|p| p.parse::<u16>().ok()) else {
            continue;
        };
        out.push((name.to_string(), port));
        out.extend(words.map(|alias| (alias.to_string(), port)));
    }
    out
}

/// Resolves one port word: a number, a service name, or a range of either.
fn parse_word(word: &str) -> Result<(u16, u16), String> {
    let single = |w: &str| -> Result<u16, String> {
        let w = w.trim();
        if let Ok(n) = w.parse::<u32>() {
            return u16::try_from(n)
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| format!("port {n} is out of range (1-65535)"));
        }
        services().get(w).copied().ok_or_else(|| {
            format!("unknown service name {w:?} (not in /etc/services; write the port number)")
        })
    };
    let (first, last) = match word.split_once([':', '-']) {
        // A service name may itself contain '-' (ftp-data): try the whole word first.
        Some((a, b)) if single(word).is_err() => (single(a)?, single(b)?),
        _ => {
            let p = single(word)?;
            (p, p)
        }
    };
    if first > last {
        return Err(format!("port range {word:?} is reversed"));
    }
    Ok((first, last))
}

/// Parses a jail's `port` values (each may hold several comma-separated words).
/// Ranges come out sorted and merged.
pub fn parse_ports<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<Ports, String> {
    let mut ranges = Vec::new();
    for value in values {
        for word in value.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            if word.eq_ignore_ascii_case("all") || word == "0:65535" || word == "1:65535" {
                return Ok(Ports::All);
            }
            ranges.push(parse_word(word)?);
        }
    }
    if ranges.is_empty() {
        return Err("no port given (write \"all\" for every port)".to_string());
    }
    ranges.sort_unstable();
    let mut merged: Vec<(u16, u16)> = Vec::with_capacity(ranges.len());
    for (first, last) in ranges {
        match merged.last_mut() {
            Some((_, prev_last)) if first <= prev_last.saturating_add(1) => {
                *prev_last = (*prev_last).max(last)
            }
            _ => merged.push((first, last)),
        }
    }
    Ok(Ports::List(
        merged
            .into_iter()
            .map(|(first, last)| PortRange { first, last })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ports(words: &[&str]) -> Result<Spec, String> {
        parse_ports(words.iter().copied()).map(|p| match p {
            Ports::All => Spec::All,
            Ports::List(l) => Spec::List(l.iter().map(|r| (r.first, r.last)).collect()),
        })
    }

    /// The ports as plain pairs, for short expectations.
    #[derive(Debug, PartialEq)]
    enum Spec {
        All,
        List(Vec<(u16, u16)>),
    }

    #[test]
    fn names_numbers_ranges_and_lists() {
        assert_eq!(ports(&["ssh"]), Ok(Spec::List(vec![(22, 22)])));
        assert_eq!(
            ports(&["smtp,submission", "465"]),
            Ok(Spec::List(vec![(25, 25), (465, 465), (587, 587)]))
        );
        assert_eq!(
            ports(&["49152:65534"]),
            Ok(Spec::List(vec![(49152, 65534)]))
        );
        assert_eq!(ports(&["20-21", "ftp"]), Ok(Spec::List(vec![(20, 21)])));
        assert_eq!(ports(&["ftp-data"]), Ok(Spec::List(vec![(20, 20)])));
        assert_eq!(ports(&["sieve"]), Ok(Spec::List(vec![(4190, 4190)])));
        assert_eq!(ports(&["ssh", "all"]), Ok(Spec::All));
        assert_eq!(ports(&["0:65535"]), Ok(Spec::All));
    }

    #[test]
    fn adjacent_and_overlapping_ranges_merge() {
        assert_eq!(
            ports(&["100:200", "150:250", "251", "300"]),
            Ok(Spec::List(vec![(100, 251), (300, 300)]))
        );
    }

    #[test]
    fn mistakes_are_named() {
        for (words, needle) in [
            (&["70000"][..], "out of range"),
            (&["0"][..], "out of range"),
            (&["sshh"][..], "unknown service name \"sshh\""),
            (&["30:20"][..], "reversed"),
            (&[""][..], "no port"),
        ] {
            let err = ports(words).unwrap_err();
            assert!(err.contains(needle), "{words:?}: {err}");
        }
    }

    #[test]
    fn services_file_lines() {
        let parsed =
            parse_services("# c\nssh 22/tcp # SSH\nsubmissions 465/tcp ssmtp smtps\nbad line\n");
        assert_eq!(
            parsed,
            [
                ("ssh".to_string(), 22),
                ("submissions".into(), 465),
                ("ssmtp".into(), 465),
                ("smtps".into(), 465)
            ]
        );
    }
}
