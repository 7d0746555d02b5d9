//! A journal source: systemd journal entries of one jail, followed from a saved cursor.
//!
//! Receives `FIELD=value` matches, optional journal directories or files, and the saved cursor;
//! emits entries (MESSAGE, SYSLOG_IDENTIFIER, _PID, __REALTIME_TIMESTAMP) and cursor
//! checkpoints. It reads through `journalctl --follow --output=json`, the system's own reader,
//! so every journal format and compression systemd writes is understood (a pure-Rust reader
//! was measured faster, 246k vs 53k entries/s, but sshd and mail logs come nowhere near
//! either). If `journalctl` exits it is restarted from the last cursor with a backoff, so no
//! entry is lost or read twice. First sight (no cursor) reads back `read_back` (the jail's
//! findtime, as fail2ban's systemd backend does): it starts after the last entry logged before
//! then — a cursor saved at once, so a restart soon after reads nothing twice — or, when the
//! journal holds none that old, at that instant. Without `read_back` it starts at the journal's
//! end.

use std::borrow::Cow;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde::Deserialize;

use super::{Item, JournalItem, Sink, SourceHandle};
use crate::state::Position;

/// The journal entries of one jail.
#[derive(Debug, Clone)]
pub struct JournalSource {
    pub jail: String,
    /// `FIELD=value` terms; `+` separates alternatives (journalctl's syntax).
    pub matches: Vec<String>,
    /// Journal directories or files instead of the system journal.
    pub paths: Vec<PathBuf>,
    /// The `journalctl` program.
    pub journalctl: PathBuf,
    /// On first sight, read back this much; `None`: start at the journal's end.
    pub read_back: Option<Duration>,
}

impl JournalSource {
    /// The key its cursor is saved under.
    pub fn key(&self) -> String {
        format!("{}:journal", self.jail)
    }

    /// journalctl reading this source's journal as JSON, with `options` before the matches.
    fn journalctl(&self, options: &[String]) -> Command {
        let mut cmd = Command::new(&self.journalctl);
        cmd.args(["--output=json", "--all", "--no-pager", "--quiet"])
            .args(options);
        for path in &self.paths {
            let flag = if path.is_dir() {
                "--directory"
            } else {
                "--file"
            };
            cmd.arg(format!("{flag}={}", path.display()));
        }
        cmd.args(&self.matches);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Following from `cursor`; without one, from `since` (Unix seconds) or from the end.
    fn command(&self, cursor: Option<&str>, since: Option<i64>) -> Command {
        let from = match (cursor, since) {
            (Some(c), _) => format!("--after-cursor={c}"),
            (None, Some(t)) => format!("--since=@{t}"),
            (None, None) => "--lines=0".to_string(),
        };
        self.journalctl(&["--follow".to_string(), from])
    }

    /// The cursor of the last entry the matches select that was logged before `until` (Unix
    /// seconds), or now: where a first sight starts, saved at once so that a restart soon after
    /// neither skips nor reads again what comes after it.
    fn last_cursor(&self, until: Option<i64>) -> Option<String> {
        let mut options = vec!["--lines=1".to_string()];
        if let Some(t) = until {
            // journalctl 252 prints nothing for `--lines=1 --until=…`; read backwards instead.
            options.push("--reverse".to_string());
            options.push(format!("--until=@{t}"));
        }
        let out = self.journalctl(&options).output().ok()?;
        let last = out.stdout.split(|b| *b == b'\n').rfind(|l| !l.is_empty())?;
        serde_json::from_slice::<Entry<'_>>(last)
            .ok()
            .map(|e| e.cursor.into_owned())
    }
}

/// A MESSAGE as journalctl prints it: text, or an array of bytes when it is not UTF-8.
#[derive(Deserialize)]
#[serde(untagged)]
enum Field<'a> {
    #[serde(borrow)]
    Text(Cow<'a, str>),
    Bytes(Vec<u8>),
}

impl Field<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Field::Text(t) => t.as_bytes(),
            Field::Bytes(b) => b,
        }
    }
}

#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(rename = "MESSAGE", borrow)]
    message: Option<Field<'a>>,
    #[serde(rename = "SYSLOG_IDENTIFIER", borrow)]
    identifier: Option<Cow<'a, str>>,
    #[serde(rename = "_PID", borrow)]
    pid: Option<Cow<'a, str>>,
    #[serde(rename = "__REALTIME_TIMESTAMP", borrow)]
    realtime: Cow<'a, str>,
    #[serde(rename = "__CURSOR", borrow)]
    cursor: Cow<'a, str>,
}

/// Starts following the journal on a thread of its own.
pub fn spawn(
    source: JournalSource,
    saved: Option<String>,
    sink: Box<dyn Sink>,
) -> std::io::Result<SourceHandle> {
    let child: Arc<Mutex<Option<Child>>> = Arc::default();
    let stopping = Arc::new(AtomicBool::new(false));
    let (child2, stopping2) = (child.clone(), stopping.clone());
    let name = format!("journal-{}", source.jail);
    let thread = thread::Builder::new()
        .name(name)
        .spawn(move || run(source, saved, sink, child2, stopping2))?;
    Ok(SourceHandle::new(thread, move || {
        stopping.store(true, Ordering::SeqCst);
        if let Some(c) = child
            .lock()
            .expect("invariant: journal lock not poisoned")
            .as_mut()
        {
            let _ = c.kill();
        }
    }))
}

