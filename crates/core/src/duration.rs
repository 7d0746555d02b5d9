//! Durations written as fail2ban writes them: `600`, `10m`, `1h`, `1d`, `1w`, `180d`, combined
//! forms such as `1h30m` or `1d 12h`, and long unit names (`2 hours`, `1 week`).
//!
//! Parsed once, when the TOML is read; the rest of the program only sees [`Duration`]s. A bantime
//! may be negative (fail2ban's "permanent"), which [`BanTime`] spells out.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Why a text is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{text:?} is not a duration (write it as fail2ban does: 600, 10m, 1h, 1d, 1w, 180d, 1h30m)"
)]
pub struct DurationError {
    text: String,
}

/// Seconds in each unit fail2ban knows, longest names first so that `mo` wins over `m`.
const UNITS: &[(&str, u64)] = &[
    ("seconds", 1),
    ("second", 1),
    ("secs", 1),
    ("sec", 1),
    ("s", 1),
    ("minutes", 60),
    ("minute", 60),
    ("mins", 60),
    ("min", 60),
    ("months", 2_629_800),
    ("month", 2_629_800),
    ("mo", 2_629_800),
    ("m", 60),
    ("hours", 3_600),
    ("hour", 3_600),
    ("h", 3_600),
    ("days", 86_400),
    ("day", 86_400),
    ("d", 86_400),
    ("weeks", 604_800),
    ("week", 604_800),
    ("w", 604_800),
    ("years", 31_557_600),
    ("year", 31_557_600),
    ("y", 31_557_600),
];

/// Parses a signed duration in seconds. Sums every `<number><unit>` term; a bare number is seconds.
pub fn parse_seconds(text: &str) -> Result<i64, DurationError> {
    let err = || DurationError {
        text: text.to_string(),
    };
    let trimmed = text.trim();
    let (negative, mut rest) = match trimmed.strip_prefix('-') {
        Some(r) => (true, r.trim_start()),
        None => (false, trimmed.strip_prefix('+').unwrap_or(trimmed)),
    };
    if rest.is_empty() {
        return Err(err());
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(err());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| err())?;
        rest = rest[digits..].trim_start();
        let letters = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let word = rest[..letters].to_ascii_lowercase();
        let unit = if word.is_empty() {
            1
        } else {
            UNITS
                .iter()
                .find(|(name, _)| *name == word)
                .map(|(_, s)| *s)
                .ok_or_else(err)?
        };
        rest = rest[letters..].trim_start();
        total = number
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(err)?;
    }
    let total = i64::try_from(total).map_err(|_| err())?;
    Ok(if negative { -total } else { total })
}

/// Writes seconds back as people write them: one unit when one fits (`3600` → `1h`,
/// `604800` → `1w`, `180 × 86400` → `180d`), else days, hours, minutes and seconds combined
/// (`5400` → `1h30m`). Weeks only for a whole number of weeks: nobody writes `25w5d`.
pub fn format_seconds(seconds: u64) -> String {
    if seconds == 0 {
        return "0s".to_string();
    }
    if seconds.is_multiple_of(604_800) {
        return format!("{}w", seconds / 604_800);
    }
    let mut out = String::new();
    let mut left = seconds;
    for (name, unit) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if left >= unit {
            out.push_str(&format!("{}{name}", left / unit));
            left %= unit;
        }
    }
    out
}

/// A non-negative duration from the config (findtime, maxtime, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span(pub Duration);

impl Span {
    pub fn from_secs(seconds: u64) -> Span {
        Span(Duration::from_secs(seconds))
    }

    pub fn as_secs(&self) -> u64 {
        self.0.as_secs()
    }
}

impl FromStr for Span {
    type Err = DurationError;

    fn from_str(text: &str) -> Result<Span, DurationError> {
        let seconds = parse_seconds(text)?;
        u64::try_from(seconds)
            .map(Span::from_secs)
            .map_err(|_| DurationError {
                text: text.to_string(),
            })
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_seconds(self.as_secs()))
    }
}

/// The length of a ban: a duration, or permanent (fail2ban writes a negative bantime).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BanTime {
    For(Duration),
    Permanent,
}

impl BanTime {
    /// The duration in seconds, `None` when permanent.
    pub fn seconds(&self) -> Option<u64> {
        match self {
            BanTime::For(d) => Some(d.as_secs()),
            BanTime::Permanent => None,
        }
    }
}

impl FromStr for BanTime {
    type Err = DurationError;

