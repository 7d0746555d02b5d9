//! Time zones: how a log's local time maps to Unix time.
//!
//! Receives: naive local times (from logs) or Unix times (to show them as written).
//! Emits: offsets. [`Zone::Local`] asks a caller-supplied [`LocalRules`] (the daemon adapts
//! `/etc/localtime`; tests use [`PosixZone`], a TZ-string rule, e.g. fail2ban's test zone
//! `CET-01CEST-02,M3.5.0,M10.5.0`).
//! Never: reads the system's zone database (that is I/O; the caller does it).

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Timelike};

/// A zone with daylight saving rules, resolved by the caller.
pub trait LocalRules: Send + Sync {
    /// Seconds east of UTC in effect at this local time (as `mktime` with `tm_isdst = -1`).
    fn offset_at_local(&self, local: NaiveDateTime) -> i32;
    /// Seconds east of UTC in effect at this Unix time.
    fn offset_at_unix(&self, unix: i64) -> i32;
}

/// The zone of a log (fail2ban: the process's local zone).
#[derive(Clone)]
pub enum Zone {
    Utc,
    /// A fixed offset, seconds east of UTC.
    Fixed(i32),
    Local(Arc<dyn LocalRules>),
}

impl fmt::Debug for Zone {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Zone::Utc => formatter.write_str("Utc"),
            Zone::Fixed(offset) => write!(formatter, "Fixed({offset})"),
            Zone::Local(_) => formatter.write_str("Local"),
        }
    }
}

impl Zone {
    /// `time.mktime` of a naive local time.
    pub fn to_unix(&self, local: NaiveDateTime) -> i64 {
        let offset = match self {
            Zone::Utc => 0,
            Zone::Fixed(offset) => *offset,
            Zone::Local(zone) => zone.offset_at_local(local),
        };
        local.and_utc().timestamp() - i64::from(offset)
    }

    /// `datetime.fromtimestamp`: the local time of a Unix time.
    pub fn to_local(&self, unix: i64) -> NaiveDateTime {
        let offset = match self {
            Zone::Utc => 0,
            Zone::Fixed(offset) => *offset,
            Zone::Local(zone) => zone.offset_at_unix(unix),
        };
        DateTime::from_timestamp(unix.saturating_add(i64::from(offset)), 0)
            .unwrap_or_default()
            .naive_utc()
    }
}

/// A POSIX TZ rule (`STDoffset[DST[offset],Mm.w.d[/time],Mm.w.d[/time]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PosixZone {
    standard: i32,
    daylight: Option<(i32, Rule, Rule)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rule {
    month: u32,
    week: u32,
    weekday: u32,
    seconds: i32,
}

impl PosixZone {
    /// Parses a TZ string; `None` if it is not of the supported form.
    pub fn parse(text: &str) -> Option<Self> {
        let mut rest = text;
        let (_, after) = take_name(rest)?;
        rest = after;
        let (standard_west, after) = take_offset(rest)?;
        rest = after;
        if rest.is_empty() {
            return Some(PosixZone {
                standard: -standard_west,
                daylight: None,
            });
        }
        let (_, after) = take_name(rest)?;
        rest = after;
        let mut daylight_west = standard_west - 3600;
        if !rest.starts_with(',') {
            let (offset, after) = take_offset(rest)?;
            daylight_west = offset;
            rest = after;
        }
        let mut rules = rest.strip_prefix(',')?.split(',');
        let start = parse_rule(rules.next()?)?;
        let end = parse_rule(rules.next()?)?;
        Some(PosixZone {
            standard: -standard_west,
            daylight: Some((-daylight_west, start, end)),
        })
    }

    fn is_daylight_local(&self, local: NaiveDateTime) -> bool {
        let Some((daylight, start, end)) = self.daylight else {
            return false;
        };
        let year = local.year();
        let seconds = |date: NaiveDate, rule: Rule| {
            date.and_hms_opt(0, 0, 0)
                .unwrap_or_default()
                .and_utc()
                .timestamp()
                + i64::from(rule.seconds)
        };
        let start_at = seconds(rule_date(year, start), start);
        let end_at = seconds(rule_date(year, end), end) - i64::from(daylight - self.standard);
        let at = local.and_utc().timestamp();
        if start_at < end_at {
            at >= start_at && at < end_at
        } else {
            !(at >= end_at && at < start_at)
        }
    }
}

impl LocalRules for PosixZone {
    fn offset_at_local(&self, local: NaiveDateTime) -> i32 {
        match self.daylight {
            Some((daylight, ..)) if self.is_daylight_local(local) => daylight,
            _ => self.standard,
        }
    }

