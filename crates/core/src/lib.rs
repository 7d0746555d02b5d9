//! nftjail-core: the pure heart of nftjail — no tokio, no nix, no sockets, no files.
//!
//! # Layout
//!
//! Every stage here is synchronous and deterministic: it takes `now` as an argument, returns
//! decisions, and is tested without a runtime, a file or a sleep.
//!
//! - [`addr`]: ban targets (addresses and CIDR prefixes), parsed once at the edge.
//! - [`jail`]: the validated jail name every stage shares.
//! - [`duration`]: durations as fail2ban writes them (`600`, `10m`, `1w`, `-1`), `BanTime`.
//! - [`diag`]: diagnostics that name a file, line and column.
//! - [`ports`]: ports, port ranges and protocols (jail rules, the firewall).
//! - [`fail2ban`]: fail2ban 1.0.2's own filter files and jail configuration, read and matched
//!   as fail2ban does (PCRE2 behind Python `re` semantics).
//! - [`firewall`]: the host firewall's rules and forwards, their stable ids and order, the
//!   lock-out check.
//! - [`filter`]: filter files, their compiled regexes and the per-source matcher (line →
//!   failure).
//! - [`tracker`]: sliding windows, ignore lists, escalation, recidive; failures in, orders
//!   out, outcomes (settlements) back in.
//! - [`fleet`]: bans shared between hosts: the message format and the check of a peer's ban.
//! - [`state`]: the records of the state log (bans, history, positions, the firewall's rules),
//!   their line format and their replay.
#![forbid(unsafe_code)]

pub mod addr;
pub mod diag;
pub mod duration;
pub mod fail2ban;
pub mod filter;
pub mod firewall;
pub mod fleet;
pub mod hash;
pub mod jail;
pub mod ports;
pub mod state;
pub mod tracker;
