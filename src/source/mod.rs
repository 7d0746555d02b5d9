//! Log sources: files (tailed through rotation) and the systemd journal.
//!
//! Receives paths, journal matches and saved read positions; emits raw log items (lines, or
//! journal entries with their fields) and checkpoints (positions reached) to a [`Sink`]. Each
//! source runs on its own thread, so a slow consumer never stalls another source and reads of
//! regular files never block an async runtime. A source must never interpret a line (the
//! filter does), never drop one silently (over-long lines are counted) and never stop because
//! of a missing, rotated or unreadable file: it reports and keeps watching.

pub mod files;
pub mod journal;
pub mod tail;

use std::path::Path;
use std::thread::JoinHandle;

use crate::state::Position;

/// One thing a source read.
#[derive(Debug, Clone, Copy)]
pub enum Item<'a> {
    /// A line of a file, without its newline.
    Line(&'a [u8]),
    /// A journal entry.
    Journal(JournalItem<'a>),
}

/// The fields of a journal entry a filter needs (core's type: the filter reads it as it is).
pub use nftjail_core::filter::JournalEntry as JournalItem;

/// Where a source delivers. Runs on the source's thread.
pub trait Sink: Send + 'static {
    fn item(&mut self, item: Item<'_>);
    /// After a round of reads: the positions reached (persist them once what came before is
    /// handled) and how many items were skipped so far (over-long lines).
    fn checkpoint(&mut self, positions: &[(String, Position)], skipped: u64);
}

/// A running source: stop it and wait for its thread.
pub struct SourceHandle {
    thread: Option<JoinHandle<()>>,
    stop: Option<Box<dyn FnOnce() + Send>>,
}

impl SourceHandle {
    pub fn new(thread: JoinHandle<()>, stop: impl FnOnce() + Send + 'static) -> SourceHandle {
        SourceHandle {
            thread: Some(thread),
            stop: Some(Box::new(stop)),
        }
    }

    /// Asks the source to stop after its current round and waits for it.
    pub fn stop(mut self) {
        self.halt();
    }

    /// Asks the source to stop after its current round, without waiting; the returned thread
    /// handle is joined by whoever wants to wait.
    pub fn signal(mut self) -> Option<JoinHandle<()>> {
        if let Some(stop) = self.stop.take() {
            stop();
        }
        self.thread.take()
    }

    fn halt(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for SourceHandle {
    fn drop(&mut self) {
        self.halt();
    }
}

/// The key a position is saved under: `jail:path` for files, `jail:journal` for the journal.
pub fn position_key(jail: &str, path: &Path) -> String {
    format!("{jail}:{}", path.display())
}
