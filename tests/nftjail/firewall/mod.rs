//! The host firewall end to end: the daemon in a private network namespace, real packets from a
//! client namespace over a veth pair (and on to a backend namespace for forwards), checked with
//! TCP connections from chosen source addresses and with `nft list`.
//!
//! `rules`: default deny, rules opening a port to one source, protected rules, rule order,
//! IPv6, bans before accept rules, what `nft list` shows. `confirm`: `enable --confirm-within`
//! rolling back, `confirm`, the lock-out refusal. `forward`: DNAT to a backend, masqueraded.
//! `restart`: `kill -9`, a deleted table, reloads, rules deleted by hand. `concurrent`:
//! requests and reloads arriving together (in-process, on the memory backend).

mod concurrent;
mod confirm;
mod forward;
mod restart;
mod rules;

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::process::Output;

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, SockaddrStorage, bind, connect, setsockopt, socket, sockopt,
};
use nix::sys::time::{TimeVal, TimeValLike};

use crate::daemon::Daemon;
use crate::netns::Netns;

/// What became of a TCP connection attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    Open,
    /// Answered with a reset (a reject rule, or nothing listening).
    Refused,
    /// No answer within half a second.
    Dropped,
}

/// A TCP connection from `from` (an address of `ns`) to `to`.
pub fn reach(ns: &Netns, from: &str, to: &str) -> Reach {
    let from: IpAddr = from.parse().unwrap();
    let to: SocketAddr = to.parse().unwrap();
    ns.enter(move || {
        let family = match to {
            SocketAddr::V4(_) => AddressFamily::Inet,
            SocketAddr::V6(_) => AddressFamily::Inet6,
        };
        let fd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).unwrap();
        // A blocking connect gives up after the send timeout.
        setsockopt(&fd, sockopt::SendTimeout, &TimeVal::milliseconds(500)).unwrap();
        bind(
            fd.as_raw_fd(),
            &SockaddrStorage::from(SocketAddr::new(from, 0)),
        )
        .unwrap();
        match connect(fd.as_raw_fd(), &SockaddrStorage::from(to)) {
            Ok(()) => Reach::Open,
            Err(Errno::ECONNREFUSED) => Reach::Refused,
            Err(Errno::EINPROGRESS | Errno::ETIMEDOUT | Errno::EAGAIN) => Reach::Dropped,
            Err(e) => panic!("connect {from} -> {to}: {e}"),
        }
    })
}

/// [`reach`] for a connection that must open: tried again for up to 3 s, so that a SYN lost while
/// a fresh veth link comes up is not taken for a drop. Returns the last outcome.
pub fn reach_open(ns: &Netns, from: &str, to: &str) -> Reach {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let outcome = reach(ns, from, to);
        if outcome == Reach::Open || std::time::Instant::now() >= deadline {
            return outcome;
        }
    }
}

pub fn listen(ns: &Netns, addr: &str) -> TcpListener {
    ns.enter(|| TcpListener::bind(addr)).unwrap()
}

/// Server `192.0.2.1` / `2001:db8::1` (the daemon's namespace), client `192.0.2.2`, `.3` and
/// `2001:db8::2`, `::3`.
pub fn client_of(d: &Daemon) -> Netns {
    let client = Netns::new("fwclient");
    Netns::link(
        &d.ns,
        &["192.0.2.1/24", "2001:db8::1/64"],
        &client,
        &[
            "192.0.2.2/24",
            "192.0.2.3/24",
            "2001:db8::2/64",
            "2001:db8::3/64",
        ],
        0,
    );
    client
}

/// A protected SSH accept rule, as a `firewall.d` file holds it.
pub const PROTECTED_SSH: &str = "[[rule]]\nprotocol = \"tcp\"\nport = \"ssh\"\naction = \"accept\"\ncomment = \"SSH\"\nprotected = true\n";

/// A manual jail, so that tests can ban.
pub const MANUAL: &str = "[manual]\nenabled = true\nport = [\"all\"]\nbantime = \"1h\"\n";

/// A daemon with `[firewall]` settings and `firewall.d` files, started.
pub fn start(tag: &str, firewall: &str, drop_ins: &[(&str, &str)]) -> Daemon {
    let mut d = Daemon::create(tag, &format!("[firewall]\n{firewall}"), MANUAL);
    std::fs::create_dir_all(d.path("firewall.d")).unwrap();
    for (name, text) in drop_ins {
        std::fs::write(d.path("firewall.d").join(name), text).unwrap();
    }
    d.spawn();
    d
}

/// `nftjail` with `args`, failing: its stderr.
pub fn refused(d: &Daemon, args: &[&str]) -> String {
    let out: Output = d.cli(args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{args:?} should be refused: {out:?}"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The `rules` of `rule list --json`.
pub fn rules(d: &Daemon) -> Vec<serde_json::Value> {
    let json: serde_json::Value = serde_json::from_str(&d.ok(&["rule", "list", "--json"])).unwrap();
    json["rules"].as_array().unwrap().clone()
}
