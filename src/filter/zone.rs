//! The host's local zone (`logtimezone = local`), followed while the daemon runs.
//!
//! Receives the matcher's clock (`now`); emits UTC offsets and instants under the local zone's
//! rules as they are now. The rules come from a TZif file: `/etc/localtime` (what `timedatectl
//! set-timezone` replaces), or the file `TZ` names. The file is looked at (two `stat`s: the link
//! and the file it points at) at most once a second of `now`, and re-read when either changed:
//! a new zone, or new rules for the same zone (a tzdata upgrade rewrites the file the link
//! points at and leaves the link alone, which chrono's `Local` does not notice: it only watches
//! the link). Logs written in the new zone are then read in it within a second, without a
//! reload. This is the filter stage's only I/O, and only for filters in the local zone; a file
//! that cannot be read or parsed means UTC until a readable one appears (as glibc does).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime};

/// Where the host's zone is, unless `TZ` says otherwise.
pub const LOCALTIME: &str = "/etc/localtime";
/// Where zone names in `TZ` (`Europe/Paris`) are looked up.
const ZONEINFO: &str = "/usr/share/zoneinfo";

/// The local zone's rules and where they come from.
#[derive(Debug)]
pub struct LocalZone {
    /// The TZif file followed; `None` for a `TZ` rule string (fixed rules).
    path: Option<PathBuf>,
    rules: tz::TimeZone,
    /// What the file was when read (`None`: unreadable).
    identity: Option<Identity>,
    /// The second of `now` of the last look at the file.
    checked: Option<i64>,
    /// Bumped each time the rules are read anew (for callers' caches).
    generation: u64,
}

/// A file's identity: the link's and the target's device, inode, size and modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    link: (u64, u64, u64, i64, i64),
    target: (u64, u64, u64, i64, i64),
}

impl Identity {
    fn of(path: &Path) -> Option<Identity> {
        let key = |m: fs::Metadata| (m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec());
        Some(Identity {
            link: key(fs::symlink_metadata(path).ok()?),
            target: key(fs::metadata(path).ok()?),
        })
    }
}

impl LocalZone {
    /// The host's zone: the file `TZ` names (`:/path`, `/path`, or a zone name under
    /// /usr/share/zoneinfo) or a `TZ` rule string (`CET-1CEST,M3.5.0,M10.5.0/3`); without
    /// `TZ`, `/etc/localtime`. An empty `TZ` is UTC.
    pub fn system() -> LocalZone {
        match std::env::var("TZ") {
            Err(_) => LocalZone::at(LOCALTIME),
            Ok(tz) if tz.is_empty() => LocalZone::fixed(tz::TimeZone::utc()),
            Ok(tz) => {
                let name = tz.strip_prefix(':').unwrap_or(&tz);
                let file = if name.starts_with('/') {
                    PathBuf::from(name)
                } else {
                    Path::new(ZONEINFO).join(name)
                };
                if !name.contains("..") && file.is_file() {
                    LocalZone::at(file)
                } else {
                    LocalZone::fixed(
                        tz::TimeZone::from_posix_tz(&tz).unwrap_or_else(|_| tz::TimeZone::utc()),
                    )
                }
            }
        }
    }

    /// The zone of the TZif file at `path` (a link or a file), followed as it changes.
    pub fn at(path: impl Into<PathBuf>) -> LocalZone {
        let mut zone = LocalZone {
            path: Some(path.into()),
            rules: tz::TimeZone::utc(),
            identity: None,
            checked: None,
            generation: 0,
        };
        zone.read();
        zone
    }

    fn fixed(rules: tz::TimeZone) -> LocalZone {
        LocalZone {
            path: None,
            rules,
            identity: None,
            checked: None,
            generation: 0,
        }
    }

    /// Looks at the file, at most once per second of `now` (Unix seconds), and re-reads it if
    /// it changed.
    pub fn refresh(&mut self, now: i64) {
        if self.checked == Some(now) {
            return;
        }
        self.checked = Some(now);
        let Some(path) = &self.path else { return };
        let identity = Identity::of(path);
        if identity.is_none() || identity != self.identity {
            self.read();
        }
    }

