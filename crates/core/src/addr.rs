//! Ban targets: single addresses and CIDR prefixes, parsed once at the edge.
//!
//! Receives text from config, logs, the control socket and blocklists; emits normalized
//! [`BanTarget`]s. IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`) are turned into the IPv4
//! address they carry, so one attacker is one target whichever way a daemon logged it. A prefix
//! is always stored with its host bits cleared (`192.0.2.77/24` is `192.0.2.0/24`) and a prefix
//! of full length is a plain address.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An address family, as nftables sets are split by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// Bits in an address of this family.
    pub fn bits(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }
}

/// A CIDR prefix with its host bits cleared. `len` is shorter than the address length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

impl Prefix {
    /// The prefix of `len` bits that contains `addr` (host bits are cleared).
    ///
    /// Returns `None` when `len` is longer than the address.
    pub fn new(addr: IpAddr, len: u8) -> Option<Prefix> {
        let addr = canonical(addr);
        let bits = family_of(addr).bits();
        if len > bits {
            return None;
        }
        Some(Prefix {
            addr: mask(addr, len),
            len,
        })
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    pub fn family(&self) -> Family {
        family_of(self.addr)
    }

    /// The last address inside the prefix.
    pub fn last(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => {
                let host = if self.len == 0 {
                    u32::MAX
                } else {
                    u32::MAX >> self.len
                };
                IpAddr::V4(Ipv4Addr::from(u32::from(a) | host))
            }
            IpAddr::V6(a) => {
                let host = if self.len == 0 {
                    u128::MAX
                } else {
                    u128::MAX >> self.len
                };
                IpAddr::V6(Ipv6Addr::from(u128::from(a) | host))
            }
        }
    }

    /// The first address after the prefix, `None` when the prefix reaches the top of the space.
    /// nftables interval sets store a prefix as `[addr, end)` with this end.
    pub fn end_exclusive(&self) -> Option<IpAddr> {
        match self.last() {
            IpAddr::V4(a) => u32::from(a).checked_add(1).map(|n| IpAddr::V4(n.into())),
            IpAddr::V6(a) => u128::from(a).checked_add(1).map(|n| IpAddr::V6(n.into())),
        }
    }

    /// Whether `addr` lies inside this prefix.
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = canonical(addr);
        family_of(addr) == self.family() && mask(addr, self.len) == self.addr
    }

    /// Whether `other` lies entirely inside this prefix.
    pub fn covers(&self, other: &Prefix) -> bool {
        other.len >= self.len && self.contains(other.addr)
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// What a ban applies to: one address, or every address of a prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BanTarget {
    Addr(IpAddr),
    Net(Prefix),
}

impl BanTarget {
    /// A target for one address (IPv4-mapped IPv6 becomes IPv4).
    pub fn addr(addr: IpAddr) -> BanTarget {
        BanTarget::Addr(canonical(addr))
    }

    /// A target for `addr/len`; a full-length prefix is the address itself.
    pub fn prefix(addr: IpAddr, len: u8) -> Option<BanTarget> {
        let addr = canonical(addr);
        if len == family_of(addr).bits() {
            return Some(BanTarget::Addr(addr));
        }
        Prefix::new(addr, len).map(BanTarget::Net)
    }

    /// The target that bans `addr` in a jail that folds IPv6 addresses into prefixes of
    /// `fold_v6` bits (`None`: no folding). IPv4 addresses are never folded.
    pub fn folded(addr: IpAddr, fold_v6: Option<u8>) -> BanTarget {
        let addr = canonical(addr);
        match (addr, fold_v6) {
            (IpAddr::V6(_), Some(len)) => BanTarget::prefix(addr, len)
                .expect("invariant: fold length validated at config load (0..=128)"),
            _ => BanTarget::Addr(addr),
        }
    }

    pub fn family(&self) -> Family {
        match self {
            BanTarget::Addr(a) => family_of(*a),
            BanTarget::Net(p) => p.family(),
        }
    }

