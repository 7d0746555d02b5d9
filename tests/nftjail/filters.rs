//! The shipped filters against their annotated sample corpus (`tests/filters/*.log`; the format
//! is described in `tests/filters/README.md`). One table test: every line of every file, in
//! every mode the file runs, must give the outcome written above it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use nftjail_core::filter::{FilterOptions, LogTimeZone, Matcher, Outcome, builtin};

/// One expected result.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expected {
    None,
    Ignored,
    Skipped,
    Failure {
        host: String,
        user: Option<String>,
        time: Option<String>,
    },
}

/// Expected results per mode list (`None`: `*`, every mode not named before).
type ByMode = Vec<(Option<Vec<String>>, Expected)>;

/// One log line and its expectation per mode (`None` key: `*`).
struct Case {
    number: usize,
    line: Vec<u8>,
    by_mode: ByMode,
}

struct Corpus {
    path: PathBuf,
    filter: String,
    now: DateTime<Utc>,
    timezone: LogTimeZone,
    modes: Option<Vec<String>>,
    cases: Vec<Case>,
}

fn parse_result(text: &str) -> Result<Expected, String> {
    let text = text.trim();
    match text {
        "none" => return Ok(Expected::None),
        "ignored" => return Ok(Expected::Ignored),
        "skipped" => return Ok(Expected::Skipped),
        _ => {}
    }
    let (host, rest) = text.split_once(' ').unwrap_or((text, ""));
    if host.parse::<std::net::IpAddr>().is_err() {
        return Err(format!(
            "{host:?} is not none, ignored, skipped or an address"
        ));
    }
    // `time=` comes last when present; `user=` takes everything up to it (user names may have spaces).
    let (rest, time) = match rest.rsplit_once("time=") {
        Some((before, time)) => (before.trim_end(), Some(time.trim().to_string())),
        None => (rest, None),
    };
    let user = match rest.strip_prefix("user=") {
        Some("") => None,
        Some(user) => Some(user.to_string()),
        None if rest.is_empty() => None,
        None => return Err(format!("unexpected {rest:?} after the address")),
    };
    Ok(Expected::Failure {
        host: host.to_string(),
        user,
        time,
    })
}

fn parse_expectation(text: &str) -> Result<ByMode, String> {
    let mut out = Vec::new();
    for part in text.split("; ") {
        let (modes, result) = match part.split_once(": ") {
            Some((modes, result))
                if !modes.contains(' ') && !modes.contains('.') && !modes.contains(':') =>
            {
                let modes = if modes == "*" {
                    None
                } else {
                    Some(modes.split(',').map(|m| m.trim().to_string()).collect())
                };
                (modes, result)
            }
            _ => (None, part),
        };
        out.push((modes, parse_result(result)?));
    }
    Ok(out)
}

fn load(path: &Path) -> Corpus {
    let bytes = std::fs::read(path).unwrap();
    let mut header: BTreeMap<String, String> = BTreeMap::new();
    let mut cases = Vec::new();
    let mut pending: Option<ByMode> = None;
    let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    for (index, line) in lines.iter().enumerate() {
        let number = index + 1;
        let where_ = format!("{}:{number}", path.display());
        if let Some(expectation) = line.strip_prefix(b"#> ") {
            assert!(pending.is_none(), "{where_}: two expectations in a row");
            let text = String::from_utf8_lossy(expectation);
            pending = Some(parse_expectation(&text).unwrap_or_else(|e| panic!("{where_}: {e}")));
            continue;
        }
        if line.starts_with(b"#") || line.is_empty() {
            assert!(
                pending.is_none(),
                "{where_}: an expectation must be followed by its log line"
            );
            if let Some(rest) = line.strip_prefix(b"# ")
                && cases.is_empty()
                && let Some((key, value)) = String::from_utf8_lossy(rest).split_once(": ")
                && ["filter", "now", "timezone", "modes"].contains(&key)
            {
                header.insert(key.to_string(), value.trim().to_string());
            }
            continue;
        }
        let by_mode = pending
            .take()
            .unwrap_or_else(|| panic!("{where_}: log line without an expectation"));
        cases.push(Case {
            number,
            line: line.to_vec(),
            by_mode,
        });
    }
    let get = |key: &str| {
        header
            .get(key)
            .unwrap_or_else(|| panic!("{}: no `# {key}:` header", path.display()))
    };
    Corpus {
        path: path.to_path_buf(),
        filter: get("filter").clone(),
        now: get("now").parse().unwrap(),
        timezone: header
            .get("timezone")
            .map_or("UTC", String::as_str)
            .parse()
            .unwrap(),
        modes: header
            .get("modes")
            .map(|m| m.split(',').map(|s| s.trim().to_string()).collect()),
        cases,
    }
}

