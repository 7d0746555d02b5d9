//! The filter stage: a jail's filter (core's native [`Matcher`] or a fail2ban filter, see
//! [`engine`]) run on its source's thread and on a filter thread of its own.
//!
//! Receives raw items from a source (on the source's own thread, which screens them, see
//! [`ScreenSink`]); emits [`Event`]s to the core from the filter thread, which matches what was
//! screened ([`MatchSink`]): failures in batches (one channel message per read round, not per
//! line), checkpoints of the positions reached, and, when the source's thread ends for whatever
//! reason, a last [`Event::Stopped`] with its final positions. Matching here spreads the regex
//! work over the sources' and filter threads, so the core only ever sees failures. A running source keeps its reader across
//! reloads; a new filter is handed to it and taken up between two read rounds. Counters (lines,
//! failures, skipped) are shared with the core through atomics for `status` and metrics. It never
//! decides anything about an address, and never re-reads what it read: a source's position is
//! its own while it runs, and is handed back in `Stopped` when it ends.

pub mod engine;
pub mod pipe;
pub mod zone;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use crate::config::{JailConfig, JailKind};
use crate::source::{Item, Sink};
use crate::state::Position;
use engine::{AnyMatcher, AnyScreener};
use nftjail_core::filter::{Failure, Outcome, ScreenedLines};
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

/// The half of the filter stage on the reading thread: the source's [`Sink`]. It screens each
/// line (the checks that need no rule's regex, see [`AnyScreener`]) and hands the lines left, in
/// batches, to the stage's filter thread, which runs the rules ([`MatchSink`]). A filter's work
/// is so spread over two cores: the thread that reads, splits and screens the lines is not the
/// one that matches them. Checkpoints and a reload's new filter travel down the same channel,
/// in order, so every batch is finished by the filter that screened it, and positions are
/// reported only after the lines before them are matched.
struct ScreenSink {
    jail: JailName,
    screener: AnyScreener,
    batch: ScreenedLines,
    /// What this round's lines decided here counted.
    round: RoundCounts,
    next: NextMatcher,
    /// `None` once dropped (the filter thread then ends).
    to_filter: Option<pipe::Sender<ToFilter, ScreenedLines>>,
    filter_thread: Option<std::thread::JoinHandle<()>>,
}

/// What the reading thread hands the filter thread, in the order it read.
enum ToFilter {
    Lines(ScreenedLines),
    /// The end of a read round.
    Checkpoint {
        positions: Vec<(String, Position)>,
        too_long: u64,
        screened: RoundCounts,
    },
    /// A reload's new filter, for the lines after (boxed: rare, and large).
    Filter(Box<NextFilter>),
}

impl ScreenSink {
    fn send(&mut self, message: ToFilter) {
        let sent = self
            .to_filter
            .as_ref()
            .map(|tx| tx.send(message).map_err(drop));
        if let Some(Err(())) = sent {
            // Its thread panicked (it told the core, with its last positions, as it ended):
            // this source ends too, and the core starts it again from there.
            panic!("the filter thread of jail {} ended", self.jail);
        }
    }

    fn send_batch(&mut self) {
        let Some(to_filter) = &self.to_filter else {
            return;
        };
        if self.batch.is_empty() {
            return;
        }
        let full = std::mem::replace(&mut self.batch, to_filter.spare());
        self.send(ToFilter::Lines(full));
        // The next batch: searched here too while the filter thread is behind.
        let behind = self.to_filter.as_ref().is_some_and(pipe::Sender::behind);
        self.screener.search_ahead(behind);
    }
}

impl Sink for ScreenSink {
    fn item(&mut self, item: Item<'_>) {
        self.round.lines += 1;
        let decided = match item {
            Item::Line(line) => self.screener.line(line, &mut self.batch),
            Item::Journal(entry) => self.screener.journal(&entry, &mut self.batch),
        };
        match decided {
            None => {
                if self.batch.bytes() >= pipe::BATCH_BYTES {
                    self.send_batch();
                }
            }
            Some(Outcome::Skipped(reason)) => {
                tracing::trace!(jail = %self.jail, reason = %reason, "line skipped");
                self.round.skipped += 1;
            }
            // Only a rule's regex finds a failure, ignores a line or finds it too old.
            Some(_) => {}
        }
    }

