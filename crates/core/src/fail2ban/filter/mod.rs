//! A fail2ban filter file, read and compiled.
//!
//! Receives: a [`FilterSpec`] (`sshd[mode=aggressive]` or a path) and a [`Loader`].
//! Emits: a [`Fail2banFilter`] with compiled prefregex, failregex, ignoreregex, date templates,
//! maxlines and journalmatch, or every diagnostic with its file and line.
//! Never: reads files itself or matches lines (that is [`crate::fail2ban::matcher`]).

pub mod reader;
pub mod regex;

use std::path::{Path, PathBuf};

use chrono::Datelike;

use crate::fail2ban::date::Templates;
use crate::fail2ban::date::strptime::{year_window, zone_offset};
use crate::fail2ban::finding::{Finding, Place};
use crate::fail2ban::ini::{read_explicit, read_standard};
use crate::fail2ban::loader::{Loader, strip_extension};
use crate::fail2ban::options::FilterSpec;
pub use reader::{Combined, FilterReader};
use regex::{FilterRegex, RegexError};

/// What a load needs besides the files.
#[derive(Debug, Clone)]
pub struct LoadSettings {
    /// fail2ban's configuration directory (`/etc/fail2ban`): filter names resolve under `filter.d/`.
    pub config_dir: PathBuf,
    /// Unix time at load: fixes the `%ExY` year window, as fail2ban's import time does.
    pub now: i64,
    /// The jail's backend (`auto`, `systemd`…) for `logtype`, as `applyAutoOptions` sets it;
    /// `None` leaves `logtype` to the filter (fail2ban's test-suite behaviour).
    pub backend: Option<String>,
    /// `logtimezone` of the jail (`UTC+0200`, `CET`…), for lines without a zone.
    pub log_time_zone: Option<String>,
}

impl LoadSettings {
    pub fn new(config_dir: impl Into<PathBuf>, now: i64) -> Self {
        LoadSettings {
            config_dir: config_dir.into(),
            now,
            backend: Some("auto".to_string()),
            log_time_zone: None,
        }
    }
}

/// A compiled fail2ban filter.
#[derive(Debug, Clone)]
pub struct Fail2banFilter {
    pub(crate) prefregex: Option<FilterRegex>,
    pub(crate) failregex: Vec<FilterRegex>,
    pub(crate) ignoreregex: Vec<FilterRegex>,
    pub(crate) maxlines: usize,
    pub(crate) templates: Templates,
    pub(crate) default_offset: Option<i32>,
    datepattern: Option<String>,
    journalmatch: Vec<Vec<String>>,
    usedns: Option<String>,
    options: Combined,
    warnings: Vec<Finding>,
    files: Vec<PathBuf>,
}

/// Where the files of a spec are and how fail2ban reads them.
enum Source {
    Standard { basedir: PathBuf, name: String },
    Explicit(PathBuf),
}

fn resolve(loader: &dyn Loader, spec: &FilterSpec, settings: &LoadSettings) -> Source {
    let name = spec.name.trim();
    if name.contains('/') {
        let path = PathBuf::from(name);
        let candidates: Vec<PathBuf> = if has_extension(name) {
            vec![path.clone()]
        } else {
            vec![
                path.clone(),
                PathBuf::from(format!("{name}.conf")),
                PathBuf::from(format!("{name}.local")),
            ]
        };
        let found = candidates
            .into_iter()
            .find(|candidate| matches!(loader.read(candidate), Ok(Some(_))))
            .unwrap_or(path);
        let parent = found.parent().unwrap_or(Path::new(""));
        if parent.file_name().is_some_and(|dir| dir == "filter.d") {
            let stem = strip_extension(Path::new(found.file_name().unwrap_or_default()));
            return Source::Standard {
                basedir: parent.parent().unwrap_or(Path::new("")).to_path_buf(),
                name: stem.to_string_lossy().into_owned(),
            };
        }
        return Source::Explicit(found);
    }
    let stem = if has_extension(name) {
        strip_extension(Path::new(name))
            .to_string_lossy()
            .into_owned()
    } else {
        name.to_string()
    };
    Source::Standard {
        basedir: settings.config_dir.clone(),
        name: stem,
    }
}

