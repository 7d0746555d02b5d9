//! Compiling one mode of a filter: regexes, `<HOST>` groups, daemon patterns and the keyword
//! prefilter.
//!
//! Receives a checked [`FilterSpec`] and the jail's [`FilterOptions`]; emits an immutable
//! [`Filter`] or every problem as a diagnostic located at the offending regex (each regex also
//! gets its [`Gate`], see `prefilter.rs`). Regexes are compiled in ASCII mode (`\d`, `\w`, `\s`, `\S` and
//! `.` work on bytes, `(?i)` folds ASCII only; `(?u:…)` brings Unicode classes back): Unicode
//! classes multiply the automata's states and made capture extraction several times slower.
//! It never sees a log line.

use std::path::Path;

use regex::bytes::{Regex, RegexBuilder};
use toml::Spanned;

use super::datepattern::DatePattern;
use super::host::{self, HostRule};
use super::locate::Locator;
use super::prefilter::{Gate, Prefilter};
use super::spec::FilterSpec;
use super::{Filter, FilterOptions};
use crate::diag::{Diagnostic, Diagnostics};

/// What a matching regex means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    Ignore,
    Fail,
    SessionFail,
    Session,
    Success,
}

impl RuleKind {
    fn key(self) -> &'static str {
        match self {
            RuleKind::Ignore => "ignoreregex",
            RuleKind::Fail => "failregex",
            RuleKind::SessionFail => "sessionfailregex",
            RuleKind::Session => "sessionregex",
            RuleKind::Success => "successregex",
        }
    }

    fn host_rule(self) -> HostRule {
        match self {
            RuleKind::Ignore => HostRule::Optional,
            RuleKind::Fail | RuleKind::Session | RuleKind::Success => HostRule::Required,
            RuleKind::SessionFail => HostRule::Forbidden,
        }
    }
}

/// One compiled regex of a mode.
#[derive(Debug, Clone)]
pub struct Rule {
    pub kind: RuleKind,
    pub regex: Regex,
    pub host: Option<usize>,
    pub user: Option<usize>,
    /// A group named `echo` that must repeat the `user` group exactly (a log that writes the
    /// client's user name twice): the regex matches only when both agree.
    pub echo: Option<usize>,
    /// A session rule from `sessionendregex`: the session is forgotten after the line.
    pub ends_session: bool,
    /// The groups' spans without the backtracker, when the regex's shape allows it: made
    /// at the rule's first match ([`Rule::locator`]), so rules that never match (most of a
    /// filter's, on most hosts) cost neither the time nor the memory of their pieces.
    locator: std::sync::OnceLock<Option<Locator>>,
}

impl Rule {
    /// The rule's [`Locator`], made on first use; `None` when the regex cannot be split.
    pub fn locator(&self) -> Option<&Locator> {
        self.locator
            .get_or_init(|| Locator::new(self.regex.as_str()))
            .as_ref()
    }
}

/// A syslog tag the filter accepts: a name, or a pattern where `*` matches any run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaemonPattern {
    Exact(String),
    Glob(Vec<String>),
}

impl DaemonPattern {
    pub fn new(text: &str) -> DaemonPattern {
        if text.contains('*') {
            DaemonPattern::Glob(text.split('*').map(str::to_string).collect())
        } else {
            DaemonPattern::Exact(text.to_string())
        }
    }

    pub fn matches(&self, tag: &str) -> bool {
        match self {
            DaemonPattern::Exact(name) => name == tag,
            DaemonPattern::Glob(parts) => {
                let (first, rest) = parts.split_first().expect("invariant: split yields a part");
                let Some(mut tail) = tag.strip_prefix(first.as_str()) else {
                    return false;
                };
                let (last, middle) = rest.split_last().expect("invariant: a glob has a `*`");
                for part in middle {
                    match tail.find(part.as_str()) {
                        Some(i) => tail = &tail[i + part.len()..],
                        None => return false,
                    }
                }
                tail.len() >= last.len() && tail.ends_with(last.as_str())
            }
        }
    }
}

