//! The I/O seam under the state log, and the fault plan that makes it fail on demand.
//!
//! Receives every filesystem call the store makes that can lose data — writes, fsyncs of files
//! and of the directory, truncations, renames — and the opening of its files. Emits the real
//! result, or the failure a shared [`Faults`] plan asks for (EIO from an fsync, ENOSPC after a
//! short write, as a full disk does), so tests of the store and of the whole daemon can break
//! the disk at a chosen moment and flip faults while it runs. Never follows a symlink and never
//! opens anything but a regular file.

use std::fs::{self, File, FileType, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use nix::errno::Errno;
use nix::fcntl::OFlag;

use super::StateError;

/// A plan of I/O failures, shared between a test and the store it breaks (`Arc<Faults>`). All
/// switches are atomics: a test may change them while a daemon runs. A fresh plan injects
/// nothing; the real daemon runs with one.
#[derive(Debug)]
pub struct Faults {
    /// File fsyncs still to fail with EIO.
    fsyncs: AtomicU32,
    /// Bytes that may still be written before ENOSPC; `u64::MAX` means no limit.
    space: AtomicU64,
    /// Directory fsyncs still to fail with EIO.
    dir_syncs: AtomicU32,
    /// Renames still to fail with EIO.
    renames: AtomicU32,
    /// Truncations still to fail with EIO.
    truncates: AtomicU32,
    /// Failures injected so far.
    injected: AtomicU64,
}

impl Default for Faults {
    fn default() -> Faults {
        Faults {
            fsyncs: AtomicU32::new(0),
            space: AtomicU64::new(u64::MAX),
            dir_syncs: AtomicU32::new(0),
            renames: AtomicU32::new(0),
            truncates: AtomicU32::new(0),
            injected: AtomicU64::new(0),
        }
    }
}

impl Faults {
    /// A plan that injects nothing (yet).
    pub fn new() -> Faults {
        Faults::default()
    }

    /// The next `n` fsyncs of a file (the log, a compaction's new file) fail with EIO.
    pub fn fail_fsyncs(&self, n: u32) {
        self.fsyncs.store(n, Ordering::SeqCst);
    }

    /// The disk fills up after `bytes` more bytes: the write that crosses the limit is short
    /// (it writes what fits), the ones after it fail with ENOSPC.
    pub fn disk_full_after(&self, bytes: u64) {
        self.space.store(bytes, Ordering::SeqCst);
    }

    /// The disk has space again.
    pub fn disk_has_space(&self) {
        self.space.store(u64::MAX, Ordering::SeqCst);
    }

    /// The next `n` fsyncs of the state directory fail with EIO.
    pub fn fail_dir_syncs(&self, n: u32) {
        self.dir_syncs.store(n, Ordering::SeqCst);
    }

    /// The next `n` renames (a compaction's new file over the log) fail with EIO.
    pub fn fail_renames(&self, n: u32) {
        self.renames.store(n, Ordering::SeqCst);
    }

    /// The next `n` truncations (cutting a failed write back off) fail with EIO.
    pub fn fail_truncates(&self, n: u32) {
        self.truncates.store(n, Ordering::SeqCst);
    }

    /// Every switch off: the disk behaves again.
    pub fn clear(&self) {
        self.fail_fsyncs(0);
        self.disk_has_space();
        self.fail_dir_syncs(0);
        self.fail_renames(0);
        self.fail_truncates(0);
    }

    /// How many failures have been injected so far (a test checks its fault really fired).
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::SeqCst)
    }

    /// Takes one failure off `counter`; `true` if this call must fail.
    fn take(&self, counter: &AtomicU32) -> bool {
        let hit = counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if hit {
            self.injected.fetch_add(1, Ordering::SeqCst);
        }
        hit
    }

    /// How many of `wanted` bytes fit before the disk is full (and uses them up).
    fn room(&self, wanted: usize) -> usize {
        let mut granted = wanted;
        let _ = self
            .space
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |space| {
                if space == u64::MAX {
                    granted = wanted;
                    None
                } else {
                    granted = usize::try_from(space).unwrap_or(usize::MAX).min(wanted);
                    Some(space - granted as u64)
                }
            });
        granted
    }
}

/// How [`open_regular`] treats a missing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Create {
    /// Create it if it is missing.
    IfMissing,
    /// It must not exist yet (O_EXCL).
    New,
}

/// The store's filesystem calls, each consulting the fault plan first.
#[derive(Debug, Clone)]
pub(super) struct Disk {
    faults: Arc<Faults>,
}

impl Disk {
    pub(super) fn new(faults: Arc<Faults>) -> Disk {
        Disk { faults }
    }

