//! The filter stage: a jail's filter (core's native [`Matcher`] or a fail2ban filter, see
//! [`engine`]) run on its source's thread.
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

pub mod engine;
pub mod zone;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use crate::config::{JailConfig, JailKind};
use crate::source::{Item, Sink};
use crate::state::Position;
use engine::AnyMatcher;
use nftjail_core::filter::{Failure, Outcome};
use nftjail_core::jail::JailName;

/// Failures of one round are sent together; a round that finds more sends every this many.
const FAILURE_BATCH: usize = 512;
/// Bytes of matched lines one source may have on their way to the core. Beyond it failures go
/// without their line: under a flood the channel holds 1024 batches of 512 failures, and their
/// lines (kept for the ban log and `on_ban` hooks) would take tens of megabytes; in normal
/// operation the channel is nearly empty and every line gets through.
const LINES_IN_FLIGHT: usize = 1 << 20;

/// What sources tell the core.
#[derive(Debug)]
pub enum Event {
    Failures {
        jail: JailName,
        failures: Vec<Matched>,
        /// The bytes of the lines these failures carry, to give back to their source's budget
        /// once they are taken in ([`LineBudget::release`]).
        lines: LineBudget,
    },
    Checkpoint(Vec<(String, Position)>),
    /// A source's thread ended: `positions` are where it stopped (checkpointed already).
    Stopped {
        jail: JailName,
        id: u64,
        positions: Vec<(String, Position)>,
    },
}

/// A failure, with its log line (for the ban log and `on_ban` hooks) while its source's budget
/// of lines in flight allows.
#[derive(Debug)]
pub struct Matched {
    pub failure: Failure,
    /// Where its line is in the batch's [`LineBudget`] text.
    line: Option<(usize, usize)>,
}

/// The lines a batch of failures carries, one after the other in one buffer (one allocation
/// per batch, not one per line), and the budget of their source they count in.
#[derive(Debug)]
pub struct LineBudget {
    text: String,
    in_flight: Arc<AtomicUsize>,
    /// Bytes still counted in the source's budget (0 once released).
    counted: usize,
}

impl LineBudget {
    /// The core took the batch in: its lines no longer count as in flight.
    pub fn release(&mut self) {
        self.in_flight
            .fetch_sub(std::mem::take(&mut self.counted), Ordering::Relaxed);
    }

    /// The line `matched` carries, if its source's budget let it carry one.
    pub fn line(&self, matched: &Matched) -> Option<&str> {
        matched
            .line
            .and_then(|(start, end)| self.text.get(start..end))
    }
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
    /// Lines that might have been failures but were logged more than `findtime` ago (a log
    /// read back from its start): skipped without a regex, never counted.
    pub too_old: AtomicU64,
}

/// A filter handed to a running source by a reload, taken up between two read rounds.
type NextMatcher = Arc<Mutex<Option<NextFilter>>>;

/// What a reload hands a running source.
struct NextFilter {
    matcher: AnyMatcher,
    findtime: i64,
}

/// The sink of one jail's source: filter in, events out.
struct MatchSink {
    jail: JailName,
    id: u64,
    matcher: AnyMatcher,
    next: NextMatcher,
    /// The positions of the last checkpoint, shared for `status`.
    shared_positions: Arc<Mutex<Vec<(String, Position)>>>,
    events: mpsc::Sender<Event>,
    pending: Vec<Matched>,
    /// The lines of the failures in `pending`, one after the other.
    pending_lines: String,
    /// Bytes of lines sent to the core and not taken in yet (the core releases them).
    lines_in_flight: Arc<AtomicUsize>,
    /// The jail's findtime (seconds): lines older than it cannot count and are skipped early.
    findtime: i64,
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
    too_old: u64,
}

