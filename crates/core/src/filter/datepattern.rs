//! `datepattern`: a strftime-like description of where and how a log writes its time, for logs
//! whose time is in none of the known formats (fail2ban's `datepattern`).
//!
//! Receives the pattern text once (from a filter file or a jail) and then line bytes; emits a
//! [`Stamp`] and the span it covered. It never allocates while parsing a line.
//!
//! Directives: `%Y` (4 digits), `%y` (2 digits, 20xx), `%m`, `%d`, `%H`, `%M`, `%S` (1–2
//! digits), `%e` (day, maybe space-padded), `%I` + `%p` (12-hour clock), `%f` (fraction), `%b`/`%h`
//! (`Nov`), `%B` (`November`), `%a`/`%A` (weekday, checked for letters and ignored), `%z` (`+0100`,
//! `+01:00`, `Z`), `%Z` (`UTC`/`GMT`/`Z` only), `%s` (epoch seconds), `%T` (`%H:%M:%S`), `%F`
//! (`%Y-%m-%d`), `%%`. A space matches one or more spaces; other characters match themselves. A
//! leading `^` anchors the pattern at the start of the line; without it the first place where
//! it matches is used. The words `none` (or fail2ban's `{NONE}`) say the lines carry no time.

use std::fmt;
use std::str::FromStr;

use super::time::{Stamp, digits_upto, month_abbrev, parse_offset};

/// A compiled `datepattern`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatePattern {
    text: String,
    anchored: bool,
    /// `None`: the lines carry no time (the matcher uses `now`).
    items: Option<Vec<Item>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item {
    Year4,
    Year2,
    Month,
    Day,
    DaySpace,
    Hour,
    Hour12,
    AmPm,
    Minute,
    Second,
    Fraction,
    MonthAbbrev,
    MonthName,
    Weekday,
    Offset,
    ZoneName,
    Epoch,
    Space,
    Literal(u8),
}

impl DatePattern {
    /// Whether the pattern says the lines carry no time.
    pub fn is_none(&self) -> bool {
        self.items.is_none()
    }

    /// Finds the time in `line`: at the start when anchored, else at the first place it matches.
    /// Returns the stamp and its byte range.
    pub fn find(&self, line: &[u8]) -> Option<(Stamp, usize, usize)> {
        let items = self.items.as_deref()?;
        if self.anchored {
            return parse_at(items, line).map(|(stamp, end)| (stamp, 0, end));
        }
        (0..line.len()).find_map(|start| {
            parse_at(items, &line[start..]).map(|(stamp, used)| (stamp, start, start + used))
        })
    }
}

impl fmt::Display for DatePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for DatePattern {
    type Err = String;

    fn from_str(text: &str) -> Result<DatePattern, String> {
        let trimmed = text.trim();
        if trimmed.eq_ignore_ascii_case("none") || trimmed == "{NONE}" {
            return Ok(DatePattern {
                text: text.to_string(),
                anchored: false,
                items: None,
            });
        }
        let (anchored, body) = match trimmed.strip_prefix('^') {
            Some(rest) => (true, rest),
            None => (false, trimmed),
        };
        let mut items = Vec::new();
        let mut bytes = body.bytes();
        while let Some(b) = bytes.next() {
            if b != b'%' {
                items.push(if b == b' ' {
                    Item::Space
                } else {
                    Item::Literal(b)
                });
                continue;
            }
            let directive = bytes
                .next()
                .ok_or_else(|| format!("datepattern {text:?} ends with a lone %"))?;
            match directive {
                b'Y' => items.push(Item::Year4),
                b'y' => items.push(Item::Year2),
                b'm' => items.push(Item::Month),
                b'd' => items.push(Item::Day),
                b'e' => items.push(Item::DaySpace),
                b'H' => items.push(Item::Hour),
                b'I' => items.push(Item::Hour12),
                b'p' => items.push(Item::AmPm),
                b'M' => items.push(Item::Minute),
                b'S' => items.push(Item::Second),
                b'f' => items.push(Item::Fraction),
                b'b' | b'h' => items.push(Item::MonthAbbrev),
                b'B' => items.push(Item::MonthName),
                b'a' | b'A' => items.push(Item::Weekday),
                b'z' => items.push(Item::Offset),
                b'Z' => items.push(Item::ZoneName),
                b's' => items.push(Item::Epoch),
                b'T' => items.extend([
                    Item::Hour,
                    Item::Literal(b':'),
                    Item::Minute,
                    Item::Literal(b':'),
                    Item::Second,
                ]),
                b'F' => items.extend([
                    Item::Year4,
                    Item::Literal(b'-'),
                    Item::Month,
                    Item::Literal(b'-'),
                    Item::Day,
                ]),
                b'%' => items.push(Item::Literal(b'%')),
                other => {
                    return Err(format!(
                        "datepattern {text:?}: unknown directive %{}",
                        char::from(other)
                    ));
                }
            }
        }
        let has = |wanted: &[Item]| items.iter().any(|i| wanted.contains(i));
        let epoch = has(&[Item::Epoch]);
        let complete = has(&[Item::Day, Item::DaySpace])
            && has(&[Item::Month, Item::MonthAbbrev, Item::MonthName])
            && has(&[Item::Hour, Item::Hour12])
            && has(&[Item::Minute]);
        if !epoch && !complete {
            return Err(format!(
                "datepattern {text:?} needs a day, a month, an hour and a minute (or %s)"
            ));
        }
        if has(&[Item::Hour12]) != has(&[Item::AmPm]) {
            return Err(format!("datepattern {text:?}: %I and %p go together"));
        }
        Ok(DatePattern {
            text: text.to_string(),
            anchored,
            items: Some(items),
        })
    }
}

