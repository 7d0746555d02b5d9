//! Configuration: `nftjail.toml`, `jail.d/*.toml` and `filter.d/*.toml`, read and validated.
//!
//! Receives paths; emits a validated, immutable [`Config`] or every [`Diagnostic`] found. Works in
//! two layers (ripgrep's low/high args): serde structs that mirror the TOML with
//! `deny_unknown_fields`, then a validation pass that compiles filters, resolves names, merges
//! defaults into jails and collects *all* errors of all files before refusing. It must never
//! start anything or touch the system beyond reading files (and resolving `ignoreip` host names).

pub mod diag;
pub mod duration;

pub use diag::{Diagnostic, Diagnostics};
pub use duration::{BanTime, Span};
