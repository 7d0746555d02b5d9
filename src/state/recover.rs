//! Opening the state directory: the lock, the replay, and what becomes of a damaged log.
//!
//! Receives the state directory. Emits the log opened for appending, its length (all of it
//! durable) and the replay. A torn last line (an interrupted write) is cut off. Any other
//! damage, or a non-empty file without one intact record, is kept aside as
//! `state.log.corrupt-<UTC time>` (a hard link to the original, or a copy) before the log is
//! replaced by its intact lines, and is reported loudly. Never truncates or rewrites a file it
//! could not parse without keeping the original, and never opens a symlink or a non-regular
//! file.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::disk::{Create, Disk, open_regular, remove_if_present};
use super::frame::{Damage, for_each_line, scan};
use super::{FILE, LOCK_FILE, NEW_FILE, Recovered, StateError};

/// The state directory, locked and replayed.
pub(super) struct Opened {
    pub file: File,
    /// The log's length: everything in it is durable.
    pub len: u64,
    pub recovered: Recovered,
    pub lock: Flock<File>,
}

/// Locks `dir` (creating it if needed), replays its log and repairs what needs repair.
pub(super) fn open(disk: &Disk, dir: &Path) -> Result<Opened, StateError> {
    fs::create_dir_all(dir).map_err(|source| StateError::Io {
        action: "create",
        path: dir.to_path_buf(),
        source,
    })?;
    let lock = lock(dir)?;
    // A compaction that crashed before its rename leaves a partial new file: drop it.
    let new_path = dir.join(NEW_FILE);
    remove_if_present(&new_path).map_err(|source| StateError::Io {
        action: "remove",
        path: new_path,
        source,
    })?;
    let path = dir.join(FILE);
    let io = |action, source| StateError::Io {
        action,
        path: path.clone(),
        source,
    };
    let file = open_regular(&path, Create::IfMissing)?;
    let scan = scan(&file).map_err(|e| io("read", e))?;
    let damage = scan.damage();
    let mut recovered = scan.recovered;
    let (file, len) = match damage {
        Damage::None => (file, scan.len),
        Damage::TornTail => {
            disk.set_len(&file, scan.good_len)
                .map_err(|e| io("truncate", e))?;
            disk.sync_data(&file).map_err(|e| io("fsync", e))?;
            tracing::warn!(
                path = %path.display(),
                bytes = scan.len - scan.good_len,
                "cut a torn last line (an interrupted write) off the state log"
            );
            recovered.torn_tail = true;
            (file, scan.good_len)
        }
        damage @ (Damage::Inside | Damage::Unreadable) => {
            let (new, len, aside) = set_aside(disk, dir, &file)?;
            if damage == Damage::Inside {
                tracing::error!(
                    path = %path.display(),
                    kept = %aside.display(),
                    damaged = recovered.damaged,
                    records = recovered.records,
                    "the state log is damaged: its intact records are used, the original is kept aside"
                );
            } else {
                tracing::error!(
                    path = %path.display(),
                    kept = %aside.display(),
                    bytes = scan.len,
                    "the state log holds no intact record: it is kept aside and the state starts empty"
                );
            }
            recovered.moved_aside = Some(aside);
            (new, len)
        }
    };
    Ok(Opened {
        file,
        len,
        recovered,
        lock,
    })
}

/// Takes the directory's lock: one nftjail per state directory.
fn lock(dir: &Path) -> Result<Flock<File>, StateError> {
    let path = dir.join(LOCK_FILE);
    let file = open_regular(&path, Create::IfMissing)?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| match errno {
        Errno::EWOULDBLOCK => StateError::Locked(dir.to_path_buf()),
        errno => StateError::Io {
            action: "lock",
            path,
            source: errno.into(),
        },
    })
}

/// Keeps the damaged log aside and replaces it by its intact lines, in an order where a crash
/// at any point leaves either the original or the repaired log in place (and the original
/// kept). Returns the new log, its length and where the original is.
fn set_aside(disk: &Disk, dir: &Path, damaged: &File) -> Result<(File, u64, PathBuf), StateError> {
    let (path, new_path) = (dir.join(FILE), dir.join(NEW_FILE));
    let result = (|| {
        let new = open_regular(&new_path, Create::New)?;
        let len = copy_intact_lines(disk, damaged, &new).map_err(|(action, source)| {
            let path = if action == "read" { &path } else { &new_path };
            StateError::Io {
                action,
                path: path.clone(),
                source,
            }
        })?;
        let io = |action, path: &Path| {
            let path = path.to_path_buf();
            move |source| StateError::Io {
                action,
                path,
                source,
            }
        };
        disk.sync_all(&new).map_err(io("fsync", &new_path))?;
        let aside = keep_original(disk, dir, &path, damaged)?;
        disk.rename(&new_path, &path)
            .map_err(io("rename", &new_path))?;
        disk.sync_dir(dir).map_err(io("fsync", dir))?;
        Ok((new, len, aside))
    })();
    if result.is_err() {
        let _ = remove_if_present(&new_path);
    }
    result
}

