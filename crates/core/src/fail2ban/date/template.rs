//! fail2ban's date templates (`datetemplate.py`): `%`-patterns, `EPOCH`, `LEPOCH`, `TAI64N`,
//! `{^LN-BEG}`, `{UNB}`, `**` boundaries, and the default template list.
//!
//! Receives: a `datepattern` line (or a default template) and the year window.
//! Emits: a [`DateTemplate`]: its name (fail2ban's, for de-duplication), regex, flags, weight,
//! and how to turn a match into a time.
//! Never: decides which template wins for a line (that is the detector).

use std::sync::{Arc, LazyLock};

use super::strptime::{FIELD_KEYS, SINGLE_FIELD_KEYS, field_name, field_regex};
use crate::fail2ban::python_re::{CompileError, Flags, PythonRegex};

pub const LINE_BEGIN: u8 = 8;
pub const LINE_END: u8 = 4;
pub const WORD_BEGIN: u8 = 2;
pub const WORD_END: u8 = 1;

static RE_GROUPED: LazyLock<PythonRegex> =
    LazyLock::new(|| PythonRegex::internal(r"(?<!(?:\(\?))(?<!\\)\((?!\?)"));
static RE_GROUP: LazyLock<PythonRegex> =
    LazyLock::new(|| PythonRegex::internal(r"^((?:\(\?\w+\))?\^?(?:\(\?\w+\))?)(.*?)(\$?)$"));
static RE_GLOBAL_FLAGS: LazyLock<PythonRegex> =
    LazyLock::new(|| PythonRegex::internal(r"((?:^|(?!<\\))\(\?[a-z]+\))"));
static RE_NO_BOUNDS: LazyLock<PythonRegex> = LazyLock::new(|| PythonRegex::internal(r"^\{UNB\}"));
static RE_LINE_BEGIN_MARK: LazyLock<PythonRegex> =
    LazyLock::new(|| PythonRegex::internal(r"^\{\^LN-BEG\}"));
static RE_START_ANCHOR: LazyLock<PythonRegex> =
    LazyLock::new(|| PythonRegex::internal(r"^\((?:\?:)?\^\|\\b\|\\W\)"));
static RE_END_ANCHOR: LazyLock<PythonRegex> =
    LazyLock::new(|| PythonRegex::internal(r"\(\?=\\b\|\\W\|\$\)$"));
static RE_NO_WORD_BOUND_BEGIN: LazyLock<PythonRegex> =
    LazyLock::new(|| PythonRegex::internal(r"^\(*(?:\(\?\w+\))?(?:\^|\(*\*\*|\((?:\?:)?\^)"));
static RE_NO_WORD_BOUND_END: LazyLock<PythonRegex> =
    LazyLock::new(|| PythonRegex::internal(r"(?<!\\)(?:\$\)?|\\b|\\s|\*\*\)*)$"));
static RE_DELETE_WORD_BOUNDS: LazyLock<PythonRegex> =
    LazyLock::new(|| PythonRegex::internal(r"^\(*(?:\(\?\w+\))?\(*\*\*|(?<!\\)\*\*\)*$"));
static RE_LINE_BOUND_BEGIN: LazyLock<PythonRegex> =
    LazyLock::new(|| PythonRegex::internal(r"^(?:\(\?\w+\))?(?:\^|\((?:\?:)?\^(?!\|))"));
static RE_LINE_BOUND_END: LazyLock<PythonRegex> =
    LazyLock::new(|| PythonRegex::internal(r"(?<![\\\|])(?:\$\)?)$"));
static RE_ALPHA_PATTERN: LazyLock<PythonRegex> =
    LazyLock::new(|| PythonRegex::internal(r"(?<!\%)\%[aAbBpc]"));
pub(crate) static RE_EPOCH_PATTERN: LazyLock<PythonRegex> = LazyLock::new(|| {
    PythonRegex::new(
        r"(?<!\\)\{L?EPOCH\}",
        Flags {
            ignore_case: true,
            ..Flags::default()
        },
    )
    .expect("invariant: compiles")
});

/// How a match becomes a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateKind {
    /// strptime fields from named groups.
    Pattern,
    /// Seconds (or milli/microseconds for the long form) since the epoch in group `group`.
    Epoch { long: bool, group: usize },
    /// `@4000…` TAI64N label.
    Tai64n,
}

/// One date template.
#[derive(Debug, Clone)]
pub struct DateTemplate {
    pub name: String,
    pub regex: PythonRegex,
    pub flags: u8,
    pub weight: f64,
    pub kind: TemplateKind,
    /// The `%`-pattern it was built from (absent for EPOCH/TAI64N defaults).
    pub pattern: Option<String>,
}

