//! Running a jail's filter on its source's thread, and starting and stopping sources.
//!
//! Receives raw items from a source (on the source's own thread); emits [`Event`]s to the core:
//! failures in batches (one channel message per read round, not per line) and checkpoints of the
//! positions reached. Matching here spreads the regex work over the source threads, so the core
//! only ever sees failures. Counters (lines, failures, skipped) are shared with the core through
//! atomics for `status` and metrics. It never decides anything about an address.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use crate::config::{Config, JailKind, Source};
use crate::filter::{Failure, Matcher, Outcome};
use crate::jail::JailName;
use crate::source::files::{self, FileSource};
use crate::source::journal::{self, JournalSource};
use crate::source::{Item, Sink, SourceHandle};
use crate::state::Position;

/// Failures of one round are sent together; a round that finds more sends every this many.
const FAILURE_BATCH: usize = 512;

/// What sources tell the core.
#[derive(Debug)]
pub enum Event {
    Failures {
        jail: JailName,
        failures: Vec<Matched>,
    },
    Checkpoint(Vec<(String, Position)>),
}

/// A failure, with its log line when the jail has a hook that wants the matches.
#[derive(Debug)]
pub struct Matched {
    pub failure: Failure,
    pub line: Option<String>,
}

/// Counters of one jail's source, shared between its thread and the core.
#[derive(Debug, Default)]
pub struct SourceCounters {
    pub lines: AtomicU64,
    pub failures: AtomicU64,
    /// Unreadable lines: invalid UTF-8, binary, over-long, without timestamp or prefix.
    pub skipped: AtomicU64,
    /// Lines an ignoreregex matched.
    pub ignored: AtomicU64,
}

/// The sink of one jail's source: filter in, events out.
struct MatchSink {
    jail: JailName,
    matcher: Matcher,
    events: mpsc::Sender<Event>,
    pending: Vec<Matched>,
    /// Keep each failure's line (only for jails with an `on_ban` hook).
    keep_lines: bool,
    counters: Arc<SourceCounters>,
    last_positions: Vec<(String, Position)>,
    /// Over-long lines the source skipped before they reached the filter, as last reported.
    too_long: u64,
    /// The clock, read once per read round (year inference and the future-time clamp need
    /// seconds, not a fresh reading per line).
    now: Option<DateTime<Utc>>,
    /// Counts of this round, added to the shared counters at its checkpoint (no atomic per line).
    round: RoundCounts,
}

/// What one read round counted.
#[derive(Default)]
struct RoundCounts {
    lines: u64,
    failures: u64,
    skipped: u64,
    ignored: u64,
}

impl MatchSink {
    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let failures = std::mem::take(&mut self.pending);
        // A closed channel means the daemon is stopping: nothing is left to tell.
        let _ = self.events.blocking_send(Event::Failures {
            jail: self.jail.clone(),
            failures,
        });
    }
}

impl Sink for MatchSink {
    fn item(&mut self, item: Item<'_>) {
        let now = *self.now.get_or_insert_with(Utc::now);
        self.round.lines += 1;
        let (outcome, text) = match item {
            Item::Line(line) => (self.matcher.feed_line(line, now), line),
            Item::Journal(j) => (self.matcher.feed_journal(&j, now), j.message),
        };
        match outcome {
            Outcome::Failure(f) => {
                tracing::debug!(jail = %self.jail, ip = %f.host, user = f.user.as_deref().unwrap_or(""), "match");
                self.round.failures += 1;
                let line = self
                    .keep_lines
                    .then(|| String::from_utf8_lossy(text).into_owned());
                self.pending.push(Matched { failure: f, line });
                if self.pending.len() >= FAILURE_BATCH {
                    self.flush();
                }
            }
            Outcome::Skipped(reason) => {
                tracing::trace!(jail = %self.jail, reason = %reason, "line skipped");
                self.round.skipped += 1;
            }
            Outcome::Ignored => self.round.ignored += 1,
            Outcome::NoMatch => {}
        }
    }

