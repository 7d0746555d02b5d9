//! Per-jail sliding windows of failures, bounded in memory.
//!
//! Receives `(address, log time)` failures; answers how many failures of that address fall in the
//! last `findtime` (by log time). Never does I/O and never grows past its cap: when a jail
//! tracks `capacity` addresses and a new one fails, the address whose latest failure arrived
//! longest ago is evicted (least recently failing first). Under a distributed attack this
//! forgets the slowest attackers first, which are the ones least likely to reach `maxretry`.
//!
//! The structure is an LRU list threaded through a slab (`Vec<Node>`) with a hash index, so
//! every operation is O(1) and an entry costs ~100 bytes plus 8 bytes per remembered failure.

use std::net::IpAddr;

use crate::hash::FastMap;

const NIL: u32 = u32::MAX;

struct Node {
    addr: IpAddr,
    /// Log times of the most recent failures, oldest first, at most `maxretry` of them.
    times: Vec<i64>,
    /// `times`' first and last, kept beside it: a failure that arrives in order and expires
    /// nothing is decided from these alone and appended without a read of `times`, whose
    /// heap blocks (one per address, tens of megabytes under a distributed attack) are
    /// mostly out of cache.
    oldest: i64,
    newest: i64,
    prev: u32,
    next: u32,
}

/// The failures of one jail.
pub struct FailureWindow {
    findtime: i64,
    maxretry: usize,
    capacity: usize,
    index: FastMap<IpAddr, u32>,
    nodes: Vec<Node>,
    free: Vec<u32>,
    /// Most recently failing address.
    head: u32,
    /// Least recently failing address: the next to evict.
    tail: u32,
    evicted: u64,
}

impl FailureWindow {
    /// A window counting `maxretry` failures within `findtime` seconds, tracking at most
    /// `capacity` addresses (at least 1).
    pub fn new(findtime: u64, maxretry: u32, capacity: usize) -> FailureWindow {
        FailureWindow {
            findtime: i64::try_from(findtime).unwrap_or(i64::MAX),
            maxretry: maxretry.max(1) as usize,
            capacity: capacity.max(1),
            index: FastMap::default(),
            nodes: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            evicted: 0,
        }
    }

    /// Records a failure of `addr` at log time `at` and returns how many failures of `addr`
    /// fall within `findtime` of its newest one (capped at `maxretry`).
    pub fn record(&mut self, addr: IpAddr, at: i64) -> usize {
        let id = match self.index.get(&addr) {
            Some(&id) => {
                self.unlink(id);
                id
            }
            None => {
                if self.index.len() >= self.capacity {
                    self.evict_tail();
                }
                let node = Node {
                    addr,
                    // Grown as failures come: most attackers of a distributed attack fail once or twice,
                    // so reserving maxretry slots up front would cost 8 × maxretry bytes each.
                    times: Vec::new(),
                    oldest: at,
                    newest: at,
                    prev: NIL,
                    next: NIL,
                };
                let id = match self.free.pop() {
                    Some(id) => {
                        self.nodes[id as usize] = node;
                        id
                    }
                    None => {
                        self.nodes.push(node);
                        u32::try_from(self.nodes.len() - 1).expect("invariant: capacity fits u32")
                    }
                };
                self.index.insert(addr, id);
                id
            }
        };
        self.push_front(id);
        let (findtime, maxretry) = (self.findtime, self.maxretry);
        let node = &mut self.nodes[id as usize];
        let horizon = at.saturating_sub(findtime);
        let fresh = node.times.is_empty();
        if findtime > 0
            && (fresh
                || (at >= node.newest && node.oldest > horizon && node.times.len() < maxretry))
        {
            // In order, nothing stale, room left: the usual case, a plain append.
            if fresh {
                node.oldest = at;
            }
            node.times.push(at);
            node.newest = at;
            return node.times.len();
        }
        let times = &mut node.times;
        // Keep times sorted even when two sources of one jail deliver slightly out of order.
        let pos = times.partition_point(|&t| t <= at);
        times.insert(pos, at);
        // Sorted, so what fell out of the window is a prefix: found by bisection and dropped
        // in one move together with what exceeds `maxretry`, not by a scan of every time
        // remembered (up to `maxretry` of them, on every failure).
        let newest = *times.last().expect("invariant: just inserted");
        let horizon = newest.saturating_sub(findtime);
        let stale = times.partition_point(|&t| t <= horizon);
        let excess = times.len().saturating_sub(maxretry);
        times.drain(..stale.max(excess));
        let count = times.len();
        // Empty only with a findtime of 0; the next failure starts afresh either way.
        node.oldest = node.times.first().copied().unwrap_or(newest);
        node.newest = newest;
        count
    }

    /// Forgets `addr` (after it was banned or unbanned).
    pub fn forget(&mut self, addr: IpAddr) {
        if let Some(id) = self.index.remove(&addr) {
            self.unlink(id);
            self.release(id);
        }
    }

    /// Drops every address whose newest failure is older than `findtime` before `now`.
    /// Cost is proportional to what is dropped.
    pub fn expire(&mut self, now: i64) {
        let horizon = now.saturating_sub(self.findtime);
        // The tail is the least recent arrival; arrival order and log order agree except for
        // out-of-order sources, which at worst keep an entry until the next sweep.
        while self.tail != NIL {
            let node = &self.nodes[self.tail as usize];
            if !node.times.is_empty() && node.newest > horizon {
                break;
            }
            let addr = node.addr;
            self.forget(addr);
        }
    }

