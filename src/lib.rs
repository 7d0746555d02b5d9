//! nftjail: a native replacement for fail2ban — the daemon and its command line.
//!
//! # Layout
//!
//! The workspace has three crates. `nftjail-core` (crates/core) is the pure heart: addresses,
//! durations, filters and their matcher, the tracker, the state records. `nftjail-backend`
//! (crates/backend) is the kernel: nftables over netlink, its in-memory twin, reconcile and the
//! table monitor. This crate is the daemon: the I/O around them, in pipeline order:
//!
//! - [`config`]: `nftjail.toml`, `jail.d/`, `filter.d/`: read, validated, every error as
//!   `PATH:LINE:COL`.
//! - [`source`]: log files (tailed through rotation) and the systemd journal, one thread each.
//! - [`filter`]: the filter stage: core's matcher on each source's thread, failures to the core.
//! - [`daemon`]: `nftjail run`: the core task (the tracker's one owner), reload, the sources'
//!   lifecycle, drift repair, hooks, metrics, systemd.
//! - [`banner`]: the banner stage: batches orders into kernel transactions and durable commits,
//!   reports every outcome back.
//! - [`fleet`]: bans shared with other hosts over NATS JetStream (`[cluster]`): outbox,
//!   publisher, consumer.
//! - [`state`]: the crash-safe state log on disk (core's records), group-committed.
//! - [`control`]: the control socket: shared protocol, server (daemon side), client (CLI side).
//! - [`fail2ban`]: core's fail2ban engine over the file system, and `import-fail2ban` (a whole
//!   fail2ban installation: configuration, filters and active bans).
//! - [`http`]: the HTTP API (the control socket's requests over HTTP, bearer tokens), the web
//!   console and `/metrics`, on axum and hyper; off unless `[http]` or `[metrics]` is set.
//! - [`cli`]: the `nftjail` command line (clap subcommands) and each command's implementation.
#![forbid(unsafe_code)]

pub mod banner;
pub mod cli;
pub mod config;
pub mod control;
pub mod daemon;
pub mod fail2ban;
pub mod filter;
pub mod fleet;
pub mod http;
pub mod source;
pub mod state;