    fn checkpoint(&mut self, positions: &[(String, Position)], too_long: u64) {
        self.send_batch();
        let screened = std::mem::take(&mut self.round);
        self.send(ToFilter::Checkpoint {
            positions: positions.to_vec(),
            too_long,
            screened,
        });
        let next = self.next.try_lock().ok().and_then(|mut next| next.take());
        if let Some(next) = next {
            self.screener = next.matcher.screener();
            self.send(ToFilter::Filter(Box::new(next)));
        }
    }
}

impl Drop for ScreenSink {
    /// The source's thread is ending: the lines it screened are finished, then the filter
    /// thread ends and tells the core (see [`MatchSink`]'s drop). Waited for, but not on the
    /// runtime's own thread (a source that could not start), which must never block.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.send_batch();
        }
        self.to_filter = None;
        if tokio::runtime::Handle::try_current().is_err()
            && let Some(thread) = self.filter_thread.take()
        {
            let _ = thread.join();
        }
    }
}

/// The filter thread: finishes the batches, checkpoints and filters it is handed, in order,
/// until the reading thread drops its end; then drops `sink`, which tells the core.
fn finish_batches(mut sink: MatchSink, from_reader: pipe::Receiver<ToFilter, ScreenedLines>) {
    while let Some(message) = from_reader.recv() {
        match message {
            ToFilter::Lines(mut lines) => {
                sink.lines(&lines);
                lines.clear();
                from_reader.give_back(lines);
            }
            ToFilter::Checkpoint {
                positions,
                too_long,
                screened,
            } => sink.checkpoint(positions, too_long, screened),
            ToFilter::Filter(next) => {
                sink.matcher = next.matcher;
                sink.findtime = next.findtime;
            }
        }
    }
}

