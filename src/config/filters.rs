//! Resolving and compiling the filters jails name.
//!
//! A filter name is looked up in `filter.d/NAME.toml` first (the host adds or overrides), then
//! among the built-in filters. Each file is parsed once; its errors are reported once, located
//! in the filter file, however many jails use it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use nftjail_core::diag::{Diagnostic, Diagnostics};
use nftjail_core::filter::{FilterFile, builtin};

/// The filter files of one configuration, parsed on first use.
pub struct FilterCache {
    /// `filter.d/*.toml`, by file stem.
    host: HashMap<String, PathBuf>,
    parsed: HashMap<String, Option<Arc<FilterFile>>>,
    /// Problems of filter files (not of the jails using them).
    pub diags: Diagnostics,
}

impl FilterCache {
    pub fn new(filter_files: &[PathBuf]) -> FilterCache {
        let host = filter_files
            .iter()
            .filter_map(|p| Some((p.file_stem()?.to_str()?.to_string(), p.clone())))
            .collect();
        FilterCache {
            host,
            parsed: HashMap::new(),
            diags: Diagnostics::default(),
        }
    }

    /// Whether a filter of this name exists at all (on the host or built in).
    pub fn exists(&self, name: &str) -> bool {
        self.host.contains_key(name) || builtin::source(name).is_some()
    }

    /// The parsed filter `name`; `None` when it does not exist or does not parse (its
    /// errors are in `diags`).
    pub fn file(&mut self, name: &str) -> Option<Arc<FilterFile>> {
        if let Some(parsed) = self.parsed.get(name) {
            return parsed.clone();
        }
        let result = match self.host.get(name) {
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => FilterFile::parse(path, &text),
                Err(e) => Err(Diagnostic::file(path, format!("cannot read: {e}")).into()),
            },
            None => builtin::load(name)?,
        };
        let parsed = match result {
            Ok(file) => Some(Arc::new(file)),
            Err(d) => {
                self.diags.extend(d);
                None
            }
        };
        self.parsed.insert(name.to_string(), parsed.clone());
        parsed
    }

    /// Compiles every `filter.d` file in every mode, so `check` finds errors in filters no
    /// enabled jail uses yet.
    pub fn check_all(&mut self) {
        let mut names: Vec<String> = self.host.keys().cloned().collect();
        names.sort();
        for name in names {
            let Some(file) = self.file(&name) else {
                continue;
            };
            for mode in file.modes().map(str::to_string).collect::<Vec<_>>() {
                let options = nftjail_core::filter::FilterOptions {
                    mode: Some(mode),
                    ..Default::default()
                };
                if let Err(d) = file.compile(&options) {
                    // Each mode compiles the same regexes again: report each place once.
                    for diag in d.0 {
                        if !self.diags.iter().any(|x| *x == diag) {
                            self.diags.push(diag);
                        }
                    }
                }
            }
        }
    }
}
