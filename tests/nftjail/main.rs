//! nftjail's end-to-end tests: one binary, one module per topic.

mod administration;
mod backend;
mod bans;
mod control;
mod daemon;
mod docs;
mod durability;
mod faults;
mod filters;
mod lifecycle;
mod netns;
mod operations;
mod output;
mod shipped;
mod sources;
