//! `TableMonitor`: watches our table over netlink and reports what someone else changed in it.
//!
//! Receives nf_tables notifications: a `NETLINK_NETFILTER` socket joined to the
//! `NFNLGRP_NFTABLES` multicast group hears every committed change of every table of the network
//! namespace, each tagged with the port id of the socket that made it. Emits [`Drift`]s: the
//! changes to our table made by any socket but the backend's own (see [`drift`] for what
//! counts), whole transactions at a time, and [`Drift::Overrun`] when notifications were lost.
//! It never sends anything, never changes the table (the repair is the caller's: `reconcile`)
//! and never loses a notification silently.
//!
//! Blocking, for a dedicated thread: [`TableMonitor::wait`] returns as soon as a foreign change
//! arrives, or empty after its timeout (so the thread can look at a shutdown flag).
//!
//! Every change of ours is notified too: a bulk ban of 100,000 elements queues 100,000
//! notifications here, which the receive queue holds until this thread reads them (they are
//! skipped by their port id); when it cannot, the kernel reports an overrun and the caller
//! compares the whole table once more: never wrong, only slower. And the kernel builds those
//! notifications only while someone listens: measured on kernel 6.18, adding 100,000 elements
//! took ~0.18 s without a monitor and ~0.44 s with one (~2.6 µs per element; a single ban's
//! transaction measured 27–48 µs either way, within noise).

mod drift;

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, setsockopt,
    socket, sockopt,
};
use nix::sys::time::{TimeVal, TimeValLike};

pub use self::drift::Drift;
use self::drift::{Collector, Scope};
use super::socket::io_error;
use super::uapi::NFNLGRP_NFTABLES;
use crate::BackendError;

/// The receive queue, forced past `rmem_max` (CAP_NET_ADMIN allows it; the kernel doubles it
/// to 64 MiB). Measured: an element notification takes ~180 bytes of it (~47 per datagram of
/// ~3.8 KiB), so ~370,000 of them fit; memory is only taken while they wait to be read.
const RECEIVE_QUEUE: usize = 32 << 20;
/// One datagram: the kernel packs notifications into buffers of at most `NLMSG_GOODSIZE` (a
/// page or two); a longer one would be noticed (`MSG_TRUNC`) and reported as an overrun.
const DATAGRAM: usize = 64 << 10;
/// How long to wait for the end of a foreign transaction whose first changes were read. The
/// kernel queues all of them during one commit, so this is only a bound.
const TRANSACTION_END: Duration = Duration::from_millis(20);

/// A listener on the nf_tables notifications of one table.
#[derive(Debug)]
pub struct TableMonitor {
    fd: OwnedFd,
    scope: Scope,
    buf: Vec<u8>,
    collector: Collector,
}

impl TableMonitor {
    /// Listens to table `inet <table>`, ignoring the changes of the socket whose port id is
    /// `own_portid` ([`NetlinkBackend::portid`](super::NetlinkBackend::portid)). The table
    /// need not exist yet. Needs CAP_NET_ADMIN.
    pub fn open(table: &str, own_portid: u32) -> Result<TableMonitor, BackendError> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkNetFilter,
        )
        .map_err(|e| io_error("socket(NETLINK_NETFILTER)", e))?;
        let groups = 1 << (NFNLGRP_NFTABLES - 1);
        match bind(fd.as_raw_fd(), &NetlinkAddr::new(0, groups)) {
            Ok(()) => {}
            Err(Errno::EPERM | Errno::EACCES) => {
                return Err(BackendError::Permission {
                    operation: "listen to nf_tables notifications".to_string(),
                });
            }
            Err(e) => return Err(io_error("bind to NFNLGRP_NFTABLES", e)),
        }
        if let Err(errno) = setsockopt(&fd, sockopt::RcvBufForce, &RECEIVE_QUEUE) {
            tracing::debug!(%errno, "cannot raise the monitor's receive buffer");
        }
        Ok(TableMonitor {
            fd,
            scope: Scope {
                table: table.to_string(),
                own_portid,
            },
            buf: vec![0; DATAGRAM],
            collector: Collector::default(),
        })
    }

    pub fn table(&self) -> &str {
        &self.scope.table
    }

    /// Sets the receive queue to `bytes` (the kernel doubles it; 64 MiB by default): less
    /// memory, more overruns. Tests shrink it to provoke one.
    pub fn set_receive_queue(&mut self, bytes: usize) -> Result<(), BackendError> {
        setsockopt(&self.fd, sockopt::RcvBufForce, &bytes)
            .map_err(|e| io_error("SO_RCVBUFFORCE", e))
    }

    /// Waits up to `timeout` for foreign changes to the table and returns them, each foreign
    /// transaction read to its end; empty when none came. A zero timeout only reads what is
    /// queued; one over a day counts as a day.
    pub fn wait(&mut self, timeout: Duration) -> Result<Vec<Drift>, BackendError> {
        let deadline = Instant::now() + timeout.min(Duration::from_secs(86_400));
        let mut transaction_end = None;
        loop {
            while self.receive(MsgFlags::MSG_DONTWAIT)? {}
            if !self.collector.is_empty() {
                if !self.collector.transaction_open() {
                    return Ok(self.collector.take());
                }
                transaction_end.get_or_insert_with(|| Instant::now() + TRANSACTION_END);
            }
            let until = transaction_end.unwrap_or(deadline);
            let now = Instant::now();
            if now >= until {
                return Ok(self.collector.take());
            }
            // At least a microsecond: a zero SO_RCVTIMEO would block forever.
            let micros = (until - now).as_micros().clamp(1, i64::MAX as u128) as i64;
            setsockopt(
                &self.fd,
                sockopt::ReceiveTimeout,
                &TimeVal::microseconds(micros),
            )
            .map_err(|e| io_error("SO_RCVTIMEO", e))?;
            self.receive(MsgFlags::empty())?;
        }
    }

    /// Reads one datagram into the collector; `false` when none came (`EAGAIN`: nothing
    /// queued, or the receive timeout passed).
    fn receive(&mut self, flags: MsgFlags) -> Result<bool, BackendError> {
        // MSG_TRUNC: the datagram's real length, even when it did not fit.
        match recv(
            self.fd.as_raw_fd(),
            &mut self.buf,
            flags | MsgFlags::MSG_TRUNC,
        ) {
            Ok(len) if len > self.buf.len() => {
                tracing::warn!(len, "nf_tables notification longer than the buffer");
                self.collector.overrun();
                Ok(true)
            }
            Ok(len) => {
                self.collector.absorb(&self.buf[..len], &self.scope);
                Ok(true)
            }
            Err(Errno::EAGAIN) => Ok(false),
            Err(Errno::EINTR) => Ok(true),
            Err(Errno::ENOBUFS) => {
                tracing::warn!(table = %self.scope.table, "nf_tables notifications lost");
                self.collector.overrun();
                Ok(true)
            }
            Err(e) => Err(io_error("recv nf_tables notifications", e)),
        }
    }
}
