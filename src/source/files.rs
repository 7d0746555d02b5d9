//! A file source: the files of one jail's `logpath`, followed on their own thread.
//!
//! Receives path patterns (a `*`/`?` wildcard is allowed in the last component) and saved
//! positions; emits every line and, after each round, the positions reached. It wakes on
//! inotify events for the files' directories (the `notify` crate) and, as a fallback for
//! filesystems without inotify and for directories that do not exist yet, every
//! `poll_interval`. A file with a saved position is resumed there. A file seen for the first
//! time is read from its beginning — the filter skips, without a regex, what was logged more
//! than `findtime` ago, so an attack in progress when nftjail is installed still counts — unless
//! its pattern is in `tail` (fail2ban's `logpath = PATH tail`): then a file found at start-up is
//! read from its end (one that appears later is still read whole: it is new).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use super::tail::{Start, Tailer};
use super::{Item, Sink, SourceHandle, position_key};
use crate::state::Position;

/// What wakes a file source.
enum Wake {
    Changed,
    Stop,
}

/// The files of one jail.
#[derive(Debug, Clone)]
pub struct FileSource {
    /// Prefix of position keys (the jail's name).
    pub jail: String,
    pub patterns: Vec<String>,
    /// Never use inotify, only polling (`backend = "polling"`).
    pub poll_only: bool,
    pub poll_interval: Duration,
    /// Lines longer than this are skipped and counted.
    pub max_line: usize,
    /// Patterns (among `patterns`) whose files found at start-up are read from their end.
    pub tail: Vec<String>,
}

/// One `logpath` entry split into a directory and a file-name pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    dir: PathBuf,
    name: String,
}

impl Pattern {
    fn parse(text: &str) -> Pattern {
        let path = Path::new(text);
        let dir = path
            .parent()
            .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
        let name = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        Pattern { dir, name }
    }

    fn is_glob(&self) -> bool {
        self.name.contains(['*', '?'])
    }

    /// The files that match now.
    fn expand(&self) -> Vec<PathBuf> {
        if !self.is_glob() {
            return vec![self.dir.join(&self.name)];
        }
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut found: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| wildcard(self.name.as_bytes(), n.as_bytes()))
            })
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        found.sort();
        found
    }
}

