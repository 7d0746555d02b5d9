//! Matching in two stages, for a source that spreads a filter's work over two threads: the cheap
//! checks of every line (the prefix, the daemon, the keyword pass) on the thread that reads the
//! log, the rules and sessions of the lines they leave on another.
//!
//! Receives raw lines or journal entries (a [`Screener`], on the reading thread); emits the ones
//! that may match into a [`ScreenedLines`] batch, copied as the text they are matched as, with
//! where their parts are and which rules are left. The thread that owns the source's
//! [`Matcher`] then finishes them one by one, in the order they were read
//! ([`Matcher::finish`]). The lines the cheap checks decide (other daemons' lines, noise, lines
//! without a timestamp) never leave the reading thread: their outcome is returned at once.
//!
//! A finished line has the outcome [`Matcher::feed_line`] would have given it: both are the same
//! two halves of code ([`Front`] and the matcher's rules), only split here at the point where
//! the single-threaded path passes from one to the other. A line screened by another filter than
//! the one finishing it (a reload took a new filter up in between) is matched again from its
//! text, whole, so a batch can never be finished with another filter's candidate rules.

use std::sync::Arc;

use super::matcher::{Damage, Finder, Found, Front, Head, Readable, decode, readable};
use super::time::Stamp;
use super::{Filter, JournalEntry, Outcome};

/// The cheap checks of one source's lines, for its filter; the reading thread's half of a
/// [`Matcher`](super::Matcher) of the same filter.
#[derive(Debug)]
pub struct Screener {
    filter: Arc<Filter>,
    front: Front,
    finder: Finder,
    /// Whether the lines left are also searched (see [`search_ahead`](Self::search_ahead)).
    ahead: bool,
}

impl Screener {
    pub fn new(filter: Arc<Filter>) -> Screener {
        Screener {
            front: Front::new(&filter),
            finder: Finder::new(&filter),
            filter,
            ahead: false,
        }
    }

    /// Whether the lines left are also searched here, for the first rule that matches them
    /// and its groups, so that the thread finishing them only applies that rule and the
    /// sessions. The search is most of a failure's cost: a caller moves it to this side while
    /// the finishing side is behind, and so keeps both busy.
    pub fn search_ahead(&mut self, on: bool) {
        self.ahead = on;
    }

    /// `head` with the rules' search done, if this screener searches ahead.
    fn searched<'a>(&mut self, mut head: Head<'a>) -> Head<'a> {
        if self.ahead {
            let found = self
                .finder
                .first(&self.filter, &self.front.candidates, &head);
            head.found = Some(found);
        }
        head
    }

    /// One raw line of a file (without its newline): `Some` outcome when the cheap checks
    /// decide it, else `None` and the line is added to `into` for the rules.
    pub fn line(&mut self, line: &[u8], into: &mut ScreenedLines) -> Option<Outcome> {
        match readable(line) {
            Readable::Text(text) => match self.front.text(&self.filter, text) {
                Ok(head) => {
                    let head = self.searched(head);
                    into.push_head(
                        &self.filter,
                        text,
                        head,
                        &self.front.candidates,
                        (None, false),
                    );
                    None
                }
                Err(outcome) => Some(outcome),
            },
            Readable::Decode(bytes) => {
                let mut text = std::mem::take(&mut self.front.decoded);
                let damage = decode(bytes, &mut text);
                let outcome = match self.front.text(&self.filter, &text) {
                    Ok(head) => {
                        let head = self.searched(head);
                        let candidates = &self.front.candidates;
                        into.push_head(
                            &self.filter,
                            &text,
                            head,
                            candidates,
                            (Some(damage), false),
                        );
                        None
                    }
                    Err(outcome) => Some(damage.judge(outcome)),
                };
                self.front.decoded = text;
                outcome
            }
            Readable::Skip(reason) => Some(Outcome::Skipped(reason)),
        }
    }

    /// [`line`](Self::line) for a journal entry.
    pub fn journal(
        &mut self,
        entry: &JournalEntry<'_>,
        into: &mut ScreenedLines,
    ) -> Option<Outcome> {
        match readable(entry.message) {
            Readable::Text(message) => match self.front.journal(&self.filter, entry, message) {
                Ok(head) => {
                    let head = self.searched(head);
                    let candidates = &self.front.candidates;
                    into.push_head(&self.filter, message, head, candidates, (None, true));
                    None
                }
                Err(outcome) => Some(outcome),
            },
            Readable::Decode(bytes) => {
                let mut text = std::mem::take(&mut self.front.decoded);
                let damage = decode(bytes, &mut text);
                let outcome = match self.front.journal(&self.filter, entry, &text) {
                    Ok(head) => {
                        let head = self.searched(head);
                        let candidates = &self.front.candidates;
                        into.push_head(&self.filter, &text, head, candidates, (Some(damage), true));
                        None
                    }
                    Err(outcome) => Some(damage.judge(outcome)),
                };
                self.front.decoded = text;
                outcome
            }
            Readable::Skip(reason) => Some(Outcome::Skipped(reason)),
        }
    }
}

