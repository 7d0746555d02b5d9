//! The ban history: what `nftjail log` shows — every ban, unban and expiry, kept for
//! `dbpurgeage`.
//!
//! Receives [`BanEvent`]s as bans take effect and end (from the daemon's core), the events
//! replayed from the state log at start, and the clock; emits the events a query asks for, in
//! the order they happened, each with a sequence number a follower (`nftjail log --follow`)
//! resumes from. Bounded three ways: events older than the retention are dropped, at most
//! [`MAX_EVENTS`] are kept (the oldest go first), and only the newest [`MAX_WITH_LINES`] keep
//! their matched log lines — the last [`MAX_LINES`] of them, each cut to [`MAX_LINE_KEPT`]
//! bytes (log lines are the attacker's text): at most 5 MB of lines whatever comes. Never does
//! I/O: the daemon writes each event to the state log itself.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::addr::BanTarget;
use crate::jail::JailName;
use crate::tracker::{Ban, Origin};

/// The most events kept, whatever the retention (about 1.2 MB without their lines).
pub const MAX_EVENTS: usize = 10_000;
/// Only this many of the newest events keep their matched lines.
pub const MAX_WITH_LINES: usize = 1_000;
/// An event keeps at most its last this many lines.
pub const MAX_LINES: usize = 10;
/// A matched line longer than this is cut (at a character boundary) and marked with `…`.
pub const MAX_LINE_KEPT: usize = 512;

/// What happened to a ban.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventAction {
    /// A new ban (failures, by hand, recidive), or a ban refreshed by a new decision.
    Ban,
    /// Lifted before its time (`nftjail unban`, or replaced by a wider prefix).
    Unban,
    /// Ran out.
    Expire,
}

/// One entry of the ban history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanEvent {
    /// Increases by one with every event, across restarts.
    pub seq: u64,
    /// When it happened (Unix seconds).
    pub at: i64,
    pub action: EventAction,
    pub jail: JailName,
    pub target: BanTarget,
    /// The ban's start and end (`None`: permanent).
    pub since: i64,
    pub expires: Option<i64>,
    /// The target's ban count, as escalation counted it.
    pub count: u32,
    pub origin: Origin,
    /// The log lines that led to the ban (bans from failures, while kept).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<String>,
}

impl BanEvent {
    /// An event of `ban` at `at` (its sequence number is given by [`BanLog::record`]).
    pub fn of(action: EventAction, ban: &Ban, at: i64, lines: Vec<String>) -> BanEvent {
        BanEvent {
            seq: 0,
            at,
            action,
            jail: ban.jail.clone(),
            target: ban.target,
            since: ban.since,
            expires: ban.expires,
            count: ban.count,
            origin: ban.origin.clone(),
            lines,
        }
    }

    /// The ban's length in seconds (`None`: permanent).
    pub fn length(&self) -> Option<u64> {
        self.expires
            .map(|e| u64::try_from(e - self.since).unwrap_or(0))
    }
}

/// Which events a query wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// Only those with a greater sequence number (a follower's last one).
    pub after: Option<u64>,
    /// Only those at or after this instant (Unix seconds).
    pub since: Option<i64>,
    pub jail: Option<JailName>,
}

/// The ban history, oldest first.
#[derive(Debug)]
pub struct BanLog {
    events: VecDeque<BanEvent>,
    /// The sequence number of the last event ever recorded (kept when events are dropped).
    last_seq: u64,
    /// Seconds events are kept.
    retention: u64,
}

impl BanLog {
    pub fn new(retention: u64) -> BanLog {
        BanLog {
            events: VecDeque::new(),
            last_seq: 0,
            retention,
        }
    }

    pub fn set_retention(&mut self, retention: u64) {
        self.retention = retention;
    }

    /// Takes the events replayed from the state log, in log order. An event already known (a
    /// sequence number not above the last one: written again after a compaction that already
    /// held it) is skipped.
    pub fn restore(&mut self, events: impl IntoIterator<Item = BanEvent>, now: i64) {
        for event in events {
            if event.seq > self.last_seq {
                self.last_seq = event.seq;
                self.push(event);
            }
        }
        self.sweep(now);
    }

    /// Records `event` with the next sequence number; returns it as kept (lines cut).
    pub fn record(&mut self, mut event: BanEvent) -> &BanEvent {
        self.last_seq += 1;
        event.seq = self.last_seq;
        let extra = event.lines.len().saturating_sub(MAX_LINES);
        event.lines.drain(..extra);
        for line in &mut event.lines {
            cut_line(line);
        }
        self.push(event);
        self.events.back().expect("invariant: just pushed")
    }

