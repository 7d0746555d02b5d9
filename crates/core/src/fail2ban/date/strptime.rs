//! fail2ban's `strptime.py`: the `%` field table, the year window and `reGroupDictStrptime`.
//!
//! Receives: a `%`-pattern (to build a regex) or the named groups of a date match.
//! Emits: regex text for every field (`%ExY` from a year window around `now`) and the Unix time
//! of a match (missing year = this year, missing date = today, rolled back as fail2ban does).
//! Never: consults the system clock or zone: `now` and the [`Zone`] are arguments.

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime};

use super::zone::Zone;

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const MONTH_NAMES: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// The regex for one `%` field, `None` for an unknown field.
pub fn field_regex(key: &str, year_window: &str) -> Option<String> {
    let regex = match key {
        "%" => "%",
        "A" => "(?P<A>wednesday|thursday|saturday|tuesday|monday|friday|sunday)",
        "B" => {
            "(?P<B>september|february|november|december|january|october|august|march|april|june|july|may)"
        }
        "ExH" => r"(?P<H>[0-1]\d|2[0-3])",
        "ExM" => r"(?P<M>[0-5]\d)",
        "ExS" => r"(?P<S>[0-5]\d|6[0-1])",
        "ExY" => return Some(format!(r"(?P<Y>{year_window}\d)")),
        "ExZ" => r"(?P<Z>[A-Z](?:[A-Z]{2,4})?)",
        "Exd" => r"(?P<d>[1-2]\d|0[1-9]|3[0-1])",
        "Exk" => r" ?(?P<H>[0-1]?\d|2[0-3])",
        "Exl" => r" ?(?P<I>1[0-2]|\d)",
        "Exm" => r"(?P<m>0[1-9]|1[0-2])",
        "Exy" => r"(?P<y>\d{2})",
        "Exz" => r"(?P<z>(?:[A-Z](?:[A-Z]{2,4})?)?[+-][01]\d(?::?\d{2})?|[A-Z](?:[A-Z]{2,4})?)",
        "G" => r"(?P<G>\d\d\d\d)",
        "H" => r"(?P<H>[0-1]?\d|2[0-3])",
        "I" => r"(?P<I>1[0-2]|0[1-9]|[1-9])",
        "M" => r"(?P<M>[0-5]?\d)",
        "S" => r"(?P<S>[0-5]?\d|6[0-1])",
        "U" => r"(?P<U>5[0-3]|[0-4]\d|\d)",
        "V" => r"(?P<V>5[0-3]|0[1-9]|[1-4]\d|\d)",
        "W" => r"(?P<W>5[0-3]|[0-4]\d|\d)",
        "X" => r"(?P<H>2[0-3]|[0-1]\d|\d):(?P<M>[0-5]\d|\d):(?P<S>6[0-1]|[0-5]\d|\d)",
        "Y" => r"(?P<Y>\d{4})",
        "Z" => r"(?P<Z>Z|[A-Z]{3,5})",
        "a" => r"(?P<a>mon|tue|wed|thu|fri|sat|sun)",
        "b" => r"(?P<b>jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)",
        "c" => {
            r"(?P<a>mon|tue|wed|thu|fri|sat|sun)\s+(?P<b>jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)\s+(?P<d>3[0-1]|[1-2]\d|0[1-9]|[1-9]| [1-9])\s+(?P<H>2[0-3]|[0-1]\d|\d):(?P<M>[0-5]\d|\d):(?P<S>6[0-1]|[0-5]\d|\d)\s+(?P<Y>\d\d\d\d)"
        }
        "d" => r"(?P<d>[1-2]\d|[0 ]?[1-9]|3[0-1])",
        "f" => r"(?P<f>[0-9]{1,6})",
        "j" => r"(?P<j>36[0-6]|3[0-5]\d|[1-2]\d\d|0[1-9]\d|00[1-9]|[1-9]\d|0[1-9]|[1-9])",
        "k" => r" ?(?P<H>[0-2]?\d)",
        "l" => r" ?(?P<I>1?\d)",
        "m" => r"(?P<m>0?[1-9]|1[0-2])",
        "p" => r"(?P<p>am|pm)",
        "u" => r"(?P<u>[1-7])",
        "w" => r"(?P<w>[0-6])",
        "x" => r"(?P<m>1[0-2]|0[1-9]|[1-9])/(?P<d>3[0-1]|[1-2]\d|0[1-9]|[1-9]| [1-9])/(?P<y>\d\d)",
        "y" => r"(?P<y>\d\d)",
        "z" => r"(?P<z>Z|UTC|GMT|[+-][01]\d(?::?\d{2})?)",
        _ => return None,
    };
    Some(regex.to_string())
}