/// Writes the intact lines of `from` to `to`; returns the bytes written. An error says whether
/// reading or writing failed.
fn copy_intact_lines(
    disk: &Disk,
    from: &File,
    to: &File,
) -> Result<u64, (&'static str, io::Error)> {
    let mut chunk = Vec::new();
    let mut len = 0u64;
    let mut write_error = None;
    let mut flush = |chunk: &mut Vec<u8>| {
        len += chunk.len() as u64;
        let written = disk.write_all(to, chunk);
        chunk.clear();
        written.inspect_err(|e| write_error = Some(e.kind()))
    };
    let read = for_each_line(from, |line| {
        if let (Some(bytes), Some(_)) = (line.bytes, line.record()) {
            chunk.extend_from_slice(bytes);
            chunk.push(b'\n');
            if chunk.len() >= 1 << 20 {
                flush(&mut chunk)?;
            }
        }
        Ok(())
    })
    .and_then(|_| flush(&mut chunk));
    match read {
        Ok(()) => Ok(len),
        Err(e) if write_error.is_some() => Err(("write", e)),
        Err(e) => Err(("read", e)),
    }
}

/// Keeps the original log under a new name, `state.log.corrupt-YYYYMMDDTHHMMSSZ`: a hard link
/// (the same file, nothing copied), or a copy where the filesystem has no hard links.
fn keep_original(
    disk: &Disk,
    dir: &Path,
    path: &Path,
    original: &File,
) -> Result<PathBuf, StateError> {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    for n in 0..100u32 {
        let aside = match n {
            0 => dir.join(format!("{FILE}.corrupt-{stamp}")),
            n => dir.join(format!("{FILE}.corrupt-{stamp}.{n}")),
        };
        match fs::hard_link(path, &aside) {
            Ok(()) => return Ok(aside),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(_) => {
                copy(disk, original, &aside)?;
                return Ok(aside);
            }
        }
    }
    Err(StateError::Io {
        action: "find a free name beside",
        path: path.to_path_buf(),
        source: io::ErrorKind::AlreadyExists.into(),
    })
}