    /// Counts the times the rules were read: it changes when they may have.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    fn read(&mut self) {
        let Some(path) = &self.path else { return };
        // The identity first: a change while reading is seen at the next look.
        let identity = Identity::of(path);
        let rules = fs::read(path)
            .ok()
            .and_then(|bytes| tz::TimeZone::from_tz_data(&bytes).ok());
        let changed = identity != self.identity;
        self.identity = rules.is_some().then_some(identity).flatten();
        self.rules = rules.unwrap_or_else(tz::TimeZone::utc);
        if changed {
            self.generation += 1;
        }
    }

    /// Seconds east of UTC at Unix time `at`.
    pub fn offset_at(&self, at: i64) -> i32 {
        self.rules
            .find_local_time_type(at)
            .map_or(0, |t| t.ut_offset())
    }

    /// `now` as wall-clock time in this zone.
    pub fn wall_clock(&self, at: i64, nanos: u32) -> Option<NaiveDateTime> {
        let local = at.checked_add(i64::from(self.offset_at(at)))?;
        DateTime::from_timestamp(local, nanos).map(|t| t.naive_utc())
    }

    /// Unix seconds of a wall-clock time in this zone. In a daylight-saving gap the time is
    /// taken as if the clock had already moved; in an overlap, the earlier instant wins.
    pub fn instant(&self, wall: NaiveDateTime) -> i64 {
        let w = wall.and_utc().timestamp();
        // Every offset in force within a day of the time: an instant is valid if the offset
        // there is the one it was computed with.
        [w - 86_400, w, w + 86_400]
            .into_iter()
            .map(|probe| w - i64::from(self.offset_at(probe)))
            .filter(|&t| w - i64::from(self.offset_at(t)) == t)
            .min()
            .unwrap_or_else(|| w - i64::from(self.offset_at(w)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wall(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    fn zoneinfo(name: &str) -> PathBuf {
        Path::new(ZONEINFO).join(name)
    }

    /// Points `link` at `target` as `timedatectl set-timezone` does: a new link renamed over.
    fn relink(link: &Path, target: &Path) {
        let temp = link.with_extension("new");
        let _ = fs::remove_file(&temp);
        std::os::unix::fs::symlink(target, &temp).unwrap();
        fs::rename(&temp, link).unwrap();
    }

    #[test]
    fn daylight_saving_gaps_and_overlaps() {
        let paris = LocalZone::at(zoneinfo("Europe/Paris"));
        // Winter and summer.
        assert_eq!(
            paris.offset_at(wall("2026-01-15 12:00:00").and_utc().timestamp()),
            3600
        );
        assert_eq!(
            paris.offset_at(wall("2026-07-15 12:00:00").and_utc().timestamp()),
            7200
        );
        assert_eq!(
            paris.instant(wall("2026-07-15 14:00:00")),
            wall("2026-07-15 12:00:00").and_utc().timestamp()
        );
        // 2026-03-29 02:30 does not exist: taken as if the clock had moved (03:30 CEST).
        assert_eq!(
            paris.instant(wall("2026-03-29 02:30:00")),
            wall("2026-03-29 00:30:00").and_utc().timestamp()
        );
        // 2026-10-25 02:30 happens twice: the first (CEST, 00:30 UTC).
        assert_eq!(
            paris.instant(wall("2026-10-25 02:30:00")),
            wall("2026-10-25 00:30:00").and_utc().timestamp()
        );
        assert_eq!(
            paris.wall_clock(wall("2026-07-15 12:00:00").and_utc().timestamp(), 0),
            Some(wall("2026-07-15 14:00:00"))
        );
    }

    #[test]
    fn follows_the_link_and_the_file_it_points_at() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("localtime");
        let at = wall("2026-07-15 12:00:00").and_utc().timestamp();
        relink(&link, &zoneinfo("Etc/UTC"));
        let mut zone = LocalZone::at(&link);
        assert_eq!(zone.offset_at(at), 0);
        // timedatectl: a new link.
        relink(&link, &zoneinfo("Asia/Tokyo"));
        zone.refresh(at);
        assert_eq!(zone.offset_at(at), 9 * 3600);
        // Not twice in the same second.
        relink(&link, &zoneinfo("America/New_York"));
        zone.refresh(at);
        assert_eq!(
            zone.offset_at(at),
            9 * 3600,
            "looked at once a second at most"
        );
        zone.refresh(at + 1);
        assert_eq!(zone.offset_at(at), -4 * 3600);
        // The file the link points at is rewritten (a tzdata upgrade); the link stays.
        let file = dir.path().join("zone");
        fs::copy(zoneinfo("Etc/UTC"), &file).unwrap();
        relink(&link, &file);
        zone.refresh(at + 2);
        assert_eq!(zone.offset_at(at), 0);
        let generation = zone.generation();
        let temp = dir.path().join("zone.new");
        fs::copy(zoneinfo("Asia/Kolkata"), &temp).unwrap();
        fs::rename(&temp, &file).unwrap();
        zone.refresh(at + 3);
        assert_eq!(zone.offset_at(at), 5 * 3600 + 1800);
        assert!(zone.generation() > generation);
        // Gone, then back: UTC meanwhile.
        fs::remove_file(&link).unwrap();
        zone.refresh(at + 4);
        assert_eq!(zone.offset_at(at), 0);
        relink(&link, &zoneinfo("Asia/Tokyo"));
        zone.refresh(at + 5);
        assert_eq!(zone.offset_at(at), 9 * 3600);
    }
}
