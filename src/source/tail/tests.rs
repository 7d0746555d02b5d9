//! The tailer against real files in a temporary directory: rotation, truncation, deletion.

use std::fs::{self, OpenOptions};
use std::io::Write;

use super::*;

struct Log {
    dir: tempfile::TempDir,
}

impl Log {
    fn new() -> Log {
        Log {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn append(&self, name: &str, text: &str) {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path(name))
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
}

fn poll(t: &mut Tailer) -> Vec<String> {
    let mut lines = Vec::new();
    t.poll(&mut |l| lines.push(String::from_utf8_lossy(l).into_owned()))
        .unwrap();
    lines
}

#[test]
fn first_sight_starts_at_the_end() {
    let log = Log::new();
    log.append("a.log", "old 1\nold 2\n");
    let mut t = Tailer::new(&log.path("a.log"), Start::End, 1024);
    assert!(poll(&mut t).is_empty());
    log.append("a.log", "new 1\nnew 2\n");
    assert_eq!(poll(&mut t), ["new 1", "new 2"]);
    assert!(poll(&mut t).is_empty());
}

#[test]
fn partial_lines_wait_for_their_newline_and_crlf_is_trimmed() {
    let log = Log::new();
    log.append("a.log", "");
    let mut t = Tailer::new(&log.path("a.log"), Start::End, 1024);
    poll(&mut t);
    log.append("a.log", "hal");
    assert!(poll(&mut t).is_empty());
    let Some(Position::File { offset, .. }) = t.position() else {
        panic!()
    };
    assert_eq!(offset, 0, "the position stays before the unfinished line");
    log.append("a.log", "f line\r\nnext");
    assert_eq!(poll(&mut t), ["half line"]);
    log.append("a.log", "\n");
    assert_eq!(poll(&mut t), ["next"]);
}

#[test]
fn rename_rotation_loses_no_line() {
    let log = Log::new();
    log.append("a.log", "");
    let mut t = Tailer::new(&log.path("a.log"), Start::End, 1024);
    poll(&mut t);
    log.append("a.log", "before rotation\n");
    fs::rename(log.path("a.log"), log.path("a.log.1")).unwrap();
    // The daemon has not reopened yet: it still writes to the renamed file.
    log.append("a.log.1", "written to the renamed file\n");
    log.append("a.log", "first of the new file\n");
    assert_eq!(
        poll(&mut t),
        [
            "before rotation",
            "written to the renamed file",
            "first of the new file"
        ]
    );
    // And a little later, once more to the old one (kept open for a few rounds).
    log.append("a.log.1", "late line to the old file\n");
    log.append("a.log", "second of the new file\n");
    assert_eq!(
        poll(&mut t),
        ["late line to the old file", "second of the new file"]
    );
    assert_eq!(t.rotations(), 1);
}

#[test]
fn copytruncate_restarts_at_zero() {
    let log = Log::new();
    log.append("a.log", "");
    let mut t = Tailer::new(&log.path("a.log"), Start::End, 1024);
    poll(&mut t);
    log.append("a.log", "one\ntwo\n");
    assert_eq!(poll(&mut t), ["one", "two"]);
    OpenOptions::new()
        .write(true)
        .open(log.path("a.log"))
        .unwrap()
        .set_len(0)
        .unwrap();
    log.append("a.log", "three\n");
    assert_eq!(poll(&mut t), ["three"]);
}

// Regression: copytruncate, then more bytes written than were read before the tailer looked
// again; the truncation went unnoticed and the first new line was lost.
#[test]
fn copytruncate_regrown_past_the_offset_is_still_noticed() {
    let log = Log::new();
    log.append("a.log", "");
    let mut t = Tailer::new(&log.path("a.log"), Start::End, 1024);
    poll(&mut t);
    log.append("a.log", "Nov 23 07:00:00 one\n");
    assert_eq!(poll(&mut t), ["Nov 23 07:00:00 one"]);
    OpenOptions::new()
        .write(true)
        .open(log.path("a.log"))
        .unwrap()
        .set_len(0)
        .unwrap();
    log.append("a.log", "Nov 23 07:00:01 two\nNov 23 07:00:02 three\n");
    assert_eq!(
        poll(&mut t),
        ["Nov 23 07:00:01 two", "Nov 23 07:00:02 three"]
    );
    // A file that started short keeps being recognised as it grows.
    log.append("a.log", "Nov 23 07:00:03 four\n");
    assert_eq!(poll(&mut t), ["Nov 23 07:00:03 four"]);
}

#[test]
fn a_file_missing_at_start_is_read_whole_when_it_appears() {
    let log = Log::new();
    let mut t = Tailer::new(&log.path("late.log"), Start::End, 1024);
    assert!(poll(&mut t).is_empty());
    assert_eq!(t.position(), None);
    log.append("late.log", "first\nsecond\n");
    assert_eq!(poll(&mut t), ["first", "second"]);
}

#[test]
fn a_deleted_file_is_followed_again_when_recreated() {
    let log = Log::new();
    log.append("a.log", "");
    let mut t = Tailer::new(&log.path("a.log"), Start::End, 1024);
    poll(&mut t);
    log.append("a.log", "last words\n");
    fs::remove_file(log.path("a.log")).unwrap();
    assert_eq!(poll(&mut t), ["last words"]);
    assert!(poll(&mut t).is_empty());
    log.append("a.log", "reborn\n");
    assert_eq!(poll(&mut t), ["reborn"]);
}

#[test]
fn over_long_lines_are_skipped_and_counted() {
    let log = Log::new();
    log.append("a.log", "");
    let mut t = Tailer::new(&log.path("a.log"), Start::End, 16);
    poll(&mut t);
    log.append(
        "a.log",
        &format!("short\n{}\nafter\n", "x".repeat(1_000_000)),
    );
    assert_eq!(poll(&mut t), ["short", "after"]);
    // An over-long line split across writes.
    log.append("a.log", &"y".repeat(10));
    assert!(poll(&mut t).is_empty());
    log.append("a.log", &"y".repeat(10));
    assert!(poll(&mut t).is_empty());
    log.append("a.log", "yyy\nok\n");
    assert_eq!(poll(&mut t), ["ok"]);
    assert_eq!(t.too_long(), 2);
}

#[test]
fn a_saved_position_resumes_exactly_on_the_same_file_only() {
    let log = Log::new();
    log.append("a.log", "");
    let mut t = Tailer::new(&log.path("a.log"), Start::End, 1024);
    poll(&mut t);
    log.append("a.log", "seen\n");
    poll(&mut t);
    let saved = t.position().unwrap();
    drop(t);
    log.append("a.log", "written while down\n");
    let mut t = Tailer::new(&log.path("a.log"), Start::Saved(saved.clone()), 1024);
    assert_eq!(
        poll(&mut t),
        ["written while down"],
        "no line missed, none counted twice"
    );
    // Rotated while down: the file at the path is another inode, read whole.
    drop(t);
    fs::rename(log.path("a.log"), log.path("a.log.1")).unwrap();
    log.append("a.log", "new file while down\n");
    let mut t = Tailer::new(&log.path("a.log"), Start::Saved(saved), 1024);
    assert_eq!(poll(&mut t), ["new file while down"]);
}

#[test]
fn binary_garbage_passes_through_as_lines_without_panic() {
    let log = Log::new();
    log.append("a.log", "");
    let mut t = Tailer::new(&log.path("a.log"), Start::End, 1024);
    poll(&mut t);
    let garbage: Vec<u8> = (0..=255u8).cycle().take(5_000).collect();
    OpenOptions::new()
        .append(true)
        .open(log.path("a.log"))
        .unwrap()
        .write_all(&garbage)
        .unwrap();
    let mut n = 0;
    t.poll(&mut |_| n += 1).unwrap();
    // 19 full 256-byte cycles plus 136 bytes, each part holding one newline (at offset 10).
    assert_eq!(n, 20);
}
