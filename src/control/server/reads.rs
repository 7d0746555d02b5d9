//! Read requests asked at the same time share one call to the core and one reply line.
//!
//! Receives the read-only commands of the connections (`status`, `banned`); emits, for each, the
//! reply as bytes to write. Requests for the same thing that arrive while a call for it is with
//! the core wait for the *next* call, which is sent as soon as that one is answered, and all of
//! them get its reply as one [`SharedLine`]: 64 clients asking for a 2 MB `banned` list at once
//! cost the core two builds and the daemon two buffers, not 64 of each. Because a waiter always
//! joins a call made after it arrived, a shared reply is never older than its request: a client
//! that saw its `ban` succeed and then asks `banned` sees the ban.
//!
//! Requests that do not overlap get separate calls, but a big reply equal to one still being
//! written to another client is written from that client's buffer (the newly built copy is
//! dropped at once), so clients that never take their reply pin one buffer per distinct reply,
//! not one per client. It never answers a mutating request, and holds no line once no client
//! is writing it.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use super::super::protocol::{ReplyLine, SharedLine};
use super::super::{Call, Command};
use super::call;

/// What a read asks for; equal keys get the same reply.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Read {
    Status(Option<String>),
    Banned(Option<String>),
}

impl Read {
    /// The read a command is, if it is one.
    pub fn of(command: &Command) -> Option<Read> {
        match command {
            Command::Status { jail } => Some(Read::Status(jail.clone())),
            Command::Banned { jail } => Some(Read::Banned(jail.clone())),
            _ => None,
        }
    }

    fn command(&self) -> Command {
        match self {
            Read::Status(jail) => Command::Status { jail: jail.clone() },
            Read::Banned(jail) => Command::Banned { jail: jail.clone() },
        }
    }
}

/// Replies from this size on are shared between clients (smaller ones are copied).
const SHARE_FROM: usize = 64 * 1024;

/// The reads waiting for their next call, per key (a key is present while its driver runs), and
/// the last big line of each key, while some client still writes it.
#[derive(Clone, Default)]
pub struct Reads {
    waiting: Arc<Mutex<HashMap<Read, Vec<oneshot::Sender<ReplyLine>>>>>,
    recent: Arc<Mutex<HashMap<Read, SharedLine>>>,
}

impl Reads {
    /// The reply to `read`, from a call to the core made after this request arrived (shared
    /// with every request for the same key that joined that call).
    pub async fn ask(&self, read: Read, calls: &mpsc::Sender<Call>) -> Option<ReplyLine> {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut waiting = self.lock();
            match waiting.entry(read.clone()) {
                Entry::Occupied(mut e) => {
                    e.get_mut().push(tx);
                    false
                }
                Entry::Vacant(e) => {
                    e.insert(vec![tx]);
                    true
                }
            }
        };
        if start {
            tokio::spawn(self.clone().drive(read, calls.clone()));
        }
        rx.await.ok()
    }

    /// Makes one call per batch of waiters until no one waits for `read`.
    async fn drive(self, read: Read, calls: mpsc::Sender<Call>) {
        loop {
            let batch = {
                let mut waiting = self.lock();
                let batch = waiting
                    .get_mut(&read)
                    .map(std::mem::take)
                    .unwrap_or_default();
                if batch.is_empty() {
                    waiting.remove(&read);
                    return;
                }
                batch
            };
            let line = self.reuse(&read, call(&calls, read.command()).await.into_line());
            let mut batch = batch.into_iter();
            let last = batch.next_back();
            for waiter in batch {
                let _ = waiter.send(line.clone());
            }
            if let Some(last) = last {
                let _ = last.send(line);
            }
        }
    }

    /// A big line as a shared one: the equal line a client is still writing if there is one,
    /// else this one (remembered for the next call).
    fn reuse(&self, read: &Read, line: ReplyLine) -> ReplyLine {
        let line = match line {
            ReplyLine::Shared(line) => line,
            ReplyLine::Owned(bytes) if bytes.len() >= SHARE_FROM => SharedLine::from(bytes),
            small => return small,
        };
        let mut recent = self
            .recent
            .lock()
            .expect("invariant: reads lock not poisoned");
        recent.retain(|_, kept| kept.holders() > 1);
        match recent.get(read) {
            // `==` compares the buffers' addresses first, then their bytes.
            Some(kept) if *kept == line => ReplyLine::Shared(kept.clone()),
            _ => {
                recent.insert(read.clone(), line.clone());
                ReplyLine::Shared(line)
            }
        }
    }

    /// Lets go of the lines no client writes any more (called after each reply written).
    pub fn release(&self) {
        self.recent
            .lock()
            .expect("invariant: reads lock not poisoned")
            .retain(|_, kept| kept.holders() > 1);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Read, Vec<oneshot::Sender<ReplyLine>>>> {
        self.waiting
            .lock()
            .expect("invariant: reads lock not poisoned")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(fill: u8) -> ReplyLine {
        ReplyLine::Owned(vec![fill; SHARE_FROM])
    }

    fn shared(line: ReplyLine) -> SharedLine {
        match line {
            ReplyLine::Shared(line) => line,
            ReplyLine::Owned(_) => panic!("a big line was not shared"),
        }
    }

    #[test]
    fn equal_big_lines_built_apart_share_the_buffer_still_written() {
        let reads = Reads::default();
        let key = Read::Banned(None);
        let first = shared(reads.reuse(&key, line(b'a')));
        let second = shared(reads.reuse(&key, line(b'a')));
        assert!(second.same_buffer(&first), "the equal copy was dropped");
        let other = shared(reads.reuse(&key, line(b'b')));
        assert!(
            !other.same_buffer(&first),
            "different bytes, another buffer"
        );
        let small = reads.reuse(&key, ReplyLine::Owned(b"{\"ok\":true}\n".to_vec()));
        assert!(
            matches!(small, ReplyLine::Owned(_)),
            "small lines are copied"
        );
        // Once no client writes them, the server keeps none.
        drop((first, second, other));
        reads.release();
        assert!(reads.recent.lock().unwrap().is_empty());
    }
}
