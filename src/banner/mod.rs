//! The banner stage: owns the backend, the batch and the schedule.
//!
//! Receives ban orders from the tracker (and layouts, read positions, barriers from the
//! daemon's core); emits kernel changes through the kernel backend (`nftjail_backend`) and
//! durable records through the state store, then reports each order's outcome. [`worker`] is the thread that does the
//! blocking part; `task` is the async side that batches what arrives while the worker is busy
//! (bans arriving together become one kernel transaction and one fsync). It never decides who
//! is banned and never reports a ban done before the kernel took it and the record is on disk.

pub mod task;
pub mod worker;

pub use task::{Banner, BannerError, BannerStats, Barrier, Msg, Report, Settled};
pub use worker::{FirewallUpdate, OrderError};
