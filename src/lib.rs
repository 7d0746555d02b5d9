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
//! - [`banner`]: the banner stage; its [`banner::backend`] writes bans into nftables sets over
//!   netlink (and has an in-memory twin for tests and benches).
#![forbid(unsafe_code)]

pub mod addr;
pub mod banner;
pub mod config;
pub mod jail;