/// Parses `items` at the start of `text`; the stamp and the bytes used.
fn parse_at(items: &[Item], text: &[u8]) -> Option<(Stamp, usize)> {
    let (mut year, mut month, mut day) = (None, 1u32, 1u32);
    let (mut hour, mut minute, mut second, mut nanos) = (0u32, 0u32, 0u32, 0u32);
    let (mut pm, mut offset, mut epoch) = (None, None, None);
    let mut pos = 0;
    for item in items {
        let rest = &text[pos.min(text.len())..];
        let used = match *item {
            Item::Year4 => {
                let (v, n) = digits_upto(rest, 4).filter(|&(_, n)| n == 4)?;
                year = Some(v as i32);
                n
            }
            Item::Year2 => {
                let (v, n) = digits_upto(rest, 2).filter(|&(_, n)| n == 2)?;
                year = Some(2000 + v as i32);
                n
            }
            Item::Month => number(rest, &mut month)?,
            Item::Day => number(rest, &mut day)?,
            Item::DaySpace => {
                let pad = usize::from(rest.first() == Some(&b' '));
                pad + number(&rest[pad..], &mut day)?
            }
            Item::Hour | Item::Hour12 => number(rest, &mut hour)?,
            Item::Minute => number(rest, &mut minute)?,
            Item::Second => number(rest, &mut second)?,
            Item::Fraction => {
                let n = rest.iter().take_while(|b| b.is_ascii_digit()).count();
                if n == 0 {
                    return None;
                }
                for (i, b) in rest[..n.min(9)].iter().enumerate() {
                    nanos += u32::from(b - b'0') * 10u32.pow(8 - i as u32);
                }
                n
            }
            Item::MonthAbbrev => {
                month = month_abbrev(rest)?;
                3
            }
            Item::MonthName => {
                month = month_abbrev(rest)?;
                let n = rest.iter().take_while(|b| b.is_ascii_alphabetic()).count();
                if n > 9 {
                    return None;
                }
                n
            }
            Item::Weekday => {
                let n = rest.iter().take_while(|b| b.is_ascii_alphabetic()).count();
                if !(3..=9).contains(&n) {
                    return None;
                }
                n
            }
            Item::AmPm => {
                let word = rest.get(..2)?;
                pm = Some(match word.to_ascii_uppercase().as_slice() {
                    b"AM" => false,
                    b"PM" => true,
                    _ => return None,
                });
                2
            }
            Item::Offset => {
                if rest.first() == Some(&b'Z') {
                    offset = Some(0);
                    1
                } else {
                    let (o, n) = parse_offset(rest)?;
                    offset = Some(o.local_minus_utc());
                    n
                }
            }
            Item::ZoneName => {
                let n = rest.iter().take_while(|b| b.is_ascii_alphabetic()).count();
                match &rest[..n] {
                    b"UTC" | b"GMT" | b"Z" => offset = Some(0),
                    _ => return None,
                }
                n
            }
            Item::Epoch => {
                let n = rest
                    .iter()
                    .take(12)
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                let (v, _) = digits_upto(rest, n.max(1))?;
                epoch = Some(i64::from(v));
                n
            }
            Item::Space => {
                let n = rest.iter().take_while(|&&b| b == b' ').count();
                if n == 0 {
                    return None;
                }
                n
            }
            Item::Literal(b) => {
                if rest.first() != Some(&b) {
                    return None;
                }
                1
            }
        };
        pos += used;
    }
    if let Some(seconds) = epoch {
        return Some((Stamp::Epoch { seconds, nanos }, pos));
    }
    if let Some(pm) = pm {
        if !(1..=12).contains(&hour) {
            return None;
        }
        hour = (hour % 12) + if pm { 12 } else { 0 };
    }
    let stamp = Stamp::Civil {
        year,
        month,
        day,
        hour,
        minute,
        second,
        nanos,
        offset,
    };
    Some((stamp, pos))
}

