//! The filter file as written: a serde mirror of `filters/NAME.toml` / `filter.d/NAME.toml`,
//! and the checks that need no regex compilation.
//!
//! Receives the TOML text of one filter; emits a [`FilterSpec`] whose regex strings keep their
//! byte spans (so the compile step can point at them), or every problem found as a
//! [`Diagnostic`]. It never compiles a failregex and never reads a file. See
//! `filters/README.md` for the format.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::datepattern::DatePattern;
use super::prefix::{PrefixKind, PrefixRegex};
use crate::diag::{Diagnostic, Diagnostics};

/// One filter file, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterSpec {
    #[serde(default)]
    pub description: Option<String>,
    /// `syslog` (the default), `rfc5424` or `plain`, or a list of them tried in order.
    #[serde(default)]
    pub prefix: Option<Spanned<PrefixNames>>,
    /// A custom prefix regex (instead of `prefix`), with named groups `time`, `tag`, `pid`.
    #[serde(default)]
    pub prefix_regex: Option<Spanned<String>>,
    /// Program names (syslog tags) the filter accepts; `*` matches any run of characters.
    #[serde(default)]
    pub daemons: Vec<Spanned<String>>,
    /// Where and how lines write their time when it is no known format; `none`: no time.
    #[serde(default)]
    pub datepattern: Option<Spanned<String>>,
    #[serde(default)]
    pub default_mode: Option<Spanned<String>>,
    #[serde(default)]
    pub modes: BTreeMap<String, Spanned<ModeSpec>>,
}

/// `prefix = "syslog"` or `prefix = ["syslog", "plain"]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum PrefixNames {
    One(String),
    Many(Vec<String>),
}

/// One `[modes.NAME]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModeSpec {
    #[serde(default)]
    pub description: Option<String>,
    /// Other modes whose lists come first, in this order.
    #[serde(default)]
    pub include: Vec<Spanned<String>>,
    /// Failures: each has `<HOST>` exactly once.
    #[serde(default)]
    pub failregex: Vec<Spanned<String>>,
    /// Lines that are never failures, whatever a failregex says. `<HOST>` optional.
    #[serde(default)]
    pub ignoreregex: Vec<Spanned<String>>,
    /// Lines that name the address of their session (same daemon and PID) without being
    /// failures. Each has `<HOST>` exactly once.
    #[serde(default)]
    pub sessionregex: Vec<Spanned<String>>,
    /// Failures without an address: attributed to the address of their session. No `<HOST>`.
    #[serde(default)]
    pub sessionfailregex: Vec<Spanned<String>>,
    /// Like `sessionregex`, for lines that end their session (a closed connection, fail2ban's
    /// `F-MLFFORGET`): the session is forgotten after the line. `<HOST>` once.
    #[serde(default)]
    pub sessionendregex: Vec<Spanned<String>>,
    /// Lines that show the session's client logged in (fail2ban's `F-MLFGAINED`): the session
    /// is forgotten, with a failure held for it, unless it tried more than one user name, when
    /// the line is a failure. `<HOST>` once.
    #[serde(default)]
    pub successregex: Vec<Spanned<String>>,
}

/// The regex lists of one mode once its includes are resolved, in matching order.
#[derive(Debug, Default)]
pub struct ModeLists<'a> {
    pub failregex: Vec<&'a Spanned<String>>,
    pub ignoreregex: Vec<&'a Spanned<String>>,
    pub sessionregex: Vec<&'a Spanned<String>>,
    pub sessionfailregex: Vec<&'a Spanned<String>>,
    pub sessionendregex: Vec<&'a Spanned<String>>,
    pub successregex: Vec<&'a Spanned<String>>,
}

