//! The attackers: a network namespace linked to the server by a veth pair, holding several
//! addresses (one per attack, so each jail's ban is told apart), and the means to connect from a
//! chosen one of them.
//!
//! Receives: the server's namespace. Emits: TCP connections from a chosen source address, and
//! whether a port answers. Never sends anything beyond the two namespaces.

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, SockaddrStorage, bind, connect, setsockopt, socket, sockopt,
};
use nix::sys::time::TimeVal;

use super::root::{self, Set};
use crate::netns::Netns;

/// The server's addresses on the link.
pub const SERVER_V4: &str = "192.0.2.1";
pub const SERVER_V6: &str = "2001:db8::1";

/// A namespace of attackers linked to the server.
pub struct Attackers {
    pub ns: Netns,
}

impl Attackers {
    /// Links a new namespace to `server` (`192.0.2.1/24` and `2001:db8::1/64` on the server's
    /// side) and gives it every address of `addresses` (in 192.0.2.0/24 or 2001:db8::/64).
    pub fn link(server: &Netns, addresses: &[&str]) -> Attackers {
        let ns = Netns::new("attackers");
        let with_prefix: Vec<String> = addresses
            .iter()
            .map(|a| {
                if a.contains(':') {
                    format!("{a}/64")
                } else {
                    format!("{a}/24")
                }
            })
            .collect();
        let refs: Vec<&str> = with_prefix.iter().map(String::as_str).collect();
        Netns::link(
            server,
            &[&format!("{SERVER_V4}/24"), &format!("{SERVER_V6}/64")],
            &ns,
            &refs,
            0,
        );
        Attackers { ns }
    }

    /// A TCP connection from `from` to `to`, or the error (a timeout after `timeout` when the
    /// server drops the SYN). Call inside the namespace ([`Netns::enter`]).
    pub fn connect_from(
        from: IpAddr,
        to: SocketAddr,
        timeout: Duration,
    ) -> std::io::Result<TcpStream> {
        let family = if to.is_ipv4() {
            AddressFamily::Inet
        } else {
            AddressFamily::Inet6
        };
        let fd: OwnedFd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
        // On Linux a blocking connect() gives up after the send timeout.
        let micros = i64::try_from(timeout.as_micros()).expect("a short timeout");
        setsockopt(
            &fd,
            sockopt::SendTimeout,
            &TimeVal::new(micros / 1_000_000, micros % 1_000_000),
        )?;
        bind(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            &SockaddrStorage::from(SocketAddr::new(from, 0)),
        )?;
        connect(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            &SockaddrStorage::from(to),
        )?;
        let stream = TcpStream::from(fd);
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_write_timeout(Some(Duration::from_secs(10)))?;
        Ok(stream)
    }

    /// Whether `to` accepts a connection from `from` within 1.5 s (a dropped SYN does not).
    pub fn answers(&self, from: &str, to: SocketAddr) -> bool {
        let from: IpAddr = from.parse().unwrap();
        self.ns
            .enter(|| Attackers::connect_from(from, to, Duration::from_millis(1500)).is_ok())
    }

    /// Starts `ssh` from `from` against `user_at_host` with `password` (given through
    /// SSH_ASKPASS), trying it `prompts` times on one connection; the client comes from the ssh
    /// tree when the host has none (run in a private root laid over this host, in `work`). The
    /// ban cuts the connection, so the client may never end by itself: it is killed when the
    /// returned [`Client`] is dropped.
    pub fn ssh(
        &self,
        work: &Path,
        from: &str,
        user_at_host: &str,
        password: &str,
        prompts: u32,
    ) -> Client {
        std::fs::create_dir_all(work).unwrap();
        let askpass = work.join("askpass");
        std::fs::write(&askpass, format!("#!/bin/sh\necho '{password}'\n")).unwrap();
        let mut perms = std::fs::metadata(&askpass).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&askpass, perms).unwrap();
        // Every step execs the next: the child's pid is ssh's.
        let child = Command::new("ip")
            .args(["netns", "exec", self.ns.name()])
            .args(["unshare", "--mount", "--propagation", "private"])
            .arg(root::scripts().join("private-root"))
            .arg(work)
            .arg(Set::Ssh.tree())
            .args(["--", "ssh", "-b", from])
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
            ])
            .args([
                "-o",
                "PreferredAuthentications=password",
                "-o",
                "ConnectTimeout=10",
            ])
            .args(["-o", &format!("NumberOfPasswordPrompts={prompts}")])
            .args([user_at_host, "true"])
            .env("SSH_ASKPASS", &askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", ":0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run ssh in the attackers' namespace");
        Client(child)
    }
}

/// A client process of the attackers, killed on drop.
pub struct Client(Child);

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
