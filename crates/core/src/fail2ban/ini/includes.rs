//! `[INCLUDES]` before/after, `.local` companions, `.d` directories and the merge of many files.
//!
//! Receives: the files fail2ban would read for a name (or one explicit file) and a loader.
//! Emits: one merged [`Config`]: `[DEFAULT]` updated file by file, sections merged key by key,
//! the values a later file overrides kept in `KNOWN/<section>` (for `%(known/…)s`), and
//! conditional sections (`[Init?family=inet6]`) folded into their base section.
//! Never: follows an include loop (fail2ban skips an ancestor silently; nftjail reports it as
//! an error, so `nftjail check` refuses the file) or stops at a missing include (fail2ban
//! ignores those too).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use super::parser::parse;
use super::section::{Section, Sections, Value};
use crate::fail2ban::finding::{Finding, Place};
use crate::fail2ban::loader::{Loader, normalize, strip_extension};
use crate::fail2ban::python_re::PythonRegex;

static CONDITIONAL: LazyLock<PythonRegex> =
    LazyLock::new(|| PythonRegex::internal(r"^(\w+)(\?.+)$"));

/// A merged configuration: what fail2ban's reader holds after `read()`.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub sections: Sections,
    /// The files that were read, in merge order.
    pub files: Vec<PathBuf>,
}

/// Reads and caches single files for one load.
pub(crate) struct FileCache<'l> {
    loader: &'l dyn Loader,
    parsed: HashMap<PathBuf, Option<Sections>>,
}

impl<'l> FileCache<'l> {
    pub(crate) fn new(loader: &'l dyn Loader) -> Self {
        FileCache {
            loader,
            parsed: HashMap::new(),
        }
    }

    pub(crate) fn exists(&self, path: &Path) -> bool {
        matches!(self.loader.read(path), Ok(Some(_)))
    }

    fn list(&self, dir: &Path) -> Vec<PathBuf> {
        self.loader.list(dir).unwrap_or_default()
    }

    /// The parsed file, `None` when it is missing; parse errors go to `diagnostics`.
    fn get(&mut self, path: &Path, diagnostics: &mut Vec<Finding>) -> Option<Sections> {
        if let Some(parsed) = self.parsed.get(path) {
            return parsed.clone();
        }
        let parsed = match self.loader.read(path) {
            Ok(Some(text)) => match parse(path, &text) {
                Ok(sections) => Some(sections),
                Err(errors) => {
                    diagnostics.extend(errors);
                    None
                }
            },
            Ok(None) => None,
            Err(error) => {
                diagnostics.push(Finding::error(
                    &Place::new(path, None),
                    format!("cannot read: {error}"),
                ));
                None
            }
        };
        self.parsed.insert(path.to_path_buf(), parsed.clone());
        parsed
    }
}

/// `ConfigReaderUnshared.read(name)` under `basedir`: `name.conf`, `name.d/*.conf`, `name.local`,
/// `name.d/*.local` (existing ones), each with its includes.
pub fn read_standard(
    loader: &dyn Loader,
    basedir: &Path,
    name: &str,
    diagnostics: &mut Vec<Finding>,
) -> Option<Config> {
    let mut cache = FileCache::new(loader);
    let base = basedir.join(name);
    let base_text = base.to_string_lossy().into_owned();
    let directory = PathBuf::from(format!("{base_text}.d"));
    let mut in_directory: Vec<PathBuf> = cache
        .list(&directory)
        .into_iter()
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| !name.starts_with('.'))
        })
        .collect();
    in_directory.sort_by(|a, b| a.to_string_lossy().cmp(&b.to_string_lossy()));
    let with_suffix = |suffix: &str| -> Vec<PathBuf> {
        in_directory
            .iter()
            .filter(|path| path.to_string_lossy().ends_with(suffix))
            .cloned()
            .collect()
    };
    let mut files = vec![PathBuf::from(format!("{base_text}.conf"))];
    files.extend(with_suffix(".conf"));
    files.push(PathBuf::from(format!("{base_text}.local")));
    files.extend(with_suffix(".local"));
    files.retain(|path| cache.exists(path));
    if files.is_empty() {
        diagnostics.push(Finding::error(
            &Place::new(&PathBuf::from(format!("{base_text}.conf")), None),
            format!(
                "found no accessible config files for {name:?} under {}",
                basedir.display()
            ),
        ));
        return None;
    }
    read_with_includes(&mut cache, &files, diagnostics)
}

