//! The hash tables of the hot paths: std's maps with foldhash's fast, seeded hasher.
//!
//! SipHash, std's default, costs several hundred instructions per lookup: under a flood that
//! was a tenth of the core's time (active bans, windows) and a sixth of `test-filter`'s
//! (counting distinct addresses). foldhash's seed is random per process, so a log's author
//! cannot choose colliding keys ahead of time; the tables an attacker fills (sessions,
//! windows, bans) are bounded besides.

use std::collections::{HashMap, HashSet};

/// A `HashMap` hashed with foldhash.
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
/// A `HashSet` hashed with foldhash.
pub type FastSet<T> = HashSet<T, foldhash::fast::RandomState>;
