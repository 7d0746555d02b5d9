//! fail2ban's durations (`MyTime.str2seconds`): `600`, `10m`, `1h 30m`, `1d12h`, `6 months`,
//! `1year-6mo`, `-1`, rewritten as nftjail writes them.
//!
//! Receives a duration as fail2ban's configuration gives it; emits seconds, and the shortest
//! nftjail text for them (`1w`, `180d`, `5400`). Never evaluates anything but a sum of numbers
//! with units (fail2ban `eval`s the text; an expression beyond that is refused, and reported).

/// Seconds of one unit word, as fail2ban's replacements read them (case-insensitive).
fn unit_seconds(word: &str) -> Option<f64> {
    let word = word.to_ascii_lowercase();
    let year = (365.0 * 3.0 + 366.0) * 86_400.0 / 4.0;
    Some(match word.as_str() {
        "" | "s" | "ss" | "se" | "sec" | "second" | "seconds" => 1.0,
        "m" | "mm" | "mi" | "min" | "minute" | "minutes" => 60.0,
        "h" | "hh" | "ho" | "hou" | "hour" | "hours" => 3_600.0,
        "d" | "dd" | "da" | "day" | "days" => 86_400.0,
        "w" | "ww" | "we" | "wee" | "week" | "weeks" => 604_800.0,
        "mo" | "mon" | "month" | "months" => year / 12.0,
        "y" | "yy" | "ye" | "yea" | "year" | "years" => year,
        _ => return None,
    })
}

/// Seconds of a fail2ban duration; `None` when it is not a sum of numbers with units.
pub fn str2seconds(text: &str) -> Option<i64> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0f64;
    let mut sign = 1.0f64;
    let mut terms = 0;
    while !rest.is_empty() {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix('+') {
            sign = 1.0;
            rest = after.trim_start();
        } else if let Some(after) = rest.strip_prefix('-') {
            sign = -1.0;
            rest = after.trim_start();
        }
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let number: f64 = rest[..digits].parse().ok()?;
        rest = rest[digits..].trim_start();
        let letters = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = unit_seconds(&rest[..letters])?;
        rest = &rest[letters..];
        total += sign * number * unit;
        sign = 1.0;
        terms += 1;
    }
    (terms > 0).then_some(total.round() as i64)
}

/// The nftjail text of a number of seconds: the largest unit that divides it.
pub fn nftjail_text(seconds: i64) -> String {
    if seconds < 0 {
        return "-1".into();
    }
    for (unit, size) in [("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60)] {
        if seconds != 0 && seconds % size == 0 {
            return format!("{}{unit}", seconds / size);
        }
    }
    seconds.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fail2ban_durations() {
        let cases = [
            ("600", Some(600)),
            ("10m", Some(600)),
            ("1h 30m", Some(5_400)),
            ("1hour+30min", Some(5_400)),
            ("0d 1h 30m", Some(5_400)),
            ("1d12h", Some(129_600)),
            ("1w", Some(604_800)),
            ("180d", Some(15_552_000)),
            ("6 months", Some(15_778_800)),
            ("1year-6mo", Some(15_778_800)),
            ("-1", Some(-1)),
            ("48h", Some(172_800)),
            ("__import__('os')", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(str2seconds(text), want, "{text:?}");
        }
        assert_eq!(nftjail_text(15_552_000), "180d");
        assert_eq!(nftjail_text(604_800), "1w");
        assert_eq!(nftjail_text(5_400), "90m");
        assert_eq!(nftjail_text(601), "601");
        assert_eq!(nftjail_text(-1), "-1");
    }
}