impl MatchSink {
    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let failures = std::mem::take(&mut self.pending);
        let text = std::mem::take(&mut self.pending_lines);
        let counted = text.len();
        self.lines_in_flight.fetch_add(counted, Ordering::Relaxed);
        // A closed channel means the daemon is stopping: nothing is left to tell.
        send(
            &self.events,
            Event::Failures {
                jail: self.jail.clone(),
                failures,
                lines: LineBudget {
                    text,
                    in_flight: self.lines_in_flight.clone(),
                    counted,
                },
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
        let now = match self.now {
            Some(now) => now,
            None => {
                let now = Utc::now();
                self.now = Some(now);
                self.matcher
                    .set_not_before(Some(now.timestamp().saturating_sub(self.findtime)));
                now
            }
        };
        self.round.lines += 1;
        let (outcome, text, clean) = match item {
            Item::Line(line) => {
                let (outcome, clean) = self.matcher.feed_line_text(line, now);
                (outcome, line, clean)
            }
            Item::Journal(j) => (self.matcher.feed_journal(&j, now), j.message, None),
        };
        match outcome {
            Outcome::Failure(f) => {
                tracing::debug!(jail = %self.jail, ip = %f.host, user = f.user.as_deref().unwrap_or(""), "match");
                self.round.failures += 1;
                // Kept for the ban log and `on_ban` hooks (the core keeps a bounded few), while
                // the lines on their way to the core stay within the budget.
                let in_flight =
                    self.lines_in_flight.load(Ordering::Relaxed) + self.pending_lines.len();
                let line = (in_flight + text.len() <= LINES_IN_FLIGHT).then(|| {
                    let start = self.pending_lines.len();
                    // A clean line was validated by the matcher already.
                    match clean {
                        Some(clean) => self.pending_lines.push_str(clean),
                        None => self.pending_lines.push_str(&String::from_utf8_lossy(text)),
                    }
                    (start, self.pending_lines.len())
                });
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
            Outcome::TooOld => self.round.too_old += 1,
            Outcome::NoMatch => {}
        }
    }

    fn checkpoint(&mut self, positions: &[(String, Position)], too_long: u64) {
        self.flush();
        self.now = None;
        if let Ok(mut next) = self.next.try_lock()
            && let Some(next) = next.take()
        {
            self.matcher = next.matcher;
            self.findtime = next.findtime;
        }
        let round = std::mem::take(&mut self.round);
        let c = &self.counters;
        c.lines.fetch_add(round.lines, Ordering::Relaxed);
        c.failures.fetch_add(round.failures, Ordering::Relaxed);
        c.skipped.fetch_add(round.skipped, Ordering::Relaxed);
        c.ignored.fetch_add(round.ignored, Ordering::Relaxed);
        c.too_old.fetch_add(round.too_old, Ordering::Relaxed);
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

/// The core's handles on one source's filter stage: its counters, its last positions, and the
/// slot through which a reload hands it a new filter.
pub struct Stage {
    pub counters: Arc<SourceCounters>,
    /// The positions of its last checkpoint.
    pub positions: Arc<Mutex<Vec<(String, Position)>>>,
    next: NextMatcher,
}

impl Stage {
    /// Hands the stage the filter of a new configuration; taken up after its current round.
    pub fn set_filter(&self, jail: &JailConfig) {
        if let Some(matcher) = matcher(jail) {
            let next = NextFilter {
                matcher,
                findtime: findtime(jail),
            };
            if let Ok(mut slot) = self.next.lock() {
                *slot = Some(next);
            }
        }
    }
}

/// The jail's findtime in seconds, as the matcher's age limit wants it.
fn findtime(jail: &JailConfig) -> i64 {
    i64::try_from(jail.policy.findtime).unwrap_or(i64::MAX)
}

/// A matcher for `jail`'s filter, in the host's zone (followed as it changes); `None` for a jail
/// that reads no log.
fn matcher(jail: &JailConfig) -> Option<AnyMatcher> {
    match &jail.kind {
        JailKind::Log { filter, .. } => {
            let mut matcher = filter.filter.matcher(zone::system());
            // The user name of a failure is only ever shown in the debug log.
            matcher.set_users(tracing::enabled!(tracing::Level::DEBUG));
            Some(matcher)
        }
        _ => None,
    }
}

/// The filter stage of one log jail's source `id`: the sink its source thread feeds, and the
/// core's handles on it. `None` for a jail that reads no log.
pub fn stage(
    jail: &JailConfig,
    id: u64,
    events: &mpsc::Sender<Event>,
) -> Option<(Box<dyn Sink>, Stage)> {
    let matcher = matcher(jail)?;
    let counters = Arc::new(SourceCounters::default());
    let positions = Arc::new(Mutex::new(Vec::new()));
    let next: NextMatcher = Arc::default();
    let sink = Box::new(MatchSink {
        jail: jail.name.clone(),
        id,
        matcher,
        next: next.clone(),
        shared_positions: positions.clone(),
        events: events.clone(),
        pending: Vec::new(),
        pending_lines: String::new(),
        lines_in_flight: Arc::new(AtomicUsize::new(0)),
        findtime: findtime(jail),
        counters: counters.clone(),
        last_positions: Vec::new(),
        too_long: 0,
        now: None,
        round: RoundCounts::default(),
    });
    Some((
        sink,
        Stage {
            counters,
            positions,
            next,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Regression: every failure carried its line to the core, and under a flood the channel's
    // 1,024 batches of 512 failures held ~80 MB of them (benches/daemon/rss.sh: 26 → 112 MB).
    #[test]
    fn lines_on_their_way_to_the_core_stay_within_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("nftjail.toml"), "").unwrap();
        std::fs::create_dir(dir.path().join("jail.d")).unwrap();
        std::fs::write(
            dir.path().join("jail.d/sshd.toml"),
            "[sshd]\nenabled = true\nlogpath = \"/nonexistent/auth.log\"\n",
        )
        .unwrap();
        let config = crate::config::load(&dir.path().join("nftjail.toml")).unwrap();
        let (tx, mut rx) = mpsc::channel(1_000);
        let (mut sink, _stage) = stage(&config.jails[0], 1, &tx).unwrap();
        let stamp = chrono::Local::now().format("%b %e %H:%M:%S").to_string();
        let line = |n: u32| {
            format!(
                "{stamp} mail sshd[{n}]: Failed password for root from 10.0.{}.{} port 22 ssh2",
                n / 256 % 256,
                n % 256
            )
        };
        let feed = |sink: &mut Box<dyn Sink>, from: u32, to: u32| {
            for n in from..to {
                sink.item(Item::Line(line(n).as_bytes()));
            }
            sink.checkpoint(&[], 0);
        };
        feed(&mut sink, 0, 20_000);
        let mut failures = 0;
        let mut carried = 0;
        let mut budgets = Vec::new();
        while let Ok(event) = rx.try_recv() {
            if let Event::Failures {
                failures: batch,
                lines,
                ..
            } = event
            {
                failures += batch.len();
                carried += batch
                    .iter()
                    .filter_map(|m| lines.line(m))
                    .map(str::len)
                    .sum::<usize>();
                budgets.push(lines);
            }
        }
        assert_eq!(
            failures, 20_000,
            "every failure goes on, with or without its line"
        );
        assert!(
            carried <= LINES_IN_FLIGHT && carried > LINES_IN_FLIGHT / 2,
            "{carried} bytes of lines in flight"
        );
        // Once the core takes them in, lines flow again.
        budgets.iter_mut().for_each(LineBudget::release);
        feed(&mut sink, 20_000, 20_001);
        let Ok(Event::Failures {
            failures, lines, ..
        }) = rx.try_recv()
        else {
            panic!("no failure");
        };
        assert_eq!(
            lines.line(&failures[0]),
            Some(line(20_000).as_str()),
            "the line, whole"
        );
    }
}
