//! The files of one configuration, read once and kept in memory for diagnostics.
//!
//! `nftjail.toml`, then `jail.d/*.toml` and `filter.d/*.toml` beside it, each directory in
//! lexical order. A file is referred to by its [`FileId`]; a [`Place`] is a byte span in one.

use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};

use nftjail_core::diag::Diagnostic;

/// Index of a file in [`Files`].
pub type FileId = usize;

/// A byte span in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub file: FileId,
    pub span: Range<usize>,
}

/// Every file read for one configuration.
#[derive(Debug, Default)]
pub struct Files {
    entries: Vec<(PathBuf, String)>,
}

impl Files {
    /// Reads `path`; an unreadable file is a diagnostic.
    pub fn read(&mut self, path: &Path) -> Result<FileId, Diagnostic> {
        let text = fs::read_to_string(path)
            .map_err(|e| Diagnostic::file(path, format!("cannot read: {e}")))?;
        Ok(self.add(path.to_path_buf(), text))
    }

    /// Adds a file whose text is already known (built-in filters).
    pub fn add(&mut self, path: PathBuf, text: String) -> FileId {
        self.entries.push((path, text));
        self.entries.len() - 1
    }

    pub fn path(&self, id: FileId) -> &Path {
        &self.entries[id].0
    }

    pub fn text(&self, id: FileId) -> &str {
        &self.entries[id].1
    }

    /// A diagnostic at `place`.
    pub fn diag(&self, place: &Place, message: impl Into<String>) -> Diagnostic {
        Diagnostic::spanned(
            self.path(place.file),
            self.text(place.file),
            Some(place.span.clone()),
            message,
        )
    }

    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.entries.iter().map(|(p, _)| p.as_path())
    }
}

/// The `*.toml` files of `dir` in lexical order; a missing directory has none.
pub fn toml_files(dir: &Path) -> Result<Vec<PathBuf>, Diagnostic> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Diagnostic::file(dir, format!("cannot list directory: {e}"))),
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    paths.sort();
    Ok(paths)
}
