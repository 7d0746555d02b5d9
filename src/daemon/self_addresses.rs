//! The host's own addresses, for `ignoreself`: read them, and know at once when they change.
//!
//! Receives the kernel's address notifications on a `NETLINK_ROUTE` socket bound to
//! `RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR`; emits "changed since the last question"
//! ([`AddressWatcher::changed`]) and the addresses themselves ([`host_addresses`]). It never
//! blocks, never decides what is ignored (the tracker does) and never says "unchanged" when it
//! cannot be sure: a lost (`ENOBUFS`), cut or unreadable notification counts as a change.
//!
//! Why asking before each ban decision is enough: the kernel queues the notification on this
//! socket inside the `ip addr add` system call, before that call returns. A core that asks
//! [`AddressWatcher::changed`] before deciding a ban, and re-reads the addresses when it says
//! so, cannot ban an address that was added before the failure lines naming it were written.
//! Open the watcher before the first read of the addresses, so that nothing falls in between.
//!
//! It lives beside the daemon, not in the backend: the rule that only the backend speaks
//! netlink is about the packet filter, and this is the route socket, read for the daemon's
//! ignoreself and nothing else (a header walk of a few lines, no nf_tables).

use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, socket,
};

/// linux/rtnetlink.h: the multicast groups of IPv4 and IPv6 address changes.
const RTMGRP_IPV4_IFADDR: u32 = 0x10;
const RTMGRP_IPV6_IFADDR: u32 = 0x100;
/// linux/rtnetlink.h: `RTM_NEWADDR` and `RTM_DELADDR`.
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
/// `sizeof(struct nlmsghdr)`.
const NLMSG_HDRLEN: usize = 16;
/// An address notification is ~100 bytes; a longer datagram is noticed (`MSG_TRUNC`).
const DATAGRAM: usize = 16 << 10;

/// Tells whether the host's addresses changed since it was last asked. Non-blocking.
#[derive(Debug)]
pub struct AddressWatcher {
    fd: OwnedFd,
    buf: Vec<u8>,
}

impl AddressWatcher {
    /// Subscribes to the address changes of the current network namespace (no privilege
    /// needed).
    pub fn open() -> std::io::Result<AddressWatcher> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            SockProtocol::NetlinkRoute,
        )?;
        let groups = RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, groups))?;
        Ok(AddressWatcher {
            fd,
            buf: vec![0; DATAGRAM],
        })
    }

    /// Reads every queued notification; `true` when an address was added or removed since the
    /// last call, or when that cannot be ruled out.
    pub fn changed(&mut self) -> bool {
        let mut changed = false;
        loop {
            match recv(
                self.fd.as_raw_fd(),
                &mut self.buf,
                MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_TRUNC,
            ) {
                Ok(0) | Err(Errno::EAGAIN) => return changed,
                Ok(len) if len > self.buf.len() => changed = true,
                Ok(len) => changed |= mentions_address(&self.buf[..len]),
                Err(Errno::EINTR) => {}
                Err(Errno::ENOBUFS) => {
                    tracing::debug!("address notifications lost; re-reading the addresses");
                    changed = true;
                }
                Err(errno) => {
                    tracing::warn!(%errno, "cannot read address notifications");
                    return true;
                }
            }
        }
    }
}

/// Whether a datagram holds an address notification (or cannot be read: then it might).
fn mentions_address(datagram: &[u8]) -> bool {
    let mut rest = datagram;
    while rest.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes(rest[0..4].try_into().expect("invariant: 4 bytes")) as usize;
        let kind = u16::from_ne_bytes(rest[4..6].try_into().expect("invariant: 2 bytes"));
        if kind == RTM_NEWADDR || kind == RTM_DELADDR {
            return true;
        }
        if len < NLMSG_HDRLEN || len > rest.len() {
            return true;
        }
        rest = &rest[((len + 3) & !3).min(rest.len())..];
    }
    !rest.is_empty()
}

/// The host's own addresses now (fail2ban's `ignoreself`), canonical.
pub fn host_addresses() -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    addrs
        .filter_map(|ifa| {
            let a = ifa.address?;
            if let Some(v4) = a.as_sockaddr_in() {
                return Some(IpAddr::V4(v4.ip()));
            }
            a.as_sockaddr_in6()
                .map(|v6| nftjail_core::addr::canonical(IpAddr::V6(v6.ip())))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `nlmsghdr` of type `kind` followed by `body` zero bytes.
    fn message(kind: u16, body: usize) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((NLMSG_HDRLEN + body) as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.resize(NLMSG_HDRLEN + body, 0);
        m
    }

    #[test]
    fn address_notifications_are_changes_and_others_are_not() {
        let cases: &[(&str, Vec<u8>, bool)] = &[
            ("new address", message(RTM_NEWADDR, 40), true),
            ("deleted address", message(RTM_DELADDR, 40), true),
            ("a link change", message(16, 32), false),
            (
                "an address after a link change",
                [message(16, 30), vec![0, 0], message(RTM_DELADDR, 8)].concat(),
                true,
            ),
            ("nothing", Vec::new(), false),
            ("a cut header", message(16, 0)[..10].to_vec(), true),
            (
                "a length past the end",
                message(16, 32)[..40].to_vec(),
                true,
            ),
        ];
        for (what, datagram, changed) in cases {
            assert_eq!(mentions_address(datagram), *changed, "{what}");
        }
    }
}
