//! The outbox: bans waiting to be sent to the fleet, kept on disk until the server took them.
//!
//! Receives messages to send ([`Outbox::put`], many at a time, one fsync for all) and the news
//! that the oldest ones were stored by the stream ([`Outbox::sent`]); emits the messages still
//! to send, in order, including after a restart. One file in the state directory,
//! `fleet-outbox.log`, owned by the fleet task alone: one line per entry, `CRC32 JSON` as in
//! the state log — `{"put":{"seq":N,"message":{…}}}` or `{"sent":N}` (everything up to N went
//! out). A torn or damaged line is skipped. The file is rewritten (temporary file, fsync,
//! rename) when it holds mostly sent entries. Bounded: past `max` entries the oldest are
//! dropped, counted and logged — the local bans they describe stay in force; peers miss them.
//! It never blocks the core: only the fleet task calls it.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use nftjail_core::fleet::BanMessage;

/// The outbox file, in the state directory.
pub const FILE: &str = "fleet-outbox.log";
/// Rewrite the file when it has this many more lines than entries waiting.
const REWRITE_AFTER: usize = 20_000;

/// One line of the file, as read.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Line {
    Put { seq: u64, message: BanMessage },
    Sent(u64),
}

/// One line of the file, as written (the same JSON as [`Line`]).
#[derive(Serialize)]
#[serde(rename_all = "lowercase")]
enum LineOut<'a> {
    Put { seq: u64, message: &'a BanMessage },
    Sent(u64),
}

/// Why the outbox could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("fleet outbox {path}: {source}")]
pub struct OutboxError {
    path: PathBuf,
    source: io::Error,
}

/// The messages not yet stored by the stream.
pub struct Outbox {
    path: PathBuf,
    file: File,
    waiting: VecDeque<(u64, BanMessage)>,
    next_seq: u64,
    max: usize,
    /// Lines in the file (for the rewrite).
    lines: usize,
    /// Entries dropped because the outbox was full.
    pub dropped: u64,
    /// Damaged lines skipped when it was opened.
    pub damaged: usize,
}

impl Outbox {
    /// Opens (or creates) the outbox in `dir`, replaying what is waiting.
    pub fn open(dir: &Path, max: usize) -> Result<Outbox, OutboxError> {
        let path = dir.join(FILE);
        let err = |source| OutboxError {
            path: path.clone(),
            source,
        };
        let mut waiting = VecDeque::new();
        let mut sent = 0;
        let mut next_seq = 1;
        let mut lines = 0;
        let mut damaged = 0;
        match File::open(&path) {
            Ok(f) => {
                for line in BufReader::new(f).split(b'\n') {
                    let line = line.map_err(err)?;
                    lines += 1;
                    match decode(&line) {
                        Some(Line::Put { seq, message }) => {
                            next_seq = next_seq.max(seq + 1);
                            waiting.push_back((seq, message));
                        }
                        Some(Line::Sent(upto)) => {
                            sent = sent.max(upto);
                            next_seq = next_seq.max(upto + 1);
                        }
                        None => damaged += 1,
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(e)),
        }
        waiting.retain(|(seq, _)| *seq > sent);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(err)?;
        let mut outbox = Outbox {
            path,
            file,
            waiting,
            next_seq,
            max,
            lines,
            dropped: 0,
            damaged,
        };
        outbox.trim();
        Ok(outbox)
    }

    /// Entries waiting.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Up to `n` of the oldest waiting entries.
    pub fn oldest(&self, n: usize) -> impl Iterator<Item = &(u64, BanMessage)> {
        self.waiting.iter().take(n)
    }

    /// Adds `messages` and makes them durable (one fsync).
    pub fn put(&mut self, messages: Vec<BanMessage>) -> Result<(), OutboxError> {
        if messages.is_empty() {
            return Ok(());
        }
        let mut out = Vec::new();
        for message in messages {
            let seq = self.next_seq;
            self.next_seq += 1;
            encode(
                &LineOut::Put {
                    seq,
                    message: &message,
                },
                &mut out,
            );
            self.waiting.push_back((seq, message));
            self.lines += 1;
        }
        self.write(&out)?;
        self.trim();
        Ok(())
    }

    /// Everything up to `upto` was stored by the stream.
    pub fn sent(&mut self, upto: u64) -> Result<(), OutboxError> {
        let before = self.waiting.len();
        while self.waiting.front().is_some_and(|(seq, _)| *seq <= upto) {
            self.waiting.pop_front();
        }
        if self.waiting.len() == before {
            return Ok(());
        }
        if self.lines > self.waiting.len() + REWRITE_AFTER {
            return self.rewrite(upto);
        }
        let mut out = Vec::new();
        encode(&LineOut::Sent(upto), &mut out);
        self.lines += 1;
        self.write(&out)
    }

    /// Drops the oldest entries past `max`.
    fn trim(&mut self) {
        let over = self.waiting.len().saturating_sub(self.max);
        if over > 0 {
            self.waiting.drain(..over);
            self.dropped += over as u64;
            tracing::warn!(
                dropped = over,
                max = self.max,
                "fleet outbox full: the oldest bans will not be shared"
            );
        }
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), OutboxError> {
        let result = self
            .file
            .write_all(bytes)
            .and_then(|()| self.file.sync_data());
        result.map_err(|source| OutboxError {
            path: self.path.clone(),
            source,
        })
    }

    /// Rewrites the file with the entries still waiting (and the sent mark, so sequence numbers
    /// keep growing).
    fn rewrite(&mut self, upto: u64) -> Result<(), OutboxError> {
        let tmp = self.path.with_extension("log.tmp");
        let err = |source| OutboxError {
            path: tmp.clone(),
            source,
        };
        let mut out = Vec::new();
        encode(&LineOut::Sent(upto), &mut out);
        for (seq, message) in &self.waiting {
            encode(&LineOut::Put { seq: *seq, message }, &mut out);
        }
        let mut file = File::create(&tmp).map_err(err)?;
        file.write_all(&out)
            .and_then(|()| file.sync_all())
            .map_err(err)?;
        fs::rename(&tmp, &self.path).map_err(err)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir).and_then(|d| d.sync_all()).map_err(err)?;
        }
        self.file = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(err)?;
        self.lines = self.waiting.len() + 1;
        Ok(())
    }
}

