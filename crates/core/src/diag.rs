//! Config errors that name their place: `PATH:LINE:COL: message`.
//!
//! Every loader (main file, jail drop-ins, filter files) reports problems as [`Diagnostic`]s built
//! from the byte span TOML gives for the offending key or value. Loaders collect all of them
//! before refusing, so one `nftjail check` shows every mistake at once.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in one file, at one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub col: usize,
    pub message: String,
}

impl Diagnostic {
    /// A diagnostic at byte offset `at` of `source` (the text of `path`).
    pub fn at(path: &Path, source: &str, at: usize, message: impl Into<String>) -> Diagnostic {
        let (line, col) = line_col(source, at);
        Diagnostic {
            path: path.to_path_buf(),
            line,
            col,
            message: message.into(),
        }
    }

    /// A diagnostic at the start of a span (TOML's spans are byte ranges).
    pub fn spanned(
        path: &Path,
        source: &str,
        span: Option<Range<usize>>,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic::at(path, source, span.map_or(0, |s| s.start), message)
    }

    /// A diagnostic about a whole file (it cannot be read, say): line 1, column 1.
    pub fn file(path: &Path, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            path: path.to_path_buf(),
            line: 1,
            col: 1,
            message: message.into(),
        }
    }

    /// Turns a TOML parse or deserialization error into a diagnostic at its span. toml's
    /// message repeats the location and a source excerpt; only the first line is kept.
    pub fn from_toml(path: &Path, source: &str, err: &toml::de::Error) -> Diagnostic {
        let message = err
            .message()
            .lines()
            .next()
            .unwrap_or("invalid TOML")
            .trim()
            .to_string();
        Diagnostic::spanned(path, source, err.span(), message)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path.display(),
            self.line,
            self.col,
            self.message
        )
    }
}

/// All problems found while loading a configuration, in file order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }

    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Diagnostics {
        Diagnostics(vec![d])
    }
}

/// 1-based line and character column of byte offset `at` (clamped to the text).
pub fn line_col(source: &str, at: usize) -> (usize, usize) {
    let mut at = at.min(source.len());
    while !source.is_char_boundary(at) {
        at -= 1;
    }
    let before = &source[..at];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = source[line_start..at].chars().count() + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        let src = "a = 1\n[sshd]\nmaxretry = \"x\"\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 6), (2, 1));
        assert_eq!(line_col(src, src.find("\"x\"").unwrap()), (3, 12));
        assert_eq!(line_col(src, 10_000), (4, 1));
    }

    #[test]
    fn columns_count_characters() {
        let src = "é = \"ü\"";
        assert_eq!(line_col(src, src.find('"').unwrap()), (1, 5));
    }

    #[test]
    fn toml_errors_keep_their_place() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct J {
            maxretry: u32,
        }
        let src = "\n\nmaxretry = 3\nmaxretyr = 4\n";
        let err = toml::from_str::<J>(src).unwrap_err();
        let d = Diagnostic::from_toml(Path::new("jail.d/x.toml"), src, &err);
        assert_eq!((d.line, d.col), (4, 1), "{d}");
        assert!(
            d.to_string()
                .starts_with("jail.d/x.toml:4:1: unknown field `maxretyr`"),
            "{d}"
        );
    }
}
