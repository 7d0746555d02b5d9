//! Following one log file by path, through rotation and truncation, without losing lines.
//!
//! Receives a path, a start position and "look again" calls; emits complete lines (without
//! their newline) and the position reached. It keeps the file's identity (device, inode) and
//! offset, so it notices:
//! - **rename rotation** (`logrotate` default): the path now names another inode. The old
//!   descriptor is drained to its end first, then kept a few more rounds (a daemon may still
//!   write to it before it reopens its log), and the new file is read from its start;
//! - **copytruncate**: the file is shorter than the offset: read again from 0 (a line written
//!   between the copy and the truncation is lost; that is inherent to copytruncate);
//! - **deletion**: the old descriptor is drained and the path is watched until it reappears.
//!
//! Lines longer than `max_line` are skipped and counted. It never blocks on anything but the
//! reads of a regular file and never interprets the bytes of a line.

use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::state::Position;

/// Bytes read per system call.
const CHUNK: usize = 256 * 1024;
/// Rounds a rotated-away file is still drained after the switch.
const RETIRED_ROUNDS: u32 = 5;

/// Where to start reading a file seen for the first time in this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// At its end: old lines are history (first sight with fail2ban's `tail`).
    End,
    /// At its beginning: first sight (read back; the filter skips what is older than
    /// `findtime`), or a file that appeared while we were watching.
    Beginning,
    /// Where a previous run stopped, if it is still the same file.
    Saved(Position),
}

struct Open {
    file: File,
    dev: u64,
    ino: u64,
    /// Bytes read so far.
    offset: u64,
    /// Bytes of an unfinished last line.
    partial: Vec<u8>,
    /// Inside an over-long line: drop bytes until the next newline.
    discarding: bool,
    /// The file's first bytes as first seen: when they change while the file is no shorter than
    /// the offset, it was truncated and rewritten past the offset between two rounds
    /// (copytruncate under load). fail2ban guards the same case with a hash of the first line.
    head: Vec<u8>,
}

/// Bytes of a file's start remembered to recognise it.
const HEAD: usize = 128;

impl Open {
    fn new(file: File, meta: &Metadata, offset: u64) -> Open {
        let mut open = Open {
            file,
            dev: meta.dev(),
            ino: meta.ino(),
            offset,
            partial: Vec::new(),
            discarding: false,
            head: Vec::new(),
        };
        open.head = open.read_head().unwrap_or_default();
        open
    }

    /// Reads again from the start (the file was truncated).
    fn restart(&mut self) -> io::Result<()> {
        self.offset = 0;
        self.partial.clear();
        self.discarding = false;
        self.head = self.read_head()?;
        Ok(())
    }

    /// Up to `HEAD` bytes from the start of the file.
    fn read_head(&self) -> io::Result<Vec<u8>> {
        let mut head = vec![0; HEAD];
        let n = self.file.read_at(&mut head, 0)?;
        head.truncate(n);
        Ok(head)
    }

    /// Whether the file was truncated since the last round: shorter than what was read, or
    /// with other first bytes (emptied and rewritten past the offset meanwhile).
    fn truncated(&mut self, len: u64) -> bool {
        if len < self.offset {
            return true;
        }
        let Ok(now) = self.read_head() else {
            return false;
        };
        let known = self.head.len().min(now.len());
        if now[..known] != self.head[..known] {
            return true;
        }
        if now.len() > self.head.len() {
            // The file was shorter than HEAD when first seen: remember more of it.
            self.head = now;
        }
        false
    }

    /// Reads to the end of the file, delivering complete lines.
    fn drain(
        &mut self,
        buffer: &mut [u8],
        max_line: usize,
        too_long: &mut u64,
        line: &mut dyn FnMut(&[u8]),
    ) -> io::Result<()> {
        loop {
            let n = match self.file.read_at(buffer, self.offset) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                return Ok(());
            }
            self.offset += n as u64;
            self.split(&buffer[..n], max_line, too_long, &mut *line);
        }
    }

    fn split(
        &mut self,
        mut data: &[u8],
        max_line: usize,
        too_long: &mut u64,
        line: &mut dyn FnMut(&[u8]),
    ) {
        while let Some(i) = memchr::memchr(b'\n', data) {
            let (head, rest) = (&data[..i], &data[i + 1..]);
            data = rest;
            if self.discarding {
                self.discarding = false;
                continue;
            }
            if self.partial.is_empty() {
                if head.len() > max_line {
                    *too_long += 1;
                } else {
                    line(trim_cr(head));
                }
            } else if self.partial.len() + head.len() > max_line {
                self.partial.clear();
                *too_long += 1;
            } else {
                self.partial.extend_from_slice(head);
                line(trim_cr(&self.partial));
                self.partial.clear();
            }
        }
        if self.discarding || data.is_empty() {
            return;
        }
        if self.partial.len() + data.len() > max_line {
            self.partial.clear();
            self.discarding = true;
            *too_long += 1;
        } else {
            self.partial.extend_from_slice(data);
        }
    }

    /// The file is closed for good: an unfinished last line is delivered as it is.
    fn finish(mut self, line: &mut dyn FnMut(&[u8])) {
        if !self.partial.is_empty() && !self.discarding {
            line(trim_cr(&self.partial));
        }
        self.partial.clear();
    }

    /// Where the first undelivered line starts.
    fn position(&self) -> Position {
        let pending = if self.discarding {
            0
        } else {
            self.partial.len() as u64
        };
        Position::File {
            dev: self.dev,
            ino: self.ino,
            offset: self.offset.saturating_sub(pending),
        }
    }
}

