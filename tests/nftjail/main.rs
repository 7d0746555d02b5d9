//! nftjail's end-to-end tests: one binary, one module per topic.

mod filters;
