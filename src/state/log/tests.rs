//! The store on a real directory, with the disk failing on demand.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::MetadataExt;

use super::*;
use crate::state::test_ban as ban;
use nftjail_core::tracker::HistoryEntry;

fn position(offset: u64) -> Position {
    Position::File {
        dev: 1,
        ino: 2,
        offset,
    }
}

fn log_len(dir: &Path) -> u64 {
    fs::metadata(dir.join(FILE)).unwrap().len()
}

fn banned(recovered: &Recovered) -> Vec<String> {
    let mut bans: Vec<String> = recovered.bans.keys().map(|(_, t)| t.to_string()).collect();
    bans.sort();
    bans
}

/// A store on `dir` with a fault plan, and one ban already durable.
fn store_with_one_ban(dir: &Path) -> (StateStore, Arc<Faults>) {
    let faults = Arc::new(Faults::new());
    let (mut store, _) = StateStore::open_with(dir, faults.clone()).unwrap();
    store.append(&Record::Ban(ban("192.0.2.1", 100)));
    store.commit().unwrap();
    (store, faults)
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
        s.position("sshd:/var/log/auth.log".into(), position(3));
        s.commit().unwrap();
        s.append(&Record::Ban(ban("192.0.2.3", 100)));
        // Not committed: may or may not be there, but must not damage what was.
    }
    let (_s, r) = StateStore::open(dir.path()).unwrap();
    assert_eq!(banned(&r), ["192.0.2.2"]);
    assert_eq!(
        r.history.len(),
        2,
        "the unbanned ban still counts as history"
    );
    assert_eq!(r.positions["sshd:/var/log/auth.log"], position(3));
    assert_eq!(r.damaged, 0);
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
fn compaction_discards_records_appended_but_not_committed() {
    // The snapshot is the state: a record buffered before it is superseded, not replayed on top.
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = StateStore::open(dir.path()).unwrap();
    s.append(&Record::Ban(ban("192.0.2.1", 100)));
    s.compact(vec![Record::Ban(ban("192.0.2.2", 100))]).unwrap();
    assert!(!s.is_dirty());
    s.commit().unwrap();
    drop(s);
    let (_s, r) = StateStore::open(dir.path()).unwrap();
    assert_eq!(banned(&r), ["192.0.2.2"]);
}

#[test]
fn compaction_policy_waits_for_real_growth_or_poisoning() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(Faults::new());
    let (mut s, _) = StateStore::open_with(dir.path(), faults.clone()).unwrap();
    for n in 0..10_001 {
        s.append(&Record::Ban(ban("192.0.2.1", n)));
    }
    assert!(s.wants_compaction(0));
    assert!(!s.wants_compaction(5_000));
    faults.fail_fsyncs(1);
    assert!(s.commit().is_err());
    assert!(
        s.wants_compaction(5_000),
        "a poisoned log wants its way out"
    );
}

#[test]
fn a_failed_fsync_poisons_the_store_and_fsync_is_never_retried() {
    // fsyncgate: after a failed fsync the kernel may have dropped the dirty pages and a second
    // fsync reports success for data that is gone. Nothing after it may be called durable.
    let dir = tempfile::tempdir().unwrap();
    let (mut s, faults) = store_with_one_ban(dir.path());
    faults.fail_fsyncs(1);
    s.append(&Record::Ban(ban("192.0.2.2", 100)));
    let err = s.commit().unwrap_err();
    assert!(
        matches!(
            err,
            StateError::Io {
                action: "fsync",
                ..
            }
        ),
        "{err}"
    );
    assert!(s.is_poisoned());
    assert!(!s.is_dirty(), "what was not made durable is dropped");

    // Every later commit is refused without touching the file: no write, no fsync.
    let len = log_len(dir.path());
    faults.fail_fsyncs(100);
    let before = faults.injected();
    for n in 3..6 {
        s.append(&Record::Ban(ban(&format!("192.0.2.{n}"), 100)));
        s.position("sshd:/l".into(), position(n));
        assert!(matches!(s.commit(), Err(StateError::Poisoned { .. })));
    }
    assert_eq!(faults.injected(), before, "no fsync was attempted");
    assert_eq!(log_len(dir.path()), len, "no write either");
    assert!(s.positions().is_empty(), "no position was taken as written");
    assert!(
        StateError::Poisoned {
            path: dir.path().join(FILE)
        }
        .to_string()
        .contains("state.log")
    );
}

#[test]
fn a_compaction_lifts_poisoning() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, faults) = store_with_one_ban(dir.path());
    faults.fail_fsyncs(1);
    s.append(&Record::Ban(ban("192.0.2.2", 100)));
    assert!(s.commit().is_err());
    s.compact(vec![Record::Ban(ban("192.0.2.7", 100))]).unwrap();
    assert!(!s.is_poisoned());
    s.append(&Record::Ban(ban("192.0.2.8", 100)));
    s.commit().unwrap();
    drop(s);
    let (_s, r) = StateStore::open(dir.path()).unwrap();
    assert_eq!(banned(&r), ["192.0.2.7", "192.0.2.8"]);
    assert_eq!(r.damaged, 0);
}

