//! nftjail: a native replacement for fail2ban.
//!
//! # Layout
//!
//! The code follows the pipeline `source → filter → tracker → banner`, with `config`, `state`
//! and `control` beside it:
//!
//! - [`addr`]: ban targets (addresses and CIDR prefixes), parsed once at the edge.
//! - [`jail`]: the validated jail name every stage shares.
//! - [`config`]: `nftjail.toml`, `jail.d/`, `filter.d/`: validated, every error as `PATH:LINE:COL`.
//! - [`source`]: log files (tailed through rotation) and the systemd journal, one thread each.
//! - [`filter`]: filter files, their compiled regexes and the per-source matcher (line → failure).
//! - [`tracker`]: sliding windows, ignore lists, escalation, recidive: failures in, ban orders out.
//! - [`banner`]: the banner stage; its [`banner::backend`] writes bans into nftables sets over
//!   netlink (and has an in-memory twin for tests and benches).
//! - [`state`]: the crash-safe state log (bans, history, read positions), group-committed.
//! - [`control`]: the control socket: shared protocol, server (daemon side), client (CLI side).
//! - [`daemon`]: `nftjail run`: the task topology, start-up reconcile, reload and ordered shutdown.
//! - [`cli`]: the `nftjail` command line (clap subcommands) and each command's implementation.
#![forbid(unsafe_code)]

pub mod addr;
pub mod banner;
pub mod cli;
pub mod config;
pub mod control;
pub mod daemon;
pub mod filter;
pub mod jail;
pub mod source;
pub mod state;
pub mod tracker;
