//! Timestamps: the known formats a log line starts with, the log's time zone, and the year a
//! syslog date does not carry.
//!
//! Receives the bytes where a timestamp may start; emits a [`Stamp`] (the fields as written) and,
//! once a line is worth it, the resolved time: the log's own wall-clock time and the same instant
//! as Unix seconds. It never reads the clock: `now` is always an argument. It never allocates.
//! The local zone's rules come from [`LocalZone`], which the caller keeps up to date.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, NaiveDateTime, Utc};

use super::zone::LocalZone;

/// The zone of times a log writes without an offset (fail2ban's `logtimezone`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogTimeZone {
    /// The host's local zone (with its daylight saving rules).
    #[default]
    Local,
    /// A fixed offset east of UTC.
    Fixed(FixedOffset),
}

/// What a log's zone means at the moment of a conversion: a fixed offset, or the local zone's
/// rules as they are now.
#[derive(Debug, Clone, Copy)]
pub enum Zone<'a> {
    Fixed(FixedOffset),
    Local(&'a LocalZone),
}

impl Zone<'_> {
    /// `now` as wall-clock time in this zone.
    pub fn wall_clock(&self, now: DateTime<Utc>) -> NaiveDateTime {
        match self {
            Zone::Fixed(offset) => now.with_timezone(offset).naive_local(),
            Zone::Local(local) => local
                .wall_clock(now.timestamp(), now.timestamp_subsec_nanos())
                .unwrap_or_else(|| now.naive_utc()),
        }
    }

    /// Unix seconds of a wall-clock time in this zone. In a daylight-saving gap the time is
    /// taken as if the clock had already moved; in an overlap, the earlier instant wins.
    pub fn instant(&self, wall: NaiveDateTime) -> i64 {
        match self {
            Zone::Fixed(offset) => wall.and_utc().timestamp() - i64::from(offset.local_minus_utc()),
            Zone::Local(local) => local.instant(wall),
        }
    }

    /// The wall-clock time of Unix seconds `at` in this zone.
    pub fn wall_at(&self, at: i64, nanos: u32) -> Option<NaiveDateTime> {
        let utc = DateTime::<Utc>::from_timestamp(at, nanos)?;
        Some(self.wall_clock(utc))
    }
}

impl fmt::Display for LogTimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogTimeZone::Local => f.write_str("local"),
            LogTimeZone::Fixed(offset) if offset.local_minus_utc() == 0 => f.write_str("UTC"),
            LogTimeZone::Fixed(offset) => write!(f, "UTC{offset}"),
        }
    }
}

/// Why a text is not a log time zone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a time zone (write local, UTC, UTC+0200, +02:00 or -0500)")]
pub struct TimeZoneError(pub String);

impl FromStr for LogTimeZone {
    type Err = TimeZoneError;

    fn from_str(text: &str) -> Result<LogTimeZone, TimeZoneError> {
        let err = || TimeZoneError(text.to_string());
        let trimmed = text.trim();
        if trimmed.eq_ignore_ascii_case("local") {
            return Ok(LogTimeZone::Local);
        }
        let rest = ["UTC", "GMT", "Z"]
            .iter()
            .find_map(|name| {
                trimmed
                    .get(..name.len())
                    .filter(|head| head.eq_ignore_ascii_case(name))
                    .map(|_| &trimmed[name.len()..])
            })
            .unwrap_or(trimmed);
        if rest.is_empty() {
            return if rest.len() == trimmed.len() {
                Err(err())
            } else {
                Ok(utc())
            };
        }
        let (offset, used) = parse_offset(rest.as_bytes()).ok_or_else(err)?;
        if used != rest.len() {
            return Err(err());
        }
        Ok(LogTimeZone::Fixed(offset))
    }
}

fn utc() -> LogTimeZone {
    LogTimeZone::Fixed(FixedOffset::east_opt(0).expect("invariant: zero offset is valid"))
}

/// A timestamp as a line wrote it, before its year and zone are settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamp {
    /// A calendar date and time of day.
    Civil {
        /// `None` for syslog dates, which carry no year.
        year: Option<i32>,
        month: u32,
        day: u32,
        hour: u32,
        minute: u32,
        second: u32,
        nanos: u32,
        /// Seconds east of UTC when the stamp carried an offset.
        offset: Option<i32>,
    },
    /// Seconds since the Unix epoch (with an optional fraction).
    Epoch { seconds: i64, nanos: u32 },
}

/// A time resolved against the log's zone and `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved {
    /// The log's own wall-clock time.
    pub time: NaiveDateTime,
    /// The same instant, Unix seconds.
    pub at: i64,
}

