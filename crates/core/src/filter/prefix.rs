//! Line prefixes: the part of a log line before the daemon's own message.
//!
//! Receives one line (already checked to be UTF-8) and the filter's prefix kind; emits a
//! [`Header`]: the timestamp as written, the syslog tag (program name) and PID when the format
//! has them, and the message the failregexes are matched against. Syslog and RFC 5424 headers
//! are parsed by hand (no regex), because every line of a log goes through here. It never
//! allocates and never looks at what the message says.
//!
//! - `syslog`: RFC 3164 (`Nov 23 07:18:36 host sshd[123]: msg`), with or without the host name,
//!   with an optional `<PRI>`, or with rsyslog's high-precision RFC 3339 time
//!   (`2026-11-23T07:18:36.123456+01:00 host sshd[123]: msg`); detected per line.
//! - `rfc5424`: `<PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD] msg`.
//! - `plain`: no syslog header; the time is one of the known formats at the start of the line
//!   (optionally in `[...]`) and the message is what follows it. When the time is found later in
//!   the line (`1.2.3.4 - - [23/Nov/2026:07:18:36 +0000] "GET …`), the message is the whole line.
//! - a custom regex, matched at the start of the line, whose named groups `time`, `tag` and
//!   `pid` say where those are; the message is what follows the match.

use regex::{CaptureLocations, Regex};

use super::datepattern::DatePattern;
use super::time::{Stamp, parse_iso, parse_known, parse_syslog, parse_tai64n};

/// How a filter's lines begin.
#[derive(Debug, Clone)]
pub enum PrefixKind {
    Syslog,
    Rfc5424,
    Plain,
    Regex(PrefixRegex),
    /// Several formats (`prefix = ["syslog", "plain"]`): each line is read with the first that
    /// fits it (a daemon that logs to syslog or to its own file). Never holds a `Regex`.
    Either(Vec<PrefixKind>),
}

impl std::fmt::Display for PrefixKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrefixKind::Syslog => f.write_str("syslog"),
            PrefixKind::Rfc5424 => f.write_str("rfc5424"),
            PrefixKind::Plain => f.write_str("plain"),
            PrefixKind::Regex(p) => write!(f, "regex {}", p.regex.as_str()),
            PrefixKind::Either(kinds) => {
                for (i, kind) in kinds.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" or ")?;
                    }
                    write!(f, "{kind}")?;
                }
                Ok(())
            }
        }
    }
}

/// A custom prefix regex and the indices of its named groups.
#[derive(Debug, Clone)]
pub struct PrefixRegex {
    pub regex: Regex,
    pub time: Option<usize>,
    pub tag: Option<usize>,
    pub pid: Option<usize>,
}

impl PrefixRegex {
    /// Compiles `pattern` anchored at the start of the line.
    pub fn new(pattern: &str) -> Result<PrefixRegex, regex::Error> {
        let regex = Regex::new(&format!("^(?:{pattern})"))?;
        let index = |name: &str| regex.capture_names().position(|n| n == Some(name));
        Ok(PrefixRegex {
            time: index("time"),
            tag: index("tag"),
            pid: index("pid"),
            regex,
        })
    }
}

/// What the prefix of one line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// `None` when the filter says its lines carry no time.
    pub stamp: Option<Stamp>,
    pub tag: Option<&'a str>,
    pub pid: Option<u32>,
    pub message: &'a str,
    /// Whether the format has a tag at all (syslog, RFC 5424, a custom regex with a `tag`
    /// group): a line of a daemon's own format (`plain`) has none, and no daemon to check.
    pub tagged: bool,
}

/// Why a line has no usable prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefixError {
    /// No timestamp where the format puts one.
    NoTimestamp,
    /// The line does not have the filter's prefix (a custom regex did not match, a broken
    /// RFC 5424 header).
    NoPrefix,
}

