//! The line buffer and fail2ban's `Regex.search` over it: which buffered lines a match used.
//!
//! Receives: buffered lines (text with the date cut out) and a compiled regex.
//! Emits: the match's groups plus the matched and unmatched lines (`<SKIPLINES>` lines count as
//! unmatched), exactly as fail2ban splits them.
//! Never: keeps more than `maxlines` lines.

use std::sync::Arc;

use crate::fail2ban::filter::regex::FilterRegex;

/// One buffered line: the text, where its date was, and its number in the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BufferedLine {
    pub text: Arc<str>,
    /// Byte span of the date text (removed before matching).
    pub date: (usize, usize),
    pub number: u64,
}

impl BufferedLine {
    /// `"".join(tuple[::2])`: the line without its date.
    pub fn without_date(&self) -> String {
        let (start, end) = self.date;
        let mut text = String::with_capacity(self.text.len());
        text.push_str(&self.text[..start]);
        text.push_str(&self.text[end..]);
        text
    }
}

/// `Regex._tupleLinesBuf`.
pub fn lines_buffer(lines: &[BufferedLine]) -> String {
    let mut buffer = String::with_capacity(lines.iter().map(|line| line.text.len() + 1).sum());
    for (index, line) in lines.iter().enumerate() {
        if index > 0 {
            buffer.push('\n');
        }
        let (start, end) = line.date;
        buffer.push_str(&line.text[..start]);
        buffer.push_str(&line.text[end..]);
    }
    buffer.push('\n');
    buffer
}

/// A match with its line split.
pub struct Searched {
    pub groups: Vec<Option<String>>,
    pub matched: Vec<BufferedLine>,
    pub unmatched: Vec<BufferedLine>,
}

/// Python's `str.splitlines()`.
fn split_lines(text: &str) -> Vec<&str> {
    let separators = [
        '\n', '\r', '\x0b', '\x0c', '\x1c', '\x1d', '\x1e', '\u{85}', '\u{2028}', '\u{2029}',
    ];
    let mut lines = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        match rest.find(separators) {
            Some(index) => {
                lines.push(&rest[..index]);
                let skip = if rest[index..].starts_with("\r\n") {
                    2
                } else {
                    rest[index..].chars().next().map_or(1, char::len_utf8)
                };
                rest = &rest[index + skip..];
            }
            None => {
                lines.push(rest);
                break;
            }
        }
    }
    lines
}

/// `Regex.search(buffer, orgLines)`.
pub fn search(regex: &FilterRegex, buffer: &str, original: &[BufferedLine]) -> Option<Searched> {
    let found = regex.regex.search(buffer)?;
    // Only the groups something reads are copied (a prefregex matches nearly every line).
    let groups: Vec<Option<String>> = regex
        .wanted
        .iter()
        .enumerate()
        .map(|(index, wanted)| {
            if *wanted {
                found.group(index).map(str::to_string)
            } else {
                None
            }
        })
        .collect();
    if original.len() <= 1 {
        return Some(Searched {
            groups,
            matched: original.to_vec(),
            unmatched: Vec::new(),
        });
    }
    let bytes = buffer.as_bytes();
    let start_limit = (found.start() + 1).min(bytes.len());
    let line_start = memchr::memrchr(b'\n', &bytes[..start_limit]).map_or(0, |index| index + 1);
    let end_from = found.end().saturating_sub(1);
    let line_end =
        memchr::memchr(b'\n', &bytes[end_from..]).map_or(bytes.len(), |index| end_from + index + 1);
    let first = memchr::memchr_iter(b'\n', &bytes[..line_start]).count();
    let last = memchr::memchr_iter(b'\n', &bytes[..line_end]).count();
    let first = first.min(original.len());
    let last = last.clamp(first, original.len());
    let mut matched: Vec<BufferedLine> = original[first..last].to_vec();
    let mut unmatched: Vec<BufferedLine> = original[..first].to_vec();
    let mut skipped = String::new();
    for index in &regex.groups.skip_lines {
        if let Some(text) = found.group(*index) {
            skipped.push_str(text);
        }
    }
    let mut position = 0;
    for skipped_line in split_lines(&skipped) {
        if let Some(offset) = matched[position.min(matched.len())..]
            .iter()
            .position(|line| line.without_date() == skipped_line)
        {
            unmatched.push(matched.remove(position + offset));
            position += offset;
        }
    }
    unmatched.extend_from_slice(&original[last..]);
    Some(Searched {
        groups,
        matched,
        unmatched,
    })
}
