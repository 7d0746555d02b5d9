//! The two filter engines behind one interface: nftjail's own TOML filters (core's
//! [`Matcher`], on the `regex` crate) and fail2ban's filter files (core's [`Fail2banMatcher`],
//! on PCRE2).
//!
//! Receives a compiled filter of either kind, then raw lines or journal entries with `now`;
//! emits core's [`Outcome`] per line, so the filter stage and `test-filter` never ask which kind
//! they run. For fail2ban filters, a failure whose id is not an address (a host name: `usedns`
//! is `no`; an `<F-ID>` that is no address), a network (`<SUBNET>` with a prefix) and a
//! `<F-NOFAIL>` match are not failures. It never decides anything about an address.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use nftjail_core::fail2ban::{Fail2banFilter, Fail2banMatcher, Zone, matcher::journal};
use nftjail_core::filter::{
    Failure, Filter, JournalEntry, LocalZone, Matcher, Outcome, ScreenedLines, Screener, Whole,
};

/// A compiled filter of either kind, shared by every source that uses it.
#[derive(Debug, Clone)]
pub enum CompiledFilter {
    Native(Arc<Filter>),
    Fail2ban(Arc<Fail2banFilter>),
}

impl CompiledFilter {
    /// The mode the filter runs in (fail2ban filters: the `mode` option, if any).
    pub fn mode(&self) -> String {
        match self {
            CompiledFilter::Native(filter) => filter.mode().to_string(),
            CompiledFilter::Fail2ban(filter) => filter
                .options()
                .iter()
                .find(|(key, _)| key == "mode")
                .map(|(_, value)| value.clone())
                .unwrap_or_default(),
        }
    }

    /// Regexes of the filter (prefregex, failregex and ignoreregex for fail2ban's).
    pub fn regex_count(&self) -> usize {
        match self {
            CompiledFilter::Native(filter) => filter.regex_count(),
            CompiledFilter::Fail2ban(filter) => {
                filter.failregex().len()
                    + filter.ignoreregex().len()
                    + usize::from(filter.prefregex().is_some())
            }
        }
    }

    /// A matcher for one source, in the host's zone (`local`, followed as it changes).
    pub fn matcher(&self, local: LocalZone) -> AnyMatcher {
        match self {
            CompiledFilter::Native(filter) => {
                AnyMatcher::Native(Matcher::new(filter.clone(), local))
            }
            CompiledFilter::Fail2ban(filter) => {
                let zone = Zone::Local(Arc::new(local.rules().clone()));
                AnyMatcher::Fail2ban(Box::new(Fail2banRun {
                    matcher: Fail2banMatcher::new(filter.clone()),
                    generation: local.generation(),
                    local,
                    zone,
                    not_before: None,
                }))
            }
        }
    }
}

/// A per-source matcher of either kind. One per source, never moved on the hot path: the
/// native matcher stays inline (no indirection per line), the fail2ban one is boxed.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum AnyMatcher {
    Native(Matcher),
    Fail2ban(Box<Fail2banRun>),
}

/// A fail2ban matcher with the host's zone it converts times in.
#[derive(Debug)]
pub struct Fail2banRun {
    matcher: Fail2banMatcher,
    local: LocalZone,
    /// The local zone's generation `zone` was made from.
    generation: u64,
    zone: Zone,
    /// Failures logged before this instant are too old (see [`AnyMatcher::set_not_before`]).
    not_before: Option<i64>,
}

impl Fail2banRun {
    /// Matches one line, decoded.
    fn line(&mut self, text: &str, now: DateTime<Utc>) -> Outcome {
        let now = now.timestamp();
        self.refresh(now);
        let found = self.matcher.feed(text, now, &self.zone);
        Fail2banRun::outcome(found, self.not_before)
    }

    fn refresh(&mut self, now: i64) {
        self.local.refresh(now);
        if self.local.generation() != self.generation {
            self.generation = self.local.generation();
            self.zone = Zone::Local(Arc::new(self.local.rules().clone()));
        }
    }