fn copy(disk: &Disk, original: &File, to: &Path) -> Result<(), StateError> {
    let copy = open_regular(to, Create::New)?;
    let result = (|| {
        let mut reader = original;
        reader.seek(SeekFrom::Start(0))?;
        let mut buffer = vec![0; 1 << 16];
        loop {
            match reader.read(&mut buffer)? {
                0 => break,
                n => disk.write_all(&copy, &buffer[..n])?,
            }
        }
        disk.sync_all(&copy)
    })();
    result.map_err(|source| StateError::Io {
        action: "copy the damaged log to",
        path: to.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Arc;

    use super::*;
    use crate::state::frame::encode;
    use crate::state::{Faults, Position, Record, StateStore, test_ban as ban};

    /// A log written by nftjail before the state store learned about disk faults.
    const EXISTING_LOG: &str = r#"0eef58c8 {"ban":{"jail":"sshd","target":"192.0.2.1","since":1800000000,"expires":1800000600,"count":2,"origin":"failures"}}
c34e4bf5 {"ban":{"jail":"sshd","target":"2001:db8::/64","since":1800000001,"expires":null,"count":2,"origin":"manual"}}
85c32d0a {"ban":{"jail":"sshd","target":"198.51.100.7","since":1800000002,"expires":1800003602,"count":2,"origin":"adopted"}}
d029a121 {"unban":{"jail":"sshd","target":"198.51.100.7","at":1800000100}}
545383a6 {"history":{"target":"203.0.113.9","jail":"recidive","at":1799990000}}
7974e0e2 {"position":{"source":"sshd:/var/log/auth.log","position":{"file":{"dev":2049,"ino":131077,"offset":88123}}}}
b31b6efc {"position":{"source":"postfix:journal","position":{"journal":{"cursor":"s=abc;i=1f;b=def"}}}}
"#;

    fn line(target: &str) -> Vec<u8> {
        let mut out = Vec::new();
        encode(&Record::Ban(ban(target, 100)), &mut out);
        out
    }

    /// The files in `dir` whose name starts with `state.log.corrupt-`.
    fn set_aside(dir: &Path) -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("state.log.corrupt-")
            })
            .collect();
        found.sort();
        found
    }

    #[test]
    fn an_existing_log_replays_unchanged() {
        // The on-disk format is a contract: logs written by earlier versions must replay as-is.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        fs::write(&path, EXISTING_LOG).unwrap();
        let (store, r) = StateStore::open(dir.path()).unwrap();
        assert_eq!((r.records, r.damaged, r.torn_tail), (7, 0, false));
        assert_eq!(r.moved_aside, None);
        let mut bans: Vec<String> = r.bans.keys().map(|(_, t)| t.to_string()).collect();
        bans.sort();
        assert_eq!(bans, ["192.0.2.1", "2001:db8::/64"]);
        assert_eq!(r.history.len(), 4, "three bans and one history entry");
        assert_eq!(
            r.positions["sshd:/var/log/auth.log"],
            Position::File {
                dev: 2049,
                ino: 131_077,
                offset: 88_123
            }
        );
        assert_eq!(
            r.positions["postfix:journal"],
            Position::Journal {
                cursor: "s=abc;i=1f;b=def".into()
            }
        );
        assert_eq!(store.positions(), &r.positions);
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            EXISTING_LOG,
            "untouched"
        );
    }

    #[test]
    fn a_torn_tail_is_cut_and_the_log_stays_usable() {
        // kill -9 in the middle of a write (or a crash that leaves zeroed blocks): only the
        // last line is damaged, and cutting it destroys nothing that was reported durable.
        let half = line("192.0.2.9")[..40].to_vec();
        let mut bad_crc = line("192.0.2.9");
        bad_crc[0] = if bad_crc[0] == b'0' { b'1' } else { b'0' };
        let tails: [(&str, Vec<u8>); 3] = [
            ("half a line", half),
            ("a whole line failing its checksum", bad_crc),
            ("zeroed blocks", vec![0; 4096]),
        ];
        for (case, tail) in tails {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(FILE);
            let good = line("192.0.2.1");
            fs::write(&path, [good.as_slice(), &tail].concat()).unwrap();
            {
                let (mut s, r) = StateStore::open(dir.path()).unwrap();
                assert_eq!(
                    (r.bans.len(), r.damaged, r.torn_tail),
                    (1, 1, true),
                    "{case}"
                );
                assert_eq!(r.moved_aside, None, "{case}");
                assert_eq!(fs::read(&path).unwrap(), good, "{case}");
                s.append(&Record::Ban(ban("192.0.2.2", 100)));
                s.commit().unwrap();
            }
            let (_s, r) = StateStore::open(dir.path()).unwrap();
            assert_eq!((r.bans.len(), r.damaged), (2, 0), "{case}");
            assert!(set_aside(dir.path()).is_empty(), "{case}");
        }
    }

    #[test]
    fn damage_inside_the_log_keeps_the_original_aside_and_uses_the_good_records() {
        // Before, a damaged line in the middle was skipped but the file could later be
        // rewritten with no trace of what it held.
        let altered = String::from_utf8(line("192.0.2.2"))
            .unwrap()
            .replace("192.0.2.2", "192.0.2.7")
            .into_bytes();
        let (one, three) = (line("192.0.2.1"), line("192.0.2.3"));
        let cases: [(&str, Vec<u8>, usize); 4] = [
            (
                "an altered line",
                [one.as_slice(), &altered, &three].concat(),
                1,
            ),
            (
                "a torn line followed by good ones",
                [one.as_slice(), &three[..20], b"\n", &three].concat(),
                1,
            ),
            (
                "two damaged lines at the end",
                [one.as_slice(), &three, &altered, &altered[..20]].concat(),
                2,
            ),
            (
                "an overlong line",
                [one.as_slice(), &vec![b'x'; 200_000], b"\n", &three].concat(),
                1,
            ),
        ];
        for (case, content, damaged) in cases {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(FILE);
            fs::write(&path, &content).unwrap();
            {
                let (_s, r) = StateStore::open(dir.path()).unwrap();
                assert_eq!(r.damaged, damaged, "{case}");
                assert_eq!(r.bans.len(), 2, "{case}: the good records count");
                let aside = r.moved_aside.expect(case);
                assert_eq!(
                    set_aside(dir.path()),
                    std::slice::from_ref(&aside),
                    "{case}"
                );
                assert_eq!(fs::read(&aside).unwrap(), content, "{case}: original kept");
                assert_eq!(
                    fs::read(&path).unwrap(),
                    [one.as_slice(), &three].concat(),
                    "{case}: the log holds the good lines"
                );
            }
            let (_s, r) = StateStore::open(dir.path()).unwrap();
            assert_eq!((r.damaged, r.bans.len()), (0, 2), "{case}");
            assert!(r.moved_aside.is_none(), "{case}: set aside once");
            assert!(!dir.path().join(NEW_FILE).exists(), "{case}");
        }
    }

    #[test]
    fn a_file_without_one_record_is_moved_aside_not_truncated() {
        // Before, an unparseable state.log was cut to 0 bytes.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let garbage = b"this is not a state log\n\x00\xff binary\nmore".to_vec();
        fs::write(&path, &garbage).unwrap();
        let (mut s, r) = StateStore::open(dir.path()).unwrap();
        assert_eq!(r.records, 0);
        let aside = r.moved_aside.expect("moved aside");
        assert!(
            aside
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("state.log.corrupt-2"),
            "{aside:?}"
        );
        assert_eq!(fs::read(&aside).unwrap(), garbage);
        assert_eq!(fs::read(&path).unwrap(), b"");
        s.append(&Record::Ban(ban("192.0.2.1", 100)));
        s.commit().unwrap();
        assert_eq!(fs::read(&aside).unwrap(), garbage, "still untouched");
    }

    #[test]
    fn a_second_damaged_log_in_the_same_second_gets_its_own_name() {
        let dir = tempfile::tempdir().unwrap();
        for content in ["garbage one\n", "garbage two\n"] {
            fs::write(dir.path().join(FILE), content).unwrap();
            let (_s, r) = StateStore::open(dir.path()).unwrap();
            assert!(r.moved_aside.is_some());
        }
        let kept: Vec<String> = set_aside(dir.path())
            .iter()
            .map(|p| fs::read_to_string(p).unwrap())
            .collect();
        assert_eq!(kept.len(), 2);
        assert!(kept.contains(&"garbage one\n".to_string()));
        assert!(kept.contains(&"garbage two\n".to_string()));
    }

    #[test]
    fn a_state_log_or_lock_that_is_not_a_regular_file_is_refused_untouched() {
        // Before, a symlinked state.log was truncated: the file it pointed to was destroyed.
        type Make = fn(&Path, &Path);
        let cases: [(&str, &str, Make, &str); 5] = [
            (
                FILE,
                "a symlink",
                |at, target| std::os::unix::fs::symlink(target, at).unwrap(),
                "symlink",
            ),
            (
                FILE,
                "a dangling symlink",
                |at, target| {
                    std::os::unix::fs::symlink(target.with_extension("missing"), at).unwrap()
                },
                "symlink",
            ),
            (
                FILE,
                "a directory",
                |at, _| fs::create_dir(at).unwrap(),
                "directory",
            ),
            (
                FILE,
                "a fifo",
                |at, _| nix::unistd::mkfifo(at, nix::sys::stat::Mode::S_IRWXU).unwrap(),
                "fifo",
            ),
            (
                LOCK_FILE,
                "a symlink",
                |at, target| std::os::unix::fs::symlink(target, at).unwrap(),
                "symlink",
            ),
        ];
        for (name, case, make, kind) in cases {
            let dir = tempfile::tempdir().unwrap();
            let outside = tempfile::tempdir().unwrap();
            let target = outside.path().join("precious");
            fs::write(&target, "precious\n").unwrap();
            make(&dir.path().join(name), &target);
            match StateStore::open(dir.path()) {
                Err(e @ StateError::NotRegular { .. }) => {
                    let message = e.to_string();
                    assert!(
                        message.contains(name) && message.contains(kind),
                        "{name} {case}: {message}"
                    );
                }
                Err(e) => panic!("{name} {case}: {e}"),
                Ok(_) => panic!("{name} {case}: opened"),
            }
            assert_eq!(
                fs::read_to_string(&target).unwrap(),
                "precious\n",
                "{name} {case}"
            );
            assert!(
                !target.with_extension("missing").exists(),
                "{name} {case}: created"
            );
        }
    }

    #[test]
    fn a_stale_new_file_from_a_crashed_compaction_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE), line("192.0.2.1")).unwrap();
        let mut partial = fs::File::create(dir.path().join(NEW_FILE)).unwrap();
        partial.write_all(&line("192.0.2.9")[..10]).unwrap();
        let (_s, r) = StateStore::open(dir.path()).unwrap();
        assert_eq!(r.bans.len(), 1);
        assert!(!dir.path().join(NEW_FILE).exists());
    }

    #[test]
    fn a_torn_tail_that_cannot_be_cut_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        let content = [line("192.0.2.1").as_slice(), b"0123"].concat();
        fs::write(dir.path().join(FILE), &content).unwrap();
        let faults = Arc::new(Faults::new());
        faults.fail_truncates(1);
        assert!(matches!(
            StateStore::open_with(dir.path(), faults),
            Err(StateError::Io {
                action: "truncate",
                ..
            })
        ));
        assert_eq!(fs::read(dir.path().join(FILE)).unwrap(), content);
    }
}
