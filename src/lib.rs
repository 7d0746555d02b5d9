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
//! - [`filter`]: filter files, their compiled regexes and the per-source matcher (line → failure).
//! - [`cli`]: the `nftjail` command line (clap subcommands) and each command's implementation.
#![forbid(unsafe_code)]

pub mod addr;
pub mod cli;
pub mod config;
pub mod filter;
pub mod jail;
