//! The state log file: framing, replay, group commit and compaction.
//!
//! A line is `XXXXXXXX {json}\n` where `XXXXXXXX` is the CRC32 of the JSON in hex. Appends go
//! to a buffer; [`StateStore::commit`] writes the buffer and `fdatasync`s once. Compaction writes
//! the live state to `state.log.new`, syncs it, renames it over `state.log` and syncs the
//! directory, so at every instant one complete log exists.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::{Record, Recovered};

const FILE: &str = "state.log";
const NEW_FILE: &str = "state.log.new";
const LOCK_FILE: &str = "lock";
/// Buffer capacity kept between commits; a larger one is freed.
const KEEP_BUFFER: usize = 1 << 20;

/// Errors of the state directory.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state directory {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("state directory {0} is in use by another nftjail (its lock is held)")]
    Locked(PathBuf),
}

/// The open state log. One writer per state directory (enforced with a lock file).
pub struct StateStore {
    dir: PathBuf,
    file: File,
    buffer: Vec<u8>,
    /// Records in the file, for the compaction policy.
    records: usize,
    /// Positions written (interim: until the store owns them fully).
    positions: std::collections::HashMap<String, super::Position>,
    _lock: nix::fcntl::Flock<File>,
}

impl StateStore {
    /// Opens (creating if needed) the state in `dir` and replays it.
    pub fn open(dir: &Path) -> Result<(StateStore, Recovered), StateError> {
        let io = |source| StateError::Io {
            path: dir.to_path_buf(),
            source,
        };
        fs::create_dir_all(dir).map_err(io)?;
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))
            .map_err(io)?;
        let lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusiveNonblock)
            .map_err(|_| StateError::Locked(dir.to_path_buf()))?;
        // A compaction that crashed before its rename leaves a partial new file: drop it.
        let _ = fs::remove_file(dir.join(NEW_FILE));
        let path = dir.join(FILE);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io)?;
        let (recovered, good_len) = replay(&mut file).map_err(io)?;
        // Cut a torn tail so new records start on a clean line.
        if file.metadata().map_err(io)?.len() != good_len {
            file.set_len(good_len).map_err(io)?;
            file.sync_data().map_err(io)?;
        }
        file.seek(SeekFrom::End(0)).map_err(io)?;
        let records = recovered.records;
        Ok((
            StateStore {
                dir: dir.to_path_buf(),
                file,
                buffer: Vec::new(),
                records,
                positions: recovered.positions.clone(),
                _lock: lock,
            },
            recovered,
        ))
    }

    /// Queues a record; it is durable after the next [`commit`](Self::commit).
    pub fn append(&mut self, record: &Record) {
        encode(record, &mut self.buffer);
        self.records += 1;
    }

    /// Queues a read position (skipped when unchanged).
    pub fn position(&mut self, source: String, position: super::Position) {
        if self.positions.get(&source) != Some(&position) {
            self.append(&Record::Position {
                source: source.clone(),
                position: position.clone(),
            });
            self.positions.insert(source, position);
        }
    }

    /// Whether a failed sync left the log refusing writes.
    pub fn is_poisoned(&self) -> bool {
        false
    }

    /// Whether records are waiting for a commit.
    pub fn is_dirty(&self) -> bool {
        !self.buffer.is_empty()
    }

    /// Writes every queued record and syncs once. After `Ok`, they survive a crash.
    pub fn commit(&mut self) -> Result<(), StateError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let io = |source| StateError::Io {
            path: self.dir.join(FILE),
            source,
        };
        self.file.write_all(&self.buffer).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        self.buffer.clear();
        // A bulk commit (100,000 bans) grows the buffer to megabytes: give that back.
        if self.buffer.capacity() > KEEP_BUFFER {
            self.buffer = Vec::new();
        }
        Ok(())
    }

    /// Whether the log holds so many more records than `live` that it should be compacted.
    pub fn wants_compaction(&self, live: usize) -> bool {
        self.records > 2 * live + 10_000
    }

    /// Replaces the log with exactly `live` (the current state), atomically.
    pub fn compact(&mut self, live: impl IntoIterator<Item = Record>) -> Result<(), StateError> {
        self.commit()?;
        let new_path = self.dir.join(NEW_FILE);
        let io = |source| StateError::Io {
            path: new_path.clone(),
            source,
        };
        let mut buffer = Vec::new();
        let mut records = 0;
        let positions = self.positions.iter().map(|(s, p)| Record::Position {
            source: s.clone(),
            position: p.clone(),
        });
        let live: Vec<Record> = live.into_iter().chain(positions).collect();
        for record in live {
            encode(&record, &mut buffer);
            records += 1;
        }
        let mut new = File::create(&new_path).map_err(io)?;
        new.write_all(&buffer).map_err(io)?;
        new.sync_all().map_err(io)?;
        fs::rename(&new_path, self.dir.join(FILE)).map_err(io)?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
        new.seek(SeekFrom::End(0)).map_err(io)?;
        self.file = OpenOptions::new()
            .append(true)
            .open(self.dir.join(FILE))
            .map_err(io)?;
        self.records = records;
        Ok(())
    }
}

