//! The per-source matcher: one raw line (or journal entry) in, one [`Outcome`] out.
//!
//! Receives lines as bytes, without their newline, with the wall clock `now`; emits
//! [`Outcome`]s. It owns what a log source needs beyond the shared [`Filter`]: the multi-line
//! session table, reusable capture slots, the last resolved timestamp and a reusable buffer for
//! lines that are not clean text. The order of work keeps the common case cheap: length and NUL
//! checks, UTF-8 check, the prefix parsed by hand, the daemon check, one keyword pass, then
//! only the candidate regexes; the time is resolved only for a failure or a session binding. It
//! never panics, never does I/O, and allocates only for a [`Failure`]'s user name (and, rarely,
//! when a full session table is pruned or the decode buffer grows).
//!
//! The work is in two halves: [`Front`] (the checks before any rule's regex) and the rules'
//! loop with the sessions ([`State::message`]). `feed_line` runs both; a
//! [`Screener`](super::Screener) runs the first on another thread and [`Matcher::finish`] the
//! second, on the same code.
//!
//! Bytes that are not clean text never hide a failure, since the attacker chooses them (a user
//! name with one invalid byte must not escape the ban). Leading NUL bytes are dropped (the
//! zero-filled region a crash leaves before the next line). Then a line that is not valid UTF-8
//! or holds NUL bytes is decoded into the buffer, each invalid sequence and each NUL becoming
//! U+FFFD, and matched like any line: matching and the captures both work on the decoded text,
//! so a replacement cannot shift `<HOST>` (U+FFFD is no address character). Such a line that
//! matches nothing is counted as skipped ([`SkipReason::InvalidUtf8`] or
//! [`SkipReason::Binary`]) when most of it is not text.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use regex::bytes::CaptureLocations;

use super::compile::{Rule, RuleKind};
use super::host;
use super::locate::{LocatorCache, Spans};
use super::prefix::{self, PrefixError, PrefixKind};
use super::screen::{ScreenedLines, Whole};
use super::session::{SessionKey, SessionTable};
use super::time::{Resolved, Stamp, YearCache, Zone};
use super::zone::LocalZone;
use super::{Failure, Filter, JournalEntry, LogTimeZone, Outcome, SkipReason};

/// Longest line examined, in bytes; longer lines are [`SkipReason::TooLong`].
pub const MAX_LINE: usize = 64 * 1024;

/// Matches the lines of one log source against a shared filter.
#[derive(Debug)]
pub struct Matcher {
    filter: Arc<Filter>,
    front: Front,
    state: State,
}

/// The state of the cheap checks that come before any rule's regex (see [`Front::text`]): what
/// a [`Screener`](super::screen::Screener) runs on another thread than the rules.
#[derive(Debug)]
pub(super) struct Front {
    prefix_locs: Option<regex::CaptureLocations>,
    /// The rules the keyword pass left possible for the last line screened, one bit each.
    pub(super) candidates: Vec<u64>,
    /// The text of the last line that had to be decoded (reused).
    pub(super) decoded: String,
}

/// Where the parts of a line that passed the cheap checks are.
#[derive(Debug, Clone, Copy)]
pub(super) struct Head<'a> {
    pub message: &'a str,
    pub tag: Option<&'a str>,
    /// Whether the line's format has tags at all.
    pub tagged: bool,
    pub pid: Option<u32>,
    pub stamp: Option<Stamp>,
    /// The rules' search, when it was done ahead (on a screening thread: [`Finder::first`]).
    pub found: Option<Found>,
}

/// The rules' search state (capture slots, locator caches): finds where a rule matches. The
/// search is a function of the rule and the text alone; this holds only what makes it fast.
#[derive(Debug)]
pub(super) struct Finder {
    /// Capture slots, one per rule.
    locs: Vec<CaptureLocations>,
    /// Search caches of the rules' locators, one per rule, made at the rule's first match.
    locator_caches: Vec<Option<LocatorCache>>,
}

/// A line's candidate rules searched ahead of the rules' loop, in order: none before `first`
/// matches; `spans` are rule `first`'s when it matches (for an ignore rule, none are read), and
/// `None` when the search stopped there unsearched. `first` is the number of rules when none
/// matches.
#[derive(Debug, Clone, Copy)]
pub(super) struct Found {
    pub first: usize,
    pub spans: Option<Spans>,
}

impl Found {
    fn stopped_at(index: usize) -> Found {
        Found {
            first: index,
            spans: None,
        }
    }
}

#[derive(Debug)]
struct State {
    finder: Finder,
    sessions: SessionTable,
    /// The last stamp resolved, with the minute of `now` and the local zone's generation it
    /// was resolved with.
    last_time: Option<(Stamp, i64, u64, Resolved)>,
    /// The years of the year-less days last resolved.
    years: YearCache,
    /// The host's zone, for a filter in the local zone (the caller supplies it, and its source
    /// keeps it up to date).
    local: LocalZone,
    /// Lines logged at or before this instant (Unix seconds) are [`Outcome::TooOld`], found
    /// without running a regex.
    not_before: Option<i64>,
    /// Whether a [`Failure`] carries its user name.
    users: bool,
}

impl Matcher {
    /// A matcher for one log source; `local` is the host's zone, used by filters in the local
    /// zone (`logtimezone = local`; the daemon follows `/etc/localtime` with it).
    pub fn new(filter: Arc<Filter>, local: LocalZone) -> Matcher {
        let state = State {
            finder: Finder::new(&filter),
            sessions: SessionTable::default(),
            last_time: None,
            years: YearCache::default(),
            local,
            not_before: None,
            users: true,
        };
        Matcher {
            front: Front::new(&filter),
            filter,
            state,
        }
    }

