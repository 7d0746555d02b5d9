//! nftjail's end-to-end tests: one binary, one module per topic.

mod backend;
mod filters;
mod netns;
