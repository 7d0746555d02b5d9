//! The open state log: group commit, read positions, poisoning and compaction.
//!
//! Receives records ([`StateStore::append`]) and read positions ([`StateStore::position`]) into
//! a buffer; [`StateStore::commit`] writes the buffer and `fdatasync`s once. Emits an error for
//! every commit it could not make durable, and then has dropped what it buffered. Compaction
//! writes the live state to `state.log.new`, syncs it, renames it over `state.log` and syncs the
//! directory, so at every instant one complete log exists.
//!
//! Never leaves part of a failed write in the file (it is cut back to the last durable length),
//! never calls fsync again on a file whose fsync failed (a retry can report success for data
//! that is gone: the store is poisoned, and only a compaction, which writes a new file, lifts
//! that), and never writes to a file that a failed compaction may have unlinked.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::fcntl::Flock;

use super::disk::{Create, Disk, Faults, open_regular, remove_if_present};
use super::frame::encode;
use super::recover::{self, Opened};
use super::{FILE, NEW_FILE, Position, Record, Recovered, StateError};

/// Buffer capacity kept between commits; a larger one is freed.
const KEEP_BUFFER: usize = 1 << 20;

/// The open state log. One writer per state directory (enforced with a lock file).
pub struct StateStore {
    dir: PathBuf,
    /// `dir/state.log`.
    path: PathBuf,
    disk: Disk,
    file: File,
    /// Where the last successful commit or compaction left the file: all of it is durable.
    durable_len: u64,
    /// Encoded records waiting for a commit.
    buffer: Vec<u8>,
    /// Records in `buffer`.
    buffered: usize,
    /// Records in the file, for the compaction policy.
    records: usize,
    /// The read positions the log holds (as of the last successful commit or compaction).
    positions: HashMap<String, Position>,
    /// Positions given since, that differ from `positions`: written by the next commit.
    pending_positions: BTreeMap<String, Position>,
    /// A write could not be cut back, an fsync or a compaction failed: nothing is committed
    /// until a compaction succeeds.
    poisoned: bool,
    _lock: Flock<File>,
}

impl StateStore {
    /// Opens (creating if needed) the state in `dir` and replays it. Refuses a `state.log` or
    /// `lock` that is a symlink or not a regular file ([`StateError::NotRegular`]) and a
    /// directory another nftjail holds ([`StateError::Locked`]). A torn last line is cut off;
    /// any other damage is kept aside first ([`Recovered::moved_aside`]).
    pub fn open(dir: &Path) -> Result<(StateStore, Recovered), StateError> {
        StateStore::open_with(dir, Arc::new(Faults::new()))
    }

    /// [`open`](Self::open) with its disk failing as `faults` says (tests of disk faults).
    pub fn open_with(
        dir: &Path,
        faults: Arc<Faults>,
    ) -> Result<(StateStore, Recovered), StateError> {
        let disk = Disk::new(faults);
        let Opened {
            file,
            len,
            recovered,
            lock,
        } = recover::open(&disk, dir)?;
        Ok((
            StateStore {
                dir: dir.to_path_buf(),
                path: dir.join(FILE),
                disk,
                file,
                durable_len: len,
                buffer: Vec::new(),
                buffered: 0,
                records: recovered.records,
                positions: recovered.positions.clone(),
                pending_positions: BTreeMap::new(),
                poisoned: false,
                _lock: lock,
            },
            recovered,
        ))
    }

    /// Queues a record; it is durable after the next successful [`commit`](Self::commit). A
    /// [`Record::Position`] is taken as [`position`](Self::position).
    pub fn append(&mut self, record: &Record) {
        if let Record::Position { source, position } = record {
            self.position(source.clone(), position.clone());
            return;
        }
        encode(record, &mut self.buffer);
        self.buffered += 1;
    }

    /// Queues a source's read position for the next commit, unless the log already holds
    /// exactly this one (a source that did not move costs nothing).
    pub fn position(&mut self, source: String, position: Position) {
        if self.positions.get(&source) == Some(&position) {
            self.pending_positions.remove(&source);
        } else {
            self.pending_positions.insert(source, position);
        }
    }

    /// The read positions the log holds, as of the last successful commit or compaction.
    pub fn positions(&self) -> &HashMap<String, Position> {
        &self.positions
    }

    /// Whether records or positions are waiting for a commit.
    pub fn is_dirty(&self) -> bool {
        !self.buffer.is_empty() || !self.pending_positions.is_empty()
    }