/// One or two digits into `slot`; the bytes used.
fn number(text: &[u8], slot: &mut u32) -> Option<usize> {
    let (v, n) = digits_upto(text, 2)?;
    *slot = v;
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDateTime, Utc};

    fn now() -> chrono::DateTime<Utc> {
        NaiveDateTime::parse_from_str("2026-11-23 12:00:00", "%Y-%m-%d %H:%M:%S")
            .unwrap()
            .and_utc()
    }

    fn run(pattern: &str, line: &str) -> Option<(String, usize, usize)> {
        let p: DatePattern = pattern.parse().unwrap();
        let (stamp, start, end) = p.find(line.as_bytes())?;
        let zone = crate::filter::time::Zone::Fixed(chrono::FixedOffset::east_opt(0).unwrap());
        let r = stamp.resolve(zone, now())?;
        Some((
            r.time.format("%Y-%m-%dT%H:%M:%S%.f").to_string(),
            start,
            end,
        ))
    }

    #[test]
    fn patterns_parse_lines() {
        type Case<'a> = (&'a str, &'a str, Option<(&'a str, usize, usize)>);
        let cases: &[Case<'_>] = &[
            (
                "%Y-%m-%d %H:%M:%S",
                "2026-11-23 07:18:36 x",
                Some(("2026-11-23T07:18:36", 0, 19)),
            ),
            (
                "^%Y:%m:%d-%H:%M:%S",
                "2026:11:23-07:18:36: 'x'",
                Some(("2026-11-23T07:18:36", 0, 19)),
            ),
            ("^%Y:%m:%d-%H:%M:%S", "x 2026:11:23-07:18:36", None),
            (
                "%d/%b/%Y:%T %z",
                "1.2.3.4 - - [23/Nov/2026:07:18:36 +0100] \"GET",
                Some(("2026-11-23T07:18:36", 13, 39)),
            ),
            (
                "%b %e %T",
                "Nov  3 07:18:36 host",
                Some(("2026-11-03T07:18:36", 0, 15)),
            ),
            (
                "%a %b %d %H:%M:%S %Y",
                "Mon Nov 23 07:18:36 2026 x",
                Some(("2026-11-23T07:18:36", 0, 24)),
            ),
            (
                "%d.%m.%y %I:%M %p",
                "23.11.26 07:18 PM",
                Some(("2026-11-23T19:18:00", 0, 17)),
            ),
            (
                "%d.%m.%y %I:%M %p",
                "23.11.26 12:05 AM",
                Some(("2026-11-23T00:05:00", 0, 17)),
            ),
            (
                "%F %T.%f",
                "2026-11-23 07:18:36.25",
                Some(("2026-11-23T07:18:36.250", 0, 22)),
            ),
            ("^%s", "1795418316 x", Some(("2026-11-23T07:18:36", 0, 10))),
            (
                "%B %d %H:%M",
                "November 23 07:18 x",
                Some(("2026-11-23T07:18:00", 0, 17)),
            ),
            (
                "%Y-%m-%d %H:%M:%S %Z",
                "2026-11-23 07:18:36 UTC",
                Some(("2026-11-23T07:18:36", 0, 23)),
            ),
            ("%Y-%m-%d %H:%M:%S %Z", "2026-11-23 07:18:36 CET", None),
        ];
        for (pattern, line, want) in cases {
            let want = want.map(|(t, s, e)| (t.to_string(), s, e));
            assert_eq!(
                run(pattern, line),
                want,
                "pattern {pattern:?} line {line:?}"
            );
        }
    }

    #[test]
    fn bad_patterns_are_refused_with_their_text() {
        for (bad, says) in [
            ("%Y-%m-%d", "needs a day"),
            ("%Y-%m-%d %H:%M:%Q", "unknown directive %Q"),
            ("%H:%M %d %m %", "lone %"),
            ("%d %m %I:%M", "%I and %p"),
        ] {
            let err = bad.parse::<DatePattern>().unwrap_err();
            assert!(err.contains(says) && err.contains(bad), "{bad:?}: {err}");
        }
    }

    #[test]
    fn none_means_no_time() {
        for text in ["none", "NONE", "{NONE}"] {
            let p: DatePattern = text.parse().unwrap();
            assert!(p.is_none());
            assert_eq!(p.find(b"2026-11-23 07:18:36"), None);
        }
    }
}
