//! The fail2ban edge: core's fail2ban engine over the real file system, and the migration of a
//! fail2ban installation (`nftjail import-fail2ban`).
//!
//! Receives: paths (fail2ban filter files, `/etc/fail2ban`, fail2ban's database).
//! Emits: file contents to core's [`Loader`], compiled fail2ban filters for jails and
//! `test-filter`, and (in [`import`]) an nftjail configuration and the active bans.
//! Never: writes outside the directory it is told to write to, or changes fail2ban's files.

pub mod import;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nftjail_core::diag::Diagnostics;
use nftjail_core::fail2ban::{Fail2banFilter, FilterSpec, LoadSettings, Loader, finding};

/// fail2ban's configuration directory, where filter names resolve (`filter.d/NAME.conf`).
pub const FAIL2BAN_DIR: &str = "/etc/fail2ban";

/// Core's [`Loader`] over the file system: a missing file is `None`, a missing directory empty.
/// Bytes that are not UTF-8 are decoded lossily (fail2ban reads its files as UTF-8 too).
#[derive(Debug, Clone, Copy, Default)]
pub struct FileLoader;

impl Loader for FileLoader {
    fn read(&self, path: &Path) -> io::Result<Option<String>> {
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_file() => {}
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        }
        let bytes = std::fs::read(path)?;
        Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        match std::fs::read_dir(dir) {
            Ok(entries) => {
                let mut paths: Vec<PathBuf> = entries
                    .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                    .collect();
                paths.sort();
                Ok(paths)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }
}

/// Whether a filter reference is written the fail2ban way: options in brackets, or a file
/// ending in `.conf` / `.local` (`sshd.conf[mode=aggressive]`, `/etc/fail2ban/filter.d/exim.conf`).
pub fn is_fail2ban_reference(text: &str) -> bool {
    let name = text.split('[').next().unwrap_or_default().trim();
    text.contains('[') || name.ends_with(".conf") || name.ends_with(".local")
}

/// What a fail2ban filter is loaded with besides its reference.
#[derive(Debug, Clone, Default)]
pub struct Fail2banOptions {
    /// `mode = …` of the jail (or `--mode`): used unless the reference gives a mode itself.
    pub mode: Option<String>,
    /// The jail's `datepattern`: overrides the filter's, as a jail option does in fail2ban.
    pub datepattern: Option<String>,
    /// `logtimezone` unless `local`.
    pub log_time_zone: Option<String>,
    /// The jail reads the journal (fail2ban's `logtype = journal`).
    pub journal: bool,
}

/// Loads and compiles the fail2ban filter `reference`; a name without a path resolves under
/// `config_dir/filter.d/`. Errors come back as diagnostics with the file and line.
pub fn load_filter(
    reference: &str,
    config_dir: &Path,
    options: &Fail2banOptions,
    now: i64,
) -> Result<Arc<Fail2banFilter>, Diagnostics> {
    let mut spec = FilterSpec::parse(reference).map_err(|e| {
        Diagnostics(vec![nftjail_core::diag::Diagnostic::file(
            Path::new(reference),
            format!("filter {reference:?}: {e}"),
        )])
    })?;
    // A relative path to an existing file is read as that file, not as a name under filter.d.
    let name = spec.name.trim().to_string();
    if !name.contains('/') && Path::new(&name).is_file() {
        spec.name = std::env::current_dir()
            .map(|dir| dir.join(&name).to_string_lossy().into_owned())
            .unwrap_or(name);
    }
    if let Some(mode) = &options.mode
        && spec.option("mode").is_none()
    {
        spec.options.push(("mode".into(), mode.clone()));
    }
    if let Some(pattern) = &options.datepattern {
        spec.options.retain(|(key, _)| key != "datepattern");
        spec.options.push(("datepattern".into(), pattern.clone()));
    }
    let mut settings = LoadSettings::new(config_dir, now);
    settings.backend = Some(if options.journal { "systemd" } else { "auto" }.into());
    settings.log_time_zone = options.log_time_zone.clone();
    Fail2banFilter::load(&FileLoader, &spec, &settings)
        .map(Arc::new)
        .map_err(|findings| {
            let errors = finding::errors(&findings);
            if errors.is_empty() {
                // Only warnings, yet nothing loaded: say which file could not be had.
                let path = reference_path(reference, config_dir);
                return Diagnostics(vec![nftjail_core::diag::Diagnostic::file(
                    &path,
                    format!("fail2ban filter {reference:?} cannot be read"),
                )]);
            }
            errors
        })
}

/// The file a fail2ban reference names, for messages (`filter.d/NAME.conf` or the path).
pub fn reference_path(reference: &str, config_dir: &Path) -> PathBuf {
    let name = reference.split('[').next().unwrap_or_default().trim();
    if name.contains('/') {
        PathBuf::from(name)
    } else {
        let stem = name
            .strip_suffix(".conf")
            .or_else(|| name.strip_suffix(".local"))
            .unwrap_or(name);
        config_dir.join("filter.d").join(format!("{stem}.conf"))
    }
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail2ban_references_are_told_apart() {
        let cases = [
            ("sshd", false),
            ("/etc/nftjail/filter.d/app.toml", false),
            ("sshd[mode=aggressive]", true),
            ("exim.conf", true),
            ("/etc/fail2ban/filter.d/exim.conf", true),
            ("/etc/fail2ban/filter.d/sshd.local", true),
            ("sshd.conf[mode=\"ddos\"]", true),
        ];
        for (text, fail2ban) in cases {
            assert_eq!(is_fail2ban_reference(text), fail2ban, "{text}");
        }
        let dir = Path::new("/etc/nftjail");
        assert_eq!(
            reference_path("sshd.conf[mode=ddos]", dir),
            Path::new("/etc/nftjail/filter.d/sshd.conf")
        );
        assert_eq!(
            reference_path("/etc/fail2ban/filter.d/exim.conf", dir),
            Path::new("/etc/fail2ban/filter.d/exim.conf")
        );
    }
}
