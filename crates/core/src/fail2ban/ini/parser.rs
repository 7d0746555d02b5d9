//! Python 3.11's `ConfigParser._read` with fail2ban's settings, for one file.
//!
//! Receives: the text of one configuration file and its path.
//! Emits: its `[DEFAULT]` and sections with raw values (multi-line values joined, inline `;`
//! comments cut), or every syntax error with its line.
//! Never: interpolates (that happens at lookup) or accepts what Python rejects (a line before
//! any section, a duplicate section or option, a line that is neither).

use std::collections::HashSet;
use std::path::Path;

use super::section::{Section, Sections, Value};
use crate::fail2ban::finding::{Finding, Place};
use crate::fail2ban::python_re::{is_python_space, python_strip};

struct Pending {
    lines: Vec<String>,
    numbers: Vec<u32>,
}

enum Cursor {
    Defaults,
    Section(String),
}

/// Parses one file as fail2ban's `SafeConfigParserWithIncludes` does.
pub fn parse(path: &Path, text: &str) -> Result<Sections, Vec<Finding>> {
    let place = Place::new(path, None);
    let mut sections = Sections::default();
    // Values are collected line by line and joined at the end, like `_join_multiline_values`.
    let mut pending: Vec<(Option<String>, String, Pending, u32)> = Vec::new();
    let mut cursor: Option<Cursor> = None;
    let mut section_name: Option<String> = None;
    let mut option_index: Option<usize> = None;
    let mut indent_level = 0usize;
    let mut added_sections: HashSet<String> = HashSet::new();
    let mut added_options: HashSet<(String, String)> = HashSet::new();
    let mut errors = Vec::new();

    for (index, line) in split_lines(text).enumerate() {
        let number = u32::try_from(index + 1).unwrap_or(u32::MAX);
        let comment_start = comment_start(line);
        let value = python_strip(&line[..comment_start.unwrap_or(line.len())]);
        if value.is_empty() {
            if comment_start.is_none()
                && cursor.is_some()
                && let Some(option) = option_index
            {
                pending[option].2.lines.push(String::new());
                pending[option].2.numbers.push(number);
            }
            continue;
        }
        let indent = line.chars().take_while(|c| is_python_space(*c)).count();
        if let (Some(_), Some(option), true) = (&cursor, option_index, indent > indent_level) {
            pending[option].2.lines.push(value.to_string());
            pending[option].2.numbers.push(number);
            continue;
        }
        indent_level = indent;
        if let Some(header) = section_header(value) {
            if header == "DEFAULT" && !sections.contains(header) {
                cursor = Some(Cursor::Defaults);
            } else {
                if added_sections.contains(header) {
                    errors.push(Finding::error(
                        &place.at(Some(number)),
                        format!("section {header:?} already exists"),
                    ));
                    return Err(errors);
                }
                added_sections.insert(header.to_string());
                sections.get_or_create(header);
                cursor = Some(Cursor::Section(header.to_string()));
            }
            section_name = Some(header.to_string());
            option_index = None;
            continue;
        }
        if cursor.is_none() {
            errors.push(Finding::error(
                &place.at(Some(number)),
                format!("file contains no section headers: {line:?}"),
            ));
            return Err(errors);
        }
        let Some((option, option_value)) = option_line(value) else {
            errors.push(Finding::error(
                &place.at(Some(number)),
                format!("source contains parsing errors: {line:?}"),
            ));
            continue;
        };
        if option.is_empty() {
            errors.push(Finding::error(
                &place.at(Some(number)),
                format!("option without a name: {line:?}"),
            ));
        }
        let option = option.to_lowercase();
        let key = (section_name.clone().unwrap_or_default(), option.clone());
        if added_options.contains(&key) {
            errors.push(Finding::error(
                &place.at(Some(number)),
                format!("option {option:?} in section {:?} already exists", key.0),
            ));
            return Err(errors);
        }
        added_options.insert(key);
        let target = match &cursor {
            Some(Cursor::Section(name)) => Some(name.clone()),
            _ => None,
        };
        let values = Pending {
            lines: vec![option_value.to_string()],
            numbers: vec![number],
        };
        let existing = pending
            .iter()
            .position(|(section, name, _, _)| *section == target && *name == option);
        match existing {
            Some(existing) => {
                pending[existing].2 = values;
                pending[existing].3 = number;
                option_index = if option.is_empty() {
                    None
                } else {
                    Some(existing)
                };
            }
            None => {
                pending.push((target, option.clone(), values, number));
                option_index = if option.is_empty() {
                    None
                } else {
                    Some(pending.len() - 1)
                };
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    for (section, name, values, number) in pending {
        let joined = values.lines.join("\n");
        let text = joined.trim_end_matches(is_python_space).to_string();
        let count = text.split('\n').count();
        let mut numbers = values.numbers;
        numbers.truncate(count);
        let value = Value {
            text,
            place: place.at(Some(number)),
            lines: numbers,
        };
        let target: &mut Section = match &section {
            Some(section) => sections.get_or_create(section),
            None => &mut sections.defaults,
        };
        target.insert(name, value);
    }
    Ok(sections)
}

/// Lines split as Python's universal newlines do (`\n`, `\r\n`, `\r`).
fn split_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = rest.find(['\n', '\r']).unwrap_or(rest.len());
        let line = &rest[..end];
        let skip = if rest[end..].starts_with("\r\n") {
            2
        } else if end < rest.len() {
            1
        } else {
            0
        };
        rest = &rest[end + skip..];
        Some(line)
    })
}

