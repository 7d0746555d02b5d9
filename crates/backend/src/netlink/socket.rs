//! The `NETLINK_NETFILTER` socket: open, buffers, batch send, ACK/error collection, dumps.
//!
//! Receives encoded batches and requests; emits, per batch, the errno of every inner message the
//! kernel refused (an empty list means the transaction was committed), and dump replies one
//! message at a time. It never interprets nf_tables payloads and never retries: the caller
//! decides.
//!
//! Blocking I/O through nix's safe API (the crate forbids `unsafe`). The kernel processes a
//! batch synchronously inside `send`, so every answer is queued on the socket when `send`
//! returns; they are drained without waiting. Batch begin/end never carry `NLM_F_ACK`: kernels
//! since 6.10 would ACK them; answers to them (or to any sequence number that is not ours) are
//! ignored, so both behaviours are fine.

use std::collections::HashSet;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, getsockname,
    recv, send, setsockopt, socket, sockopt,
};
use nix::sys::time::TimeVal;

use super::message::{Message, messages, protocol};
use super::uapi::{NLM_F_DUMP_INTR, NLMSG_DONE, NLMSG_ERROR};
use crate::BackendError;

/// Socket buffers, forced past `rmem_max`/`wmem_max` (CAP_NET_ADMIN allows it): a batch of
/// thousands of elements is one `send`, and its answers must all fit in the receive queue.
const SOCKET_BUFFER: usize = 16 << 20;
/// Receive buffer: an error answer carries a copy of the refused message (< 64 KiB here) and a
/// dump message is at most 32 KiB.
const RECV_BUFFER: usize = 256 << 10;
/// A dump that stalls this long is an error rather than a hang.
const RECV_TIMEOUT: Duration = Duration::from_secs(10);

/// An open netlink socket to nf_tables.
#[derive(Debug)]
pub struct Socket {
    fd: OwnedFd,
    /// The port id the kernel gave the socket at bind (`nlmsg_pid` of its notifications).
    portid: u32,
    next_seq: u32,
    buf: Vec<u8>,
}

/// What the kernel said about a batch: the errno of each refused message, by sequence number.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub errors: Vec<(u32, Errno)>,
}

impl Outcome {
    pub fn committed(&self) -> bool {
        self.errors.is_empty()
    }
}

