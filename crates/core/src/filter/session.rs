//! Multi-line sessions: which address a daemon process (tag + PID) is talking to.
//!
//! Receives bindings (a line of process `sshd[4242]` named address A at time T), lookups (a
//! failure line of `sshd[4242]` without an address), held failures (such a line before any
//! line named the address: sshd logs `kex_exchange_identification: …` first and
//! `Connection closed by A port N` after), the user names a session tries, and logins that end
//! it; emits the bound address, the held failure once a binding names its address, and whether
//! a session tried more than one user name (fail2ban charges such a session even for lines
//! that are no failure by themselves, so that a login cannot wipe out guesses). The table is
//! bounded so a flood of connections cannot grow it: at most [`CAPACITY`] sessions, each
//! forgotten [`MAX_AGE`] seconds (log time) after it was last bound. When the table is full,
//! expired sessions are dropped first, then those not bound in the last `capacity / 2`
//! bindings (under a flood, the least recently bound half). Its memory is reserved once, at
//! the first binding; bindings never allocate. It never sees text.

use std::net::IpAddr;

use super::time::Resolved;
use crate::hash::FastMap;

/// Most sessions remembered per log source. sshd's own `MaxStartups` keeps far fewer
/// connections in their pre-authentication phase, which is when sessions matter. 7/8 of 4096:
/// the most the hash table holds in 4096 buckets (at 4096 it takes 8192, twice the memory, and
/// every binding under a flood of connections is a cache miss into it).
pub const CAPACITY: usize = 3584;

/// Seconds of log time after which a session's address is forgotten (a PID may be reused).
/// Well above sshd's default `LoginGraceTime` of 120 s.
pub const MAX_AGE: i64 = 600;

/// A daemon process: a hash of its tag and its PID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionKey {
    tag: u64,
    pid: u32,
}

impl SessionKey {
    pub fn new(tag: &str, pid: u32) -> SessionKey {
        // Tags are short and trusted to be few; collisions only matter with equal PIDs.
        SessionKey {
            tag: fnv(tag.as_bytes()),
            pid,
        }
    }
}

/// FNV-1a. For user names a collision (two names taken for one) only spares a session the
/// charge for trying several names; a name is attacker-chosen, so this is no defence against
/// a crafted collision, and none is needed: each failure of the session counts anyway.
fn fnv(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    addr: Option<IpAddr>,
    at: i64,
    tick: u64,
    /// A failure of this session seen before its address.
    held: Option<Resolved>,
    /// A hash of the first user name the session tried.
    user: Option<u64>,
    /// The session tried another user name than the first.
    many: bool,
}

/// The open sessions of one log source.
#[derive(Debug)]
pub struct SessionTable {
    map: FastMap<SessionKey, Entry>,
    capacity: usize,
    tick: u64,
}

impl Default for SessionTable {
    fn default() -> SessionTable {
        SessionTable::with_capacity(CAPACITY)
    }
}

