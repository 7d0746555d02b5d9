//! fail2ban's `Regex` and `FailRegex`: tag expansion (`<HOST>`, `<F-USER>`, `<SKIPLINES>`, …),
//! local flags, compilation, and the special groups a match is read through.
//!
//! Receives: a failregex, ignoreregex or prefregex after `<tag>` substitution.
//! Emits: a [`FilterRegex`] (PCRE2, JIT) that knows its failure-id, host, user, multi-line and
//! alternate/tuple groups by index.
//! Never: matches host names: nftjail runs with `usedns = no`, so `<HOST>` is `<ADDR>`.

use std::sync::LazyLock;

use crate::fail2ban::python_re::{CompileError, Flags, PythonRegex};

static TAG: LazyLock<PythonRegex> = LazyLock::new(|| PythonRegex::internal(r"</?[\w\-]+/?>"));
static CUSTOM_NAME: LazyLock<PythonRegex> =
    LazyLock::new(|| PythonRegex::internal(r"^(/?)F-([A-Z0-9_\-]+)$"));
static GLOBAL_TO_LOCAL_FLAGS: LazyLock<PythonRegex> =
    LazyLock::new(|| PythonRegex::internal(r"(?<!\\)\((?:\?:)?(\(\?[a-z]+)\)"));
static COMPLEX_NAME: LazyLock<PythonRegex> =
    LazyLock::new(|| PythonRegex::internal(r"^(alt_|tuple_)(.*?)(?:_\d+)?$"));

const IP4: &str = r"(?:::f{4,6}:)?(?P<ip4>(?:\d{1,3}\.){3}\d{1,3})";
const IP6: &str = r"(?P<ip6>(?:[0-9a-fA-F]{1,4}::?|::){1,7}(?:[0-9a-fA-F]{1,4}|(?<=:):))";
const DNS: &str = r"(?P<dns>[\w\-.^_]*\w)";
const CIDR: &str = r"(?P<cidr>\d+)";

fn addr() -> String {
    format!(r"\[?(?:{IP4}|{IP6})\]?")
}

fn subnet() -> String {
    format!(r"\[?(?:{IP4}|{IP6})(?:/{CIDR})?\]?")
}

/// What tag expansion saw, for the `usedns` notes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TagUse {
    /// `<HOST>` was used: fail2ban (usedns yes/warn) would also match host names here.
    pub host: bool,
    /// `<DNS>`/`<F-DNS/>` was used: this part only ever matches host names.
    pub dns: bool,
}

/// `Regex._resolveHostTag` with `useDns = "no"`.
pub fn resolve_host_tags(regex: &str) -> (String, TagUse) {
    let mut open: Vec<String> = Vec::new();
    let mut skip_lines = 0usize;
    let mut used = TagUse::default();
    let resolved = TAG.replace_with(regex, 0, |found| {
        let tag = found.group(0).unwrap_or_default();
        let name = &tag[1..tag.len() - 1];
        match name {
            "HOST" => {
                used.host = true;
                return addr();
            }
            "SKIPLINES" => {
                let number = skip_lines;
                skip_lines += 1;
                return format!(r"\n(?P<skiplines{number}>(?:(?:.*\n)*?))");
            }
            "IP4" | "F-IP4/" => return IP4.to_string(),
            "IP6" | "F-IP6/" => return IP6.to_string(),
            "ADDR" | "F-ADDR/" => return addr(),
            "CIDR" | "F-CIDR/" => return CIDR.to_string(),
            "SUBNET" | "F-SUBNET/" => return subnet(),
            "DNS" | "F-DNS/" => {
                used.dns = true;
                return DNS.to_string();
            }
            "F-ID/" => return r"(?P<fid>\S+)".to_string(),
            "F-PORT/" => return r"(?P<fport>\w+)".to_string(),
            _ => {}
        }
        if let Some(custom) = CUSTOM_NAME.search(name) {
            let closing = !custom.group(1).unwrap_or_default().is_empty();
            let custom_name = custom.group(2).unwrap_or_default();
            if closing {
                return if open.iter().any(|opened| opened == custom_name) {
                    ")".to_string()
                } else {
                    tag.to_string()
                };
            }
            open.push(custom_name.to_string());
            return format!("(?P<{}>", map_tag_to_option(custom_name));
        }
        tag.to_string()
    });
    (resolved, used)
}

/// `mapTag2Opt`: lowercased, `id` → `fid`, `port` → `fport`.
fn map_tag_to_option(tag: &str) -> String {
    let lower = tag.to_lowercase();
    match lower.as_str() {
        "id" => "fid".to_string(),
        "port" => "fport".to_string(),
        _ => lower,
    }
}

/// Indexes of the groups fail2ban reads by name.
#[derive(Debug, Clone, Default)]
pub struct SpecialGroups {
    pub fid: Option<usize>,
    pub ip4: Option<usize>,
    pub ip6: Option<usize>,
    pub dns: Option<usize>,
    pub cidr: Option<usize>,
    pub mlfid: Option<usize>,
    pub content: Option<usize>,
    pub skip_lines: Vec<usize>,
}

/// A compiled fail2ban regular expression.
#[derive(Debug, Clone)]
pub struct FilterRegex {
    /// The expression as fail2ban holds it after tag expansion (`getRegex()`).
    pub expanded: String,
    pub regex: PythonRegex,
    pub groups: SpecialGroups,
    /// `(group, target)` for `F-ALT_*` groups, sorted by group name.
    pub alternates: Vec<(usize, String)>,
    /// `(group, target)` for `F-TUPLE_*` groups, sorted by group name.
    pub tuples: Vec<(usize, String)>,
    /// Every named group with its index, in index order.
    pub names: Vec<(String, usize)>,
    pub tags: TagUse,
    /// By group index: whether a match's text of that group is ever read (named, alternate and
    /// tuple groups). The others are not copied out of a match.
    pub wanted: Vec<bool>,
}

