//! Problems found while reading fail2ban files, each with its place.
//!
//! Receives: the file, line and message from the readers and compilers.
//! Emits: [`Finding`] values (a severity, a file, a line), printed as `PATH:LINE: message`; at
//! the crate's boundary they become [`crate::diag::Diagnostic`]s (column 1: fail2ban's reader
//! only knows lines).
//! Never: loses the place of a problem when one is known.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::diag::{Diagnostic, Diagnostics};

/// How serious a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// fail2ban would carry on (it logs or ignores it); so do we.
    Warning,
    /// fail2ban would refuse the filter or jail; so do we.
    Error,
}

/// One problem with its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub path: PathBuf,
    /// 1-based line, when the problem belongs to one.
    pub line: Option<u32>,
    pub message: String,
}

impl Finding {
    pub fn error(place: &Place, message: impl Into<String>) -> Self {
        Finding {
            severity: Severity::Error,
            path: place.path.to_path_buf(),
            line: place.line,
            message: message.into(),
        }
    }

    pub fn warning(place: &Place, message: impl Into<String>) -> Self {
        Finding {
            severity: Severity::Warning,
            ..Finding::error(place, message)
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The finding as one of the project's diagnostics: `PATH:LINE:1: message` (line 1 when
    /// the problem belongs to the whole file). Whoever shows a warning says it is one.
    pub fn to_diagnostic(&self) -> Diagnostic {
        Diagnostic {
            path: self.path.clone(),
            line: self.line.map_or(1, |line| line as usize),
            col: 1,
            message: self.message.clone(),
        }
    }
}

/// The errors among `findings`, as the project's diagnostics (warnings are left out).
pub fn errors(findings: &[Finding]) -> Diagnostics {
    Diagnostics(
        findings
            .iter()
            .filter(|finding| finding.is_error())
            .map(Finding::to_diagnostic)
            .collect(),
    )
}

impl fmt::Display for Finding {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        match self.line {
            Some(line) => write!(
                formatter,
                "{}:{line}: {level}: {}",
                self.path.display(),
                self.message
            ),
            None => write!(
                formatter,
                "{}: {level}: {}",
                self.path.display(),
                self.message
            ),
        }
    }
}

/// Where a value came from: a file and, when known, a line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Place {
    pub path: Arc<Path>,
    pub line: Option<u32>,
}

impl Place {
    pub fn new(path: &Path, line: Option<u32>) -> Self {
        Place {
            path: Arc::from(path),
            line,
        }
    }

    /// The same file at another line.
    pub fn at(&self, line: Option<u32>) -> Self {
        Place {
            path: Arc::clone(&self.path),
            line,
        }
    }
}
