//! nftjail's integration tests: one binary, one module per topic.

mod backend;
mod netns;