    fn from_str(text: &str) -> Result<BanTime, DurationError> {
        if matches!(
            text.trim().to_ascii_lowercase().as_str(),
            "permanent" | "forever"
        ) {
            return Ok(BanTime::Permanent);
        }
        let seconds = parse_seconds(text)?;
        Ok(match u64::try_from(seconds) {
            Ok(s) if s > 0 => BanTime::For(Duration::from_secs(s)),
            Ok(_) => {
                return Err(DurationError {
                    text: text.to_string(),
                });
            }
            Err(_) => BanTime::Permanent,
        })
    }
}

impl fmt::Display for BanTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BanTime::For(d) => f.write_str(&format_seconds(d.as_secs())),
            BanTime::Permanent => f.write_str("permanent"),
        }
    }
}

/// Accepts a TOML integer (seconds) or a string in fail2ban's notation.
struct TextOrSeconds<T>(std::marker::PhantomData<T>);

impl<T: FromStr<Err = DurationError>> Visitor<'_> for TextOrSeconds<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as 600, \"10m\", \"1h\", \"1d\" or \"1w\"")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        v.to_string().parse().map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        v.to_string().parse().map_err(E::custom)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        v.parse().map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
        d.deserialize_any(TextOrSeconds(std::marker::PhantomData))
    }
}

impl<'de> Deserialize<'de> for BanTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<BanTime, D::Error> {
        d.deserialize_any(TextOrSeconds(std::marker::PhantomData))
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Serialize for BanTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail2ban_notation() {
        let cases = [
            ("600", 600),
            ("10m", 600),
            ("1h", 3_600),
            ("1d", 86_400),
            ("1w", 604_800),
            ("180d", 180 * 86_400),
            ("1h30m", 5_400),
            ("1d 12h", 129_600),
            ("2 hours", 7_200),
            ("1 week", 604_800),
            ("1mo", 2_629_800),
            ("1y", 31_557_600),
            ("90s", 90),
            ("-1", -1),
            ("- 1d", -86_400),
            ("10M", 600),
        ];
        for (text, want) in cases {
            assert_eq!(parse_seconds(text), Ok(want), "{text:?}");
        }
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        for bad in [
            "",
            "-",
            "m",
            "10 parsecs",
            "1h-",
            "1.5h",
            "h1",
            "99999999999999999999",
            "10m x",
        ] {
            assert!(parse_seconds(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn bantime_negative_is_permanent() {
        assert_eq!("-1".parse(), Ok(BanTime::Permanent));
        assert_eq!("permanent".parse(), Ok(BanTime::Permanent));
        assert_eq!("1h".parse(), Ok(BanTime::For(Duration::from_secs(3600))));
        assert!("0".parse::<BanTime>().is_err(), "a zero ban bans nothing");
        assert!(
            "-10m".parse::<Span>().is_err(),
            "findtime cannot be negative"
        );
    }

    #[test]
    fn formats_back() {
        assert_eq!(format_seconds(3600), "1h");
        assert_eq!(format_seconds(5400), "1h30m");
        assert_eq!(format_seconds(61), "1m1s");
        // Regression: 180d printed as `25w5d`, and findtime as `604800s` next to `bantime 1w`.
        let people = [
            (180 * 86_400, "180d"),
            (604_800, "1w"),
            (5 * 604_800, "5w"),
            (8 * 86_400, "8d"),
            (36 * 3_600, "1d12h"),
            (600, "10m"),
            (86_400, "1d"),
            (3_661, "1h1m1s"),
        ];
        for (seconds, text) in people {
            assert_eq!(format_seconds(seconds), text);
            assert_eq!(parse_seconds(text), Ok(seconds as i64), "{text} reads back");
        }
    }

    #[test]
    fn deserializes_integers_and_strings() {
        #[derive(Deserialize)]
        struct T {
            a: Span,
            b: BanTime,
            c: BanTime,
        }
        let t: T = toml::from_str("a = 600\nb = \"1d\"\nc = -1").unwrap();
        assert_eq!(t.a, Span::from_secs(600));
        assert_eq!(t.b, BanTime::For(Duration::from_secs(86_400)));
        assert_eq!(t.c, BanTime::Permanent);
        let err = toml::from_str::<T>("a = \"ten minutes\"\nb = 1\nc = 1")
            .err()
            .unwrap();
        assert!(err.to_string().contains("not a duration"), "{err}");
    }
}
