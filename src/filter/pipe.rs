//! The hand-over from a thread that screens lines to the thread that finishes them (the
//! daemon's source and filter threads, `test-filter`'s reader and matcher).
//!
//! Receives messages (batches of screened lines, and whatever must travel between them in
//! order) on one side; delivers them in order on the other, at most [`IN_FLIGHT`] waiting, and
//! gives the emptied buffers back for reuse. Tells the sending side when the finishing side is
//! behind, so that the screener can take more of the work on (see
//! [`Screener::search_ahead`](nftjail_core::filter::Screener::search_ahead)): the two threads
//! then share a filter's work as evenly as the lines allow, whatever the log holds.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

/// A batch of lines goes to the finishing side when it holds this many bytes of lines (the
/// daemon also sends at the end of every read round): large enough that handing it over costs
/// nothing per line, small enough to stay in the caches of both cores.
pub const BATCH_BYTES: usize = 64 * 1024;
/// Messages on their way; the sending side waits when this many are.
pub const IN_FLIGHT: usize = 4;
/// The finishing side is behind when this many messages wait for it.
const BEHIND: usize = 2;

/// The sending end: messages `M`, buffers `B` given back.
pub struct Sender<M, B> {
    to: mpsc::SyncSender<M>,
    spare: mpsc::Receiver<B>,
    waiting: Arc<AtomicUsize>,
}

/// The finishing end.
pub struct Receiver<M, B> {
    from: mpsc::Receiver<M>,
    spare: mpsc::SyncSender<B>,
    waiting: Arc<AtomicUsize>,
}

/// A hand-over of messages `M` whose buffers `B` go back to be filled again.
pub fn channel<M, B>() -> (Sender<M, B>, Receiver<M, B>) {
    let (to, from) = mpsc::sync_channel(IN_FLIGHT);
    let (give_back, spare) = mpsc::sync_channel(IN_FLIGHT + 1);
    let waiting = Arc::new(AtomicUsize::new(0));
    (
        Sender {
            to,
            spare,
            waiting: waiting.clone(),
        },
        Receiver {
            from,
            spare: give_back,
            waiting,
        },
    )
}

impl<M, B: Default> Sender<M, B> {
    /// Sends `message`, waiting while [`IN_FLIGHT`] are; `Err` when the other side is gone.
    pub fn send(&self, message: M) -> Result<(), M> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        self.to.send(message).map_err(|mpsc::SendError(message)| {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            message
        })
    }

    /// An emptied buffer given back, or a new one.
    pub fn spare(&self) -> B {
        self.spare.try_recv().unwrap_or_default()
    }

    /// Whether the finishing side has several messages waiting.
    pub fn behind(&self) -> bool {
        self.waiting.load(Ordering::Relaxed) >= BEHIND
    }
}

impl<M, B> Receiver<M, B> {
    /// The next message, in order; `None` once the sending side is gone and all are taken.
    pub fn recv(&self) -> Option<M> {
        let message = self.from.recv().ok()?;
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        Some(message)
    }

    /// Gives an emptied buffer back (dropped if enough are waiting to be reused).
    pub fn give_back(&self, buffer: B) {
        let _ = self.spare.try_send(buffer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_with_buffers_back_and_behind_when_messages_wait() {
        let (tx, rx) = channel::<u32, Vec<u8>>();
        assert!(!tx.behind());
        tx.send(1).unwrap();
        assert!(!tx.behind(), "one waiting");
        tx.send(2).unwrap();
        assert!(tx.behind(), "two waiting");
        assert_eq!(rx.recv(), Some(1));
        assert!(!tx.behind());
        assert!(
            tx.spare().is_empty() && tx.spare().capacity() == 0,
            "a new buffer"
        );
        rx.give_back(Vec::with_capacity(10));
        assert_eq!(tx.spare().capacity(), 10, "the buffer given back");
        drop(tx);
        assert_eq!(rx.recv(), Some(2));
        assert_eq!(rx.recv(), None);
        let (tx, rx) = channel::<u32, Vec<u8>>();
        drop(rx);
        assert_eq!(tx.send(3), Err(3));
        assert!(!tx.behind(), "a message not sent does not wait");
    }
}
