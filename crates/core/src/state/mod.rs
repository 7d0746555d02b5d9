//! The state log's records: active bans, ban history, log read positions, the jails' lifetime
//! counters, the ban log and the firewall's rules, and their replay.
//!
//! Receives records (from the daemon's banner, which writes them only after the kernel took a
//! ban) and, at start, the lines of a log; emits the line format ([`frame`]: one record a line,
//! `CRC32 JSON`) and what a replay finds ([`Recovered`]). The file itself — group commit,
//! fsync, compaction, locking, faults — is the daemon's `state` store; nothing here touches a
//! file or decides anything.

pub mod events;
pub mod frame;

use std::collections::HashMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::addr::BanTarget;
use crate::firewall::{FirewallRecord, FirewallState};
use crate::jail::JailName;
use crate::tracker::{Ban, HistoryEntry};
pub use events::{BanEvent, BanLog, EventAction};

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
    /// A jail's lifetime counters (`status`: total failed, total banned); they only grow, so
    /// the greatest value replayed wins.
    /// Written with the read positions they go with and by every compaction, so restarts and
    /// reloads keep them.
    Totals {
        jail: JailName,
        failed: u64,
        banned: u64,
    },
    /// An entry of the ban log (`nftjail log`).
    Event(BanEvent),
}

/// A jail's lifetime counters as the state log last recorded them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub failed: u64,
    pub banned: u64,
}

/// What a replay found.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Bans in force when the log ends (possibly expired since: the caller checks the clock).
    pub bans: crate::hash::FastMap<(JailName, BanTarget), Ban>,
    pub history: Vec<HistoryEntry>,
    pub positions: HashMap<String, Position>,
    /// The firewall's rules, forwards and switch.
    pub firewall: FirewallState,
    /// Each jail's lifetime counters, the latest record's.
    pub totals: HashMap<JailName, Totals>,
    /// The ban log's events, in log order (a sequence number may come twice: see
    /// [`BanLog::restore`]).
    pub events: Vec<BanEvent>,
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
            Record::Totals {
                jail,
                failed,
                banned,
            } => {
                // Counters only grow: the greatest wins (a record queued before a compaction
                // may land after the snapshot that already holds a newer value).
                let kept = self.totals.entry(jail).or_default();
                kept.failed = kept.failed.max(failed);
                kept.banned = kept.banned.max(banned);
            }
            Record::Event(event) => self.events.push(event),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Old logs must replay unchanged: a log written before totals and events existed holds
    // only these four kinds of line, in this very format.
    #[test]
    fn a_log_of_the_first_format_replays_as_before() {
        let lines = [
            r#"{"ban":{"jail":"sshd","target":"192.0.2.1","since":100,"expires":700,"count":1,"origin":"failures"}}"#,
            r#"{"history":{"target":"192.0.2.9","jail":"sshd","at":50}}"#,
            r#"{"position":{"source":"sshd:/var/log/auth.log","position":{"file":{"dev":1,"ino":2,"offset":3}}}}"#,
            r#"{"unban":{"jail":"sshd","target":"192.0.2.1","at":200}}"#,
        ];
        let mut recovered = Recovered::default();
        for line in lines {
            recovered.apply(serde_json::from_str(line).expect(line));
        }
        assert_eq!(recovered.records, 4);
        assert!(recovered.bans.is_empty(), "banned, then unbanned");
        assert_eq!(recovered.history.len(), 2);
        assert_eq!(recovered.positions.len(), 1);
        assert!(recovered.totals.is_empty() && recovered.events.is_empty());
    }

    #[test]
    fn totals_and_events_round_trip_the_line_format() {
        let ban = Ban {
            jail: "sshd".parse().unwrap(),
            target: "192.0.2.1".parse().unwrap(),
            since: 100,
            expires: None,
            count: 2,
            origin: crate::tracker::Origin::Manual,
        };
        let records = [
            Record::Totals {
                jail: "sshd".parse().unwrap(),
                failed: 7,
                banned: 1,
            },
            Record::Totals {
                jail: "sshd".parse().unwrap(),
                failed: 9,
                banned: 2,
            },
            // Queued before a compaction, written after it: older, and ignored.
            Record::Totals {
                jail: "sshd".parse().unwrap(),
                failed: 8,
                banned: 2,
            },
            Record::Event(BanEvent::of(
                EventAction::Ban,
                &ban,
                100,
                vec!["a line".into()],
            )),
        ];
        let mut recovered = Recovered::default();
        for record in &records {
            let mut line = Vec::new();
            frame::encode(record, &mut line);
            let back = frame::decode(line.strip_suffix(b"\n").unwrap()).unwrap();
            assert_eq!(&back, record);
            recovered.apply(back);
        }
        assert_eq!(
            recovered.totals[&"sshd".parse::<JailName>().unwrap()],
            Totals {
                failed: 9,
                banned: 2
            },
            "the greatest wins"
        );
        assert_eq!(recovered.events.len(), 1);
        assert_eq!(recovered.events[0].lines, ["a line"]);
    }
}