    pub fn filter(&self) -> &Arc<Filter> {
        &self.filter
    }

    /// From now on, lines logged at or before `instant` (Unix seconds) that the keyword pass
    /// would hand to a regex are [`Outcome::TooOld`]: their time is read from the prefix and no
    /// regex runs on them, so a log read back from its start skips what is older than
    /// `findtime` fast. `None`: every line is matched (the default; `test-filter`).
    pub fn set_not_before(&mut self, instant: Option<i64>) {
        self.state.not_before = instant;
    }

    /// Whether failures carry their user name (the default); without, a failure costs no
    /// allocation. The sessions see the names either way.
    pub fn set_users(&mut self, users: bool) {
        self.state.users = users;
    }

    /// Open multi-line sessions (for status and tests).
    pub fn sessions(&self) -> usize {
        self.state.sessions.len()
    }

    /// One raw line from a file (without its newline). `now` is the wall clock (used to infer
    /// a missing year and to resolve times without a zone). Never panics on any input.
    pub fn feed_line(&mut self, line: &[u8], now: DateTime<Utc>) -> Outcome {
        match readable(line) {
            Readable::Text(text) => self.text_line(text, now),
            Readable::Decode(bytes) => {
                let mut text = std::mem::take(&mut self.front.decoded);
                let damage = decode(bytes, &mut text);
                let outcome = damage.judge(self.text_line(&text, now));
                self.front.decoded = text;
                outcome
            }
            Readable::Skip(reason) => Outcome::Skipped(reason),
        }
    }

    /// One systemd-journal entry: no prefix to parse, the fields are given.
    pub fn feed_journal(&mut self, entry: &JournalEntry<'_>, now: DateTime<Utc>) -> Outcome {
        match readable(entry.message) {
            Readable::Text(message) => self.journal_message(entry, message, now),
            Readable::Decode(bytes) => {
                let mut text = std::mem::take(&mut self.front.decoded);
                let damage = decode(bytes, &mut text);
                let outcome = damage.judge(self.journal_message(entry, &text, now));
                self.front.decoded = text;
                outcome
            }
            Readable::Skip(reason) => Outcome::Skipped(reason),
        }
    }

    /// The rest of the work on a line a [`Screener`](super::screen::Screener) of this
    /// matcher's filter screened into `lines` (line `index`): its rules and sessions, as
    /// [`feed_line`](Self::feed_line) would have matched it. A line screened with another
    /// filter (one taken up by a reload in between) is matched from its text, whole.
    pub fn finish(&mut self, lines: &ScreenedLines, index: usize, now: DateTime<Utc>) -> Outcome {
        let outcome = match lines.head(index, &self.filter) {
            Some((head, candidates)) => self.state.message(&self.filter, head, candidates, now),
            None => match lines.whole(index) {
                Whole::Line(line) => self.feed_line(line.as_bytes(), now),
                Whole::Journal(entry) => self.feed_journal(&entry, now),
            },
        };
        match lines.damage(index) {
            Some(damage) => damage.judge(outcome),
            None => outcome,
        }
    }

    fn text_line(&mut self, text: &str, now: DateTime<Utc>) -> Outcome {
        match self.front.text(&self.filter, text) {
            Ok(head) => self
                .state
                .message(&self.filter, head, &self.front.candidates, now),
            Err(outcome) => outcome,
        }
    }

    fn journal_message(
        &mut self,
        entry: &JournalEntry<'_>,
        message: &str,
        now: DateTime<Utc>,
    ) -> Outcome {
        match self.front.journal(&self.filter, entry, message) {
            Ok(head) => self
                .state
                .message(&self.filter, head, &self.front.candidates, now),
            Err(outcome) => outcome,
        }
    }
}

impl Finder {
    pub(super) fn new(filter: &Filter) -> Finder {
        Finder {
            locs: filter
                .rules
                .iter()
                .map(|r| r.regex.capture_locations())
                .collect(),
            locator_caches: vec![None; filter.rules.len()],
        }
    }

    /// The first rule left in `candidates` that matches `head`'s message, and where its groups
    /// are: the searches [`State::message`]'s loop makes, made ahead. A rule the loop passes
    /// over without a search for want of a session is passed over here too; the search stops,
    /// unsearched, at a rule the loop searches or not depending on the sessions seen.
    pub(super) fn first(&mut self, filter: &Filter, candidates: &[u64], head: &Head<'_>) -> Found {
        let message = head.message.as_bytes();
        let session = head.tag.is_some() && head.pid.is_some() && filter.has_sessions;
        for (index, rule) in filter.rules.iter().enumerate() {
            if candidates[index / 64] & (1 << (index % 64)) == 0 {
                continue;
            }
            let spans = match (rule.kind, session) {
                (RuleKind::Ignore, _) => rule.regex.is_match(message).then(Spans::default),
                (RuleKind::SessionFail | RuleKind::Session | RuleKind::Success, false) => continue,
                (RuleKind::Success, true) => return Found::stopped_at(index),
                (RuleKind::Session, true) if rule.ends_session => return Found::stopped_at(index),
                _ => self.spans(rule, index, message),
            };
            if spans.is_some() {
                return Found {
                    first: index,
                    spans,
                };
            }
        }
        Found {
            first: filter.rules.len(),
            spans: None,
        }
    }

