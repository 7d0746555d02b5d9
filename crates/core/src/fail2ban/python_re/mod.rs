//! Python `re` semantics on top of PCRE2 (JIT, UTF, UCP).
//!
//! Receives: regular expressions in Python syntax (fail2ban's filters, its date templates and the
//! helper expressions of its configuration reader).
//! Emits: compiled [`PythonRegex`] values with Python's `search`, `match`, `sub` and `finditer`
//! behaviour, and [`PythonMatch`]es whose groups are looked up by name.
//! Never: panics on a subject (matching errors such as a JIT stack overflow read as "no match")
//! or compiles a pattern that Python's `re` would refuse.

mod translate;

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

pub use translate::{SyntaxError, Translated, translate};

/// Why a pattern does not compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    /// Byte offset into the Python pattern, if known.
    pub offset: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for CompileError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.offset {
            Some(offset) => write!(formatter, "{} (at offset {offset})", self.message),
            None => formatter.write_str(&self.message),
        }
    }
}

/// Compile flags that fail2ban passes to `re.compile`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    pub multi_line: bool,
    pub ignore_case: bool,
    pub dot_all: bool,
}

/// Numbers compiled expressions, for the per-thread capture cache.
static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

/// The most expressions a thread keeps capture space for (a reload compiles new ones).
const CACHED_LOCATIONS: usize = 4096;

thread_local! {
    /// Capture space per expression, reused by every search on this thread: a prefregex matches
    /// nearly every line, and PCRE2 match data allocated per search is most of its cost.
    static LOCATIONS: RefCell<HashMap<usize, pcre2::bytes::CaptureLocations>> =
        RefCell::new(HashMap::new());
}

/// A compiled Python regular expression.
#[derive(Clone, Debug)]
pub struct PythonRegex {
    /// Shared by clones (they hold the same compiled code).
    id: usize,
    source: Arc<str>,
    regex: pcre2::bytes::Regex,
    names: Arc<HashMap<String, usize>>,
    group_names: Arc<Vec<Option<String>>>,
}

impl PythonRegex {
    /// Compiles `pattern` with Python's syntax and flags.
    pub fn new(pattern: &str, flags: Flags) -> Result<Self, CompileError> {
        let translated = translate(pattern).map_err(|error| CompileError {
            offset: Some(error.offset),
            message: error.message,
        })?;
        let regex = pcre2::bytes::RegexBuilder::new()
            .utf(true)
            .ucp(true)
            .jit_if_available(true)
            .multi_line(flags.multi_line)
            .caseless(flags.ignore_case)
            .dotall(flags.dot_all)
            .build(&translated.pattern)
            .map_err(|error| CompileError {
                offset: error
                    .offset()
                    .map(|offset| translated.python_offset(offset)),
                message: error.error_message_text(),
            })?;
        let group_names: Vec<Option<String>> = regex.capture_names().to_vec();
        let names = group_names
            .iter()
            .enumerate()
            .filter_map(|(index, name)| name.as_ref().map(|name| (name.clone(), index)))
            .collect();
        Ok(PythonRegex {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            source: Arc::from(pattern),
            regex,
            names: Arc::new(names),
            group_names: Arc::new(group_names),
        })
    }

    /// Compiles one of this crate's own expressions (known to be valid).
    pub fn internal(pattern: &str) -> Self {
        Self::new(pattern, Flags::default()).expect("invariant: internal expression compiles")
    }

    /// The Python pattern as given.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Index of the named group.
    pub fn group_index(&self, name: &str) -> Option<usize> {
        self.names.get(name).copied()
    }

    /// Names of all named groups with their indexes.
    pub fn group_names(&self) -> impl Iterator<Item = (&str, usize)> {
        self.group_names
            .iter()
            .enumerate()
            .filter_map(|(index, name)| name.as_deref().map(|name| (name, index)))
    }

    /// Number of groups including group 0.
    pub fn group_count(&self) -> usize {
        self.group_names.len()
    }