/// Why a regex was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegexError {
    Empty,
    Compile {
        expanded: String,
        error: CompileError,
    },
    NoFailureId {
        expanded: String,
    },
}

impl std::fmt::Display for RegexError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegexError::Empty => formatter.write_str("cannot add empty regex"),
            RegexError::Compile { expanded, error } => {
                write!(
                    formatter,
                    "unable to compile regular expression {expanded:?}: {error}"
                )
            }
            RegexError::NoFailureId { expanded } => {
                write!(formatter, "no failure-id group in {expanded:?}")
            }
        }
    }
}

impl FilterRegex {
    /// `Regex(value, multiline)`.
    pub fn new(regex: &str, multi_line: bool) -> Result<Self, RegexError> {
        let (expanded, tags) = resolve_host_tags(regex);
        if expanded.trim_start().is_empty() {
            return Err(RegexError::Empty);
        }
        let expanded = GLOBAL_TO_LOCAL_FLAGS.replace_with(&expanded, 0, |found| {
            format!("{}:", found.group(1).unwrap_or_default())
        });
        let compiled = PythonRegex::new(
            &expanded,
            Flags {
                multi_line,
                ..Flags::default()
            },
        )
        .map_err(|error| RegexError::Compile {
            expanded: expanded.clone(),
            error,
        })?;
        let mut names: Vec<(String, usize)> = compiled
            .group_names()
            .map(|(name, index)| (name.to_string(), index))
            .collect();
        names.sort_by_key(|(_, index)| *index);
        let mut alternates = Vec::new();
        let mut tuples = Vec::new();
        let mut sorted = names.clone();
        sorted.sort();
        for (name, index) in &sorted {
            if name.len() <= 4 {
                continue;
            }
            if let Some(found) = COMPLEX_NAME.search(name) {
                let target = map_tag_to_option(found.group(2).unwrap_or_default());
                if found.group(1) == Some("alt_") {
                    alternates.push((*index, target));
                } else {
                    tuples.push((*index, target));
                }
            }
        }
        let mut skip_lines = Vec::new();
        while let Some(index) = compiled.group_index(&format!("skiplines{}", skip_lines.len())) {
            skip_lines.push(index);
        }
        let groups = SpecialGroups {
            fid: compiled.group_index("fid"),
            ip4: compiled.group_index("ip4"),
            ip6: compiled.group_index("ip6"),
            dns: compiled.group_index("dns"),
            cidr: compiled.group_index("cidr"),
            mlfid: compiled.group_index("mlfid"),
            content: compiled.group_index("content"),
            skip_lines,
        };
        let mut wanted = vec![false; compiled.group_count()];
        for index in names
            .iter()
            .map(|(_, index)| *index)
            .chain(alternates.iter().map(|(index, _)| *index))
            .chain(tuples.iter().map(|(index, _)| *index))
        {
            if let Some(slot) = wanted.get_mut(index) {
                *slot = true;
            }
        }
        Ok(FilterRegex {
            expanded,
            regex: compiled,
            groups,
            alternates,
            tuples,
            names,
            tags,
            wanted,
        })
    }

    /// Whether it has a group fail2ban accepts as failure id (`fid ip4 ip6 dns mlfid`).
    pub fn has_failure_id(&self) -> bool {
        let groups = &self.groups;
        groups.fid.is_some()
            || groups.ip4.is_some()
            || groups.ip6.is_some()
            || groups.dns.is_some()
            || groups.mlfid.is_some()
    }

    /// `FailRegex(value, prefRegex, multiline)`: also requires a failure id here or in the prefix.
    pub fn new_failure(
        regex: &str,
        prefix: Option<&FilterRegex>,
        multi_line: bool,
    ) -> Result<Self, RegexError> {
        let compiled = FilterRegex::new(regex, multi_line)?;
        if !compiled.has_failure_id() && !prefix.is_some_and(FilterRegex::has_failure_id) {
            return Err(RegexError::NoFailureId {
                expanded: compiled.expanded,
            });
        }
        Ok(compiled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_tags_like_fail2ban() {
        let (expanded, used) =
            resolve_host_tags("^<F-USER>.*</F-USER> from <HOST> <F-FOO>x</F-BAR> <unknown>");
        assert!(expanded.starts_with("^(?P<user>.*) from "));
        assert!(expanded.ends_with(" (?P<foo>x</F-BAR> <unknown>"));
        assert!(used.host && !used.dns);
        let (expanded, _) = resolve_host_tags("a<SKIPLINES>b<SKIPLINES>");
        assert!(expanded.contains("skiplines0") && expanded.contains("skiplines1"));
    }

    #[test]
    fn compiles_and_finds_groups() {
        let regex =
            FilterRegex::new_failure("^x <F-ALT_USER1>\\S+</F-ALT_USER1> <HOST>$", None, false)
                .unwrap();
        assert!(regex.groups.ip4.is_some());
        assert_eq!(regex.alternates, vec![(1, "user1".to_string())]);
        assert!(matches!(
            FilterRegex::new_failure("^nothing$", None, false),
            Err(RegexError::NoFailureId { .. })
        ));
        assert!(matches!(
            FilterRegex::new("  ", false),
            Err(RegexError::Empty)
        ));
        let local = FilterRegex::new("^a((?i)b)c <HOST>", false).unwrap();
        assert!(local.expanded.contains("(?i:b)"));
        assert!(local.regex.search("aBc 192.0.2.1").is_some());
    }
}
