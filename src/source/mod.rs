//! Log sources: files (tailed through rotation) and the systemd journal.
//!
//! Receives paths, journal matches and saved read positions; emits raw log items (lines, or
//! journal entries with their fields) and checkpoints (positions reached) to a [`Sink`]. Each
//! source runs on its own thread, so a slow consumer never stalls another source and reads of
//! regular files never block an async runtime. A source must never interpret a line (the
//! filter does), never drop one silently (over-long lines are counted) and never stop because
//! of a missing, rotated or unreadable file: it reports and keeps watching.

pub mod tail;
