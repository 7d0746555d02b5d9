//! Translation of Python `re` syntax into PCRE2 syntax.
//!
//! Receives: a regular expression written for Python 3.11's `re` module (as fail2ban compiles it).
//! Emits: an equivalent PCRE2 pattern, plus a map from every byte of the PCRE2 pattern back to the
//! byte of the Python pattern it came from (so PCRE2's error offsets point into the fail2ban text).
//! Never: accepts a construct Python rejects (bad escapes, global flags after the start,
//! `(?L)` on text): those are errors here too, so a filter fail2ban refuses is refused.

use std::fmt;

/// A Python pattern that Python itself would refuse to compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// Byte offset into the Python pattern.
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{} at offset {}", self.message, self.offset)
    }
}

/// The PCRE2 pattern and its offset map.
#[derive(Debug, Clone)]
pub struct Translated {
    pub pattern: String,
    /// `origin[i]` is the Python offset of PCRE2 byte `i` (one extra entry for the end).
    pub origin: Vec<usize>,
}

impl Translated {
    /// Maps a PCRE2 error offset back into the Python pattern.
    pub fn python_offset(&self, pcre_offset: usize) -> usize {
        self.origin
            .get(pcre_offset)
            .or_else(|| self.origin.last())
            .copied()
            .unwrap_or(0)
    }
}

struct Writer {
    out: String,
    origin: Vec<usize>,
}

impl Writer {
    fn push(&mut self, text: &str, from: usize) {
        self.out.push_str(text);
        self.origin.extend(std::iter::repeat_n(from, text.len()));
    }
}

/// Escapes Python accepts after a backslash outside a character class.
const LETTER_ESCAPES: &str = "AbBdDsSwWZafnrtvxuUN";
/// Escapes Python accepts after a backslash inside a character class.
const CLASS_LETTER_ESCAPES: &str = "bdDsSwWafnrtvxuUN";

/// Translates `pattern` (Python syntax) into PCRE2 syntax.
pub fn translate(pattern: &str) -> Result<Translated, SyntaxError> {
    let bytes = pattern.as_bytes();
    let mut writer = Writer {
        out: String::with_capacity(pattern.len() + 16),
        origin: Vec::with_capacity(pattern.len() + 17),
    };
    let mut position = 0;
    // Global flags are legal only before the first item of the top-level first branch.
    let mut only_global_flags_so_far = true;
    let mut depth = 0usize;
    let mut verbose = false;
    while position < bytes.len() {
        let byte = bytes[position];
        match byte {
            b'\\' => {
                let consumed = escape(pattern, position, false, &mut writer)?;
                position += consumed;
                only_global_flags_so_far = false;
            }
            b'[' => {
                position = class(pattern, position, &mut writer)?;
                only_global_flags_so_far = false;
            }
            b'{' => {
                position += quantifier(pattern, position, &mut writer);
                only_global_flags_so_far = false;
            }
            b'(' if bytes.get(position + 1) == Some(&b'?') => {
                let (consumed, opened, global) = group_open(
                    pattern,
                    position,
                    only_global_flags_so_far && depth == 0,
                    &mut writer,
                )?;
                if let Some(flags) = global {
                    verbose |= flags.contains('x');
                } else {
                    only_global_flags_so_far = false;
                }
                if opened {
                    depth += 1;
                }
                position += consumed;
            }
            b'(' => {
                writer.push("(", position);
                depth += 1;
                position += 1;
                only_global_flags_so_far = false;
            }
            b')' => {
                if depth == 0 {
                    return Err(SyntaxError {
                        offset: position,
                        message: "unbalanced parenthesis".into(),
                    });
                }
                depth -= 1;
                writer.push(")", position);
                position += 1;
            }
            b'#' if verbose => {
                // A comment in verbose mode runs to the end of the line.
                let end = pattern[position..]
                    .find('\n')
                    .map_or(bytes.len(), |index| position + index);
                writer.push(&pattern[position..end], position);
                position = end;
            }
            _ => {
                let character = pattern[position..]
                    .chars()
                    .next()
                    .expect("invariant: position is on a character boundary");
                let length = character.len_utf8();
                writer.push(&pattern[position..position + length], position);
                position += length;
                if !(verbose && character.is_whitespace()) {
                    only_global_flags_so_far = false;
                }
            }
        }
    }
    if depth != 0 {
        return Err(SyntaxError {
            offset: bytes.len(),
            message: "missing ), unterminated subpattern".into(),
        });
    }
    writer.origin.push(bytes.len());
    Ok(Translated {
        pattern: writer.out,
        origin: writer.origin,
    })
}

