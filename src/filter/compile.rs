//! Compiling one mode of a filter: regexes, `<HOST>` groups, daemon patterns and the keyword
//! prefilter.
//!
//! Receives a checked [`FilterSpec`] and the jail's [`FilterOptions`]; emits an immutable
//! [`Filter`] or every problem as a diagnostic located at the offending regex. For speed, each
//! regex gets the literal keywords one of which any of its matches must contain (found in the
//! regex's syntax tree); one Aho-Corasick pass over a message then says which regexes can match
//! at all, and only those run. It never sees a log line.

use std::path::Path;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use regex::Regex;
use regex_syntax::hir::{Hir, HirKind};
use toml::Spanned;

use super::datepattern::DatePattern;
use super::host::{self, HostRule};
use super::spec::FilterSpec;
use super::{Filter, FilterOptions};
use crate::config::{Diagnostic, Diagnostics};

/// Keywords shorter than this are too common to be worth a prefilter entry.
const MIN_KEYWORD: usize = 3;

/// What a matching regex means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    Ignore,
    Fail,
    SessionFail,
    Session,
}

impl RuleKind {
    fn key(self) -> &'static str {
        match self {
            RuleKind::Ignore => "ignoreregex",
            RuleKind::Fail => "failregex",
            RuleKind::SessionFail => "sessionfailregex",
            RuleKind::Session => "sessionregex",
        }
    }

    fn host_rule(self) -> HostRule {
        match self {
            RuleKind::Ignore => HostRule::Optional,
            RuleKind::Fail | RuleKind::Session => HostRule::Required,
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

/// Which rules can match a message, from the keywords it contains.
#[derive(Debug, Clone)]
pub struct Prefilter {
    searcher: Option<AhoCorasick>,
    /// Rule index of each searcher pattern.
    pattern_rule: Vec<usize>,
    /// Rules without a keyword: always candidates.
    always: Vec<u64>,
}

impl Prefilter {
    fn new(rules: &[Rule], keywords: &[Option<Vec<Vec<u8>>>]) -> Prefilter {
        let mut always = vec![0u64; words(rules.len())];
        let mut patterns: Vec<&[u8]> = Vec::new();
        let mut pattern_rule = Vec::new();
        for (index, kws) in keywords.iter().enumerate() {
            match kws {
                Some(kws) => {
                    for kw in kws {
                        patterns.push(kw);
                        pattern_rule.push(index);
                    }
                }
                None => always[index / 64] |= 1 << (index % 64),
            }
        }
        let searcher = (!patterns.is_empty()).then(|| {
            AhoCorasick::builder()
                .match_kind(MatchKind::Standard)
                .kind(Some(AhoCorasickKind::DFA))
                .build(&patterns)
                .or_else(|_| {
                    AhoCorasick::builder()
                        .match_kind(MatchKind::Standard)
                        .build(&patterns)
                })
                .expect("invariant: keywords are short literals, within aho-corasick's limits")
        });
        Prefilter {
            searcher,
            pattern_rule,
            always,
        }
    }

    /// Words of the candidate bitset for this filter.
    pub fn words(&self) -> usize {
        self.always.len()
    }

    /// Sets in `out` the bit of every rule that can match `message`; returns whether any is set.
    pub fn candidates(&self, message: &str, out: &mut [u64]) -> bool {
        out.copy_from_slice(&self.always);
        let mut any = self.always.iter().any(|w| *w != 0);
        if let Some(searcher) = &self.searcher {
            for hit in searcher.find_overlapping_iter(message) {
                let rule = self.pattern_rule[hit.pattern().as_usize()];
                out[rule / 64] |= 1 << (rule % 64);
                any = true;
            }
        }
        any
    }
}

fn words(n: usize) -> usize {
    n.div_ceil(64).max(1)
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
    let mut keywords = Vec::new();
    let groups = [
        (RuleKind::Ignore, &lists.ignoreregex),
        (RuleKind::Fail, &lists.failregex),
        (RuleKind::SessionFail, &lists.sessionfailregex),
        (RuleKind::Session, &lists.sessionregex),
    ];
    for (kind, patterns) in groups {
        for pattern in patterns.iter() {
            match compile_rule(kind, pattern) {
                Ok((rule, kws)) => {
                    rules.push(rule);
                    keywords.push(kws);
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
    let prefilter = Prefilter::new(&rules, &keywords);
    let has_sessions = !lists.sessionfailregex.is_empty();
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

type Keywords = Option<Vec<Vec<u8>>>;

fn compile_rule(kind: RuleKind, pattern: &Spanned<String>) -> Result<(Rule, Keywords), String> {
    let key = kind.key();
    let expanded = host::expand(pattern.get_ref(), kind.host_rule())
        .map_err(|e| format!("{key} {:?} {e}", pattern.get_ref()))?;
    let regex = Regex::new(&expanded)
        .map_err(|e| format!("{key} does not compile: {}", regex_error(&e)))?;
    let index = |name: &str| regex.capture_names().position(|n| n == Some(name));
    let host = index(host::GROUP);
    let user = index("user");
    let keywords = regex_syntax::Parser::new()
        .parse(&expanded)
        .ok()
        .and_then(|hir| required(&hir))
        .filter(|kws| kws.iter().all(|k| k.len() >= MIN_KEYWORD));
    Ok((
        Rule {
            kind,
            regex,
            host,
            user,
        },
        keywords,
    ))
}

/// The last line of a regex error (the crate's messages draw the pattern and a caret above it).
pub fn regex_error(err: &regex::Error) -> String {
    let text = err.to_string();
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid regex")
        .trim()
        .trim_start_matches("error: ")
        .to_string()
}

/// A set of literals, one of which every match of `hir` contains; `None` if none is known.
/// Among the candidates of a concatenation, the set whose shortest literal is longest wins.
fn required(hir: &Hir) -> Keywords {
    match hir.kind() {
        HirKind::Literal(lit) => Some(vec![lit.0.to_vec()]),
        HirKind::Capture(cap) => required(&cap.sub),
        HirKind::Repetition(rep) if rep.min >= 1 => required(&rep.sub),
        HirKind::Alternation(branches) => {
            let mut all = Vec::new();
            for branch in branches {
                all.extend(required(branch)?);
            }
            Some(all)
        }
        HirKind::Concat(parts) => {
            let mut best: Keywords = None;
            let mut run: Vec<u8> = Vec::new();
            let consider = |candidate: Keywords, best: &mut Keywords| {
                if score(&candidate) > score(best) {
                    *best = candidate;
                }
            };
            for part in parts {
                if let HirKind::Literal(lit) = part.kind() {
                    run.extend_from_slice(&lit.0);
                    continue;
                }
                if !run.is_empty() {
                    consider(Some(vec![std::mem::take(&mut run)]), &mut best);
                }
                consider(required(part), &mut best);
            }
            if !run.is_empty() {
                consider(Some(vec![run]), &mut best);
            }
            best
        }
        _ => None,
    }
}

fn score(keywords: &Keywords) -> usize {
    keywords
        .as_ref()
        .map_or(0, |k| k.iter().map(Vec::len).min().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keywords_of(pattern: &str) -> Option<Vec<String>> {
        let spanned = Spanned::new(0..0, pattern.to_string());
        let (_, kws) = compile_rule(RuleKind::Ignore, &spanned).unwrap();
        kws.map(|k| {
            k.into_iter()
                .map(|b| String::from_utf8(b).unwrap())
                .collect()
        })
    }

    #[test]
    fn keywords_are_required_literals() {
        let cases: &[(&str, Option<&[&str]>)] = &[
            (
                r"^Failed \S+ for .* from <HOST> port \d+",
                Some(&["Failed "]),
            ),
            (
                r"^(?:Connection closed|Disconnected) by <HOST>",
                Some(&["Connection closed", "Disconnected"]),
            ),
            (
                r"^Invalid user (?P<user>.*) from <HOST>",
                Some(&["Invalid user "]),
            ),
            (
                r"^(?:error: )?maximum authentication attempts exceeded for",
                Some(&["maximum authentication attempts exceeded for"]),
            ),
            (
                r"^[aA]uthentication failure",
                Some(&["uthentication failure"]),
            ),
            (r"(?i)^login failed", None),
            (r"^(?:a|bc) <HOST>", None),
            (r"^\d+ <HOST>", None),
            (r"^x?yz", None),
        ];
        for (pattern, want) in cases {
            let want = want.map(|w| w.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            assert_eq!(keywords_of(pattern), want, "{pattern:?}");
        }
    }

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

    #[test]
    fn prefilter_marks_candidates() {
        let patterns = [
            "^Failed x <HOST>",
            "^(?:Invalid|Illegal) user <HOST>",
            r"^\w+ <HOST>",
        ];
        let mut rules = Vec::new();
        let mut kws = Vec::new();
        for p in patterns {
            let (rule, k) =
                compile_rule(RuleKind::Fail, &Spanned::new(0..0, p.to_string())).unwrap();
            rules.push(rule);
            kws.push(k);
        }
        let pre = Prefilter::new(&rules, &kws);
        let mut out = vec![0u64; pre.words()];
        assert!(pre.candidates("Invalid user 1.2.3.4", &mut out));
        assert_eq!(out[0], 0b110);
        pre.candidates("Failed x Illegal", &mut out);
        assert_eq!(out[0], 0b111);
    }
}