    fn push(&mut self, event: BanEvent) {
        self.events.push_back(event);
        while self.events.len() > MAX_EVENTS {
            self.events.pop_front();
        }
        // Only the newest MAX_WITH_LINES keep their lines: drop those of the one that just
        // fell out of that window.
        if let Some(i) = self.events.len().checked_sub(MAX_WITH_LINES + 1) {
            self.events[i].lines = Vec::new();
        }
    }

    /// Forgets events older than the retention.
    pub fn sweep(&mut self, now: i64) {
        let horizon = now.saturating_sub(i64::try_from(self.retention).unwrap_or(i64::MAX));
        while self.events.front().is_some_and(|e| e.at < horizon) {
            self.events.pop_front();
        }
    }

    /// The events `query` asks for, oldest first.
    pub fn query<'a>(&'a self, query: &'a Query) -> impl Iterator<Item = &'a BanEvent> + 'a {
        // Sequence numbers increase along the deque: skip what a follower has seen at once.
        let start = query
            .after
            .map_or(0, |after| self.events.partition_point(|e| e.seq <= after));
        self.events
            .range(start..)
            .filter(move |e| query.since.is_none_or(|s| e.at >= s))
            .filter(move |e| query.jail.as_ref().is_none_or(|j| e.jail == *j))
    }

    /// Every event kept, oldest first (for the state log's compaction).
    pub fn events(&self) -> impl Iterator<Item = &BanEvent> {
        self.events.iter()
    }

    /// The sequence number of the last event recorded (0 before the first).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// Cuts `line` to [`MAX_LINE_KEPT`] bytes at a character boundary, marking the cut.
pub fn cut_line(line: &mut String) {
    if let Some(end) = cut_at(line, MAX_LINE_KEPT) {
        line.truncate(end);
        line.push('…');
    }
}

/// Appends `line` to `lines`, keeping the last `keep` (at least 1), cut as [`cut_line`] cuts
/// when `cut`. Once `lines` holds `keep`, the oldest line's buffer takes the newest: a line kept
/// this way costs no allocation and no free, and a cut line is cut before it is copied, so a
/// long one never grows a buffer past what is kept. A ring, so the lines kept do not move: the
/// daemon does this for every counted failure, of up to 10,000 addresses whose lines are
/// mostly out of cache. Returns the bytes of the lines it dropped.
pub fn keep_recent(lines: &mut VecDeque<String>, line: &str, keep: usize, cut: bool) -> usize {
    let full = (lines.len() + 1).saturating_sub(keep.max(1));
    let (mut buffer, mut dropped) = (String::new(), 0);
    for old in lines.drain(..full) {
        dropped += old.len();
        buffer = old;
    }
    buffer.clear();
    match cut_at(line, MAX_LINE_KEPT).filter(|_| cut) {
        Some(end) => {
            buffer.push_str(&line[..end]);
            buffer.push('…');
        }
        None => buffer.push_str(line),
    }
    lines.push_back(buffer);
    dropped
}