    /// Whether a failed write or fsync left the log untrusted: commits are refused until a
    /// [`compact`](Self::compact) succeeds.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// Writes every queued record and position and syncs once. After `Ok`, they survive a
    /// crash. After `Err` they are dropped (never durable: the caller reports them failed):
    /// - a failed write is cut back off the file, which stays usable (if the cut fails too, the
    ///   store is poisoned);
    /// - a failed fsync poisons the store: the data may be gone whatever a retry would say;
    /// - a poisoned store returns [`StateError::Poisoned`] without touching the file.
    pub fn commit(&mut self) -> Result<(), StateError> {
        if self.poisoned {
            self.drop_pending();
            return Err(StateError::Poisoned {
                path: self.path.clone(),
            });
        }
        for (source, position) in &self.pending_positions {
            encode(
                &Record::Position {
                    source: source.clone(),
                    position: position.clone(),
                },
                &mut self.buffer,
            );
        }
        if self.buffer.is_empty() {
            return Ok(());
        }
        if let Err(source) = self.disk.write_all(&self.file, &self.buffer) {
            self.drop_pending();
            // Half a line left in place would swallow the first record of the next commit.
            let cut = self
                .disk
                .set_len(&self.file, self.durable_len)
                .and_then(|()| self.disk.sync_data(&self.file));
            if let Err(e) = cut {
                self.poison(
                    "the state log could not be cut back after a failed write",
                    &e,
                );
            }
            return Err(self.io("write", source));
        }
        if let Err(source) = self.disk.sync_data(&self.file) {
            self.drop_pending();
            self.poison("fsync of the state log failed", &source);
            return Err(self.io("fsync", source));
        }
        self.durable_len += self.buffer.len() as u64;
        self.records += self.buffered + self.pending_positions.len();
        self.positions
            .extend(std::mem::take(&mut self.pending_positions));
        self.clear_buffer();
        Ok(())
    }

    /// Whether the log should be compacted: it is poisoned (compaction is the way out), or it
    /// holds so many more records than `live` that replaying it wastes time.
    pub fn wants_compaction(&self, live: usize) -> bool {
        self.poisoned || self.records + self.buffered > 2 * live + 10_000
    }

    /// Replaces the log with `live` (the current bans and history) plus every known read
    /// position, atomically, and switches to the new file; this lifts poisoning.
    ///
    /// Records appended but not committed are discarded: the snapshot replaces them (commit
    /// first to keep them). Positions given but not committed are written with the others (the
    /// snapshot holds none). A [`Record::Position`] in `live` is taken as
    /// [`position`](Self::position). If any step fails, the store is poisoned (the old file may
    /// already be unlinked: it is never written to again) and `state.log.new` is removed.
    pub fn compact(&mut self, live: impl IntoIterator<Item = Record>) -> Result<(), StateError> {
        self.clear_buffer();
        let mut positions = self.positions.clone();
        positions.extend(std::mem::take(&mut self.pending_positions));
        let mut buffer = Vec::new();
        let mut records = 0;
        for record in live {
            match record {
                Record::Position { source, position } => {
                    positions.insert(source, position);
                }
                record => {
                    encode(&record, &mut buffer);
                    records += 1;
                }
            }
        }
        for (source, position) in &positions {
            encode(
                &Record::Position {
                    source: source.clone(),
                    position: position.clone(),
                },
                &mut buffer,
            );
            records += 1;
        }
        match self.replace_with(&buffer) {
            Ok(file) => {
                if self.poisoned {
                    tracing::info!(path = %self.path.display(), "the state log was rewritten: it accepts records again");
                }
                self.file = file;
                self.durable_len = buffer.len() as u64;
                self.records = records;
                self.positions = positions;
                self.poisoned = false;
                Ok(())
            }
            Err(e) => {
                // Positions given since the last commit are dropped with everything else that
                // is not durable: the store knows what the log holds.
                let new_path = self.dir.join(NEW_FILE);
                if let Err(removal) = remove_if_present(&new_path) {
                    tracing::error!(path = %new_path.display(), error = %removal, "could not remove a failed compaction's file");
                }
                self.poison("compaction of the state log failed", &e);
                Err(e)
            }
        }
    }

    /// Writes `contents` as the new log, durably, and returns it open for appending.
    fn replace_with(&self, contents: &[u8]) -> Result<File, StateError> {
        let new_path = self.dir.join(NEW_FILE);
        let io = |action, path: &Path| {
            let path = path.to_path_buf();
            move |source| StateError::Io {
                action,
                path,
                source,
            }
        };
        remove_if_present(&new_path).map_err(io("remove", &new_path))?;
        let new = open_regular(&new_path, Create::New)?;
        self.disk
            .write_all(&new, contents)
            .map_err(io("write", &new_path))?;
        self.disk.sync_all(&new).map_err(io("fsync", &new_path))?;
        self.disk
            .rename(&new_path, &self.path)
            .map_err(io("rename", &new_path))?;
        self.disk
            .sync_dir(&self.dir)
            .map_err(io("fsync", &self.dir))?;
        Ok(new)
    }

    fn poison(&mut self, what: &str, error: &dyn std::fmt::Display) {
        if !self.poisoned {
            tracing::error!(path = %self.path.display(), error = %error, "{what}: the state log accepts nothing until it is rewritten");
        }
        self.poisoned = true;
    }

    fn io(&self, action: &'static str, source: std::io::Error) -> StateError {
        StateError::Io {
            action,
            path: self.path.clone(),
            source,
        }
    }

    /// Forgets what waits for a commit (it will never be durable).
    fn drop_pending(&mut self) {
        self.clear_buffer();
        self.pending_positions.clear();
    }

    fn clear_buffer(&mut self) {
        self.buffer.clear();
        self.buffered = 0;
        // A bulk commit (100,000 bans) grows the buffer to megabytes: give that back.
        if self.buffer.capacity() > KEEP_BUFFER {
            self.buffer = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests;
