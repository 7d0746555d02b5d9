//! fail2ban's date detector: templates, `%`-fields, zones and the per-source detector state.
//!
//! Receives: `datepattern` lines at load, log lines and `now` while matching.
//! Emits: where a line's date is and its Unix time.
//! Never: reads the clock or the system zone.

pub mod detector;
pub mod strptime;
pub mod template;
pub mod zone;

pub use detector::{DateDetector, DateMatch, Templates};
pub use zone::{LocalRules, PosixZone, Zone};
