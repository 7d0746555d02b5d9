//! The banner stage: owns the backend, the batch and the schedule; built by the lead.
//!
//! Today it holds only [`backend`]: the nftables backend trait with its netlink and in-memory
//! implementations.

pub mod backend;