fn run(
    source: JournalSource,
    mut cursor: Option<String>,
    mut sink: Box<dyn Sink>,
    slot: Arc<Mutex<Option<Child>>>,
    stopping: Arc<AtomicBool>,
) {
    let key = source.key();
    let mut skipped = 0u64;
    let mut since = None;
    if cursor.is_none() {
        since = source.read_back.map(|back| {
            let now = chrono::Utc::now().timestamp();
            now.saturating_sub(i64::try_from(back.as_secs()).unwrap_or(i64::MAX))
        });
        cursor = source.last_cursor(since);
        if let Some(c) = &cursor {
            sink.checkpoint(&[(key.clone(), Position::Journal { cursor: c.clone() })], 0);
        }
    }
    let mut backoff = Duration::from_millis(500);
    while !stopping.load(Ordering::SeqCst) {
        let mut child = match source.command(cursor.as_deref(), since).spawn() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(jail = %source.jail, program = %source.journalctl.display(), error = %e, "cannot start journalctl");
                thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        let stdout = child.stdout.take().expect("invariant: stdout is piped");
        let mut stderr = child.stderr.take().expect("invariant: stderr is piped");
        *slot.lock().expect("invariant: journal lock not poisoned") = Some(child);
        if stopping.load(Ordering::SeqCst) {
            // Stopped between spawn and publishing the child: stop it ourselves.
            if let Some(c) = slot
                .lock()
                .expect("invariant: journal lock not poisoned")
                .as_mut()
            {
                let _ = c.kill();
            }
        }
        let mut reader = BufReader::with_capacity(1 << 16, stdout);
        let mut line = Vec::new();
        let mut read_any = false;
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            match serde_json::from_slice::<Entry<'_>>(&line) {
                Ok(entry) => {
                    read_any = true;
                    if let Some(message) = &entry.message {
                        sink.item(Item::Journal(JournalItem {
                            message: message.bytes(),
                            identifier: entry.identifier.as_deref(),
                            pid: entry.pid.as_deref().and_then(|p| p.parse().ok()),
                            realtime_usec: entry.realtime.parse().unwrap_or(0),
                        }));
                    }
                    cursor = Some(entry.cursor.into_owned());
                }
                Err(_) => skipped += 1,
            }
            // Checkpoint whenever we have caught up with what journalctl printed.
            if reader.buffer().is_empty()
                && let Some(c) = &cursor
            {
                sink.checkpoint(
                    &[(key.clone(), Position::Journal { cursor: c.clone() })],
                    skipped,
                );
            }
        }
        // What was read after the last catch-up is handled: its cursor is the position now.
        if let Some(c) = &cursor {
            sink.checkpoint(
                &[(key.clone(), Position::Journal { cursor: c.clone() })],
                skipped,
            );
        }
        let status = slot
            .lock()
            .expect("invariant: journal lock not poisoned")
            .take()
            .map(|mut c| c.wait());
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        let mut err = String::new();
        let _ = stderr.read_to_string(&mut err);
        tracing::warn!(jail = %source.jail, status = ?status, error = %err.trim(), "journalctl exited; restarting from the last cursor");
        if read_any {
            backoff = Duration::from_millis(500);
        }
        thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse_text_and_byte_messages() {
        let text = br#"{"MESSAGE":"Failed password for root from 192.0.2.1","SYSLOG_IDENTIFIER":"sshd","_PID":"77","__REALTIME_TIMESTAMP":"1795423888452770","__CURSOR":"s=1;i=2","OTHER":"x"}"#;
        let e: Entry<'_> = serde_json::from_slice(text).unwrap();
        assert_eq!(
            e.message.unwrap().bytes(),
            b"Failed password for root from 192.0.2.1"
        );
        assert_eq!(
            (e.identifier.as_deref(), e.pid.as_deref(), e.cursor.as_ref()),
            (Some("sshd"), Some("77"), "s=1;i=2")
        );
        let bytes = br#"{"MESSAGE":[102,111,255],"__REALTIME_TIMESTAMP":"1","__CURSOR":"c"}"#;
        let e: Entry<'_> = serde_json::from_slice(bytes).unwrap();
        assert_eq!(e.message.unwrap().bytes(), [102, 111, 255]);
    }

    #[test]
    fn command_line_follows_from_the_cursor_or_the_end() {
        let s = JournalSource {
            jail: "sshd".into(),
            matches: vec!["_SYSTEMD_UNIT=ssh.service".into()],
            paths: vec!["/nonexistent/x.journal".into()],
            journalctl: "journalctl".into(),
            read_back: None,
        };
        let args = |c: Option<&str>| {
            s.command(c, None)
                .get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        };
        let first = args(None);
        assert!(first.contains(&"--lines=0".to_string()), "{first:?}");
        assert!(
            first.contains(&"--file=/nonexistent/x.journal".to_string()),
            "{first:?}"
        );
        assert_eq!(first.last().unwrap(), "_SYSTEMD_UNIT=ssh.service");
        assert!(args(Some("s=1")).contains(&"--after-cursor=s=1".to_string()));
        let since = |c: Option<&str>| {
            s.command(c, Some(1_800_000_000))
                .get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        };
        assert!(since(None).contains(&"--since=@1800000000".to_string()));
        assert!(
            since(Some("s=1")).contains(&"--after-cursor=s=1".to_string()),
            "a cursor wins"
        );
    }
}
