//! Any bytes through every built-in filter in every mode, as file lines and as journal
//! messages: the matcher must never panic, and a failure's address must be canonical.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use nftjail_core::filter::{FilterOptions, JournalEntry, Matcher, Outcome, builtin};

fn filters() -> Vec<Arc<nftjail_core::filter::Filter>> {
    let mut out = Vec::new();
    for name in builtin::names() {
        let file = builtin::load(name).unwrap().unwrap();
        let modes: Vec<String> = file.modes().map(str::to_string).collect();
        for mode in modes {
            let options = FilterOptions { mode: Some(mode), ..FilterOptions::default() };
            out.push(Arc::new(file.compile(&options).unwrap()));
        }
    }
    out
}

static FILTERS: OnceLock<Vec<Arc<nftjail_core::filter::Filter>>> = OnceLock::new();
static NOW: OnceLock<chrono::DateTime<chrono::Utc>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let now = *NOW.get_or_init(|| "2026-11-23T12:00:00Z".parse().unwrap());
    for filter in FILTERS.get_or_init(filters) {
        let mut matcher = Matcher::new(Arc::clone(filter), nftjail_core::filter::LocalZone::utc());
        for line in data.split(|b| *b == b'\n') {
            if let Outcome::Failure(f) = matcher.feed_line(line, now) {
                assert_eq!(nftjail_core::addr::canonical(f.host), f.host);
            }
            let entry = JournalEntry { message: line, identifier: Some("sshd"), pid: Some(7), realtime_usec: 1 };
            matcher.feed_journal(&entry, now);
        }
    }
});
