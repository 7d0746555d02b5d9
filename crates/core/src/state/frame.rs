//! The state log's line format.
//!
//! Receives records to encode, and lines to decode. Emits one line per record,
//! `XXXXXXXX {json}\n` where `XXXXXXXX` is the CRC32 of the JSON in hex, and, for a line read
//! back, its record or nothing when the line is damaged (a wrong checksum, a torn write).

use super::Record;

/// Longest line a record can take (a position's source key holds a path); a longer line is
/// damage, never read whole into memory.
pub const MAX_LINE: usize = 64 * 1024;

/// Appends `record` as one line to `out`.
pub fn encode(record: &Record, out: &mut Vec<u8>) {
    let json = serde_json::to_vec(record).expect("invariant: records serialize");
    let crc = crc32fast::hash(&json);
    out.extend_from_slice(format!("{crc:08x} ").as_bytes());
    out.extend_from_slice(&json);
    out.push(b'\n');
}

/// Decodes one line (without its newline); `None` if damaged.
pub fn decode(line: &[u8]) -> Option<Record> {
    let (crc, json) = (line.get(..8)?, line.get(9..)?);
    if line.get(8) != Some(&b' ') {
        return None;
    }
    let crc = u32::from_str_radix(std::str::from_utf8(crc).ok()?, 16).ok()?;
    if crc32fast::hash(json) != crc {
        return None;
    }
    serde_json::from_slice(json).ok()
}