    /// Whether `addr` is banned by this target.
    pub fn contains(&self, addr: IpAddr) -> bool {
        match self {
            BanTarget::Addr(a) => *a == canonical(addr),
            BanTarget::Net(p) => p.contains(addr),
        }
    }
}

impl fmt::Display for BanTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BanTarget::Addr(a) => a.fmt(f),
            BanTarget::Net(p) => p.fmt(f),
        }
    }
}

/// Why a text is not a ban target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("{0:?} is not an IP address or CIDR prefix")]
    Syntax(String),
    #[error("{text:?}: prefix length {len} is longer than the address ({bits} bits)")]
    PrefixLength { text: String, len: u32, bits: u8 },
}

impl FromStr for BanTarget {
    type Err = TargetError;

    fn from_str(text: &str) -> Result<BanTarget, TargetError> {
        let text = text.trim();
        let syntax = || TargetError::Syntax(text.to_string());
        match text.split_once('/') {
            None => parse_ip(text).map(BanTarget::addr).ok_or_else(syntax),
            Some((ip, len)) => {
                let addr = parse_ip(ip).ok_or_else(syntax)?;
                if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) || len.len() > 3 {
                    return Err(syntax());
                }
                let len: u32 = len.parse().map_err(|_| syntax())?;
                // A mapped address with a /96+ prefix keeps its meaning in IPv4 terms.
                let (addr, len) = match addr {
                    IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() && len >= 96 => {
                        (canonical(addr), len - 96)
                    }
                    _ => (addr, len),
                };
                let bits = family_of(addr).bits();
                if len > u32::from(bits) {
                    return Err(TargetError::PrefixLength {
                        text: text.to_string(),
                        len,
                        bits,
                    });
                }
                Ok(BanTarget::prefix(addr, len as u8).expect("invariant: length checked above"))
            }
        }
    }
}