    /// Addresses currently tracked (fail2ban's "currently failed").
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Addresses dropped because the window was full.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    fn evict_tail(&mut self) {
        if self.tail != NIL {
            let addr = self.nodes[self.tail as usize].addr;
            self.forget(addr);
            self.evicted += 1;
        }
    }

    fn release(&mut self, id: u32) {
        let node = &mut self.nodes[id as usize];
        node.times = Vec::new();
        self.free.push(id);
    }

    fn unlink(&mut self, id: u32) {
        let (prev, next) = {
            let n = &self.nodes[id as usize];
            (n.prev, n.next)
        };
        if prev != NIL {
            self.nodes[prev as usize].next = next;
        } else {
            self.head = next;
        }
        if next != NIL {
            self.nodes[next as usize].prev = prev;
        } else {
            self.tail = prev;
        }
        let n = &mut self.nodes[id as usize];
        n.prev = NIL;
        n.next = NIL;
    }

    fn push_front(&mut self, id: u32) {
        let old = self.head;
        {
            let n = &mut self.nodes[id as usize];
            n.prev = NIL;
            n.next = old;
        }
        if old != NIL {
            self.nodes[old as usize].prev = id;
        } else {
            self.tail = id;
        }
        self.head = id;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(n.into())
    }

    #[test]
    fn counts_within_findtime_by_log_time() {
        let mut w = FailureWindow::new(600, 3, 100);
        assert_eq!(w.record(ip(1), 1_000), 1);
        assert_eq!(w.record(ip(1), 1_300), 2);
        // 1_000 is now 601 s old: out of the window.
        assert_eq!(w.record(ip(1), 1_601), 2);
        assert_eq!(w.record(ip(1), 1_700), 3);
    }

    #[test]
    fn window_edge_is_exclusive_of_findtime_old_failures() {
        let mut w = FailureWindow::new(10, 5, 10);
        w.record(ip(1), 100);
        assert_eq!(
            w.record(ip(1), 110),
            1,
            "a failure exactly findtime old has left the window"
        );
        assert_eq!(w.record(ip(1), 119), 2);
    }

    #[test]
    fn out_of_order_failures_still_count() {
        let mut w = FailureWindow::new(600, 3, 100);
        w.record(ip(1), 1_500);
        w.record(ip(1), 1_400);
        assert_eq!(w.record(ip(1), 1_450), 3);
    }

    #[test]
    fn addresses_are_independent() {
        let mut w = FailureWindow::new(600, 3, 100);
        w.record(ip(1), 1);
        w.record(ip(2), 2);
        assert_eq!(w.record(ip(1), 3), 2);
        assert_eq!(w.len(), 2);
        w.forget(ip(1));
        assert_eq!(w.len(), 1);
        assert_eq!(w.record(ip(1), 4), 1);
    }

    #[test]
    fn full_window_evicts_least_recently_failing() {
        let mut w = FailureWindow::new(600, 5, 3);
        w.record(ip(1), 1);
        w.record(ip(2), 2);
        w.record(ip(3), 3);
        w.record(ip(1), 4); // 1 is now the most recent; 2 is the oldest arrival
        w.record(ip(4), 5);
        assert_eq!(w.len(), 3);
        assert_eq!(w.evicted(), 1);
        assert_eq!(w.record(ip(2), 6), 1, "2 was evicted and starts over");
        assert_eq!(w.record(ip(1), 7), 3, "1 kept its failures");
    }

    #[test]
    fn a_million_attackers_stay_within_the_cap() {
        let mut w = FailureWindow::new(600, 5, 10_000);
        for n in 0..1_000_000u32 {
            w.record(ip(n), i64::from(n / 1000));
        }
        assert_eq!(w.len(), 10_000);
        assert!(w.nodes.len() <= 10_000, "the slab reuses freed slots");
        assert_eq!(w.evicted(), 990_000);
    }

    /// The window against the plainest model of it: every failure of every address kept, then
    /// those within `findtime` of the newest counted up to `maxretry`. Failures arrive mostly in
    /// order, with some late ones, on several windows and caps.
    #[test]
    fn counts_agree_with_a_model_that_keeps_every_failure() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |bound: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % bound
        };
        for (findtime, maxretry) in [(10, 3), (60, 5), (600, 1000), (1, 1), (0, 2)] {
            let mut window = FailureWindow::new(findtime, maxretry, 1_000);
            let mut model: FastMap<IpAddr, Vec<i64>> = FastMap::default();
            let mut clock = 0_i64;
            for _ in 0..20_000 {
                clock += next(4) as i64;
                let late = if next(10) == 0 { next(30) as i64 } else { 0 };
                let (addr, at) = (ip(next(16) as u32), clock - late);
                let all = model.entry(addr).or_default();
                all.push(at);
                let newest = all.iter().copied().max().expect("just pushed");
                let within = all
                    .iter()
                    .filter(|&&t| t > newest - findtime as i64)
                    .count();
                assert_eq!(
                    window.record(addr, at),
                    within.min(maxretry as usize),
                    "{addr} at {at}, findtime {findtime}, maxretry {maxretry}"
                );
            }
        }
    }

    #[test]
    fn expire_drops_stale_addresses_only() {
        let mut w = FailureWindow::new(600, 5, 100);
        w.record(ip(1), 100);
        w.record(ip(2), 500);
        w.record(ip(3), 900);
        w.expire(1_150);
        assert_eq!(w.len(), 1, "only 3's failure is within 600 s of 1150");
        assert_eq!(w.record(ip(3), 1_160), 2);
        w.expire(10_000);
        assert!(w.is_empty());
        assert_eq!(
            w.record(ip(9), 10_001),
            1,
            "the structure is reusable after emptying"
        );
    }
}
