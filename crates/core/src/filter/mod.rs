//! The filter stage: from a raw log line to a typed [`Failure`] (address, time, user).
//!
//! Receives filter files (TOML text) once, then raw lines (or journal entries) one by one with
//! the wall clock `now` as an argument; emits an [`Outcome`] per line. It is pure and
//! synchronous: no I/O, no clock, no threads, no logging of raw lines. It must never panic on
//! any input, and outcomes other than [`Outcome::Failure`] never allocate (a line that is not
//! clean UTF-8 is decoded into a buffer the matcher reuses). Invalid bytes never hide a
//! failure: such a line is decoded lossily and matched (see [`Matcher`]).
//!
//! - [`FilterFile`] is a parsed filter file; [`FilterFile::compile`] picks a mode and gives an
//!   immutable [`Filter`], shared by every source that uses it (`Arc<Filter>`).
//! - [`Matcher`] is per log source: it owns the multi-line session table and the time cache.
//! - [`builtin`] holds the shipped filters (`filters/*.toml`, compiled into the binary).
//!
//! The file format is described in `filters/README.md`.

pub mod builtin;
mod compile;
mod datepattern;
mod host;
mod locate;
mod matcher;
mod prefilter;
mod prefix;
mod screen;
mod session;
mod spec;
mod time;
pub mod zone;

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

pub use datepattern::DatePattern;
pub use matcher::{MAX_LINE, Matcher};
pub use screen::{ScreenedLines, Screener, Whole};
pub use time::{LogTimeZone, TimeZoneError};
pub use zone::{LocalZone, ZoneRules, ZoneSource};

use crate::diag::Diagnostics;
use compile::{DaemonPattern, Rule};
use prefilter::Prefilter;
use prefix::PrefixKind;
use spec::FilterSpec;

/// A parsed filter file, not compiled yet.
#[derive(Debug, Clone)]
pub struct FilterFile {
    name: String,
    path: PathBuf,
    source: String,
    spec: FilterSpec,
}

impl FilterFile {
    /// Parses the TOML text of a filter; `path` is used only in diagnostics (built-ins use
    /// `filters/NAME.toml (built-in)`). The filter's name is the file name up to its first dot.
    pub fn parse(path: &Path, text: &str) -> Result<FilterFile, Diagnostics> {
        let spec = FilterSpec::parse(path, text)?;
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        let name = file_name.split('.').next().unwrap_or_default().to_string();
        Ok(FilterFile {
            name,
            path: path.to_path_buf(),
            source: text.to_string(),
            spec,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn description(&self) -> &str {
        self.spec.description.as_deref().unwrap_or_default()
    }

    /// The mode names (fail2ban's: normal, ddos, extra, aggressive, …), sorted.
    pub fn modes(&self) -> impl Iterator<Item = &str> {
        self.spec.mode_names()
    }

    pub fn default_mode(&self) -> &str {
        self.spec.default_mode()
    }

    /// The `description` of a mode, if the file gives one.
    pub fn mode_description(&self, mode: &str) -> Option<&str> {
        self.spec.modes.get(mode)?.get_ref().description.as_deref()
    }

    /// Compiles every regex of the chosen mode. Errors (a regex that does not compile, a
    /// failregex without `<HOST>`, an unknown mode, …) are diagnostics located in the filter
    /// file, all of them.
    pub fn compile(&self, options: &FilterOptions) -> Result<Filter, Diagnostics> {
        compile::compile(&self.name, &self.path, &self.source, &self.spec, options)
    }
}

/// What a jail may change about a filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterOptions {
    /// The mode; `None` is the filter's default mode.
    pub mode: Option<String>,
    /// Overrides the filter's own `datepattern`.
    pub datepattern: Option<DatePattern>,
    /// The zone of times written without an offset.
    pub timezone: LogTimeZone,
}

/// A compiled filter in one mode: immutable, `Send + Sync`, shared by many sources.
#[derive(Debug)]
pub struct Filter {
    name: String,
    mode: String,
    description: String,
    prefix: PrefixKind,
    needs_tag: bool,
    daemons: Vec<DaemonPattern>,
    datepattern: Option<DatePattern>,
    zone: LogTimeZone,
    /// Ignore rules first, then fail, session-fail, session and success rules, each in file
    /// order.
    rules: Vec<Rule>,
    prefilter: Prefilter,
    has_sessions: bool,
}

impl Filter {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn mode(&self) -> &str {
        &self.mode
    }

    pub fn description(&self) -> &str {
        &self.description
    }

    /// The prefix kind, as written in the file (`syslog`, `rfc5424`, `plain`, `regex …`).
    pub fn prefix(&self) -> String {
        self.prefix.to_string()
    }

    /// Number of regexes in this mode (all lists).
    pub fn regex_count(&self) -> usize {
        self.rules.len()
    }

    /// Whether a syslog tag (or journal identifier) is one of the filter's daemons. A filter
    /// without `daemons` accepts every tag and lines without one; a line in a format without
    /// tags (`tagged` false: a daemon's own log file, read with `plain`) has no daemon to check.
    pub fn accepts_daemon(&self, tag: Option<&str>, tagged: bool) -> bool {
        if !self.needs_tag || !tagged {
            return true;
        }
        tag.is_some_and(|tag| self.daemons.iter().any(|d| d.matches(tag)))
    }
}

/// One systemd-journal entry: no prefix to parse, the fields are given (`MESSAGE`,
/// `SYSLOG_IDENTIFIER`, `_PID`, `__REALTIME_TIMESTAMP`); the journal source builds it.
#[derive(Debug, Clone, Copy)]
pub struct JournalEntry<'a> {
    pub message: &'a [u8],
    pub identifier: Option<&'a str>,
    pub pid: Option<u32>,
    /// `__REALTIME_TIMESTAMP`: microseconds since the Unix epoch.
    pub realtime_usec: u64,
}

/// What one line is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Failure(Failure),
    /// An ignoreregex matched.
    Ignored,
    /// Not a failure (another daemon, a success, noise).
    NoMatch,
    /// A line that cannot be read, with the reason; counted, never fatal.
    Skipped(SkipReason),
    /// Logged before the limit the matcher was given (`Matcher::set_not_before`), and a
    /// candidate of the keyword pass: too old to count, so no regex ran on it.
    TooOld,
}

