//! `nftjail import-fail2ban`: a fail2ban installation taken over as it is.
//!
//! Receives fail2ban's configuration directory and/or its database. Emits an nftjail
//! configuration directory ([`config`]) with a [`Report`] of what was converted and what was not
//! (and why), and the active bans of the database ([`database`]) for the running daemon, which
//! takes them with their remaining time and ban count. Never writes into fail2ban's files, never
//! guesses a jail that does not exist, never unbans anyone.

pub mod config;
pub mod database;
pub mod seconds;

use std::fmt;

/// What a conversion did.
#[derive(Debug, Default)]
pub struct Report {
    /// Jails converted, in fail2ban's order.
    pub converted: Vec<String>,
    /// Jails fail2ban has but does not enable (not converted).
    pub disabled: Vec<String>,
    /// Everything not carried over, and problems, with the reason.
    pub notes: Vec<Note>,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The jail it is about (`None`: the whole configuration).
    pub jail: Option<String>,
    pub text: String,
    /// A problem that stops a jail or the conversion (rather than a difference).
    pub error: bool,
}

impl Report {
    /// Whether something could not be converted at all.
    pub fn has_errors(&self) -> bool {
        self.notes.iter().any(|note| note.error)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for jail in &self.converted {
            writeln!(f, "converted: {jail}")?;
            for note in self
                .notes
                .iter()
                .filter(|n| n.jail.as_deref() == Some(jail))
            {
                writeln!(f, "  {}", note.text)?;
            }
        }
        for note in &self.notes {
            match &note.jail {
                Some(jail) if self.converted.contains(jail) => {}
                Some(jail) => writeln!(f, "{jail}: {}", note.text)?,
                None => writeln!(f, "note: {}", note.text)?,
            }
        }
        if !self.disabled.is_empty() {
            writeln!(
                f,
                "not enabled in fail2ban, not converted ({}): {}",
                self.disabled.len(),
                self.disabled.join(", ")
            )?;
        }
        Ok(())
    }
}
