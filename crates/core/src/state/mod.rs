//! The state log's records: active bans, ban history, log read positions and the firewall's
//! rules, and their replay.
//!
//! Receives records (from the daemon's banner, which writes them only after the kernel took a
//! ban) and, at start, the lines of a log; emits the line format ([`frame`]: one record a line,
//! `CRC32 JSON`) and what a replay finds ([`Recovered`]). The file itself — group commit,
//! fsync, compaction, locking, faults — is the daemon's `state` store; nothing here touches a
//! file or decides anything.

pub mod frame;

use std::collections::HashMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::addr::BanTarget;
use crate::firewall::{FirewallRecord, FirewallState};
use crate::jail::JailName;
use crate::tracker::{Ban, HistoryEntry};

/// Where a log source has read up to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Position {
    /// A file, identified by device and inode so a rotated file is recognised.
    File { dev: u64, ino: u64, offset: u64 },
    /// A systemd journal cursor.
    Journal { cursor: String },
    /// The last message of a NATS JetStream stream taken in (its stream sequence): the fleet's
    /// consumer resumes after it.
    Stream { seq: u64 },
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
    /// daemon's store writes these itself from the positions it is handed.
    Position { source: String, position: Position },
    /// A change of the firewall's rules, forwards or switch (see [`FirewallRecord`]).
    Firewall(FirewallRecord),
}

/// What a replay found.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Bans in force when the log ends (possibly expired since: the caller checks the clock).
    pub bans: HashMap<(JailName, BanTarget), Ban>,
    pub history: Vec<HistoryEntry>,
    pub positions: HashMap<String, Position>,
    /// The firewall's rules, forwards and switch.
    pub firewall: FirewallState,
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
    /// Takes one record of the log, in order.
    pub fn apply(&mut self, record: Record) {
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
            Record::Firewall(record) => self.firewall.apply(record),
        }
    }
}
