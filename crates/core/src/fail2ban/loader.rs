//! The file access the caller provides.
//!
//! Receives: nothing; it is implemented by the caller (the daemon over the real file system, tests
//! over fixtures or memory).
//! Emits: file contents and directory listings on request.
//! Never: is implemented inside this crate's library code (the crate stays free of I/O).

use std::io;
use std::path::{Component, Path, PathBuf};

/// Reads configuration files for the engine.
pub trait Loader {
    /// The text of `path`, or `None` when it does not exist (or is not a regular file).
    fn read(&self, path: &Path) -> io::Result<Option<String>>;
    /// The entries of directory `dir` (full paths); an empty list when it does not exist.
    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>>;
}

/// Lexically normalises a path (`.` and `..` removed) for loop detection.
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let mut normalized = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !normalized.pop() {
                    normalized.push("..");
                }
            }
            other => normalized.push(other.as_os_str()),
        }
    }
    normalized
}

/// Python's `os.path.splitext(path)[0]`.
pub(crate) fn strip_extension(path: &Path) -> PathBuf {
    let text = path.to_string_lossy();
    let file_start = text.rfind('/').map_or(0, |index| index + 1);
    let name = &text[file_start..];
    let trimmed = name.trim_start_matches('.');
    match trimmed.rfind('.') {
        Some(dot) => PathBuf::from(&text[..file_start + (name.len() - trimmed.len()) + dot]),
        None => path.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_and_strips() {
        assert_eq!(
            normalize(Path::new("/a/b/../c/./d.conf")),
            PathBuf::from("/a/c/d.conf")
        );
        assert_eq!(
            strip_extension(Path::new("/a/b.c/sshd.conf")),
            PathBuf::from("/a/b.c/sshd")
        );
        assert_eq!(
            strip_extension(Path::new("/a/.hidden")),
            PathBuf::from("/a/.hidden")
        );
    }
}