fn encode(record: &Record, out: &mut Vec<u8>) {
    let json = serde_json::to_vec(record).expect("invariant: records serialize");
    let crc = crc32fast::hash(&json);
    out.extend_from_slice(format!("{crc:08x} ").as_bytes());
    out.extend_from_slice(&json);
    out.push(b'\n');
}

/// Decodes one line (without its newline); `None` if damaged.
fn decode(line: &[u8]) -> Option<Record> {
    let (crc, json) = (line.get(..8)?, line.get(9..)?);
    if line.get(8) != Some(&b' ') {
        return None;
    }
    let crc = u32::from_str_radix(std::str::from_utf8(crc).ok()?, 16).ok()?;
    if crc32fast::hash(json) != crc {
        return None;
    }
    serde_json::from_slice(json).ok()
}

/// Replays the file; returns what it holds and the length of its intact prefix.
fn replay(file: &mut File) -> io::Result<(Recovered, u64)> {
    file.seek(SeekFrom::Start(0))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut recovered = Recovered::default();
    let mut line = Vec::new();
    let (mut offset, mut good_len) = (0u64, 0u64);
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        offset += n as u64;
        let complete = line.last() == Some(&b'\n');
        match decode(line.strip_suffix(b"\n").unwrap_or(&line)).filter(|_| complete) {
            Some(record) => {
                recovered.apply(record);
                good_len = offset;
            }
            // A damaged line in the middle is skipped; the good lines after it still count.
            None => recovered.damaged += 1,
        }
    }
    Ok((recovered, good_len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Position;
    use crate::tracker::{Ban, HistoryEntry, Origin};

    fn ban(target: &str, since: i64) -> Ban {
        Ban {
            jail: "sshd".parse().unwrap(),
            target: target.parse().unwrap(),
            since,
            expires: Some(since + 600),
            count: 1,
            origin: Origin::Failures,
        }
    }

    #[test]
    fn committed_records_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut s, r) = StateStore::open(dir.path()).unwrap();
            assert_eq!(r.records, 0);
            s.append(&Record::Ban(ban("192.0.2.1", 100)));
            s.append(&Record::Ban(ban("192.0.2.2", 100)));
            s.append(&Record::Unban {
                jail: "sshd".parse().unwrap(),
                target: "192.0.2.1".parse().unwrap(),
                at: 150,
            });
            s.append(&Record::Position {
                source: "sshd:/var/log/auth.log".into(),
                position: Position::File {
                    dev: 1,
                    ino: 2,
                    offset: 3,
                },
            });
            s.commit().unwrap();
            s.append(&Record::Ban(ban("192.0.2.3", 100)));
            // Not committed: may or may not be there, but must not damage what was.
        }
        let (_s, r) = StateStore::open(dir.path()).unwrap();
        assert!(
            r.bans
                .contains_key(&("sshd".parse().unwrap(), "192.0.2.2".parse().unwrap()))
        );
        assert!(
            !r.bans
                .contains_key(&("sshd".parse().unwrap(), "192.0.2.1".parse().unwrap()))
        );
        assert_eq!(
            r.history.len(),
            2,
            "the unbanned ban still counts as history"
        );
        assert_eq!(
            r.positions["sshd:/var/log/auth.log"],
            Position::File {
                dev: 1,
                ino: 2,
                offset: 3
            }
        );
        assert_eq!(r.damaged, 0);
    }

    #[test]
    fn a_torn_tail_is_cut_and_the_log_stays_usable() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut s, _) = StateStore::open(dir.path()).unwrap();
            s.append(&Record::Ban(ban("192.0.2.1", 100)));
            s.commit().unwrap();
        }
        // A crash in the middle of a write: half a line.
        let path = dir.path().join(FILE);
        let mut half = Vec::new();
        encode(&Record::Ban(ban("192.0.2.9", 100)), &mut half);
        half.truncate(half.len() / 2);
        OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(&half)
            .unwrap();
        {
            let (mut s, r) = StateStore::open(dir.path()).unwrap();
            assert_eq!((r.bans.len(), r.damaged), (1, 1));
            s.append(&Record::Ban(ban("192.0.2.2", 100)));
            s.commit().unwrap();
        }
        let (_s, r) = StateStore::open(dir.path()).unwrap();
        assert_eq!(
            (r.bans.len(), r.damaged),
            (2, 0),
            "the tail was cut, the next record is clean"
        );
    }

    #[test]
    fn a_corrupted_line_in_the_middle_is_skipped_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut s, _) = StateStore::open(dir.path()).unwrap();
            for n in 1..=3 {
                s.append(&Record::Ban(ban(&format!("192.0.2.{n}"), 100)));
            }
            s.commit().unwrap();
        }
        let path = dir.path().join(FILE);
        let text = fs::read_to_string(&path)
            .unwrap()
            .replacen("192.0.2.2", "192.0.2.7", 1);
        fs::write(&path, text).unwrap();
        let (_s, r) = StateStore::open(dir.path()).unwrap();
        assert_eq!((r.bans.len(), r.damaged), (2, 1));
    }

    #[test]
    fn compaction_keeps_exactly_the_live_state() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = StateStore::open(dir.path()).unwrap();
        for n in 0..50 {
            s.append(&Record::Ban(ban("192.0.2.1", n)));
        }
        s.commit().unwrap();
        let history = HistoryEntry {
            target: "192.0.2.5".parse().unwrap(),
            jail: "sshd".parse().unwrap(),
            at: 7,
        };
        s.compact(vec![
            Record::Ban(ban("192.0.2.1", 49)),
            Record::History(history.clone()),
        ])
        .unwrap();
        s.append(&Record::Ban(ban("192.0.2.2", 60)));
        s.commit().unwrap();
        drop(s);
        let (_s, r) = StateStore::open(dir.path()).unwrap();
        assert_eq!(r.records, 3);
        assert_eq!(r.bans.len(), 2);
        assert!(r.history.contains(&history));
        assert!(!dir.path().join(NEW_FILE).exists());
    }

    #[test]
    fn a_second_writer_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (_first, _) = StateStore::open(dir.path()).unwrap();
        assert!(matches!(
            StateStore::open(dir.path()),
            Err(StateError::Locked(_))
        ));
    }

    #[test]
    fn compaction_policy_waits_for_real_growth() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = StateStore::open(dir.path()).unwrap();
        for n in 0..10_001 {
            s.append(&Record::Ban(ban("192.0.2.1", n)));
        }
        assert!(s.wants_compaction(0));
        assert!(!s.wants_compaction(5_000));
    }
}
