//! Running a jail's filter on its source's thread, and starting and stopping sources.
//!
//! Receives raw items from a source (on the source's own thread); emits [`Event`]s to the core:
//! failures in batches (one channel message per read round, not per line), checkpoints of the
//! positions reached, and, when the source's thread ends for whatever reason, a last
//! [`Event::Stopped`] with its final positions. Matching here spreads the regex work over the
//! source threads, so the core only ever sees failures. A running source keeps its reader across
//! reloads; a new filter is handed to it and taken up between two read rounds. Counters (lines,
//! failures, skipped) are shared with the core through atomics for `status` and metrics. It never
//! decides anything about an address, and never re-reads what it read: a source's position is
//! its own while it runs, and is handed back in `Stopped` when it ends.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use crate::config::{JailConfig, JailKind, Source};
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
    /// A source's thread ended: `positions` are where it stopped (checkpointed already).
    Stopped {
        jail: JailName,
        id: u64,
        positions: Vec<(String, Position)>,
    },
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

/// A filter handed to a running source by a reload, taken up between two read rounds.
type NextMatcher = Arc<Mutex<Option<(Matcher, bool)>>>;

/// The sink of one jail's source: filter in, events out.
struct MatchSink {
    jail: JailName,
    id: u64,
    matcher: Matcher,
    next: NextMatcher,
    /// The positions of the last checkpoint, shared for `status`.
    shared_positions: Arc<Mutex<Vec<(String, Position)>>>,
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
        send(
            &self.events,
            Event::Failures {
                jail: self.jail.clone(),
                failures,
            },
        );
    }
}

/// Sends from a source's thread, waiting for room (back-pressure). A sink dropped on the
/// runtime's own thread (a source that could not start) must not block it: there, try once.
fn send(events: &mpsc::Sender<Event>, event: Event) {
    if tokio::runtime::Handle::try_current().is_ok() {
        let _ = events.try_send(event);
    } else {
        let _ = events.blocking_send(event);
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
        if let Ok(mut next) = self.next.try_lock()
            && let Some((matcher, keep_lines)) = next.take()
        {
            self.matcher = matcher;
            self.keep_lines = keep_lines;
        }
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
            if let Ok(mut shared) = self.shared_positions.lock() {
                shared.clone_from(&self.last_positions);
            }
            send(&self.events, Event::Checkpoint(positions.to_vec()));
        }
    }
}

impl Drop for MatchSink {
    /// The source's thread is ending (stopped, or panicked): what it read is handled, and its
    /// final positions go back to the core, which may start it again from there.
    fn drop(&mut self) {
        self.flush();
        send(
            &self.events,
            Event::Stopped {
                jail: self.jail.clone(),
                id: self.id,
                positions: std::mem::take(&mut self.last_positions),
            },
        );
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
    pub id: u64,
    pub jail: JailName,
    /// What it reads: a reload keeps the source when this is unchanged.
    pub spec: Source,
    pub counters: Arc<SourceCounters>,
    /// The positions of its last checkpoint.
    pub positions: Arc<Mutex<Vec<(String, Position)>>>,
    next: NextMatcher,
    handle: SourceHandle,
}

impl RunningSource {
    /// Hands the source the filter of a new configuration; taken up after its current round.
    pub fn set_filter(&self, jail: &JailConfig) {
        if let JailKind::Log { filter, .. } = &jail.kind {
            let next = (Matcher::new(filter.filter.clone()), jail.on_ban.is_some());
            if let Ok(mut slot) = self.next.lock() {
                *slot = Some(next);
            }
        }
    }

    /// Asks the source to stop after its current round; its thread is reaped in the background
    /// and its `Stopped` event says when it is done.
    pub fn stop(self) {
        if let Some(thread) = self.handle.signal() {
            std::thread::Builder::new()
                .name("source-reaper".into())
                .spawn(move || {
                    let _ = thread.join();
                })
                .map(drop)
                .unwrap_or_else(|e| tracing::warn!(error = %e, "cannot reap a stopped source"));
        }
    }
}

/// Starts the source of one enabled log jail with an id of its own, resuming from `positions`
/// (the ones under its keys are used). `None` for a jail that reads no log, or when it cannot
/// start (logged).
pub fn start_source(
    jail: &JailConfig,
    id: u64,
    positions: &HashMap<String, Position>,
    events: &mpsc::Sender<Event>,
    options: &SourceOptions,
) -> Option<RunningSource> {
    let JailKind::Log { filter, source } = &jail.kind else {
        return None;
    };
    let counters = Arc::new(SourceCounters::default());
    let shared_positions = Arc::new(Mutex::new(Vec::new()));
    let next: NextMatcher = Arc::default();
    let sink = Box::new(MatchSink {
        jail: jail.name.clone(),
        id,
        matcher: Matcher::new(filter.filter.clone()),
        next: next.clone(),
        shared_positions: shared_positions.clone(),
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
        Ok(handle) => Some(RunningSource {
            id,
            jail: jail.name.clone(),
            spec: source.clone(),
            counters,
            positions: shared_positions,
            next,
            handle,
        }),
        Err(e) => {
            tracing::error!(jail = %jail.name, error = %e, "cannot start the log source");
            None
        }
    }
}