/// Why a line was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkipReason {
    /// Mostly (over a quarter) invalid UTF-8, and no failure in it once decoded.
    InvalidUtf8,
    /// Longer than [`MAX_LINE`] bytes.
    TooLong,
    /// Only NUL bytes, or mostly NUL and control bytes with no failure in it once decoded.
    Binary,
    /// No timestamp where the format puts one, or one that is no date.
    NoTimestamp,
    /// The line does not have the filter's prefix (custom prefix regex, RFC 5424 header).
    NoPrefix,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SkipReason::InvalidUtf8 => "invalid UTF-8",
            SkipReason::TooLong => "line too long",
            SkipReason::Binary => "binary data (NUL bytes)",
            SkipReason::NoTimestamp => "no timestamp",
            SkipReason::NoPrefix => "no log prefix",
        })
    }
}

/// An authentication failure found in a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Canonical (`::ffff:a.b.c.d` is IPv4), see [`crate::addr::canonical`].
    pub host: IpAddr,
    /// The log's own time, in the log's zone.
    pub time: chrono::NaiveDateTime,
    /// The same instant as Unix seconds (UTC).
    pub at: i64,
    pub user: Option<String>,
}

/// The last line of a regex error (the crate's messages draw the pattern and a caret above it).
pub(crate) fn regex_error(err: &regex::Error) -> String {
    let text = err.to_string();
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid regex")
        .trim()
        .trim_start_matches("error: ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_shareable() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Filter>();
        send_sync::<FilterFile>();
        fn send<T: Send>() {}
        send::<Matcher>();
    }

    #[test]
    fn compile_errors_point_at_the_regex() {
        let text = "daemons = [\"x\"]\n[modes.normal]\nfailregex = [\n  \"^ok <HOST>\",\n  \"^no host\",\n  \"^(unclosed <HOST>\",\n]\nsessionfailregex = [\"^s <HOST>\"]\nsessionregex = [\"^c <HOST>\"]\n";
        let file = FilterFile::parse(Path::new("filter.d/x.toml"), text).unwrap();
        let errors: Vec<String> = file
            .compile(&FilterOptions::default())
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        let want = [
            "filter.d/x.toml:5:3: failregex \"^no host\" has no <HOST>",
            "filter.d/x.toml:6:3: failregex does not compile: unclosed group",
            "filter.d/x.toml:8:21: sessionfailregex \"^s <HOST>\" must not contain <HOST>",
        ];
        assert_eq!(errors, want);
        let err = file
            .compile(&FilterOptions {
                mode: Some("fast".into()),
                ..FilterOptions::default()
            })
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "filter.d/x.toml:1:1: mode \"fast\" is not a mode of filter \"x\" (modes: normal)"
        );
    }
}