/// Shell-style matching of `*` and `?` (no character classes).
pub(crate) fn wildcard(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while n < name.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == name[n]) {
            p += 1;
            n += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some(p);
            mark = n;
            p += 1;
        } else if let Some(s) = star {
            p = s + 1;
            mark += 1;
            n = mark;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Starts following `source` on a thread of its own.
pub fn spawn(
    source: FileSource,
    saved: HashMap<String, Position>,
    sink: Box<dyn Sink>,
) -> std::io::Result<SourceHandle> {
    let (tx, rx) = mpsc::channel();
    let stop_tx = tx.clone();
    let name = format!("source-{}", source.jail);
    let thread = thread::Builder::new()
        .name(name)
        .spawn(move || run(source, saved, sink, tx, rx))?;
    Ok(SourceHandle::new(thread, move || {
        let _ = stop_tx.send(Wake::Stop);
    }))
}

fn run(
    source: FileSource,
    saved: HashMap<String, Position>,
    mut sink: Box<dyn Sink>,
    tx: Sender<Wake>,
    rx: Receiver<Wake>,
) {
    let patterns: Vec<Pattern> = source.patterns.iter().map(|p| Pattern::parse(p)).collect();
    let tail: Vec<Pattern> = source.tail.iter().map(|p| Pattern::parse(p)).collect();
    let mut watcher = if source.poll_only {
        None
    } else {
        let tx = tx.clone();
        notify::recommended_watcher(move |_event: notify::Result<notify::Event>| {
            let _ = tx.send(Wake::Changed);
        })
        .map_err(|e| tracing::warn!(jail = %source.jail, error = %e, "inotify unavailable, polling only"))
        .ok()
    };
    let mut watched: Vec<PathBuf> = Vec::new();
    let mut tailers: BTreeMap<PathBuf, Tailer> = BTreeMap::new();
    let mut first_round = true;
    let mut failing: HashMap<PathBuf, String> = HashMap::new();
    loop {
        if let Some(w) = watcher.as_mut() {
            for p in &patterns {
                if !watched.contains(&p.dir) && w.watch(&p.dir, RecursiveMode::NonRecursive).is_ok()
                {
                    watched.push(p.dir.clone());
                }
            }
        }
        for pattern in &patterns {
            for path in pattern.expand() {
                tailers.entry(path.clone()).or_insert_with(|| {
                    let key = position_key(&source.jail, &path);
                    let start = match saved.get(&key) {
                        Some(p) => Start::Saved(p.clone()),
                        None if first_round && tail.contains(pattern) => Start::End,
                        // First sight: read back (a file appearing later is new: read it whole).
                        None => Start::Beginning,
                    };
                    Tailer::new(&path, start, source.max_line)
                });
            }
        }
        first_round = false;
        let mut positions = Vec::with_capacity(tailers.len());
        for (path, tailer) in tailers.iter_mut() {
            let result = tailer.poll(&mut |line| sink.item(Item::Line(line)));
            match result {
                Ok(()) => {
                    if failing.remove(path).is_some() {
                        tracing::info!(jail = %source.jail, path = %path.display(), "log readable again");
                    }
                }
                // Reported once per distinct error, then retried every round.
                Err(e) => {
                    let text = e.to_string();
                    if failing.get(path) != Some(&text) {
                        tracing::warn!(jail = %source.jail, path = %path.display(), error = %text, "cannot read log");
                        failing.insert(path.clone(), text);
                    }
                }
            }
            if let Some(p) = tailer.position() {
                positions.push((position_key(&source.jail, path), p));
            }
        }
        let skipped: u64 = tailers.values().map(Tailer::too_long).sum();
        sink.checkpoint(&positions, skipped);
        match rx.recv_timeout(source.poll_interval) {
            Ok(Wake::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Ok(Wake::Changed) | Err(RecvTimeoutError::Timeout) => {}
        }
        // Many events for one burst of writes: one round handles them all.
        while let Ok(wake) = rx.try_recv() {
            if matches!(wake, Wake::Stop) {
                return;
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        let cases = [
            ("*.log", "mail.log", true),
            ("*.log", "mail.log.1", false),
            ("mail*", "mail.log", true),
            ("m?il.log", "mail.log", true),
            ("*", "", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("access-*.log", "access-site1.log", true),
        ];
        for (p, n, want) in cases {
            assert_eq!(wildcard(p.as_bytes(), n.as_bytes()), want, "{p} vs {n}");
        }
    }

    use std::io::Write;
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    /// Collects what a source delivers.
    #[derive(Clone, Default)]
    pub(crate) struct Collect {
        pub lines: Arc<Mutex<Vec<String>>>,
        pub positions: Arc<Mutex<HashMap<String, Position>>>,
    }

    impl Sink for Collect {
        fn item(&mut self, item: Item<'_>) {
            let text = match item {
                Item::Line(l) => String::from_utf8_lossy(l).into_owned(),
                Item::Journal(j) => format!(
                    "{}[{}]: {}",
                    j.identifier.unwrap_or("-"),
                    j.pid.unwrap_or(0),
                    String::from_utf8_lossy(j.message)
                ),
            };
            self.lines.lock().unwrap().push(text);
        }

        fn checkpoint(&mut self, positions: &[(String, Position)], _skipped: u64) {
            self.positions
                .lock()
                .unwrap()
                .extend(positions.iter().cloned());
        }
    }

    impl Collect {
        /// Waits (up to 10 s) until a checkpoint holds the position of `key`: the file has been
        /// looked at (a file read from its end is positioned at its first look, not at start).
        pub fn wait_for_position(&self, key: &str) {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !self.positions.lock().unwrap().contains_key(key) {
                assert!(Instant::now() < deadline, "no position for {key}");
                thread::sleep(Duration::from_millis(10));
            }
        }

        /// Waits (up to 10 s) until `n` items arrived; returns them.
        pub fn wait_for(&self, n: usize) -> Vec<String> {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let lines = self.lines.lock().unwrap().clone();
                if lines.len() >= n || Instant::now() > deadline {
                    return lines;
                }
                thread::sleep(Duration::from_millis(10));
            }
        }
    }

    fn append(path: &Path, text: &str) {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }

    #[test]
    fn follows_globs_rotation_and_new_files_on_inotify() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.log");
        append(&a, "old line, before start\n");
        let collect = Collect::default();
        let source = FileSource {
            jail: "web".into(),
            patterns: vec![format!("{}/*.log", dir.path().display())],
            poll_only: false,
            // Long enough that only inotify can explain a prompt delivery.
            poll_interval: Duration::from_secs(30),
            max_line: 1024,
            tail: vec![format!("{}/*.log", dir.path().display())],
        };
        let handle = spawn(source, HashMap::new(), Box::new(collect.clone())).unwrap();
        // Regression (flaky under load): a line written before the source's first look at the
        // file was taken for history. Write once it has looked.
        collect.wait_for_position(&position_key("web", &a));
        append(&a, "one\n");
        assert_eq!(collect.wait_for(1), ["one"]);
        std::fs::rename(&a, dir.path().join("a.log.1")).unwrap();
        append(&a, "two, in the new a.log\n");
        assert_eq!(collect.wait_for(2)[1], "two, in the new a.log");
        append(&dir.path().join("b.log"), "three, in a new file\n");
        assert_eq!(collect.wait_for(3)[2], "three, in a new file");
        handle.stop();
        let positions = collect.positions.lock().unwrap().clone();
        let key = position_key("web", &a);
        assert!(
            matches!(positions.get(&key), Some(Position::File { offset: 22, .. })),
            "{positions:?}"
        );
    }

    #[test]
    fn polling_only_still_delivers_and_saved_positions_resume() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.log");
        append(&a, "seen before\nunseen 1\n");
        let meta = std::fs::metadata(&a).unwrap();
        use std::os::unix::fs::MetadataExt;
        let saved = HashMap::from([(
            position_key("j", &a),
            Position::File {
                dev: meta.dev(),
                ino: meta.ino(),
                offset: 12,
            },
        )]);
        let collect = Collect::default();
        let source = FileSource {
            jail: "j".into(),
            patterns: vec![a.display().to_string()],
            poll_only: true,
            poll_interval: Duration::from_millis(20),
            max_line: 1024,
            tail: Vec::new(),
        };
        let handle = spawn(source, saved, Box::new(collect.clone())).unwrap();
        assert_eq!(collect.wait_for(1), ["unseen 1"]);
        append(&a, "unseen 2\n");
        assert_eq!(collect.wait_for(2), ["unseen 1", "unseen 2"]);
        drop(handle);
    }

    // Regression: a log seen for the first time was read from its end, so an attack in
    // progress when nftjail was installed was never counted.
    #[test]
    fn a_file_seen_for_the_first_time_is_read_whole_unless_tailed() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.log"), dir.path().join("b.log"));
        append(&a, "before 1\nbefore 2\n");
        append(&b, "history of b\n");
        let collect = Collect::default();
        let source = FileSource {
            jail: "j".into(),
            patterns: vec![a.display().to_string(), b.display().to_string()],
            poll_only: true,
            poll_interval: Duration::from_millis(20),
            max_line: 1024,
            tail: vec![b.display().to_string()],
        };
        let handle = spawn(source, HashMap::new(), Box::new(collect.clone())).unwrap();
        assert_eq!(collect.wait_for(2), ["before 1", "before 2"]);
        collect.wait_for_position(&position_key("j", &b));
        append(&b, "new in b\n");
        assert_eq!(collect.wait_for(3)[2], "new in b", "b starts at its end");
        drop(handle);
    }

    #[test]
    fn patterns_split_directory_and_name() {
        let p = Pattern::parse("/var/log/nginx/*.log");
        assert_eq!(
            (p.dir.as_path(), p.name.as_str(), p.is_glob()),
            (Path::new("/var/log/nginx"), "*.log", true)
        );
        assert!(!Pattern::parse("/var/log/auth.log").is_glob());
    }
}
