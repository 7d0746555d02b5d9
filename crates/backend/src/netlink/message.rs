//! Netlink framing: the writer of `nlmsghdr` + `nfgenmsg` + TLV attributes, and the parser of
//! replies.
//!
//! Receives message types, flags, sequence numbers and attribute values from the encoders;
//! emits bytes ready for `send`. Receives bytes from `recv`; emits messages and attribute
//! iterators that borrow from them. It never allocates per attribute when parsing (a dump of
//! 100,000 elements is one linear walk) and knows nothing about nftables objects.
//!
//! Byte order: netlink headers and attribute headers are in host order; nf_tables wants its
//! numbers (`NLA_U32`/`NLA_U64` values, `nfgenmsg.res_id`) in network order, which is what the
//! `*_be` writers produce.

use super::uapi::{
    NFGENMSG_LEN, NFNETLINK_V0, NLA_F_NESTED, NLA_TYPE_MASK, NLMSG_ERROR, NLMSG_HDRLEN,
};
use crate::BackendError;

/// Rounds up to netlink's 4-byte alignment.
pub const fn align(len: usize) -> usize {
    (len + 3) & !3
}

/// Builds netlink messages (possibly many, back to back: a batch) into one buffer.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    buf: Vec<u8>,
    /// Set when a message or attribute outgrew its length field.
    overflow: bool,
}

impl Writer {
    pub fn new() -> Writer {
        Writer::default()
    }

    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether a length did not fit its field: the bytes must not be sent.
    pub fn overflowed(&self) -> bool {
        self.overflow
    }

    /// Starts a message with an nfnetlink header; returns its start for [`Writer::end_message`].
    pub fn begin_message(
        &mut self,
        kind: u16,
        flags: u16,
        seq: u32,
        family: u8,
        res_id: u16,
    ) -> usize {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_len, set by end_message
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid: the kernel
        self.buf.push(family);
        self.buf.push(NFNETLINK_V0);
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        start
    }

    pub fn end_message(&mut self, start: usize) {
        let len = self.buf.len() - start;
        let len32 = u32::try_from(len).unwrap_or_else(|_| {
            self.overflow = true;
            u32::MAX
        });
        self.buf[start..start + 4].copy_from_slice(&len32.to_ne_bytes());
    }

    /// An attribute with raw bytes, padded to 4 bytes.
    pub fn attr(&mut self, kind: u16, data: &[u8]) {
        let len = 4 + data.len();
        self.header(kind, len);
        self.buf.extend_from_slice(data);
        self.pad();
    }

    /// A NUL-terminated string attribute (`NLA_STRING` as nft sends it).
    pub fn attr_str(&mut self, kind: u16, text: &str) {
        let len = 4 + text.len() + 1;
        self.header(kind, len);
        self.buf.extend_from_slice(text.as_bytes());
        self.buf.push(0);
        self.pad();
    }

    pub fn attr_u8(&mut self, kind: u16, value: u8) {
        self.attr(kind, &[value]);
    }

    /// A 32-bit number in network order.
    pub fn attr_u32_be(&mut self, kind: u16, value: u32) {
        self.attr(kind, &value.to_be_bytes());
    }

    /// A 64-bit number in network order.
    pub fn attr_u64_be(&mut self, kind: u16, value: u64) {
        self.attr(kind, &value.to_be_bytes());
    }

    /// Opens a nested attribute; returns its start for [`Writer::end_nest`].
    pub fn begin_nest(&mut self, kind: u16) -> usize {
        let start = self.buf.len();
        self.header(kind | NLA_F_NESTED, 4);
        start
    }

    pub fn end_nest(&mut self, start: usize) {
        let len = self.buf.len() - start;
        let len16 = u16::try_from(len).unwrap_or_else(|_| {
            self.overflow = true;
            u16::MAX
        });
        self.buf[start..start + 2].copy_from_slice(&len16.to_ne_bytes());
    }

    fn header(&mut self, kind: u16, len: usize) {
        let len16 = u16::try_from(len).unwrap_or_else(|_| {
            self.overflow = true;
            u16::MAX
        });
        self.buf.extend_from_slice(&len16.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
    }

    fn pad(&mut self) {
        let padded = align(self.buf.len());
        self.buf.resize(padded, 0);
    }
}

/// One message of a reply.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub kind: u16,
    pub flags: u16,
    pub seq: u32,
    /// `nlmsg_pid`: in a notification, the port id of the socket whose change it reports (0:
    /// the kernel itself).
    pub pid: u32,
    /// Everything after the `nlmsghdr`.
    pub payload: &'a [u8],
}

