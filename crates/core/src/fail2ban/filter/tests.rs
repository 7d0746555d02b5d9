//! Bad filters give placed findings; random configuration text never panics.

use std::io;
use std::path::{Path, PathBuf};

use crate::fail2ban::ini::parse;
use crate::fail2ban::{Fail2banFilter, FilterSpec, Finding, LoadSettings, Loader};

struct MemoryLoader(Vec<(String, String)>);

impl Loader for MemoryLoader {
    fn read(&self, path: &Path) -> io::Result<Option<String>> {
        Ok(self
            .0
            .iter()
            .find(|(name, _)| Path::new(name) == path)
            .map(|(_, text)| text.clone()))
    }
    fn list(&self, _dir: &Path) -> io::Result<Vec<PathBuf>> {
        Ok(Vec::new())
    }
}

fn load(files: &[(&str, &str)]) -> Result<Fail2banFilter, Vec<Finding>> {
    let loader = MemoryLoader(
        files
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
    );
    let spec = FilterSpec::parse("test").unwrap();
    Fail2banFilter::load(&loader, &spec, &LoadSettings::new("/cfg", 1_700_000_000))
}

#[test]
fn syntax_error_names_file_and_line() {
    let errors = load(&[(
        "/cfg/filter.d/test.conf",
        "[Definition]\nfailregex = ^x <HOST>$\nthis line is junk\n",
    )])
    .unwrap_err();
    assert_eq!(errors[0].path, PathBuf::from("/cfg/filter.d/test.conf"));
    assert_eq!(errors[0].line, Some(3));
}

#[test]
fn unknown_tag_is_reported_with_its_line() {
    // fail2ban keeps an unknown tag as literal text; we do too, and warn with the place.
    let filter = load(&[(
        "/cfg/filter.d/test.conf",
        "[Definition]\n\nfailregex = ^x <HOST> <no-such-tag>$\n",
    )])
    .unwrap();
    let warning = &filter.warnings()[0];
    assert_eq!(warning.line, Some(3), "{warning:?}");
    assert!(warning.message.contains("<no-such-tag>"), "{warning:?}");
}

#[test]
fn unresolvable_interpolation_is_reported() {
    let errors = load(&[(
        "/cfg/filter.d/test.conf",
        "[Definition]\nfailregex = ^%(missing)s <HOST>$\n",
    )])
    .unwrap_err();
    assert_eq!(errors[0].line, Some(2));
    assert!(errors[0].message.contains("missing"));
}

#[test]
fn regex_that_does_not_compile_gives_text_and_offset() {
    let errors = load(&[(
        "/cfg/filter.d/test.conf",
        "[Definition]\nfailregex = ^ok <HOST>$\n            ^broken (<HOST>$\n",
    )])
    .unwrap_err();
    assert_eq!(errors[0].line, Some(3), "{errors:?}");
    assert!(
        errors[0].message.contains("^broken (<HOST>$"),
        "{}",
        errors[0].message
    );
    assert!(
        errors[0].message.contains("offset"),
        "{}",
        errors[0].message
    );
}

#[test]
fn include_loop_is_refused_with_its_place() {
    let filter = load(&[
        (
            "/cfg/filter.d/test.conf",
            "[INCLUDES]\nbefore = other.conf\n[Definition]\nfailregex = ^x <HOST>$\n",
        ),
        (
            "/cfg/filter.d/other.conf",
            "[INCLUDES]\n\nbefore = test.conf\n[DEFAULT]\na = 1\n",
        ),
    ])
    .unwrap_err();
    let error = filter.iter().find(|f| f.is_error()).unwrap();
    assert_eq!(error.path, PathBuf::from("/cfg/filter.d/other.conf"));
    assert_eq!(error.line, Some(3));
    assert!(error.message.contains("include loop"));
}

#[test]
fn a_tag_one_typo_from_a_known_one_is_refused() {
    // fail2ban keeps <HOTS> as literal text: the failure would never be found.
    let errors = load(&[(
        "/cfg/filter.d/test.conf",
        "[Definition]\nfailregex = ^x <HOST>$\n            ^y <HOTS> from <ADDR>$\n",
    )])
    .unwrap_err();
    let error = errors.iter().find(|f| f.is_error()).unwrap();
    assert_eq!(error.line, Some(3), "{error:?}");
    assert!(error.message.contains("did you mean <HOST>"), "{error}");
    // A tag far from any known one is literal text, as in fail2ban's own haproxy filter.
    let filter = load(&[(
        "/cfg/filter.d/test.conf",
        "[Definition]\nfailregex = ^x <HOST> <NOSRV>$\n",
    )])
    .unwrap();
    assert!(filter.warnings()[0].message.contains("<NOSRV>"));
}

/// A small deterministic generator (xorshift) for fuzz-style input.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, length: usize, alphabet: &[u8]) -> Vec<u8> {
        (0..length)
            .map(|_| alphabet[(self.next() % alphabet.len() as u64) as usize])
            .collect()
    }
}

#[test]
fn random_configuration_text_never_panics() {
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    let alphabet: Vec<u8> = b"[]=:;#% ()<>\n\t abcDEF/\\.%s{}?*+-"
        .iter()
        .copied()
        .chain(0..=255u8)
        .collect();
    for _ in 0..3000 {
        let length = (random.next() % 300) as usize;
        let bytes = random.bytes(length, &alphabet);
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse(Path::new("/fuzz.conf"), &text);
        let _ = load(&[(
            "/cfg/filter.d/test.conf",
            &format!("[Definition]\nfailregex = {text}\n"),
        )]);
        let _ = FilterSpec::parse(&text);
    }
}
