//! The matched lines that led to a ban, kept per (jail, target) until the ban happens.
//!
//! Receives each counted failure's line (and a peer's evidence for a fleet ban); gives a
//! ban's lines to the ban log and the jail's `on_ban` hook. The lines are the attacker's text
//! and the addresses the attacker's choice, so the store is bounded twice: at most
//! [`MAX_ADDRESSES`] targets and [`MAX_BYTES`] of lines in all. When either is reached, other
//! targets' lines go first (any of them: the store only has to stay bounded under a flood),
//! then the oldest lines of the target being added to; its newest line always stays.

use std::collections::VecDeque;

use nftjail_core::addr::BanTarget;
use nftjail_core::hash::FastMap;
use nftjail_core::jail::JailName;
use nftjail_core::state::events::keep_recent;

/// Targets whose lines are kept.
pub const MAX_ADDRESSES: usize = 10_000;
/// Bytes of lines kept in all: above what jails without a hook can reach (10,000 targets × 10
/// lines × 515 bytes), so only a hook's whole lines ever meet it.
pub const MAX_BYTES: usize = 64 << 20;

type Key = (JailName, BanTarget);

#[derive(Default)]
pub struct RecentLines {
    lines: FastMap<Key, VecDeque<String>>,
    /// The sum of the kept lines' lengths.
    bytes: usize,
}

impl RecentLines {
    /// Appends `line` to `key`'s lines, keeping its last `keep`, cut to the ban log's length
    /// when `cut` (see [`keep_recent`]).
    pub fn keep(&mut self, key: Key, line: &str, keep: usize, cut: bool) {
        self.make_room(&key, line.len());
        let lines = self.lines.entry(key).or_default();
        let dropped = keep_recent(lines, line, keep, cut);
        let mut bytes = self.bytes - dropped + lines.back().map_or(0, String::len);
        // Nothing else left to drop: this target's own oldest lines go, its newest stays.
        while bytes > MAX_BYTES
            && lines.len() > 1
            && let Some(oldest) = lines.pop_front()
        {
            bytes -= oldest.len();
        }
        self.bytes = bytes;
    }

    /// Sets `key`'s lines (a peer's evidence), unless the store is full of addresses.
    pub fn insert(&mut self, key: Key, lines: Vec<String>) {
        if lines.is_empty() || (self.lines.len() >= MAX_ADDRESSES && !self.lines.contains_key(&key))
        {
            return;
        }
        let size = lines.iter().map(String::len).sum();
        self.make_room(&key, size);
        self.bytes += size;
        if let Some(old) = self.lines.insert(key, lines.into()) {
            self.bytes -= old.iter().map(String::len).sum::<usize>();
        }
    }

    /// Takes `key`'s lines (its ban happened).
    pub fn take(&mut self, key: &Key) -> Vec<String> {
        let lines = self.lines.remove(key).unwrap_or_default();
        self.bytes -= lines.iter().map(String::len).sum::<usize>();
        lines.into()
    }

    /// Drops other targets' lines until `key` fits as one more target and `adding` more bytes
    /// fit in [`MAX_BYTES`] (or nothing else is left).
    fn make_room(&mut self, key: &Key, adding: usize) {
        let new_target = !self.lines.contains_key(key);
        while (new_target && self.lines.len() >= MAX_ADDRESSES) || self.bytes + adding > MAX_BYTES {
            let Some(victim) = self.lines.keys().find(|k| *k != key).cloned() else {
                break;
            };
            self.take(&victim);
        }
    }

    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> Key {
        (
            "web".parse().unwrap(),
            BanTarget::Addr(std::net::Ipv4Addr::from(n).into()),
        )
    }

    fn counted(store: &RecentLines) -> usize {
        store.lines.values().flatten().map(String::len).sum()
    }

    #[test]
    fn lines_are_kept_per_target_and_taken_once() {
        let mut store = RecentLines::default();
        for n in 0..12 {
            store.keep(key(1), &format!("line {n}"), 10, true);
        }
        store.keep(key(2), "other", 10, true);
        assert_eq!(store.bytes(), counted(&store));
        let lines = store.take(&key(1));
        assert_eq!(lines.len(), 10);
        assert_eq!(lines[9], "line 11");
        assert!(store.take(&key(1)).is_empty(), "taken once");
        assert_eq!(store.bytes(), "other".len());
        store.insert(key(3), vec!["peer".into(), "evidence".into()]);
        store.insert(key(3), vec!["newer".into()]);
        assert_eq!(store.bytes(), counted(&store));
        assert_eq!(store.take(&key(3)), ["newer"]);
    }

    /// A flood of distinct attackers, each with hook-sized lines: the store stays within both
    /// caps, its byte count stays true, and the newest target keeps its newest line.
    #[test]
    fn a_flood_of_long_lines_stays_within_both_caps() {
        let mut store = RecentLines::default();
        let long = "x".repeat(60 * 1024);
        for n in 0..3_000 {
            store.keep(key(n), &long, 5, false);
            store.keep(key(n), &long, 5, false);
            assert!(store.bytes() <= MAX_BYTES, "{} bytes", store.bytes());
        }
        assert_eq!(store.bytes(), counted(&store));
        assert_eq!(
            store.take(&key(2_999)).len(),
            2,
            "the newest target is whole"
        );
        for n in 0..MAX_ADDRESSES as u32 + 500 {
            store.keep(key(n), "short", 10, true);
            assert!(store.lines.len() <= MAX_ADDRESSES);
        }
        assert_eq!(store.bytes(), counted(&store));
        // One target alone over the budget (a hook jail with a high maxretry) loses its
        // oldest lines.
        let mut one = RecentLines::default();
        for _ in 0..1_200 {
            one.keep(key(7), &long, 2_000, false);
        }
        assert!(one.bytes() <= MAX_BYTES, "{} bytes", one.bytes());
        assert_eq!(one.bytes(), counted(&one));
        assert_eq!(one.take(&key(7)).len(), MAX_BYTES / long.len());
        // One line longer than the whole budget is still kept, alone.
        let mut small = RecentLines::default();
        let huge = "y".repeat(MAX_BYTES + 1);
        small.keep(key(1), "a", 10, false);
        small.keep(key(2), &huge, 10, false);
        assert_eq!(small.lines.len(), 1);
        assert_eq!(small.take(&key(2)), [huge]);
    }
}