impl<'a> Message<'a> {
    /// For `NLMSG_ERROR`: the errno (0 for an ACK) and the sequence number of the message it
    /// answers.
    pub fn error(&self) -> Result<Option<(i32, u32)>, BackendError> {
        if self.kind != NLMSG_ERROR {
            return Ok(None);
        }
        if self.payload.len() < 4 + NLMSG_HDRLEN {
            return Err(protocol("short NLMSG_ERROR"));
        }
        let code = i32::from_ne_bytes(self.payload[0..4].try_into().expect("invariant: 4 bytes"));
        let seq = u32::from_ne_bytes(self.payload[12..16].try_into().expect("invariant: 4 bytes"));
        Ok(Some((-code, seq)))
    }

    /// The attributes after the `nfgenmsg` header of an nf_tables message.
    pub fn nft_attrs(&self) -> Result<Attrs<'a>, BackendError> {
        let body = self
            .payload
            .get(NFGENMSG_LEN..)
            .ok_or_else(|| protocol("nf_tables message shorter than nfgenmsg"))?;
        Ok(Attrs::new(body))
    }
}

/// Walks the messages of one `recv`.
pub fn messages(buf: &[u8]) -> Messages<'_> {
    Messages { buf }
}

pub struct Messages<'a> {
    buf: &'a [u8],
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<Message<'a>, BackendError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        let parsed = (|| {
            if self.buf.len() < NLMSG_HDRLEN {
                return Err(protocol("truncated nlmsghdr"));
            }
            let u32_at = |at: usize| {
                u32::from_ne_bytes(self.buf[at..at + 4].try_into().expect("invariant: 4 bytes"))
            };
            let u16_at = |at: usize| {
                u16::from_ne_bytes(self.buf[at..at + 2].try_into().expect("invariant: 2 bytes"))
            };
            let len = u32_at(0) as usize;
            if len < NLMSG_HDRLEN || len > self.buf.len() {
                return Err(protocol(&format!("bad nlmsg_len {len}")));
            }
            let message = Message {
                kind: u16_at(4),
                flags: u16_at(6),
                seq: u32_at(8),
                pid: u32_at(12),
                payload: &self.buf[NLMSG_HDRLEN..len],
            };
            self.buf = &self.buf[align(len).min(self.buf.len())..];
            Ok(message)
        })();
        if parsed.is_err() {
            self.buf = &[];
        }
        Some(parsed)
    }
}

/// Walks TLV attributes; yields `(type without flags, payload)`.
#[derive(Debug, Clone)]
pub struct Attrs<'a> {
    buf: &'a [u8],
}