/// `"." in name[~5:]`: the last six characters hold a dot.
fn has_extension(name: &str) -> bool {
    let tail: String = name.chars().rev().take(6).collect();
    tail.contains('.')
}

impl Fail2banFilter {
    /// Reads and compiles a filter as `fail2ban-regex` / a jail would.
    pub fn load(
        loader: &dyn Loader,
        spec: &FilterSpec,
        settings: &LoadSettings,
    ) -> Result<Fail2banFilter, Vec<Finding>> {
        let mut diagnostics = Vec::new();
        let (config, place) = match resolve(loader, spec, settings) {
            Source::Standard { basedir, name } => {
                let place =
                    Place::new(&basedir.join("filter.d").join(format!("{name}.conf")), None);
                (
                    read_standard(
                        loader,
                        &basedir,
                        &format!("filter.d/{name}"),
                        &mut diagnostics,
                    ),
                    place,
                )
            }
            Source::Explicit(path) => (
                read_explicit(loader, &path, &mut diagnostics),
                Place::new(&path, None),
            ),
        };
        let Some(config) = config else {
            return Err(diagnostics);
        };
        let mut reader = FilterReader::new(config, spec.options.clone(), place);
        if let Some(backend) = &settings.backend {
            reader.apply_auto_options(backend);
        }
        let combined = match reader.combined(&[], false) {
            Ok(combined) => combined,
            Err(errors) => {
                diagnostics.extend(errors);
                return Err(diagnostics);
            }
        };
        Fail2banFilter::compile(&reader, combined, settings, diagnostics)
    }