/// The display name of a field (`getTimePatternRE`'s names), used in template names.
pub fn field_name(key: &str) -> String {
    let base = |key: &str| -> Option<&'static str> {
        Some(match key {
            "a" => "DAY",
            "A" => "DAYNAME",
            "b" => "MON",
            "B" => "MONTH",
            "d" => "Day",
            "H" => "24hour",
            "I" => "12hour",
            "j" => "Yearday",
            "m" => "Month",
            "M" => "Minute",
            "p" => "AMPM",
            "S" => "Second",
            "U" => "Yearweek",
            "w" => "Weekday",
            "W" => "Yearweek",
            "y" => "Year2",
            "Y" => "Year",
            "%" => "%",
            "z" => "Zone offset",
            "f" => "Microseconds",
            "Z" => "Zone name",
            _ => return None,
        })
    };
    if let Some(name) = base(key) {
        return name.to_string();
    }
    if let Some(rest) = key.strip_prefix("Ex")
        && let Some(name) = base(rest)
    {
        return format!("Ex{name}");
    }
    format!("%{key}")
}

/// The alternation `_patternRE` tries at a `%`: multi-letter keys first, then single letters.
pub const FIELD_KEYS: [&str; 12] = [
    "ExZ", "Exz", "Exd", "Exm", "ExH", "Exk", "Exl", "ExM", "ExS", "ExY", "Exy", "%",
];
pub const SINGLE_FIELD_KEYS: &str = "dfHIGjmMSUwuVyYzAaBbpZ%WcxXkl";

/// `_getYearCentRE`: the first three digits of accepted years around `now`'s year.
pub fn year_window(current_year: i32) -> String {
    let century = |year: i32| year.to_string().chars().take(3).collect::<String>();
    let mut prefixes = vec![century(current_year - 1), century(current_year + 3)];
    let mut offset = -1;
    while offset < current_year - 2001 + 1 {
        prefixes.push(century(2001 + offset));
        offset += 3;
    }
    prefixes.sort();
    prefixes.dedup();
    format!("(?:{})", prefixes.join("|"))
}

/// Offsets of zone abbreviations, minutes east of UTC (`TZ_ABBR_OFFS`).
fn abbreviation_offset(name: &str) -> Option<i32> {
    const TABLE: &[(f64, &str)] = &[
        (-12.0, "Y"),
        (-11.0, "X NUT SST"),
        (-10.0, "W CKT HAST HST TAHT TKT"),
        (-9.0, "V AKST GAMT GIT HADT HNY"),
        (-8.0, "U AKDT CIST HAY HNP PST PT"),
        (-7.0, "T HAP HNR MST PDT"),
        (-6.0, "S CST EAST GALT HAR HNC MDT"),
        (-5.0, "R CDT COT EASST ECT EST ET HAC HNE PET"),
        (-4.0, "Q AST BOT CLT COST EDT FKT GYT HAE HNA PYT"),
        (
            -3.0,
            "P ADT ART BRT CLST FKST GFT HAA PMST PYST SRT UYT WGT",
        ),
        (-2.0, "O BRST FNT PMDT UYST WGST"),
        (-1.0, "N AZOT CVT EGT"),
        (0.0, "Z EGST GMT UTC WET WT"),
        (1.0, "A CET DFT WAT WEDT WEST"),
        (2.0, "B CAT CEDT CEST EET SAST WAST"),
        (3.0, "C EAT EEDT EEST IDT MSK"),
        (4.0, "D AMT AZT GET GST KUYT MSD MUT RET SAMT SCT"),
        (
            5.0,
            "E AMST AQTT AZST HMT MAWT MVT PKT TFT TJT TMT UZT YEKT",
        ),
        (6.0, "F ALMT BIOT BTT IOT KGT NOVT OMST YEKST"),
        (7.0, "G CXT DAVT HOVT ICT KRAT NOVST OMSST THA WIB"),
        (
            8.0,
            "H ACT AWST BDT BNT CAST HKT IRKT KRAST MYT PHT SGT ULAT WITA WST",
        ),
        (9.0, "I AWDT IRKST JST KST PWT TLT WDT WIT YAKT"),
        (10.0, "K AEST ChST PGT VLAT YAKST YAPT"),
        (11.0, "L AEDT LHDT MAGT NCT PONT SBT VLAST VUT"),
        (
            12.0,
            "M ANAST ANAT FJT GILT MAGST MHT NZST PETST PETT TVT WFT",
        ),
        (13.0, "FJST NZDT"),
        (11.5, "NFT"),
        (10.5, "ACDT LHST"),
        (9.5, "ACST"),
        (6.5, "CCT MMT"),
        (5.75, "NPT"),
        (5.5, "SLT"),
        (4.5, "AFT IRDT"),
        (3.5, "IRST"),
        (-2.5, "HAT NDT"),
        (-3.5, "HNT NST NT"),
        (-4.5, "HLV VET"),
        (-9.5, "MART MIT"),
    ];
    if name.is_empty() {
        return Some(0);
    }
    TABLE
        .iter()
        .find(|(_, names)| names.split(' ').any(|candidate| candidate == name))
        .map(|(hours, _)| (hours * 60.0) as i32)
}

