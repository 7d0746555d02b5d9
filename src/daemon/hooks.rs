//! `on_ban` / `on_unban`: run an administrator's command after a ban or an unban.
//!
//! Receives done bans and unbans of jails that have a hook, with the log lines that led to the
//! ban; emits child processes. A command is an argument vector, never a shell line: the
//! placeholders `<ip>`, `<jail>`, `<bantime>`, `<bancount>`, `<failures>` and `<matches>` are
//! replaced inside each argument, and the same values are in the environment
//! (`NFTJAIL_ACTION`, `NFTJAIL_JAIL`, `NFTJAIL_IP`, `NFTJAIL_BANTIME`, `NFTJAIL_BANCOUNT`,
//! `NFTJAIL_ORIGIN`, `NFTJAIL_FAILURES`, `NFTJAIL_MATCHES`), so an attacker-chosen user name in a
//! log line can never become shell syntax. Hooks run asynchronously, at most `CONCURRENCY` at a
//! time, each killed after `TIMEOUT`; when too many wait, new ones are dropped with a warning.
//! A hook never delays or blocks a ban.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::process::Command;
use tokio::sync::Semaphore;

use nftjail_core::state::events::cut_at;
use nftjail_core::tracker::Ban;

/// Hooks running at once.
const CONCURRENCY: usize = 4;
/// Hooks waiting for a turn before new ones are dropped.
const MAX_WAITING: usize = 1_000;
/// A hook running longer is killed.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Which event a hook answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Ban,
    Unban,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Ban => "ban",
            Action::Unban => "unban",
        }
    }
}

/// Runs hook commands with a concurrency cap.
#[derive(Clone)]
pub struct HookRunner {
    slots: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
}

impl Default for HookRunner {
    fn default() -> HookRunner {
        HookRunner {
            slots: Arc::new(Semaphore::new(CONCURRENCY)),
            waiting: Arc::default(),
        }
    }
}

/// The most bytes of `<matches>` and `NFTJAIL_MATCHES`. Linux refuses to start a program whose
/// argument or environment string is over 128 KiB (`MAX_ARG_STRLEN`, E2BIG), and the lines
/// are the attacker's text: unbounded, long lines would stop the hook from running at all.
pub const MAX_MATCHES: usize = 64 * 1024;

/// The matched lines for a hook, one per line: the newest that fit in [`MAX_MATCHES`] bytes
/// (a newest line that alone is longer is cut at a character boundary and marked with `…`).
fn bounded_matches(lines: &[String]) -> String {
    let mut start = lines.len();
    let mut size = 0;
    while let Some(line) = start.checked_sub(1).map(|i| &lines[i]) {
        let grown = size + line.len() + usize::from(start < lines.len());
        if grown > MAX_MATCHES {
            break;
        }
        size = grown;
        start -= 1;
    }
    match lines.last() {
        Some(newest) if start == lines.len() => {
            let end = cut_at(newest, MAX_MATCHES - '…'.len_utf8()).unwrap_or(newest.len());
            format!("{}…", &newest[..end])
        }
        _ => lines[start..].join("\n"),
    }
}

/// The values a hook receives.
pub fn values(action: Action, ban: &Ban, matches: &[String]) -> Vec<(&'static str, String)> {
    let bantime = ban
        .expires
        .map_or_else(|| "-1".to_string(), |e| (e - ban.since).to_string());
    vec![
        ("ACTION", action.name().to_string()),
        ("JAIL", ban.jail.to_string()),
        ("IP", ban.target.to_string()),
        ("BANTIME", bantime),
        ("BANCOUNT", ban.count.to_string()),
        ("ORIGIN", ban.origin.to_string()),
        ("FAILURES", matches.len().to_string()),
        ("MATCHES", bounded_matches(matches)),
    ]
}

