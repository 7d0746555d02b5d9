//! Crash-safe state in `state_dir`: active bans, ban history and log read positions.
//!
//! Receives [`Record`]s from the banner (which writes them only after the kernel took a ban)
//! and read positions, and makes them durable in groups: many records, one `fdatasync`. At
//! start it replays the log into [`Recovered`]. The format (core's `state::frame`) is one
//! record a line, `CRC32 JSON`, appended; a torn last line (a crash in the middle of a write)
//! fails its checksum and is cut off, so a `kill -9` at any moment loses nothing that a
//! completed [`StateStore::commit`] reported. The log is rewritten (compacted) to the live state
//! when it has grown well past it. Emits, besides the replay, an error for every record it could
//! not make durable.
//!
//! Never trusts the disk after a failed fsync (the store is poisoned until a compaction
//! rewrites the log), never leaves half a line for the next records to be glued to, never
//! follows a symlink, and never destroys what it cannot parse: a damaged log is kept aside as
//! `state.log.corrupt-<UTC time>`. Nothing here talks to the kernel or decides anything.
//!
//! Files: `log` (the store: commit, compaction, positions), `recover` (opening: locking,
//! replay, cutting a torn tail, setting a damaged log aside), `frame` (reading lines back),
//! `disk` (the I/O seam and its [`Faults`] plan), `error`.

mod disk;
mod error;
mod frame;
mod log;
mod recover;

/// The log, in the state directory.
const FILE: &str = "state.log";
/// A compaction's new log until it is renamed over the old one.
const NEW_FILE: &str = "state.log.new";
/// Held (flock) by the one nftjail that uses the directory.
const LOCK_FILE: &str = "lock";

pub use disk::Faults;
pub use error::StateError;
pub use log::StateStore;
pub use nftjail_core::state::{Position, Record, Recovered};

/// A ban of `target` in jail sshd since `since`, for ten minutes (tests of the state files).
#[cfg(test)]
fn test_ban(target: &str, since: i64) -> nftjail_core::tracker::Ban {
    nftjail_core::tracker::Ban {
        jail: "sshd".parse().expect("a jail name"),
        target: target.parse().expect("a target"),
        since,
        expires: Some(since + 600),
        count: 1,
        origin: nftjail_core::tracker::Origin::Failures,
    }
}
