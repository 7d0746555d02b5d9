//! Set elements: encoding of bans for `NEWSETELEM` / `DELSETELEM`, and parsing of element
//! dumps back into ban targets.
//!
//! Receives ban targets with timeouts; emits element list attributes: a single address is one
//! element, a prefix in an interval set is a start element plus an `NFT_SET_ELEM_INTERVAL_END`
//! element at [`Prefix::end_exclusive`] (none when the prefix reaches the top of the address
//! space: the interval is then open at the top, as nft encodes it). Timeouts go in
//! milliseconds, u64 big-endian. Receives dump replies; emits `(target, timeout, expires)`
//! in one linear walk plus one sort per interval set. It never sends anything and never sets
//! `NLM_F_EXCL` (re-adding must not fail).
//!
//! [`Prefix::end_exclusive`]: nftjail_core::addr::Prefix::end_exclusive

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use super::message::{Attrs, Message, Writer, be_u32, be_u64, protocol};
use super::uapi::*;
use crate::{BackendError, SetKind};
use nftjail_core::addr::{BanTarget, Prefix};

/// Whether a message adds or deletes elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElementOp {
    Add,
    Delete,
}

/// Largest element-list nest we build: its length field is 16 bits, and the kernel answers an
/// error with a copy of the whole message, so messages stay well below 64 KiB.
pub const ELEMENTS_BUDGET: usize = 60 * 1024;

/// Starts a `NEWSETELEM`/`DELSETELEM` message for set `set`; returns `(message, nest)` starts
/// for [`end_message`].
pub fn begin_message(
    w: &mut Writer,
    seq: u32,
    op: ElementOp,
    table: &str,
    set: &str,
) -> (usize, usize) {
    let (msg, flags) = match op {
        ElementOp::Add => (NFT_MSG_NEWSETELEM, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE),
        ElementOp::Delete => (NFT_MSG_DELSETELEM, NLM_F_REQUEST | NLM_F_ACK),
    };
    let m = w.begin_message(nft_type(msg), flags, seq, NFPROTO_INET, 0);
    w.attr_str(NFTA_SET_ELEM_LIST_TABLE, table);
    w.attr_str(NFTA_SET_ELEM_LIST_SET, set);
    let nest = w.begin_nest(NFTA_SET_ELEM_LIST_ELEMENTS);
    (m, nest)
}

pub fn end_message(w: &mut Writer, (message, nest): (usize, usize)) {
    w.end_nest(nest);
    w.end_message(message);
}

