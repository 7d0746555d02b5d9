//! The host's local zone (`logtimezone = local`), as the caller keeps it up to date.
//!
//! Receives the matcher's clock (`now`) and, from a [`ZoneSource`] the caller supplies, the
//! zone's rules whenever they change; emits UTC offsets and instants under the rules in force.
//! The source is asked at most once a second of `now` (the daemon's source watches
//! `/etc/localtime` and the file it points at, so a `timedatectl set-timezone` or a tzdata
//! upgrade applies within a second, without a reload). Nothing here reads a file: rules come in
//! as parsed data.

use std::fmt;

use chrono::{DateTime, NaiveDateTime};

pub use tz::TimeZone as ZoneRules;

/// Where the rules of a local zone come from (the daemon reads the host's zone file).
pub trait ZoneSource: Send + fmt::Debug {
    /// The rules, if they changed since the last call (the first call gives them).
    fn poll(&mut self) -> Option<ZoneRules>;
}

/// The local zone's rules and where they come from.
#[derive(Debug)]
pub struct LocalZone {
    rules: ZoneRules,
    source: Option<Box<dyn ZoneSource>>,
    /// The second of `now` of the last look at the source.
    checked: Option<i64>,
    /// Bumped each time the rules change (for callers' caches).
    generation: u64,
    /// The offset, when the rules have only one (UTC, a fixed zone, a zone without daylight
    /// saving and without history): every conversion is then one addition.
    constant: Option<i32>,
}

/// The only offset `rules` ever give, if they give one only.
fn constant_offset(rules: &ZoneRules) -> Option<i32> {
    let rules = rules.as_ref();
    let [only] = rules.local_time_types() else {
        return None;
    };
    let fixed = match rules.extra_rule() {
        None => true,
        Some(tz::timezone::TransitionRule::Fixed(t)) => t.ut_offset() == only.ut_offset(),
        Some(_) => false,
    };
    (rules.transitions().is_empty() && fixed).then(|| only.ut_offset())
}

impl LocalZone {
    /// Fixed rules.
    pub fn fixed(rules: ZoneRules) -> LocalZone {
        LocalZone {
            constant: constant_offset(&rules),
            rules,
            source: None,
            checked: None,
            generation: 0,
        }
    }

    /// UTC (what a host without a readable zone uses, as glibc does).
    pub fn utc() -> LocalZone {
        LocalZone::fixed(ZoneRules::utc())
    }

    /// The rules of a TZif file's contents (UTC when they do not parse).
    pub fn from_tzif(bytes: &[u8]) -> LocalZone {
        LocalZone::fixed(ZoneRules::from_tz_data(bytes).unwrap_or_else(|_| ZoneRules::utc()))
    }

    /// Rules that follow `source` (asked now, then at most once a second of `now`).
    pub fn following(mut source: Box<dyn ZoneSource>) -> LocalZone {
        let rules = source.poll().unwrap_or_else(ZoneRules::utc);
        LocalZone {
            constant: constant_offset(&rules),
            rules,
            source: Some(source),
            checked: None,
            generation: 0,
        }
    }

    /// Asks the source for changed rules, at most once per second of `now` (Unix seconds).
    pub fn refresh(&mut self, now: i64) {
        if self.checked == Some(now) {
            return;
        }
        self.checked = Some(now);
        if let Some(rules) = self.source.as_mut().and_then(|s| s.poll()) {
            self.constant = constant_offset(&rules);
            self.rules = rules;
            self.generation += 1;
        }
    }

    /// The rules in force (fail2ban filters convert times with them, see
    /// `fail2ban::LocalRules`).
    pub fn rules(&self) -> &ZoneRules {
        &self.rules
    }

    /// Counts the times the rules changed.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Seconds east of UTC at Unix time `at`.
    pub fn offset_at(&self, at: i64) -> i32 {
        if let Some(offset) = self.constant {
            return offset;
        }
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
        if let Some(offset) = self.constant {
            return w - i64::from(offset);
        }
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

    /// A zone of the system's zoneinfo (test data: the library itself reads no file).
    fn zoneinfo(name: &str) -> LocalZone {
        LocalZone::from_tzif(&std::fs::read(format!("/usr/share/zoneinfo/{name}")).unwrap())
    }

    /// Zones with one offset take the shortcut, and it gives what the rules give.
    #[test]
    fn constant_zones_convert_as_their_rules_do() {
        let mut zones = vec![("built-in UTC", LocalZone::utc(), true)];
        for (name, constant) in [
            ("UTC", true),
            ("Etc/GMT-5", true),
            ("Etc/GMT+3", true),
            ("Asia/Kolkata", false),
            ("Europe/Paris", false),
        ] {
            zones.push((name, zoneinfo(name), constant));
        }
        for (name, zone, constant) in zones {
            assert_eq!(zone.constant.is_some(), constant, "{name}");
            let slow = LocalZone {
                constant: None,
                ..LocalZone::fixed(zone.rules.clone())
            };
            for at in (0..40).map(|i| 1_700_000_000 + i * 7_919_993) {
                assert_eq!(zone.offset_at(at), slow.offset_at(at), "{name} {at}");
                let wall = chrono::DateTime::from_timestamp(at, 0).unwrap().naive_utc();
                assert_eq!(zone.instant(wall), slow.instant(wall), "{name} {wall}");
            }
        }
    }

    #[test]
    fn daylight_saving_gaps_and_overlaps() {
        let paris = zoneinfo("Europe/Paris");
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

    /// A source whose rules the test switches.
    #[derive(Debug)]
    struct Switch(std::sync::Arc<std::sync::Mutex<Option<ZoneRules>>>);

    impl ZoneSource for Switch {
        fn poll(&mut self) -> Option<ZoneRules> {
            self.0.lock().unwrap().take()
        }
    }

    #[test]
    fn the_source_is_asked_at_most_once_a_second_and_changes_bump_the_generation() {
        let next = std::sync::Arc::new(std::sync::Mutex::new(Some(ZoneRules::utc())));
        let mut zone = LocalZone::following(Box::new(Switch(next.clone())));
        let at = wall("2026-07-15 12:00:00").and_utc().timestamp();
        assert_eq!(zone.offset_at(at), 0);
        let tokyo = ZoneRules::from_posix_tz("JST-9").unwrap();
        *next.lock().unwrap() = Some(tokyo.clone());
        zone.refresh(at);
        assert_eq!((zone.offset_at(at), zone.generation()), (9 * 3600, 1));
        *next.lock().unwrap() = Some(ZoneRules::utc());
        zone.refresh(at);
        assert_eq!(
            zone.offset_at(at),
            9 * 3600,
            "looked at once a second at most"
        );
        zone.refresh(at + 1);
        assert_eq!((zone.offset_at(at), zone.generation()), (0, 2));
    }
}
