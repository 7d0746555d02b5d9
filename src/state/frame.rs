//! Reading the state log back: its lines (core's format) and where the damaged ones are.
//!
//! Receives records to encode, and an open log to read back. Emits one line per record,
//! `XXXXXXXX {json}\n` where `XXXXXXXX` is the CRC32 of the JSON in hex, and, when reading, the
//! records of the intact lines plus where the damaged ones are. Never writes, and never holds
//! more than one line in memory (a line longer than [`MAX_LINE`] is damage, not a reason to read
//! a whole garbage file into memory).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom};
use std::sync::{Mutex, mpsc};

use super::{Record, Recovered};

pub(super) use nftjail_core::state::frame::{MAX_LINE, decode, encode};

/// One line as read back.
pub(super) struct Line<'a> {
    /// The line without its newline; `None` when it was longer than [`MAX_LINE`].
    pub bytes: Option<&'a [u8]>,
    /// Ends with a newline (the last line of a torn write does not).
    pub complete: bool,
    /// Where the line ends in the file (after its newline).
    pub end: u64,
}

impl Line<'_> {
    /// The record, if the line is intact.
    pub fn record(&self) -> Option<Record> {
        self.bytes.filter(|_| self.complete).and_then(decode)
    }
}

/// Calls `each` with every line of `file` from its start; returns the file's length.
pub(super) fn for_each_line(
    file: &File,
    mut each: impl FnMut(Line<'_>) -> io::Result<()>,
) -> io::Result<u64> {
    let mut file = file;
    file.seek(SeekFrom::Start(0))?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut line = Vec::new();
    let mut overlong = false;
    let mut offset = 0u64;
    loop {
        let buffer = reader.fill_buf()?;
        if buffer.is_empty() {
            if overlong || !line.is_empty() {
                let bytes = (!overlong).then_some(line.as_slice());
                each(Line {
                    bytes,
                    complete: false,
                    end: offset,
                })?;
            }
            return Ok(offset);
        }
        let (take, ends) = match memchr::memchr(b'\n', buffer) {
            Some(i) => (i + 1, true),
            None => (buffer.len(), false),
        };
        if !overlong {
            if line.len() + take > MAX_LINE + 1 {
                overlong = true;
                line = Vec::new();
            } else {
                line.extend_from_slice(&buffer[..take]);
            }
        }
        reader.consume(take);
        offset += take as u64;
        if ends {
            let bytes = (!overlong).then(|| line.strip_suffix(b"\n").unwrap_or(&line));
            each(Line {
                bytes,
                complete: true,
                end: offset,
            })?;
            line.clear();
            overlong = false;
        }
    }
}

/// What a replay found in the file, and where.
#[derive(Debug, Default)]
pub(super) struct Scan {
    pub recovered: Recovered,
    /// The file's length.
    pub len: u64,
    /// Where the last intact line ends.
    pub good_len: u64,
    /// Chunks of lines the replay decoded (see [`scan`]).
    pub chunks: u64,
}

/// How the file is damaged, which decides what opening it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Damage {
    None,
    /// Only the last line is damaged: an interrupted write, safe to cut.
    TornTail,
    /// Damaged lines among good ones: keep the original aside, go on with the good records.
    Inside,
    /// Not empty, yet not one intact record: not a state log (or not any more).
    Unreadable,
}

impl Scan {
    pub fn damage(&self) -> Damage {
        let r = &self.recovered;
        if self.len == 0 || r.damaged == 0 {
            Damage::None
        } else if r.records == 0 {
            Damage::Unreadable
        } else if r.damaged == 1 && self.good_len < self.len {
            Damage::TornTail
        } else {
            Damage::Inside
        }
    }
}

/// Lines handed to a decoder at once: about this many bytes, or this many lines (a garbage
/// file of empty or overlong lines adds no bytes, and must not gather all its lines at once).
const CHUNK: usize = 256 * 1024;
const CHUNK_LINES: usize = 16 * 1024;