impl FilterSpec {
    /// Parses and checks the text of a filter file; every problem becomes a diagnostic.
    pub fn parse(path: &Path, text: &str) -> Result<FilterSpec, Diagnostics> {
        let spec: FilterSpec =
            toml::from_str(text).map_err(|e| Diagnostic::from_toml(path, text, &e))?;
        let mut diags = Diagnostics::default();
        let mut at = |span: std::ops::Range<usize>, message: String| {
            diags.push(Diagnostic::at(path, text, span.start, message));
        };
        if let Err(message) = spec.prefix_kind() {
            let span = match (&spec.prefix, &spec.prefix_regex) {
                (_, Some(r)) => r.span(),
                (Some(p), None) => p.span(),
                (None, None) => 0..0,
            };
            at(span, message);
        }
        if let Some(p) = &spec.datepattern
            && let Err(message) = p.get_ref().parse::<DatePattern>()
        {
            at(p.span(), message);
        }
        for daemon in &spec.daemons {
            let name = daemon.get_ref();
            if name.is_empty() || name.contains(char::is_whitespace) {
                at(
                    daemon.span(),
                    format!("daemon name {name:?} is empty or has spaces"),
                );
            }
        }
        if !spec.daemons.is_empty() && !spec.has_tags() {
            let span = spec.daemons[0].span();
            at(span, "daemons needs a prefix that has a tag (syslog, rfc5424, or prefix_regex with a `tag` group); prefix \"plain\" has none".into());
        }
        if spec.modes.is_empty() {
            at(0..0, "the filter has no [modes.NAME] table (a filter needs at least one mode, usually [modes.normal])".into());
        }
        for mode in spec.modes.values() {
            for include in &mode.get_ref().include {
                if !spec.modes.contains_key(include.get_ref()) {
                    let known = spec.mode_names().collect::<Vec<_>>().join(", ");
                    at(
                        include.span(),
                        format!(
                            "include {:?} is not a mode of this filter (modes: {known})",
                            include.get_ref()
                        ),
                    );
                }
            }
        }
        for (name, mode) in &spec.modes {
            if spec.includes_itself(name) {
                at(
                    mode.span(),
                    format!("mode {name:?} includes itself through its include list"),
                );
            }
        }
        if let Some(default) = &spec.default_mode
            && !spec.modes.contains_key(default.get_ref())
        {
            let known = spec.mode_names().collect::<Vec<_>>().join(", ");
            at(
                default.span(),
                format!(
                    "default_mode {:?} is not a mode of this filter (modes: {known})",
                    default.get_ref()
                ),
            );
        }
        if diags.is_empty() {
            Ok(spec)
        } else {
            Err(diags)
        }
    }

    /// The prefix the file asks for.
    pub fn prefix_kind(&self) -> Result<PrefixKind, String> {
        match (&self.prefix, &self.prefix_regex) {
            (Some(_), Some(_)) => Err("write either prefix or prefix_regex, not both".into()),
            (_, Some(pattern)) => PrefixRegex::new(pattern.get_ref())
                .map(PrefixKind::Regex)
                .map_err(|e| format!("prefix_regex does not compile: {}", super::regex_error(&e))),
            (None, None) => Ok(PrefixKind::Syslog),
            (Some(names), None) => match names.get_ref() {
                PrefixNames::One(name) => prefix_named(name),
                PrefixNames::Many(names) if names.is_empty() => {
                    Err("prefix lists no prefix (write e.g. [\"syslog\", \"plain\"])".into())
                }
                PrefixNames::Many(names) => names
                    .iter()
                    .map(|n| prefix_named(n))
                    .collect::<Result<Vec<_>, _>>()
                    .map(PrefixKind::Either),
            },
        }
    }

    /// Whether any format of the prefix has a tag (what `daemons` needs).
    fn has_tags(&self) -> bool {
        match self.prefix_kind() {
            Ok(PrefixKind::Plain) => false,
            Ok(PrefixKind::Either(kinds)) => kinds.iter().any(|k| !matches!(k, PrefixKind::Plain)),
            _ => true,
        }
    }

    pub fn mode_names(&self) -> impl Iterator<Item = &str> {
        self.modes.keys().map(String::as_str)
    }

    /// The default mode: `default_mode`, else `normal`, else the first mode by name.
    pub fn default_mode(&self) -> &str {
        match &self.default_mode {
            Some(name) => name.get_ref(),
            None if self.modes.contains_key("normal") => "normal",
            None => self.mode_names().next().unwrap_or("normal"),
        }
    }