    /// Compiles combined options (`_fillStream` and the server's setters).
    pub(crate) fn compile(
        reader: &FilterReader,
        combined: Combined,
        settings: &LoadSettings,
        mut diagnostics: Vec<Finding>,
    ) -> Result<Fail2banFilter, Vec<Finding>> {
        let mut errors = Vec::new();
        let maxlines = match combined.get("maxlines") {
            None => 1,
            Some(text) => match text.trim().parse::<i64>() {
                Ok(value) if value > 0 => value as usize,
                Ok(_) => {
                    errors.push(Finding::error(
                        &reader.place_of("maxlines", 0, 1),
                        "maxlines must be integer greater than zero",
                    ));
                    1
                }
                Err(_) => {
                    diagnostics.push(Finding::warning(
                        &reader.place_of("maxlines", 0, 1),
                        format!("wrong int value {text:?} for \"maxlines\", using the default"),
                    ));
                    1
                }
            },
        };
        let mut warnings = Vec::new();
        let mut compile_list = |option: &str,
                                failure: bool,
                                prefix: Option<&FilterRegex>,
                                errors: &mut Vec<Finding>|
         -> Vec<FilterRegex> {
            let Some(text) = combined.get(option) else {
                return Vec::new();
            };
            let lines: Vec<&str> = text.split('\n').collect();
            let mut compiled = Vec::new();
            for (index, line) in lines.iter().enumerate() {
                if line.is_empty() {
                    continue;
                }
                let result = if failure {
                    FilterRegex::new_failure(line, prefix, maxlines > 1)
                } else {
                    FilterRegex::new(line, false)
                };
                match result {
                    Ok(regex) => {
                        for tag in unknown_tags(&regex.expanded) {
                            let place = reader.place_of(option, index, lines.len());
                            match near_known_tag(&tag) {
                                // fail2ban would match `<HOTS>` as literal text and never
                                // find that failure: a typo is refused, not run.
                                Some(known) => errors.push(Finding::error(
                                    &place,
                                    format!("{option}: unknown tag <{tag}> (did you mean <{known}>?); fail2ban would keep it as literal text"),
                                )),
                                None => warnings.push(Finding::warning(
                                    &place,
                                    format!("{option}: unknown tag <{tag}> is kept as literal text (as fail2ban does)"),
                                )),
                            }
                        }
                        compiled.push(regex)
                    }
                    Err(error) => errors.push(Finding::error(
                        &reader.place_of(option, index, lines.len()),
                        regex_message(option, line, &error),
                    )),
                }
            }
            compiled
        };
        let prefregex = compile_list("prefregex", false, None, &mut errors)
            .into_iter()
            .last();
        let failregex = compile_list("failregex", true, prefregex.as_ref(), &mut errors);
        let ignoreregex = compile_list("ignoreregex", false, None, &mut errors);
        diagnostics.extend(warnings);
        let year = chrono::DateTime::from_timestamp(settings.now, 0)
            .unwrap_or_default()
            .year();
        let datepattern = combined.get("datepattern").map(str::to_string);
        let templates =
            match Templates::from_datepattern(datepattern.as_deref(), &year_window(year)) {
                Ok(templates) => templates,
                Err(error) => {
                    errors.push(Finding::error(
                        &reader.place_of("datepattern", 0, 1),
                        error.to_string(),
                    ));
                    Templates {
                        list: Vec::new(),
                        defaults: false,
                    }
                }
            };
        let mut journalmatch = Vec::new();
        if let Some(text) = combined.get("journalmatch") {
            for line in text.split('\n').filter(|line| !line.is_empty()) {
                match reader::shell_split(line) {
                    Ok(words) => journalmatch.push(words),
                    Err(error) => errors.push(Finding::error(
                        &reader.place_of("journalmatch", 0, 1),
                        format!("journalmatch {line:?}: {error}"),
                    )),
                }
            }
        }
        let default_offset = match &settings.log_time_zone {
            None => None,
            Some(zone) => match zone_offset(zone) {
                Ok(offset) => Some(offset),
                Err(_) => {
                    errors.push(Finding::error(
                        &reader.place,
                        format!("unknown or unsupported time zone: {zone:?}"),
                    ));
                    None
                }
            },
        };
        if failregex.is_empty() && errors.is_empty() {
            diagnostics.push(Finding::warning(
                &reader.place,
                "the filter has no failregex: it never finds a failure",
            ));
        }
        for (index, regex) in failregex.iter().enumerate() {
            if regex.tags.dns && regex.groups.ip4.is_none() && regex.groups.ip6.is_none() {
                diagnostics.push(Finding::warning(
                    &reader.place_of("failregex", index, failregex.len()),
                    format!("failregex {index} only matches host names; with usedns = no it finds no address"),
                ));
            }
        }
        // Errors found while reading (an include loop) refuse the filter too.
        if !errors.is_empty() || diagnostics.iter().any(Finding::is_error) {
            diagnostics.extend(errors);
            return Err(diagnostics);
        }
        Ok(Fail2banFilter {
            prefregex,
            failregex,
            ignoreregex,
            maxlines,
            templates,
            default_offset,
            datepattern,
            journalmatch,
            usedns: combined.get("usedns").map(str::to_string),
            options: combined,
            warnings: diagnostics,
            files: reader.config.files.clone(),
        })
    }

    /// `maxlines` (1 for single-line filters).
    pub fn maxlines(&self) -> usize {
        self.maxlines
    }

    /// `journalmatch`: one list of `FIELD=value` (and `+`) words per line.
    pub fn journalmatch(&self) -> &[Vec<String>] {
        &self.journalmatch
    }

    /// `datepattern` after interpolation (`None`: fail2ban's default templates).
    pub fn datepattern(&self) -> Option<&str> {
        self.datepattern.as_deref()
    }