/// Parses the prefix of `line`. `locs` is scratch space for a custom prefix regex.
pub fn parse<'a>(
    kind: &PrefixKind,
    datepattern: Option<&DatePattern>,
    line: &'a str,
    locs: Option<&mut CaptureLocations>,
) -> Result<Header<'a>, PrefixError> {
    match kind {
        PrefixKind::Syslog => syslog(datepattern, line),
        PrefixKind::Rfc5424 => rfc5424(datepattern, line),
        PrefixKind::Plain => plain(datepattern, line),
        PrefixKind::Regex(prefix) => {
            let locs = locs.expect("invariant: a custom prefix comes with capture locations");
            custom(prefix, datepattern, line, locs)
        }
        PrefixKind::Either(kinds) => {
            let mut first = None;
            for kind in kinds {
                match parse(kind, datepattern, line, None) {
                    // A syslog header without a tag is more likely the next format's line.
                    Ok(header) if header.tagged && header.tag.is_none() => {
                        first.get_or_insert(PrefixError::NoPrefix);
                    }
                    Ok(header) => return Ok(header),
                    Err(e) => {
                        first.get_or_insert(e);
                    }
                }
            }
            Err(first.unwrap_or(PrefixError::NoPrefix))
        }
    }
}

fn syslog<'a>(datepattern: Option<&DatePattern>, line: &'a str) -> Result<Header<'a>, PrefixError> {
    let bytes = line.as_bytes();
    let mut pos = skip_pri(bytes);
    if pos > 0
        && bytes.get(pos).is_some_and(u8::is_ascii_digit)
        && bytes.get(pos + 1) == Some(&b' ')
    {
        // `<PRI>1 TIMESTAMP …`: an RFC 5424 line in a syslog log.
        return rfc5424(datepattern, line);
    }
    let stamp = match datepattern {
        Some(p) if p.is_none() => None,
        Some(p) => match p.find(&bytes[pos..]) {
            Some((stamp, 0, end)) => {
                pos += end;
                Some(stamp)
            }
            _ => return Err(PrefixError::NoTimestamp),
        },
        None => {
            let found = match bytes.get(pos) {
                Some(b'0'..=b'9') => parse_iso(&bytes[pos..]),
                Some(b'@') => parse_tai64n(&bytes[pos..]),
                _ => parse_syslog(&bytes[pos..]),
            };
            let (stamp, used) = found.ok_or(PrefixError::NoTimestamp)?;
            pos += used;
            Some(stamp)
        }
    };
    if stamp.is_some() && pos < bytes.len() && !matches!(bytes[pos], b' ' | b'\t') {
        return Err(PrefixError::NoTimestamp);
    }
    pos = skip_spaces(bytes, pos);
    let (pos, first_end) = skip_bsd_verbose(bytes, pos);
    let (tag_start, tag_len, tag_end) = match tag_len(&bytes[pos..first_end]) {
        Some(len) => (pos, len, first_end),
        None => {
            let second = skip_spaces(bytes, first_end);
            let second_end = token_end(bytes, second);
            match tag_len(&bytes[second..second_end]) {
                Some(len) => (second, len, second_end),
                None => {
                    // A header without a tag (`-- MARK --`): the rest after the host is the message.
                    return Ok(Header {
                        stamp,
                        tag: None,
                        pid: None,
                        message: &line[second..],
                        tagged: true,
                    });
                }
            }
        }
    };
    let (tag, pid) = split_tag(&line[tag_start..tag_start + tag_len]);
    let message = &line[skip_solaris_id(bytes, skip_spaces(bytes, tag_end))..];
    Ok(Header {
        stamp,
        tag: Some(tag),
        pid,
        message,
        tagged: true,
    })
}

/// The length of a syslog tag token without its colon: `sshd[12]:`, `dovecot:`, or
/// `proftpd[12]` (some daemons write no colon after the PID).
fn tag_len(token: &[u8]) -> Option<usize> {
    match token.last()? {
        b':' if token.len() > 1 => Some(token.len() - 1),
        // `[sshd]`: a bracketed program name without PID or colon.
        b']' if token.first() == Some(&b'[')
            && token.len() > 2
            && token[1..token.len() - 1]
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/')) =>
        {
            Some(token.len())
        }
        b']' => {
            let open = token.iter().rposition(|&b| b == b'[')?;
            let pid = &token[open + 1..token.len() - 1];
            (open > 0 && !pid.is_empty() && pid.iter().all(u8::is_ascii_digit))
                .then_some(token.len())
        }
        _ => None,
    }
}