    fn offset_at_unix(&self, unix: i64) -> i32 {
        let standard_local = DateTime::from_timestamp(unix + i64::from(self.standard), 0)
            .unwrap_or_default()
            .naive_utc();
        match self.daylight {
            Some((daylight, start, end)) => {
                let year = standard_local.year();
                let start_at = rule_date(year, start)
                    .and_hms_opt(0, 0, 0)
                    .unwrap_or_default()
                    .and_utc()
                    .timestamp()
                    + i64::from(start.seconds);
                let end_at = rule_date(year, end)
                    .and_hms_opt(0, 0, 0)
                    .unwrap_or_default()
                    .and_utc()
                    .timestamp()
                    + i64::from(end.seconds)
                    - i64::from(daylight - self.standard);
                let at = standard_local.and_utc().timestamp();
                let inside = if start_at < end_at {
                    at >= start_at && at < end_at
                } else {
                    !(at >= end_at && at < start_at)
                };
                if inside { daylight } else { self.standard }
            }
            None => self.standard,
        }
    }
}

/// The host's zone rules (a TZif file the daemon reads) as fail2ban's `time.mktime` and
/// `datetime.fromtimestamp` see them.
impl LocalRules for crate::filter::ZoneRules {
    fn offset_at_local(&self, local: NaiveDateTime) -> i32 {
        let wall = local.and_utc().timestamp();
        let offset_at = |at: i64| self.find_local_time_type(at).map_or(0, |t| t.ut_offset());
        // The offsets in force within a day of the time: an instant is valid when the offset
        // there is the one it was computed with; in an overlap the earlier one wins.
        [wall - 86_400, wall, wall + 86_400]
            .into_iter()
            .map(|probe| wall - i64::from(offset_at(probe)))
            .filter(|&instant| wall - i64::from(offset_at(instant)) == instant)
            .min()
            .map_or_else(|| offset_at(wall), |instant| (wall - instant) as i32)
    }

    fn offset_at_unix(&self, unix: i64) -> i32 {
        self.find_local_time_type(unix).map_or(0, |t| t.ut_offset())
    }
}

fn take_name(text: &str) -> Option<(&str, &str)> {
    if let Some(rest) = text.strip_prefix('<') {
        let end = rest.find('>')?;
        return Some((&rest[..end], &rest[end + 1..]));
    }
    let length = text.bytes().take_while(u8::is_ascii_alphabetic).count();
    (length >= 3).then(|| (&text[..length], &text[length..]))
}

/// An offset `[+-]hh[:mm[:ss]]`, seconds west of UTC (POSIX sign).
fn take_offset(text: &str) -> Option<(i32, &str)> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'-' => (-1, &text[1..]),
        b'+' => (1, &text[1..]),
        _ => (1, text),
    };
    let length = rest
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b':')
        .count();
    if length == 0 {
        return None;
    }
    Some((sign * clock_seconds(&rest[..length])?, &rest[length..]))
}

fn clock_seconds(text: &str) -> Option<i32> {
    let mut parts = text.split(':');
    let hours: i32 = parts.next()?.parse().ok()?;
    let minutes: i32 = parts.next().map_or(Some(0), |m| m.parse().ok())?;
    let seconds: i32 = parts.next().map_or(Some(0), |s| s.parse().ok())?;
    Some(hours * 3600 + minutes * 60 + seconds)
}

fn parse_rule(text: &str) -> Option<Rule> {
    let (date, time) = text.split_once('/').unwrap_or((text, "2"));
    let mut parts = date.strip_prefix('M')?.split('.');
    let month = parts.next()?.parse().ok()?;
    let week = parts.next()?.parse().ok()?;
    let weekday = parts.next()?.parse().ok()?;
    Some(Rule {
        month,
        week,
        weekday,
        seconds: clock_seconds(time)?,
    })
}

/// The date of rule `Mm.w.d` in `year` (week 5 = last).
fn rule_date(year: i32, rule: Rule) -> NaiveDate {
    let first = NaiveDate::from_ymd_opt(year, rule.month, 1).unwrap_or_default();
    let first_weekday = first.weekday().num_days_from_sunday();
    let mut day = 1 + (rule.weekday + 7 - first_weekday) % 7 + (rule.week.saturating_sub(1)) * 7;
    let days_in_month =
        (NaiveDate::from_ymd_opt(year + i32::from(rule.month == 12), rule.month % 12 + 1, 1)
            .unwrap_or_default()
            - first)
            .num_days() as u32;
    while day > days_in_month {
        day -= 7;
    }
    NaiveDate::from_ymd_opt(year, rule.month, day).unwrap_or(first)
}

/// The hour, minute and second of a local time (for display).
pub fn clock(local: NaiveDateTime) -> (u32, u32, u32) {
    (local.hour(), local.minute(), local.second())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn central_european_rule_matches_python() {
        let zone = Zone::Local(Arc::new(
            PosixZone::parse("CET-01CEST-02,M3.5.0,M10.5.0").unwrap(),
        ));
        let summer = NaiveDate::from_ymd_opt(2005, 8, 14)
            .unwrap()
            .and_hms_opt(12, 0, 0)
            .unwrap();
        assert_eq!(zone.to_unix(summer), 1124013600);
        assert_eq!(zone.to_local(1124013600), summer);
        let winter = NaiveDate::from_ymd_opt(2005, 1, 23)
            .unwrap()
            .and_hms_opt(21, 59, 59)
            .unwrap();
        assert_eq!(zone.to_unix(winter), 1106513999);
        assert_eq!(zone.to_local(1106513999), winter);
    }
}
