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
    text.parse().ok()
}

/// A dotted-quad IPv4 address as std reads one (four decimal octets of at most 255, without
/// leading zeros: `192.030.0.6` is no address); `None` for anything else, which std's parser
/// then reads (or refuses).
fn parse_ipv4(text: &[u8]) -> Option<Ipv4Addr> {
    if text.len() > 15 {
        return None;
    }
    let mut octets = [0u8; 4];
    let mut parts = text.split(|&b| b == b'.');
    for octet in &mut octets {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 || (part.len() > 1 && part[0] == b'0') {
            return None;
        }
        let mut value: u16 = 0;
        for &digit in part {
            if !digit.is_ascii_digit() {
                return None;
            }
            value = value * 10 + u16::from(digit - b'0');
        }
        *octet = u8::try_from(value).ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(Ipv4Addr::from(octets))
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
