//! One nfnetlink batch (one nf_tables transaction) under construction.
//!
//! Receives the first free sequence number and, for every inner message, a label saying what
//! it does (a text for layout messages, the changes it carries for element messages); emits
//! `BATCH_BEGIN`, the inner messages and `BATCH_END` as one buffer, plus the label of any
//! sequence number the kernel answers. It never sends anything.
//!
//! Begin and end carry no `NLM_F_ACK` (kernels since 6.10 would answer them); every inner
//! message carries it, so the kernel answers each one: an ACK, or its own errno.

use super::message::Writer;
use super::rules::Sink;
use super::uapi::{
    NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END, NFNL_SUBSYS_NFTABLES, NFPROTO_UNSPEC, NLM_F_REQUEST,
};

#[derive(Debug)]
pub struct Batch<T> {
    writer: Writer,
    first_seq: u32,
    /// Labels of the inner messages; message `i` has sequence number `first_seq + 1 + i`.
    labels: Vec<T>,
    next_set_id: u32,
}

impl<T> Batch<T> {
    /// Starts a batch whose begin message gets `first_seq`.
    pub fn new(first_seq: u32) -> Batch<T> {
        let mut writer = Writer::new();
        control(&mut writer, NFNL_MSG_BATCH_BEGIN, first_seq);
        Batch {
            writer,
            first_seq,
            labels: Vec::new(),
            next_set_id: 1,
        }
    }

    /// The sequence number for the next inner message, which does `label`.
    pub fn push(&mut self, label: T) -> u32 {
        self.labels.push(label);
        self.first_seq.wrapping_add(self.labels.len() as u32)
    }

    pub fn writer(&mut self) -> &mut Writer {
        &mut self.writer
    }

    /// A set id unique in this batch (anonymous sets, and sets created in it).
    pub fn set_id(&mut self) -> u32 {
        let id = self.next_set_id;
        self.next_set_id += 1;
        id
    }

    /// The sequence number of the batch begin message.
    pub fn begin_seq(&self) -> u32 {
        self.first_seq
    }

    /// The sequence numbers of the inner messages, which all expect an answer.
    pub fn inner_seqs(&self) -> Vec<u32> {
        (1..=self.labels.len() as u32)
            .map(|i| self.first_seq.wrapping_add(i))
            .collect()
    }

    /// How many sequence numbers the batch uses, end message included.
    pub fn seqs_used(&self) -> u32 {
        self.labels.len() as u32 + 2
    }

    /// What the message with sequence number `seq` does (`None` for begin, end or a stranger).
    pub fn label(&self, seq: u32) -> Option<&T> {
        let index = seq.wrapping_sub(self.first_seq).checked_sub(1)?;
        self.labels.get(index as usize)
    }

    /// Closes the batch; returns the bytes to send.
    pub fn finish(&mut self) -> &[u8] {
        let end_seq = self.first_seq.wrapping_add(self.labels.len() as u32 + 1);
        control(&mut self.writer, NFNL_MSG_BATCH_END, end_seq);
        self.writer.bytes()
    }
}

/// Batch begin/end: `res_id` is the subsystem, big-endian; no `NLM_F_ACK`.
fn control(w: &mut Writer, kind: u16, seq: u32) {
    let m = w.begin_message(
        kind,
        NLM_F_REQUEST,
        seq,
        NFPROTO_UNSPEC,
        NFNL_SUBSYS_NFTABLES,
    );
    w.end_message(m);
}

impl Sink for Batch<String> {
    fn writer(&mut self) -> &mut Writer {
        &mut self.writer
    }

    fn seq(&mut self, what: String) -> u32 {
        self.push(what)
    }

    fn set_id(&mut self) -> u32 {
        Batch::set_id(self)
    }
}

#[cfg(test)]
mod tests {
    use super::super::message::messages;
    use super::*;

    #[test]
    fn begin_and_end_frame_the_inner_messages() {
        let mut batch: Batch<&str> = Batch::new(100);
        let seq = batch.push("new table");
        assert_eq!(seq, 101);
        let m = batch.writer().begin_message(0x0a00, 0x405, seq, 1, 0);
        batch.writer().end_message(m);
        assert_eq!(batch.inner_seqs(), vec![101]);
        assert_eq!(batch.label(101), Some(&"new table"));
        assert_eq!(batch.label(100), None);
        assert_eq!(batch.label(102), None);
        assert_eq!(batch.seqs_used(), 3);
        let bytes = batch.finish().to_vec();
        let all: Vec<_> = messages(&bytes).map(Result::unwrap).collect();
        // BATCH_BEGIN (16) and BATCH_END (17): only NLM_F_REQUEST (1), res_id 10 big-endian.
        assert_eq!((all[0].kind, all[0].flags, all[0].seq), (16, 1, 100));
        assert_eq!(all[0].payload, &[0, 0, 0, 10]);
        assert_eq!((all[1].kind, all[1].seq), (0x0a00, 101));
        assert_eq!((all[2].kind, all[2].flags, all[2].seq), (17, 1, 102));
        assert_eq!(all[2].payload, &[0, 0, 0, 10]);
    }
}