/// Lines read, not yet decoded: their bytes one after the other, and for each where it ends in
/// `bytes` (`None`: longer than [`MAX_LINE`]), whether it was complete, and where it ends in the
/// file.
#[derive(Default)]
struct Chunk {
    seq: u64,
    bytes: Vec<u8>,
    lines: Vec<(Option<usize>, bool, u64)>,
}

/// A chunk's lines decoded: each line's record (`None`: damaged) and where it ends in the file.
struct Decoded {
    seq: u64,
    lines: Vec<(Option<Record>, u64)>,
}

impl Chunk {
    fn push(&mut self, line: &Line<'_>) {
        let end = line.bytes.map(|b| {
            self.bytes.extend_from_slice(b);
            self.bytes.len()
        });
        self.lines.push((end, line.complete, line.end));
    }

    fn decode(self) -> Decoded {
        let mut start = 0;
        let lines = self
            .lines
            .iter()
            .map(|&(end, complete, file_end)| {
                let bytes = end.map(|end| &self.bytes[std::mem::replace(&mut start, end)..end]);
                let line = Line {
                    bytes,
                    complete,
                    end: file_end,
                };
                (line.record(), file_end)
            })
            .collect();
        Decoded {
            seq: self.seq,
            lines,
        }
    }
}

/// Replays the whole file: every intact record applied, in the file's order, every damaged line
/// counted. The lines are read on this thread, checked and decoded (CRC, JSON: most of a
/// replay's work) a chunk at a time on as many threads as there are cores (at most 4), and
/// applied in order on one more: a restore of 100,000 bans waits for this before anything
/// reaches the kernel. At most a few chunks are in flight, so memory stays bounded whatever
/// the file's size.
pub(super) fn scan(file: &File) -> io::Result<Scan> {
    let decoders = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let stopped = || io::Error::other("the state log's replay stopped");
    let (chunks, to_decode) = mpsc::sync_channel::<Chunk>(decoders * 2);
    let to_decode = Mutex::new(to_decode);
    std::thread::scope(|threads| {
        // Moved in: dropped however this returns, which is what ends the decoders.
        let chunks = chunks;
        let (decoded, to_apply) = mpsc::sync_channel::<Decoded>(decoders * 2);
        for _ in 0..decoders {
            let (to_decode, decoded) = (&to_decode, decoded.clone());
            threads.spawn(move || {
                // Ends when the reader is done (or failed) and the chunks are drained.
                loop {
                    let next = match to_decode.lock() {
                        Ok(receiver) => receiver.recv(),
                        Err(_) => return,
                    };
                    let Ok(chunk) = next else { return };
                    if decoded.send(chunk.decode()).is_err() {
                        return;
                    }
                }
            });
        }
        drop(decoded);
        let applier = threads.spawn(move || {
            let mut scan = Scan::default();
            // Chunks decoded out of order wait here for the ones before them.
            let mut waiting = BTreeMap::new();
            let mut next = 0;
            for chunk in to_apply {
                waiting.insert(chunk.seq, chunk.lines);
                while let Some(lines) = waiting.remove(&next) {
                    for (record, end) in lines {
                        match record {
                            Some(record) => {
                                scan.recovered.apply(record);
                                scan.good_len = end;
                            }
                            None => scan.recovered.damaged += 1,
                        }
                    }
                    next += 1;
                    scan.chunks += 1;
                }
            }
            scan
        });
        let mut chunk = Chunk::default();
        let len = for_each_line(file, |line| {
            chunk.push(&line);
            if chunk.bytes.len() >= CHUNK || chunk.lines.len() >= CHUNK_LINES {
                let seq = chunk.seq + 1;
                let full = std::mem::replace(
                    &mut chunk,
                    Chunk {
                        seq,
                        ..Chunk::default()
                    },
                );
                chunks.send(full).map_err(|_| stopped())?;
            }
            Ok(())
        })?;
        chunks.send(chunk).map_err(|_| stopped())?;
        drop(chunks); // the decoders end once they have drained the chunks
        let mut scan = applier.join().map_err(|_| stopped())?;
        scan.len = len;
        Ok(scan)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn line(json: &str) -> Vec<u8> {
        let record: Record = serde_json::from_str(json).expect(json);
        let mut out = Vec::new();
        encode(&record, &mut out);
        out
    }

    // A log many chunks long, with bans lifted and made again chunks later, a damaged line and
    // an overlong one inside and a torn tail: the parallel replay finds what reading the lines
    // one by one, in order, finds.
    #[test]
    fn a_replay_in_chunks_finds_what_one_line_after_another_finds() {
        let mut log = Vec::new();
        for i in 0..30_000u32 {
            let target = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
            log.extend(line(&format!(
                r#"{{"ban":{{"jail":"sshd","target":"{target}","since":{i},"expires":{},"count":1,"origin":"failures"}}}}"#,
                i + 600
            )));
            if i % 7 == 3 {
                // The unban of a ban made far earlier: most often in another chunk.
                let old = i - 3;
                let target = format!("10.{}.{}.{}", old >> 16, (old >> 8) & 255, old & 255);
                log.extend(line(&format!(
                    r#"{{"unban":{{"jail":"sshd","target":"{target}","at":{i}}}}}"#
                )));
            }
            if i == 12_345 {
                log.extend_from_slice(b"0badc0de {\"ban\":{}}\n");
                log.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
                log.push(b'\n');
            }
        }
        log.extend_from_slice(b"1234abcd {\"ban\":{\"jail\":\"ss"); // torn
        assert!(log.len() > 8 * CHUNK, "the log spans many chunks");

        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&log).unwrap();
        let scan = scan(&file).unwrap();

        let mut expected = Recovered::default();
        let mut good_len = 0;
        let mut offset = 0;
        for text in log.split_inclusive(|b| *b == b'\n') {
            offset += text.len() as u64;
            let complete = text.ends_with(b"\n");
            let bytes = text.strip_suffix(b"\n").unwrap_or(text);
            match (complete && bytes.len() <= MAX_LINE)
                .then(|| decode(bytes))
                .flatten()
            {
                Some(record) => {
                    expected.apply(record);
                    good_len = offset;
                }
                None => expected.damaged += 1,
            }
        }
        assert_eq!(scan.len, log.len() as u64);
        assert_eq!(scan.good_len, good_len);
        assert_eq!(
            scan.recovered.damaged, 3,
            "the bad CRC, the overlong line, the torn tail"
        );
        assert_eq!(scan.recovered.damaged, expected.damaged);
        assert_eq!(scan.recovered.records, expected.records);
        assert_eq!(
            scan.recovered.history, expected.history,
            "in the log's order"
        );
        assert_eq!(scan.recovered.bans, expected.bans);
        let lifted = (0..30_000).filter(|i| i % 7 == 3).count();
        assert_eq!(scan.recovered.bans.len(), 30_000 - lifted);
        assert_eq!(scan.damage(), Damage::Inside);
        assert!(scan.chunks > 8, "{} chunks", scan.chunks);
    }

    // A file of nothing but newlines and overlong lines (no bytes kept): each line is damage,
    // counted once, in chunks of a bounded number of lines.
    #[test]
    fn a_garbage_file_of_empty_and_overlong_lines_is_counted_line_by_line() {
        let mut log = vec![b'\n'; 3 * CHUNK_LINES + 5];
        log.extend(std::iter::repeat_n(b'y', MAX_LINE + 1));
        log.push(b'\n');
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&log).unwrap();
        let scan = scan(&file).unwrap();
        assert_eq!(scan.recovered.damaged, 3 * CHUNK_LINES + 6);
        assert_eq!(scan.chunks, 4, "never more than CHUNK_LINES lines at once");
        assert_eq!(scan.recovered.records, 0);
        assert_eq!((scan.len, scan.good_len), (log.len() as u64, 0));
        assert_eq!(scan.damage(), Damage::Unreadable);
    }
}