    /// The spans of the groups a consumer reads, when `rule` matches `message`: found by the
    /// rule's [`Locator`](super::locate::Locator) when it has one and can be sure (after the
    /// rule's lazy DFA found the match, for a regex not anchored at the start), else by the
    /// captures (the bounded backtracker).
    fn spans(&mut self, rule: &Rule, index: usize, message: &[u8]) -> Option<Spans> {
        if let Some(locator) = rule.locator() {
            let cache = self.locator_caches[index].get_or_insert_with(|| locator.cache());
            // A regex starting with `^` is not searched first: its pieces, chained from the
            // start, are the match when they succeed (most candidate lines match their rule).
            if let Some((spans, _)) = locator.locate_anchored(cache, message) {
                return Some(spans);
            }
            let found = rule.regex.find(message)?;
            if !locator.anchored()
                && let Some(spans) = locator.locate(cache, message, found.start(), found.end())
            {
                return Some(spans);
            }
        }
        let locs = &mut self.locs[index];
        rule.regex.captures_read(locs, message)?;
        let group = |slot: Option<usize>| slot.and_then(|i| locs.get(i));
        Some(Spans {
            host: group(rule.host),
            user: group(rule.user),
            echo: group(rule.echo),
        })
    }
}

impl Front {
    pub(super) fn new(filter: &Filter) -> Front {
        Front {
            prefix_locs: match &filter.prefix {
                PrefixKind::Regex(p) => Some(p.regex.capture_locations()),
                _ => None,
            },
            candidates: vec![0; filter.prefilter.words()],
            decoded: String::new(),
        }
    }

    /// The checks of a line of text that need no rule's regex, cheapest first: the prefix
    /// parsed by hand, the daemon, one keyword pass (which leaves the candidate rules in
    /// `candidates`). `Err` is the line's outcome when they decide it.
    pub(super) fn text<'a>(&mut self, filter: &Filter, text: &'a str) -> Result<Head<'a>, Outcome> {
        if text.is_empty() {
            return Err(Outcome::NoMatch);
        }
        let header = match prefix::parse(
            &filter.prefix,
            filter.datepattern.as_ref(),
            text,
            self.prefix_locs.as_mut(),
        ) {
            Ok(header) => header,
            Err(PrefixError::NoTimestamp) => {
                return Err(Outcome::Skipped(SkipReason::NoTimestamp));
            }
            Err(PrefixError::NoPrefix) => return Err(Outcome::Skipped(SkipReason::NoPrefix)),
        };
        self.head(
            filter,
            Head {
                message: header.message,
                tag: header.tag,
                tagged: header.tagged,
                pid: header.pid,
                stamp: header.stamp,
                found: None,
            },
        )
    }

    /// [`text`](Self::text) for a journal entry's message: its fields stand for the prefix.
    pub(super) fn journal<'a>(
        &mut self,
        filter: &Filter,
        entry: &JournalEntry<'a>,
        message: &'a str,
    ) -> Result<Head<'a>, Outcome> {
        let stamp = Stamp::Epoch {
            seconds: (entry.realtime_usec / 1_000_000) as i64,
            nanos: (entry.realtime_usec % 1_000_000) as u32 * 1000,
        };
        self.head(
            filter,
            Head {
                message: prefix::strip_solaris_id(message),
                tag: entry.identifier,
                tagged: true,
                pid: entry.pid,
                stamp: Some(stamp),
                found: None,
            },
        )
    }

    fn head<'a>(&mut self, filter: &Filter, head: Head<'a>) -> Result<Head<'a>, Outcome> {
        if !filter.accepts_daemon(head.tag, head.tagged) {
            return Err(Outcome::NoMatch);
        }
        if !filter
            .prefilter
            .candidates(head.message.as_bytes(), &mut self.candidates)
        {
            return Err(Outcome::NoMatch);
        }
        Ok(head)
    }
}

/// What a line is before matching.
pub(super) enum Readable<'a> {
    /// Clean text (the common case: borrowed, nothing copied).
    Text(&'a str),
    /// Invalid UTF-8 or NUL bytes inside: to be decoded first.
    Decode(&'a [u8]),
    Skip(SkipReason),
}

pub(super) fn readable(line: &[u8]) -> Readable<'_> {
    if line.len() > MAX_LINE {
        return Readable::Skip(SkipReason::TooLong);
    }
    let mut line = line;
    if line.first() == Some(&0) {
        // A region a crash zero-filled before the line.
        let start = line.iter().position(|&b| b != 0).unwrap_or(line.len());
        if start == line.len() {
            return Readable::Skip(SkipReason::Binary);
        }
        line = &line[start..];
    }
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if memchr::memchr(0, line).is_none()
        && let Ok(text) = std::str::from_utf8(line)
    {
        return Readable::Text(text);
    }
    Readable::Decode(line)
}

/// How much of a decoded line was not text.
#[derive(Debug, Clone, Copy)]
pub(super) struct Damage {
    /// Bytes of invalid UTF-8 sequences.
    invalid: usize,
    /// NUL bytes and other control characters (tab aside).
    control: usize,
    len: usize,
}

impl Damage {
    /// The outcome of a decoded line: a line mostly not text that matched nothing is counted
    /// as skipped, by its main defect; a match (or an ignore) always stands.
    pub(super) fn judge(self, outcome: Outcome) -> Outcome {
        let unmatched = matches!(
            outcome,
            Outcome::NoMatch | Outcome::Skipped(SkipReason::NoTimestamp | SkipReason::NoPrefix)
        );
        // "Mostly": more than a quarter of its bytes.
        if !unmatched || (self.invalid + self.control) * 4 <= self.len {
            return outcome;
        }
        Outcome::Skipped(if self.invalid >= self.control {
            SkipReason::InvalidUtf8
        } else {
            SkipReason::Binary
        })
    }
}