    /// The lists of `mode` with its includes first (each mode taken once); `None` when the
    /// mode does not exist.
    pub fn lists(&self, mode: &str) -> Option<ModeLists<'_>> {
        self.modes.get(mode)?;
        let mut order = Vec::new();
        self.visit(mode, &mut order);
        let mut lists = ModeLists::default();
        for name in order {
            let m = self.modes[name].get_ref();
            lists.failregex.extend(&m.failregex);
            lists.ignoreregex.extend(&m.ignoreregex);
            lists.sessionregex.extend(&m.sessionregex);
            lists.sessionfailregex.extend(&m.sessionfailregex);
            lists.sessionendregex.extend(&m.sessionendregex);
            lists.successregex.extend(&m.successregex);
        }
        Some(lists)
    }

    /// Depth-first, includes before the mode itself, each mode once.
    fn visit<'a>(&'a self, mode: &'a str, order: &mut Vec<&'a str>) {
        if order.contains(&mode) {
            return;
        }
        let Some(spec) = self.modes.get(mode) else {
            return;
        };
        order.push(mode); // marks it visited; moved to its place below
        for include in &spec.get_ref().include {
            self.visit(include.get_ref(), order);
        }
        let at = order
            .iter()
            .position(|m| *m == mode)
            .expect("invariant: pushed above");
        order.remove(at);
        order.push(mode);
    }

    fn includes_itself(&self, mode: &str) -> bool {
        let mut stack: Vec<&str> = self.modes.get(mode).map_or(Vec::new(), |m| {
            m.get_ref()
                .include
                .iter()
                .map(|i| i.get_ref().as_str())
                .collect()
        });
        let mut seen = Vec::new();
        while let Some(next) = stack.pop() {
            if next == mode {
                return true;
            }
            if seen.contains(&next) {
                continue;
            }
            seen.push(next);
            if let Some(m) = self.modes.get(next) {
                stack.extend(m.get_ref().include.iter().map(|i| i.get_ref().as_str()));
            }
        }
        false
    }
}

fn prefix_named(name: &str) -> Result<PrefixKind, String> {
    match name {
        "syslog" => Ok(PrefixKind::Syslog),
        "rfc5424" => Ok(PrefixKind::Rfc5424),
        "plain" => Ok(PrefixKind::Plain),
        other => Err(format!(
            "prefix {other:?} is not a prefix (syslog, rfc5424 or plain; or write prefix_regex)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<FilterSpec, Vec<String>> {
        FilterSpec::parse(Path::new("filter.d/t.toml"), text)
            .map_err(|d| d.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn includes_come_first_and_once() {
        let spec = parse(
            r#"
            [modes.normal]
            failregex = ["^n <HOST>"]
            [modes.ddos]
            failregex = ["^d <HOST>"]
            [modes.extra]
            failregex = ["^e <HOST>"]
            [modes.aggressive]
            include = ["normal", "ddos", "extra", "normal"]
            failregex = ["^a <HOST>"]
            "#,
        )
        .unwrap();
        let lists = spec.lists("aggressive").unwrap();
        let got: Vec<&str> = lists
            .failregex
            .iter()
            .map(|s| s.get_ref().as_str())
            .collect();
        assert_eq!(got, ["^n <HOST>", "^d <HOST>", "^e <HOST>", "^a <HOST>"]);
        assert_eq!(spec.default_mode(), "normal");
        assert!(spec.lists("nope").is_none());
    }

    #[test]
    fn every_problem_is_reported_with_its_place() {
        let errors = parse(
            "prefix = \"journal\"\ndatepattern = \"%Q\"\ndefault_mode = \"fast\"\n\
             [modes.a]\ninclude = [\"b\"]\n[modes.b]\ninclude = [\"a\", \"zz\"]\n",
        )
        .unwrap_err();
        let want = [
            "filter.d/t.toml:1:10: prefix \"journal\" is not a prefix",
            "filter.d/t.toml:2:15: datepattern \"%Q\": unknown directive %Q",
            "filter.d/t.toml:7:17: include \"zz\" is not a mode",
            "filter.d/t.toml:4:1: mode \"a\" includes itself",
            "filter.d/t.toml:6:1: mode \"b\" includes itself",
            "filter.d/t.toml:3:16: default_mode \"fast\" is not a mode",
        ];
        assert_eq!(errors.len(), want.len(), "{errors:#?}");
        for (got, want) in errors.iter().zip(want) {
            assert!(got.starts_with(want), "{got:?} should start with {want:?}");
        }
    }

    #[test]
    fn unknown_keys_and_plain_daemons_are_errors() {
        let errors = parse("[modes.normal]\nfailregx = [\"x\"]\n").unwrap_err();
        assert!(
            errors[0].starts_with("filter.d/t.toml:2:1: unknown field `failregx`"),
            "{errors:?}"
        );
        let errors = parse("prefix = \"plain\"\ndaemons = [\"x\"]\n[modes.normal]\n").unwrap_err();
        assert!(
            errors[0].contains("daemons needs a prefix that has a tag"),
            "{errors:?}"
        );
        let errors = parse("description = \"x\"\n").unwrap_err();
        assert!(errors[0].contains("no [modes.NAME] table"), "{errors:?}");
    }
}