fn rfc5424<'a>(
    datepattern: Option<&DatePattern>,
    line: &'a str,
) -> Result<Header<'a>, PrefixError> {
    let bytes = line.as_bytes();
    let mut pos = skip_pri(bytes);
    let version_end = pos
        + bytes[pos..]
            .iter()
            .take(2)
            .take_while(|b| b.is_ascii_digit())
            .count();
    if version_end == pos || bytes.get(version_end) != Some(&b' ') {
        return Err(PrefixError::NoPrefix);
    }
    pos = version_end + 1;
    let stamp_end = token_end(bytes, pos);
    let field = &bytes[pos..stamp_end];
    let stamp = match datepattern {
        Some(p) if p.is_none() => None,
        Some(p) => Some(p.find(field).ok_or(PrefixError::NoTimestamp)?.0),
        None => match parse_iso(field) {
            Some((stamp, used)) if used == field.len() => Some(stamp),
            _ => return Err(PrefixError::NoTimestamp),
        },
    };
    pos = stamp_end + 1;
    let mut fields = [(0, 0); 4]; // host, app, procid, msgid
    for slot in &mut fields {
        if pos > bytes.len() {
            return Err(PrefixError::NoPrefix);
        }
        let end = token_end(bytes, pos);
        *slot = (pos, end);
        pos = end + 1;
    }
    let (app_start, app_end) = fields[1];
    let tag = Some(&line[app_start..app_end]).filter(|t| *t != "-");
    let pid = parse_pid(&bytes[fields[2].0..fields[2].1]);
    pos = pos.min(bytes.len());
    // Structured data: `-` or one or more `[...]` with `\]` escapes.
    match bytes.get(pos) {
        Some(b'-') => pos += 1,
        Some(b'[') => {
            while bytes.get(pos) == Some(&b'[') {
                pos += 1;
                let mut quoted = false;
                loop {
                    match bytes.get(pos) {
                        None => return Err(PrefixError::NoPrefix),
                        Some(b'\\') => pos += 2,
                        Some(b'"') => {
                            quoted = !quoted;
                            pos += 1;
                        }
                        Some(b']') if !quoted => {
                            pos += 1;
                            break;
                        }
                        Some(_) => pos += 1,
                    }
                }
            }
        }
        None => {}
        Some(_) => return Err(PrefixError::NoPrefix),
    }
    let mut start = (pos + 1).min(bytes.len());
    if bytes[start..].starts_with("\u{feff}".as_bytes()) {
        start += 3;
    }
    if !line.is_char_boundary(start) {
        return Err(PrefixError::NoPrefix);
    }
    Ok(Header {
        stamp,
        tag,
        pid,
        message: &line[start..],
        tagged: true,
    })
}

fn plain<'a>(datepattern: Option<&DatePattern>, line: &'a str) -> Result<Header<'a>, PrefixError> {
    let bytes = line.as_bytes();
    let at = |stamp: Option<Stamp>, end: usize| {
        let mut end = end;
        if bytes.get(end) == Some(&b']') {
            end += 1;
        }
        Header {
            stamp,
            tag: None,
            pid: None,
            message: &line[skip_spaces(bytes, end)..],
            tagged: false,
        }
    };
    let whole = |stamp| Header {
        stamp: Some(stamp),
        tag: None,
        pid: None,
        message: line,
        tagged: false,
    };
    if let Some(p) = datepattern {
        if p.is_none() {
            return Ok(at(None, 0));
        }
        return match p.find(bytes) {
            Some((stamp, 0, end)) => Ok(at(Some(stamp), end)),
            Some((stamp, 1, end)) if bytes[0] == b'[' => Ok(at(Some(stamp), end)),
            Some((stamp, _, _)) => Ok(whole(stamp)),
            None => Err(PrefixError::NoTimestamp),
        };
    }
    let open = usize::from(bytes.first() == Some(&b'['));
    if let Some((stamp, used)) = parse_known(&bytes[open..]) {
        return Ok(at(Some(stamp), open + used));
    }
    for i in 1..bytes.len() {
        if matches!(bytes[i - 1], b' ' | b'[' | b'(')
            && let Some((stamp, _)) = parse_known(&bytes[i..])
        {
            return Ok(whole(stamp));
        }
    }
    Err(PrefixError::NoTimestamp)
}

