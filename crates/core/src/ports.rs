//! Ports, port ranges and protocols: what a jail's rules close and a firewall rule opens.
//!
//! Receives port ranges as configuration and requests give them; emits them sorted and merged
//! (interval sets refuse overlaps). Pure data, no I/O (service names are resolved by the
//! daemon's configuration).

/// The destination ports a jail closes to its banned sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ports {
    /// Every port of every protocol (`protocols` is then ignored).
    All,
    List(Vec<PortRange>),
}

/// An inclusive range of ports; a single port has `first == last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    pub fn single(port: u16) -> PortRange {
        PortRange {
            first: port,
            last: port,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// The IP protocol number (`meta l4proto`).
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
        }
    }
}

/// `ranges` sorted, with overlapping and adjacent ranges merged (interval sets refuse overlaps).
pub fn normalize_ports(ranges: &[PortRange]) -> Vec<PortRange> {
    let mut sorted: Vec<PortRange> = ranges
        .iter()
        .map(|r| PortRange {
            first: r.first.min(r.last),
            last: r.first.max(r.last),
        })
        .collect();
    sorted.sort();
    let mut merged: Vec<PortRange> = Vec::with_capacity(sorted.len());
    for range in sorted {
        match merged.last_mut() {
            Some(prev) if u32::from(range.first) <= u32::from(prev.last) + 1 => {
                prev.last = prev.last.max(range.last);
            }
            _ => merged.push(range),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_sorted_and_merged() {
        let r = |first, last| PortRange { first, last };
        assert_eq!(
            normalize_ports(&[r(2222, 2222), r(22, 22), r(20, 21), r(100, 90), r(95, 200)]),
            vec![r(20, 22), r(90, 200), r(2222, 2222)]
        );
        assert_eq!(
            normalize_ports(&[r(65535, 65535), r(0, 65534)]),
            vec![r(0, 65535)]
        );
    }
}