    /// The failregexes as fail2ban holds them (after tag expansion).
    pub fn failregex(&self) -> Vec<&str> {
        self.failregex
            .iter()
            .map(|regex| regex.expanded.as_str())
            .collect()
    }

    /// The ignoreregexes as fail2ban holds them.
    pub fn ignoreregex(&self) -> Vec<&str> {
        self.ignoreregex
            .iter()
            .map(|regex| regex.expanded.as_str())
            .collect()
    }

    /// The prefregex, if any.
    pub fn prefregex(&self) -> Option<&str> {
        self.prefregex.as_ref().map(|regex| regex.expanded.as_str())
    }

    /// `usedns` as the filter asks (nftjail always matches with `no`).
    pub fn usedns(&self) -> Option<&str> {
        self.usedns.as_deref()
    }

    /// Whether `<HOST>` is used: fail2ban with `usedns = yes|warn` would also act on host names
    /// there; nftjail (`usedns = no`) only on addresses.
    pub fn ignores_host_names(&self) -> bool {
        self.failregex.iter().any(|regex| regex.tags.host)
    }

    /// Whether no failregex can capture an address (only `<DNS>` or `<F-ID>` ids).
    pub fn matches_host_names_only(&self) -> bool {
        !self.failregex.is_empty()
            && self
                .failregex
                .iter()
                .all(|regex| regex.groups.ip4.is_none() && regex.groups.ip6.is_none())
            && self
                .prefregex
                .as_ref()
                .is_none_or(|prefix| prefix.groups.ip4.is_none() && prefix.groups.ip6.is_none())
    }

    /// Every combined option value (after interpolation and tag substitution).
    pub fn options(&self) -> &[(String, String)] {
        &self.options.values
    }

    /// Warnings of the load (include loops, host-name-only regexes…).
    pub fn warnings(&self) -> &[Finding] {
        &self.warnings
    }

    /// The files read, in merge order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }
}

static UNKNOWN_TAG: std::sync::LazyLock<crate::fail2ban::python_re::PythonRegex> =
    std::sync::LazyLock::new(|| {
        crate::fail2ban::python_re::PythonRegex::internal(
            r"(?<!\?P)(?<!\(\?)<([A-Za-z_][\w\-/.]*)>",
        )
    });

/// The tags fail2ban gives a meaning to in a regex.
const KNOWN_TAGS: [&str; 17] = [
    "HOST",
    "ADDR",
    "IP4",
    "IP6",
    "CIDR",
    "SUBNET",
    "DNS",
    "SKIPLINES",
    "F-USER",
    "F-ID",
    "F-NOFAIL",
    "F-MLFID",
    "F-MLFFORGET",
    "F-MLFGAINED",
    "F-CONTENT",
    "F-ALT_USER",
    "F-TUPLE_",
];

/// The known tag `tag` is one edit (or a swap of two neighbours, or a case change) away from.
fn near_known_tag(tag: &str) -> Option<&'static str> {
    let upper = tag.to_ascii_uppercase();
    KNOWN_TAGS
        .into_iter()
        .find(|known| upper == *known || (known.len() >= 3 && edit_distance(&upper, known) <= 1))
}

/// Optimal string alignment distance (Levenshtein with swaps of neighbours).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

/// Tags left after substitution and tag expansion (fail2ban keeps them as literal text).
fn unknown_tags(expanded: &str) -> Vec<String> {
    UNKNOWN_TAG
        .find_iter(expanded)
        .into_iter()
        .filter_map(|found| found.group(1).map(str::to_string))
        .collect()
}

fn regex_message(option: &str, line: &str, error: &RegexError) -> String {
    match error {
        RegexError::Compile { expanded, error } => format!(
            "{option} {line:?} does not compile (as {expanded:?}): {}{}",
            error.message,
            error
                .offset
                .map(|offset| format!(" at offset {offset}"))
                .unwrap_or_default()
        ),
        other => format!("{option} {line:?}: {other}"),
    }
}

#[cfg(test)]
mod tests;