    fn checkpoint(&mut self, positions: &[(String, Position)], too_long: u64) {
        self.flush();
        self.now = None;
        let round = std::mem::take(&mut self.round);
        let c = &self.counters;
        c.lines.fetch_add(round.lines, Ordering::Relaxed);
        c.failures.fetch_add(round.failures, Ordering::Relaxed);
        c.skipped.fetch_add(round.skipped, Ordering::Relaxed);
        c.ignored.fetch_add(round.ignored, Ordering::Relaxed);
        if too_long > self.too_long {
            self.counters
                .skipped
                .fetch_add(too_long - self.too_long, Ordering::Relaxed);
            self.too_long = too_long;
        }
        if positions != self.last_positions.as_slice() {
            self.last_positions = positions.to_vec();
            let _ = self
                .events
                .blocking_send(Event::Checkpoint(positions.to_vec()));
        }
    }
}

/// How sources are run (settable for tests).
#[derive(Debug, Clone)]
pub struct SourceOptions {
    pub journalctl: PathBuf,
    pub poll_interval: Duration,
    pub max_line: usize,
}

impl Default for SourceOptions {
    fn default() -> SourceOptions {
        SourceOptions {
            journalctl: "journalctl".into(),
            poll_interval: Duration::from_secs(1),
            max_line: crate::filter::MAX_LINE,
        }
    }
}

/// A running source of one jail.
pub struct RunningSource {
    pub jail: JailName,
    pub counters: Arc<SourceCounters>,
    handle: SourceHandle,
}

impl RunningSource {
    pub fn stop(self) {
        self.handle.stop();
    }
}

/// Starts the sources of every enabled log jail, resuming from `positions`.
pub fn start_sources(
    config: &Config,
    positions: &HashMap<String, Position>,
    events: &mpsc::Sender<Event>,
    options: &SourceOptions,
) -> Vec<RunningSource> {
    let mut running = Vec::new();
    for jail in config.enabled() {
        let JailKind::Log { filter, source } = &jail.kind else {
            continue;
        };
        let counters = Arc::new(SourceCounters::default());
        let sink = Box::new(MatchSink {
            jail: jail.name.clone(),
            matcher: Matcher::new(filter.filter.clone()),
            events: events.clone(),
            pending: Vec::new(),
            keep_lines: jail.on_ban.is_some(),
            counters: counters.clone(),
            last_positions: Vec::new(),
            too_long: 0,
            now: None,
            round: RoundCounts::default(),
        });
        let prefix = format!("{}:", jail.name);
        let started = match source {
            Source::Files { paths, poll_only } => {
                let saved = positions
                    .iter()
                    .filter(|(k, _)| k.starts_with(&prefix))
                    .map(|(k, p)| (k.clone(), p.clone()))
                    .collect();
                let spec = FileSource {
                    jail: jail.name.to_string(),
                    patterns: paths.clone(),
                    poll_only: *poll_only,
                    poll_interval: options.poll_interval,
                    max_line: options.max_line,
                };
                files::spawn(spec, saved, sink)
            }
            Source::Journal { matches, paths } => {
                let spec = JournalSource {
                    jail: jail.name.to_string(),
                    matches: matches.clone(),
                    paths: paths.clone(),
                    journalctl: options.journalctl.clone(),
                };
                let cursor = match positions.get(&spec.key()) {
                    Some(Position::Journal { cursor }) => Some(cursor.clone()),
                    _ => None,
                };
                journal::spawn(spec, cursor, sink)
            }
        };
        match started {
            Ok(handle) => running.push(RunningSource {
                jail: jail.name.clone(),
                counters,
                handle,
            }),
            Err(e) => tracing::error!(jail = %jail.name, error = %e, "cannot start the log source"),
        }
    }
    running
}
