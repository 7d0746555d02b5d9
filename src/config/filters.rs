//! Resolving and compiling the filters jails name.
//!
//! A filter name is looked up in `filter.d/NAME.toml` first (the host adds or overrides), then
//! `filter.d/NAME.conf` (a fail2ban filter file, with its `.local`), then among the built-in
//! filters. A reference written the fail2ban way (`sshd.conf[mode=aggressive]`,
//! `/etc/fail2ban/filter.d/exim.conf`) is a fail2ban filter, read by core's fail2ban engine. Each
//! file is parsed once; its errors are reported once, located in the filter file, however many
//! jails use it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nftjail_core::diag::{Diagnostic, Diagnostics};
use nftjail_core::fail2ban::Fail2banFilter;
use nftjail_core::filter::{FilterFile, builtin};

use crate::fail2ban::{self, Fail2banOptions};

/// The filter files of one configuration, parsed on first use.
pub struct FilterCache {
    /// `filter.d/*.toml`, by file stem.
    host: HashMap<String, PathBuf>,
    /// `filter.d/*.conf`, by file stem (fail2ban filters).
    fail2ban_host: HashMap<String, PathBuf>,
    /// The configuration directory (`filter.d/` is in it): fail2ban names resolve there.
    config_dir: PathBuf,
    parsed: HashMap<String, Option<Arc<FilterFile>>>,
    /// fail2ban filters by reference and options.
    fail2ban: HashMap<String, Option<Arc<Fail2banFilter>>>,
    /// Problems of filter files (not of the jails using them).
    pub diags: Diagnostics,
    /// What fail2ban filters load with but is worth saying (an unknown tag kept as text, a
    /// failregex that can only match host names).
    pub warnings: Vec<Diagnostic>,
}