/// Decodes `bytes` into `out` (cleared first): valid text as it is, each invalid UTF-8 sequence
/// and each NUL as U+FFFD (as `String::from_utf8_lossy` does, into a reused buffer).
pub(super) fn decode(bytes: &[u8], out: &mut String) -> Damage {
    out.clear();
    let mut damage = Damage {
        invalid: 0,
        control: 0,
        len: bytes.len(),
    };
    for chunk in bytes.utf8_chunks() {
        let valid = chunk.valid();
        damage.control += valid
            .bytes()
            .filter(|b| b.is_ascii_control() && *b != b'\t')
            .count();
        let mut rest = valid;
        while let Some(at) = rest.find('\0') {
            out.push_str(&rest[..at]);
            out.push(char::REPLACEMENT_CHARACTER);
            rest = &rest[at + 1..];
        }
        out.push_str(rest);
        if !chunk.invalid().is_empty() {
            damage.invalid += chunk.invalid().len();
            out.push(char::REPLACEMENT_CHARACTER);
        }
    }
    damage
}

impl State {
    /// The rules and sessions, on a line that passed the cheap checks ([`Front::text`]) with
    /// `candidates` left possible.
    fn message(
        &mut self,
        filter: &Filter,
        head: Head<'_>,
        candidates: &[u64],
        now: DateTime<Utc>,
    ) -> Outcome {
        let Head {
            message,
            tag,
            pid,
            stamp,
            found,
            ..
        } = head;
        // After the keyword pass, so that the many lines no regex could match never pay for
        // a time resolution; before the regexes, which are what a too old line is spared.
        if let (Some(limit), Some(_)) = (self.not_before, stamp)
            && self
                .resolve(filter, stamp, now)
                .is_some_and(|t| t.at <= limit)
        {
            return Outcome::TooOld;
        }
        let session = match (tag, pid) {
            (Some(tag), Some(pid)) if filter.has_sessions => Some(SessionKey::new(tag, pid)),
            _ => None,
        };
        for (index, rule) in filter.rules.iter().enumerate() {
            if candidates[index / 64] & (1 << (index % 64)) == 0 {
                continue;
            }
            // Searched ahead: the rules before the first that matches need no search, and
            // that one's groups are known.
            let ahead = match found {
                Some(found) if index < found.first => continue,
                Some(found) if index == found.first => found.spans,
                _ => None,
            };
            if rule.kind == RuleKind::Ignore {
                if ahead.is_some() || rule.regex.is_match(message.as_bytes()) {
                    return Outcome::Ignored;
                }
                continue;
            }
            match (rule.kind, session) {
                (RuleKind::SessionFail | RuleKind::Session | RuleKind::Success, None) => continue,
                // A login or a closed connection of a session never seen can change nothing:
                // no failure is held for it and it tried no user name (the line is not even
                // searched, which matters: such lines are a large share of an sshd log).
                (RuleKind::Success, Some(key)) if !self.sessions.knows(key) => continue,
                (RuleKind::Session, Some(key))
                    if rule.ends_session && !self.sessions.knows(key) =>
                {
                    continue;
                }
                _ => {}
            }
            let spans = match ahead {
                Some(spans) => spans,
                None => match self.finder.spans(rule, index, message.as_bytes()) {
                    Some(spans) => spans,
                    None => continue,
                },
            };
            // Offsets of the very text the regex ran on (decoded, if the line had to be). A
            // group cutting a character (possible on bytes, in theory) is no address, and no
            // user name.
            let found = spans
                .host
                .and_then(|(start, end)| message.get(start..end))
                .and_then(host::address);
            if rule.host.is_some() && found.is_none() {
                continue; // `<HOST>` caught something that is no address
            }
            let user = spans
                .user
                .filter(|(start, end)| end > start)
                .and_then(|(start, end)| message.get(start..end));
            if let Some(echo) = spans.echo
                && message.get(echo.0..echo.1) != Some(user.unwrap_or_default())
            {
                continue; // the log repeats the user name, and this split does not
            }
            let Some(time) = self.resolve(filter, stamp, now) else {
                return Outcome::Skipped(SkipReason::NoTimestamp);
            };
            // A session that tries more than one user name is charged even for lines that are
            // no failure by themselves (fail2ban's rule: a login must not wipe out guesses).
            let (host, held, many) = match (rule.kind, found, session) {
                (RuleKind::SessionFail, _, Some(key)) => {
                    if let Some(name) = user {
                        self.sessions.note_user(key, name, time.at);
                    }
                    match self.sessions.lookup(key, time.at) {
                        Some(addr) => (addr, None, false),
                        None => {
                            self.sessions.hold(key, time);
                            return Outcome::NoMatch;
                        }
                    }
                }
                (RuleKind::Success, Some(addr), Some(key)) => {
                    let many = match user {
                        Some(name) => self.sessions.note_user(key, name, time.at),
                        None => self.sessions.many_users(key, time.at),
                    };
                    // The client logged in: its session ends, and a failure held for it with it.
                    self.sessions.forget(key);
                    if !many {
                        return Outcome::NoMatch;
                    }
                    (addr, None, many)
                }
                (_, Some(addr), Some(key)) => {
                    let (held, many) = self.sessions.bind_user(key, addr, user, time.at);
                    if rule.ends_session {
                        self.sessions.forget(key); // a closed connection: its PID may come back
                    }
                    (addr, held, many)
                }
                (_, Some(addr), None) => (addr, None, false),
                _ => continue,
            };
            let time = match (rule.kind, held) {
                (RuleKind::Session, Some(held)) => held,
                (RuleKind::Session, None) if many => time,
                (RuleKind::Session, None) if rule.ends_session => return Outcome::NoMatch,
                (RuleKind::Session, None) => continue,
                _ => time,
            };
            let user = if rule.kind == RuleKind::Session || !self.users {
                None
            } else {
                user
            };
            return Outcome::Failure(Failure {
                host,
                time: time.time,
                at: time.at,
                user: user.map(str::to_string),
            });
        }
        Outcome::NoMatch
    }

