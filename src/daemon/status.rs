//! Building the replies of `status` and `banned` from the core's state.
//!
//! Receives the tracker, the configuration, the sources' counters and positions; emits the
//! protocol's reply structures. Read-only.

use std::sync::atomic::Ordering;

use crate::banner::backend::{SetKind, set_name};
use crate::config::{Config, JailConfig, JailKind, Source};
use crate::control::protocol::{BanEntry, JailDetail, JailSummary, Reply, SourceStatus};
use crate::jail::JailName;
use crate::state::Position;
use crate::tracker::Tracker;

use super::sources::Sources;

fn kind_name(jail: &JailConfig) -> &'static str {
    match jail.kind {
        JailKind::Log { .. } => "log",
        JailKind::Recidive => "recidive",
        JailKind::Manual => "manual",
    }
}

/// `status`: every enabled jail with its counters.
pub fn summary(config: &Config, tracker: &Tracker) -> Reply {
    let jails = config
        .enabled()
        .map(|j| JailSummary {
            name: j.name.to_string(),
            kind: kind_name(j).to_string(),
            stats: tracker.stats(&j.name).unwrap_or_default().into(),
        })
        .collect();
    Reply {
        jails: Some(jails),
        ..Reply::ok()
    }
}

/// `status JAIL`: one jail in detail.
pub fn detail(config: &Config, tracker: &Tracker, sources: &Sources, name: &str) -> Reply {
    let Some(jail) = config.enabled().find(|j| j.name.as_str() == name) else {
        return Reply::error(format!("no enabled jail named {name:?}"));
    };
    let source = sources.of(&jail.name);
    let counters = source.map(|s| &s.counters);
    let positions: Vec<(String, Position)> = source
        .and_then(|s| s.positions.lock().ok().map(|p| p.clone()))
        .unwrap_or_default();
    let load = |f: fn(&super::matching::SourceCounters) -> &std::sync::atomic::AtomicU64| {
        counters.map_or(0, |c| f(c).load(Ordering::Relaxed))
    };
    let (filter, mode) = match &jail.kind {
        JailKind::Log { filter, .. } => (
            Some(filter.name.clone()),
            Some(filter.filter.mode().to_string()),
        ),
        _ => (None, None),
    };
    let mut banned: Vec<String> = tracker
        .settled()
        .filter(|b| b.jail == jail.name)
        .map(|b| b.target.to_string())
        .collect();
    banned.sort();
    let detail = JailDetail {
        name: jail.name.to_string(),
        kind: kind_name(jail).to_string(),
        filter,
        mode,
        sources: source_status(jail, &positions),
        stats: tracker.stats(&jail.name).unwrap_or_default().into(),
        lines_read: load(|c| &c.lines),
        lines_matched: load(|c| &c.failures),
        lines_skipped: load(|c| &c.skipped),
        maxretry: jail.policy.recidive.unwrap_or(jail.policy.maxretry),
        findtime: jail.policy.findtime,
        bantime: jail.policy.bantime.seconds(),
        sets: [SetKind::Addr4, SetKind::Addr6, SetKind::Net4, SetKind::Net6]
            .iter()
            .map(|k| set_name(&jail.name, *k))
            .collect(),
        banned,
    };
    Reply {
        jail: Some(detail),
        ..Reply::ok()
    }
}

/// The files a jail follows (with their offsets) or its journal (with its cursor).
fn source_status(jail: &JailConfig, positions: &[(String, Position)]) -> Vec<SourceStatus> {
    let JailKind::Log { source, .. } = &jail.kind else {
        return Vec::new();
    };
    let prefix = format!("{}:", jail.name);
    match source {
        Source::Files { paths, .. } => {
            let mut seen: Vec<SourceStatus> = positions
                .iter()
                .filter_map(|(key, p)| {
                    let path = key.strip_prefix(&prefix)?;
                    let Position::File { offset, .. } = p else {
                        return None;
                    };
                    Some(SourceStatus {
                        name: path.to_string(),
                        position: Some(offset.to_string()),
                    })
                })
                .collect();
            // Patterns that match nothing yet are listed too, without a position.
            for pattern in paths {
                if !seen.iter().any(|s| &s.name == pattern) && !pattern.contains(['*', '?']) {
                    seen.push(SourceStatus {
                        name: pattern.clone(),
                        position: None,
                    });
                }
            }
            seen.sort_by(|a, b| a.name.cmp(&b.name));
            seen
        }
        Source::Journal { matches, .. } => {
            let key = format!("{prefix}journal");
            let cursor = positions.iter().find_map(|(k, p)| match p {
                Position::Journal { cursor } if *k == key => Some(cursor.clone()),
                _ => None,
            });
            vec![SourceStatus {
                name: format!("journal {}", matches.join(" "))
                    .trim_end()
                    .to_string(),
                position: cursor,
            }]
        }
    }
}

/// `banned`: every active ban, by jail then start.
pub fn banned(tracker: &Tracker, jail: Option<&str>) -> Reply {
    if let Some(name) = jail
        && !tracker.jails().iter().any(|j| j.as_str() == name)
    {
        return Reply::error(format!("no enabled jail named {name:?}"));
    }
    let mut bans: Vec<BanEntry> = tracker
        .settled()
        .filter(|b| jail.is_none_or(|j| b.jail.as_str() == j))
        .map(|b| BanEntry {
            jail: b.jail.to_string(),
            target: b.target.to_string(),
            since: b.since,
            expires: b.expires,
            count: b.count,
            origin: b.origin,
        })
        .collect();
    bans.sort_by(|a, b| (&a.jail, a.since, &a.target).cmp(&(&b.jail, b.since, &b.target)));
    Reply {
        bans: Some(bans),
        ..Reply::ok()
    }
}

/// Parses a jail name from a request and checks the jail is enabled.
pub fn enabled_jail(config: &Config, name: &str) -> Result<JailName, String> {
    config
        .enabled()
        .find(|j| j.name.as_str() == name)
        .map(|j| j.name.clone())
        .ok_or_else(|| {
            let names: Vec<&str> = config.enabled().map(|j| j.name.as_str()).collect();
            format!(
                "no enabled jail named {name:?} (enabled: {})",
                names.join(", ")
            )
        })
}