impl Stamp {
    /// [`Stamp::resolve`], with the years of year-less days remembered in `years` for the
    /// local zone's `generation` (0 for a fixed zone).
    pub fn resolve_cached(
        &self,
        zone: Zone<'_>,
        generation: u64,
        now: DateTime<Utc>,
        years: &mut YearCache,
    ) -> Option<Resolved> {
        let Stamp::Civil {
            year: None,
            month,
            day,
            hour,
            minute,
            second,
            nanos,
            offset: None,
        } = *self
        else {
            return self.resolve(zone, now);
        };
        let time = chrono::NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)?;
        let wall = years
            .date((month, day, time), zone, generation, now)?
            .and_time(time);
        Some(Resolved {
            time: wall,
            at: zone.instant(wall),
        })
    }

    /// Resolves the stamp: fills a missing year from `now` (the latest year that does not put
    /// the date more than one day after `now`), applies the offset or the log's zone. `None`
    /// when the fields are no date (February 30th, hour 25).
    pub fn resolve(&self, zone: Zone<'_>, now: DateTime<Utc>) -> Option<Resolved> {
        match *self {
            Stamp::Epoch { seconds, nanos } => Some(Resolved {
                time: zone.wall_at(seconds, nanos)?,
                at: seconds,
            }),
            Stamp::Civil {
                year,
                month,
                day,
                hour,
                minute,
                second,
                nanos,
                offset,
            } => {
                let time = chrono::NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)?;
                let date = match year {
                    Some(year) => NaiveDate::from_ymd_opt(year, month, day)?,
                    None => infer_year(month, day, time, zone, offset, now)?,
                };
                let wall = date.and_time(time);
                let at = match offset {
                    Some(east) => wall.and_utc().timestamp() - i64::from(east),
                    None => zone.instant(wall),
                };
                Some(Resolved { time: wall, at })
            }
        }
    }
}

/// The years of year-less days, remembered for one `now` (see [`Stamp::resolve_cached`]): a
/// syslog log repeats the same day for thousands of lines, and inferring its year converts
/// `now` to the log's clock each time.
#[derive(Debug, Clone, Default)]
pub struct YearCache {
    /// What the entry was inferred with: `now`, the zone's offset (`None`: the local zone) and
    /// the local zone's generation.
    key: Option<(DateTime<Utc>, Option<FixedOffset>, u64)>,
    /// The last day looked up (month, day) and its date when every time of that day falls in
    /// the same year; `None` for a day whose times do not (the day after `now`, a leap day), so
    /// that its lines go straight to the per-line inference.
    day: Option<(u32, u32, Option<NaiveDate>)>,
}

impl YearCache {
    /// The date of a year-less `month day time` in `zone` (without an offset of its own), as
    /// [`infer_year`] gives it.
    fn date(
        &mut self,
        (month, day, time): (u32, u32, chrono::NaiveTime),
        zone: Zone<'_>,
        generation: u64,
        now: DateTime<Utc>,
    ) -> Option<NaiveDate> {
        let key = match zone {
            Zone::Fixed(offset) => (now, Some(offset), 0),
            Zone::Local(_) => (now, None, generation),
        };
        if self.key != Some(key) {
            self.key = Some(key);
            self.day = None;
        }
        let uniform = match self.day {
            Some((m, d, uniform)) if (m, d) == (month, day) => uniform,
            _ => {
                // The later the time, the fewer years put it before the limit, so the year
                // inferred can only go down as the time goes up: when the first and the last
                // instant of the day get the same year, every time of that day gets it too.
                let first = chrono::NaiveTime::MIN;
                let last = chrono::NaiveTime::from_hms_nano_opt(23, 59, 59, 1_999_999_999)
                    .expect("invariant: the last leap nanosecond of a day is a time");
                let early = infer_year(month, day, first, zone, None, now);
                let uniform =
                    early.filter(|_| early == infer_year(month, day, last, zone, None, now));
                self.day = Some((month, day, uniform));
                uniform
            }
        };
        uniform.or_else(|| infer_year(month, day, time, zone, None, now))
    }
}

/// The date of a year-less `month day time`: the latest of next year, this year and the four
/// before (leap days) that is not more than one day after `now`, as seen on the log's clock.
fn infer_year(
    month: u32,
    day: u32,
    time: chrono::NaiveTime,
    zone: Zone<'_>,
    offset: Option<i32>,
    now: DateTime<Utc>,
) -> Option<NaiveDate> {
    let wall_now = match offset.and_then(FixedOffset::east_opt) {
        Some(east) => now.with_timezone(&east).naive_local(),
        None => zone.wall_clock(now),
    };
    let limit = wall_now + Duration::days(1);
    let this_year = wall_now.year();
    (0..6)
        .map(|back| this_year + 1 - back)
        .filter_map(|year| NaiveDate::from_ymd_opt(year, month, day))
        .find(|date| date.and_time(time) <= limit)
}

