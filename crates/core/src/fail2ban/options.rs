//! fail2ban's option syntax: `name[key=value, key="a,b"][more=…]` and word lists.
//!
//! Receives: a filter or action reference as written in a jail or on the command line.
//! Emits: a [`FilterSpec`] (name or path plus ordered options), split action lists, words.
//! Never: accepts what `extractOptions` rejects (text after a value, a missing `=`).

use std::fmt;
use std::sync::LazyLock;

use crate::fail2ban::python_re::{Flags, PythonRegex};

static OPTION: LazyLock<PythonRegex> = LazyLock::new(|| {
    PythonRegex::new(
        r"^([^\[]+)(?:\[(.*)\])?\s*$",
        Flags {
            dot_all: true,
            ..Flags::default()
        },
    )
    .expect("invariant: option expression compiles")
});
static OPTION_EXTRACT: LazyLock<PythonRegex> = LazyLock::new(|| {
    PythonRegex::new(
        r#"\s*([\w\-_\.]+)=(?:"([^"]*)"|'([^']*)'|([^,\]]*))(?:,|\]\s*\[|$|(?P<wrngA>.+))|,?\s*$|(?P<wrngB>.+)"#,
        Flags {
            dot_all: true,
            ..Flags::default()
        },
    )
    .expect("invariant: option expression compiles")
});
static OPTION_SPLIT: LazyLock<PythonRegex> = LazyLock::new(|| {
    PythonRegex::new(
        r#"(?:[^\[\s]+(?:\s*\[\s*(?:[\w\-_\.]+=(?:"[^"]*"|'[^']*'|[^,\]]*)\s*(?:,|\]\s*\[)?\s*)*\])?\s*|\S+)(?=\n\s*|\s+|$)"#,
        Flags {
            dot_all: true,
            ..Flags::default()
        },
    )
    .expect("invariant: option expression compiles")
});
static WORD_SEPARATORS: LazyLock<PythonRegex> = LazyLock::new(|| PythonRegex::internal(r"[ ,\n]+"));

/// A filter (or action) reference with its options, in the order written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterSpec {
    /// The name (`sshd`) or path (`/etc/fail2ban/filter.d/sshd.conf`) before `[`.
    pub name: String,
    pub options: Vec<(String, String)>,
}

/// Why an option string does not parse (fail2ban's own messages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct OptionSyntaxError(pub String);

impl FilterSpec {
    /// `extractOptions`: parses `name[k=v, k2="v,2"]`.
    pub fn parse(text: &str) -> Result<Self, OptionSyntaxError> {
        let found = OPTION
            .search(text)
            .ok_or_else(|| OptionSyntaxError("unexpected option syntax".into()))?;
        let name = found.group(1).unwrap_or_default().to_string();
        let mut options: Vec<(String, String)> = Vec::new();
        if let Some(list) = found.group(2).filter(|list| !list.is_empty()) {
            for option in OPTION_EXTRACT.find_iter(list) {
                if let Some(wrong) = option.name("wrngA") {
                    return Err(OptionSyntaxError(format!(
                        "unexpected syntax after option {:?}: {}",
                        option.group(1).unwrap_or_default(),
                        wrong.chars().take(25).collect::<String>()
                    )));
                }
                if let Some(wrong) = option.name("wrngB") {
                    return Err(OptionSyntaxError(format!(
                        "expected option, wrong syntax: {}",
                        wrong.chars().take(25).collect::<String>()
                    )));
                }
                let Some(key) = option.group(1).filter(|key| !key.is_empty()) else {
                    continue;
                };
                let value = option
                    .group(2)
                    .or_else(|| option.group(3))
                    .or_else(|| option.group(4))
                    .unwrap_or_default();
                let key = key.trim().to_string();
                let value = value.trim().to_string();
                match options.iter_mut().find(|(existing, _)| *existing == key) {
                    Some(entry) => entry.1 = value,
                    None => options.push((key, value)),
                }
            }
        }
        Ok(FilterSpec { name, options })
    }

    /// The value of option `key`.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(existing, _)| existing == key)
            .map(|(_, value)| value.as_str())
    }
}

impl fmt::Display for FilterSpec {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.name)?;
        if !self.options.is_empty() {
            let list: Vec<String> = self
                .options
                .iter()
                .map(|(key, value)| format!("{key}=\"{value}\""))
                .collect();
            write!(formatter, "[{}]", list.join(", "))?;
        }
        Ok(())
    }
}

/// `splitWithOptions`: splits an `action = …` list (one reference per word or line).
pub fn split_with_options(text: &str) -> Vec<String> {
    OPTION_SPLIT
        .find_iter(text)
        .into_iter()
        .map(|found| found.group(0).unwrap_or_default().to_string())
        .collect()
}

/// `splitwords`: splits on commas, spaces and newlines, dropping empty words.
pub fn split_words(text: &str) -> Vec<String> {
    if text.is_empty() {
        return Vec::new();
    }
    let mut words = Vec::new();
    let mut start = 0;
    for separator in WORD_SEPARATORS.find_iter(text) {
        words.push(&text[start..separator.start()]);
        start = separator.end();
    }
    words.push(&text[start..]);
    words
        .into_iter()
        .map(str::trim)
        .filter(|word| !word.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fail2ban_option_syntax() {
        let spec = FilterSpec::parse(r#"sshd[mode=aggressive, port="a,b", x='y]z']"#).unwrap();
        assert_eq!(spec.name, "sshd");
        assert_eq!(spec.option("mode"), Some("aggressive"));
        assert_eq!(spec.option("port"), Some("a,b"));
        assert_eq!(spec.option("x"), Some("y]z"));
        let spec = FilterSpec::parse("/etc/fail2ban/filter.d/sshd.conf").unwrap();
        assert!(spec.options.is_empty());
        let spec = FilterSpec::parse("postfix[mode=extra][x=1]").unwrap();
        assert_eq!(spec.options.len(), 2);
    }

    #[test]
    fn refuses_broken_options() {
        assert!(FilterSpec::parse("sshd[mode]").is_err());
        assert!(FilterSpec::parse(r#"sshd[mode="a"b]"#).is_err());
    }

    #[test]
    fn splits_actions_and_words() {
        let actions = split_with_options("%(action_)s\n  sendmail[name=x, dest=\"a b\"]");
        assert_eq!(
            actions,
            vec!["%(action_)s\n ", "sendmail[name=x, dest=\"a b\"]"]
        );
        assert_eq!(
            split_words("127.0.0.1/8 ::1,  10.0.0.1\n"),
            vec!["127.0.0.1/8", "::1", "10.0.0.1"]
        );
    }
}