fn custom<'a>(
    prefix: &PrefixRegex,
    datepattern: Option<&DatePattern>,
    line: &'a str,
    locs: &mut CaptureLocations,
) -> Result<Header<'a>, PrefixError> {
    let whole = prefix
        .regex
        .captures_read(locs, line)
        .ok_or(PrefixError::NoPrefix)?;
    let group = |index: Option<usize>| index.and_then(|i| locs.get(i)).map(|(s, e)| &line[s..e]);
    let time = group(prefix.time);
    let stamp = match (datepattern, time) {
        (Some(p), _) if p.is_none() => None,
        (Some(p), Some(text)) => Some(p.find(text.as_bytes()).ok_or(PrefixError::NoTimestamp)?.0),
        (Some(p), None) => Some(p.find(line.as_bytes()).ok_or(PrefixError::NoTimestamp)?.0),
        (None, Some(text)) => {
            let bytes = text.as_bytes();
            let open = usize::from(bytes.first() == Some(&b'['));
            Some(
                parse_known(&bytes[open..])
                    .ok_or(PrefixError::NoTimestamp)?
                    .0,
            )
        }
        (None, None) => return Err(PrefixError::NoTimestamp),
    };
    let tag = group(prefix.tag);
    let pid = group(prefix.pid).and_then(|p| parse_pid(p.as_bytes()));
    let message = &line[skip_spaces(line.as_bytes(), whole.end())..];
    Ok(Header {
        stamp,
        tag,
        pid,
        message,
        tagged: prefix.tag.is_some(),
    })
}

/// Splits `sshd[123]` into the program name and its PID (`[sshd]` is `sshd` without one).
fn split_tag(tag: &str) -> (&str, Option<u32>) {
    let bytes = tag.as_bytes();
    if bytes.last() != Some(&b']') {
        return (tag, None);
    }
    if bytes[0] == b'[' && bytes.len() > 1 {
        return (&tag[1..tag.len() - 1], None);
    }
    // The first `[`: `a[b[1]` is `a` with no PID, as before the hand scan.
    match bytes.iter().position(|&b| b == b'[') {
        Some(open) => (&tag[..open], parse_pid(&bytes[open + 1..bytes.len() - 1])),
        None => (tag, None),
    }
}

/// A PID as `str::parse::<u32>` reads it (an optional `+`, then only digits, no overflow),
/// without its generic error reporting.
fn parse_pid(text: &[u8]) -> Option<u32> {
    let digits = text.strip_prefix(b"+").unwrap_or(text);
    if digits.is_empty() {
        return None;
    }
    super::time::fixed_digits(digits)
}

/// Skips BSD syslogd's verbose `<auth.info>` before the host; the position after it and the
/// end of the token there.
fn skip_bsd_verbose(bytes: &[u8], pos: usize) -> (usize, usize) {
    let end = token_end(bytes, pos);
    if bytes.get(pos) != Some(&b'<') {
        return (pos, end);
    }
    let token = &bytes[pos..end];
    let verbose = token.len() > 4
        && token[token.len() - 1] == b'>'
        && memchr::memchr(b'.', token).is_some()
        && end < bytes.len();
    if verbose {
        let host = skip_spaces(bytes, end);
        (host, token_end(bytes, host))
    } else {
        (pos, end)
    }
}

/// A message without Solaris' `[ID 800047 auth.info] ` or a kernel's `kernel: [ 970.699396]` in
/// front (journal messages keep them).
pub fn strip_solaris_id(message: &str) -> &str {
    &message[skip_solaris_id(message.as_bytes(), 0)..]
}

