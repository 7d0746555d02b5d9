//! Address text as fail2ban's `IPAddr` reads it.
//!
//! Receives: the text of an `ip4`/`ip6` group (or a failure id), the family the group implies
//! and an optional `<CIDR>` prefix length.
//! Emits: an [`IpAddr`] (IPv4-mapped IPv6 becomes IPv4, as fail2ban does) and prefix length.
//! Never: resolves a host name (nftjail runs with `usedns = no`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Which family a group implies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
    Any,
}

/// A parsed address with its prefix length (32/128 for a single address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Address {
    pub ip: IpAddr,
    pub prefix: u8,
}

/// `IPAddr(text, cidr)`: `None` when the text is not an address of that family.
pub fn parse_address(text: &str, family: Family, cidr: Option<u32>) -> Option<Address> {
    let text = match text
        .strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
    {
        Some(inner) if text.len() > 2 => inner,
        _ => text,
    };
    let (text, cidr) = match (cidr, text.split_once('/')) {
        (None, Some((address, length))) => (address, length.parse::<u32>().ok()),
        _ => (text, cidr),
    };
    let family = if cidr.is_some() { Family::Any } else { family };
    let ip: IpAddr = match family {
        Family::V4 => IpAddr::V4(text.parse::<Ipv4Addr>().ok()?),
        Family::V6 => IpAddr::V6(text.parse::<Ipv6Addr>().ok()?),
        Family::Any => text.parse().ok()?,
    };
    match (ip, cidr) {
        (IpAddr::V4(v4), Some(length)) => {
            let length = length.min(32);
            let mask = if length == 0 {
                0
            } else {
                u32::MAX << (32 - length)
            };
            Some(Address {
                ip: IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask)),
                prefix: length as u8,
            })
        }
        (IpAddr::V6(v6), Some(length)) => {
            let length = length.min(128);
            let mask = if length == 0 {
                0
            } else {
                u128::MAX << (128 - length)
            };
            Some(Address {
                ip: IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask)),
                prefix: length as u8,
            })
        }
        (IpAddr::V6(v6), None) => match v6.to_ipv4_mapped() {
            Some(v4) => Some(Address {
                ip: IpAddr::V4(v4),
                prefix: 32,
            }),
            None => Some(Address { ip, prefix: 128 }),
        },
        (IpAddr::V4(_), None) => Some(Address { ip, prefix: 32 }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_ipaddr() {
        assert_eq!(
            parse_address("192.0.2.1", Family::V4, None)
                .unwrap()
                .ip
                .to_string(),
            "192.0.2.1"
        );
        assert!(parse_address("192.0.2.256", Family::V4, None).is_none());
        assert!(parse_address("010.0.2.1", Family::V4, None).is_none());
        assert_eq!(
            parse_address("::ffff:192.0.2.1", Family::V6, None)
                .unwrap()
                .ip
                .to_string(),
            "192.0.2.1"
        );
        assert_eq!(
            parse_address("[2001:db8::1]", Family::Any, None)
                .unwrap()
                .prefix,
            128
        );
        let subnet = parse_address("192.0.2.77", Family::V4, Some(24)).unwrap();
        assert_eq!(
            (subnet.ip.to_string(), subnet.prefix),
            ("192.0.2.0".to_string(), 24)
        );
        assert!(parse_address("host.example", Family::Any, None).is_none());
    }
}
