//! Fuzzes the control socket's request decoder and the blocklist line parser: whatever a
//! client sends, decoding returns a request or an error, never panics; a decoded request
//! re-encodes to a line that decodes to the same request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nftjail::control::protocol::{decode_request, encode_request, parse_list_line, Reply};

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = decode_request(data) {
        let line = encode_request(&request);
        let again = decode_request(line.strip_suffix(b"\n").unwrap()).expect("an encoded request decodes");
        assert_eq!(again, request);
    }
    let _ = parse_list_line(&String::from_utf8_lossy(data));
    // The client side: whatever a (broken) daemon answers.
    let _ = serde_json::from_slice::<Reply>(data);
});