/// Lines on their way from a [`Screener`] to the [`Matcher`](super::Matcher) that finishes
/// them: their text one after the other in one buffer, and for each where its parts are. Made
/// once and reused (cleared) batch after batch.
#[derive(Debug, Default)]
pub struct ScreenedLines {
    /// The lines' text; a journal entry's identifier follows its message.
    text: String,
    lines: Vec<Screened>,
    /// The candidate rules of the screened lines, `width` words each.
    words: Vec<u64>,
    width: usize,
    /// The filter that screened the lines in the batch.
    filter: Option<Arc<Filter>>,
}

/// One line of a batch: `start..end` of the text is the line as it is matched.
#[derive(Debug, Clone, Copy)]
struct Screened {
    start: usize,
    end: usize,
    /// For a line that had to be decoded: how much of it was not text.
    damage: Option<Damage>,
    kind: Kind,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Passed the batch's filter's cheap checks; offsets are into the batch's text.
    Head {
        message: (usize, usize),
        tag: Option<(usize, usize)>,
        tagged: bool,
        pid: Option<u32>,
        stamp: Option<Stamp>,
        /// The rules' search, if it was done ahead.
        found: Option<Found>,
        /// Where its candidate words start.
        words: usize,
        /// A journal entry's message (its identifier is `tag`, its time `stamp`).
        journal: bool,
    },
    /// A whole line, not screened.
    Line,
    /// A whole journal entry, not screened: the text is its message.
    Journal {
        identifier: Option<(usize, usize)>,
        pid: Option<u32>,
        realtime_usec: u64,
    },
}