/// The filter thread's half of the stage: the rules on the screened lines, events out.
struct MatchSink {
    jail: JailName,
    id: u64,
    matcher: AnyMatcher,
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
#[derive(Debug, Default)]
struct RoundCounts {
    lines: u64,
    failures: u64,
    skipped: u64,
    ignored: u64,
    too_old: u64,
}

impl RoundCounts {
    fn add(&mut self, other: &RoundCounts) {
        self.lines += other.lines;
        self.failures += other.failures;
        self.skipped += other.skipped;
        self.ignored += other.ignored;
        self.too_old += other.too_old;
    }
}

impl MatchSink {
    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        // The next batch starts with room for as many failures as this one (at most
        // FAILURE_BATCH: no regrowth, copy after copy, under a steady flood; a quiet round's
        // batch stays small). Its lines' buffer grows from empty: it may reach a megabyte,
        // which an idle jail should not keep.
        let room = self.pending.len();
        let failures = std::mem::replace(&mut self.pending, Vec::with_capacity(room));
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

impl MatchSink {
    /// Finishes a batch of lines the reading thread screened.
    fn lines(&mut self, lines: &ScreenedLines) {
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
        for index in 0..lines.len() {
            match self.matcher.finish(lines, index, now) {
                Outcome::Failure(f) => {
                    tracing::debug!(jail = %self.jail, ip = %f.host, user = f.user.as_deref().unwrap_or(""), "match");
                    self.round.failures += 1;
                    // Kept for the ban log and `on_ban` hooks (the core keeps a bounded few),
                    // while the lines on their way to the core stay within the budget.
                    let text = lines.text(index);
                    let in_flight =
                        self.lines_in_flight.load(Ordering::Relaxed) + self.pending_lines.len();
                    let line = (in_flight + text.len() <= LINES_IN_FLIGHT).then(|| {
                        let start = self.pending_lines.len();
                        self.pending_lines.push_str(text);
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
    }

    /// The end of a read round: `screened` is what the reading thread counted in it.
    fn checkpoint(
        &mut self,
        positions: Vec<(String, Position)>,
        too_long: u64,
        screened: RoundCounts,
    ) {
        self.flush();
        self.now = None;
        let mut round = std::mem::take(&mut self.round);
        round.add(&screened);
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
        if positions != self.last_positions {
            self.last_positions = positions;
            if let Ok(mut shared) = self.shared_positions.lock() {
                shared.clone_from(&self.last_positions);
            }
            send(&self.events, Event::Checkpoint(self.last_positions.clone()));
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
    let screener = matcher.screener();
    let filter = MatchSink {
        jail: jail.name.clone(),
        id,
        matcher,
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
    };
    let (to_filter, from_reader) = pipe::channel();
    let filter_thread = std::thread::Builder::new()
        .name(format!("filter-{}", jail.name))
        .spawn(move || finish_batches(filter, from_reader))
        .map_err(
            |e| tracing::error!(jail = %jail.name, error = %e, "cannot start the filter thread"),
        )
        .ok()?;
    let sink = Box::new(ScreenSink {
        jail: jail.name.clone(),
        screener,
        batch: ScreenedLines::default(),
        round: RoundCounts::default(),
        next: next.clone(),
        to_filter: Some(to_filter),
        filter_thread: Some(filter_thread),
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
        // The filter thread sends them as it finishes its batches.
        while failures < 20_000 {
            if let Event::Failures {
                failures: batch,
                lines,
                ..
            } = next_event(&mut rx)
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
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(rx.try_recv().is_err(), "no more events");
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
        let Event::Failures {
            failures, lines, ..
        } = next_event(&mut rx)
        else {
            panic!("no failure");
        };
        assert_eq!(
            lines.line(&failures[0]),
            Some(line(20_000).as_str()),
            "the line, whole"
        );
    }

    /// A reload's filter applies from the read round after it, exactly: the lines read before
    /// it are matched by the old filter (on both threads), those after by the new, and every
    /// checkpoint comes after the failures of the lines before it.
    #[test]
    fn a_new_filter_applies_from_the_round_after_the_reload() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("nftjail.toml"), "").unwrap();
        std::fs::create_dir(dir.path().join("jail.d")).unwrap();
        let jail = |mode: &str| {
            std::fs::write(
                dir.path().join("jail.d/sshd.toml"),
                format!(
                    "[sshd]\nenabled = true\nmode = \"{mode}\"\nlogpath = \"/nonexistent/auth.log\"\n"
                ),
            )
            .unwrap();
            crate::config::load(&dir.path().join("nftjail.toml"))
                .unwrap()
                .jails
                .remove(0)
        };
        let (normal, aggressive) = (jail("normal"), jail("aggressive"));
        let (tx, mut rx) = mpsc::channel(1_000);
        let (mut sink, stage) = stage(&normal, 1, &tx).unwrap();
        let stamp = chrono::Local::now().format("%b %e %H:%M:%S").to_string();
        // A failure in the aggressive mode only (a probe closed before authentication).
        let probe = |n: u32| {
            format!("{stamp} h sshd[{n}]: Connection closed by 192.0.2.{n} port 40025 [preauth]")
        };
        let position = |offset: u64| {
            vec![(
                "sshd:/nonexistent/auth.log".to_string(),
                Position::File {
                    dev: 1,
                    ino: 1,
                    offset,
                },
            )]
        };
        // Failures until the checkpoint of `offset`, which must come after them.
        let mut round = |sink: &mut Box<dyn Sink>, from: u32, offset: u64| {
            for n in from..from + 3 {
                sink.item(Item::Line(probe(n).as_bytes()));
            }
            sink.checkpoint(&position(offset), 0);
            let mut hosts = Vec::new();
            loop {
                match next_event(&mut rx) {
                    Event::Failures { failures, .. } => {
                        hosts.extend(failures.iter().map(|m| m.failure.host.to_string()))
                    }
                    Event::Checkpoint(positions) => {
                        assert_eq!(positions, position(offset));
                        return hosts;
                    }
                    Event::Stopped { .. } => panic!("stopped"),
                }
            }
        };
        assert!(round(&mut sink, 1, 10).is_empty(), "normal: no failure");
        stage.set_filter(&aggressive);
        // Taken up at the end of this round: its lines are still the old filter's.
        assert!(
            round(&mut sink, 4, 20).is_empty(),
            "the round of the reload"
        );
        assert_eq!(
            round(&mut sink, 7, 30),
            ["192.0.2.7", "192.0.2.8", "192.0.2.9"],
            "the round after: aggressive"
        );
        drop(sink);
        assert!(matches!(next_event(&mut rx), Event::Stopped { id: 1, .. }));
    }

    /// The next event the stage sends (from its filter thread), within 10 s.
    fn next_event(rx: &mut mpsc::Receiver<Event>) -> Event {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match rx.try_recv() {
                Ok(event) => return event,
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Err(e) => panic!("no event: {e}"),
            }
        }
    }
}