/// Word-begin setting of `setRegex`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Begin {
    No,
    Word,
    LineStart,
}

/// Why a date pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error(
        "failed to set datepattern {pattern:?} (may be an invalid format or unescaped percent char)"
    )]
    Format { pattern: String },
    #[error("date template {name:?} does not compile: {error}")]
    Compile { name: String, error: CompileError },
}

/// `DateTemplate.setRegex`: boundaries, grouping, flags; returns (regex, flags, name).
fn set_regex(regex: &str, begin: Begin, word_end: bool, name: &mut String) -> (String, u8) {
    let mut regex = regex.trim().to_string();
    let global = RE_GLOBAL_FLAGS
        .search(&regex)
        .map(|found| found.group(1).unwrap_or_default().to_string());
    if global.is_some() {
        regex = RE_GLOBAL_FLAGS.replace_with(&regex, 1, |_| String::new());
    }
    let bound_begin = begin != Begin::No && !RE_NO_WORD_BOUND_BEGIN.is_match(&regex);
    let bound_end = word_end && !RE_NO_WORD_BOUND_END.is_match(&regex);
    if !RE_GROUPED.is_match(&regex) {
        regex = RE_GROUP.replace_with(&regex, 0, |found| {
            format!(
                "{}({}){}",
                found.group(1).unwrap_or_default(),
                found.group(2).unwrap_or_default(),
                found.group(3).unwrap_or_default()
            )
        });
    }
    let mut flags = 0;
    if bound_begin {
        if begin == Begin::LineStart {
            flags |= LINE_BEGIN;
            regex = format!(r"^(?:\W{{0,2}})?{regex}");
            if !name.starts_with("{^LN-BEG}") {
                *name = format!("{{^LN-BEG}}{name}");
            }
        } else {
            flags |= WORD_BEGIN;
            regex = format!(r"(?=^|\b|\W){regex}");
        }
    }
    if bound_end {
        flags |= WORD_END;
        regex.push_str(r"(?=\b|\W|$)");
    }
    if flags & LINE_BEGIN == 0 && RE_LINE_BOUND_BEGIN.is_match(&regex) {
        flags |= LINE_BEGIN;
    }
    if flags & LINE_END == 0 && RE_LINE_BOUND_END.is_match(&regex) {
        flags |= LINE_END;
    }
    regex = RE_DELETE_WORD_BOUNDS.replace_with(&regex, 0, |found| {
        found.group(0).unwrap_or_default().replace("**", "")
    });
    if let Some(global) = global {
        regex = format!("{global}{regex}");
    }
    (regex, flags)
}

fn compile(name: &str, regex: &str) -> Result<PythonRegex, TemplateError> {
    PythonRegex::new(regex, Flags::default()).map_err(|error| TemplateError::Compile {
        name: name.to_string(),
        error,
    })
}

/// Replaces `%X` fields: returns (name, regex) or `None` for an unknown field.
fn expand_fields(pattern: &str, year_window: &str) -> Option<(String, String)> {
    let mut name = String::new();
    let mut regex = String::new();
    let mut rest = pattern;
    while let Some(percent) = rest.find('%') {
        name.push_str(&rest[..percent]);
        regex.push_str(&rest[..percent]);
        let after = &rest[percent + 1..];
        let key = FIELD_KEYS
            .iter()
            .find(|key| after.starts_with(**key))
            .map(|key| key.to_string())
            .or_else(|| {
                after
                    .chars()
                    .next()
                    .filter(|c| SINGLE_FIELD_KEYS.contains(*c))
                    .map(|c| c.to_string())
            })?;
        name.push_str(&field_name(&key));
        regex.push_str(&field_regex(&key, year_window)?);
        rest = &after[key.len()..];
    }
    name.push_str(rest);
    regex.push_str(rest);
    Some((name, regex))
}

impl DateTemplate {
    /// `DatePatternRegex(pattern)`.
    pub fn from_pattern(pattern: &str, year_window: &str) -> Result<Self, TemplateError> {
        let mut begin = Begin::Word;
        let mut word_end = true;
        let mut text = pattern.to_string();
        if RE_NO_BOUNDS.is_match(&text) {
            text = RE_NO_BOUNDS.replace_with(&text, 0, |_| String::new());
            begin = Begin::No;
            word_end = false;
        }
        if begin != Begin::No && RE_LINE_BEGIN_MARK.is_match(&text) {
            text = RE_LINE_BEGIN_MARK.replace_with(&text, 0, |_| String::new());
            begin = Begin::LineStart;
        }
        let (mut name, mut regex) =
            expand_fields(&text, year_window).ok_or_else(|| TemplateError::Format {
                pattern: pattern.to_string(),
            })?;
        if RE_ALPHA_PATTERN.is_match(&text) {
            regex = format!("(?iu){regex}");
        }
        let (regex, flags) = set_regex(&regex, begin, word_end, &mut name);
        Ok(DateTemplate {
            regex: compile(&name, &regex)?,
            name,
            flags,
            weight: 1.0,
            kind: TemplateKind::Pattern,
            pattern: Some(pattern.to_string()),
        })
    }