    /// The line's time (or `now` when the filter says lines carry none), cached per stamp. In
    /// the local zone, the zone file is looked at (at most once a second) first, so a change of
    /// the host's zone applies from the next second on.
    fn resolve(
        &mut self,
        filter: &Filter,
        stamp: Option<Stamp>,
        now: DateTime<Utc>,
    ) -> Option<Resolved> {
        let (zone, generation) = match filter.zone {
            LogTimeZone::Fixed(offset) => (Zone::Fixed(offset), 0),
            LogTimeZone::Local => {
                let local = &mut self.local;
                local.refresh(now.timestamp());
                (Zone::Local(local), local.generation())
            }
        };
        let Some(stamp) = stamp else {
            return Some(Resolved {
                time: zone.wall_clock(now),
                at: now.timestamp(),
            });
        };
        let minute = now.timestamp().div_euclid(60);
        if let Some((last, at_minute, at_generation, resolved)) = self.last_time
            && last == stamp
            && at_minute == minute
            && at_generation == generation
        {
            return Some(resolved);
        }
        let resolved = stamp.resolve_cached(zone, generation, now, &mut self.years)?;
        self.last_time = Some((stamp, minute, generation, resolved));
        Some(resolved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::{FilterFile, FilterOptions, LogTimeZone};
    use std::path::Path;

    fn now() -> DateTime<Utc> {
        chrono::NaiveDateTime::parse_from_str("2026-11-23 12:00:00", "%Y-%m-%d %H:%M:%S")
            .unwrap()
            .and_utc()
    }

    fn matcher(text: &str, mode: Option<&str>) -> Matcher {
        let file = FilterFile::parse(Path::new("t.toml"), text).unwrap();
        let options = FilterOptions {
            mode: mode.map(str::to_string),
            timezone: LogTimeZone::Fixed(chrono::FixedOffset::east_opt(0).unwrap()),
            ..FilterOptions::default()
        };
        Matcher::new(Arc::new(file.compile(&options).unwrap()), LocalZone::utc())
    }

    fn show(outcome: Outcome) -> String {
        match outcome {
            Outcome::Failure(f) => format!(
                "{} {} {}",
                f.host,
                f.time.format("%Y-%m-%dT%H:%M:%S"),
                f.user.as_deref().unwrap_or("-")
            ),
            other => format!("{other:?}"),
        }
    }

    const SESSIONS: &str = r#"
        daemons = ["sshd", "sshd-session"]
        [modes.normal]
        failregex = ['^Invalid user (?P<user>\S+) from <HOST> port \d+$']
        ignoreregex = ['^Invalid user trusted from']
        sessionregex = ['^Connection from <HOST> port \d+']
        sessionfailregex = ['^kex_exchange_identification: ']
    "#;

    #[test]
    fn outcomes_of_lines() {
        let mut m = matcher(SESSIONS, None);
        let cases: &[(&[u8], &str)] = &[
            (b"Nov 23 07:18:36 h sshd[1]: Invalid user bob from 192.0.2.1 port 22", "192.0.2.1 2026-11-23T07:18:36 bob"),
            (b"Nov 23 07:18:36 h sshd[1]: Invalid user trusted from 192.0.2.1 port 22", "Ignored"),
            (b"Nov 23 07:18:36 h sshd[1]: Invalid user bob from 300.0.2.1 port 22", "NoMatch"),
            (b"Nov 23 07:18:36 h cron[1]: Invalid user bob from 192.0.2.1 port 22", "NoMatch"),
            (b"Nov 23 07:18:36 h sshd[1]: Accepted password for bob", "NoMatch"),
            (b"Nov 23 07:18:36 h sshd[1]: Invalid user bob from 192.0.2.1 port 22\r", "192.0.2.1 2026-11-23T07:18:36 bob"),
            (b"Feb 30 07:18:36 h sshd[1]: Invalid user bob from 192.0.2.1 port 22", "Skipped(NoTimestamp)"),
            (b"not a syslog line", "Skipped(NoTimestamp)"),
            (b"Nov 23 07:18:36 h sshd[1]: \xff\xfe", "NoMatch"),
            (b"Nov 23 07:18:36 h sshd[1]: a\0b", "NoMatch"),
            (b"Nov 23 07:18:36 h sshd[1]: \xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\xf7\xf6", "Skipped(InvalidUtf8)"),
            (b"Nov 23 07:18:36 h sshd[1]: a\0\x01\0\x02\0\x03\0\x04\0\x05\0", "Skipped(Binary)"),
            (b"\0\0\0\0", "Skipped(Binary)"),
            (b"", "NoMatch"),
            // Sessions: a line without an address is attributed to its process's address.
            (b"Nov 23 07:18:37 h sshd-session[77]: Connection from 2001:db8::9 port 4000 on 10.0.0.1 port 22", "NoMatch"),
            (b"Nov 23 07:18:38 h sshd-session[77]: kex_exchange_identification: Connection closed by remote host", "2001:db8::9 2026-11-23T07:18:38 -"),
            (b"Nov 23 07:18:38 h sshd-session[78]: kex_exchange_identification: read: Connection reset by peer", "NoMatch"),
            (b"Nov 23 07:18:38 h sshd[77]: kex_exchange_identification: read: Connection reset by peer", "NoMatch"),
            // Too old: the session is forgotten; the failure waits for its address.
            (b"Nov 23 07:30:00 h sshd-session[77]: kex_exchange_identification: Connection closed by remote host", "NoMatch"),
            (b"Nov 23 07:30:01 h sshd-session[77]: Connection from 192.0.2.5 port 4000 on 10.0.0.1 port 22", "192.0.2.5 2026-11-23T07:30:00 -"),
            (b"Nov 23 07:30:02 h sshd-session[77]: Connection from 192.0.2.5 port 4000 on 10.0.0.1 port 22", "NoMatch"),
        ];
        for (line, want) in cases {
            let got = show(m.feed_line(line, now()));
            assert_eq!(got, *want, "line {:?}", String::from_utf8_lossy(line));
        }
        assert_eq!(
            show(m.feed_line(&vec![b'a'; MAX_LINE + 1], now())),
            "Skipped(TooLong)"
        );
    }

    /// The text a screened line is kept as (for the ban log and hooks): a clean line as it
    /// was read, without a leading zero-filled region and a trailing `\r`; a dirty one decoded.
    /// Its outcome is `feed_line`'s.
    #[test]
    fn a_screened_line_is_kept_as_the_text_it_was_matched_as() {
        let mut m = matcher(SESSIONS, None);
        let mut finisher = matcher(SESSIONS, None);
        let mut screener = crate::filter::Screener::new(m.filter().clone());
        let failure = "Nov 23 07:18:36 h sshd[1]: Invalid user bob from 192.0.2.1 port 22";
        let decoded = "Nov 23 07:18:36 h sshd[1]: Invalid user \u{fffd} from 192.0.2.1 port 22";
        let cases: &[(Vec<u8>, Option<String>)] = &[
            (failure.into(), Some(failure.into())),
            (format!("{failure}\r").into(), Some(failure.into())),
            (format!("\0\0\0{failure}").into(), Some(failure.into())),
            (
                b"Nov 23 07:18:36 h sshd[1]: Invalid user \xff from 192.0.2.1 port 22".to_vec(),
                Some(decoded.into()),
            ),
            (
                format!("{failure} a\0b").into(),
                Some(format!("{failure} a\u{fffd}b")),
            ),
            (b"\0\0".to_vec(), None),
            (vec![b'a'; MAX_LINE + 1], None),
        ];
        for (line, want) in cases {
            let mut batch = ScreenedLines::default();
            let screened = screener.line(line, &mut batch);
            let text = (!batch.is_empty()).then(|| batch.text(0));
            assert_eq!(
                text,
                want.as_deref(),
                "line {:?}",
                String::from_utf8_lossy(line)
            );
            let outcome = screened.unwrap_or_else(|| finisher.finish(&batch, 0, now()));
            assert_eq!(
                show(outcome),
                show(m.feed_line(line, now())),
                "the same outcome as feed_line"
            );
        }
    }

    #[test]
    fn failures_without_user_names_are_otherwise_the_same() {
        let line: &[u8] = b"Nov 23 07:18:36 h sshd[1]: Invalid user bob from 192.0.2.1 port 22";
        let mut with = matcher(SESSIONS, None);
        let mut without = matcher(SESSIONS, None);
        without.set_users(false);
        let (Outcome::Failure(a), Outcome::Failure(b)) =
            (with.feed_line(line, now()), without.feed_line(line, now()))
        else {
            panic!("no failure");
        };
        assert_eq!(a.user.as_deref(), Some("bob"));
        assert_eq!(b.user, None);
        assert_eq!((a.host, a.time, a.at), (b.host, b.time, b.at));
    }

    #[test]
    fn journal_entries_use_their_fields() {
        let mut m = matcher(SESSIONS, None);
        let entry = JournalEntry {
            message: b"Invalid user eve from ::ffff:198.51.100.7 port 1",
            identifier: Some("sshd-session"),
            pid: Some(9),
            realtime_usec: 1_795_418_316_250_000,
        };
        assert_eq!(
            show(m.feed_journal(&entry, now())),
            "198.51.100.7 2026-11-23T07:18:36 eve"
        );
        let other = JournalEntry {
            identifier: Some("cron"),
            ..entry
        };
        assert_eq!(m.feed_journal(&other, now()), Outcome::NoMatch);
        let binary = JournalEntry {
            message: b"\0\0",
            ..entry
        };
        assert_eq!(
            m.feed_journal(&binary, now()),
            Outcome::Skipped(SkipReason::Binary)
        );
    }

    // Regression: a failure line with invalid UTF-8 in the user name (or after the NUL bytes a
    // crash leaves) was skipped and not counted: an attacker escaped the ban with one bad byte.
    #[test]
    fn bad_bytes_never_hide_a_failure_nor_move_its_address() {
        let file = crate::filter::builtin::load("sshd").unwrap().unwrap();
        let options = FilterOptions {
            timezone: LogTimeZone::Fixed(chrono::FixedOffset::east_opt(0).unwrap()),
            ..FilterOptions::default()
        };
        let mut m = Matcher::new(Arc::new(file.compile(&options).unwrap()), LocalZone::utc());
        let head = b"Nov 23 07:18:36 h sshd[1]: ".as_slice();
        let line = |message: &[u8]| [head, message].concat();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (line(b"Failed password for invalid user \xff from 192.0.2.1 port 22 ssh2"), "192.0.2.1 2026-11-23T07:18:36 \u{fffd}"),
            (line(b"Failed password for ro\xc3ot from 192.0.2.1 port 22 ssh2"), "192.0.2.1 2026-11-23T07:18:36 ro\u{fffd}ot"),
            (line(b"Invalid user \0adm\xffin from 2001:db8::7 port 22"), "2001:db8::7 2026-11-23T07:18:36 \u{fffd}adm\u{fffd}in"),
            // Leading NUL bytes: the zero-filled tail of a crash before the line.
            ([&[0u8; 512][..], &line(b"Failed password for root from 192.0.2.1 port 22 ssh2")].concat(), "192.0.2.1 2026-11-23T07:18:36 root"),
            // Injections: the attacker's text names another address; the real one stays.
            (line(b"Failed password for invalid user \xff from 10.0.0.9 port 1 ssh2 from 192.0.2.1 port 22 ssh2"), "192.0.2.1"),
            (line(b"Failed password for invalid user x\xff from 10.0.0.9 port 1 ssh2\xff from 192.0.2.1 port 22 ssh2"), "192.0.2.1"),
            (line(b"Invalid user \xff\xff\xff\xff from 10.0.0.19 port 1 from 192.0.2.1 port 22"), "192.0.2.1"),
            (line(b"Failed password for \xfe\xff from 10.0.0.9 port 22 ssh2: RSA \xff\xff from 192.0.2.1 port 22 ssh2"), "192.0.2.1"),
            // A long run of bad bytes: mostly not text, still a failure.
            (line(&[b"Failed password for invalid user ".as_slice(), &[0xff; 300], b" from 192.0.2.1 port 22 ssh2"].concat()), "192.0.2.1"),
        ];
        for (raw, want) in cases {
            let got = show(m.feed_line(&raw, now()));
            assert!(
                got == want || got.split(' ').next() == Some(want),
                "{:?}: got {got:?}, want {want:?}",
                String::from_utf8_lossy(&raw)
            );
        }
        // Every count of bad bytes before the address, so no offset can drift onto another.
        for n in 0..12 {
            let mut message = b"Invalid user ".to_vec();
            message.extend(std::iter::repeat_n(0xffu8, n));
            message.extend_from_slice(b" from 10.0.0.123 port 1 from 192.0.2.123 port 22");
            assert_eq!(
                show(m.feed_line(&line(&message), now())).split(' ').next(),
                Some("192.0.2.123"),
                "{n} bad bytes"
            );
        }
        // The journal's messages alike.
        let entry = JournalEntry {
            message: b"Failed password for invalid user \xff\xfe from 10.0.0.9 port 1 ssh2 from 192.0.2.1 port 22 ssh2",
            identifier: Some("sshd"),
            pid: Some(9),
            realtime_usec: 1_795_418_316_250_000,
        };
        assert_eq!(
            show(m.feed_journal(&entry, now())).split(' ').next(),
            Some("192.0.2.1")
        );
        let entry = JournalEntry {
            message: b"\0\0Failed password for root from 192.0.2.2 port 22 ssh2",
            ..entry
        };
        assert_eq!(
            show(m.feed_journal(&entry, now())).split(' ').next(),
            Some("192.0.2.2")
        );
    }

    #[test]
    fn lines_older_than_the_limit_are_too_old_without_a_regex() {
        let mut m = matcher(SESSIONS, None);
        let at = |time: &str| {
            chrono::NaiveDateTime::parse_from_str(
                &format!("2026-11-23 {time}"),
                "%Y-%m-%d %H:%M:%S",
            )
            .unwrap()
            .and_utc()
            .timestamp()
        };
        m.set_not_before(Some(at("11:50:00")));
        let cases: &[(&[u8], &str)] = &[
            (
                b"Nov 23 11:49:59 h sshd[1]: Invalid user bob from 192.0.2.1 port 22",
                "TooOld",
            ),
            (
                b"Nov 23 11:50:00 h sshd[1]: Invalid user bob from 192.0.2.1 port 22",
                "TooOld",
            ),
            (
                b"Nov 23 11:50:01 h sshd[1]: Invalid user bob from 192.0.2.1 port 22",
                "192.0.2.1 2026-11-23T11:50:01 bob",
            ),
            // Another daemon's line is no match whatever its age; a line without a time is
            // still unreadable.
            (
                b"Nov 23 07:00:00 h cron[1]: Invalid user bob from 192.0.2.1 port 22",
                "NoMatch",
            ),
            (b"not a syslog line", "Skipped(NoTimestamp)"),
        ];
        for (line, want) in cases {
            assert_eq!(
                show(m.feed_line(line, now())),
                *want,
                "{}",
                String::from_utf8_lossy(line)
            );
        }
        let entry = JournalEntry {
            message: b"Invalid user eve from 198.51.100.7 port 1",
            identifier: Some("sshd"),
            pid: Some(9),
            realtime_usec: (at("11:00:00") * 1_000_000) as u64,
        };
        assert_eq!(m.feed_journal(&entry, now()), Outcome::TooOld);
        m.set_not_before(None);
        assert_eq!(
            show(m.feed_journal(&entry, now())),
            "198.51.100.7 2026-11-23T11:00:00 eve"
        );
    }

    #[test]
    fn lines_without_time_use_now() {
        let mut m = matcher(
            "prefix = \"plain\"\ndatepattern = \"none\"\n[modes.normal]\nfailregex = ['^fail <HOST>']\n",
            None,
        );
        assert_eq!(
            show(m.feed_line(b"fail 192.0.2.3", now())),
            "192.0.2.3 2026-11-23T12:00:00 -"
        );
    }

    #[test]
    fn a_login_forgets_its_session_unless_it_tried_other_users() {
        let text = r#"
            daemons = ["sshd"]
            [modes.normal]
            failregex = ['^Failed password for (?P<user>\S+) from <HOST> port \d+ ssh2$']
            sessionregex = ['^pam_unix\(sshd:auth\): authentication failure; ruser=(?P<user>\S*) rhost=<HOST>$']
            sessionfailregex = ['^Disconnecting: Too many authentication failures']
            successregex = ['^Accepted \S+ for (?P<user>\S+) from <HOST> port \d+ ssh2$']
        "#;
        let mut m = matcher(text, None);
        let cases: &[(&[u8], &str)] = &[
            // One user: the PAM line only names the session; the login forgets it.
            (b"Nov 23 07:18:36 h sshd[1]: pam_unix(sshd:auth): authentication failure; ruser=root rhost=192.0.2.1", "NoMatch"),
            (b"Nov 23 07:18:36 h sshd[1]: pam_unix(sshd:auth): authentication failure; ruser=root rhost=192.0.2.1", "NoMatch"),
            (b"Nov 23 07:18:37 h sshd[1]: Accepted password for root from 192.0.2.1 port 22 ssh2", "NoMatch"),
            (b"Nov 23 07:18:38 h sshd[1]: Disconnecting: Too many authentication failures", "NoMatch"),
            // A second user name makes the session's lines failures, the login too.
            (b"Nov 23 07:18:40 h sshd[2]: pam_unix(sshd:auth): authentication failure; ruser=root rhost=192.0.2.2", "NoMatch"),
            (b"Nov 23 07:18:41 h sshd[2]: pam_unix(sshd:auth): authentication failure; ruser=sudoer rhost=192.0.2.2", "192.0.2.2 2026-11-23T07:18:41 -"),
            (b"Nov 23 07:18:42 h sshd[2]: Accepted password for known from 192.0.2.2 port 22 ssh2", "192.0.2.2 2026-11-23T07:18:42 known"),
            // A failure held for a session is dropped by a login.
            (b"Nov 23 07:18:43 h sshd[3]: Disconnecting: Too many authentication failures", "NoMatch"),
            (b"Nov 23 07:18:44 h sshd[3]: Accepted publickey for git from 192.0.2.3 port 22 ssh2", "NoMatch"),
            (b"Nov 23 07:18:45 h sshd[3]: pam_unix(sshd:auth): authentication failure; ruser=git rhost=192.0.2.3", "NoMatch"),
        ];
        for (line, want) in cases {
            let got = show(m.feed_line(line, now()));
            assert_eq!(got, *want, "{}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn an_echo_group_must_repeat_the_user() {
        let text = r#"
            [modes.normal]
            failregex = ['^Login failed for (?P<user>.*?) from <HOST>\. user=(?P<echo>.*)$']
        "#;
        let mut m = matcher(text, None);
        let cases: &[(&[u8], &str)] = &[
            (b"Nov 23 07:18:36 h rc: Login failed for a from 192.0.2.1. user=a", "192.0.2.1 2026-11-23T07:18:36 a"),
            // The user `a from 203.0.113.9. b`, repeated: the only split that agrees is the last.
            (b"Nov 23 07:18:36 h rc: Login failed for a from 203.0.113.9. b from 192.0.2.1. user=a from 203.0.113.9. b", "192.0.2.1 2026-11-23T07:18:36 a from 203.0.113.9. b"),
            (b"Nov 23 07:18:36 h rc: Login failed for a from 192.0.2.1. user=b", "NoMatch"),
        ];
        for (line, want) in cases {
            let got = show(m.feed_line(line, now()));
            assert_eq!(got, *want, "{}", String::from_utf8_lossy(line));
        }
        let bad = FilterFile::parse(
            Path::new("t.toml"),
            "[modes.normal]\nfailregex = ['^x (?P<echo>.*) <HOST>']\n",
        )
        .unwrap();
        let err = bad
            .compile(&FilterOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("has an `echo` group but no `user` group"),
            "{err}"
        );
    }

    // Regression: random bytes through every path must never panic.
    #[test]
    fn random_bytes_never_panic() {
        let mut m = matcher(SESSIONS, None);
        let mut plain = matcher(
            "prefix = \"plain\"\n[modes.normal]\nfailregex = ['<HOST>']\n",
            None,
        );
        let mut r5424 = matcher(
            "prefix = \"rfc5424\"\n[modes.normal]\nfailregex = ['<HOST>']\n",
            None,
        );
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet = b"Nov 23 07:18:36 h sshd[1]: <>-:.[]0123456789abcdef\xff\xc3\x00\t\r ";
        for _ in 0..20_000 {
            let len = (next() % 120) as usize;
            let line: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            m.feed_line(&line, now());
            plain.feed_line(&line, now());
            r5424.feed_line(&line, now());
            let raw: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            m.feed_line(&raw, now());
            plain.feed_line(&raw, now());
            r5424.feed_line(&raw, now());
        }
    }
}