/// Compiles the mode `options.mode` (or the default) of `spec`, read from `path`/`source`.
pub fn compile(
    name: &str,
    path: &Path,
    source: &str,
    spec: &FilterSpec,
    options: &FilterOptions,
) -> Result<Filter, Diagnostics> {
    let mut diags = Diagnostics::default();
    let mode = options
        .mode
        .as_deref()
        .unwrap_or_else(|| spec.default_mode());
    let Some(lists) = spec.lists(mode) else {
        let known = spec.mode_names().collect::<Vec<_>>().join(", ");
        return Err(Diagnostic::file(
            path,
            format!("mode {mode:?} is not a mode of filter {name:?} (modes: {known})"),
        )
        .into());
    };
    let prefix = spec.prefix_kind().map_err(|m| Diagnostic::file(path, m))?;
    let datepattern: Option<DatePattern> = match (&options.datepattern, &spec.datepattern) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(text)) => Some(
            text.get_ref()
                .parse()
                .map_err(|m: String| Diagnostic::at(path, source, text.span().start, m))?,
        ),
        (None, None) => None,
    };
    let mut rules = Vec::new();
    let mut gates = Vec::new();
    let groups = [
        (RuleKind::Ignore, &lists.ignoreregex),
        (RuleKind::Fail, &lists.failregex),
        (RuleKind::SessionFail, &lists.sessionfailregex),
        (RuleKind::Session, &lists.sessionregex),
        (RuleKind::Session, &lists.sessionendregex),
        (RuleKind::Success, &lists.successregex),
    ];
    for (number, (kind, patterns)) in groups.into_iter().enumerate() {
        for pattern in patterns.iter() {
            match compile_rule(kind, pattern) {
                Ok((mut rule, gate)) => {
                    rule.ends_session = number == 4;
                    rules.push(rule);
                    gates.push(gate);
                }
                Err(message) => {
                    diags.push(Diagnostic::at(path, source, pattern.span().start, message))
                }
            }
        }
    }
    if lists.failregex.is_empty() && lists.sessionfailregex.is_empty() && diags.is_empty() {
        diags.push(Diagnostic::file(
            path,
            format!("mode {mode:?} has no failregex"),
        ));
    }
    if !lists.sessionfailregex.is_empty()
        && lists.sessionregex.is_empty()
        && lists.failregex.is_empty()
    {
        diags.push(Diagnostic::file(
            path,
            format!(
                "mode {mode:?} has sessionfailregex but nothing that names a session's address"
            ),
        ));
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    let prefilter = Prefilter::new(&gates);
    let has_sessions = !lists.sessionfailregex.is_empty()
        || !lists.sessionregex.is_empty()
        || !lists.sessionendregex.is_empty()
        || !lists.successregex.is_empty();
    Ok(Filter {
        name: name.to_string(),
        mode: mode.to_string(),
        description: spec.description.clone().unwrap_or_default(),
        needs_tag: !spec.daemons.is_empty(),
        daemons: spec
            .daemons
            .iter()
            .map(|d| DaemonPattern::new(d.get_ref()))
            .collect(),
        prefix,
        datepattern,
        zone: options.timezone,
        rules,
        prefilter,
        has_sessions,
    })
}

fn compile_rule(kind: RuleKind, pattern: &Spanned<String>) -> Result<(Rule, Gate), String> {
    let key = kind.key();
    let expanded = host::expand(pattern.get_ref(), kind.host_rule())
        .map_err(|e| format!("{key} {:?} {e}", pattern.get_ref()))?;
    let regex = RegexBuilder::new(&expanded)
        .unicode(false)
        .build()
        .map_err(|e| format!("{key} does not compile: {}", super::regex_error(&e)))?;
    let index = |name: &str| regex.capture_names().position(|n| n == Some(name));
    let host = index(host::GROUP);
    let user = index("user");
    let echo = index("echo");
    if echo.is_some() && user.is_none() {
        return Err(format!(
            "{key} {:?} has an `echo` group but no `user` group for it to repeat",
            pattern.get_ref()
        ));
    }
    let gate = Gate::of(&expanded);
    Ok((
        Rule {
            kind,
            regex,
            host,
            user,
            echo,
            ends_session: false,
            locator: std::sync::OnceLock::new(),
        },
        gate,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemon_patterns() {
        let cases = [
            ("sshd", "sshd", true),
            ("sshd", "sshd-session", false),
            ("postfix*/smtpd", "postfix/smtpd", true),
            ("postfix*/smtpd", "postfix-out/smtpd", true),
            ("postfix*/smtpd", "postfix/submission/smtpd", true),
            ("postfix*/smtpd", "postfix/smtp", false),
            ("postfix*/smtpd", "xpostfix/smtpd", false),
            ("*-login", "imap-login", true),
            ("a*b*c", "abc", true),
            ("a*b*c", "ac", false),
            ("a*a", "a", false),
        ];
        for (pattern, tag, want) in cases {
            assert_eq!(
                DaemonPattern::new(pattern).matches(tag),
                want,
                "{pattern} vs {tag}"
            );
        }
    }
}