fn encode(line: &LineOut<'_>, out: &mut Vec<u8>) {
    let json = serde_json::to_vec(line).expect("invariant: outbox lines serialize");
    out.extend_from_slice(format!("{:08x} ", crc32fast::hash(&json)).as_bytes());
    out.extend_from_slice(&json);
    out.push(b'\n');
}

fn decode(line: &[u8]) -> Option<Line> {
    let (crc, json) = (line.get(..8)?, line.get(9..)?);
    let crc = u32::from_str_radix(std::str::from_utf8(crc).ok()?, 16).ok()?;
    (line.get(8) == Some(&b' ') && crc32fast::hash(json) == crc)
        .then(|| serde_json::from_slice(json).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use nftjail_core::tracker::{Ban, Origin};

    fn message(i: u32) -> BanMessage {
        let ban = Ban {
            jail: "sshd".parse().unwrap(),
            target: format!("203.0.113.{}", i % 250).parse().unwrap(),
            since: 1_000 + i64::from(i),
            expires: Some(5_000),
            count: 1,
            origin: Origin::Failures,
        };
        BanMessage::ban(&"a".parse().unwrap(), &ban, 3, &[])
    }

    #[test]
    fn what_was_not_sent_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(dir.path(), 100).unwrap();
        outbox.put((0..5).map(message).collect()).unwrap();
        let seqs: Vec<u64> = outbox.oldest(10).map(|(s, _)| *s).collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5]);
        outbox.sent(2).unwrap();
        drop(outbox);
        let mut outbox = Outbox::open(dir.path(), 100).unwrap();
        let left: Vec<u64> = outbox.oldest(10).map(|(s, _)| *s).collect();
        assert_eq!(left, [3, 4, 5]);
        assert_eq!(outbox.oldest(1).next().unwrap().1, message(2));
        // Sequence numbers keep growing after a restart.
        outbox.put(vec![message(9)]).unwrap();
        assert_eq!(outbox.oldest(10).last().unwrap().0, 6);
    }

    #[test]
    fn a_torn_last_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(dir.path(), 100).unwrap();
        outbox.put(vec![message(1), message(2)]).unwrap();
        drop(outbox);
        let path = dir.path().join(FILE);
        let mut text = fs::read(&path).unwrap();
        text.truncate(text.len() - 10);
        fs::write(&path, text).unwrap();
        let outbox = Outbox::open(dir.path(), 100).unwrap();
        assert_eq!((outbox.len(), outbox.damaged), (1, 1));
    }

    #[test]
    fn a_full_outbox_drops_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(dir.path(), 3).unwrap();
        outbox.put((0..5).map(message).collect()).unwrap();
        let left: Vec<u64> = outbox.oldest(10).map(|(s, _)| *s).collect();
        assert_eq!((left, outbox.dropped), (vec![3, 4, 5], 2));
    }

    #[test]
    fn the_file_is_rewritten_when_mostly_sent() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(dir.path(), 100_000).unwrap();
        outbox.put((0..30_000).map(message).collect()).unwrap();
        outbox.sent(29_990).unwrap();
        let lines = fs::read_to_string(dir.path().join(FILE))
            .unwrap()
            .lines()
            .count();
        assert_eq!(lines, 11, "the mark and ten entries");
        drop(outbox);
        let mut outbox = Outbox::open(dir.path(), 100_000).unwrap();
        assert_eq!(outbox.len(), 10);
        outbox.put(vec![message(1)]).unwrap();
        assert_eq!(outbox.oldest(20).last().unwrap().0, 30_001);
    }
}