    /// Writes all of `buffer` (the file is opened for appending). A full disk may have written
    /// a part of it before failing: the caller cuts it off.
    pub(super) fn write_all(&self, mut file: &File, mut buffer: &[u8]) -> io::Result<()> {
        while !buffer.is_empty() {
            let room = self.faults.room(buffer.len());
            if room == 0 {
                self.faults.injected.fetch_add(1, Ordering::SeqCst);
                return Err(Errno::ENOSPC.into());
            }
            match file.write(&buffer[..room]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => buffer = &buffer[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// `fdatasync`: the data and the length, not the other metadata.
    pub(super) fn sync_data(&self, file: &File) -> io::Result<()> {
        if self.faults.take(&self.faults.fsyncs) {
            return Err(Errno::EIO.into());
        }
        file.sync_data()
    }

    /// `fsync`: data and metadata (a new file).
    pub(super) fn sync_all(&self, file: &File) -> io::Result<()> {
        if self.faults.take(&self.faults.fsyncs) {
            return Err(Errno::EIO.into());
        }
        file.sync_all()
    }

    pub(super) fn set_len(&self, file: &File, len: u64) -> io::Result<()> {
        if self.faults.take(&self.faults.truncates) {
            return Err(Errno::EIO.into());
        }
        file.set_len(len)
    }

    pub(super) fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        if self.faults.take(&self.faults.renames) {
            return Err(Errno::EIO.into());
        }
        fs::rename(from, to)
    }

    /// Makes the directory's entries (a rename, a new name) durable.
    pub(super) fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        if self.faults.take(&self.faults.dir_syncs) {
            return Err(Errno::EIO.into());
        }
        File::open(dir)?.sync_all()
    }
}

/// Opens `path` for reading and appending, refusing a symlink (`O_NOFOLLOW`) and anything that
/// is not a regular file (looked at before opening, so a fifo or a device is never opened, and
/// checked again on the open file).
pub(super) fn open_regular(path: &Path, create: Create) -> Result<File, StateError> {
    let io = |action, source| StateError::Io {
        action,
        path: path.to_path_buf(),
        source,
    };
    let not_regular = |kind| StateError::NotRegular {
        path: path.to_path_buf(),
        kind,
    };
    match fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_file() => {
            return Err(not_regular(kind(meta.file_type())));
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("inspect", e)),
    }
    let mut options = OpenOptions::new();
    options
        .read(true)
        .append(true)
        .custom_flags(OFlag::O_NOFOLLOW.bits());
    match create {
        Create::IfMissing => options.create(true),
        Create::New => options.create_new(true),
    };
    let file = options.open(path).map_err(|e| {
        if e.raw_os_error() == Some(Errno::ELOOP as i32) {
            not_regular("symlink")
        } else {
            io("open", e)
        }
    })?;
    let meta = file.metadata().map_err(|e| io("inspect", e))?;
    if !meta.file_type().is_file() {
        return Err(not_regular(kind(meta.file_type())));
    }
    Ok(file)
}

/// Removes `path` if it exists (a file or a symlink, never what a symlink points to).
pub(super) fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// What a file that is not a regular file is, for the error message.
fn kind(file_type: FileType) -> &'static str {
    if file_type.is_symlink() {
        "symlink"
    } else if file_type.is_dir() {
        "directory"
    } else if file_type.is_fifo() {
        "fifo"
    } else if file_type.is_socket() {
        "socket"
    } else if file_type.is_block_device() {
        "block device"
    } else if file_type.is_char_device() {
        "character device"
    } else {
        "special file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_writes_what_fits_then_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let faults = Arc::new(Faults::new());
        let disk = Disk::new(faults.clone());
        let file = open_regular(&dir.path().join("f"), Create::IfMissing).unwrap();
        faults.disk_full_after(5);
        let err = disk.write_all(&file, b"0123456789").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(Errno::ENOSPC as i32));
        assert_eq!(
            fs::read(dir.path().join("f")).unwrap(),
            b"01234",
            "a short write first"
        );
        assert!(disk.write_all(&file, b"x").is_err(), "still full");
        faults.disk_has_space();
        disk.write_all(&file, b"x").unwrap();
        assert_eq!(faults.injected(), 2);
    }

    #[test]
    fn counted_faults_fail_exactly_n_times() {
        let dir = tempfile::tempdir().unwrap();
        let faults = Arc::new(Faults::new());
        let disk = Disk::new(faults.clone());
        let file = open_regular(&dir.path().join("f"), Create::IfMissing).unwrap();
        faults.fail_fsyncs(2);
        faults.fail_dir_syncs(1);
        assert!(disk.sync_data(&file).is_err());
        assert!(disk.sync_all(&file).is_err());
        disk.sync_data(&file).unwrap();
        assert!(disk.sync_dir(dir.path()).is_err());
        disk.sync_dir(dir.path()).unwrap();
        assert_eq!(faults.injected(), 3);
    }

    #[test]
    fn only_regular_files_are_opened() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        fs::write(&target, "precious").unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join("link")).unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        nix::unistd::mkfifo(&dir.path().join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        for (name, kind) in [("link", "symlink"), ("sub", "directory"), ("fifo", "fifo")] {
            match open_regular(&dir.path().join(name), Create::IfMissing) {
                Err(StateError::NotRegular { kind: k, .. }) => assert_eq!(k, kind, "{name}"),
                other => panic!("{name}: {other:?}"),
            }
        }
        assert_eq!(fs::read_to_string(&target).unwrap(), "precious");
    }
}