/// `readexplicit`: one file (and its `.local`) with its includes.
pub fn read_explicit(
    loader: &dyn Loader,
    file: &Path,
    diagnostics: &mut Vec<Finding>,
) -> Option<Config> {
    let mut cache = FileCache::new(loader);
    if !cache.exists(file) {
        diagnostics.push(Finding::error(&Place::new(file, None), "file not found"));
        return None;
    }
    read_with_includes(&mut cache, &[file.to_path_buf()], diagnostics)
}

/// `SafeConfigParserWithIncludes.read(filenames)`.
pub(crate) fn read_with_includes(
    cache: &mut FileCache<'_>,
    files: &[PathBuf],
    diagnostics: &mut Vec<Finding>,
) -> Option<Config> {
    let errors_before = diagnostics.iter().filter(|d| d.is_error()).count();
    let ordered = includes(cache, files, &[], diagnostics);
    let mut config = Config::default();
    for file in ordered {
        let Some(parsed) = cache.get(&file, diagnostics) else {
            continue;
        };
        config.files.push(file.clone());
        merge(&mut config.sections, &parsed);
    }
    let errors_after = diagnostics.iter().filter(|d| d.is_error()).count();
    (errors_after == errors_before).then_some(config)
}

/// Merges one file's content into the whole, as `read()` does.
fn merge(all: &mut Sections, file: &Sections) {
    all.defaults.update(&file.defaults);
    for (name, section) in file.iter() {
        let (name, section) = match CONDITIONAL.search(name) {
            Some(found) => {
                let base = found.group(1).unwrap_or_default().to_string();
                let condition = found.group(2).unwrap_or_default();
                let mut renamed = Section::default();
                for (key, value) in section.iter() {
                    renamed.insert(format!("{key}{condition}"), value.clone());
                }
                (base, renamed)
            }
            None => (name.to_string(), section.clone()),
        };
        if all.contains(&name) {
            let previous = all.get(&name).expect("invariant: section exists");
            let mut known = Section::default();
            for (key, value) in previous.iter() {
                if section.contains(key) {
                    known.insert(key.to_string(), value.clone());
                }
            }
            all.get_or_create(&format!("KNOWN/{name}")).update(&known);
            all.get_or_create(&name).update(&section);
        } else {
            *all.get_or_create(&name) = section;
        }
    }
}

/// `_getIncludes`: the files with their `.local`, each expanded with its includes.
fn includes(
    cache: &mut FileCache<'_>,
    files: &[PathBuf],
    seen: &[PathBuf],
    diagnostics: &mut Vec<Finding>,
) -> Vec<PathBuf> {
    let mut expanded: Vec<PathBuf> = Vec::new();
    for file in files {
        expanded.push(file.clone());
        let local = PathBuf::from(format!("{}.local", strip_extension(file).to_string_lossy()));
        if !files.contains(&local) && cache.exists(&local) {
            expanded.push(local);
        }
    }
    let mut ordered = Vec::new();
    for file in expanded {
        ordered.extend(includes_of(cache, &file, seen, diagnostics));
    }
    ordered
}

