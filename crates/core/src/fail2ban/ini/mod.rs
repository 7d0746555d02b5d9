//! fail2ban's configuration reader: `SafeConfigParserWithIncludes` and `ConfigReader`.
//!
//! Receives: file names and a [`super::Loader`].
//! Emits: a merged [`Config`] (sections, `[DEFAULT]`, `KNOWN/…` sections) and lookups with
//! Python's `%(…)s` interpolation, plus diagnostics with file and line.
//! Never: reads a file by itself, or resolves `<tag>`s (that is [`crate::fail2ban::tags`]).

mod includes;
mod interpolation;
mod parser;
mod section;

pub use includes::{Config, read_explicit, read_standard};
pub use interpolation::{GetError, Vars};
pub use parser::parse;
pub use section::{Section, Sections, Value};