impl<'a> Attrs<'a> {
    pub fn new(buf: &'a [u8]) -> Attrs<'a> {
        Attrs { buf }
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<(u16, &'a [u8]), BackendError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.len() < 4 {
            return None; // trailing padding
        }
        let len = u16::from_ne_bytes([self.buf[0], self.buf[1]]) as usize;
        let kind = u16::from_ne_bytes([self.buf[2], self.buf[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > self.buf.len() {
            self.buf = &[];
            return Some(Err(protocol(&format!("bad attribute length {len}"))));
        }
        let payload = &self.buf[4..len];
        self.buf = &self.buf[align(len).min(self.buf.len())..];
        Some(Ok((kind, payload)))
    }
}

/// A network-order u32 attribute value.
pub fn be_u32(data: &[u8]) -> Result<u32, BackendError> {
    data.try_into()
        .map(u32::from_be_bytes)
        .map_err(|_| protocol("u32 attribute of wrong length"))
}

/// A network-order u64 attribute value.
pub fn be_u64(data: &[u8]) -> Result<u64, BackendError> {
    data.try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| protocol("u64 attribute of wrong length"))
}

/// A NUL-terminated string attribute value.
pub fn string(data: &[u8]) -> Result<&str, BackendError> {
    let text = data.strip_suffix(&[0]).unwrap_or(data);
    std::str::from_utf8(text).map_err(|_| protocol("string attribute is not UTF-8"))
}

pub fn protocol(what: &str) -> BackendError {
    BackendError::Protocol(what.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_header_is_host_order_and_res_id_network_order() {
        let mut w = Writer::new();
        // NFNL_MSG_BATCH_BEGIN (16), NLM_F_REQUEST (1), res_id NFNL_SUBSYS_NFTABLES (10).
        let start = w.begin_message(16, 0x1, 7, 0, 10);
        w.end_message(start);
        let mut want = Vec::new();
        want.extend_from_slice(&20u32.to_ne_bytes());
        want.extend_from_slice(&16u16.to_ne_bytes());
        want.extend_from_slice(&1u16.to_ne_bytes());
        want.extend_from_slice(&7u32.to_ne_bytes());
        want.extend_from_slice(&0u32.to_ne_bytes());
        want.extend_from_slice(&[0, 0, 0x00, 0x0a]);
        assert_eq!(w.bytes(), &want[..]);
    }

    #[test]
    fn attributes_are_padded_and_nests_flagged() {
        let mut w = Writer::new();
        let nest = w.begin_nest(3);
        w.attr_str(1, "nftjail");
        w.attr_u8(2, 0x5);
        w.attr_u64_be(4, 3_600_000);
        w.end_nest(nest);
        let mut want = Vec::new();
        want.extend_from_slice(&(4u16 + 12 + 8 + 12).to_ne_bytes());
        want.extend_from_slice(&0x8003u16.to_ne_bytes());
        want.extend_from_slice(&12u16.to_ne_bytes());
        want.extend_from_slice(&1u16.to_ne_bytes());
        want.extend_from_slice(b"nftjail\0");
        want.extend_from_slice(&5u16.to_ne_bytes());
        want.extend_from_slice(&2u16.to_ne_bytes());
        want.extend_from_slice(&[5, 0, 0, 0]);
        want.extend_from_slice(&12u16.to_ne_bytes());
        want.extend_from_slice(&4u16.to_ne_bytes());
        want.extend_from_slice(&[0, 0, 0, 0, 0x00, 0x36, 0xee, 0x80]);
        assert_eq!(w.bytes(), &want[..]);
        assert!(!w.overflowed());
    }

    #[test]
    fn an_oversized_nest_is_detected() {
        let mut w = Writer::new();
        let nest = w.begin_nest(3);
        for _ in 0..6000 {
            w.attr_u64_be(4, 1);
        }
        w.end_nest(nest);
        assert!(w.overflowed());
    }

    #[test]
    fn parses_what_it_writes() {
        let mut w = Writer::new();
        let start = w.begin_message(0x0a0c, 0x2, 9, 1, 0);
        w.attr_str(1, "nftjail");
        let nest = w.begin_nest(3);
        w.attr_u32_be(3, 1);
        w.end_nest(nest);
        w.end_message(start);
        let second = w.begin_message(3, 0x2, 9, 0, 0);
        w.end_message(second);

        let all: Vec<_> = messages(w.bytes()).collect::<Result<_, _>>().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!((all[0].kind, all[0].flags, all[0].seq), (0x0a0c, 0x2, 9));
        assert_eq!(all[0].pid, 0, "requests leave nlmsg_pid to the kernel");
        let attrs: Vec<_> = all[0].nft_attrs().unwrap().map(Result::unwrap).collect();
        assert_eq!(attrs[0].0, 1);
        assert_eq!(string(attrs[0].1).unwrap(), "nftjail");
        assert_eq!(attrs[1].0, 3, "the nested flag is masked off");
        let inner: Vec<_> = Attrs::new(attrs[1].1).map(Result::unwrap).collect();
        assert_eq!(be_u32(inner[0].1).unwrap(), 1);
        assert_eq!(all[1].kind, 3);
    }

    #[test]
    fn parses_errors_and_rejects_garbage() {
        // An NLMSG_ERROR (2) with -ENOENT (2) answering sequence number 42.
        let mut buf = Vec::new();
        buf.extend_from_slice(&36u32.to_ne_bytes());
        buf.extend_from_slice(&2u16.to_ne_bytes());
        buf.extend_from_slice(&0u16.to_ne_bytes());
        buf.extend_from_slice(&42u32.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&(-2i32).to_ne_bytes());
        buf.extend_from_slice(&[0; 8]);
        buf.extend_from_slice(&42u32.to_ne_bytes());
        buf.extend_from_slice(&[0; 4]);
        let message = messages(&buf).next().unwrap().unwrap();
        assert_eq!(message.error().unwrap(), Some((2, 42)));

        assert!(messages(&buf[..10]).next().unwrap().is_err());
        let mut bad = buf.clone();
        bad[0..4].copy_from_slice(&400u32.to_ne_bytes());
        assert!(messages(&bad).next().unwrap().is_err());
        assert!(Attrs::new(&[9, 0, 1, 0]).next().unwrap().is_err());
        assert!(be_u64(&[1, 2, 3]).is_err());
    }
}