impl SessionTable {
    pub fn with_capacity(capacity: usize) -> SessionTable {
        SessionTable {
            map: FastMap::default(),
            capacity: capacity.max(2),
            tick: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Remembers that session `key` talks to `addr`, as of log time `at`, and notes the user
    /// name it tried (see [`note_user`](Self::note_user)), in one look-up (every failure line
    /// does both). Returns the failure held for this session, if any (and forgets it), and
    /// whether the session has tried more than one user name.
    pub fn bind_user(
        &mut self,
        key: SessionKey,
        addr: IpAddr,
        user: Option<&str>,
        at: i64,
    ) -> (Option<Resolved>, bool) {
        if self.map.capacity() == 0 {
            self.map.reserve(self.capacity);
        }
        if self.map.len() >= self.capacity && !self.map.contains_key(&key) {
            self.evict(at);
        }
        self.tick += 1;
        let fresh = Entry {
            addr: None,
            at,
            tick: self.tick,
            held: None,
            user: None,
            many: false,
        };
        let entry = self.map.entry(key).or_insert(fresh);
        if at - entry.at > MAX_AGE {
            *entry = fresh;
        }
        let held = entry.held.take().filter(|h| at - h.at <= MAX_AGE);
        if let Some(name) = user {
            let hash = fnv(name.as_bytes());
            match entry.user {
                None => entry.user = Some(hash),
                Some(first) if first != hash => entry.many = true,
                Some(_) => {}
            }
        }
        entry.addr = Some(addr);
        entry.at = at;
        entry.tick = self.tick;
        (held, entry.many)
    }

    /// Notes that session `key` tried user name `user` at `at`; whether it has now tried more
    /// than one.
    pub fn note_user(&mut self, key: SessionKey, user: &str, at: i64) -> bool {
        let hash = fnv(user.as_bytes());
        match self.map.get_mut(&key).filter(|e| at - e.at <= MAX_AGE) {
            Some(entry) => {
                match entry.user {
                    None => entry.user = Some(hash),
                    Some(first) if first != hash => entry.many = true,
                    Some(_) => {}
                }
                entry.many
            }
            None => {
                self.insert(
                    key,
                    Entry {
                        addr: None,
                        at,
                        tick: 0,
                        held: None,
                        user: Some(hash),
                        many: false,
                    },
                );
                false
            }
        }
    }

    /// Whether session `key` has an entry at all (maybe expired).
    pub fn knows(&self, key: SessionKey) -> bool {
        self.map.contains_key(&key)
    }

    /// Whether session `key` tried more than one user name.
    pub fn many_users(&self, key: SessionKey, at: i64) -> bool {
        self.map
            .get(&key)
            .is_some_and(|e| e.many && at - e.at <= MAX_AGE)
    }

    /// Forgets session `key` (its client logged in): address, held failure, user names.
    pub fn forget(&mut self, key: SessionKey) {
        self.map.remove(&key);
    }

    /// Holds a failure of session `key` until a line names the session's address.
    pub fn hold(&mut self, key: SessionKey, failure: Resolved) {
        let (user, many) = self
            .map
            .get(&key)
            .filter(|e| failure.at - e.at <= MAX_AGE)
            .map_or((None, false), |e| (e.user, e.many));
        self.insert(
            key,
            Entry {
                addr: None,
                at: failure.at,
                tick: 0,
                held: Some(failure),
                user,
                many,
            },
        );
    }

    /// The address of session `key`, unless unknown or older than [`MAX_AGE`] at `at`.
    pub fn lookup(&self, key: SessionKey, at: i64) -> Option<IpAddr> {
        let entry = self.map.get(&key)?;
        entry.addr.filter(|_| at - entry.at <= MAX_AGE)
    }

    fn insert(&mut self, key: SessionKey, mut entry: Entry) {
        if self.map.capacity() == 0 {
            self.map.reserve(self.capacity);
        }
        if self.map.len() >= self.capacity && !self.map.contains_key(&key) {
            self.evict(entry.at);
        }
        self.tick += 1;
        entry.tick = self.tick;
        self.map.insert(key, entry);
    }

    fn evict(&mut self, at: i64) {
        self.map.retain(|_, e| at - e.at <= MAX_AGE);
        if self.map.len() >= self.capacity * 3 / 4 {
            // Keep only the sessions bound in the last capacity/2 bindings: every binding takes
            // the next tick and an entry holds its latest, so at most half of the table is
            // left, the most recent (under a flood, exactly half). One pass, nothing sorted.
            let recent = self.tick.saturating_sub(self.capacity as u64 / 2);
            self.map.retain(|_, e| e.tick > recent);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(n.into())
    }

    #[test]
    fn binds_and_forgets_by_age() {
        let mut t = SessionTable::default();
        let k = SessionKey::new("sshd-session", 4242);
        assert_eq!(t.bind_user(k, ip(1), None, 1000).0, None);
        assert_eq!(t.lookup(k, 1000), Some(ip(1)));
        assert_eq!(t.lookup(k, 1000 + MAX_AGE), Some(ip(1)));
        assert_eq!(t.lookup(k, 1001 + MAX_AGE), None);
        assert_eq!(t.lookup(SessionKey::new("sshd", 4242), 1000), None);
        assert_eq!(t.lookup(SessionKey::new("sshd-session", 4243), 1000), None);
        t.bind_user(k, ip(2), None, 1100);
        assert_eq!(t.lookup(k, 1100), Some(ip(2)));
    }

    #[test]
    fn held_failures_wait_for_their_address() {
        let mut t = SessionTable::default();
        let k = SessionKey::new("sshd", 7);
        let failure = |at| Resolved {
            time: chrono::DateTime::from_timestamp(at, 0).unwrap().naive_utc(),
            at,
        };
        t.hold(k, failure(100));
        assert_eq!(t.lookup(k, 100), None);
        assert_eq!(t.bind_user(k, ip(9), None, 101).0, Some(failure(100)));
        assert_eq!(
            t.bind_user(k, ip(9), None, 102).0,
            None,
            "a held failure is given once"
        );
        t.hold(SessionKey::new("sshd", 8), failure(100));
        assert_eq!(
            t.bind_user(SessionKey::new("sshd", 8), ip(9), None, 101 + MAX_AGE)
                .0,
            None,
            "too old"
        );
    }

    #[test]
    fn a_flood_stays_bounded_and_keeps_recent_sessions() {
        let mut t = SessionTable::with_capacity(100);
        for pid in 0..10_000u32 {
            t.bind_user(SessionKey::new("sshd", pid), ip(pid), None, 5000);
            assert!(t.len() <= 100, "{} sessions", t.len());
        }
        for pid in 9_950..10_000 {
            assert_eq!(
                t.lookup(SessionKey::new("sshd", pid), 5000),
                Some(ip(pid)),
                "the most recent half survives every pruning"
            );
        }
        assert_eq!(t.lookup(SessionKey::new("sshd", 0), 5000), None);
    }

    #[test]
    fn bind_user_is_bind_and_note_user_at_once() {
        let mut t = SessionTable::default();
        let k = SessionKey::new("sshd", 9);
        let failure = Resolved {
            time: chrono::DateTime::from_timestamp(100, 0)
                .unwrap()
                .naive_utc(),
            at: 100,
        };
        t.hold(k, failure);
        assert_eq!(
            t.bind_user(k, ip(1), Some("root"), 101),
            (Some(failure), false)
        );
        assert_eq!(t.bind_user(k, ip(1), Some("root"), 102), (None, false));
        assert_eq!(t.bind_user(k, ip(1), None, 103), (None, false));
        assert_eq!(t.bind_user(k, ip(1), Some("admin"), 104), (None, true));
        assert_eq!(t.lookup(k, 104), Some(ip(1)));
        // Expired: a fresh session.
        assert_eq!(
            t.bind_user(k, ip(2), Some("x"), 105 + MAX_AGE),
            (None, false)
        );
    }

    #[test]
    fn user_names_accumulate_until_forgotten() {
        let mut t = SessionTable::default();
        let k = SessionKey::new("sshd", 1558);
        assert!(!t.note_user(k, "root", 100), "the first name");
        assert!(!t.note_user(k, "root", 101), "the same name again");
        t.bind_user(k, ip(4), None, 101);
        assert!(t.note_user(k, "sudoer", 102), "a second name");
        assert!(t.many_users(k, 103));
        t.forget(k);
        assert!(!t.many_users(k, 103));
        assert_eq!(t.lookup(k, 103), None);
        assert!(!t.note_user(k, "known", 104), "a fresh session");
    }

    #[test]
    fn expired_sessions_go_first() {
        let mut t = SessionTable::with_capacity(10);
        for pid in 0..9u32 {
            t.bind_user(SessionKey::new("sshd", pid), ip(pid), None, 0);
        }
        t.bind_user(SessionKey::new("sshd", 100), ip(100), None, 0);
        t.bind_user(SessionKey::new("sshd", 101), ip(101), None, 2 * MAX_AGE);
        assert_eq!(t.len(), 1);
    }
}