/// Replaces `<ip>`, `<jail>`, `<bantime>`, `<bancount>`, `<failures>`, `<matches>` (and
/// fail2ban's `<name>` for the jail) inside one argument.
pub fn substitute(arg: &str, values: &[(&'static str, String)]) -> String {
    let mut out = arg.to_string();
    for (key, value) in values {
        out = out.replace(&format!("<{}>", key.to_ascii_lowercase()), value);
    }
    let jail = values
        .iter()
        .find(|(k, _)| *k == "JAIL")
        .map_or("", |(_, v)| v.as_str());
    out.replace("<name>", jail)
}

impl HookRunner {
    /// Starts `command` for `ban` in the background.
    pub fn run(&self, command: &[String], action: Action, ban: &Ban, matches: &[String]) {
        if self.waiting.load(Ordering::Relaxed) >= MAX_WAITING {
            tracing::warn!(jail = %ban.jail, ip = %ban.target, action = action.name(), "too many hooks waiting: this one is dropped");
            return;
        }
        let values = values(action, ban, matches);
        let args: Vec<String> = command.iter().map(|a| substitute(a, &values)).collect();
        let (slots, waiting) = (self.slots.clone(), self.waiting.clone());
        let (jail, ip) = (ban.jail.to_string(), ban.target.to_string());
        waiting.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let permit = slots.acquire_owned().await;
            waiting.fetch_sub(1, Ordering::Relaxed);
            let Ok(_permit) = permit else { return };
            let mut cmd = Command::new(&args[0]);
            cmd.args(&args[1..])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .kill_on_drop(true);
            for (key, value) in &values {
                cmd.env(format!("NFTJAIL_{key}"), value);
            }
            let child = match cmd.spawn() {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(jail = %jail, ip = %ip, program = %args[0], error = %e, "hook cannot start");
                    return;
                }
            };
            match tokio::time::timeout(TIMEOUT, child.wait_with_output()).await {
                Err(_) => {
                    tracing::warn!(jail = %jail, ip = %ip, program = %args[0], "hook killed after {}s", TIMEOUT.as_secs())
                }
                Ok(Err(e)) => {
                    tracing::warn!(jail = %jail, ip = %ip, program = %args[0], error = %e, "hook failed")
                }
                Ok(Ok(out)) if !out.status.success() => {
                    let stderr = String::from_utf8_lossy(&out.stderr);
                    tracing::warn!(jail = %jail, ip = %ip, program = %args[0], status = %out.status, stderr = %stderr.trim(), "hook exited with an error");
                }
                Ok(Ok(_)) => {
                    tracing::debug!(jail = %jail, ip = %ip, program = %args[0], "hook done")
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nftjail_core::tracker::Origin;

    fn ban() -> Ban {
        Ban {
            jail: "sshd".parse().unwrap(),
            target: "192.0.2.7".parse().unwrap(),
            since: 100,
            expires: Some(3_700),
            count: 2,
            origin: Origin::Failures,
        }
    }

    #[test]
    fn placeholders_are_replaced_inside_arguments_only() {
        let v = values(
            Action::Ban,
            &ban(),
            &["line one".into(), "line $(rm -rf /) two".into()],
        );
        assert_eq!(substitute("--ip=<ip>", &v), "--ip=192.0.2.7");
        assert_eq!(
            substitute("<name>/<jail> <bantime>s #<bancount> <failures>", &v),
            "sshd/sshd 3600s #2 2"
        );
        assert_eq!(
            substitute("<matches>", &v),
            "line one\nline $(rm -rf /) two",
            "text stays text: no shell sees it"
        );
        let permanent = Ban {
            expires: None,
            ..ban()
        };
        assert_eq!(
            substitute("<bantime>", &values(Action::Unban, &permanent, &[])),
            "-1"
        );
    }

    /// An attacker who writes long lines must not be able to stop the hook: Linux refuses to
    /// start a program with an argument or environment string over 128 KiB (E2BIG), and
    /// `<matches>` is both here. 40 lines of 8 KiB were 320 KiB.
    #[tokio::test]
    async fn a_hook_runs_whatever_the_attacker_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let lines: Vec<String> = (0..40)
            .map(|n| format!("{n:02} {}", "x".repeat(8 * 1024)))
            .collect();
        let script = format!(
            "printf '%s' \"$NFTJAIL_MATCHES\" | wc -c > {out}; printf '%s' \"$1\" | tail -c 8195 | head -c 2 >> {out}",
            out = out.display()
        );
        let command = vec![
            "/bin/sh".to_string(),
            "-c".into(),
            script,
            "hook".into(),
            "<matches>".into(),
        ];
        HookRunner::default().run(&command, Action::Ban, &ban(), &lines);
        for _ in 0..300 {
            if let Ok(text) = std::fs::read_to_string(&out)
                && text.ends_with("39")
            {
                let size: usize = text.lines().next().unwrap().trim().parse().unwrap();
                assert!(size <= MAX_MATCHES, "{size} bytes");
                assert!(
                    size > MAX_MATCHES - 8 * 1024,
                    "as many lines as fit: {size} bytes"
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "the hook did not run: {:?}",
            std::fs::read_to_string(&out).ok()
        );
    }

    #[test]
    fn matches_keep_the_newest_lines_that_fit() {
        let line = |n: usize, len: usize| format!("{n} {}", "y".repeat(len));
        let lines: Vec<String> = (0..10).map(|n| line(n, 10_000)).collect();
        let kept = bounded_matches(&lines);
        assert!(kept.len() <= MAX_MATCHES);
        assert!(
            kept.starts_with("4 "),
            "the newest six lines: {}",
            &kept[..10]
        );
        assert!(kept.ends_with(&lines[9]));
        assert_eq!(kept.lines().count(), 6);
        // A newest line that alone is too long is cut at a character boundary, marked.
        let huge = format!("{}é{}", "z".repeat(MAX_MATCHES - 4), "z".repeat(1_000));
        let kept = bounded_matches(&[lines[0].clone(), huge]);
        assert!(kept.len() <= MAX_MATCHES, "{}", kept.len());
        assert!(kept.ends_with("z…"), "{}", &kept[kept.len() - 8..]);
        assert_eq!(bounded_matches(&[]), "");
        assert_eq!(
            bounded_matches(&["a".into(), "b".into()]),
            "a\nb",
            "short lines are all kept"
        );
    }

    #[tokio::test]
    async fn hooks_run_with_the_values_in_their_environment() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let script = format!(
            "echo \"$NFTJAIL_ACTION $NFTJAIL_JAIL $NFTJAIL_IP $1\" > {}",
            out.display()
        );
        let command = vec![
            "/bin/sh".to_string(),
            "-c".into(),
            script,
            "hook".into(),
            "<bancount>".into(),
        ];
        HookRunner::default().run(&command, Action::Ban, &ban(), &[]);
        for _ in 0..200 {
            if let Ok(text) = std::fs::read_to_string(&out)
                && !text.is_empty()
            {
                assert_eq!(text.trim(), "ban sshd 192.0.2.7 2");
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the hook did not run");
    }
}