/// Where a comment starts: a whole-line `#`/`;` comment, or an inline `;` after whitespace.
fn comment_start(line: &str) -> Option<usize> {
    let stripped = python_strip(line);
    if stripped.starts_with('#') || stripped.starts_with(';') {
        return Some(0);
    }
    let mut previous: Option<char> = None;
    for (index, character) in line.char_indices() {
        if character == ';' && (index == 0 || previous.is_some_and(is_python_space)) {
            return Some(index);
        }
        previous = Some(character);
    }
    None
}

/// `\[(?P<header>.+)\]` matched at the start of the stripped line.
fn section_header(value: &str) -> Option<&str> {
    let rest = value.strip_prefix('[')?;
    let close = rest.rfind(']')?;
    (close > 0).then(|| &rest[..close])
}

/// `(?P<option>.*?)\s*(?P<vi>=|:)\s*(?P<value>.*)$`: the option name and value.
fn option_line(value: &str) -> Option<(&str, &str)> {
    let delimiter = value.find(['=', ':'])?;
    let option = value[..delimiter].trim_end_matches(is_python_space);
    let option_value = python_strip(&value[delimiter + 1..]);
    Some((option, option_value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> Result<Sections, Vec<Finding>> {
        parse(Path::new("/test.conf"), text)
    }

    #[test]
    fn reads_sections_multiline_values_and_comments() {
        let sections = parse_text(
            "# comment\n[DEFAULT]\na = 1 ; inline\n[Definition]\nfailregex = one\n            two;not-a-comment\n  # skipped\n\n            three\n\nb: x=y\n",
        )
        .unwrap();
        assert_eq!(sections.defaults.get("a").unwrap().text, "1");
        let definition = sections.get("Definition").unwrap();
        let failregex = definition.get("failregex").unwrap();
        assert_eq!(failregex.text, "one\ntwo;not-a-comment\n\nthree");
        assert_eq!(failregex.lines, vec![5, 6, 8, 9]);
        assert_eq!(definition.get("b").unwrap().text, "x=y");
    }

    #[test]
    fn refuses_duplicates_and_headerless_lines() {
        assert!(parse_text("a = 1\n").is_err());
        assert!(parse_text("[a]\nx=1\nx=2\n").is_err());
        assert!(parse_text("[a]\n[a]\n").is_err());
        let errors = parse_text("[a]\njunk line\nok = 1\nmore junk\n").unwrap_err();
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].line, Some(2));
    }

    #[test]
    fn keeps_option_case_insensitive_and_headers_greedy() {
        let sections = parse_text("[Init?family=inet6]\nBlockType = x\n[a] trailing]\n").unwrap();
        assert!(
            sections
                .get("Init?family=inet6")
                .unwrap()
                .contains("blocktype")
        );
        assert!(sections.contains("a] trailing"));
    }
}
