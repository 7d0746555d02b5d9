//! The shipped filters (`filters/*.toml`), compiled into the binary.
//!
//! Receives a filter name; emits the filter's TOML text (or a parsed [`FilterFile`]). A host's
//! `filter.d/NAME.toml` overrides a built-in of the same name; that choice belongs to the
//! config loader, not here. It never reads a file at run time.

use std::path::PathBuf;

use super::FilterFile;
use crate::diag::Diagnostics;

const FILTERS: &[(&str, &str)] = &[
    (
        "apache-auth",
        include_str!("../../../../filters/apache-auth.toml"),
    ),
    (
        "directadmin",
        include_str!("../../../../filters/directadmin.toml"),
    ),
    ("dovecot", include_str!("../../../../filters/dovecot.toml")),
    ("exim", include_str!("../../../../filters/exim.toml")),
    (
        "exim-spam",
        include_str!("../../../../filters/exim-spam.toml"),
    ),
    (
        "nginx-http-auth",
        include_str!("../../../../filters/nginx-http-auth.toml"),
    ),
    (
        "pam-generic",
        include_str!("../../../../filters/pam-generic.toml"),
    ),
    ("panel", include_str!("../../../../filters/panel.toml")),
    ("postfix", include_str!("../../../../filters/postfix.toml")),
    (
        "postfix-sasl",
        include_str!("../../../../filters/postfix-sasl.toml"),
    ),
    ("proftpd", include_str!("../../../../filters/proftpd.toml")),
    (
        "pure-ftpd",
        include_str!("../../../../filters/pure-ftpd.toml"),
    ),
    (
        "roundcube-auth",
        include_str!("../../../../filters/roundcube-auth.toml"),
    ),
    (
        "sogo-auth",
        include_str!("../../../../filters/sogo-auth.toml"),
    ),
    ("sshd", include_str!("../../../../filters/sshd.toml")),
    ("vsftpd", include_str!("../../../../filters/vsftpd.toml")),
    (
        "webmin-auth",
        include_str!("../../../../filters/webmin-auth.toml"),
    ),
];

/// The TOML text of the built-in filter `name`.
pub fn source(name: &str) -> Option<&'static str> {
    FILTERS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| *text)
}

/// The names of the built-in filters, sorted.
pub fn names() -> impl Iterator<Item = &'static str> {
    FILTERS.iter().map(|(name, _)| *name)
}

/// The path diagnostics name for the built-in `name`: `filters/NAME.toml (built-in)`.
pub fn path(name: &str) -> PathBuf {
    PathBuf::from(format!("filters/{name}.toml (built-in)"))
}

/// The built-in filter `name`, parsed.
pub fn load(name: &str) -> Option<Result<FilterFile, Diagnostics>> {
    source(name).map(|text| FilterFile::parse(&path(name), text))
}

/// Every built-in filter compiled in every mode, named `NAME/MODE` (for tests that run them all).
#[cfg(test)]
pub(crate) fn every_mode() -> Vec<(String, super::Filter)> {
    let mut all = Vec::new();
    for name in names() {
        let file = load(name).unwrap().unwrap();
        for mode in file.modes().map(str::to_string).collect::<Vec<_>>() {
            let options = super::FilterOptions {
                mode: Some(mode.clone()),
                ..super::FilterOptions::default()
            };
            all.push((format!("{name}/{mode}"), file.compile(&options).unwrap()));
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::FilterOptions;

    #[test]
    fn every_builtin_compiles_in_every_mode() {
        let names: Vec<&str> = names().collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        for name in names {
            let file = load(name).unwrap().unwrap_or_else(|d| panic!("{d}"));
            assert_eq!(file.name(), name);
            assert!(!file.description().is_empty(), "{name} has no description");
            let modes: Vec<String> = file.modes().map(str::to_string).collect();
            assert!(modes.iter().any(|m| m == file.default_mode()), "{name}");
            for mode in modes {
                let options = FilterOptions {
                    mode: Some(mode.clone()),
                    ..FilterOptions::default()
                };
                let filter = file.compile(&options).unwrap_or_else(|d| panic!("{d}"));
                assert_eq!((filter.name(), filter.mode()), (name, mode.as_str()));
            }
        }
    }

    #[test]
    fn fail2ban_mode_names() {
        let modes = |name: &str| -> Vec<String> {
            load(name)
                .unwrap()
                .unwrap()
                .modes()
                .map(str::to_string)
                .collect()
        };
        assert_eq!(modes("sshd"), ["aggressive", "ddos", "extra", "normal"]);
        assert_eq!(
            modes("postfix"),
            [
                "aggressive",
                "auth",
                "ddos",
                "errors",
                "extra",
                "more",
                "normal",
                "rbl"
            ]
        );
        assert_eq!(modes("dovecot"), ["aggressive", "normal"]);
        assert_eq!(modes("exim"), ["aggressive", "normal"]);
        assert_eq!(modes("apache-auth"), ["aggressive", "normal"]);
        assert_eq!(
            modes("nginx-http-auth"),
            ["aggressive", "auth", "fallback", "normal"]
        );
        assert!(source("nope").is_none());
        assert_eq!(
            path("sshd").to_string_lossy(),
            "filters/sshd.toml (built-in)"
        );
    }
}