    /// Python's `pattern.search(subject, start, end)`.
    pub fn search_range<'s>(
        &self,
        subject: &'s str,
        start: usize,
        end: usize,
    ) -> Option<PythonMatch<'s>> {
        let end = end.min(subject.len());
        if start > end {
            return None;
        }
        let haystack = &subject.as_bytes()[..end];
        // A cheap test first: most searches fail, and capture locations cost an allocation.
        if !self.regex.is_match_at(haystack, start).unwrap_or(false) {
            return None;
        }
        let spans = LOCATIONS.with(|cell| {
            let mut cache = cell.borrow_mut();
            if cache.len() >= CACHED_LOCATIONS && !cache.contains_key(&self.id) {
                cache.clear();
            }
            let locations = cache
                .entry(self.id)
                .or_insert_with(|| self.regex.capture_locations());
            self.regex
                .captures_read_at(locations, haystack, start)
                .ok()
                .flatten()?;
            Some(
                (0..locations.len())
                    .map(|index| locations.get(index))
                    .collect::<Vec<_>>(),
            )
        })?;
        Some(PythonMatch {
            subject,
            spans,
            names: Arc::clone(&self.names),
        })
    }

    /// Python's `pattern.search(subject, start)`.
    pub fn search_at<'s>(&self, subject: &'s str, start: usize) -> Option<PythonMatch<'s>> {
        self.search_range(subject, start, subject.len())
    }

    /// Python's `pattern.search(subject)`.
    pub fn search<'s>(&self, subject: &'s str) -> Option<PythonMatch<'s>> {
        self.search_range(subject, 0, subject.len())
    }

    /// Whether the pattern is found anywhere.
    pub fn is_match(&self, subject: &str) -> bool {
        self.regex.is_match(subject.as_bytes()).unwrap_or(false)
    }

    /// Python's `re.finditer`.
    pub fn find_iter<'s>(&self, subject: &'s str) -> Vec<PythonMatch<'s>> {
        let mut found = Vec::new();
        let mut position = 0;
        let mut last_empty_end: Option<usize> = None;
        while position <= subject.len() {
            let Some(next) = self.search_at(subject, position) else {
                break;
            };
            if next.start() == next.end() && last_empty_end == Some(next.start()) {
                // Python never yields two matches at the same place: step one character.
                match next_boundary(subject, position) {
                    Some(step) => {
                        position = step;
                        continue;
                    }
                    None => break,
                }
            }
            position = next.end();
            last_empty_end = (next.start() == next.end()).then_some(next.end());
            found.push(next);
        }
        found
    }

    /// Python's `re.sub(pattern, function, subject, count)` (count 0 = all).
    pub fn replace_with(
        &self,
        subject: &str,
        count: usize,
        mut replacement: impl FnMut(&PythonMatch<'_>) -> String,
    ) -> String {
        let mut output = String::with_capacity(subject.len());
        let mut copied = 0;
        for (index, found) in self.find_iter(subject).into_iter().enumerate() {
            if count != 0 && index >= count {
                break;
            }
            output.push_str(&subject[copied..found.start()]);
            output.push_str(&replacement(&found));
            copied = found.end();
        }
        output.push_str(&subject[copied..]);
        output
    }
}

fn next_boundary(subject: &str, position: usize) -> Option<usize> {
    subject[position..]
        .chars()
        .next()
        .map(|character| position + character.len_utf8())
}

/// One match: group spans by index and name.
#[derive(Clone, Debug)]
pub struct PythonMatch<'s> {
    subject: &'s str,
    spans: Vec<Option<(usize, usize)>>,
    names: Arc<HashMap<String, usize>>,
}

impl<'s> PythonMatch<'s> {
    pub fn start(&self) -> usize {
        self.spans[0].map_or(0, |span| span.0)
    }

    pub fn end(&self) -> usize {
        self.spans[0].map_or(0, |span| span.1)
    }

    /// The subject the match was found in.
    pub fn subject(&self) -> &'s str {
        self.subject
    }

    /// Group text by index (`None` if the group did not take part).
    pub fn group(&self, index: usize) -> Option<&'s str> {
        let (start, end) = (*self.spans.get(index)?)?;
        Some(&self.subject[start..end])
    }

    /// Group span by index.
    pub fn span(&self, index: usize) -> Option<(usize, usize)> {
        *self.spans.get(index)?
    }

    /// Group text by name.
    pub fn name(&self, name: &str) -> Option<&'s str> {
        self.group(*self.names.get(name)?)
    }

    /// Whether the pattern has a group of that name.
    pub fn has_group(&self, name: &str) -> bool {
        self.names.contains_key(name)
    }
}

/// Python's `re.escape`.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len() * 2);
    for character in text.chars() {
        if "()[]{}?*+-|^$\\.&~# \t\n\r\x0b\x0c".contains(character) {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

trait ErrorText {
    fn error_message_text(&self) -> String;
}

impl ErrorText for pcre2::Error {
    fn error_message_text(&self) -> String {
        let text = self.to_string();
        // "PCRE2: error compiling pattern at offset N: message" → "message"
        match text.rsplit_once(": ") {
            Some((_, message)) => message.to_string(),
            None => text,
        }
    }
}

/// Python's `str.isspace` for one character.
pub fn is_python_space(character: char) -> bool {
    character.is_whitespace() || ('\x1c'..='\x1f').contains(&character)
}

/// Python's `str.strip()`.
pub fn python_strip(text: &str) -> &str {
    text.trim_matches(is_python_space)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_dollar_matches_before_the_final_newline() {
        let regex = PythonRegex::new("^foo$", Flags::default()).unwrap();
        assert!(regex.search("foo\n").is_some());
        assert!(regex.search("foo\nbar\n").is_none());
    }

    #[test]
    fn search_range_behaves_like_python_endpos() {
        let regex = PythonRegex::internal(r"\d+$");
        let found = regex.search_range("ab 12 34", 0, 5).unwrap();
        assert_eq!(found.group(0), Some("12"));
    }

    #[test]
    fn sub_and_finditer() {
        let regex = PythonRegex::internal(r"<([^ <>]+)>");
        let replaced = regex.replace_with("a <b> c <d>", 0, |found| {
            found.group(1).unwrap().to_uppercase()
        });
        assert_eq!(replaced, "a B c D");
        let empty = PythonRegex::internal(r"x*");
        assert_eq!(empty.replace_with("abxc", 0, |_| "-".into()), "-a-b--c-");
    }

    #[test]
    fn reports_offsets() {
        let error = PythonRegex::new(r"abc(?P<x>", Flags::default()).unwrap_err();
        assert!(error.offset.is_some());
    }
}