/// Why a zone text does not give an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneError {
    /// Not of the form `[ABBR][+-]hh[:mm]` (fail2ban: `ValueError`).
    Syntax,
    /// An abbreviation fail2ban does not know (fail2ban: `KeyError`).
    Unknown,
}

/// `validateTimeZone`/`zone2offset`: `[ABBR][+-]hh[:mm]` → minutes east of UTC.
pub fn zone_offset(text: &str) -> Result<i32, ZoneError> {
    let name_length = text.bytes().take_while(u8::is_ascii_uppercase).count();
    let (name, offset) = text.split_at(name_length);
    if !(name_length == 0 || name_length == 1 || (3..=5).contains(&name_length)) {
        return Err(ZoneError::Syntax);
    }
    let offset_valid = offset.is_empty() || {
        let bytes = offset.as_bytes();
        let digits = &offset[1.min(offset.len())..];
        matches!(bytes[0], b'+' | b'-')
            && digits.len() >= 2
            && matches!(digits.as_bytes()[0], b'0' | b'1')
            && digits.as_bytes()[1].is_ascii_digit()
            && match &digits[2..] {
                "" => true,
                rest if rest.len() == 2 => rest.bytes().all(|b| b.is_ascii_digit()),
                rest if rest.len() == 3 => {
                    rest.starts_with(':') && rest[1..].bytes().all(|b| b.is_ascii_digit())
                }
                _ => false,
            }
    };
    if !offset_valid {
        return Err(ZoneError::Syntax);
    }
    let base = abbreviation_offset(name).ok_or(ZoneError::Unknown)?;
    if offset.is_empty() {
        return Ok(base);
    }
    let sign = if offset.starts_with('-') { -1 } else { 1 };
    let digits = &offset[1..];
    let hours: i32 = digits[..2].parse().map_err(|_| ZoneError::Syntax)?;
    let minutes: i32 = match digits.len() {
        2 => 0,
        4 => digits[2..].parse().map_err(|_| ZoneError::Syntax)?,
        _ => digits[3..].parse().map_err(|_| ZoneError::Syntax)?,
    };
    Ok(base + sign * (hours * 60 + minutes))
}

/// The result of reading a date match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    Time(i64),
    /// fail2ban's `getTime` returns `None` (an impossible date): the line has no date.
    Invalid,
    /// fail2ban raises inside `processLine` (a day without a month): the line is dropped.
    Abort,
}

