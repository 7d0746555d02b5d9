//! The failure data of one match (fail2ban's `fail` dict) and multi-line sessions (`mlfid`).
//!
//! Receives: the groups of a failregex match (merged with the prefregex's), the matched lines.
//! Emits: merged failure data: `F-ALT_*`/`F-TUPLE_*` folded, and for `<F-MLFID>` sessions the
//! cached data of earlier lines merged in, with `nofail`, `mlfforget`, `mlfgained` and
//! `mlfpending` handled as `Filter._mergeFailure` does.
//! Never: keeps more than 100 sessions or a session older than 5 minutes of `now`.

// A regression test of the cache's eviction order is at the bottom.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

/// The `fail` dict: named groups plus fail2ban's bookkeeping keys.
#[derive(Debug, Clone, Default)]
pub struct FailData {
    pub groups: Vec<(Arc<str>, Option<String>)>,
    pub matches: Option<Vec<u64>>,
    pub nofail_matches: Option<Vec<u64>>,
    pub users: Option<BTreeSet<String>>,
    pub pending: bool,
}

impl FailData {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.groups
            .iter()
            .find(|(name, _)| &**name == key)
            .and_then(|(_, value)| value.as_deref())
    }

    /// Python truthiness of `fail.get(key)`.
    pub fn truthy(&self, key: &str) -> bool {
        self.get(key).is_some_and(|value| !value.is_empty())
    }

    pub fn set(&mut self, key: &str, value: Option<String>) {
        match self.groups.iter_mut().find(|(name, _)| &**name == key) {
            Some(entry) => entry.1 = value,
            None => self.groups.push((Arc::from(key), value)),
        }
    }

    /// `fail.pop(key, None)` → was it truthy.
    pub fn pop(&mut self, key: &str) -> Option<String> {
        let index = self.groups.iter().position(|(name, _)| &**name == key)?;
        self.groups.remove(index).1
    }

    /// `dict.update(other)` (all values, `None` included).
    pub fn update_all(&mut self, other: &FailData) {
        for (key, value) in &other.groups {
            self.set(key, value.clone());
        }
    }
}

/// `Utils.Cache(maxCount=100, maxTime=300)` of multi-line sessions: a map for the lookups every
/// line makes, and the insertion order (Python's dict order) for evictions.
#[derive(Debug, Clone, Default)]
pub struct SessionCache {
    entries: HashMap<String, Session>,
    /// Keys in insertion order with the stamp they were inserted with; an item whose key is gone
    /// or was inserted again since is stale and skipped.
    order: VecDeque<(u64, String)>,
    next: u64,
}

#[derive(Debug, Clone)]
struct Session {
    data: FailData,
    expires: f64,
    stamp: u64,
}

const MAX_SESSIONS: usize = 100;
const SESSION_SECONDS: f64 = 300.0;

impl SessionCache {
    pub fn get(&mut self, key: &str, now: f64) -> Option<&mut FailData> {
        let expired = self.entries.get(key)?.expires <= now;
        if expired {
            self.entries.remove(key);
            return None;
        }
        self.entries.get_mut(key).map(|session| &mut session.data)
    }

    pub fn set(&mut self, key: &str, value: FailData, now: f64) {
        if let Some(session) = self.entries.get_mut(key) {
            // An existing key keeps its place (a Python dict assignment).
            session.data = value;
            session.expires = now + SESSION_SECONDS;
            return;
        }
        if self.entries.len() >= MAX_SESSIONS {
            // FIFO: drop from the front; stop after an unexpired one once there is room.
            while let Some((stamp, oldest)) = self.order.pop_front() {
                let live = self.entries.get(&oldest).is_some_and(|s| s.stamp == stamp);
                if !live {
                    continue;
                }
                let removed = self.entries.remove(&oldest).expect("invariant: just seen");
                if removed.expires > now && self.entries.len() < MAX_SESSIONS {
                    break;
                }
                if self.entries.is_empty() {
                    break;
                }
            }
        }
        self.next += 1;
        self.entries.insert(
            key.to_string(),
            Session {
                data: value,
                expires: now + SESSION_SECONDS,
                stamp: self.next,
            },
        );
        self.order.push_back((self.next, key.to_string()));
        if self.order.len() > 4 * MAX_SESSIONS {
            let entries = &self.entries;
            self.order
                .retain(|(stamp, key)| entries.get(key).is_some_and(|s| s.stamp == *stamp));
        }
    }

