//! Crash-safe state in `state_dir`: active bans, ban history and log read positions.
//!
//! Receives [`Record`]s from the banner (which writes them only after the kernel took a ban)
//! and read positions, and makes them durable in groups: many records, one `fdatasync`. At
//! start it replays the log into [`Recovered`]. The format is one record a line, `CRC32 JSON`,
//! appended; a torn last line (a crash in the middle of a write) fails its checksum and is cut
//! off, so a `kill -9` at any moment loses nothing that a completed [`StateStore::commit`]
//! reported. The log is rewritten (compacted) to the live state when it has grown well past it.
//! Emits, besides the replay, an error for every record it could not make durable.
//!
//! Never trusts the disk after a failed fsync (the store is poisoned until a compaction
//! rewrites the log), never leaves half a line for the next records to be glued to, never
//! follows a symlink, and never destroys what it cannot parse: a damaged log is kept aside as
//! `state.log.corrupt-<UTC time>`. Nothing here talks to the kernel or decides anything.
//!
//! Files: `log` (the store: commit, compaction, positions), `recover` (opening: locking,
//! replay, cutting a torn tail, setting a damaged log aside), `frame` (the line format),
//! `disk` (the I/O seam and its [`Faults`] plan), `error`.

mod disk;
mod error;
mod frame;
mod log;
mod recover;

use std::collections::HashMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::addr::BanTarget;
use crate::jail::JailName;
use crate::tracker::{Ban, HistoryEntry};

/// The log, in the state directory.
const FILE: &str = "state.log";
/// A compaction's new log until it is renamed over the old one.
const NEW_FILE: &str = "state.log.new";
/// Held (flock) by the one nftjail that uses the directory.
const LOCK_FILE: &str = "lock";

pub use disk::Faults;
pub use error::StateError;
pub use log::StateStore;

/// Where a log source has read up to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Position {
    /// A file, identified by device and inode so a rotated file is recognised.
    File { dev: u64, ino: u64, offset: u64 },
    /// A systemd journal cursor.
    Journal { cursor: String },
}

/// One line of the state log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Record {
    /// A ban in force in the kernel (new or refreshed). Also counts as a history entry.
    Ban(Ban),
    /// A ban removed before its time.
    Unban {
        jail: JailName,
        target: BanTarget,
        at: i64,
    },
    /// A past ban kept for escalation and recidive (written by compaction).
    History(HistoryEntry),
    /// A log source's read position, keyed by source (`jail:path` or `jail:journal`). The
    /// store writes these itself: callers hand positions to [`StateStore::position`].
    Position { source: String, position: Position },
}

/// What a replay found.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Bans in force when the log ends (possibly expired since: the caller checks the clock).
    pub bans: HashMap<(JailName, BanTarget), Ban>,
    pub history: Vec<HistoryEntry>,
    pub positions: HashMap<String, Position>,
    /// Records read.
    pub records: usize,
    /// Damaged lines skipped (a torn tail counts one).
    pub damaged: usize,
    /// The last line was torn (an interrupted write) and was cut off.
    pub torn_tail: bool,
    /// The log was damaged beyond a torn tail (or held no record at all): the original is kept
    /// here, untouched, and the log was rewritten with its intact records.
    pub moved_aside: Option<PathBuf>,
}

impl Recovered {
    pub(crate) fn apply(&mut self, record: Record) {
        self.records += 1;
        match record {
            Record::Ban(ban) => {
                self.history.push(HistoryEntry {
                    target: ban.target,
                    jail: ban.jail.clone(),
                    at: ban.since,
                });
                self.bans.insert((ban.jail.clone(), ban.target), ban);
            }
            Record::Unban { jail, target, .. } => {
                self.bans.remove(&(jail, target));
            }
            Record::History(entry) => self.history.push(entry),
            Record::Position { source, position } => {
                self.positions.insert(source, position);
            }
        }
    }
}

/// A ban of `target` in jail sshd since `since`, for ten minutes (tests of the state files).
#[cfg(test)]
fn test_ban(target: &str, since: i64) -> Ban {
    Ban {
        jail: "sshd".parse().expect("a jail name"),
        target: target.parse().expect("a target"),
        since,
        expires: Some(since + 600),
        count: 1,
        origin: crate::tracker::Origin::Failures,
    }
}