impl Serialize for BanTarget {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for BanTarget {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<BanTarget, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// An IP address as daemons write it: plain, in brackets (`[2001:db8::1]`), or with a zone
/// index (`fe80::1%eth0`, the zone is dropped).
pub fn parse_ip(text: &str) -> Option<IpAddr> {
    // Most addresses in logs are plain IPv4: read them without std's general parser.
    if let Some(v4) = parse_ipv4(text.as_bytes()) {
        return Some(IpAddr::V4(v4));
    }
    let text = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    let text = text.split_once('%').map_or(text, |(ip, _zone)| ip);
    // What std's `IpAddr` parser reads: a whole dotted quad, or else a whole IPv6 address (a
    // text that starts with a dotted quad is never IPv6, so trying IPv4 first loses nothing).
    let text = text.as_bytes();
    match parse_ipv4(text) {
        Some(v4) => Some(IpAddr::V4(v4)),
        None => parse_ipv6(text).map(IpAddr::V6),
    }
}

/// A dotted-quad IPv4 address as std reads one (four decimal octets of at most 255, without
/// leading zeros: `192.030.0.6` is no address); `None` for anything else, which std's parser
/// then reads (or refuses).
fn parse_ipv4(text: &[u8]) -> Option<Ipv4Addr> {
    match read_embedded_ipv4(text, 0) {
        Some((octets, end)) if end == text.len() => Some(Ipv4Addr::from(octets)),
        _ => None,
    }
}

/// An IPv6 address as std reads one, without std's general parser: up to eight groups of one
/// to four hex digits separated by `:`, with at most one `::` standing for one or more zero
/// groups, and optionally a dotted quad in place of the last two groups (`::ffff:192.0.2.1`,
/// not allowed before a `::`). `None` for anything std refuses.
///
/// This follows std's algorithm step by step (`core::net::parser`'s `read_ipv6_addr`): groups
/// are read up to the `::`, then the rest after it, and the whole text must be used.
fn parse_ipv6(text: &[u8]) -> Option<Ipv6Addr> {
    let mut groups = [0u16; 8];
    let mut at = 0;
    // Without a dot there is no dotted quad to try at each group.
    let dotted = text.contains(&b'.');
    let (head, head_ends_in_ipv4) = read_ipv6_groups(text, &mut at, &mut groups, dotted);
    if head == 8 {
        return (at == text.len()).then_some(Ipv6Addr::from(groups));
    }
    if head_ends_in_ipv4 || text.get(at..at + 2) != Some(b"::") {
        return None;
    }
    at += 2;
    // `::` stands for at least one zero group, so at most seven groups remain for both sides.
    let mut tail = [0u16; 7];
    let (tail_len, _) = read_ipv6_groups(text, &mut at, &mut tail[..7 - head], dotted);
    if at != text.len() {
        return None;
    }
    groups[8 - tail_len..].copy_from_slice(&tail[..tail_len]);
    Some(Ipv6Addr::from(groups))
}

/// Reads `:`-separated groups from `text[*at..]` into `groups` until one does not read (`*at`
/// is then left before its separator) or `groups` is full. A dotted quad fills two groups and
/// ends the run; it is tried first wherever two groups are left (if `dotted`: `text` has a dot).
/// Returns how many groups were filled and whether the last two came from a dotted quad.
fn read_ipv6_groups(
    text: &[u8],
    at: &mut usize,
    groups: &mut [u16],
    dotted: bool,
) -> (usize, bool) {
    let limit = groups.len();
    for i in 0..limit {
        let start = if i == 0 {
            *at
        } else if text.get(*at) == Some(&b':') {
            *at + 1
        } else {
            return (i, false);
        };
        if dotted
            && i + 1 < limit
            && let Some((octets, end)) = read_embedded_ipv4(text, start)
        {
            groups[i] = u16::from_be_bytes([octets[0], octets[1]]);
            groups[i + 1] = u16::from_be_bytes([octets[2], octets[3]]);
            *at = end;
            return (i + 2, true);
        }
        match read_hex_group(text, start) {
            Some((group, end)) => {
                groups[i] = group;
                *at = end;
            }
            None => return (i, false),
        }
    }
    (limit, false)
}

/// One to four hex digits at `text[start..]` (a fifth digit makes it no group) and where they
/// end.
fn read_hex_group(text: &[u8], start: usize) -> Option<(u16, usize)> {
    let mut value: u16 = 0;
    let mut end = start;
    while let Some(&byte) = text.get(end) {
        let digit = HEX_DIGITS[usize::from(byte)];
        if digit == NOT_HEX {
            break;
        }
        if end - start == 4 {
            return None;
        }
        value = value << 4 | u16::from(digit);
        end += 1;
    }
    (end > start).then_some((value, end))
}

/// The value of each byte as a hex digit, [`NOT_HEX`] for a byte that is none.
const HEX_DIGITS: [u8; 256] = {
    let mut table = [NOT_HEX; 256];
    let mut digit = 0;
    while digit < 16 {
        table[b"0123456789abcdef"[digit] as usize] = digit as u8;
        table[b"0123456789ABCDEF"[digit] as usize] = digit as u8;
        digit += 1;
    }
    table
};
const NOT_HEX: u8 = 0xff;

/// A dotted quad at `text[start..]` (the rules of [`parse_ipv4`]; whatever follows is left
/// unread) and where it ends.
fn read_embedded_ipv4(text: &[u8], start: usize) -> Option<([u8; 4], usize)> {
    let mut octets = [0u8; 4];
    let mut end = start;
    for (i, octet) in octets.iter_mut().enumerate() {
        if i > 0 {
            if text.get(end) != Some(&b'.') {
                return None;
            }
            end += 1;
        }
        let first = end;
        let mut value: u16 = 0;
        while let Some(&digit) = text.get(end).filter(|b| b.is_ascii_digit()) {
            if end - first == 3 {
                return None;
            }
            value = value * 10 + u16::from(digit - b'0');
            end += 1;
        }
        let digits = end - first;
        if digits == 0 || (digits > 1 && text[first] == b'0') {
            return None;
        }
        *octet = u8::try_from(value).ok()?;
    }
    Some((octets, end))
}

/// The address with IPv4-mapped IPv6 (`::ffff:a.b.c.d`) turned into IPv4.
pub fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

pub fn family_of(addr: IpAddr) -> Family {
    match addr {
        IpAddr::V4(_) => Family::V4,
        IpAddr::V6(_) => Family::V6,
    }
}

fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len))
            };
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & m))
        }
        IpAddr::V6(a) => {
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len))
            };
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & m))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> BanTarget {
        s.parse().unwrap()
    }

    /// The IPv4 fast path reads exactly what std's parser reads, the same way.
    #[test]
    fn the_ipv4_fast_path_agrees_with_std() {
        let mut texts: Vec<String> = [
            "0.0.0.0",
            "1.2.3.4",
            "255.255.255.255",
            "256.1.1.1",
            "1.2.3",
            "1.2.3.4.5",
            "01.2.3.4",
            "1.2.3.04",
            "1.2.3.0",
            "10.99.100.9",
            "1..2.3",
            ".1.2.3",
            "1.2.3.",
            "1.2.3.4 ",
            "+1.2.3.4",
            "1.2.3.-4",
            "1111.2.3.4",
            "192.030.0.6",
            "",
            "0",
            "1.2.3.4x",
            "١.2.3.4",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for a in [0, 1, 9, 10, 99, 100, 199, 255, 256, 999] {
            texts.push(format!("{a}.{a}.0.{a}"));
        }
        for text in &texts {
            let fast = parse_ipv4(text.as_bytes());
            let std = text.parse::<Ipv4Addr>().ok();
            assert_eq!(fast, std, "{text:?}");
            assert_eq!(parse_ip(text), text.parse::<IpAddr>().ok(), "{text:?}");
        }
    }

    /// `parse_ip` as it was before it had its own IPv6 parser: std's `IpAddr` parser after the
    /// brackets and the zone are taken off.
    fn parse_ip_with_std(text: &str) -> Option<IpAddr> {
        let text = text
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .unwrap_or(text);
        let text = text.split_once('%').map_or(text, |(ip, _zone)| ip);
        text.parse().ok()
    }

    /// Checks one text against std; returns whether std reads it as IPv6.
    fn ipv6_agrees_with_std(text: &str) -> bool {
        let std = text.parse::<Ipv6Addr>().ok();
        assert_eq!(parse_ipv6(text.as_bytes()), std, "{text:?}");
        for wrapped in [
            text.to_string(),
            format!("[{text}]"),
            format!("{text}%eth0"),
            format!("[{text}%1]"),
        ] {
            assert_eq!(
                parse_ip(&wrapped),
                parse_ip_with_std(&wrapped),
                "{wrapped:?}"
            );
        }
        std.is_some()
    }

    /// The IPv6 parser reads exactly what std's parser reads, the same way.
    #[test]
    fn the_ipv6_parser_agrees_with_std() {
        let cases = [
            "::",
            ":",
            ":::",
            "::::",
            "::1",
            "1::",
            "1::2",
            ":1::2",
            "1::2:",
            "1:::2",
            "1::2::3",
            "0:0:0:0:0:0:0:0",
            "1:2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7:8:",
            ":1:2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7:8:9",
            "1:2:3:4:5:6:7",
            "1:2:3:4:5:6:7::",
            "::1:2:3:4:5:6:7",
            "::1:2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7:8::",
            "1::2:3:4:5:6:7",
            "1::2:3:4:5:6:7:8",
            "1:2:3::4:5:6:7",
            "ffff:FFFF:abcd:ABCD:0000:0001:1234:5678",
            "fffff::",
            "::fffff",
            "00000::",
            "0001::0001",
            "12345:1:2:3:4:5:6:7",
            "g::",
            "::g",
            "2001:db8::1",
            "2001:db8::1 ",
            " 2001:db8::1",
            "2001:db8::1\n",
            "2001:db8::١",
            "2001:db8:aa:bb:1:2:3:4",
            "fe80::1%eth0",
            "::ffff:192.0.2.1",
            "::FFFF:192.0.2.1",
            "::192.0.2.1",
            "::ffff:0.0.0.0",
            "::ffff:255.255.255.255",
            "::ffff:256.0.0.0",
            "::ffff:1.2.3",
            "::ffff:1.2.3.4.5",
            "::ffff:1.2.3.4:5",
            "::ffff:1.2.3.4::",
            "::ffff:01.2.3.4",
            "::ffff:1.2.3.04",
            "::ffff:1.2.3.0",
            "::ffff:1.2.3.1234",
            "::ffff:1.2.3.4x",
            "::ffff:1..2.3",
            "1.2.3.4::",
            "1.2.3.4::1",
            "1.2.3.4",
            "1:2:3:4:5:6:1.2.3.4",
            "1:2:3:4:5:1.2.3.4",
            "1:2:3:4:5:6:7:1.2.3.4",
            "1:2:3:4:5::1.2.3.4",
            "1:2:3:4:5:6::1.2.3.4",
            "1::1.2.3.4",
            "::1:1.2.3.4",
            "1.2.3.4:1:2:3:4:5:6",
            "64:ff9b::192.0.2.33",
            "",
            "[::1]",
        ];
        for text in cases {
            ipv6_agrees_with_std(text);
        }

        // Every short text over the characters that matter.
        let alphabet = b":.019fFx";
        let mut text = Vec::new();
        for len in 0..=6u32 {
            for mut n in 0..alphabet.len().pow(len) {
                text.clear();
                for _ in 0..len {
                    text.push(alphabet[n % alphabet.len()]);
                    n /= alphabet.len();
                }
                ipv6_agrees_with_std(std::str::from_utf8(&text).unwrap());
            }
        }

        // Address-like texts from a fixed pseudo-random sequence, then mutated.
        let mut state: u64 = 0x5eed_1915;
        let mut next = move |below: usize| {
            // splitmix64
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) % below as u64) as usize
        };
        let junk = [
            ":", "::", ".", "%", "[", "]", "g", "G", " ", "-", "+", "/", "é", "0", "00",
        ];
        let (mut accepted, mut refused) = (0, 0);
        for _ in 0..100_000 {
            let mut text = String::new();
            let groups = next(10);
            let gap = (next(3) > 0).then(|| next(groups + 1));
            let dotted_quad = next(4) == 0;
            for i in 0..groups {
                if gap == Some(i) {
                    text.push_str("::");
                } else if i > 0 {
                    text.push(':');
                }
                let digits = [1, 1, 2, 3, 4, 4, 4, 0, 5][next(9)];
                for _ in 0..digits {
                    let digit = b"0123456789abcdefABCDEF"[next(22)];
                    text.push(char::from(digit));
                }
            }
            if gap == Some(groups) {
                text.push_str("::");
            }
            if dotted_quad {
                if !text.is_empty() && !text.ends_with(':') {
                    text.push(':');
                }
                let octets = 3 + next(3);
                for i in 0..octets {
                    if i > 0 {
                        text.push('.');
                    }
                    let octet = [
                        "0", "00", "01", "9", "10", "99", "100", "199", "255", "256", "999", "1000",
                    ];
                    text.push_str(octet[next(octet.len())]);
                }
            }
            for _ in 0..[0, 0, 0, 1, 1, 2, 3][next(7)] {
                let mut at = next(text.len() + 1);
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                match next(3) {
                    0 => text.insert_str(at, junk[next(junk.len())]),
                    1 => {
                        if at < text.len() {
                            text.remove(at);
                        }
                    }
                    _ => text.truncate(at),
                }
            }
            if ipv6_agrees_with_std(&text) {
                accepted += 1;
            } else {
                refused += 1;
            }
        }
        // Both outcomes are well exercised, so a divergence on either side would show.
        assert!(
            accepted > 10_000 && refused > 10_000,
            "{accepted} accepted, {refused} refused"
        );

        // Every address std writes reads back as itself.
        for _ in 0..10_000 {
            let mut groups = [0u16; 8];
            for group in &mut groups {
                *group = match next(4) {
                    0 | 1 => 0,
                    2 => next(0x10000) as u16,
                    _ => next(16) as u16,
                };
            }
            let addr = Ipv6Addr::from(groups);
            assert_eq!(
                parse_ipv6(addr.to_string().as_bytes()),
                Some(addr),
                "{addr}"
            );
        }
    }

    #[test]
    fn parses_addresses_and_prefixes() {
        let cases = [
            ("192.0.2.1", "192.0.2.1"),
            (" 192.0.2.1 ", "192.0.2.1"),
            ("192.0.2.77/24", "192.0.2.0/24"),
            ("192.0.2.77/32", "192.0.2.77"),
            ("0.0.0.0/0", "0.0.0.0/0"),
            ("2001:db8::1", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("fe80::1%eth0", "fe80::1"),
            ("2001:db8:1:2:3:4:5:6/64", "2001:db8:1:2::/64"),
            ("::ffff:192.0.2.9", "192.0.2.9"),
            ("::ffff:192.0.2.9/120", "192.0.2.0/24"),
        ];
        for (input, want) in cases {
            assert_eq!(t(input).to_string(), want, "input {input:?}");
        }
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "host",
            "192.0.2",
            "192.0.2.1/",
            "192.0.2.1/33",
            "2001:db8::/129",
            "1.2.3.4/+1",
            "1.2.3.4/-1",
        ] {
            assert!(bad.parse::<BanTarget>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn prefix_bounds() {
        let p = match t("198.51.100.0/24") {
            BanTarget::Net(p) => p,
            other => panic!("{other:?}"),
        };
        assert_eq!(p.last().to_string(), "198.51.100.255");
        assert_eq!(p.end_exclusive().unwrap().to_string(), "198.51.101.0");
        assert!(p.contains("198.51.100.7".parse().unwrap()));
        assert!(!p.contains("198.51.101.7".parse().unwrap()));
        assert!(!p.contains("2001:db8::1".parse().unwrap()));
        let top = Prefix::new("255.255.255.0".parse().unwrap(), 24).unwrap();
        assert_eq!(top.end_exclusive(), None);
        let all6 = Prefix::new("::".parse().unwrap(), 0).unwrap();
        assert_eq!(
            all6.last().to_string(),
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
        );
    }

    #[test]
    fn covers_nested_prefixes() {
        let (BanTarget::Net(big), BanTarget::Net(small)) = (t("10.0.0.0/8"), t("10.1.0.0/16"))
        else {
            panic!()
        };
        assert!(big.covers(&small));
        assert!(!small.covers(&big));
        assert!(big.covers(&big));
    }

    #[test]
    fn folds_only_ipv6() {
        let v6: IpAddr = "2001:db8:aa:bb:1:2:3:4".parse().unwrap();
        assert_eq!(
            BanTarget::folded(v6, Some(64)).to_string(),
            "2001:db8:aa:bb::/64"
        );
        assert_eq!(
            BanTarget::folded(v6, None).to_string(),
            "2001:db8:aa:bb:1:2:3:4"
        );
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(BanTarget::folded(v4, Some(64)), BanTarget::Addr(v4));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(BanTarget::folded(mapped, Some(64)), BanTarget::Addr(v4));
    }

    #[test]
    fn serde_round_trip() {
        let targets = vec![t("192.0.2.1"), t("2001:db8::/48")];
        let json = serde_json::to_string(&targets).unwrap();
        assert_eq!(json, r#"["192.0.2.1","2001:db8::/48"]"#);
        let back: Vec<BanTarget> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, targets);
    }
}