/// `__getIncludesUncached`: before-files, the file, after-files.
fn includes_of(
    cache: &mut FileCache<'_>,
    file: &Path,
    seen: &[PathBuf],
    diagnostics: &mut Vec<Finding>,
) -> Vec<PathBuf> {
    let Some(parsed) = cache.get(file, diagnostics) else {
        return Vec::new();
    };
    let directory = file.parent().unwrap_or(Path::new(""));
    let mut before = Vec::new();
    let mut after = Vec::new();
    if let Some(section) = parsed.get("INCLUDES") {
        let single = Config {
            sections: parsed.clone(),
            files: vec![file.to_path_buf()],
        };
        for (option, list) in [("before", &mut before), ("after", &mut after)] {
            let Some(raw) = section.get(option) else {
                continue;
            };
            let text = match single.get("INCLUDES", option, None) {
                Ok(text) => text,
                Err(error) => {
                    diagnostics.push(Finding::error(&raw.place, error.to_string()));
                    continue;
                }
            };
            for (index, entry) in text.split('\n').enumerate() {
                let include = if Path::new(entry).is_absolute() {
                    PathBuf::from(entry)
                } else {
                    directory.join(entry)
                };
                // Like fail2ban, only ancestors count (a file that includes itself is read twice).
                if seen
                    .iter()
                    .any(|ancestor| normalize(ancestor) == normalize(&include))
                {
                    diagnostics.push(Finding::error(
                        &raw.place.at(raw.line_of(index)),
                        format!(
                            "include loop: {} includes {} again (fail2ban would skip it silently)",
                            file.display(),
                            include.display()
                        ),
                    ));
                    continue;
                }
                let mut chain: Vec<PathBuf> = seen.to_vec();
                chain.push(file.to_path_buf());
                list.extend(includes(cache, &[include], &chain, diagnostics));
            }
        }
    }
    let mut ordered = before;
    ordered.push(file.to_path_buf());
    ordered.extend(after);
    ordered
}

impl Config {
    /// A configuration with the given sections (tests and synthetic readers).
    pub fn from_sections(sections: Sections) -> Self {
        Config {
            sections,
            files: Vec::new(),
        }
    }

    /// Adds options to a section with a prefix (`merge_section` with `pref`).
    pub fn merge_section(&mut self, section: &str, options: &[(String, Value)], prefix: &str) {
        let target = self.sections.get_or_create(section);
        for (key, value) in options {
            if prefix.is_empty() {
                target.insert(key.clone(), value.clone());
            } else if !key.starts_with(prefix) && key != "__name__" {
                target.insert(format!("{prefix}{key}"), value.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    pub(crate) struct MemoryLoader(pub Vec<(&'static str, &'static str)>);

    impl Loader for MemoryLoader {
        fn read(&self, path: &Path) -> io::Result<Option<String>> {
            Ok(self
                .0
                .iter()
                .find(|(name, _)| Path::new(name) == path)
                .map(|(_, text)| text.to_string()))
        }
        fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
            Ok(self
                .0
                .iter()
                .map(|(name, _)| PathBuf::from(name))
                .filter(|path| path.parent() == Some(dir))
                .collect())
        }
    }

    #[test]
    fn merges_includes_locals_and_known_values() {
        let loader = MemoryLoader(vec![
            (
                "/f/filter.d/common.conf",
                "[INCLUDES]\nafter = common.local\n[DEFAULT]\nx = common\n",
            ),
            (
                "/f/filter.d/a.conf",
                "[INCLUDES]\nbefore = common.conf\n[Definition]\nfailregex = one\nother = 1\n",
            ),
            (
                "/f/filter.d/a.local",
                "[Definition]\nfailregex = %(known/failregex)s two\n",
            ),
            ("/f/filter.d/a.d/z.conf", "[Init?family=inet6]\nk = v6\n"),
        ]);
        let mut diagnostics = Vec::new();
        let config =
            read_standard(&loader, Path::new("/f/filter.d"), "a", &mut diagnostics).unwrap();
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        assert_eq!(config.files.len(), 4);
        assert_eq!(
            config.get("Definition", "failregex", None).unwrap(),
            "one two"
        );
        assert_eq!(config.get("Definition", "x", None).unwrap(), "common");
        assert!(
            config
                .sections
                .get("Init")
                .unwrap()
                .contains("k?family=inet6")
        );
    }

    #[test]
    fn include_loops_are_errors() {
        let loader = MemoryLoader(vec![
            (
                "/f/a.conf",
                "[INCLUDES]\nbefore = b.conf\n[Definition]\nx = 1\n",
            ),
            (
                "/f/b.conf",
                "[INCLUDES]\nbefore = ./a.conf\n[Definition]\ny = 1\n",
            ),
        ]);
        let mut diagnostics = Vec::new();
        let config = read_explicit(&loader, Path::new("/f/a.conf"), &mut diagnostics);
        assert!(config.is_none_or(|config| config.files.len() == 2));
        assert_eq!(diagnostics.len(), 1);
        assert!(diagnostics[0].is_error());
        assert_eq!(diagnostics[0].path, PathBuf::from("/f/b.conf"));
        assert_eq!(diagnostics[0].line, Some(2));
    }
}