    fn outcome(found: Vec<nftjail_core::fail2ban::Found>, not_before: Option<i64>) -> Outcome {
        let outcome = found
            .into_iter()
            .filter(|found| !found.nofail)
            // A `<SUBNET>`/`<CIDR>` capture names a network, not an address: the tracker counts
            // addresses, and banning the network's first address would be wrong (no stock
            // fail2ban filter captures one).
            .filter(|found| match (found.host, found.prefix) {
                (Some(std::net::IpAddr::V4(_)), Some(length)) => length == 32,
                (Some(std::net::IpAddr::V6(_)), Some(length)) => length == 128,
                _ => true,
            })
            .find_map(|found| {
                Some(Failure {
                    host: nftjail_core::addr::canonical(found.host?),
                    time: found.local_time,
                    at: found.time,
                    user: found.user,
                })
            })
            .map_or(Outcome::NoMatch, Outcome::Failure);
        match (outcome, not_before) {
            // fail2ban's engine finds the time with the match: the limit is applied after it.
            (Outcome::Failure(failure), Some(limit)) if failure.at < limit => Outcome::TooOld,
            (outcome, _) => outcome,
        }
    }
}

impl AnyMatcher {
    /// Whether failures carry the user name they name (`test-filter` shows it; the daemon
    /// reads it only for its debug log, and then asks for it). Native filters then skip an
    /// allocation per failure; sessions still see every name (fail2ban's filters always
    /// report it).
    pub fn set_users(&mut self, users: bool) {
        if let AnyMatcher::Native(matcher) = self {
            matcher.set_users(users);
        }
    }

    /// Lines logged before `instant` (Unix seconds) are [`Outcome::TooOld`]: the read-back of
    /// a log seen for the first time counts only what is within `findtime`.
    pub fn set_not_before(&mut self, instant: Option<i64>) {
        match self {
            AnyMatcher::Native(matcher) => matcher.set_not_before(instant),
            AnyMatcher::Fail2ban(run) => run.not_before = instant,
        }
    }

    /// Matches one log line (without its newline).
    pub fn feed_line(&mut self, line: &[u8], now: DateTime<Utc>) -> Outcome {
        match self {
            AnyMatcher::Native(matcher) => matcher.feed_line(line, now),
            AnyMatcher::Fail2ban(run) => run.line(&String::from_utf8_lossy(line), now),
        }
    }

    /// Matches one journal entry; a fail2ban filter sees it as fail2ban's systemd backend
    /// formats it (`IDENT[PID]: MESSAGE`, no host name: the journal source does not read it).
    pub fn feed_journal(&mut self, entry: &JournalEntry<'_>, now: DateTime<Utc>) -> Outcome {
        match self {
            AnyMatcher::Native(matcher) => matcher.feed_journal(entry, now),
            AnyMatcher::Fail2ban(run) => {
                let now = now.timestamp();
                run.refresh(now);
                let message = String::from_utf8_lossy(entry.message);
                let pid = entry.pid.map(|pid| pid.to_string());
                let line = journal::format_entry(|field| match field {
                    "SYSLOG_IDENTIFIER" => entry.identifier.map(str::to_string),
                    "SYSLOG_PID" => pid.clone(),
                    "MESSAGE" => Some(message.to_string()),
                    _ => None,
                });
                let time = (entry.realtime_usec / 1_000_000) as i64;
                let found = run.matcher.feed_journal(&line, time, now, &run.zone);
                Fail2banRun::outcome(found, run.not_before)
            }
        }
    }
}

/// The half of an [`AnyMatcher`] that runs on the thread reading the log (see core's
/// [`Screener`]): a native filter's checks that need no rule's regex. A fail2ban filter screens
/// nothing here: its lines go on whole, decoded, and its engine does all the work in
/// [`AnyMatcher::finish`].
#[derive(Debug)]
pub enum AnyScreener {
    Native(Screener),
    Fail2ban,
}

impl AnyScreener {
    /// See [`Screener::search_ahead`] (a fail2ban filter's engine searches on the other side).
    pub fn search_ahead(&mut self, on: bool) {
        if let AnyScreener::Native(screener) = self {
            screener.search_ahead(on);
        }
    }

    /// One log line (without its newline): `Some` outcome when it is decided here, else `None`
    /// and the line is added to `into`.
    pub fn line(&mut self, line: &[u8], into: &mut ScreenedLines) -> Option<Outcome> {
        match self {
            AnyScreener::Native(screener) => screener.line(line, into),
            AnyScreener::Fail2ban => {
                into.push_line(&String::from_utf8_lossy(line));
                None
            }
        }
    }

    /// [`line`](Self::line) for a journal entry.
    pub fn journal(
        &mut self,
        entry: &JournalEntry<'_>,
        into: &mut ScreenedLines,
    ) -> Option<Outcome> {
        match self {
            AnyScreener::Native(screener) => screener.journal(entry, into),
            AnyScreener::Fail2ban => {
                into.push_journal(&String::from_utf8_lossy(entry.message), entry);
                None
            }
        }
    }
}