/// Skips Solaris' `[ID 800047 auth.info] ` or `kernel:[  970.699396]: ` at the start of a
/// message; the position after it.
fn skip_solaris_id(bytes: &[u8], pos: usize) -> usize {
    if !matches!(bytes.get(pos), Some(b'k' | b'[')) {
        return pos;
    }
    if let Some(rest) = bytes.get(pos..).and_then(|r| r.strip_prefix(b"kernel:")) {
        let mut at = usize::from(rest.first() == Some(&b' '));
        if rest.get(at) != Some(&b'[') {
            return pos;
        }
        at += 1;
        while rest.get(at) == Some(&b' ') {
            at += 1;
        }
        let digits = rest[at..]
            .iter()
            .take_while(|b| b.is_ascii_digit() || **b == b'.')
            .count();
        if digits == 0 || rest.get(at + digits) != Some(&b']') {
            return pos;
        }
        at += digits + 1;
        if rest.get(at) == Some(&b':') {
            at += 1;
        }
        return skip_spaces(bytes, pos + 7 + at);
    }
    let Some(rest) = bytes.get(pos..).and_then(|r| r.strip_prefix(b"[ID ")) else {
        return pos;
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || rest.get(digits) != Some(&b' ') {
        return pos;
    }
    let facility = &rest[digits + 1..];
    match memchr::memchr(b']', facility) {
        Some(close) if close > 0 && !facility[..close].contains(&b' ') => {
            skip_spaces(bytes, pos + 4 + digits + 1 + close + 1)
        }
        _ => pos,
    }
}

/// Skips a leading `<PRI>` (`<34>`); the position after it.
fn skip_pri(bytes: &[u8]) -> usize {
    if bytes.first() != Some(&b'<') {
        return 0;
    }
    let digits = bytes[1..]
        .iter()
        .take(3)
        .take_while(|b| b.is_ascii_digit())
        .count();
    if digits > 0 && bytes.get(1 + digits) == Some(&b'>') {
        digits + 2
    } else {
        0
    }
}

fn skip_spaces(bytes: &[u8], mut pos: usize) -> usize {
    while matches!(bytes.get(pos), Some(b' ' | b'\t')) {
        pos += 1;
    }
    pos.min(bytes.len())
}

/// Where the token at `pos` ends: the next space or tab, or the end of the line.
fn token_end(bytes: &[u8], pos: usize) -> usize {
    // Header tokens (a host, a tag) are short: eight bytes at a time are checked for a blank
    // as one number, which costs less than setting up a vector search; that takes over past
    // the first 32 bytes.
    const SHORT: usize = 32;
    let start = pos.min(bytes.len());
    let mut at = start;
    while at - start < SHORT {
        let Some(&chunk) = bytes.get(at..).and_then(|rest| rest.first_chunk::<8>()) else {
            // The last few bytes of the line.
            return match bytes[at..].iter().position(|&b| b == b' ' || b == b'\t') {
                Some(i) => at + i,
                None => bytes.len(),
            };
        };
        if let Some(i) = first_blank(u64::from_le_bytes(chunk)) {
            return at + i;
        }
        at += 8;
    }
    at + memchr::memchr2(b' ', b'\t', &bytes[at..]).unwrap_or(bytes.len() - at)
}

/// The index of the first space or tab among the eight bytes of `word` (little-endian).
fn first_blank(word: u64) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte of `x` is zero where `word` holds the needle. `(x - ONES) & !x & HIGH` flags every
    // zero byte; it may also flag a byte above one (a borrow), never one below the first.
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let found = zero(word ^ (ONES * u64::from(b' '))) | zero(word ^ (ONES * u64::from(b'\t')));
    (found != 0).then(|| found.trailing_zeros() as usize / 8)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Want<'a> = Option<(Option<&'a str>, Option<u32>, &'a str)>;

    fn check(kind: &PrefixKind, cases: &[(&str, Want<'_>)]) {
        for (line, want) in cases {
            let mut locs = match kind {
                PrefixKind::Regex(p) => Some(p.regex.capture_locations()),
                _ => None,
            };
            let got = parse(kind, None, line, locs.as_mut()).ok();
            let got = got.map(|h| {
                assert!(h.stamp.is_some(), "{line:?} lost its time");
                (h.tag, h.pid, h.message)
            });
            assert_eq!(got, *want, "line {line:?}");
        }
    }

    #[test]
    fn syslog_lines() {
        check(
            &PrefixKind::Syslog,
            &[
                (
                    "Nov 23 07:18:36 web1 sshd[4242]: Invalid user x",
                    Some((Some("sshd"), Some(4242), "Invalid user x")),
                ),
                (
                    "Nov  3 07:18:36 web1 sshd-session[7]: x y",
                    Some((Some("sshd-session"), Some(7), "x y")),
                ),
                (
                    "Nov 23 07:18:36 sshd[4242]: no host",
                    Some((Some("sshd"), Some(4242), "no host")),
                ),
                (
                    "Nov 23 07:18:36 mail dovecot: imap-login: Login",
                    Some((Some("dovecot"), None, "imap-login: Login")),
                ),
                (
                    "Nov 23 07:18:36 mx postfix/submission/smtpd[99]: connect",
                    Some((Some("postfix/submission/smtpd"), Some(99), "connect")),
                ),
                (
                    "<38>Nov 23 07:18:36 web1 sshd[1]: pri",
                    Some((Some("sshd"), Some(1), "pri")),
                ),
                (
                    "2026-11-23T07:18:36.123456+01:00 web1 sshd[5]: hp",
                    Some((Some("sshd"), Some(5), "hp")),
                ),
                (
                    "2026-11-23T07:18:36Z sshd[5]: hp",
                    Some((Some("sshd"), Some(5), "hp")),
                ),
                (
                    "Nov 23 07:18:36 web1 sshd[12]:",
                    Some((Some("sshd"), Some(12), "")),
                ),
                (
                    "Nov 23 07:18:36 web1 sshd[x]: bad pid",
                    Some((Some("sshd"), None, "bad pid")),
                ),
                (
                    "2026-11-23 07:18:36,120 ftp proftpd[31] ftp (x[192.0.2.1]): USER",
                    Some((Some("proftpd"), Some(31), "ftp (x[192.0.2.1]): USER")),
                ),
                (
                    "Nov 23 07:18:36 auth-worker(12): Info: x",
                    Some((Some("auth-worker(12)"), None, "Info: x")),
                ),
                (
                    "Nov 23 07:18:36 web1 -- MARK --",
                    Some((None, None, "-- MARK --")),
                ),
                ("Nov 23 07:18:36 web1", Some((None, None, ""))),
                ("Nov 23 07:18:36", Some((None, None, ""))),
                // Solaris' message ID, a bracketed tag without PID (with and without colon), a
                // kernel prefix, BSD syslogd's `<facility.level>`, TAI64N and RFC 5424 lines.
                (
                    "Mar 29 05:59:23 dusky sshd[20878]: [ID 800047 auth.info] Failed x",
                    Some((Some("sshd"), Some(20878), "Failed x")),
                ),
                (
                    "Mar  3 00:17:22 [sshd]: User root",
                    Some((Some("sshd"), None, "User root")),
                ),
                (
                    "Jun 25 23:53:34 [sshd] User root",
                    Some((Some("sshd"), None, "User root")),
                ),
                (
                    "Nov 23 07:18:36 h sshd[3]: kernel: [  970.699397] Failed y",
                    Some((Some("sshd"), Some(3), "Failed y")),
                ),
                (
                    "Nov 23 07:18:36 <auth.info> h sshd[3]: z",
                    Some((Some("sshd"), Some(3), "z")),
                ),
                (
                    "@400000004c91b044077a9e94 imap-login: Info: Aborted",
                    Some((Some("imap-login"), None, "Info: Aborted")),
                ),
                (
                    "<38>1 2026-11-23T07:18:36Z web1 sshd 4242 - [a@1 k=\"[x]\"] Invalid user x",
                    Some((Some("sshd"), Some(4242), "Invalid user x")),
                ),
                ("[ID 1 x] no time", None),
                ("garbage line", None),
                ("", None),
                ("Nov 23 07:18", None),
                ("Nov 23 07:18:36web1 sshd[1]: x", None),
            ],
        );
    }

    /// The hand scans (blanks eight bytes at a time, tag and PID without `str` searches) read
    /// lines as `memchr2`, `split_once` and `str::parse::<u32>` did.
    #[test]
    fn hand_scans_read_tricky_headers_as_before() {
        check(
            &PrefixKind::Syslog,
            &[
                (
                    "Nov  3 07:39:33 host sshd[12345]: x",
                    Some((Some("sshd"), Some(12345), "x")),
                ),
                (
                    "Nov 23 07:18:36 h\tsshd[+12]:\tx",
                    Some((Some("sshd"), Some(12), "x")),
                ),
                (
                    "Nov 23 07:18:36 h sshd[-1]: x",
                    Some((Some("sshd"), None, "x")),
                ),
                (
                    "Nov 23 07:18:36 h sshd[+]: x",
                    Some((Some("sshd"), None, "x")),
                ),
                (
                    "Nov 23 07:18:36 h sshd[]: x",
                    Some((Some("sshd"), None, "x")),
                ),
                (
                    "Nov 23 07:18:36 h sshd[4294967296]: x",
                    Some((Some("sshd"), None, "x")),
                ),
                (
                    "Nov 23 07:18:36 h sshd[0042]: x",
                    Some((Some("sshd"), Some(42), "x")),
                ),
                // The first `[` splits the name: `a[b[12]` has no PID.
                ("Nov 23 07:18:36 h a[b[12]: x", Some((Some("a"), None, "x"))),
                ("Nov 23 07:18:36 a[b[12] x", Some((Some("a"), None, "x"))),
                (
                    "Nov 23 07:18:36 [foo:bar[12] x",
                    Some((Some("foo:bar[12"), None, "x")),
                ),
                ("Nov 23 07:18:36 h []: x", Some((Some(""), None, "x"))),
                ("Nov 23 07:18:36 h ]: x", Some((Some("]"), None, "x"))),
                // Hosts and tags across the eight-byte steps and past the 32-byte scan.
                (
                    "Nov 23 07:18:36 host1234 sshd1234[1]: x",
                    Some((Some("sshd1234"), Some(1), "x")),
                ),
                (
                    "Nov 23 07:18:36 a-very-long-host-name.example.org sshd[7]: x",
                    Some((Some("sshd"), Some(7), "x")),
                ),
                (
                    "Nov 23 07:18:36 h a-tag-longer-than-thirty-two-bytes-x[9]: y",
                    Some((Some("a-tag-longer-than-thirty-two-bytes-x"), Some(9), "y")),
                ),
                (
                    "Nov 23 07:18:36 h sshd[1]:",
                    Some((Some("sshd"), Some(1), "")),
                ),
                ("Nov 23 07:18:36 h s:", Some((Some("s"), None, ""))),
                ("Nov 23 07:18:36 hostname", Some((None, None, ""))),
                (
                    "Nov 23 07:18:36 hostnamehostnamehostnamehostnamehostname",
                    Some((None, None, "")),
                ),
                (
                    "Nov 23 07:18:36 h\u{e9}t\u{e9} sshd[1]: x",
                    Some((Some("sshd"), Some(1), "x")),
                ),
                // Days, months and weekdays: case, padding, no such date.
                ("NOV  3 07:39:33 h a: x", Some((Some("a"), None, "x"))),
                ("nOv 3 07:39:33 h a: x", Some((Some("a"), None, "x"))),
                ("Feb 30 07:18:36 h a[1]: x", Some((Some("a"), Some(1), "x"))),
                (
                    "FRI Nov 23 07:18:36 2026 h a: x",
                    Some((Some("a"), None, "x")),
                ),
                ("Nox 23 07:18:36 h a: x", None),
                ("Mon 23 07:18:36 h a: x", None),
                ("N\u{ee}v 23 07:18:36 h a: x", None),
                ("Nov 123 07:18:36 h a: x", None),
                ("Nov  3 7:39:33 h a: x", None),
                ("Nov  3 07:39:3x h a: x", None),
                // BSD's `<facility.level>` only with a dot; a kernel prefix only with digits.
                ("Nov 23 07:18:36 <ab> h a: x", Some((None, None, "h a: x"))),
                (
                    "Nov 23 07:18:36 h kernel: [ x] y",
                    Some((Some("kernel"), None, "[ x] y")),
                ),
            ],
        );
        assert_eq!(parse_pid(b"+7"), Some(7));
        assert_eq!(parse_pid(b"++7"), None);
        assert_eq!(parse_pid(b"4294967295"), Some(u32::MAX));
        for (line, pos, end) in [
            ("", 0, 0),
            ("abc", 0, 3),
            ("abc", 5, 3),
            ("a b", 0, 1),
            ("abcdefgh ", 0, 8),
            ("abcdefg\tx", 0, 7),
            ("abcdefghijklmnopqrstuvwxyz0123456789 x", 0, 36),
            ("abcdefghijklmnopqrstuvwxyz0123456789", 2, 36),
            (" x", 0, 0),
        ] {
            assert_eq!(token_end(line.as_bytes(), pos), end, "{line:?} from {pos}");
        }
    }

    #[test]
    fn rfc5424_lines() {
        check(
            &PrefixKind::Rfc5424,
            &[
                (
                    "<38>1 2026-11-23T07:18:36.5Z web1 sshd 4242 - - Invalid user x",
                    Some((Some("sshd"), Some(4242), "Invalid user x")),
                ),
                (
                    "<38>1 2026-11-23T07:18:36Z web1 sshd 4242 - [a@1 k=\"v\\]\"][b@2] msg",
                    Some((Some("sshd"), Some(4242), "msg")),
                ),
                (
                    "1 2026-11-23T07:18:36+01:00 web1 app - ID47 - \u{feff}bom",
                    Some((Some("app"), None, "bom")),
                ),
                (
                    "<38>1 2026-11-23T07:18:36Z web1 - - - -",
                    Some((None, None, "")),
                ),
                ("<38>1 - web1 sshd 1 - - no time", None),
                ("<38>1 2026-11-23T07:18:36Z web1 sshd 1 - [unclosed", None),
                ("Nov 23 07:18:36 web1 sshd[1]: not 5424", None),
            ],
        );
    }

    #[test]
    fn plain_lines() {
        check(
            &PrefixKind::Plain,
            &[
                (
                    "2026:11:23-07:18:36: '192.0.2.1' 2 failed",
                    Some((None, None, ": '192.0.2.1' 2 failed")),
                ),
                (
                    "[2026-11-23 07:18:36 -0500] info [cpaneld] x",
                    Some((None, None, "info [cpaneld] x")),
                ),
                ("1795418316.123 epoch", Some((None, None, "epoch"))),
                (
                    "1.2.3.4 - - [23/Nov/2026:07:18:36 +0000] \"GET\"",
                    Some((
                        None,
                        None,
                        "1.2.3.4 - - [23/Nov/2026:07:18:36 +0000] \"GET\"",
                    )),
                ),
                ("no time at all", None),
            ],
        );
    }

    #[test]
    fn either_prefix_takes_the_first_format_that_fits() {
        let kind = PrefixKind::Either(vec![PrefixKind::Syslog, PrefixKind::Plain]);
        check(
            &kind,
            &[
                (
                    "Nov 23 07:18:36 ftp vsftpd: pam_unix: x",
                    Some((Some("vsftpd"), None, "pam_unix: x")),
                ),
                // vsftpd's own log: the syslog reading has no tag, so the plain one wins.
                (
                    "Fri Nov 23 07:18:36 2026 [pid 2] [bob] FAIL LOGIN: Client \"192.0.2.1\"",
                    Some((None, None, "[pid 2] [bob] FAIL LOGIN: Client \"192.0.2.1\"")),
                ),
                (
                    "[23-Nov-2026 07:18:36 +0100]: Failed login",
                    Some((None, None, ": Failed login")),
                ),
                ("no time", None),
            ],
        );
        let header = parse(&kind, None, "Fri Nov 23 07:18:36 2026 [pid 2] x", None).unwrap();
        assert!(!header.tagged, "a plain line has no tag to check");
        assert_eq!(kind.to_string(), "syslog or plain");
        assert_eq!(strip_solaris_id("kernel:[12970.699398] Failed"), "Failed");
        assert_eq!(strip_solaris_id("[ID 800047 auth.info] Failed"), "Failed");
        assert_eq!(strip_solaris_id("[ID x] Failed"), "[ID x] Failed");
    }

    #[test]
    fn custom_regex_prefix() {
        let prefix = PrefixRegex::new(r"(?P<time>\S+ \S+) (?P<tag>\w+)\((?P<pid>\d+)\):").unwrap();
        check(
            &PrefixKind::Regex(prefix),
            &[
                (
                    "2026-11-23 07:18:36 app(77): hello",
                    Some((Some("app"), Some(77), "hello")),
                ),
                ("2026-11-23 07:18:36 app: hello", None),
            ],
        );
    }

    #[test]
    fn datepattern_overrides_and_none() {
        let p: DatePattern = "^%d.%m.%Y %H:%M:%S".parse().unwrap();
        let h = parse(
            &PrefixKind::Syslog,
            Some(&p),
            "23.11.2026 07:18:36 web1 app[3]: hi",
            None,
        )
        .unwrap();
        assert_eq!((h.tag, h.pid, h.message), (Some("app"), Some(3), "hi"));
        assert!(h.stamp.is_some());
        let none: DatePattern = "none".parse().unwrap();
        let h = parse(&PrefixKind::Syslog, Some(&none), "web1 app[3]: hi", None).unwrap();
        assert_eq!((h.stamp, h.tag, h.message), (None, Some("app"), "hi"));
        let h = parse(&PrefixKind::Plain, Some(&none), "anything", None).unwrap();
        assert_eq!((h.stamp, h.message), (None, "anything"));
    }
}