/// Translates one escape sequence starting at `start` (the backslash); returns bytes consumed.
fn escape(
    pattern: &str,
    start: usize,
    in_class: bool,
    writer: &mut Writer,
) -> Result<usize, SyntaxError> {
    let rest = &pattern[start + 1..];
    let Some(next) = rest.chars().next() else {
        return Err(SyntaxError {
            offset: start,
            message: "bad escape (end of pattern)".into(),
        });
    };
    let allowed = if in_class {
        CLASS_LETTER_ESCAPES
    } else {
        LETTER_ESCAPES
    };
    match next {
        'Z' if !in_class => {
            writer.push("\\z", start);
            Ok(2)
        }
        'v' => {
            writer.push("\\x0b", start);
            Ok(2)
        }
        'x' => {
            let digits = hex_digits(rest, 1, 2);
            if digits != 2 {
                return Err(bad_escape(start, &pattern[start..start + 2 + digits]));
            }
            writer.push(&pattern[start..start + 4], start);
            Ok(4)
        }
        'u' | 'U' => {
            let wanted = if next == 'u' { 4 } else { 8 };
            let digits = hex_digits(rest, 1, wanted);
            if digits != wanted {
                return Err(bad_escape(start, &pattern[start..start + 2 + digits]));
            }
            let code = &rest[1..1 + wanted];
            writer.push(&format!("\\x{{{code}}}"), start);
            Ok(2 + wanted)
        }
        'N' => Err(SyntaxError {
            offset: start,
            message: "named Unicode escapes (\\N{...}) are not supported".into(),
        }),
        '0'..='9' => {
            // Octal escapes and back references have the same meaning in PCRE2.
            let digits = rest.bytes().take_while(u8::is_ascii_digit).take(3).count();
            let text = &pattern[start..start + 1 + digits];
            if in_class && !next.is_digit(8) {
                return Err(bad_escape(start, text));
            }
            writer.push(text, start);
            Ok(1 + digits)
        }
        character if character.is_ascii_alphabetic() => {
            if !allowed.contains(character) {
                return Err(bad_escape(start, &pattern[start..start + 2]));
            }
            writer.push(&pattern[start..start + 2], start);
            Ok(2)
        }
        character => {
            let length = 1 + character.len_utf8();
            writer.push(&pattern[start..start + length], start);
            Ok(length)
        }
    }
}

fn bad_escape(offset: usize, text: &str) -> SyntaxError {
    SyntaxError {
        offset,
        message: format!("bad escape {text}"),
    }
}

fn hex_digits(text: &str, from: usize, wanted: usize) -> usize {
    text.as_bytes()
        .iter()
        .skip(from)
        .take(wanted)
        .take_while(|byte| byte.is_ascii_hexdigit())
        .count()
}

/// Translates a character class starting at `start` (the `[`); returns the position after it.
fn class(pattern: &str, start: usize, writer: &mut Writer) -> Result<usize, SyntaxError> {
    let bytes = pattern.as_bytes();
    let mut position = start + 1;
    writer.push("[", start);
    if bytes.get(position) == Some(&b'^') {
        writer.push("^", position);
        position += 1;
    }
    // A `]` right after the opening is a literal in both engines.
    if bytes.get(position) == Some(&b']') {
        writer.push("\\]", position);
        position += 1;
    }
    loop {
        let Some(&byte) = bytes.get(position) else {
            return Err(SyntaxError {
                offset: start,
                message: "unterminated character set".into(),
            });
        };
        match byte {
            b']' => {
                writer.push("]", position);
                return Ok(position + 1);
            }
            b'\\' => position += escape(pattern, position, true, writer)?,
            // `[` is a plain character for Python; PCRE2 would read `[:alpha:]` as a POSIX class.
            b'[' => {
                writer.push("\\[", position);
                position += 1;
            }
            _ => {
                let character = pattern[position..]
                    .chars()
                    .next()
                    .expect("invariant: position is on a character boundary");
                let length = character.len_utf8();
                writer.push(&pattern[position..position + length], position);
                position += length;
            }
        }
    }
}

/// Translates a `{` (a quantifier or a literal brace); returns bytes consumed.
fn quantifier(pattern: &str, start: usize, writer: &mut Writer) -> usize {
    let bytes = pattern.as_bytes();
    let mut position = start + 1;
    let low_start = position;
    while bytes.get(position).is_some_and(u8::is_ascii_digit) {
        position += 1;
    }
    let low = &pattern[low_start..position];
    let mut high: Option<&str> = None;
    if bytes.get(position) == Some(&b',') {
        position += 1;
        let high_start = position;
        while bytes.get(position).is_some_and(u8::is_ascii_digit) {
            position += 1;
        }
        high = Some(&pattern[high_start..position]);
    }
    let closed = bytes.get(position) == Some(&b'}');
    let empty = low.is_empty() && high.is_none();
    if !closed || empty {
        // Python reads an incomplete quantifier as a literal `{`.
        writer.push("\\{", start);
        return 1;
    }
    let low = if low.is_empty() { "0" } else { low };
    let text = match high {
        None => format!("{{{low}}}"),
        Some(high) => format!("{{{low},{high}}}"),
    };
    writer.push(&text, start);
    position + 1 - start
}