/// Parses one of the known formats at the start of `text`; returns the stamp and its length.
///
/// Known: ISO 8601 / RFC 3339 (`2026-11-23T07:18:36.123+01:00`, also with a space, a comma
/// fraction, `Z`, `+0100`, ` -0500`), `2026/11/23 07:18:36`, DirectAdmin's
/// `2026:11:23-07:18:36`, syslog's `Nov 23 07:18:36` (space-padded day, optionally a weekday
/// before and a year after: `Fri Nov 23 07:18:36.5 2026`, as vsftpd and Apache's error log write
/// it), Apache's `23/Nov/2026:07:18:36 +0000`, PHP's `23-Nov-2026 07:18:36 +0100`, older
/// cPanel's `11/23/2026:07:18:36 -0000` (month first), epoch
/// seconds of 10 digits (`1795418316.123`) and daemontools' TAI64N (`@4000000069229fe1…`).
pub fn parse_known(text: &[u8]) -> Option<(Stamp, usize)> {
    match text.first()? {
        b'0'..=b'9' => parse_iso(text)
            .or_else(|| parse_clf(text))
            .or_else(|| parse_dmy(text))
            .or_else(|| parse_mdy(text))
            .or_else(|| parse_epoch(text)),
        b'A'..=b'Z' | b'a'..=b'z' => parse_syslog(text),
        b'@' => parse_tai64n(text),
        _ => None,
    }
}

/// daemontools' TAI64N label `@` + 24 hex digits (seconds since 1970 TAI, plus 2^62, then
/// nanoseconds), converted as `tai64nlocal` does (TAI is taken as UTC + 10 s).
pub fn parse_tai64n(text: &[u8]) -> Option<(Stamp, usize)> {
    if text.first() != Some(&b'@') {
        return None;
    }
    let hex = |range: std::ops::Range<usize>| -> Option<u64> {
        let digits = std::str::from_utf8(text.get(range)?).ok()?;
        u64::from_str_radix(digits, 16).ok()
    };
    let label = hex(1..17)?;
    let nanos = hex(17..25)?;
    if text.get(25).is_some_and(u8::is_ascii_hexdigit) || nanos >= 1_000_000_000 {
        return None;
    }
    let seconds = label.checked_sub((1 << 62) + 10)?;
    Some((
        Stamp::Epoch {
            seconds: i64::try_from(seconds).ok()?,
            nanos: nanos as u32,
        },
        25,
    ))
}

/// Older cPanel's `11/23/2026:07:18:36` (month, day, year) with an optional ` -0000`.
pub fn parse_mdy(text: &[u8]) -> Option<(Stamp, usize)> {
    if text.get(2) != Some(&b'/') || text.get(5) != Some(&b'/') || text.get(10) != Some(&b':') {
        return None;
    }
    let month = fixed_digits(text.get(..2)?)?;
    let day = fixed_digits(text.get(3..5)?)?;
    let year = fixed_digits(text.get(6..10)?)?;
    let (hour, minute, second, used) = clock(text.get(11..)?)?;
    let mut pos = 11 + used;
    let mut offset = None;
    if let Some((east, zone_len)) = zone_suffix(&text[pos..]) {
        offset = Some(east);
        pos += zone_len;
    }
    let stamp = Stamp::Civil {
        year: Some(year as i32),
        month,
        day,
        hour,
        minute,
        second,
        nanos: 0,
        offset,
    };
    Some((stamp, pos))
}

/// PHP's `23-Nov-2026 07:18:36` with an optional ` +0100` (Roundcube's logs).
pub fn parse_dmy(text: &[u8]) -> Option<(Stamp, usize)> {
    let (day, used) = digits_upto(text, 2)?;
    if text.get(used) != Some(&b'-') || text.get(used + 4) != Some(&b'-') {
        return None;
    }
    let month = month_abbrev(text.get(used + 1..used + 4)?)?;
    let year = fixed_digits(text.get(used + 5..used + 9)?)?;
    if text.get(used + 9) != Some(&b' ') {
        return None;
    }
    clock_from(text, used + 10, (year as i32, month, day))
}

/// RFC 3164's `Mmm dd HH:MM:SS` (15 bytes; the day may be space-padded or unpadded), with an
/// optional weekday before (`Fri `) and an optional year after (` 2026`).
pub fn parse_syslog(text: &[u8]) -> Option<(Stamp, usize)> {
    syslog_common(text).or_else(|| syslog_any(text))
}

/// [`parse_syslog`] for every shape.
fn syslog_any(text: &[u8]) -> Option<(Stamp, usize)> {
    // Every line of a syslog file comes through here: the name is read once as three
    // case-folded bytes and looked up as a number (no weekday or month name is both).
    let mut weekday = 0;
    let mut month = month_number(abbrev_key(text)?);
    if month.is_none() && text.get(3) == Some(&b' ') && is_weekday(abbrev_key(text)?) {
        weekday = 4;
        month = month_number(abbrev_key(&text[4..])?);
    }
    let month = month?;
    let text = &text[weekday..];
    if text.get(3) != Some(&b' ') {
        return None;
    }
    let mut pos = 4;
    if text.get(pos) == Some(&b' ') {
        pos += 1;
    }
    let (day, used) = digits_upto(&text[pos..], 2)?;
    pos += used;
    if text.get(pos) != Some(&b' ') {
        return None;
    }
    let (hour, minute, second, used) = clock(text.get(pos + 1..)?)?;
    pos += 1 + used;
    let (nanos, used) = fraction(&text[pos..]);
    pos += used;
    let mut year = None;
    // ` 2026` after the time, when a space, `]` or the end follows.
    if text.get(pos) == Some(&b' ')
        && let Some(value) = text.get(pos + 1..pos + 5).and_then(fixed_digits)
        && (1970..2100).contains(&value)
        && matches!(text.get(pos + 5), None | Some(b' ' | b']' | b','))
    {
        year = Some(value as i32);
        pos += 5;
    }
    pos += weekday;
    let stamp = Stamp::Civil {
        year,
        month,
        day,
        hour,
        minute,
        second,
        nanos,
        offset: None,
    };
    Some((stamp, pos))
}

