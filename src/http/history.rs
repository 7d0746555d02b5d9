//! The last 24 hours of bans and failures per jail, for the console's chart.
//!
//! Receives the jails' running totals (`total_failed`, `total_banned` from the core's metrics
//! snapshot) with the time they were read; emits, per jail, how many failures and bans fell in
//! each of the last [`BUCKETS`] five-minute buckets. Memory is fixed per jail: two rings of
//! [`BUCKETS`] `u32`s (2,304 bytes) plus the name, for at most [`MAX_SERIES`] jails. Pure and
//! deterministic: time is an argument. It starts empty with the daemon (the counters' history
//! before is not known here) and never guesses what it did not see.

use serde::Serialize;

use crate::daemon::metrics::JailMetrics;

/// Seconds in a bucket.
pub const BUCKET_SECONDS: i64 = 300;
/// Buckets kept: 24 hours.
pub const BUCKETS: usize = 288;
/// Jails with a series at once; a jail gone from the configuration whose series is all zeros
/// makes room first.
pub const MAX_SERIES: usize = 256;

/// One jail's rings.
#[derive(Debug, Clone)]
struct Series {
    jail: String,
    failures: Box<[u32; BUCKETS]>,
    bans: Box<[u32; BUCKETS]>,
    /// The totals last seen, to take differences from.
    last: (u64, u64),
    /// Whether the jail was in the last observation.
    present: bool,
}

/// Every jail's series and the newest bucket.
#[derive(Debug, Default)]
pub struct History {
    series: Vec<Series>,
    /// Number (Unix time / bucket) of the newest bucket; `None` before the first observation.
    newest: Option<i64>,
}

/// The chart's data, oldest bucket first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryView {
    pub bucket_seconds: i64,
    /// Unix time of the start of the oldest bucket.
    pub start: i64,
    pub jails: Vec<JailHistory>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JailHistory {
    pub jail: String,
    pub failures: Vec<u32>,
    pub bans: Vec<u32>,
}

impl History {
    /// Takes the totals read at `now` (Unix seconds).
    pub fn observe(&mut self, now: i64, jails: &[JailMetrics]) {
        let bucket = self.advance(now.div_euclid(BUCKET_SECONDS));
        let slot = bucket.rem_euclid(BUCKETS as i64) as usize;
        for s in &mut self.series {
            s.present = false;
        }
        for jail in jails {
            let totals = (jail.stats.total_failed, jail.stats.total_banned);
            let index = match self.series.iter().position(|s| s.jail == jail.name) {
                Some(i) => i,
                None => {
                    if !self.make_room() {
                        continue;
                    }
                    // First sight: the totals are the baseline, not events of this bucket.
                    self.series.push(Series {
                        jail: jail.name.clone(),
                        failures: Box::new([0; BUCKETS]),
                        bans: Box::new([0; BUCKETS]),
                        last: totals,
                        present: true,
                    });
                    continue;
                }
            };
            let s = &mut self.series[index];
            // A total that went down was reset: all of it is new.
            let delta = |now: u64, before: u64| {
                u32::try_from(if now >= before { now - before } else { now }).unwrap_or(u32::MAX)
            };
            s.failures[slot] = s.failures[slot].saturating_add(delta(totals.0, s.last.0));
            s.bans[slot] = s.bans[slot].saturating_add(delta(totals.1, s.last.1));
            s.last = totals;
            s.present = true;
        }
    }

    /// Moves the newest bucket to `bucket` (clearing the buckets it passes) and returns the
    /// bucket to count in: a clock that went back counts in the newest.
    fn advance(&mut self, bucket: i64) -> i64 {
        let newest = self.newest.get_or_insert(bucket);
        if bucket <= *newest {
            return *newest;
        }
        let passed = (bucket - *newest).min(BUCKETS as i64);
        for step in 0..passed {
            let slot = (bucket - step).rem_euclid(BUCKETS as i64) as usize;
            for s in &mut self.series {
                s.failures[slot] = 0;
                s.bans[slot] = 0;
            }
        }
        *newest = bucket;
        bucket
    }

    /// Room for one more series: `false` when every series belongs to a configured jail or
    /// still shows something.
    fn make_room(&mut self) -> bool {
        if self.series.len() < MAX_SERIES {
            return true;
        }
        let idle = self.series.iter().position(|s| {
            !s.present && s.failures.iter().all(|&n| n == 0) && s.bans.iter().all(|&n| n == 0)
        });
        match idle {
            Some(i) => {
                self.series.swap_remove(i);
                true
            }
            None => false,
        }
    }

