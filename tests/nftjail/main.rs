//! nftjail's end-to-end tests: one binary, one module per topic.

mod backend;
mod bans;
mod console;
mod control;
mod daemon;
mod docs;
mod durability;
mod faults;
mod filters;
mod firewall;
mod http;
mod lifecycle;
mod netns;
mod operations;
mod output;
mod real;
mod shipped;
mod sources;
mod web;