#[test]
fn a_short_write_on_a_full_disk_is_cut_back_and_the_next_commit_is_readable() {
    // ENOSPC after half a buffer: the half line left behind would have swallowed the first
    // record of the next commit (the two glued on one line, failing its checksum).
    let dir = tempfile::tempdir().unwrap();
    let (mut s, faults) = store_with_one_ban(dir.path());
    let durable = log_len(dir.path());
    faults.disk_full_after(30);
    s.append(&Record::Ban(ban("192.0.2.2", 100)));
    s.append(&Record::Ban(ban("192.0.2.3", 100)));
    let err = s.commit().unwrap_err();
    match &err {
        StateError::Io { action, source, .. } => {
            assert_eq!(*action, "write");
            assert_eq!(source.raw_os_error(), Some(nix::libc::ENOSPC));
        }
        other => panic!("{other}"),
    }
    assert_eq!(log_len(dir.path()), durable, "the short write was cut off");
    assert!(
        !s.is_poisoned(),
        "a write error cut back is not a lost fsync"
    );
    faults.disk_has_space();
    s.append(&Record::Ban(ban("192.0.2.4", 100)));
    s.commit().unwrap();
    drop(s);
    let (_s, r) = StateStore::open(dir.path()).unwrap();
    assert_eq!(banned(&r), ["192.0.2.1", "192.0.2.4"]);
    assert_eq!((r.damaged, r.torn_tail), (0, false));
}

#[test]
fn a_failed_write_that_cannot_be_cut_back_poisons_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, faults) = store_with_one_ban(dir.path());
    faults.disk_full_after(30);
    faults.fail_truncates(1);
    s.append(&Record::Ban(ban("192.0.2.2", 100)));
    assert!(matches!(
        s.commit(),
        Err(StateError::Io {
            action: "write",
            ..
        })
    ));
    assert!(s.is_poisoned());
    faults.clear();
    s.append(&Record::Ban(ban("192.0.2.3", 100)));
    assert!(matches!(s.commit(), Err(StateError::Poisoned { .. })));
}

#[test]
fn a_failed_compaction_poisons_the_store_and_never_writes_the_old_file_again() {
    // After a rename whose directory fsync failed, the old handle points at an unlinked file:
    // writing there would report records durable that no replay will ever see.
    type Inject = fn(&Faults);
    let cases: [(&str, Inject, &str); 4] = [
        ("the rename fails", |f| f.fail_renames(1), "rename"),
        (
            "the directory fsync fails",
            |f| f.fail_dir_syncs(1),
            "fsync",
        ),
        ("the new file's fsync fails", |f| f.fail_fsyncs(1), "fsync"),
        ("the disk is full", |f| f.disk_full_after(10), "write"),
    ];
    for (case, inject, action) in cases {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, faults) = store_with_one_ban(dir.path());
        let old = OpenOptions::new()
            .read(true)
            .open(dir.path().join(FILE))
            .unwrap();
        let old_len = old.metadata().unwrap().len();
        inject(&faults);
        let err = s
            .compact(vec![Record::Ban(ban("192.0.2.7", 100))])
            .unwrap_err();
        assert!(
            matches!(&err, StateError::Io { action: a, .. } if *a == action),
            "{case}: {err}"
        );
        assert!(s.is_poisoned(), "{case}");
        assert!(!dir.path().join(NEW_FILE).exists(), "{case}: new file left");
        faults.clear();
        let log_ino = fs::metadata(dir.path().join(FILE)).unwrap().ino();
        let log_len_after = log_len(dir.path());
        s.append(&Record::Ban(ban("192.0.2.8", 100)));
        assert!(
            matches!(s.commit(), Err(StateError::Poisoned { .. })),
            "{case}"
        );
        assert_eq!(old.metadata().unwrap().len(), old_len, "{case}: old file");
        assert_eq!(log_len(dir.path()), log_len_after, "{case}: log");
        assert_eq!(
            fs::metadata(dir.path().join(FILE)).unwrap().ino(),
            log_ino,
            "{case}"
        );

        // The way out: a compaction that works.
        s.compact(vec![Record::Ban(ban("192.0.2.9", 100))]).unwrap();
        s.append(&Record::Ban(ban("192.0.2.10", 100)));
        s.commit().unwrap();
        drop(s);
        let (_s, r) = StateStore::open(dir.path()).unwrap();
        assert_eq!(banned(&r), ["192.0.2.10", "192.0.2.9"], "{case}");
    }
}

