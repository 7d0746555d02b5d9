//! What can go wrong with the state directory.

use std::io;
use std::path::PathBuf;

/// Errors of the state directory. Each names the file it is about.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A filesystem call failed; `action` says which ("write", "fsync", "rename"…).
    #[error("state: cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("state directory {0} is in use by another nftjail (its lock is held)")]
    Locked(PathBuf),
    /// A write or an fsync failed and what is on disk can no longer be trusted: nothing is
    /// written until a compaction has rewritten the log.
    #[error(
        "state log {path} had a failed write or fsync and accepts nothing until it is rewritten"
    )]
    Poisoned { path: PathBuf },
    /// The log or the lock is a symlink, a directory, a fifo…: refused, left untouched.
    #[error("state: {path} is a {kind}, not a regular file: refusing to use it")]
    NotRegular { path: PathBuf, kind: &'static str },
}
