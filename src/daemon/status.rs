//! Building the replies of `status` and `banned` from the core's state.
//!
//! Receives the tracker, the configuration, the sources' counters and positions; emits the
//! protocol's reply structures. Read-only.

use std::sync::atomic::Ordering;

use crate::config::{Config, JailConfig, JailKind, Source};
use crate::control::protocol::{
    BanEntryRef, ErrorCode, JailDetail, JailSummary, Reply, SharedLine, SourceStatus,
};
use crate::state::Position;
use nftjail_backend::{SetKind, set_name};
use nftjail_core::jail::JailName;
use nftjail_core::tracker::{Ban, Tracker};

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
        return Reply::refuse(
            ErrorCode::UnknownJail,
            format!("no enabled jail named {name:?}"),
        );
    };
    let source = sources.of(&jail.name);
    let counters = source.map(|s| &s.stage.counters);
    let positions: Vec<(String, Position)> = source
        .and_then(|s| s.stage.positions.lock().ok().map(|p| p.clone()))
        .unwrap_or_default();
    let load = |f: fn(&crate::filter::SourceCounters) -> &std::sync::atomic::AtomicU64| {
        counters.map_or(0, |c| f(c).load(Ordering::Relaxed))
    };
    let (filter, mode) = match &jail.kind {
        JailKind::Log { filter, .. } => (Some(filter.name.clone()), Some(filter.filter.mode())),
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
        maxbans: jail.policy.recidive,
        ports: crate::config::effective::ports(&jail.ports),
        lines_too_old: load(|c| &c.too_old),
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

/// `banned`: every active ban, by jail then start, as a reply carrying one [`SharedLine`]
/// (see [`banned_line`]).
pub fn banned(tracker: &Tracker, jail: Option<&str>) -> Reply {
    match banned_line(tracker, jail) {
        Ok(line) => Reply::shared(line),
        Err(refusal) => Reply::refuse(ErrorCode::UnknownJail, refusal),
    }
}

/// The `banned` reply (every active ban of `jail`, or of all jails, by jail, start, then
/// address in numeric order, IPv4 before IPv6, addresses before prefixes) serialized once,
/// straight from the tracker, into a chunked [`SharedLine`]: no owned copy of any ban and no
/// buffer bigger than a chunk but the sort's (8 bytes a ban), so that it costs its JSON size
/// once however many clients write it and gives its memory back when they are done. The bytes
/// only change when the bans do: a caller may keep the line and hand it out again until the
/// bans change. `Err`: why it is refused (no such jail).
pub fn banned_line(tracker: &Tracker, jail: Option<&str>) -> Result<SharedLine, String> {
    if let Some(name) = jail
        && !tracker.jails().iter().any(|j| j.as_str() == name)
    {
        return Err(format!("no enabled jail named {name:?}"));
    }
    let mut bans: Vec<&Ban> = tracker
        .settled()
        .filter(|b| jail.is_none_or(|j| b.jail.as_str() == j))
        .collect();
    bans.sort_unstable_by(|a, b| {
        (a.jail.as_str(), a.since, &a.target).cmp(&(b.jail.as_str(), b.since, &b.target))
    });
    Ok(SharedLine::banned(bans.iter().map(|b| BanEntryRef {
        jail: b.jail.as_str(),
        target: &b.target,
        since: b.since,
        expires: b.expires,
        count: b.count,
        origin: &b.origin,
    })))
}

/// The `banned` lines of one generation of the active bans, handed out again until the bans
/// change, so that a client polling `banned` costs the core an `Arc` clone instead of a build.
/// The caller owns the generation: it must change whenever any active ban does (a ban, an
/// unban, a refresh, an expiry). Holds one line per jail filter asked for (at most the number
/// of jails plus one), until the generation changes.
#[derive(Debug, Default)]
pub struct BannedCache {
    generation: u64,
    lines: Vec<(Option<String>, SharedLine)>,
}

impl BannedCache {
    /// The `banned` reply for `jail` at `generation`, built only if this generation has not
    /// built it yet.
    pub fn reply(&mut self, generation: u64, tracker: &Tracker, jail: Option<&str>) -> Reply {
        if generation != self.generation {
            self.lines.clear();
            self.generation = generation;
        }
        if let Some((_, line)) = self.lines.iter().find(|(j, _)| j.as_deref() == jail) {
            return Reply::shared(line.clone());
        }
        match banned_line(tracker, jail) {
            Ok(line) => {
                self.lines.push((jail.map(str::to_string), line.clone()));
                Reply::shared(line)
            }
            Err(refusal) => Reply::refuse(ErrorCode::UnknownJail, refusal),
        }
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::config::BanTime;
    use crate::control::protocol::ReplyLine;
    use nftjail_core::tracker::{Escalation, IgnoreList, JailPolicy, Origin};

    fn policy(jail: &str) -> JailPolicy {
        JailPolicy {
            name: jail.parse().unwrap(),
            maxretry: 3,
            findtime: 600,
            bantime: BanTime::For(Duration::from_secs(3_600)),
            escalation: Escalation::default(),
            ignore: Arc::new(IgnoreList::new([])),
            fold_v6: None,
            maxtracked: 1_000,
            recidive: None,
            ignoreself: false,
        }
    }

    fn ban(jail: &str, target: &str, since: i64) -> Ban {
        Ban {
            jail: jail.parse().unwrap(),
            target: target.parse().unwrap(),
            since,
            expires: Some(since + 3_600),
            count: 1,
            origin: Origin::Manual,
        }
    }

    #[test]
    fn banned_is_one_shared_line_by_jail_start_and_address() {
        let mut tracker = Tracker::new(vec![policy("sshd"), policy("manual")], 86_400, 1);
        let now = 1_800_000_000;
        tracker.restore(
            [
                ban("sshd", "192.0.2.9", now),
                ban("sshd", "192.0.2.10", now),
                ban("manual", "2001:db8::/48", now - 5),
                ban("sshd", "192.0.2.1", now - 1),
            ],
            [],
            now,
        );
        let reply = banned(&tracker, None);
        let ReplyLine::Shared(line) = reply.into_line() else {
            panic!("banned is not shared");
        };
        let back: Reply = serde_json::from_slice(&line.to_vec()).unwrap();
        let order: Vec<(String, String)> = back
            .bans
            .unwrap()
            .into_iter()
            .map(|b| (b.jail, b.target))
            .collect();
        let want = [
            ("manual", "2001:db8::/48"),
            ("sshd", "192.0.2.1"),
            ("sshd", "192.0.2.9"),
            ("sshd", "192.0.2.10"),
        ];
        assert_eq!(
            order,
            want.map(|(j, t)| (j.to_string(), t.to_string())),
            "jail, then since, then the address"
        );
        let one = banned_line(&tracker, Some("manual")).unwrap();
        assert!(
            String::from_utf8_lossy(&one.to_vec()).contains("2001:db8::/48"),
            "only the jail asked for"
        );
        let refused = banned(&tracker, Some("nosuch"));
        assert!(!refused.ok && refused.line.is_none());
    }

    #[test]
    fn the_cache_builds_once_per_generation() {
        let mut tracker = Tracker::new(vec![policy("sshd")], 86_400, 1);
        let now = 1_800_000_000;
        tracker.restore([ban("sshd", "192.0.2.9", now)], [], now);
        let mut cache = BannedCache::default();
        let line = |reply: Reply| reply.line.expect("a shared reply");
        let a = line(cache.reply(1, &tracker, None));
        let b = line(cache.reply(1, &tracker, None));
        assert!(a.same_buffer(&b), "same generation, same buffer");
        let jail = line(cache.reply(1, &tracker, Some("sshd")));
        assert!(!jail.same_buffer(&a), "another filter, another line");
        tracker.restore([ban("sshd", "192.0.2.10", now)], [], now);
        let c = line(cache.reply(2, &tracker, None));
        assert!(!c.same_buffer(&a), "a new generation is built anew");
        assert!(String::from_utf8_lossy(&c.to_vec()).contains("192.0.2.10"));
        assert!(!cache.reply(2, &tracker, Some("nosuch")).ok);
    }
}
