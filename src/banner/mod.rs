//! The banner stage: owns the backend, the batch and the schedule; built by the lead.

pub mod backend;