/// A timeout in whole milliseconds, at least 1: the kernel reads 0 as "no timeout", which
/// would turn a very short ban into a permanent one.
pub fn timeout_ms(timeout: Duration) -> u64 {
    u64::try_from(timeout.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

fn key_bytes(addr: IpAddr) -> ([u8; 16], usize) {
    let mut key = [0u8; 16];
    match addr {
        IpAddr::V4(a) => {
            key[..4].copy_from_slice(&a.octets());
            (key, 4)
        }
        IpAddr::V6(a) => {
            key.copy_from_slice(&a.octets());
            (key, 16)
        }
    }
}

/// One list element: flags, timeout and key, in the order nft writes them.
fn element(w: &mut Writer, addr: IpAddr, flags: u32, timeout: Option<Duration>) {
    let elem = w.begin_nest(NFTA_LIST_ELEM);
    if flags != 0 {
        w.attr_u32_be(NFTA_SET_ELEM_FLAGS, flags);
    }
    if let Some(timeout) = timeout {
        w.attr_u64_be(NFTA_SET_ELEM_TIMEOUT, timeout_ms(timeout));
    }
    let key = w.begin_nest(NFTA_SET_ELEM_KEY);
    let (bytes, len) = key_bytes(addr);
    w.attr(NFTA_DATA_VALUE, &bytes[..len]);
    w.end_nest(key);
    w.end_nest(elem);
}

/// The list elements of one ban target (`timeout` is ignored for deletes).
pub fn encode(w: &mut Writer, target: &BanTarget, op: ElementOp, timeout: Option<Duration>) {
    let timeout = match op {
        ElementOp::Add => timeout,
        ElementOp::Delete => None,
    };
    match target {
        BanTarget::Addr(addr) => element(w, *addr, 0, timeout),
        BanTarget::Net(prefix) => {
            element(w, prefix.addr(), 0, timeout);
            if let Some(end) = prefix.end_exclusive() {
                element(w, end, NFT_SET_ELEM_INTERVAL_END, None);
            }
        }
    }
}

/// Dump request for the elements of one set.
pub fn get_elements(w: &mut Writer, seq: u32, table: &str, set: &str) {
    let m = w.begin_message(
        nft_type(NFT_MSG_GETSETELEM),
        NLM_F_REQUEST | NLM_F_DUMP,
        seq,
        NFPROTO_INET,
        0,
    );
    w.attr_str(NFTA_SET_ELEM_LIST_TABLE, table);
    w.attr_str(NFTA_SET_ELEM_LIST_SET, set);
    w.end_message(m);
}

/// An element as dumped, before intervals are put back together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dumped {
    pub key: IpAddr,
    pub interval_end: bool,
    pub timeout: Option<Duration>,
    pub expires: Option<Duration>,
}

/// Appends the elements of one dump reply message to `out`.
pub fn parse_dump(message: &Message<'_>, out: &mut Vec<Dumped>) -> Result<(), BackendError> {
    for attr in message.nft_attrs()? {
        let (kind, data) = attr?;
        if kind != NFTA_SET_ELEM_LIST_ELEMENTS {
            continue;
        }
        for elem in Attrs::new(data) {
            let (_, elem) = elem?;
            out.push(parse_element(elem)?);
        }
    }
    Ok(())
}

fn parse_element(data: &[u8]) -> Result<Dumped, BackendError> {
    let (mut key, mut flags, mut timeout, mut expires) = (None, 0, None, None);
    for attr in Attrs::new(data) {
        let (kind, value) = attr?;
        match kind {
            NFTA_SET_ELEM_KEY => {
                for inner in Attrs::new(value) {
                    let (kind, value) = inner?;
                    if kind == NFTA_DATA_VALUE {
                        key = Some(key_addr(value)?);
                    }
                }
            }
            NFTA_SET_ELEM_FLAGS => flags = be_u32(value)?,
            NFTA_SET_ELEM_TIMEOUT => timeout = Some(Duration::from_millis(be_u64(value)?)),
            NFTA_SET_ELEM_EXPIRATION => expires = Some(Duration::from_millis(be_u64(value)?)),
            _ => {}
        }
    }
    Ok(Dumped {
        key: key.ok_or_else(|| protocol("dumped element without key"))?,
        interval_end: flags & NFT_SET_ELEM_INTERVAL_END != 0,
        timeout,
        expires,
    })
}

fn key_addr(value: &[u8]) -> Result<IpAddr, BackendError> {
    if let Ok(v4) = <[u8; 4]>::try_from(value) {
        Ok(IpAddr::V4(Ipv4Addr::from(v4)))
    } else if let Ok(v6) = <[u8; 16]>::try_from(value) {
        Ok(IpAddr::V6(Ipv6Addr::from(v6)))
    } else {
        Err(protocol(&format!("element key of {} bytes", value.len())))
    }
}

/// The ban targets of a dumped set, with `(timeout, expires)`. Interval sets are rebuilt from
/// sorted start/end pairs; ranges that are not a CIDR prefix were not written by nftjail and
/// are skipped (at debug level).
pub fn assemble(
    kind: SetKind,
    mut dumped: Vec<Dumped>,
) -> Vec<(BanTarget, Option<Duration>, Option<Duration>)> {
    if !kind.is_interval() {
        return dumped
            .into_iter()
            .filter(|d| !d.interval_end)
            .map(|d| (BanTarget::addr(d.key), d.timeout, d.expires))
            .collect();
    }
    // Sorted by key, an end sorts before a start at the same key (an end at X closes the
    // interval before, a start at X opens the next one).
    dumped.sort_by_key(|d| (d.key, !d.interval_end));
    let mut targets = Vec::with_capacity(dumped.len() / 2 + 1);
    let mut iter = dumped.iter().peekable();
    while let Some(start) = iter.next() {
        if start.interval_end {
            continue; // an end without start: nothing is matched there
        }
        let end = iter.next_if(|next| next.interval_end).map(|next| next.key);
        match prefix_of(start.key, end) {
            Some(prefix) => targets.push((BanTarget::Net(prefix), start.timeout, start.expires)),
            None => tracing::debug!(start = %start.key, end = ?end, "skipping non-prefix interval"),
        }
    }
    targets
}

/// The prefix `[start, end)` (`end` `None`: to the top of the space), if it is one.
fn prefix_of(start: IpAddr, end: Option<IpAddr>) -> Option<Prefix> {
    let (first, bits, end) = match (start, end) {
        (IpAddr::V4(s), None) => (u128::from(u32::from(s)), 32, 1u128 << 32),
        (IpAddr::V4(s), Some(IpAddr::V4(e))) => {
            (u128::from(u32::from(s)), 32, u128::from(u32::from(e)))
        }
        (IpAddr::V6(s), end) => {
            let first = u128::from(s);
            let size = match end {
                None => first.wrapping_neg(), // 2^128 - first, 0 when first is 0
                Some(IpAddr::V6(e)) => u128::from(e).checked_sub(first)?,
                Some(IpAddr::V4(_)) => return None,
            };
            if size == 0 && first == 0 {
                return Prefix::new(start, 0); // ::/0
            }
            return finish(start, size, 128);
        }
        (IpAddr::V4(_), Some(IpAddr::V6(_))) => return None,
    };
    finish(start, end.checked_sub(first)?, bits)
}

fn finish(start: IpAddr, size: u128, bits: u32) -> Option<Prefix> {
    if size < 2 || !size.is_power_of_two() {
        return None;
    }
    let len = bits - size.trailing_zeros();
    let prefix = Prefix::new(start, u8::try_from(len).ok()?)?;
    (prefix.addr() == start).then_some(prefix)
}

#[cfg(test)]
mod tests {
    use super::super::message::messages;
    use super::*;

    fn target(text: &str) -> BanTarget {
        text.parse().unwrap()
    }

    /// The payloads of the list elements written for `target`.
    fn encoded(target: &BanTarget, op: ElementOp, timeout: Option<Duration>) -> Vec<Vec<u8>> {
        let mut w = Writer::new();
        encode(&mut w, target, op, timeout);
        Attrs::new(w.bytes())
            .map(|a| {
                let (kind, data) = a.unwrap();
                assert_eq!(kind, 1, "NFTA_LIST_ELEM");
                data.to_vec()
            })
            .collect()
    }

    fn attr(kind: u16, data: &[u8]) -> Vec<u8> {
        let mut out = ((4 + data.len()) as u16).to_ne_bytes().to_vec();
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(data);
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
        out
    }

    /// NFTA_SET_ELEM_KEY (1, nested 0x8000) holding NFTA_DATA_VALUE (1).
    fn key(bytes: &[u8]) -> Vec<u8> {
        attr(0x8001, &attr(1, bytes))
    }

    #[test]
    fn an_address_with_timeout_is_ms_big_endian() {
        let elems = encoded(
            &target("192.0.2.1"),
            ElementOp::Add,
            Some(Duration::from_secs(3600)),
        );
        // NFTA_SET_ELEM_TIMEOUT (4): 3,600,000 ms = 0x36ee80, u64 big-endian.
        let mut want = attr(4, &[0, 0, 0, 0, 0x00, 0x36, 0xee, 0x80]);
        want.extend(key(&[192, 0, 2, 1]));
        assert_eq!(elems, vec![want]);
    }

    #[test]
    fn a_permanent_v6_address_has_no_timeout() {
        let elems = encoded(&target("2001:db8::1"), ElementOp::Add, None);
        let mut addr = [0u8; 16];
        addr[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        addr[15] = 1;
        assert_eq!(elems, vec![key(&addr)]);
    }

    #[test]
    fn a_prefix_is_start_plus_interval_end() {
        let elems = encoded(
            &target("10.0.0.0/8"),
            ElementOp::Add,
            Some(Duration::from_millis(1500)),
        );
        let mut start = attr(4, &1500u64.to_be_bytes());
        start.extend(key(&[10, 0, 0, 0]));
        // NFTA_SET_ELEM_FLAGS (3) = NFT_SET_ELEM_INTERVAL_END (1), big-endian; no timeout.
        let mut end = attr(3, &[0, 0, 0, 1]);
        end.extend(key(&[11, 0, 0, 0]));
        assert_eq!(elems, vec![start, end]);

        let v6 = encoded(&target("2001:db8:1:2::/64"), ElementOp::Delete, None);
        let mut start = [0u8; 16];
        start[..8].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2]);
        let mut end = start;
        end[7] = 3;
        let mut want_end = attr(3, &[0, 0, 0, 1]);
        want_end.extend(key(&end));
        assert_eq!(v6, vec![key(&start), want_end]);
    }

    #[test]
    fn a_prefix_at_the_top_has_no_end_element() {
        for text in ["255.255.255.0/24", "::/0", "0.0.0.0/0"] {
            let elems = encoded(&target(text), ElementOp::Add, None);
            assert_eq!(elems.len(), 1, "{text}");
        }
    }

    #[test]
    fn deletes_carry_no_timeout_and_timeouts_never_round_to_zero() {
        let elems = encoded(
            &target("192.0.2.1"),
            ElementOp::Delete,
            Some(Duration::from_secs(1)),
        );
        assert_eq!(elems, vec![key(&[192, 0, 2, 1])]);
        assert_eq!(timeout_ms(Duration::from_micros(10)), 1);
        assert_eq!(
            timeout_ms(Duration::from_secs(180 * 86_400)),
            15_552_000_000
        );
    }

    #[test]
    fn message_header_for_adds_and_deletes() {
        for (op, kind, flags) in [
            // NEWSETELEM (12) with REQUEST|ACK|CREATE, never EXCL (0x200).
            (ElementOp::Add, 0x0a0c, 0x405),
            // DELSETELEM (14) with REQUEST|ACK.
            (ElementOp::Delete, 0x0a0e, 0x005),
        ] {
            let mut w = Writer::new();
            let starts = begin_message(&mut w, 5, op, "nftjail", "sshd_v4");
            encode(&mut w, &target("192.0.2.1"), op, None);
            end_message(&mut w, starts);
            let m = messages(w.bytes()).next().unwrap().unwrap();
            assert_eq!((m.kind, m.flags, m.seq), (kind, flags, 5));
            let attrs: Vec<_> = m.nft_attrs().unwrap().map(Result::unwrap).collect();
            assert_eq!(attrs[0], (1, &b"nftjail\0"[..]));
            assert_eq!(attrs[1], (2, &b"sshd_v4\0"[..]));
            assert_eq!(attrs[2].0, 3);
        }
    }

    fn dumped(key: &str, end: bool, expires: Option<u64>) -> Dumped {
        Dumped {
            key: key.parse().unwrap(),
            interval_end: end,
            timeout: expires.map(|_| Duration::from_secs(60)),
            expires: expires.map(Duration::from_secs),
        }
    }

    #[test]
    fn intervals_are_reassembled_whatever_the_dump_order() {
        let raw = vec![
            dumped("255.255.255.0", false, Some(30)),
            dumped("11.0.0.0", true, None),
            dumped("10.0.0.0", false, Some(50)),
            dumped("192.0.2.0", true, None),
            dumped("192.0.1.0", false, None), // 192.0.1.0/24: the end abuts the next start
            dumped("192.0.2.0", false, None),
            dumped("192.0.3.0", true, None),
            dumped("172.16.0.0", false, None), // 172.16.0.0..172.16.0.3: not a prefix
            dumped("172.16.0.3", true, None),
        ];
        let got: Vec<String> = assemble(SetKind::Net4, raw)
            .into_iter()
            .map(|(t, _, e)| format!("{t} {e:?}"))
            .collect();
        assert_eq!(
            got,
            vec![
                "10.0.0.0/8 Some(50s)",
                "192.0.1.0/24 None",
                "192.0.2.0/24 None",
                "255.255.255.0/24 Some(30s)"
            ]
        );
        let v6 = vec![dumped("::", false, None)];
        let got = assemble(SetKind::Net6, v6);
        assert_eq!(got[0].0.to_string(), "::/0");
        let v6 = vec![
            dumped("2001:db8::", false, None),
            dumped("2001:db9::", true, None),
        ];
        assert_eq!(
            assemble(SetKind::Net6, v6)[0].0.to_string(),
            "2001:db8::/32"
        );
    }

    #[test]
    fn parses_a_dumped_element() {
        let mut w = Writer::new();
        let starts = begin_message(&mut w, 1, ElementOp::Add, "nftjail", "sshd_v4");
        let elem = w.begin_nest(1);
        w.attr_u64_be(4, 3_600_000); // NFTA_SET_ELEM_TIMEOUT
        w.attr_u64_be(5, 3_599_000); // NFTA_SET_ELEM_EXPIRATION
        let k = w.begin_nest(1);
        w.attr(1, &[192, 0, 2, 7]);
        w.end_nest(k);
        w.end_nest(elem);
        end_message(&mut w, starts);
        let m = messages(w.bytes()).next().unwrap().unwrap();
        let mut out = Vec::new();
        parse_dump(&m, &mut out).unwrap();
        assert_eq!(
            out,
            vec![Dumped {
                key: "192.0.2.7".parse().unwrap(),
                interval_end: false,
                timeout: Some(Duration::from_secs(3600)),
                expires: Some(Duration::from_secs(3599)),
            }]
        );
    }
}