/// A line of a batch as a whole, for a matcher that finishes it without its screening.
#[derive(Debug, Clone, Copy)]
pub enum Whole<'a> {
    Line(&'a str),
    Journal(JournalEntry<'a>),
}

impl ScreenedLines {
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Bytes of text the batch holds.
    pub fn bytes(&self) -> usize {
        self.text.len()
    }

    /// Empties the batch, keeping its buffers.
    pub fn clear(&mut self) {
        self.text.clear();
        self.lines.clear();
        self.words.clear();
        self.filter = None;
    }

    /// Line `index` as the text it is matched as (a journal entry's message); clean text as it
    /// was read, without a trailing `\r` or a zero-filled region before it, or decoded.
    pub fn text(&self, index: usize) -> &str {
        let line = &self.lines[index];
        &self.text[line.start..line.end]
    }

    /// Adds a whole line, not screened (for a matcher that screens nothing itself).
    pub fn push_line(&mut self, text: &str) {
        self.push_whole_line(text, None);
    }

    /// Adds a whole journal entry, not screened, with `message` as its message's text.
    pub fn push_journal(&mut self, message: &str, entry: &JournalEntry<'_>) {
        self.push_whole_journal(message, entry, None);
    }

    fn push_whole_line(&mut self, text: &str, damage: Option<Damage>) {
        let start = self.text.len();
        self.text.push_str(text);
        self.lines.push(Screened {
            start,
            end: self.text.len(),
            damage,
            kind: Kind::Line,
        });
    }

    fn push_whole_journal(
        &mut self,
        message: &str,
        entry: &JournalEntry<'_>,
        damage: Option<Damage>,
    ) {
        let start = self.text.len();
        self.text.push_str(message);
        let end = self.text.len();
        let identifier = entry.identifier.map(|identifier| self.append(identifier));
        self.lines.push(Screened {
            start,
            end,
            damage,
            kind: Kind::Journal {
                identifier,
                pid: entry.pid,
                realtime_usec: entry.realtime_usec,
            },
        });
    }

    /// How much of line `index` was not text, when it had to be decoded.
    pub(super) fn damage(&self, index: usize) -> Option<Damage> {
        self.lines[index].damage
    }

    /// Line `index` whole, as it was read (decoded, if it had to be).
    pub fn whole(&self, index: usize) -> Whole<'_> {
        let line = &self.lines[index];
        let text = &self.text[line.start..line.end];
        let span = |(start, end): (usize, usize)| &self.text[start..end];
        match line.kind {
            Kind::Line | Kind::Head { journal: false, .. } => Whole::Line(text),
            Kind::Head {
                journal: true,
                tag,
                pid,
                stamp,
                ..
            } => Whole::Journal(JournalEntry {
                message: text.as_bytes(),
                identifier: tag.map(span),
                pid,
                realtime_usec: realtime_usec(stamp),
            }),
            Kind::Journal {
                identifier,
                pid,
                realtime_usec,
            } => Whole::Journal(JournalEntry {
                message: text.as_bytes(),
                identifier: identifier.map(span),
                pid,
                realtime_usec,
            }),
        }
    }

    /// Line `index`'s parts and candidate rules, if `filter` is the one that screened it.
    pub(super) fn head(&self, index: usize, filter: &Arc<Filter>) -> Option<(Head<'_>, &[u64])> {
        let Kind::Head {
            message,
            tag,
            tagged,
            pid,
            stamp,
            found,
            words,
            ..
        } = self.lines[index].kind
        else {
            return None;
        };
        if !self.filter.as_ref().is_some_and(|f| Arc::ptr_eq(f, filter)) {
            return None;
        }
        let span = |(start, end): (usize, usize)| &self.text[start..end];
        let head = Head {
            message: span(message),
            tag: tag.map(span),
            tagged,
            pid,
            stamp,
            found,
        };
        Some((head, &self.words[words..words + self.width]))
    }

    /// Adds a line that passed `filter`'s cheap checks: `text` is the line, `head` its parts
    /// (inside `text`, but for a journal entry's identifier).
    fn push_head(
        &mut self,
        filter: &Arc<Filter>,
        text: &str,
        head: Head<'_>,
        candidates: &[u64],
        (damage, journal): (Option<Damage>, bool),
    ) {
        match &self.filter {
            None => {
                self.filter = Some(filter.clone());
                self.width = candidates.len();
            }
            // Lines of two filters in one batch: this one goes whole (never with candidate
            // bits another filter would read).
            Some(screened_by) if !Arc::ptr_eq(screened_by, filter) => {
                match journal {
                    false => self.push_whole_line(text, damage),
                    true => self.push_whole_journal(
                        text,
                        &JournalEntry {
                            message: text.as_bytes(),
                            ..head.entry()
                        },
                        damage,
                    ),
                }
                return;
            }
            Some(_) => {}
        }
        let start = self.text.len();
        self.text.push_str(text);
        let end = self.text.len();
        let inside =
            |part: &str| within(text, part).map(|at| (start + at, start + at + part.len()));
        let message = inside(head.message).unwrap_or((start, end));
        let tag = head.tag.map(|tag| match inside(tag) {
            Some(span) => span,
            None => self.append(tag),
        });
        let words = self.words.len();
        self.words.extend_from_slice(candidates);
        self.lines.push(Screened {
            start,
            end,
            damage,
            kind: Kind::Head {
                message,
                tag,
                tagged: head.tagged,
                pid: head.pid,
                stamp: head.stamp,
                found: head.found,
                words,
                journal,
            },
        });
    }

    /// Appends `text` after the lines (a part that is not inside its line); its span.
    fn append(&mut self, text: &str) -> (usize, usize) {
        let start = self.text.len();
        self.text.push_str(text);
        (start, self.text.len())
    }
}

impl Head<'_> {
    /// The journal entry a journal message's head was made from (its message: the head's).
    fn entry(&self) -> JournalEntry<'_> {
        JournalEntry {
            message: self.message.as_bytes(),
            identifier: self.tag,
            pid: self.pid,
            realtime_usec: realtime_usec(self.stamp),
        }
    }
}

/// A journal entry's time again, from the stamp its head was given.
fn realtime_usec(stamp: Option<Stamp>) -> u64 {
    match stamp {
        Some(Stamp::Epoch { seconds, nanos }) => {
            u64::try_from(seconds).unwrap_or(0) * 1_000_000 + u64::from(nanos / 1000)
        }
        _ => 0,
    }
}