/// The shape of nearly every syslog line, `Nov 23 07:18:36 h` or `Nov  3 07:18:36 h`, read in
/// one step; `None` for anything else (a weekday, an unpadded day, a fraction, a year, the
/// end of the line), which [`syslog_any`] then reads, to the same result.
fn syslog_common(text: &[u8]) -> Option<(Stamp, usize)> {
    let &[
        m0,
        m1,
        m2,
        b' ',
        d1,
        d0,
        b' ',
        h1,
        h0,
        b':',
        n1,
        n0,
        b':',
        s1,
        s0,
        b' ',
        next,
    ] = text.get(..17)?
    else {
        return None;
    };
    if next.is_ascii_digit() {
        return None; // perhaps a year
    }
    let month = month_number(u32::from_le_bytes([m0 | 0x20, m1 | 0x20, m2 | 0x20, 0]))?;
    let day = if d1 == b' ' {
        two_digits(b'0', d0)?
    } else {
        two_digits(d1, d0)?
    };
    let stamp = Stamp::Civil {
        year: None,
        month,
        day,
        hour: two_digits(h1, h0)?,
        minute: two_digits(n1, n0)?,
        second: two_digits(s1, s0)?.min(59),
        nanos: 0,
        offset: None,
    };
    Some((stamp, 15))
}

/// `YYYY-MM-DD[T ]HH:MM:SS[.frac][zone]`, `YYYY/MM/DD HH:MM:SS` and `YYYY:MM:DD-HH:MM:SS`.
pub fn parse_iso(text: &[u8]) -> Option<(Stamp, usize)> {
    let year = fixed_digits(text.get(..4)?)?;
    let sep = *text.get(4)?;
    let time_sep: &[u8] = match sep {
        b'-' => b"T ",
        b'/' => b" ",
        b':' => b"-",
        _ => return None,
    };
    let month = fixed_digits(text.get(5..7)?)?;
    if text.get(7) != Some(&sep) {
        return None;
    }
    let day = fixed_digits(text.get(8..10)?)?;
    if !time_sep.contains(text.get(10)?) {
        return None;
    }
    clock_from(text, 11, (year as i32, month, day))
}