fn expected_for<'a>(case: &'a Case, mode: &str) -> Option<&'a Expected> {
    let named = case
        .by_mode
        .iter()
        .find(|(modes, _)| modes.as_ref().is_some_and(|m| m.iter().any(|x| x == mode)));
    named
        .or_else(|| case.by_mode.iter().find(|(modes, _)| modes.is_none()))
        .map(|(_, e)| e)
}

fn actual(outcome: Outcome) -> Expected {
    match outcome {
        Outcome::Failure(f) => Expected::Failure {
            host: f.host.to_string(),
            user: f.user,
            time: Some(f.time.format("%Y-%m-%dT%H:%M:%S").to_string()),
        },
        Outcome::Ignored => Expected::Ignored,
        Outcome::NoMatch | Outcome::TooOld => Expected::None,
        Outcome::Skipped(_) => Expected::Skipped,
    }
}

fn agrees(expected: &Expected, got: &Expected) -> bool {
    match (expected, got) {
        (
            Expected::Failure { host, user, time },
            Expected::Failure {
                host: h,
                user: u,
                time: t,
            },
        ) => host == h && user == u && (time.is_none() || time == t),
        _ => expected == got,
    }
}

#[test]
fn shipped_filters_match_their_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/filters");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    paths.sort();
    let mut errors = Vec::new();
    // (filter, mode) -> (lines, failures, non-failures)
    let mut tally: BTreeMap<(String, String), (usize, usize, usize)> = BTreeMap::new();
    for path in &paths {
        let corpus = load(path);
        let file = builtin::load(&corpus.filter)
            .unwrap_or_else(|| panic!("{}: no built-in filter {:?}", path.display(), corpus.filter))
            .unwrap();
        let modes: Vec<String> = corpus
            .modes
            .clone()
            .unwrap_or_else(|| file.modes().map(str::to_string).collect());
        for mode in &modes {
            let options = FilterOptions {
                mode: Some(mode.clone()),
                timezone: corpus.timezone,
                ..FilterOptions::default()
            };
            let mut matcher = Matcher::new(
                Arc::new(file.compile(&options).unwrap()),
                nftjail::filter::zone::system(),
            );
            let entry = tally
                .entry((corpus.filter.clone(), mode.clone()))
                .or_default();
            for case in &corpus.cases {
                let Some(expected) = expected_for(case, mode) else {
                    errors.push(format!(
                        "{}:{}: no expectation for mode {mode}",
                        corpus.path.display(),
                        case.number
                    ));
                    continue;
                };
                let got = actual(matcher.feed_line(&case.line, corpus.now));
                entry.0 += 1;
                if matches!(expected, Expected::Failure { .. }) {
                    entry.1 += 1
                } else {
                    entry.2 += 1
                }
                if !agrees(expected, &got) {
                    errors.push(format!(
                        "{}:{}: mode {mode}: expected {expected:?}, got {got:?}\n    {}",
                        corpus.path.display(),
                        case.number,
                        String::from_utf8_lossy(&case.line)
                    ));
                }
            }
        }
    }
    for name in builtin::names() {
        let file = builtin::load(name).unwrap().unwrap();
        for mode in file.modes() {
            match tally.get(&(name.to_string(), mode.to_string())) {
                Some((_, failures, others)) if *failures > 0 && *others > 0 => {}
                _ => errors.push(format!(
                    "filter {name} mode {mode}: the corpus needs failures and non-failures"
                )),
            }
        }
    }
    for ((filter, mode), (lines, failures, others)) in &tally {
        eprintln!(
            "corpus {filter:>12} {mode:>10}: {lines:>3} lines, {failures:>3} failures, {others:>3} other"
        );
    }
    assert!(
        errors.is_empty(),
        "{} corpus mismatches:\n{}",
        errors.len(),
        errors.join("\n")
    );
}

#[test]
fn expectation_syntax() {
    assert_eq!(parse_result("none"), Ok(Expected::None));
    assert_eq!(
        parse_result("192.0.2.1 user=a b time=2026-01-01T00:00:00"),
        Ok(Expected::Failure {
            host: "192.0.2.1".into(),
            user: Some("a b".into()),
            time: Some("2026-01-01T00:00:00".into())
        })
    );
    assert!(parse_result("example.com").is_err());
    let by_mode = parse_expectation("ddos,aggressive: 2001:db8::1; *: none").unwrap();
    assert_eq!(by_mode.len(), 2);
    assert_eq!(
        by_mode[0].0.as_deref(),
        Some(&["ddos".to_string(), "aggressive".to_string()][..])
    );
}