impl Socket {
    pub fn open() -> Result<Socket, BackendError> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkNetFilter,
        )
        .map_err(|e| io_error("socket(NETLINK_NETFILTER)", e))?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).map_err(|e| io_error("bind", e))?;
        let portid = getsockname::<NetlinkAddr>(fd.as_raw_fd())
            .map_err(|e| io_error("getsockname", e))?
            .pid();
        // Without CAP_NET_ADMIN the forced sizes are refused; the kernel defaults still work
        // for small batches, and the real permission error comes with the first request.
        for result in [
            setsockopt(&fd, sockopt::SndBufForce, &SOCKET_BUFFER),
            setsockopt(&fd, sockopt::RcvBufForce, &SOCKET_BUFFER),
        ] {
            if let Err(errno) = result {
                tracing::debug!(%errno, "cannot raise netlink socket buffers");
            }
        }
        let timeout = TimeVal::new(RECV_TIMEOUT.as_secs() as i64, 0);
        setsockopt(&fd, sockopt::ReceiveTimeout, &timeout)
            .map_err(|e| io_error("SO_RCVTIMEO", e))?;
        Ok(Socket {
            fd,
            portid,
            next_seq: seed(),
            buf: vec![0; RECV_BUFFER],
        })
    }

    /// The socket's netlink port id (never 0: the kernel's own).
    pub fn portid(&self) -> u32 {
        self.portid
    }

    /// The first sequence number of the next batch or request.
    pub fn next_seq(&self) -> u32 {
        self.next_seq
    }

    /// Marks `count` sequence numbers from [`Socket::next_seq`] as used.
    pub fn consume_seq(&mut self, count: u32) {
        let next = self.next_seq.wrapping_add(count);
        // Keep every batch's range contiguous and away from 0 (the kernel's notifications).
        self.next_seq = if next < self.next_seq || next > u32::MAX - (1 << 20) {
            1
        } else {
            next
        };
    }

    /// Sends a batch whose begin message has sequence number `begin` and whose inner messages
    /// carry `inner` (all with `NLM_F_ACK`); collects one answer per inner message.
    pub fn transact(
        &mut self,
        batch: &[u8],
        begin: u32,
        inner: &[u32],
    ) -> Result<Outcome, BackendError> {
        self.send_all(batch)?;
        let mut answers = Answers::new(begin, inner);
        while !answers.complete() {
            let len = match recv(self.fd.as_raw_fd(), &mut self.buf, MsgFlags::MSG_DONTWAIT) {
                Ok(len) => len,
                Err(Errno::EINTR) => continue,
                // Everything the kernel had to say was queued before `send` returned.
                Err(Errno::EAGAIN) => break,
                Err(Errno::ENOBUFS) => {
                    return Err(protocol(
                        "netlink receive queue overflowed: the batch outcome is unknown",
                    ));
                }
                Err(e) => return Err(io_error("recv", e)),
            };
            answers.absorb(&self.buf[..len])?;
        }
        answers.finish()
    }

    /// Sends one request (not a batch) with `NLM_F_ACK`; returns its errno (`None`: done).
    pub fn request(&mut self, bytes: &[u8], seq: u32) -> Result<Option<Errno>, BackendError> {
        let mut result = None;
        self.exchange(bytes, seq, |message| match message.error()? {
            Some((errno, _)) => {
                result = (errno != 0).then(|| Errno::from_raw(errno));
                Ok(true)
            }
            None => Ok(false),
        })?;
        Ok(result)
    }

    /// Sends a dump request and feeds each reply message to `each` until `NLMSG_DONE`.
    /// Returns `Ok(false)` when the dump was interrupted by a concurrent change (retry it).
    pub fn dump(
        &mut self,
        bytes: &[u8],
        seq: u32,
        mut each: impl FnMut(&Message<'_>) -> Result<(), BackendError>,
    ) -> Result<Result<bool, Errno>, BackendError> {
        let mut interrupted = false;
        let mut failed = None;
        self.exchange(bytes, seq, |message| {
            interrupted |= message.flags & NLM_F_DUMP_INTR != 0;
            match message.kind {
                NLMSG_DONE => Ok(true),
                NLMSG_ERROR => {
                    let (errno, _) = message.error()?.expect("invariant: NLMSG_ERROR");
                    if errno != 0 {
                        failed = Some(Errno::from_raw(errno));
                    }
                    Ok(true)
                }
                _ => each(message).map(|()| false),
            }
        })?;
        Ok(match failed {
            Some(errno) => Err(errno),
            None => Ok(!interrupted),
        })
    }

    /// Sends `bytes` and passes every reply with sequence number `seq` to `handle` until it
    /// returns `true`.
    fn exchange(
        &mut self,
        bytes: &[u8],
        seq: u32,
        mut handle: impl FnMut(&Message<'_>) -> Result<bool, BackendError>,
    ) -> Result<(), BackendError> {
        self.send_all(bytes)?;
        loop {
            let len = match recv(self.fd.as_raw_fd(), &mut self.buf, MsgFlags::empty()) {
                Ok(len) => len,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(io_error("recv", e)),
            };
            // Borrow the buffer apart from `self` so `handle` can be called.
            let buf = std::mem::take(&mut self.buf);
            let mut done = false;
            let mut result = Ok(());
            for message in messages(&buf[..len]) {
                match message {
                    Ok(message) if message.seq == seq && !done => match handle(&message) {
                        Ok(finished) => done = finished,
                        Err(e) => {
                            result = Err(e);
                            done = true;
                        }
                    },
                    Ok(_) => {}
                    Err(e) => {
                        result = Err(e);
                        done = true;
                    }
                }
            }
            self.buf = buf;
            result?;
            if done {
                return Ok(());
            }
        }
    }

    fn send_all(&mut self, bytes: &[u8]) -> Result<(), BackendError> {
        loop {
            return match send(self.fd.as_raw_fd(), bytes, MsgFlags::empty()) {
                Ok(sent) if sent == bytes.len() => Ok(()),
                Ok(sent) => Err(BackendError::Protocol(format!(
                    "short netlink send: {sent} of {} bytes",
                    bytes.len()
                ))),
                Err(Errno::EINTR) => continue,
                Err(Errno::EMSGSIZE) => Err(BackendError::MessageTooLarge { bytes: bytes.len() }),
                Err(Errno::EPERM) => Err(BackendError::Permission {
                    operation: "send to nf_tables".to_string(),
                }),
                Err(e) => Err(io_error("send", e)),
            };
        }
    }
}

/// The answers to one batch, matched to its messages by sequence number.
#[derive(Debug)]
struct Answers {
    begin: u32,
    end: u32,
    expected: usize,
    pending: HashSet<u32>,
    outcome: Outcome,
}

impl Answers {
    fn new(begin: u32, inner: &[u32]) -> Answers {
        Answers {
            begin,
            end: begin.wrapping_add(inner.len() as u32 + 1),
            expected: inner.len(),
            pending: inner.iter().copied().collect(),
            outcome: Outcome::default(),
        }
    }

    fn complete(&self) -> bool {
        self.pending.is_empty()
    }

    /// Takes the answers in one received buffer. An ACK of batch begin or end (kernels since
    /// 6.10, if asked) is ignored; an error on them (e.g. `EPERM` for the whole batch) counts.
    fn absorb(&mut self, buf: &[u8]) -> Result<(), BackendError> {
        for message in messages(buf) {
            let Some((errno, seq)) = message?.error()? else {
                continue;
            };
            let ours = self.pending.remove(&seq);
            let frame = seq == self.begin || seq == self.end;
            if !ours && !frame {
                tracing::debug!(seq, errno, "ignoring answer to a message not in the batch");
                continue;
            }
            if errno != 0 {
                self.outcome.errors.push((seq, Errno::from_raw(errno)));
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<Outcome, BackendError> {
        if !self.pending.is_empty() && self.outcome.committed() {
            return Err(BackendError::Protocol(format!(
                "the kernel answered {} of {} messages of a batch",
                self.expected - self.pending.len(),
                self.expected
            )));
        }
        Ok(self.outcome)
    }
}

pub fn io_error(what: &str, errno: Errno) -> BackendError {
    BackendError::Io(std::io::Error::new(
        std::io::Error::from(errno).kind(),
        format!("{what}: {errno}"),
    ))
}

/// A first sequence number that differs between runs, so stray answers to an earlier process
/// on a reused port id are not taken for ours.
fn seed() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(1);
    (nanos >> 4).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_advance_and_wrap_away_from_zero() {
        let mut s = Socket {
            fd: std::fs::File::open("/dev/null").unwrap().into(),
            portid: 1,
            next_seq: 100,
            buf: Vec::new(),
        };
        s.consume_seq(10);
        assert_eq!(s.next_seq(), 110);
        s.next_seq = u32::MAX - 5;
        s.consume_seq(10);
        assert_eq!(s.next_seq(), 1);
    }

    /// An NLMSG_ERROR (2) answering `seq` with `errno` (0: an ACK).
    fn answer(seq: u32, errno: i32) -> Vec<u8> {
        let mut buf = Vec::new();
        buf.extend_from_slice(&36u32.to_ne_bytes());
        buf.extend_from_slice(&2u16.to_ne_bytes());
        buf.extend_from_slice(&0u16.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&(-errno).to_ne_bytes());
        buf.extend_from_slice(&[0; 8]);
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&[0; 4]);
        buf
    }

    #[test]
    fn answers_are_matched_by_sequence_number() {
        // Batch: begin 10, inner 11 and 12, end 13.
        let mut answers = Answers::new(10, &[11, 12]);
        answers.absorb(&answer(10, 0)).unwrap(); // a 6.10+ ACK of begin: ignored
        answers.absorb(&answer(99, 2)).unwrap(); // a stranger: ignored
        answers.absorb(&answer(11, 0)).unwrap();
        assert!(!answers.complete());
        let mut both = answer(12, 17); // EEXIST
        both.extend(answer(13, 0)); // ACK of end
        answers.absorb(&both).unwrap();
        assert!(answers.complete());
        assert_eq!(answers.finish().unwrap().errors, vec![(12, Errno::EEXIST)]);
    }

    #[test]
    fn a_refused_batch_header_is_an_error_not_a_silence() {
        // Without CAP_NET_ADMIN the kernel answers the batch begin with EPERM and nothing else.
        let mut answers = Answers::new(10, &[11, 12]);
        answers.absorb(&answer(10, 1)).unwrap();
        assert_eq!(answers.finish().unwrap().errors, vec![(10, Errno::EPERM)]);
        // No answer at all and no error: the outcome is unknown.
        let mut answers = Answers::new(10, &[11, 12]);
        answers.absorb(&answer(11, 0)).unwrap();
        assert!(matches!(answers.finish(), Err(BackendError::Protocol(_))));
    }

    #[test]
    fn outcome_without_errors_is_committed() {
        assert!(Outcome::default().committed());
        let failed = Outcome {
            errors: vec![(3, Errno::ENOENT)],
        };
        assert!(!failed.committed());
    }
}