/// One followed file.
pub struct Tailer {
    path: PathBuf,
    current: Option<Open>,
    /// A rotated-away file still drained for a few rounds.
    retired: Option<(Open, u32)>,
    max_line: usize,
    buffer: Vec<u8>,
    start: Option<Start>,
    too_long: u64,
    rotations: u64,
}

impl Tailer {
    pub fn new(path: &Path, start: Start, max_line: usize) -> Tailer {
        Tailer {
            path: path.to_path_buf(),
            current: None,
            retired: None,
            max_line: max_line.max(1),
            buffer: vec![0; CHUNK],
            start: Some(start),
            too_long: 0,
            rotations: 0,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads everything new and calls `line` for each complete line.
    pub fn poll(&mut self, line: &mut dyn FnMut(&[u8])) -> io::Result<()> {
        if let Some((mut old, rounds)) = self.retired.take() {
            old.drain(
                &mut self.buffer,
                self.max_line,
                &mut self.too_long,
                &mut *line,
            )?;
            if rounds > 1 {
                self.retired = Some((old, rounds - 1));
            } else {
                old.finish(&mut *line);
            }
        }
        if let Some(open) = self.current.as_mut() {
            // Truncated in place (copytruncate)? Checked before reading, on the open file.
            if open.truncated(open.file.metadata()?.len()) {
                open.restart()?;
                self.rotations += 1;
            }
            open.drain(
                &mut self.buffer,
                self.max_line,
                &mut self.too_long,
                &mut *line,
            )?;
        }
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) if m.is_file() => m,
            // Gone (rotated away and not yet recreated) or not a file: keep what is open.
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Missing at start: when it appears, it is a new file, read whole.
                if self.current.is_none() {
                    self.start = None;
                }
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        match self.current.as_mut() {
            // The same file: already read above.
            Some(open) if open.dev == meta.dev() && open.ino == meta.ino() => return Ok(()),
            _ => {
                let file = match File::open(&self.path) {
                    Ok(f) => f,
                    // Replaced between stat and open: the next round catches it.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                    Err(e) => return Err(e),
                };
                let meta = file.metadata()?;
                let offset = self.first_offset(&meta);
                if let Some(old) = self.current.take() {
                    if let Some((older, _)) = self.retired.take() {
                        older.finish(&mut *line);
                    }
                    self.retired = Some((old, RETIRED_ROUNDS));
                    self.rotations += 1;
                }
                self.current = Some(Open::new(file, &meta, offset));
            }
        }
        let open = self
            .current
            .as_mut()
            .expect("invariant: a file is open here");
        open.drain(&mut self.buffer, self.max_line, &mut self.too_long, line)
    }

    /// The position to persist: the start of the first line not yet delivered.
    pub fn position(&self) -> Option<Position> {
        self.current.as_ref().map(Open::position)
    }

    /// Lines skipped for being longer than `max_line`.
    pub fn too_long(&self) -> u64 {
        self.too_long
    }

    /// Rotations and truncations noticed.
    pub fn rotations(&self) -> u64 {
        self.rotations
    }

    fn first_offset(&mut self, meta: &Metadata) -> u64 {
        match self.start.take() {
            None | Some(Start::Beginning) => 0,
            Some(Start::End) => meta.len(),
            // The same file as saved, not truncated since: resume exactly.
            Some(Start::Saved(Position::File { dev, ino, offset }))
                if dev == meta.dev() && ino == meta.ino() && offset <= meta.len() =>
            {
                offset
            }
            // Truncated, or another file than the one saved (rotated in since): all of it is new.
            Some(Start::Saved(_)) => 0,
        }
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests;