/// Where to cut `line` to at most `max` bytes, if it is longer: the last character boundary at
/// or before `max` ([`cut_line`] cuts at [`MAX_LINE_KEPT`]).
pub fn cut_at(line: &str, max: usize) -> Option<usize> {
    if line.len() <= max {
        return None;
    }
    let mut end = max;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    Some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_recent_keeps_the_last_lines_cut_and_in_order() {
        let mut lines = VecDeque::new();
        for n in 0..25 {
            let dropped = keep_recent(&mut lines, &format!("line {n}"), 10, true);
            let want = if n < 10 {
                0
            } else {
                format!("line {}", n - 10).len()
            };
            assert_eq!(dropped, want, "line {n}");
        }
        let expected: Vec<String> = (15..25).map(|n| format!("line {n}")).collect();
        assert_eq!(lines, expected);
        // Fewer kept after a reload: the oldest go.
        assert_eq!(
            keep_recent(&mut lines, "line 25", 3, true),
            8 * "line 15".len()
        );
        assert_eq!(lines, ["line 23", "line 24", "line 25"]);
        keep_recent(&mut lines, "only", 0, true);
        assert_eq!(lines, ["only"], "at least one line is kept");

        // Cut at a character boundary (é is two bytes across the limit), marked; the buffer
        // of a reused line does not grow to the attacker's length.
        let long = format!("{}é{}", "a".repeat(MAX_LINE_KEPT - 1), "b".repeat(10_000));
        keep_recent(&mut lines, &long, 1, true);
        assert_eq!(lines[0], format!("{}…", "a".repeat(MAX_LINE_KEPT - 1)));
        assert!(
            lines[0].capacity() < 2 * MAX_LINE_KEPT,
            "{}",
            lines[0].capacity()
        );
        let mut whole = lines.clone();
        keep_recent(&mut whole, &long, 1, false);
        assert_eq!(
            whole,
            std::slice::from_ref(&long),
            "a hook gets the whole line"
        );
        let mut cut = long;
        cut_line(&mut cut);
        assert_eq!(cut, lines[0], "cut as cut_line cuts");
    }

    fn ban(jail: &str, target: &str, since: i64) -> Ban {
        Ban {
            jail: jail.parse().unwrap(),
            target: target.parse().unwrap(),
            since,
            expires: Some(since + 3_600),
            count: 1,
            origin: Origin::Failures,
        }
    }

    fn seqs<'a>(events: impl Iterator<Item = &'a BanEvent>) -> Vec<u64> {
        events.map(|e| e.seq).collect()
    }

    #[test]
    fn queries_by_sequence_time_and_jail() {
        let mut log = BanLog::new(86_400);
        let t = 1_800_000_000;
        log.record(BanEvent::of(
            EventAction::Ban,
            &ban("sshd", "192.0.2.1", t),
            t,
            vec![],
        ));
        log.record(BanEvent::of(
            EventAction::Ban,
            &ban("postfix", "192.0.2.2", t),
            t + 10,
            vec![],
        ));
        log.record(BanEvent::of(
            EventAction::Unban,
            &ban("sshd", "192.0.2.1", t),
            t + 20,
            vec![],
        ));
        let all = Query::default();
        assert_eq!(seqs(log.query(&all)), [1, 2, 3]);
        let after = Query {
            after: Some(2),
            ..Query::default()
        };
        assert_eq!(seqs(log.query(&after)), [3]);
        let since = Query {
            since: Some(t + 10),
            ..Query::default()
        };
        assert_eq!(seqs(log.query(&since)), [2, 3]);
        let jail = Query {
            jail: Some("sshd".parse().unwrap()),
            ..Query::default()
        };
        assert_eq!(seqs(log.query(&jail)), [1, 3]);
        assert_eq!(log.last_seq(), 3);
    }

    #[test]
    fn bounded_by_retention_count_and_line_length() {
        let mut log = BanLog::new(600);
        let t = 1_800_000_000;
        let long = "x".repeat(MAX_LINE_KEPT + 10) + "é";
        let mut lines: Vec<String> = (0..MAX_LINES + 2).map(|i| i.to_string()).collect();
        lines.push(long);
        log.record(BanEvent::of(
            EventAction::Ban,
            &ban("sshd", "192.0.2.1", t),
            t,
            lines,
        ));
        let kept = &log.events().next().unwrap().lines;
        assert_eq!(kept.len(), MAX_LINES, "the last lines");
        assert_eq!(kept[0], "3");
        let cut = kept.last().unwrap();
        assert!(cut.len() <= MAX_LINE_KEPT + '…'.len_utf8() && cut.ends_with('…'));
        log.sweep(t + 600);
        assert_eq!(log.len(), 1, "exactly the retention: kept");
        log.sweep(t + 601);
        assert!(log.is_empty());
        assert_eq!(log.last_seq(), 1, "sequence numbers go on");

        let mut log = BanLog::new(u64::MAX);
        for i in 0..(MAX_EVENTS + 3) as i64 {
            log.record(BanEvent::of(
                EventAction::Ban,
                &ban("sshd", "192.0.2.1", t),
                t + i,
                vec!["line".into()],
            ));
        }
        assert_eq!(log.len(), MAX_EVENTS);
        assert_eq!(log.events().next().unwrap().seq, 4, "the oldest went first");
        let with_lines = log.events().filter(|e| !e.lines.is_empty()).count();
        assert_eq!(with_lines, MAX_WITH_LINES);
        assert!(log.events().last().unwrap().lines == ["line"]);
    }

    #[test]
    fn a_replay_skips_events_written_twice() {
        let t = 1_800_000_000;
        let mut first = BanLog::new(86_400);
        for i in 0..3 {
            first.record(BanEvent::of(
                EventAction::Ban,
                &ban("sshd", "192.0.2.1", t),
                t + i,
                vec![],
            ));
        }
        let written: Vec<BanEvent> = first.events().cloned().collect();
        // A compaction wrote all three, then the records queued behind it came again.
        let replay = written.iter().chain(&written[1..]).cloned();
        let mut log = BanLog::new(86_400);
        log.restore(replay, t + 5);
        assert_eq!(seqs(log.events()), [1, 2, 3]);
        let next = log.record(BanEvent::of(
            EventAction::Expire,
            &ban("sshd", "192.0.2.1", t),
            t + 9,
            vec![],
        ));
        assert_eq!(next.seq, 4);
    }
}
