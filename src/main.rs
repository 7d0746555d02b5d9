//! The `nftjail` binary: parses arguments, calls the library, maps the result to an exit code.
#![forbid(unsafe_code)]

fn main() {
    println!("nftjail {}", env!("CARGO_PKG_VERSION"));
}