    /// The last 24 hours as of `now`, oldest first; jails in the order first seen.
    pub fn view(&mut self, now: i64) -> HistoryView {
        let bucket = self.advance(now.div_euclid(BUCKET_SECONDS));
        let oldest = bucket - BUCKETS as i64 + 1;
        let order: Vec<usize> = (0..BUCKETS)
            .map(|i| (oldest + i as i64).rem_euclid(BUCKETS as i64) as usize)
            .collect();
        HistoryView {
            bucket_seconds: BUCKET_SECONDS,
            start: oldest * BUCKET_SECONDS,
            jails: self
                .series
                .iter()
                .map(|s| JailHistory {
                    jail: s.jail.clone(),
                    failures: order.iter().map(|&i| s.failures[i]).collect(),
                    bans: order.iter().map(|&i| s.bans[i]).collect(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nftjail_core::tracker::JailStats;

    fn jail(name: &str, failed: u64, banned: u64) -> JailMetrics {
        JailMetrics {
            name: name.into(),
            stats: JailStats {
                total_failed: failed,
                total_banned: banned,
                ..JailStats::default()
            },
            ..JailMetrics::default()
        }
    }

    const T0: i64 = 1_800_000_000 - 1_800_000_000 % BUCKET_SECONDS;

    #[test]
    fn differences_land_in_their_bucket_and_age_out_after_a_day() {
        let mut h = History::default();
        h.observe(T0, &[jail("sshd", 100, 7)]);
        h.observe(T0 + 10, &[jail("sshd", 103, 8)]);
        h.observe(T0 + BUCKET_SECONDS, &[jail("sshd", 110, 8)]);
        let v = h.view(T0 + BUCKET_SECONDS + 1);
        assert_eq!(v.jails.len(), 1);
        let s = &v.jails[0];
        assert_eq!(s.failures.len(), BUCKETS);
        assert_eq!(
            &s.failures[BUCKETS - 2..],
            &[3, 7],
            "the baseline is not an event"
        );
        assert_eq!(&s.bans[BUCKETS - 2..], &[1, 0]);
        assert_eq!(
            v.start,
            T0 + 2 * BUCKET_SECONDS - BUCKETS as i64 * BUCKET_SECONDS
        );
        // A day later the buckets have been reused and cleared.
        let later = h.view(T0 + 86_400 + BUCKET_SECONDS);
        assert!(later.jails[0].failures.iter().all(|&n| n == 0));
    }

    #[test]
    fn a_reset_counts_from_zero_and_a_clock_going_back_counts_in_the_newest() {
        let mut h = History::default();
        h.observe(T0, &[jail("sshd", 50, 5)]);
        h.observe(T0 + 1, &[jail("sshd", 4, 1)]);
        h.observe(T0 - 3_600, &[jail("sshd", 6, 1)]);
        let v = h.view(T0 + 2);
        assert_eq!(v.jails[0].failures[BUCKETS - 1], 6);
        assert_eq!(v.jails[0].bans[BUCKETS - 1], 1);
    }

    #[test]
    fn series_are_bounded_and_idle_removed_jails_make_room() {
        let mut h = History::default();
        let many: Vec<JailMetrics> = (0..MAX_SERIES)
            .map(|i| jail(&format!("j{i}"), 0, 0))
            .collect();
        h.observe(T0, &many);
        h.observe(T0, &[jail("new", 0, 0)]);
        let names: Vec<String> = h.view(T0).jails.into_iter().map(|j| j.jail).collect();
        assert_eq!(names.len(), MAX_SERIES);
        assert!(
            names.contains(&"new".to_string()),
            "a gone, idle jail made room"
        );
        let present: Vec<JailMetrics> = (0..MAX_SERIES)
            .map(|i| jail(&format!("k{i}"), 0, 0))
            .collect();
        let mut full = History::default();
        full.observe(T0, &present);
        full.observe(
            T0 + 1,
            &[present.clone(), vec![jail("extra", 1, 1)]].concat(),
        );
        assert_eq!(full.view(T0).jails.len(), MAX_SERIES, "never more");
    }
}