impl AnyMatcher {
    /// A screener of this matcher's filter, for the thread that reads its source.
    pub fn screener(&self) -> AnyScreener {
        match self {
            AnyMatcher::Native(matcher) => {
                AnyScreener::Native(Screener::new(matcher.filter().clone()))
            }
            AnyMatcher::Fail2ban(_) => AnyScreener::Fail2ban,
        }
    }

    /// Matches line `index` of a batch a screener of this filter filled, as
    /// [`feed_line`](Self::feed_line) or [`feed_journal`](Self::feed_journal) would have.
    pub fn finish(&mut self, lines: &ScreenedLines, index: usize, now: DateTime<Utc>) -> Outcome {
        match self {
            AnyMatcher::Native(matcher) => matcher.finish(lines, index, now),
            // Its screener pushed the line decoded already: matched as that text.
            AnyMatcher::Fail2ban(run) => match lines.whole(index) {
                Whole::Line(line) => run.line(line, now),
                Whole::Journal(entry) => self.feed_journal(&entry, now),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nftjail_core::fail2ban::Found;

    fn found(host: &str, prefix: Option<u8>, nofail: bool) -> Found {
        let time = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        Found {
            host: host.parse().ok(),
            prefix,
            raw: host.to_string(),
            time: time.timestamp(),
            local_time: time.naive_utc(),
            user: Some("root".into()),
            users: Vec::new(),
            nofail,
            line: 1,
            lines: vec![1],
            failregex: 0,
        }
    }

    /// Both kinds of filter keep a screened line as the text they match (a line that was not
    /// UTF-8 decoded), and find the failure in it as they do fed whole.
    #[test]
    fn a_screened_line_is_kept_as_text_by_either_kind_of_filter() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("filter.d")).unwrap();
        std::fs::write(
            dir.path().join("filter.d/t.conf"),
            "[Definition]\nfailregex = ^.* Invalid user \\S+ from <HOST> port \\d+$\n",
        )
        .unwrap();
        let fail2ban = crate::fail2ban::load_filter(
            "t",
            dir.path(),
            &crate::fail2ban::Fail2banOptions::default(),
            1_800_000_000,
        )
        .map_err(|d| d.to_string())
        .unwrap();
        let native = nftjail_core::filter::builtin::load("sshd")
            .unwrap()
            .unwrap()
            .compile(&nftjail_core::filter::FilterOptions {
                timezone: "UTC".parse().unwrap(),
                ..Default::default()
            })
            .unwrap();
        let native = CompiledFilter::Native(Arc::new(native));
        let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let clean = "Nov 23 07:18:36 h sshd[1]: Invalid user bob from 192.0.2.1 port 22";
        let dirty: &[u8] = b"Nov 23 07:18:36 h sshd[1]: Invalid user \xff from 192.0.2.1 port 22";
        let decoded = "Nov 23 07:18:36 h sshd[1]: Invalid user \u{fffd} from 192.0.2.1 port 22";
        for filter in [CompiledFilter::Fail2ban(fail2ban), native] {
            let mut m = filter.matcher(LocalZone::utc());
            let mut screener = m.screener();
            for (line, text) in [(clean.as_bytes(), clean), (dirty, decoded)] {
                let outcome = m.feed_line(line, now);
                assert!(matches!(outcome, Outcome::Failure(_)), "{outcome:?}");
                let mut batch = ScreenedLines::default();
                assert_eq!(screener.line(line, &mut batch), None);
                assert_eq!(batch.text(0), text);
                let outcome = m.finish(&batch, 0, now);
                assert!(matches!(outcome, Outcome::Failure(_)), "{outcome:?}");
            }
        }
    }

    #[test]
    fn only_addresses_that_are_failures_come_out() {
        let cases = [
            (found("192.0.2.1", None, false), Some("192.0.2.1")),
            (found("::ffff:192.0.2.2", None, false), Some("192.0.2.2")),
            (found("192.0.2.3", None, true), None),
            (found("host.example", None, false), None),
            (found("192.0.2.0", Some(24), false), None),
            (found("192.0.2.4", Some(32), false), Some("192.0.2.4")),
        ];
        for (found, want) in cases {
            let label = found.raw.clone();
            let host = match Fail2banRun::outcome(vec![found], None) {
                Outcome::Failure(failure) => Some(failure.host.to_string()),
                _ => None,
            };
            assert_eq!(host.as_deref(), want, "{label}");
        }
    }
}