/// Translates a group opening `(?...`; returns (bytes consumed, opens a group, global flags).
fn group_open(
    pattern: &str,
    start: usize,
    global_allowed: bool,
    writer: &mut Writer,
) -> Result<(usize, bool, Option<String>), SyntaxError> {
    let rest = &pattern[start + 2..];
    let error = |message: &str| SyntaxError {
        offset: start,
        message: message.into(),
    };
    if rest.starts_with("P<") {
        let end = rest
            .find('>')
            .ok_or_else(|| error("missing >, unterminated name"))?;
        let name = &rest[2..end];
        valid_group_name(name).map_err(|message| error(&message))?;
        writer.push(&pattern[start..start + 2 + end + 1], start);
        return Ok((2 + end + 1, true, None));
    }
    if rest.starts_with("P=") {
        let end = rest
            .find(')')
            .ok_or_else(|| error("missing ), unterminated name"))?;
        valid_group_name(&rest[2..end]).map_err(|message| error(&message))?;
        writer.push(&pattern[start..start + 2 + end + 1], start);
        return Ok((2 + end + 1, false, None));
    }
    if rest.starts_with('#') {
        let end = rest
            .find(')')
            .ok_or_else(|| error("missing ), unterminated comment"))?;
        return Ok((2 + end + 1, false, None));
    }
    for opener in [":", "=", "!", "<=", "<!", ">"] {
        if rest.starts_with(opener) {
            writer.push(&pattern[start..start + 2 + opener.len()], start);
            return Ok((2 + opener.len(), true, None));
        }
    }
    if rest.starts_with('(') {
        // Conditional: (?(id or name)yes|no)
        let end = rest
            .find(')')
            .ok_or_else(|| error("missing ), unterminated name"))?;
        let condition = &rest[1..end];
        if condition.is_empty() {
            return Err(error("missing group name"));
        }
        if !condition.bytes().all(|byte| byte.is_ascii_digit()) {
            valid_group_name(condition).map_err(|message| error(&message))?;
        }
        writer.push(&pattern[start..start + 2 + end + 1], start);
        return Ok((2 + end + 1, true, None));
    }
    // Flags: (?aiLmsux) global, (?aiLmsux-imsx:...) scoped.
    let flag_length = rest
        .bytes()
        .take_while(|byte| b"aiLmsux-".contains(byte))
        .count();
    let flags = &rest[..flag_length];
    let terminator = rest.as_bytes().get(flag_length).copied();
    if flag_length == 0 || !matches!(terminator, Some(b')') | Some(b':')) {
        return Err(error("unknown extension"));
    }
    if flags.contains('L') {
        return Err(error(
            "bad inline flags: cannot use 'L' flag with a str pattern",
        ));
    }
    let (on, off) = flags.split_once('-').unwrap_or((flags, ""));
    if off.contains(['a', 'u', 'L']) || (terminator == Some(b')') && flags.contains('-')) {
        return Err(error("bad inline flags"));
    }
    let kept_on: String = on.chars().filter(|flag| *flag != 'u').collect();
    if terminator == Some(b')') {
        if !global_allowed {
            return Err(error("global flags not at the start of the expression"));
        }
        if !kept_on.is_empty() {
            writer.push(&format!("(?{kept_on})"), start);
        }
        return Ok((2 + flag_length + 1, false, Some(kept_on)));
    }
    let text = if off.is_empty() {
        format!("(?{kept_on}:")
    } else {
        format!("(?{kept_on}-{off}:")
    };
    writer.push(&text, start);
    Ok((2 + flag_length + 1, true, None))
}

fn valid_group_name(name: &str) -> Result<(), String> {
    let mut characters = name.chars();
    let valid = match characters.next() {
        Some(first) => {
            (first.is_alphabetic() || first == '_')
                && characters.all(|c| c.is_alphanumeric() || c == '_')
        }
        None => false,
    };
    if valid {
        Ok(())
    } else {
        Err(format!("bad character in group name {name:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcre(pattern: &str) -> String {
        translate(pattern).unwrap().pattern
    }

    #[test]
    fn rewrites_the_known_traps() {
        assert_eq!(pcre(r"a{,3}"), "a{0,3}");
        assert_eq!(pcre(r"a{,}"), "a{0,}");
        assert_eq!(pcre(r"{{x}}"), r"\{\{x}}");
        assert_eq!(pcre(r"[^[]"), r"[^\[]");
        assert_eq!(pcre(r"(?iu)x"), "(?i)x");
        assert_eq!(pcre(r"(?u)x"), "x");
        assert_eq!(pcre(r"x\Z"), r"x\z");
        assert_eq!(pcre(r"\<tag\>"), r"\<tag\>");
        assert_eq!(pcre(r"[]a]"), r"[\]a]");
        assert_eq!(pcre(r"\u00e9"), r"\x{00e9}");
    }

    #[test]
    fn refuses_what_python_refuses() {
        assert!(translate(r"a(?i)b").is_err());
        assert!(translate(r"\e").is_err());
        assert!(translate(r"(a").is_err());
        assert!(translate(r"a)").is_err());
        assert!(translate(r"[abc").is_err());
        assert!(translate(r"(?P<1a>x)").is_err());
        assert!(translate(r"(?i)(?x)a").is_ok());
    }

    #[test]
    fn maps_offsets_back() {
        let translated = translate(r"a{,3}(").err();
        assert!(translated.is_some());
        let translated = translate(r"[[]x").unwrap();
        assert_eq!(translated.python_offset(3), 2);
    }
}
