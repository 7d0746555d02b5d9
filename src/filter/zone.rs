//! The host's zone file, followed for the filter stage (`logtimezone = local`).
//!
//! Receives the filter's look (at most once a second, through core's [`ZoneSource`]); emits the
//! zone's rules when they changed. The rules come from a TZif file: `/etc/localtime` (what
//! `timedatectl set-timezone` replaces), or the file `TZ` names. The file is looked at with two
//! `stat`s (the link and the file it points at) and re-read when either changed: a new zone, or
//! new rules for the same zone (a tzdata upgrade rewrites the file the link points at and leaves
//! the link alone, which chrono's `Local` does not notice: it only watches the link). A file
//! that cannot be read or parsed means UTC until a readable one appears (as glibc does).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nftjail_core::filter::{LocalZone, ZoneRules, ZoneSource};

/// Where the host's zone is, unless `TZ` says otherwise.
pub const LOCALTIME: &str = "/etc/localtime";
/// Where zone names in `TZ` (`Europe/Paris`) are looked up.
const ZONEINFO: &str = "/usr/share/zoneinfo";

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

/// A TZif file followed as it changes.
#[derive(Debug)]
pub struct ZoneFile {
    path: PathBuf,
    /// What the file was when last read (`None`: never read, or unreadable).
    identity: Option<Identity>,
    /// Whether the last answer was UTC for an unreadable file.
    unreadable: bool,
}

impl ZoneFile {
    pub fn new(path: impl Into<PathBuf>) -> ZoneFile {
        ZoneFile {
            path: path.into(),
            identity: None,
            unreadable: false,
        }
    }
}

impl ZoneSource for ZoneFile {
    fn poll(&mut self) -> Option<ZoneRules> {
        // The identity first: a change while reading is seen at the next look.
        let identity = Identity::of(&self.path);
        if identity.is_some() && identity == self.identity {
            return None;
        }
        let rules = fs::read(&self.path)
            .ok()
            .and_then(|bytes| ZoneRules::from_tz_data(&bytes).ok());
        self.identity = rules.is_some().then_some(identity).flatten();
        match rules {
            Some(r) => {
                self.unreadable = false;
                Some(r)
            }
            None if self.unreadable => None,
            None => {
                self.unreadable = true;
                Some(ZoneRules::utc())
            }
        }
    }
}

/// The host's zone: the file `TZ` names (`:/path`, `/path`, or a zone name under
/// /usr/share/zoneinfo) or a `TZ` rule string (`CET-1CEST,M3.5.0,M10.5.0/3`); without `TZ`,
/// `/etc/localtime`, followed as it changes. An empty `TZ` is UTC.
pub fn system() -> LocalZone {
    match std::env::var("TZ") {
        Err(_) => at(LOCALTIME),
        Ok(tz) if tz.is_empty() => LocalZone::utc(),
        Ok(tz) => {
            let name = tz.strip_prefix(':').unwrap_or(&tz);
            let file = if name.starts_with('/') {
                PathBuf::from(name)
            } else {
                Path::new(ZONEINFO).join(name)
            };
            if !name.contains("..") && file.is_file() {
                at(file)
            } else {
                LocalZone::fixed(ZoneRules::from_posix_tz(&tz).unwrap_or_else(|_| ZoneRules::utc()))
            }
        }
    }
}

/// The zone of the TZif file at `path` (a link or a file), followed as it changes.
pub fn at(path: impl Into<PathBuf>) -> LocalZone {
    LocalZone::following(Box::new(ZoneFile::new(path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wall(text: &str) -> chrono::NaiveDateTime {
        chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").unwrap()
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
    fn follows_the_link_and_the_file_it_points_at() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("localtime");
        let at = wall("2026-07-15 12:00:00").and_utc().timestamp();
        relink(&link, &zoneinfo("Etc/UTC"));
        let mut zone = super::at(&link);
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

    use std::sync::Arc;

    use nftjail_core::filter::{FilterFile, FilterOptions, LogTimeZone, Matcher, Outcome};

    const SSHD: &str = r#"
        daemons = ["sshd"]
        [modes.normal]
        failregex = ['^Invalid user (?P<user>\S+) from <HOST> port \d+$']
    "#;

    // Regression: after a change of the host's zone, logs written in the new zone were read in
    // the old one until a reload (here 4 h in the past: outside findtime, never counted). The
    // local zone was chrono's, which watches only the /etc/localtime link and misses a change
    // of the file it points at.
    #[test]
    fn the_local_zone_follows_a_change_of_the_zone_file() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("localtime");
        let relink = |target: &str| {
            let temp = dir.path().join("localtime.new");
            std::os::unix::fs::symlink(Path::new("/usr/share/zoneinfo").join(target), &temp)
                .unwrap();
            std::fs::rename(&temp, &link).unwrap();
        };
        relink("Etc/UTC");
        let file = FilterFile::parse(Path::new("t.toml"), SSHD).unwrap();
        let filter = Arc::new(file.compile(&FilterOptions::default()).unwrap());
        assert_eq!(FilterOptions::default().timezone, LogTimeZone::Local);
        let mut m = Matcher::new(filter, at(&link));
        let at = |text: &str| {
            chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
                .unwrap()
                .and_utc()
        };
        let failure = |m: &mut Matcher, line: &str, now| match m.feed_line(line.as_bytes(), now) {
            Outcome::Failure(f) => (f.time.to_string(), f.at),
            other => panic!("{line}: {other:?}"),
        };
        let now = at("2026-07-15 12:00:00");
        assert_eq!(
            failure(
                &mut m,
                "Jul 15 12:00:00 h sshd[1]: Invalid user a from 192.0.2.1 port 1",
                now
            ),
            ("2026-07-15 12:00:00".to_string(), now.timestamp())
        );
        // timedatectl set-timezone America/New_York: rsyslog now writes New York time.
        relink("America/New_York");
        let now = at("2026-07-15 12:00:01");
        assert_eq!(
            failure(
                &mut m,
                "Jul 15 08:00:01 h sshd[1]: Invalid user a from 192.0.2.1 port 1",
                now
            ),
            ("2026-07-15 08:00:01".to_string(), now.timestamp()),
            "read in the new zone, without a reload"
        );
        // The file the link points at is replaced (a tzdata upgrade), the link stays.
        let zone = dir.path().join("zone");
        std::fs::copy("/usr/share/zoneinfo/Asia/Tokyo", &zone).unwrap();
        let temp = dir.path().join("localtime.new");
        std::os::unix::fs::symlink(&zone, &temp).unwrap();
        std::fs::rename(&temp, &link).unwrap();
        let now = at("2026-07-15 12:00:02");
        failure(
            &mut m,
            "Jul 15 21:00:02 h sshd[1]: Invalid user a from 192.0.2.1 port 1",
            now,
        );
        std::fs::copy(
            "/usr/share/zoneinfo/Asia/Kolkata",
            dir.path().join("zone.new"),
        )
        .unwrap();
        std::fs::rename(dir.path().join("zone.new"), &zone).unwrap();
        let now = at("2026-07-15 12:00:03");
        assert_eq!(
            failure(
                &mut m,
                "Jul 15 17:30:03 h sshd[1]: Invalid user a from 192.0.2.1 port 1",
                now
            )
            .1,
            now.timestamp()
        );
    }
}
