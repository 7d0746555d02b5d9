//! nftjail's end-to-end tests: one binary, one module per topic.

mod administration;
mod backend;
mod bans;
mod console;
mod control;
mod daemon;
mod docs;
mod durability;
mod fail2ban;
mod fail2ban_samples;
mod faults;
mod filters;
mod firewall;
mod fleet;
mod http;
mod hub;
mod injection;
mod lifecycle;
mod netns;
mod operations;
mod output;
mod real;
mod shipped;
mod sources;
mod startup;
mod web;
