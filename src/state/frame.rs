//! Reading the state log back: its lines (core's format) and where the damaged ones are.
//!
//! Receives records to encode, and an open log to read back. Emits one line per record,
//! `XXXXXXXX {json}\n` where `XXXXXXXX` is the CRC32 of the JSON in hex, and, when reading, the
//! records of the intact lines plus where the damaged ones are. Never writes, and never holds
//! more than one line in memory (a line longer than [`MAX_LINE`] is damage, not a reason to read
//! a whole garbage file into memory).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom};

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

/// Replays the whole file: every intact record applied, every damaged line counted.
pub(super) fn scan(file: &File) -> io::Result<Scan> {
    let mut scan = Scan::default();
    scan.len = for_each_line(file, |line| {
        match line.record() {
            Some(record) => {
                scan.recovered.apply(record);
                scan.good_len = line.end;
            }
            None => scan.recovered.damaged += 1,
        }
        Ok(())
    })?;
    Ok(scan)
}