/// `HH:MM:SS[.frac][zone]` at `pos`, after a date already read: the whole stamp and where it
/// ends.
fn clock_from(
    text: &[u8],
    pos: usize,
    (year, month, day): (i32, u32, u32),
) -> Option<(Stamp, usize)> {
    let (hour, minute, second, used) = clock(text.get(pos..)?)?;
    let mut pos = pos + used;
    let (nanos, used) = fraction(&text[pos..]);
    pos += used;
    let mut offset = None;
    if let Some((east, used)) = zone_suffix(&text[pos..]) {
        offset = Some(east);
        pos += used;
    }
    let stamp = Stamp::Civil {
        year: Some(year),
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

/// Apache's common log format time `23/Nov/2026:07:18:36 +0000`.
pub fn parse_clf(text: &[u8]) -> Option<(Stamp, usize)> {
    let day = fixed_digits(text.get(..2)?)?;
    if text.get(2) != Some(&b'/') || text.get(6) != Some(&b'/') || text.get(11) != Some(&b':') {
        return None;
    }
    let month = month_abbrev(text.get(3..6)?)?;
    let year = fixed_digits(text.get(7..11)?)?;
    let (hour, minute, second, used) = clock(text.get(12..)?)?;
    let mut pos = 12 + used;
    let mut offset = None;
    if text.get(pos) == Some(&b' ')
        && let Some((east, used)) = parse_offset(&text[pos + 1..])
    {
        offset = Some(east.local_minus_utc());
        pos += 1 + used;
    }
    let stamp = Stamp::Civil {
        year: Some(year as i32),
        month,
        day,
        hour,
        minute,
        second,
        nanos: 0,
        offset,
    };
    Some((stamp, pos))
}

/// Epoch seconds of exactly 10 digits (2001 to 2286), with an optional `.fraction`.
pub fn parse_epoch(text: &[u8]) -> Option<(Stamp, usize)> {
    let seconds = fixed_digits(text.get(..10)?)?;
    if text.get(10).is_some_and(u8::is_ascii_digit) || seconds < 1_000_000_000 {
        return None;
    }
    let (nanos, used) = fraction(&text[10..]);
    Some((
        Stamp::Epoch {
            seconds: i64::from(seconds),
            nanos,
        },
        10 + used,
    ))
}

/// An offset after a time: `Z`, `+01:00`, `+0100`, `+01`, or one space then `+0100`.
fn zone_suffix(text: &[u8]) -> Option<(i32, usize)> {
    match text.first()? {
        b'Z' => Some((0, 1)),
        b'+' | b'-' => parse_offset(text).map(|(o, used)| (o.local_minus_utc(), used)),
        b' ' if matches!(text.get(1), Some(b'+' | b'-')) => {
            let (offset, used) = parse_offset(&text[1..])?;
            // Only a four-digit offset counts after a space, so "12:00:00 -" stays text.
            (used == 5).then_some((offset.local_minus_utc(), used + 1))
        }
        _ => None,
    }
}

/// `+HH:MM`, `+HHMM` or `+HH` (also `-`); returns the offset and the bytes used.
pub fn parse_offset(text: &[u8]) -> Option<(FixedOffset, usize)> {
    let sign = match text.first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let hours = fixed_digits(text.get(1..3)?)?;
    let (minutes, used) = match text.get(3) {
        Some(b':') => (fixed_digits(text.get(4..6)?)?, 6),
        Some(b'0'..=b'9') => (fixed_digits(text.get(3..5)?)?, 5),
        _ => (0, 3),
    };
    if hours > 23 || minutes > 59 {
        return None;
    }
    let east = sign * (hours as i32 * 3600 + minutes as i32 * 60);
    Some((FixedOffset::east_opt(east)?, used))
}

/// `HH:MM:SS` (two digits each); returns the fields and 8.
fn clock(text: &[u8]) -> Option<(u32, u32, u32, usize)> {
    let &[h1, h0, b':', m1, m0, b':', s1, s0] = text.get(..8)? else {
        return None;
    };
    let hour = two_digits(h1, h0)?;
    let minute = two_digits(m1, m0)?;
    let second = two_digits(s1, s0)?;
    // 60 is a leap second; chrono keeps it as 59 + 1s of nanos, we clamp it to 59.
    Some((hour, minute, second.min(59), 8))
}

/// Two ASCII digits; their value.
fn two_digits(tens: u8, ones: u8) -> Option<u32> {
    let (tens, ones) = (tens.wrapping_sub(b'0'), ones.wrapping_sub(b'0'));
    (tens < 10 && ones < 10).then(|| u32::from(tens * 10 + ones))
}

/// An optional `.123456` or `,123` fraction; returns nanoseconds and the bytes used.
fn fraction(text: &[u8]) -> (u32, usize) {
    if !matches!(text.first(), Some(b'.' | b',')) {
        return (0, 0);
    }
    let digits = text[1..].iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return (0, 0);
    }
    let mut nanos: u32 = 0;
    for (i, b) in text[1..1 + digits.min(9)].iter().enumerate() {
        nanos += u32::from(b - b'0') * 10u32.pow(8 - i as u32);
    }
    (nanos, 1 + digits)
}

/// All bytes are ASCII digits; their value.
pub(crate) fn fixed_digits(text: &[u8]) -> Option<u32> {
    let mut value: u32 = 0;
    for &b in text {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u32::from(b - b'0'))?;
    }
    Some(value)
}

/// One to `max` leading digits; their value and count.
pub(crate) fn digits_upto(text: &[u8], max: usize) -> Option<(u32, usize)> {
    // One or two digits (a day, an hour) are most of the calls: read without a loop.
    if max <= 2 {
        return match (text.first(), text.get(1)) {
            (Some(&a), Some(&b)) if max == 2 && a.is_ascii_digit() && b.is_ascii_digit() => {
                Some((u32::from(a - b'0') * 10 + u32::from(b - b'0'), 2))
            }
            (Some(&a), _) if max > 0 && a.is_ascii_digit() => Some((u32::from(a - b'0'), 1)),
            _ => None,
        };
    }
    let n = text
        .iter()
        .take(max)
        .take_while(|b| b.is_ascii_digit())
        .count();
    if n == 0 {
        return None;
    }
    Some((fixed_digits(&text[..n])?, n))
}

/// The first three bytes of `text`, ASCII letters folded to lower case, as one number to
/// compare with [`key`]s. Or-ing 0x20 folds exactly for letters: of all bytes, only `N` and
/// `n` become `n`; other bytes may fold onto non-letters, which no name holds.
fn abbrev_key(text: &[u8]) -> Option<u32> {
    let &[a, b, c] = text.get(..3)? else {
        return None;
    };
    Some(u32::from_le_bytes([a | 0x20, b | 0x20, c | 0x20, 0]))
}

/// A lower-case three-letter name as [`abbrev_key`] makes it.
const fn key(name: &[u8; 3]) -> u32 {
    u32::from_le_bytes([name[0], name[1], name[2], 0])
}