/// Where `part` starts in `outer`, when it is a slice of it.
fn within(outer: &str, part: &str) -> Option<usize> {
    let outer_start = outer.as_ptr() as usize;
    let part_start = part.as_ptr() as usize;
    (part_start >= outer_start && part_start + part.len() <= outer_start + outer.len())
        .then(|| part_start - outer_start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::{LocalZone, Matcher, builtin};
    use chrono::{DateTime, Utc};

    fn now() -> DateTime<Utc> {
        "2026-11-23T12:00:00Z".parse().unwrap()
    }

    /// Every line of the corpora under `tests/filters/`, and each again made dirty in the ways
    /// a log can be (a trailing `\r`, a zero-filled region before it, invalid UTF-8 and NUL
    /// bytes inside, mostly binary, too long).
    fn corpus() -> Vec<Vec<u8>> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/filters");
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        let mut lines = Vec::new();
        for path in names {
            let bytes = std::fs::read(path).unwrap();
            for line in bytes.split(|&b| b == b'\n') {
                lines.push(line.to_vec());
                let mut crlf = line.to_vec();
                crlf.push(b'\r');
                lines.push(crlf);
                lines.push([b"\0\0\0".as_slice(), line].concat());
                if let Some(at) = line.iter().rposition(|&b| b == b' ') {
                    lines.push([&line[..at], b" \xff\0", &line[at..]].concat());
                }
            }
        }
        lines.push(vec![0xff; 40]);
        // Mostly not text, yet past the keyword pass: matched, then judged by their damage.
        for junk in [[0xff; 100], [0; 100]] {
            lines.push(
                [
                    b"Nov 23 07:18:36 h sshd[1]: Invalid user ".as_slice(),
                    &junk,
                ]
                .concat(),
            );
            let failure = b"Nov 23 07:18:36 h sshd[1]: Failed password for ";
            lines.push([failure.as_slice(), &junk, b" from 192.0.2.1 port 22 ssh2"].concat());
        }
        lines.push(b"Nov 23 07:18:36 h sshd[1]: \0\x01\0\x02\0\x03\0\x04\0\x05\0".to_vec());
        lines.push(vec![b'a'; crate::filter::MAX_LINE + 1]);
        lines
    }

    /// A journal entry from a syslog line (`… TAG[PID]: MESSAGE`).
    fn entry(line: &[u8], at: u64) -> Option<JournalEntry<'_>> {
        let colon = line.windows(2).position(|w| w == b": ")?;
        let head = std::str::from_utf8(&line[..colon]).ok()?;
        let tag = head.rsplit(' ').next()?;
        let (identifier, pid) = match tag.split_once('[') {
            Some((name, pid)) => (name, pid.trim_end_matches(']').parse().ok()),
            None => (tag, None),
        };
        Some(JournalEntry {
            message: &line[colon + 2..],
            identifier: Some(identifier),
            pid,
            realtime_usec: 1_700_000_000_000_000 + at * 1_000_317,
        })
    }

    fn matchers() -> Vec<(String, Arc<Filter>)> {
        (builtin::every_mode().into_iter())
            .map(|(name, filter)| (name, Arc::new(filter)))
            .collect()
    }

    /// Counts of a [`same_outcomes`] run: lines the screener decided, lines finished, failures.
    #[derive(Default)]
    struct Work {
        decided: usize,
        finished: usize,
        failures: usize,
    }

    /// Runs `items` through `fed` (a matcher fed whole) and through a screener of `screened_by`
    /// (searching ahead two lines in three) and a matcher of `filter` that finishes its
    /// batches, of every size from 1 to 7; asserts
    /// that every item has the same outcome both ways (with two filters: every item finished,
    /// the others being the screener's filter's to decide).
    fn same_outcomes<T>(
        name: &str,
        (filter, screened_by): (&Arc<Filter>, &Arc<Filter>),
        items: &[T],
        fed: impl Fn(&mut Matcher, &T) -> (Outcome, Option<String>),
        screen: impl Fn(&mut Screener, &T, &mut ScreenedLines) -> Option<Outcome>,
        work: &mut Work,
    ) {
        let mut whole = Matcher::new(filter.clone(), LocalZone::utc());
        let mut finisher = Matcher::new(filter.clone(), LocalZone::utc());
        let mut screener = Screener::new(screened_by.clone());
        let mut batch = ScreenedLines::default();
        let (mut want, mut got) = (Vec::new(), Vec::new());
        // The numbers of the items in the batch.
        let mut waiting: Vec<usize> = Vec::new();
        let mut flush = |batch: &mut ScreenedLines,
                         waiting: &mut Vec<usize>,
                         got: &mut Vec<(usize, Outcome)>| {
            for (i, n) in waiting.drain(..).enumerate() {
                got.push((n, finisher.finish(batch, i, now())));
                work.finished += 1;
            }
            batch.clear();
        };
        let same_filter = Arc::ptr_eq(filter, screened_by);
        for (n, item) in items.iter().enumerate() {
            // Lines searched ahead and lines not, mixed in batches.
            screener.search_ahead(n % 3 != 0);
            let screened = screen(&mut screener, item, &mut batch);
            if screened.is_some() && !same_filter {
                work.decided += 1;
                continue; // the old filter's to decide; the new one never sees it
            }
            let (outcome, clean) = fed(&mut whole, item);
            work.failures += usize::from(matches!(outcome, Outcome::Failure(_)));
            want.push((n, outcome));
            match screened {
                Some(outcome) => {
                    flush(&mut batch, &mut waiting, &mut got);
                    got.push((n, outcome));
                    work.decided += 1;
                }
                None => {
                    if let Some(clean) = clean {
                        assert_eq!(batch.text(batch.len() - 1), clean, "{name}: its text");
                    }
                    waiting.push(n);
                    if waiting.len() > n % 7 {
                        flush(&mut batch, &mut waiting, &mut got);
                    }
                }
            }
        }
        flush(&mut batch, &mut waiting, &mut got);
        got.sort_by_key(|(n, _)| *n);
        assert_eq!(got.len(), want.len());
        for ((n, want), (m, got)) in want.iter().zip(&got) {
            assert_eq!((m, got), (n, want), "{name}");
        }
    }

    /// Screening on one side and finishing on the other gives every line of every corpus,
    /// clean or dirty, the outcome `feed_line` gives it, in every built-in filter and mode,
    /// whatever the batches' sizes (the sessions carry from batch to batch).
    #[test]
    fn screened_and_finished_lines_have_the_outcomes_of_fed_lines() {
        let lines = corpus();
        let mut work = Work::default();
        for (name, filter) in matchers() {
            same_outcomes(
                &name,
                (&filter, &filter),
                &lines,
                |m, line| {
                    let clean = match readable(line) {
                        Readable::Text(text) => Some(text.to_string()),
                        _ => None,
                    };
                    (m.feed_line(line, now()), clean)
                },
                |s, line, batch| s.line(line, batch),
                &mut work,
            );
        }
        // Both halves must do real work on these lines, or the split proves nothing.
        let Work {
            decided,
            finished,
            failures,
        } = work;
        assert!(
            decided > 1_000 && finished > 1_000 && failures > 1_000,
            "{decided} {finished} {failures}"
        );
    }

    /// The same for journal entries made of the corpora's lines.
    #[test]
    fn screened_and_finished_journal_entries_have_the_outcomes_of_fed_entries() {
        let lines = corpus();
        let entries: Vec<JournalEntry<'_>> = (lines.iter().enumerate())
            .filter_map(|(n, line)| entry(line, n as u64))
            .collect();
        let mut work = Work::default();
        for (name, filter) in matchers() {
            same_outcomes(
                &name,
                (&filter, &filter),
                &entries,
                |m, entry| (m.feed_journal(entry, now()), None),
                |s, entry, batch| s.journal(entry, batch),
                &mut work,
            );
        }
        assert!(
            work.decided > 1_000 && work.finished > 1_000 && work.failures > 1_000,
            "{} {} {}",
            work.decided,
            work.finished,
            work.failures
        );
    }

    /// Lines screened by another filter than the finishing matcher's (a reload took a new one
    /// up between the two halves) are matched whole by the new one: never with the candidate
    /// rules of the old. Lines and journal entries, and two filters in one batch.
    #[test]
    fn lines_screened_by_another_filter_are_matched_whole() {
        let lines = corpus();
        let entries: Vec<JournalEntry<'_>> = (lines.iter().enumerate())
            .filter_map(|(n, line)| entry(line, n as u64))
            .collect();
        let all = matchers();
        let named = |wanted: &str| &all.iter().find(|(name, _)| name == wanted).unwrap().1;
        let (old, new) = (named("sshd/normal"), named("sshd/aggressive"));
        let mut work = Work::default();
        same_outcomes(
            "lines",
            (new, old),
            &lines,
            |m, line| (m.feed_line(line, now()), None),
            |s, line, batch| s.line(line, batch),
            &mut work,
        );
        same_outcomes(
            "entries",
            (new, old),
            &entries,
            |m, entry| (m.feed_journal(entry, now()), None),
            |s, entry, batch| s.journal(entry, batch),
            &mut work,
        );
        assert!(work.finished > 300, "{} finished", work.finished);

        let line = b"Nov 23 07:18:36 h sshd[1]: Invalid user bob from 192.0.2.1 port 22";
        let mut batch = ScreenedLines::default();
        for filter in [old, new] {
            assert_eq!(Screener::new(filter.clone()).line(line, &mut batch), None);
        }
        let mut whole = Matcher::new(new.clone(), LocalZone::utc());
        let want = whole.feed_line(line, now());
        let mut finisher = Matcher::new(new.clone(), LocalZone::utc());
        assert!(matches!(batch.whole(1), Whole::Line(text) if text.as_bytes() == line));
        assert_eq!(finisher.finish(&batch, 1, now()), want);
    }
}