    /// Replaces a session's data, keeping its expiry (Python mutates the cached dict).
    pub fn replace(&mut self, key: &str, value: FailData) {
        if let Some(session) = self.entries.get_mut(key) {
            session.data = value;
        }
    }

    pub fn unset(&mut self, key: &str) {
        self.entries.remove(key);
    }
}

fn update_users(fail: &mut FailData, user: Option<&str>) -> Option<BTreeSet<String>> {
    match user.filter(|user| !user.is_empty()) {
        Some(user) => {
            fail.users
                .get_or_insert_with(BTreeSet::new)
                .insert(user.to_string());
            fail.users.clone()
        }
        None => fail.users.clone(),
    }
}

/// `Filter._mergeFailure`; returns the merged data and whether it is the cached session.
pub fn merge_failure(
    cache: &mut SessionCache,
    session: &str,
    mut fail: FailData,
    matched: &[u64],
    now: f64,
) -> (FailData, bool) {
    let mut flags = 0u8;
    if fail.truthy("mlfgained") {
        flags |= 8 | 1;
        if !fail.truthy("nofail") {
            let gained = fail.get("mlfgained").map(str::to_string);
            fail.set("nofail", gained);
        }
    } else if fail.truthy("nofail") {
        flags |= 1;
    }
    if fail.pop("mlfforget").is_some_and(|value| !value.is_empty()) {
        flags |= 2;
    }
    let user = fail.get("user").map(str::to_string);
    let mut users = None;
    let mut in_cache = false;
    let mut is_new = false;
    if let Some(cached) = cache.get(session, now) {
        users = update_users(cached, user.as_deref());
        if cached.pop("nofail").is_some_and(|value| !value.is_empty()) {
            flags |= 4;
        }
        if cached
            .pop("mlfgained")
            .is_some_and(|value| !value.is_empty())
        {
            flags |= 4;
        }
        if flags & 8 != 0 {
            cached.pending = false;
        }
        if flags & 4 == 0 && !cached.pending {
            cached.matches = None;
        }
        for (key, value) in &fail.groups {
            if value.is_some() {
                cached.set(key, value.clone());
            }
        }
        if fail.matches.is_some() {
            cached.matches = fail.matches.clone();
        }
        fail = cached.clone();
        if flags & 2 != 0 {
            cache.unset(session);
        } else {
            in_cache = true;
        }
    } else if flags & 2 == 0 {
        users = update_users(&mut fail, user.as_deref());
        in_cache = true;
        is_new = true;
    }
    if std::mem::take(&mut fail.pending) || users.as_ref().is_some_and(|users| users.len() > 1) {
        fail.pop("nofail");
        fail.pop("mlfgained");
        flags &= !(8 | 1);
    }
    if flags & 1 == 0 {
        let mut lines = fail.nofail_matches.take().unwrap_or_default();
        lines.extend(fail.matches.take().unwrap_or_default());
        if flags & 8 == 0 {
            lines.extend_from_slice(matched);
        }
        fail.matches = Some(lines);
    } else if flags & 3 == 1 {
        fail.nofail_matches
            .get_or_insert_with(Vec::new)
            .extend_from_slice(matched);
    }
    if is_new {
        cache.set(session, fail.clone(), now);
    } else if in_cache {
        cache.replace(session, fail.clone());
    }
    (fail, in_cache)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The session cache became a map (it was searched linearly for every line): it must still
    // evict as fail2ban's ordered cache does.
    #[test]
    fn sessions_evict_in_insertion_order_like_fail2ban() {
        let mut cache = SessionCache::default();
        for n in 0..MAX_SESSIONS {
            cache.set(&format!("s{n}"), FailData::default(), 0.0);
        }
        // Updating an existing key keeps its place; a new key evicts the oldest live one.
        cache.set("s0", FailData::default(), 1.0);
        cache.set("new", FailData::default(), 1.0);
        assert!(
            cache.get("s0", 2.0).is_none(),
            "s0 kept its first place and went first"
        );
        assert!(cache.get("s1", 2.0).is_some());
        assert!(cache.get("new", 2.0).is_some());
        // Expired sessions are dropped from the front until a live one goes.
        cache.set("late", FailData::default(), 400.0);
        assert!(cache.get("s1", 400.0).is_none());
        assert!(cache.get("late", 400.0).is_some());
        cache.unset("late");
        assert!(cache.get("late", 400.0).is_none());
    }
}