fn is_weekday(key_: u32) -> bool {
    const DAYS: [u32; 7] = [
        key(b"mon"),
        key(b"tue"),
        key(b"wed"),
        key(b"thu"),
        key(b"fri"),
        key(b"sat"),
        key(b"sun"),
    ];
    DAYS.contains(&key_)
}

fn month_number(key_: u32) -> Option<u32> {
    const MONTHS: [u32; 12] = [
        key(b"jan"),
        key(b"feb"),
        key(b"mar"),
        key(b"apr"),
        key(b"may"),
        key(b"jun"),
        key(b"jul"),
        key(b"aug"),
        key(b"sep"),
        key(b"oct"),
        key(b"nov"),
        key(b"dec"),
    ];
    MONTHS.iter().position(|m| *m == key_).map(|i| i as u32 + 1)
}

/// `Jan`..`Dec` in any case; the month number.
pub(crate) fn month_abbrev(text: &[u8]) -> Option<u32> {
    month_number(abbrev_key(text)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc_now(text: &str) -> DateTime<Utc> {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
            .unwrap()
            .and_utc()
    }

    fn fixed(east: i32) -> Zone<'static> {
        Zone::Fixed(FixedOffset::east_opt(east).unwrap())
    }

    fn resolve(line: &str, zone: Zone<'_>, now: &str) -> Option<(String, i64, usize)> {
        let (stamp, used) = parse_known(line.as_bytes())?;
        let r = stamp.resolve(zone, utc_now(now))?;
        Some((
            r.time.format("%Y-%m-%dT%H:%M:%S%.f").to_string(),
            r.at,
            used,
        ))
    }

    #[test]
    fn known_formats() {
        let now = "2026-11-23 12:00:00";
        let utc = fixed(0);
        let cases: &[(&str, &str, i64, usize)] = &[
            (
                "Nov 23 07:18:36 host",
                "2026-11-23T07:18:36",
                1795418316,
                15,
            ),
            (
                "Nov  3 07:18:36 host",
                "2026-11-03T07:18:36",
                1793690316,
                15,
            ),
            ("Nov 3 07:18:36 host", "2026-11-03T07:18:36", 1793690316, 14),
            (
                "nov 23 07:18:36.250 x",
                "2026-11-23T07:18:36.250",
                1795418316,
                19,
            ),
            (
                "2026-11-23T07:18:36Z x",
                "2026-11-23T07:18:36",
                1795418316,
                20,
            ),
            (
                "2026-11-23T08:18:36.123456+01:00 h",
                "2026-11-23T08:18:36.123456",
                1795418316,
                32,
            ),
            (
                "2026-11-23 02:18:36 -0500] info",
                "2026-11-23T02:18:36",
                1795418316,
                25,
            ),
            (
                "2026-11-23 07:18:36,5 x",
                "2026-11-23T07:18:36.500",
                1795418316,
                21,
            ),
            (
                "2026-11-23T09:18:36+0200 x",
                "2026-11-23T09:18:36",
                1795418316,
                24,
            ),
            (
                "2026/11/23 07:18:36 x",
                "2026-11-23T07:18:36",
                1795418316,
                19,
            ),
            (
                "2026:11:23-07:18:36: 'x'",
                "2026-11-23T07:18:36",
                1795418316,
                19,
            ),
            (
                "23/Nov/2026:07:18:36 +0000] \"GET",
                "2026-11-23T07:18:36",
                1795418316,
                26,
            ),
            (
                "1795418316.123 x",
                "2026-11-23T07:18:36.123",
                1795418316,
                14,
            ),
            ("1795418316 x", "2026-11-23T07:18:36", 1795418316, 10),
            // vsftpd's and Apache's error log, PHP's (Roundcube's) dates, daemontools' TAI64N.
            (
                "Mon Nov 23 07:18:36 2026 [pid 1]",
                "2026-11-23T07:18:36",
                1795418316,
                24,
            ),
            (
                "Mon Nov 23 07:18:36.123456 2026] [error]",
                "2026-11-23T07:18:36.123456",
                1795418316,
                31,
            ),
            (
                "23-Nov-2026 08:18:36 +0100]: x",
                "2026-11-23T08:18:36",
                1795418316,
                26,
            ),
            (
                "11/23/2026:02:18:36 -0500] \"POST",
                "2026-11-23T02:18:36",
                1795418316,
                25,
            ),
            (
                "@400000006b03e8d6077a9e94 x",
                "2026-11-23T07:18:36.125476500",
                1795418316,
                25,
            ),
        ];
        for (line, time, at, used) in cases {
            let got = resolve(line, utc, now);
            assert_eq!(got, Some((time.to_string(), *at, *used)), "line {line:?}");
        }
    }

    #[test]
    fn rejects_non_times() {
        let now = "2026-11-23 12:00:00";
        for line in [
            "",
            "Nov",
            "Foo 23 07:18:36",
            "Nov 23 7:18:36",
            "2026-11-23",
            "2026-11-23X07:18:36",
            "12345",
            "123456789012",
            "0000000001",
            "sshd[12]: x",
            "@4000000069",
            "@400000006b03e8d6fffffffff",
            "Mon 23 07:18:36",
            "23-Foo-2026 07:18:36",
        ] {
            assert_eq!(resolve(line, fixed(0), now), None, "line {line:?}");
        }
        // Well-formed but no date.
        for line in [
            "Feb 30 07:18:36",
            "2026-13-01 00:00:00",
            "2026-01-01 24:00:00",
        ] {
            assert!(parse_known(line.as_bytes()).is_some(), "{line:?} shape");
            assert_eq!(resolve(line, fixed(0), now), None, "line {line:?}");
        }
    }

    #[test]
    fn month_and_weekday_names_fold_only_letters() {
        assert_eq!(month_abbrev(b"NOV"), Some(11));
        assert_eq!(month_abbrev(b"nOv"), Some(11));
        assert_eq!(month_abbrev(b"Dec 1"), Some(12));
        // Bytes that or-ing 0x20 maps onto others: `^`, DEL, a UTF-8 byte; too short.
        for text in [&b"N\x0fV"[..], b"\x7eov", b"No\xd6", b"No", b"", b"mon"] {
            assert_eq!(month_abbrev(text), None, "{text:?}");
        }
        assert!(abbrev_key(b"FRI").is_some_and(is_weekday));
        assert!(!abbrev_key(b"FRX").is_some_and(is_weekday));
        assert_eq!(digits_upto(b"7:", 2), Some((7, 1)));
        assert_eq!(digits_upto(b"07", 2), Some((7, 2)));
        assert_eq!(digits_upto(b"123", 2), Some((12, 2)));
        assert_eq!(digits_upto(b"123", 1), Some((1, 1)));
        assert_eq!(digits_upto(b"1", 0), None);
        assert_eq!(digits_upto(b"x1", 2), None);
    }

    /// The one-step reading of `Nov 23 07:18:36 h` agrees with the general one, and leaves
    /// every other shape to it.
    #[test]
    fn common_syslog_shape_reads_as_the_general_parser() {
        let mut common = 0;
        for month in ["Nov", "nOV", "Fri", "Nox"] {
            for day in [" 3", "03", "23", "00", " 0", "3 ", "x3"] {
                for clock in ["07:18:36", "23:59:60", "99:99:99", "07:18:3x", "7:18:36"] {
                    for rest in [
                        " h", " 2026 h", " 2026", " 1969 h", ".5 h", " 2x", "", "\th",
                    ] {
                        let line = format!("{month} {day} {clock}{rest}");
                        let general = syslog_any(line.as_bytes());
                        if let Some(found) = syslog_common(line.as_bytes()) {
                            assert_eq!(Some(found), general, "{line:?}");
                            common += 1;
                        }
                        assert_eq!(parse_syslog(line.as_bytes()), general, "{line:?}");
                    }
                }
            }
        }
        // Two months, five days (padded or two digits), three clocks, then ` h` only.
        assert_eq!(common, 2 * 5 * 3);
    }

    #[test]
    fn year_inference() {
        let cases: &[(&str, &str, &str)] = &[
            // Same year.
            (
                "Nov 23 07:18:36",
                "2026-11-23 12:00:00",
                "2026-11-23T07:18:36",
            ),
            // Up to a day ahead is still this year (a clock slightly ahead).
            (
                "Nov 24 11:00:00",
                "2026-11-23 12:00:00",
                "2026-11-24T11:00:00",
            ),
            // More than a day ahead: last year.
            (
                "Nov 25 12:00:00",
                "2026-11-23 12:00:00",
                "2025-11-25T12:00:00",
            ),
            // Reading on Jan 1 a line of Dec 31: last year.
            (
                "Dec 31 23:59:59",
                "2027-01-01 00:00:05",
                "2026-12-31T23:59:59",
            ),
            // Reading on Dec 31 a line of Jan 1 (clock ahead): next year.
            (
                "Jan  1 00:00:01",
                "2026-12-31 23:59:58",
                "2027-01-01T00:00:01",
            ),
            // Leap day read in a non-leap year: the last leap year.
            (
                "Feb 29 10:00:00",
                "2029-03-01 00:00:00",
                "2028-02-29T10:00:00",
            ),
            (
                "Feb 29 10:00:00",
                "2028-03-01 00:00:00",
                "2028-02-29T10:00:00",
            ),
            (
                "Feb 29 10:00:00",
                "2027-06-01 00:00:00",
                "2024-02-29T10:00:00",
            ),
        ];
        for (line, now, want) in cases {
            let got = resolve(line, fixed(0), now).map(|(t, _, _)| t);
            assert_eq!(got.as_deref(), Some(*want), "line {line:?} now {now}");
        }
    }

    /// The remembered years give what inferring each stamp's year gives: around the turn of
    /// the year, leap days, zones far from UTC and a zone with daylight saving, with the
    /// cache kept from one `now` to the next.
    #[test]
    fn remembered_years_are_the_years_inferred() {
        let paris =
            LocalZone::from_tzif(&std::fs::read("/usr/share/zoneinfo/Europe/Paris").unwrap());
        let zones = [
            fixed(0),
            fixed(14 * 3600),
            fixed(-12 * 3600),
            Zone::Local(&paris),
        ];
        let nows = [
            "2026-11-23 12:00:00",
            "2026-12-31 23:59:58",
            "2027-01-01 00:00:05",
            "2028-02-28 23:30:00",
            "2028-03-01 00:00:00",
            "2029-03-01 00:00:00",
            "2026-03-29 01:30:00",
        ];
        let times = [
            (0, 0, 0, 0),
            (0, 0, 5, 0),
            (12, 0, 0, 0),
            (23, 59, 59, 999_999_999),
        ];
        for zone in zones {
            let mut years = YearCache::default();
            for now in nows.map(utc_now) {
                for (month, day) in (1..=12).flat_map(|m| (1..=31).map(move |d| (m, d))) {
                    for (hour, minute, second, nanos) in times {
                        let stamp = Stamp::Civil {
                            year: None,
                            month,
                            day,
                            hour,
                            minute,
                            second,
                            nanos,
                            offset: None,
                        };
                        assert_eq!(
                            stamp.resolve_cached(zone, 0, now, &mut years),
                            stamp.resolve(zone, now),
                            "{stamp:?} at {now} in {zone:?}"
                        );
                    }
                }
            }
        }
    }

    /// A day whose times fall in two years (here the day after `now`) is remembered as such, so
    /// that its next lines skip the two boundary inferences and still get their own year.
    #[test]
    fn a_day_split_across_years_is_remembered_as_split() {
        let now = utc_now("2026-12-31 12:00:00");
        let mut years = YearCache::default();
        let stamp = |hour| Stamp::Civil {
            year: None,
            month: 1,
            day: 1,
            hour,
            minute: 0,
            second: 0,
            nanos: 0,
            offset: None,
        };
        for (hour, year) in [(0, 2027), (23, 2026), (0, 2027)] {
            let got = stamp(hour).resolve_cached(fixed(0), 0, now, &mut years);
            assert_eq!(got, stamp(hour).resolve(fixed(0), now));
            assert_eq!(got.map(|resolved| resolved.time.year()), Some(year));
            assert_eq!(years.day, Some((1, 1, None)));
        }
    }

    #[test]
    fn fixed_zones_shift_the_instant_not_the_wall_time() {
        let now = "2026-07-01 12:00:00";
        // Summer in a fixed zone: no daylight saving applies.
        let got = resolve("Jul  1 10:00:00", fixed(2 * 3600), now).unwrap();
        assert_eq!(got.0, "2026-07-01T10:00:00");
        assert_eq!(got.1, utc_now("2026-07-01 08:00:00").timestamp());
        let got = resolve("Jul  1 10:00:00", fixed(-5 * 3600), now).unwrap();
        assert_eq!(got.1, utc_now("2026-07-01 15:00:00").timestamp());
        // An explicit offset wins over the zone; the wall time stays as written.
        let got = resolve("2026-07-01T10:00:00+02:00", fixed(-5 * 3600), now).unwrap();
        assert_eq!(got.0, "2026-07-01T10:00:00");
        assert_eq!(got.1, utc_now("2026-07-01 08:00:00").timestamp());
        // Epoch seconds are shown in the log's zone.
        let got = resolve("1782900000 x", fixed(3600), now).unwrap();
        assert_eq!(got.0, "2026-07-01T11:00:00");
    }

    #[test]
    fn time_zone_names() {
        let cases: &[(&str, Option<i32>)] = &[
            ("UTC", Some(0)),
            ("utc", Some(0)),
            ("GMT", Some(0)),
            ("Z", Some(0)),
            ("UTC+0200", Some(7200)),
            ("UTC+02:00", Some(7200)),
            ("+02:00", Some(7200)),
            ("-0500", Some(-18000)),
            ("UTC-03", Some(-10800)),
            ("+0530", Some(19800)),
        ];
        for (text, east) in cases {
            let want = east.map(|e| LogTimeZone::Fixed(FixedOffset::east_opt(e).unwrap()));
            assert_eq!(text.parse::<LogTimeZone>().ok(), want, "{text:?}");
        }
        assert_eq!("local".parse::<LogTimeZone>(), Ok(LogTimeZone::Local));
        assert_eq!("Local".parse::<LogTimeZone>(), Ok(LogTimeZone::Local));
        for bad in [
            "",
            "CET",
            "UTC+",
            "+2",
            "+25:00",
            "+02:60",
            "UTC+0200x",
            "Europe/Paris",
        ] {
            assert!(bad.parse::<LogTimeZone>().is_err(), "{bad:?} parsed");
        }
        let fixed = |east| LogTimeZone::Fixed(FixedOffset::east_opt(east).unwrap());
        assert_eq!(fixed(7200).to_string(), "UTC+02:00");
        assert_eq!(fixed(0).to_string(), "UTC");
    }
}