impl FilterCache {
    pub fn new(filter_files: &[PathBuf], config_dir: &Path) -> FilterCache {
        let host = filter_files
            .iter()
            .filter_map(|p| Some((p.file_stem()?.to_str()?.to_string(), p.clone())))
            .collect();
        let fail2ban_host = std::fs::read_dir(config_dir.join("filter.d"))
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "conf") && p.is_file())
                    .filter_map(|p| Some((p.file_stem()?.to_str()?.to_string(), p)))
                    .collect()
            })
            .unwrap_or_default();
        FilterCache {
            host,
            fail2ban_host,
            config_dir: config_dir.to_path_buf(),
            parsed: HashMap::new(),
            fail2ban: HashMap::new(),
            diags: Diagnostics::default(),
            warnings: Vec::new(),
        }
    }

    /// Whether a filter of this name exists at all (on the host or built in).
    pub fn exists(&self, name: &str) -> bool {
        self.host.contains_key(name)
            || self.fail2ban_host.contains_key(name)
            || builtin::source(name).is_some()
    }

    /// Whether `name` is read by the fail2ban engine: written the fail2ban way, or a
    /// `filter.d/NAME.conf` without a `filter.d/NAME.toml`.
    pub fn is_fail2ban(&self, name: &str) -> bool {
        fail2ban::is_fail2ban_reference(name)
            || (!self.host.contains_key(name) && self.fail2ban_host.contains_key(name))
    }

    /// The path a filter name or reference means, for messages and `status`.
    pub fn fail2ban_path(&self, reference: &str) -> PathBuf {
        fail2ban::reference_path(reference, &self.config_dir)
    }

    /// The fail2ban filter `reference` with a jail's options; `None` when it does not load (its
    /// errors are in `diags`, each place once).
    pub fn fail2ban(
        &mut self,
        reference: &str,
        options: &Fail2banOptions,
    ) -> Option<Arc<Fail2banFilter>> {
        let key = format!("{reference}\u{0}{options:?}");
        if let Some(loaded) = self.fail2ban.get(&key) {
            return loaded.clone();
        }
        let loaded =
            match fail2ban::load_filter(reference, &self.config_dir, options, fail2ban::unix_now())
            {
                Ok(filter) => {
                    for warning in filter.warnings() {
                        let diag = warning.to_diagnostic();
                        if !self.warnings.contains(&diag) {
                            self.warnings.push(diag);
                        }
                    }
                    Some(filter)
                }
                Err(d) => {
                    for diag in d.0 {
                        if !self.diags.iter().any(|x| *x == diag) {
                            self.diags.push(diag);
                        }
                    }
                    None
                }
            };
        self.fail2ban.insert(key, loaded.clone());
        loaded
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

    /// Compiles every `filter.d` file in every mode (fail2ban `.conf` files with their own
    /// defaults), so `check` finds errors in filters no enabled jail uses yet.
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
        let mut names: Vec<String> = self
            .fail2ban_host
            .keys()
            .filter(|name| !self.host.contains_key(*name))
            .cloned()
            .collect();
        names.sort();
        for name in names {
            // Errors only: an include such as common.conf is no filter and has no failregex.
            let loaded = fail2ban::load_filter(
                &name,
                &self.config_dir,
                &Fail2banOptions::default(),
                fail2ban::unix_now(),
            );
            if let Err(d) = loaded {
                for diag in d.0 {
                    if !self.diags.iter().any(|x| *x == diag) {
                        self.diags.push(diag);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{CompiledFilter, JailKind, Source, load};

    fn write(root: &Path, rel: &str, text: &str) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    const FAIL2BAN: &str = "[Definition]\nfailregex = ^\\s*bad login from <HOST>$\njournalmatch = _SYSTEMD_UNIT=app.service + _COMM=app\n            _SYSTEMD_UNIT=app2.service\n";
    const NATIVE: &str =
        "prefix = \"plain\"\n[modes.normal]\nfailregex = [\"^bad login from <HOST>$\"]\n";

    /// `(jail, fail2ban?, journal matches)` of every enabled jail.
    fn jails(root: &Path) -> Vec<(String, bool, Vec<String>)> {
        let config = load(&root.join("nftjail.toml")).unwrap();
        config
            .enabled()
            .map(|jail| match &jail.kind {
                JailKind::Log { filter, source } => (
                    jail.name.to_string(),
                    matches!(filter.filter, CompiledFilter::Fail2ban(_)),
                    match source {
                        Source::Journal { matches, .. } => matches.clone(),
                        Source::Files { .. } => Vec::new(),
                    },
                ),
                _ => (jail.name.to_string(), false, Vec::new()),
            })
            .collect()
    }

    #[test]
    fn filter_names_resolve_toml_then_fail2ban_conf_then_built_in() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "nftjail.toml", "");
        write(root, "filter.d/sshd.conf", FAIL2BAN);
        write(root, "filter.d/app.conf", FAIL2BAN);
        write(root, "filter.d/app.toml", NATIVE);
        write(
            root,
            "jail.d/all.toml",
            "[sshd]\nenabled = true\nlogpath = [\"/var/log/a\"]\n\
             [app]\nenabled = true\nlogpath = [\"/var/log/a\"]\n\
             [app-f2b]\nenabled = true\nfilter = \"app.conf[mode=normal]\"\nlogpath = [\"/var/log/a\"]\n\
             [postfix]\nenabled = true\nlogpath = [\"/var/log/a\"]\n",
        );
        let jails = jails(root);
        let kinds: Vec<(&str, bool)> = jails.iter().map(|(n, f, _)| (n.as_str(), *f)).collect();
        // filter.d/sshd.conf overrides the built-in sshd; app.toml wins over app.conf; a
        // reference written the fail2ban way is a fail2ban filter; postfix stays built in.
        assert_eq!(
            kinds,
            [
                ("sshd", true),
                ("app", false),
                ("app-f2b", true),
                ("postfix", false)
            ]
        );
    }

    #[test]
    fn journal_jails_take_the_fail2ban_filters_journalmatch_unless_they_set_one() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "nftjail.toml", "");
        write(root, "filter.d/app.conf", FAIL2BAN);
        write(
            root,
            "jail.d/all.toml",
            "[app]\nenabled = true\nbackend = \"journal\"\n\
             [own]\nenabled = true\nfilter = \"app\"\nbackend = \"journal\"\njournalmatch = [\"_COMM=own\"]\n",
        );
        let jails = jails(root);
        assert_eq!(
            jails[0].2,
            [
                "_SYSTEMD_UNIT=app.service",
                "+",
                "_COMM=app",
                "+",
                "_SYSTEMD_UNIT=app2.service"
            ]
        );
        assert_eq!(jails[1].2, ["_COMM=own"]);
    }
}