/// `reGroupDictStrptime`: groups of a date match → Unix time.
pub fn group_dict_to_time(
    groups: &[(&str, Option<&str>)],
    default_offset: Option<i32>,
    now: i64,
    zone: &Zone,
) -> Parsed {
    let get = |key: &str| {
        groups
            .iter()
            .find(|(name, _)| *name == key)
            .and_then(|(_, value)| *value)
    };
    let number = |text: &str| text.trim().parse::<i64>().ok();
    let mut year: Option<i64> = None;
    let (mut month, mut day, mut julian): (Option<i64>, Option<i64>, Option<i64>) =
        (None, None, None);
    let (mut hour, mut minute, mut second) = (0i64, 0i64, 0i64);
    let mut offset: Option<i32> = None;
    for (key, value) in groups {
        let Some(value) = value else { continue };
        match *key {
            "y" => {
                let Some(parsed) = number(value) else {
                    return Parsed::Abort;
                };
                year = Some(if parsed <= 2000 {
                    parsed + 2000
                } else {
                    parsed
                });
            }
            "Y" => year = number(value),
            "m" => month = number(value),
            "B" => {
                month = MONTH_NAMES
                    .iter()
                    .position(|m| *m == value.to_lowercase())
                    .map(|i| i as i64 + 1)
            }
            "b" => {
                month = MONTHS
                    .iter()
                    .position(|m| *m == value.to_lowercase())
                    .map(|i| i as i64 + 1)
            }
            "d" => day = number(value),
            "H" => hour = number(value).unwrap_or(0),
            "I" => {
                hour = number(value).unwrap_or(0);
                let ampm = get("p").unwrap_or("").to_lowercase();
                if ampm.is_empty() || ampm == "am" {
                    if hour == 12 {
                        hour = 0;
                    }
                } else if ampm == "pm" && hour != 12 {
                    hour += 12;
                }
            }
            "M" => minute = number(value).unwrap_or(0),
            "S" => second = number(value).unwrap_or(0),
            "j" => julian = number(value),
            "z" | "Z" => {
                offset = if matches!(*value, "Z" | "UTC" | "GMT") {
                    Some(0)
                } else {
                    match zone_offset(value) {
                        Ok(found) => Some(found),
                        Err(ZoneError::Syntax) => return Parsed::Invalid,
                        Err(ZoneError::Unknown) => return Parsed::Abort,
                    }
                };
            }
            _ => {}
        }
    }
    let now_local = zone.to_local(now);
    let assume_year = year.is_none();
    let year = year.unwrap_or(i64::from(now_local.year()));
    if (month.is_none() || day.is_none())
        && let Some(julian) = julian
    {
        let Some(start) = NaiveDate::from_ymd_opt(year as i32, 1, 1) else {
            return Parsed::Invalid;
        };
        let date = start + Duration::days(julian - 1);
        month = Some(i64::from(date.month()));
        day = Some(i64::from(date.day()));
    }
    let assume_today = month.is_none() && day.is_none();
    if assume_today {
        month = Some(i64::from(now_local.month()));
        day = Some(i64::from(now_local.day()));
    }
    let (Some(month), Some(day)) = (month, day) else {
        return Parsed::Abort;
    };
    let Some(mut result) = build(year, month, day, hour, minute, second) else {
        return Parsed::Invalid;
    };
    let offset = offset.or(default_offset);
    if let Some(offset) = offset {
        result -= Duration::minutes(i64::from(offset));
    }
    if assume_today && result > now_local {
        result -= Duration::days(1);
    }
    if assume_year && result > now_local + Duration::days(1) {
        // fail2ban replaces year, month and day of the zone-corrected time (keeping its clock).
        match NaiveDate::from_ymd_opt(year as i32 - 1, month as u32, day as u32) {
            Some(previous) => result = previous.and_time(result.time()),
            None => return Parsed::Invalid,
        }
    }
    Parsed::Time(match offset {
        Some(_) => result.and_utc().timestamp(),
        None => zone.to_unix(result),
    })
}

fn build(
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
) -> Option<NaiveDateTime> {
    let date = NaiveDate::from_ymd_opt(
        i32::try_from(year).ok()?,
        u32::try_from(month).ok()?,
        u32::try_from(day).ok()?,
    )?;
    date.and_hms_opt(
        u32::try_from(hour).ok()?,
        u32::try_from(minute).ok()?,
        u32::try_from(second).ok()?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn year_window_matches_fail2ban() {
        assert_eq!(year_window(2026), "(?:200|201|202)");
        assert_eq!(year_window(2028), "(?:200|201|202|203)");
    }

    #[test]
    fn zone_offsets() {
        assert_eq!(zone_offset("CEST"), Ok(120));
        assert_eq!(zone_offset("-0400"), Ok(-240));
        assert_eq!(zone_offset("+05:30"), Ok(330));
        assert_eq!(zone_offset("UTC+01"), Ok(60));
        assert_eq!(zone_offset("error"), Err(ZoneError::Syntax));
        assert_eq!(zone_offset("ABC"), Err(ZoneError::Unknown));
    }

    #[test]
    fn assumes_year_and_rolls_back() {
        let now = 1124013600; // 2005-08-14 10:00 UTC
        let groups = [
            ("b", Some("Dec")),
            ("d", Some("31")),
            ("H", Some("23")),
            ("M", Some("00")),
            ("S", Some("00")),
        ];
        let Parsed::Time(time) = group_dict_to_time(&groups, None, now, &Zone::Utc) else {
            panic!()
        };
        assert_eq!(time, 1104534000); // 2004-12-31 23:00 UTC
    }
}