    /// `DateEpoch(lineBeginOnly, pattern, longFrm)`.
    pub fn epoch(
        line_begin_only: bool,
        pattern: Option<&str>,
        long: bool,
    ) -> Result<Self, TemplateError> {
        let epoch = if long {
            r"\d{10,11}(?:\d{3}(?:\.\d{1,6}|\d{3})?)?"
        } else {
            r"\d{10,11}\b(?:\.\d{3,6})?"
        };
        let mut name = match (pattern, long) {
            (Some(pattern), _) => pattern.to_string(),
            (None, true) => "LongEpoch".to_string(),
            (None, false) => "Epoch".to_string(),
        };
        let (regex, flags, group) = if let Some(pattern) = pattern {
            let inner = RE_EPOCH_PATTERN.replace_with(pattern, 0, |_| format!("({epoch})"));
            let (regex, flags) = set_regex(&format!("({inner})"), Begin::Word, true, &mut name);
            (regex, flags, 2)
        } else if !line_begin_only {
            let regex = r"((?:^|(?P<square>(?<=^\[))|(?P<selinux>(?<=\baudit\()))%s)(?:(?(selinux)(?=:\d+\)))|(?(square)(?=\])))".to_string()
            .replace("%s", epoch);
            let (regex, flags) = set_regex(&regex, Begin::No, true, &mut name);
            (regex, flags, 1)
        } else {
            let regex = r"((?P<square>(?<=^\[))?%s)(?(square)(?=\]))"
                .to_string()
                .replace("%s", epoch);
            let (regex, flags) = set_regex(&regex, Begin::LineStart, true, &mut name);
            (regex, flags, 1)
        };
        Ok(DateTemplate {
            regex: compile(&name, &regex)?,
            name,
            flags,
            weight: 1.0,
            kind: TemplateKind::Epoch { long, group },
            pattern: None,
        })
    }

    /// `DateTai64n(wordBegin)`.
    pub fn tai64n(line_start: bool) -> Result<Self, TemplateError> {
        let mut name = "TAI64N".to_string();
        let begin = if line_start {
            Begin::LineStart
        } else {
            Begin::No
        };
        let (regex, flags) = set_regex("@[0-9a-f]{24}", begin, true, &mut name);
        Ok(DateTemplate {
            regex: compile(&name, &regex)?,
            name,
            flags,
            weight: 1.0,
            kind: TemplateKind::Tai64n,
            pattern: None,
        })
    }

    /// `_getPatternTemplate(pattern, key)`.
    pub fn from_key(pattern: &str, key: &str, year_window: &str) -> Result<Self, TemplateError> {
        if key.contains("EPOCH") {
            if RE_EPOCH_PATTERN.is_match(pattern) {
                return DateTemplate::epoch(false, Some(pattern), key.contains("LEPOCH"));
            }
            match key {
                "EPOCH" | "{^LN-BEG}EPOCH" | "^EPOCH" => {
                    return DateTemplate::epoch(key != "EPOCH", None, false);
                }
                "LEPOCH" | "{^LN-BEG}LEPOCH" | "^LEPOCH" => {
                    return DateTemplate::epoch(key != "LEPOCH", None, true);
                }
                _ => {}
            }
        }
        match key {
            "TAI64N" | "{^LN-BEG}TAI64N" | "^TAI64N" => DateTemplate::tai64n(key != "TAI64N"),
            _ => DateTemplate::from_pattern(pattern, year_window),
        }
    }
}

/// `DateTemplate.unboundPattern`.
pub fn unbound_pattern(pattern: &str) -> String {
    let text = RE_NO_BOUNDS.replace_with(pattern, 0, |_| String::new());
    let text = RE_LINE_BEGIN_MARK.replace_with(&text, 0, |_| String::new());
    let text = RE_START_ANCHOR.replace_with(&text, 0, |_| String::new());
    RE_END_ANCHOR.replace_with(&text, 0, |_| String::new())
}

/// The key fail2ban caches a pattern under (upper case when it has no `%`).
pub fn pattern_key(pattern: &str) -> String {
    if pattern.contains('%') {
        pattern.to_string()
    } else {
        pattern.to_uppercase()
    }
}