#[test]
fn positions_are_written_once_and_carried_through_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = StateStore::open(dir.path()).unwrap();
    s.position("sshd:/a".into(), position(10));
    s.position("sshd:/b".into(), position(20));
    s.commit().unwrap();
    let len = log_len(dir.path());

    // A source that did not move costs nothing.
    s.position("sshd:/a".into(), position(10));
    assert!(!s.is_dirty());
    s.commit().unwrap();
    assert_eq!(log_len(dir.path()), len);

    // Only the last of several moves is written; a move back to the written one cancels it.
    s.position("sshd:/a".into(), position(11));
    s.position("sshd:/a".into(), position(12));
    s.position("sshd:/b".into(), position(21));
    s.position("sshd:/b".into(), position(20));
    s.commit().unwrap();
    let (_, r) = {
        drop(s);
        StateStore::open(dir.path()).unwrap()
    };
    assert_eq!(r.records, 3, "two first positions and one move");
    assert_eq!(r.positions["sshd:/a"], position(12));

    // The caller passes only bans: the store adds every position it knows.
    let (mut s, _) = StateStore::open(dir.path()).unwrap();
    s.position("sshd:/c".into(), position(30));
    s.compact(vec![Record::Ban(ban("192.0.2.1", 100))]).unwrap();
    assert_eq!(s.positions().len(), 3);
    drop(s);
    let (_s, r) = StateStore::open(dir.path()).unwrap();
    assert_eq!(r.records, 4);
    assert_eq!(r.positions["sshd:/a"], position(12));
    assert_eq!(r.positions["sshd:/b"], position(20));
    assert_eq!(r.positions["sshd:/c"], position(30));
}

#[test]
fn a_position_whose_commit_failed_is_written_again() {
    // Taking it as written would skip it forever (until the source moves).
    let dir = tempfile::tempdir().unwrap();
    let (mut s, faults) = store_with_one_ban(dir.path());
    faults.disk_full_after(0);
    s.position("sshd:/a".into(), position(10));
    assert!(s.commit().is_err());
    assert!(s.positions().is_empty());
    faults.disk_has_space();
    s.position("sshd:/a".into(), position(10));
    assert!(s.is_dirty());
    s.commit().unwrap();
    drop(s);
    let (_s, r) = StateStore::open(dir.path()).unwrap();
    assert_eq!(r.positions["sshd:/a"], position(10));
}

#[test]
fn a_position_appended_as_a_record_is_deduplicated_too() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = StateStore::open(dir.path()).unwrap();
    let record = Record::Position {
        source: "sshd:/a".into(),
        position: position(10),
    };
    s.append(&record);
    s.commit().unwrap();
    s.append(&record);
    assert!(!s.is_dirty());
}

/// A tmpfs of 64 KiB mounted on a temp dir, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `Err` says why it could not be mounted.
    fn mount() -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Tmpfs { dir })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn a_really_full_disk_loses_only_the_failed_commit() {
    // The same as the injected ENOSPC, on a real filesystem that runs out of space.
    let tmpfs = match Tmpfs::mount() {
        Ok(t) => t,
        Err(why) if std::env::var_os("CI").is_none() => {
            eprintln!("SKIPPED a_really_full_disk_loses_only_the_failed_commit: no tmpfs ({why})");
            return;
        }
        Err(why) => panic!("CI is set and a tmpfs cannot be mounted: {why}"),
    };
    let dir = tmpfs.dir.path().join("state");
    let filler = tmpfs.dir.path().join("filler");
    fs::write(&filler, vec![0u8; 40 * 1024]).unwrap();
    let (mut s, _) = StateStore::open(&dir).unwrap();
    let mut committed = 0u32;
    let error = loop {
        // Ten records a commit: the one that does not fit is written in part.
        for n in 0..10 {
            let host = committed * 10 + n;
            s.append(&Record::Ban(ban(
                &format!("10.0.{}.{}", host / 256, host % 256),
                100,
            )));
        }
        match s.commit() {
            Ok(()) => committed += 1,
            Err(e) => break e,
        }
        assert!(committed < 1_000, "the tmpfs never filled up");
    };
    match &error {
        StateError::Io { source, .. } => {
            assert_eq!(source.raw_os_error(), Some(nix::libc::ENOSPC), "{error}")
        }
        other => panic!("{other}"),
    }
    assert!(committed > 0);
    assert!(!s.is_poisoned());
    fs::remove_file(&filler).unwrap();
    s.append(&Record::Ban(ban("192.0.2.1", 100)));
    s.commit().unwrap();
    drop(s);
    let (_s, r) = StateStore::open(&dir).unwrap();
    assert_eq!(r.damaged, 0, "the partial write was cut back");
    assert_eq!(r.bans.len(), committed as usize * 10 + 1);
}
