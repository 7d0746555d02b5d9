//! What `nftjail check` shows of a jail: the value of every key in force, and where it was set.
//!
//! Receives a jail's layers (`[defaults]`, then each drop-in table that names it, in file order)
//! and the jail as validated; emits one [`Setting`] per key that applies to the jail's kind: its
//! value written as a person writes it (`1w`, `all`, `sshd`) and its origin —
//! `jail.d/99-local.toml:4`, `[defaults] nftjail.toml:21`, or `built-in`. It never validates
//! (that is done by then) and never reads a file: it only describes what the layers decided.

use std::path::Path;

use toml::Spanned;

use super::files::FileId;
use super::jail::Layers;
use super::raw::OneOrMany;
use super::{JailConfig, JailKind, Ports, Protocol, Setting, Source};
use nftjail_core::duration::format_seconds;

/// Every key of `jail` with its value and origin, in the order the README lists them.
pub fn settings(l: &Layers<'_>, jail: &JailConfig) -> Vec<Setting> {
    let mut out = Vec::new();
    let mut add =
        |key: &'static str, value: String, origin: String| out.push(Setting { key, value, origin });
    let built_in = || "built-in".to_string();
    add(
        "enabled",
        jail.enabled.to_string(),
        origin(l, l.pick(|r| r.enabled.as_ref())),
    );
    match &jail.kind {
        JailKind::Log { filter, source } => {
            let picked = l.pick(|r| r.filter.as_ref());
            add(
                "filter",
                filter.name.clone(),
                or(
                    origin(l, picked),
                    picked.is_none(),
                    "built-in (the jail's name)",
                ),
            );
            let mode = l.pick(|r| r.mode.as_ref());
            add(
                "mode",
                // A fail2ban filter without a `mode` option has none.
                match filter.filter.mode() {
                    mode if mode.is_empty() => "none".to_string(),
                    mode => mode,
                },
                or(origin(l, mode), mode.is_none(), "built-in (the filter's)"),
            );
            let backend = l.pick(|r| r.backend.as_ref());
            add(
                "backend",
                backend.map_or_else(|| "auto".to_string(), |(_, b)| b.get_ref().clone()),
                origin(l, backend),
            );
            match source {
                Source::Files { paths, tail, .. } => {
                    let written = paths
                        .iter()
                        .map(|p| match tail.contains(p) {
                            true => format!("{p} tail"),
                            false => p.clone(),
                        })
                        .collect::<Vec<_>>()
                        .join(", ");
                    add(
                        "logpath",
                        written,
                        origin(l, l.pick(|r| r.logpath.as_ref())),
                    );
                }
                Source::Journal { matches, paths } => {
                    add(
                        "journalmatch",
                        words_or(matches, "none"),
                        origin(l, l.pick(|r| r.journalmatch.as_ref())),
                    );
                    let shown: Vec<String> =
                        paths.iter().map(|p| p.display().to_string()).collect();
                    add(
                        "journalpath",
                        words_or(&shown, "the system journal"),
                        origin(l, l.pick(|r| r.journalpath.as_ref())),
                    );
                }
            }
            let pattern = l.pick(|r| r.datepattern.as_ref());
            add(
                "datepattern",
                pattern.map_or_else(|| "the filter's".into(), |(_, p)| p.get_ref().clone()),
                origin(l, pattern),
            );
            let zone = l.pick(|r| r.logtimezone.as_ref());
            add(
                "logtimezone",
                zone.map_or_else(|| "local".into(), |(_, z)| z.get_ref().clone()),
                origin(l, zone),
            );
        }
        JailKind::Recidive => add(
            "filter",
            "recidive".to_string(),
            origin(l, l.pick(|r| r.filter.as_ref())),
        ),
        JailKind::Manual => {}
    }
    add("port", ports(&jail.ports), origin(l, l.pick_port()));
    let protocols: Vec<&str> = jail
        .protocols
        .iter()
        .map(|p| match p {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
        .collect();
    add(
        "protocol",
        match jail.ports {
            Ports::All => "all (every port of every protocol)".to_string(),
            Ports::List(_) => protocols.join(", "),
        },
        origin(l, l.pick(|r| r.protocol.as_ref())),
    );
    let policy = &jail.policy;
    match (&jail.kind, policy.recidive) {
        (JailKind::Recidive, Some(maxbans)) => {
            let picked = l.pick(|r| r.maxbans.as_ref());
            let from_maxretry = l.pick(|r| r.maxretry.as_ref());
            let from = match (picked, from_maxretry) {
                (Some(_), _) | (None, None) => origin(l, picked),
                (None, Some(_)) => format!("maxretry, {}", origin(l, from_maxretry)),
            };
            add("maxbans", maxbans.to_string(), from);
        }
        (JailKind::Log { .. }, _) => add(
            "maxretry",
            policy.maxretry.to_string(),
            origin(l, l.pick(|r| r.maxretry.as_ref())),
        ),
        _ => {}
    }
    if !matches!(jail.kind, JailKind::Manual) {
        add(
            "findtime",
            format_seconds(policy.findtime),
            origin(l, l.pick(|r| r.findtime.as_ref())),
        );
    }
    add(
        "bantime",
        policy.bantime.to_string(),
        origin(l, l.pick(|r| r.bantime.as_ref())),
    );
    let ignoreip = l.pick(|r| r.ignoreip.as_ref());
    add(
        "ignoreip",
        match ignoreip {
            Some((_, list)) => match list.get_ref() {
                OneOrMany::One(text) => text.clone(),
                OneOrMany::Many(items) => words_or(items, "none"),
            },
            None => "127.0.0.0/8, ::1".to_string(),
        },
        origin(l, ignoreip),
    );
    add(
        "ignoreself",
        policy.ignoreself.to_string(),
        origin(l, l.pick(|r| r.ignoreself.as_ref())),
    );
    add(
        "ipv6_prefix",
        policy
            .fold_v6
            .map_or_else(|| "none".to_string(), |p| p.to_string()),
        origin(l, l.pick(|r| r.ipv6_prefix.as_ref())),
    );
    if matches!(jail.kind, JailKind::Log { .. }) {
        add(
            "maxtracked",
            policy.maxtracked.to_string(),
            origin(l, l.pick(|r| r.maxtracked.as_ref())),
        );
    }
    let command = |argv: &Option<Vec<String>>| {
        argv.as_ref()
            .map_or_else(|| "none".to_string(), |a| format!("{a:?}"))
    };
    add(
        "on_ban",
        command(&jail.on_ban),
        origin(l, l.pick(|r| r.on_ban.as_ref())),
    );
    add(
        "on_unban",
        command(&jail.on_unban),
        origin(l, l.pick(|r| r.on_unban.as_ref())),
    );
    let e = &policy.escalation;
    add(
        "escalation.increment",
        e.increment.to_string(),
        origin(l, l.pick_escalation(|e| e.increment.as_ref())),
    );
    add(
        "escalation.factor",
        e.factor.to_string(),
        origin(l, l.pick_escalation(|e| e.factor.as_ref())),
    );
    let multipliers: Vec<String> = e.multipliers.iter().map(ToString::to_string).collect();
    add(
        "escalation.multipliers",
        words_or(&multipliers, "none"),
        origin(l, l.pick_escalation(|e| e.multipliers.as_ref())),
    );
    let seconds = |s: Option<u64>| s.map_or_else(|| "none".to_string(), format_seconds);
    add(
        "escalation.maxtime",
        seconds(e.maxtime),
        origin(l, l.pick_escalation(|e| e.maxtime.as_ref())),
    );
    add(
        "escalation.rndtime",
        seconds(e.rndtime),
        origin(l, l.pick_escalation(|e| e.rndtime.as_ref())),
    );
    add(
        "escalation.overalljails",
        e.overalljails.to_string(),
        origin(l, l.pick_escalation(|e| e.overalljails.as_ref())),
    );
    // What the layers say is all there is: a key none of them set is built in.
    for s in &mut out {
        if s.origin.is_empty() {
            s.origin = built_in();
        }
    }
    out
}

/// Where a picked value was written; empty when no layer set it (built in).
fn origin<T>(l: &Layers<'_>, picked: Option<(FileId, &Spanned<T>)>) -> String {
    let Some((file, value)) = picked else {
        return String::new();
    };
    let main = l.layers.first().map(|(id, _)| *id);
    let text = l.files.text(file);
    let line = 1 + text
        .get(..value.span().start)
        .map_or(0, |before| before.matches('\n').count());
    let path = relative(l.files.path(file), main.map(|m| l.files.path(m)));
    if Some(file) == main {
        format!("[defaults] {path}:{line}")
    } else {
        format!("{path}:{line}")
    }
}

/// `origin`, or `fallback` when nothing was picked.
fn or(origin: String, none: bool, fallback: &str) -> String {
    if none { fallback.to_string() } else { origin }
}

/// `path` relative to the main file's directory when it lies inside it.
fn relative(path: &Path, main: Option<&Path>) -> String {
    main.and_then(Path::parent)
        .and_then(|dir| path.strip_prefix(dir).ok())
        .unwrap_or(path)
        .display()
        .to_string()
}

fn words_or(words: &[String], none: &str) -> String {
    if words.is_empty() {
        none.to_string()
    } else {
        words.join(", ")
    }
}

/// Ports as fail2ban users write them: `all`, or `22, 465, 49152:65534`.
pub fn ports(ports: &Ports) -> String {
    match ports {
        Ports::All => "all".to_string(),
        Ports::List(ranges) => ranges
            .iter()
            .map(|r| match r.first == r.last {
                true => r.first.to_string(),
                false => format!("{}:{}", r.first, r.last),
            })
            .collect::<Vec<_>>()
            .join(", "),
    }
}