const DEFAULT_PATTERNS: [&str; 18] = [
    r"%ExY(?P<_sep>[-/.])%m(?P=_sep)%d(?:T|  ?)%H:%M:%S(?:[.,]%f)?(?:\s*%z)?",
    r"(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?",
    r"(?:%a )?%b %d %ExY %k:%M:%S(?:\.%f)?",
    r"%d(?P<_sep>[-/])%m(?P=_sep)(?:%ExY|%Exy) %k:%M:%S",
    r"%d(?P<_sep>[-/])%b(?P=_sep)%ExY[ :]?%H:%M:%S(?:\.%f)?(?: %z)?",
    r"%m/%d/%ExY:%H:%M:%S",
    r"%m-%d-%ExY %k:%M:%S(?:\.%f)?",
    r"EPOCH",
    r"{^LN-BEG}%H:%M:%S",
    r"^<%m/%d/%Exy@%H:%M:%S>",
    r"%Exy%Exm%Exd  ?%H:%M:%S",
    r"%b %d, %ExY %I:%M:%S %p",
    r"^%b-%d-%Exy %k:%M:%S",
    r"%ExY%Exm%Exd(?:T|  ?)%ExH%ExM%ExS(?:[.,]%f)?(?:\s*%z)?",
    r"(?:%Z )?(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?",
    r"(?:%z )?(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?",
    r"TAI64N",
    r"",
];

/// fail2ban's default templates (`DateDetectorCache.defaultTemplates`).
pub fn default_templates(year_window: &str) -> Vec<Arc<DateTemplate>> {
    DEFAULT_PATTERNS
        .iter()
        .filter(|pattern| !pattern.is_empty())
        .map(|pattern| {
            Arc::new(
                DateTemplate::from_key(pattern, &pattern_key(pattern), year_window)
                    .expect("invariant: default date templates compile"),
            )
        })
        .collect()
}

/// `_getAnchoredTemplate(template, wrap)`.
pub fn anchored(
    template: &DateTemplate,
    wrap: &dyn Fn(&str) -> String,
    year_window: &str,
) -> Result<DateTemplate, TemplateError> {
    let name = wrap(&template.name);
    match &template.pattern {
        Some(pattern) => {
            let regex = wrap(pattern);
            DateTemplate::from_key(&regex, &pattern_key(&regex), year_window)
        }
        None => DateTemplate::from_key(&name, &pattern_key(&name), year_window),
    }
}

/// `DateDetectorCache.templates`: line-anchored copies (weight 100) first, then the defaults.
pub fn cached_default_templates(year_window: &str) -> Vec<Arc<DateTemplate>> {
    let defaults = default_templates(year_window);
    let mut anchored_copies = Vec::new();
    for template in &defaults {
        let name = &template.name;
        if name.starts_with("{^LN-BEG}") || name.starts_with('^') {
            continue;
        }
        let copy = anchored(template, &|text| format!("{{^LN-BEG}}{text}"), year_window)
            .expect("invariant: anchored default templates compile");
        if copy.name != *name {
            let mut copy = copy;
            copy.weight = 100.0;
            anchored_copies.push(Arc::new(copy));
        }
    }
    anchored_copies.extend(defaults);
    anchored_copies
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_fail2ban_names_and_regexes() {
        let window = "(?:200|201|202)";
        let template =
            DateTemplate::from_pattern("{^LN-BEG}%ExY-%Exm-%Exd %ExH:%ExM:%ExS", window).unwrap();
        assert_eq!(
            template.name,
            "{^LN-BEG}ExYear-ExMonth-ExDay Ex24hour:ExMinute:ExSecond"
        );
        assert_eq!(template.flags & LINE_BEGIN, LINE_BEGIN);
        assert!(template.regex.search("2005-01-23 21:59:59 x").is_some());
        let syslog =
            DateTemplate::from_pattern(r"(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?", window)
                .unwrap();
        let found = syslog.regex.search("host Jan 23 21:59:59 sshd").unwrap();
        assert_eq!(found.group(1), Some("Jan 23 21:59:59"));
        let cached = cached_default_templates(window);
        assert_eq!(cached.len(), 31);
        assert!(DateTemplate::from_pattern("%Q", window).is_err());
    }

    #[test]
    fn epoch_and_tai64n() {
        let epoch = DateTemplate::epoch(false, None, false).unwrap();
        assert_eq!(
            epoch.regex.search("[1124013600] x").unwrap().group(1),
            Some("1124013600")
        );
        let tai = DateTemplate::tai64n(false).unwrap();
        assert!(tai.regex.search("@4000000042c7b8d40c26b38c x").is_some());
    }
}
