//! Log sources against real files and real journal files.

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nftjail::source::journal::{self, JournalSource};
use nftjail::source::{Item, Sink};
use nftjail::state::Position;

const REMOTE: &str = "/lib/systemd/systemd-journal-remote";

/// Appends entries `(identifier, pid, message)` of unit ssh.service to a journal file, as
/// journald would write them, through systemd-journal-remote. Panics when the tool is missing
/// (the tests that use it are `#[ignore = "needs systemd-journal-remote"]`).
pub fn write_journal(file: &std::path::Path, entries: &[(&str, u32, String)]) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros();
    let stamped: Vec<(u128, &str, u32, String)> = entries
        .iter()
        .enumerate()
        .map(|(i, (ident, pid, message))| (now + i as u128, *ident, *pid, message.clone()))
        .collect();
    write_journal_at(file, &stamped);
}

/// Like [`write_journal`], each entry `(realtime µs, identifier, pid, message)` logged at its
/// own time.
pub fn write_journal_at(file: &std::path::Path, entries: &[(u128, &str, u32, String)]) {
    assert!(
        std::path::Path::new(REMOTE).exists(),
        "{REMOTE} is missing: apt-get install systemd-journal-remote"
    );
    let mut export = String::new();
    for (t, ident, pid, message) in entries {
        export.push_str(&format!(
            "__REALTIME_TIMESTAMP={t}\n__MONOTONIC_TIMESTAMP={t}\n_BOOT_ID=0123456789abcdef0123456789abcdef\n_HOSTNAME=mail\n\
             _SYSTEMD_UNIT=ssh.service\nSYSLOG_IDENTIFIER={ident}\n_PID={pid}\nMESSAGE={message}\n\n"
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("entries.export");
    std::fs::write(&input, export).unwrap();
    let status = Command::new(REMOTE)
        .arg(format!("--output={}", file.display()))
        .arg(&input)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "systemd-journal-remote failed");
}

/// Collects what a source delivers.
#[derive(Clone, Default)]
struct Collect {
    items: Arc<Mutex<Vec<String>>>,
    cursor: Arc<Mutex<Option<String>>>,
    /// How many items had arrived at the first checkpoint.
    first_checkpoint_after: Arc<Mutex<Option<usize>>>,
}

impl Sink for Collect {
    fn item(&mut self, item: Item<'_>) {
        if let Item::Journal(j) = item {
            let text = format!(
                "{}[{}]: {}",
                j.identifier.unwrap_or("-"),
                j.pid.unwrap_or(0),
                String::from_utf8_lossy(j.message)
            );
            self.items.lock().unwrap().push(text);
        }
    }

    fn checkpoint(&mut self, positions: &[(String, Position)], _skipped: u64) {
        let seen = self.items.lock().unwrap().len();
        self.first_checkpoint_after
            .lock()
            .unwrap()
            .get_or_insert(seen);
        for (_, p) in positions {
            if let Position::Journal { cursor } = p {
                *self.cursor.lock().unwrap() = Some(cursor.clone());
            }
        }
    }
}

impl Collect {
    fn wait_for(&self, n: usize) -> Vec<String> {
        crate::daemon::eventually(&format!("{n} journal entries"), || {
            self.items.lock().unwrap().len() >= n
        });
        self.items.lock().unwrap().clone()
    }
}

#[test]
#[ignore = "needs systemd-journal-remote"]
fn the_journal_source_follows_and_resumes_from_its_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("remote.journal");
    write_journal(&file, &[("sshd", 1, "before start: never read".into())]);
    let source = JournalSource {
        jail: "sshd".into(),
        matches: vec!["_SYSTEMD_UNIT=ssh.service".into()],
        paths: vec![file.clone()],
        journalctl: "journalctl".into(),
        read_back: None,
    };
    let collect = Collect::default();
    let handle = journal::spawn(source.clone(), None, Box::new(collect.clone())).unwrap();
    // Regression: a first sight saves the journal's tail cursor at once; a reload right after
    // start used to begin again at the end and skip what came meanwhile.
    crate::daemon::eventually("the tail cursor saved at start", || {
        collect.cursor.lock().unwrap().is_some()
    });
    // Until journalctl has reached the end, an entry may land before it: write until one arrives.
    let mut n = 10;
    while collect.items.lock().unwrap().is_empty() {
        write_journal(
            &file,
            &[(
                "sshd-session",
                n,
                format!("Failed password for root from 192.0.2.1 port {n} ssh2"),
            )],
        );
        std::thread::sleep(Duration::from_millis(150));
        n += 1;
        assert!(n < 80, "journalctl never delivered");
    }
    let first = collect.items.lock().unwrap()[0].clone();
    assert!(
        first.starts_with("sshd-session[") && first.contains("from 192.0.2.1"),
        "{first}"
    );
    assert!(!first.contains("never read"));
    std::thread::sleep(Duration::from_millis(300));
    handle.stop();
    let cursor = collect
        .cursor
        .lock()
        .unwrap()
        .clone()
        .expect("a cursor was saved");
    // Written while the daemon was down: read after restart, and nothing twice.
    write_journal(&file, &[("sshd", 43, "while down".into())]);
    let again = Collect::default();
    let handle = journal::spawn(source, Some(cursor), Box::new(again.clone())).unwrap();
    assert_eq!(again.wait_for(1), ["sshd[43]: while down"]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(again.items.lock().unwrap().len(), 1);
    handle.stop();
}

/// First sight with a read-back: the entries of the last `findtime` are delivered, older ones
/// are not, and the cursor of the last older entry is saved before anything is read (a restart
/// right after start neither skips nor re-reads).
#[test]
#[ignore = "needs systemd-journal-remote"]
fn the_journal_source_reads_back_from_now_minus_findtime() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("remote.journal");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros();
    let minute = 60_000_000u128;
    let entries: Vec<(u128, &str, u32, String)> = [
        (30, "old 1"),
        (20, "old 2"),
        (5, "recent 1"),
        (1, "recent 2"),
    ]
    .iter()
    .enumerate()
    .map(|(i, (ago, text))| (now - ago * minute, "sshd", i as u32 + 1, text.to_string()))
    .collect();
    write_journal_at(&file, &entries);
    let source = JournalSource {
        jail: "sshd".into(),
        matches: vec!["_SYSTEMD_UNIT=ssh.service".into()],
        paths: vec![file],
        journalctl: "journalctl".into(),
        read_back: Some(Duration::from_secs(600)),
    };
    let collect = Collect::default();
    let handle = journal::spawn(source, None, Box::new(collect.clone())).unwrap();
    assert_eq!(
        collect.wait_for(2),
        ["sshd[3]: recent 1", "sshd[4]: recent 2"]
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(collect.items.lock().unwrap().len(), 2, "nothing older");
    assert_eq!(
        *collect.first_checkpoint_after.lock().unwrap(),
        Some(0),
        "a cursor saved before the first entry was read"
    );
    handle.stop();
}
