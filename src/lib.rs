//! nftjail: a native replacement for fail2ban.
//!
//! # Layout
//!
//! The code follows the pipeline `source → filter → tracker → banner`, with `config`, `state`
//! and `control` beside it:
//!
//! - [`addr`]: ban targets (addresses and CIDR prefixes), parsed once at the edge.
//! - [`jail`]: the validated jail name every stage shares.
//! - [`config`]: `nftjail.toml`, `jail.d/` and `filter.d/`, validated with file:line:col errors.
//! - [`tracker`]: sliding windows, ignore lists, escalation, recidive: failures in, ban orders out.
#![forbid(unsafe_code)]

pub mod addr;
pub mod config;
pub mod jail;
pub mod tracker;
