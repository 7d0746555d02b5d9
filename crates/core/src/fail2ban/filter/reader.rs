//! fail2ban's `FilterReader` (`DefinitionInitConfigReader`): which option values a filter has.
//!
//! Receives: a merged filter [`Config`], the options given with the filter (`name[k=v]`) and,
//! for jails, the jail's options.
//! Emits: the combined options after `%(…)s` interpolation and recursive `<tag>` substitution,
//! in fail2ban's order, each with the place it was written.
//! Never: compiles regexes (that is [`super::Fail2banFilter`]).

use std::collections::HashSet;
use std::sync::LazyLock;

use crate::fail2ban::finding::{Finding, Place};
use crate::fail2ban::ini::{Config, GetError, Value, Vars};
use crate::fail2ban::python_re::PythonRegex;
use crate::fail2ban::tags::substitute_recursive_tags;

static CONDITIONAL: LazyLock<PythonRegex> =
    LazyLock::new(|| PythonRegex::internal(r"^(\w+)(\?.+)$"));

/// The options `FilterReader` knows (`_configOpts`), in its order.
pub const FILTER_OPTIONS: [&str; 7] = [
    "usedns",
    "prefregex",
    "ignoreregex",
    "failregex",
    "maxlines",
    "datepattern",
    "journalmatch",
];

/// A filter's configuration with its given options.
#[derive(Debug, Clone)]
pub struct FilterReader {
    pub config: Config,
    /// `_initOpts`: options given with the filter reference (then `[Init]` defaults).
    pub init: Vec<(String, String)>,
    /// The filter's main file (for diagnostics without a better place).
    pub place: Place,
}

/// The combined options of a filter.
#[derive(Debug, Clone, Default)]
pub struct Combined {
    /// Ordered name → value after substitution.
    pub values: Vec<(String, String)>,
}

impl Combined {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

fn set(list: &mut Vec<(String, String)>, key: &str, value: String) {
    match list.iter_mut().find(|(existing, _)| existing == key) {
        Some(entry) => entry.1 = value,
        None => list.push((key.to_string(), value)),
    }
}

fn get_of(list: &[(String, String)], key: &str) -> Option<String> {
    list.iter()
        .find(|(existing, _)| existing == key)
        .map(|(_, value)| value.clone())
}

impl FilterReader {
    pub fn new(config: Config, init: Vec<(String, String)>, place: Place) -> Self {
        FilterReader {
            config,
            init,
            place,
        }
    }

    /// `applyAutoOptions(backend)`: `logtype` = `file` or `journal` unless given or defined.
    pub fn apply_auto_options(&mut self, backend: &str) {
        let given = get_of(&self.init, "logtype").is_some_and(|value| !value.is_empty());
        if !given && !self.config.has_option("Definition", "logtype", false) {
            let logtype = if backend.starts_with("systemd") {
                "journal"
            } else {
                "file"
            };
            set(&mut self.init, "logtype", logtype.to_string());
        }
    }

    fn error(&self, place: Option<&Value>, message: String) -> Finding {
        Finding::error(place.map_or(&self.place, |value| &value.place), message)
    }

    /// `getOptions(pOpts, all)` then `getCombined()`.
    pub fn combined(
        &mut self,
        jail_options: &[(String, String)],
        all: bool,
    ) -> Result<Combined, Vec<Finding>> {
        let mut errors = Vec::new();
        let mut given: Vec<(String, String)> = jail_options.to_vec();
        for (key, value) in &self.init {
            set(&mut given, key, value.clone());
        }
        let mut vars = Vars::new();
        for (key, value) in &given {
            vars.insert(key, value.clone());
        }
        let mut options: Vec<(String, String)> = Vec::new();
        for name in FILTER_OPTIONS {
            if given.iter().any(|(key, _)| key == name) {
                continue;
            }
            match self.config.get("Definition", name, Some(&vars)) {
                Ok(value) => options.push((name.to_string(), value)),
                Err(GetError::NoSection(_) | GetError::NoOption { .. }) => {}
                Err(error) => errors.push(self.error(
                    self.config.get_raw("Definition", name).ok(),
                    error.to_string(),
                )),
            }
        }
        if self.config.has_section("Init") {
            let names = self.config.options("Init", false).unwrap_or_default();
            for name in names {
                let value = match self.config.get("Init", &name, None) {
                    Ok(value) => value,
                    Err(error) => {
                        errors.push(
                            self.error(self.config.get_raw("Init", &name).ok(), error.to_string()),
                        );
                        continue;
                    }
                };
                if !name.starts_with("known/") {
                    set(&mut self.init, &format!("known/{name}"), value.clone());
                }
                if get_of(&self.init, &name).is_none() {
                    set(&mut self.init, &name, value);
                }
            }
        }
        if all && self.config.has_section("Definition") {
            for name in self.config.options("Definition", true).unwrap_or_default() {
                if name == "__name__" || options.iter().any(|(key, _)| *key == name) {
                    continue;
                }
                match self.config.get("Definition", &name, None) {
                    Ok(value) => options.push((name, value)),
                    Err(error) => errors.push(self.error(
                        self.config.get_raw("Definition", &name).ok(),
                        error.to_string(),
                    )),
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut combined = options;
        for (key, value) in &self.init {
            set(&mut combined, key, value.clone());
        }
        let mut ignore = HashSet::new();
        for (name, _) in &combined {
            if let Some(found) = CONDITIONAL.search(name) {
                ignore.insert(found.group(1).unwrap_or_default().to_string());
            }
        }
        let config = &self.config;
        let mut cache: Vec<(String, Option<String>)> = Vec::new();
        let result = substitute_recursive_tags(&mut combined, &ignore, |name| {
            if let Some((_, cached)) = cache.iter().find(|(key, _)| key == name) {
                return Ok(cached.clone());
            }
            let value = match config.get_ex("Definition", name, Some(&vars)) {
                Ok(value) => Some(value),
                Err(GetError::NoSection(_) | GetError::NoOption { .. }) => None,
                Err(error) => return Err(error.to_string()),
            };
            cache.push((name.to_string(), value.clone()));
            Ok(value)
        });
        if let Err(error) = result {
            return Err(vec![self.error(None, error.to_string())]);
        }
        Ok(Combined { values: combined })
    }

    /// The file line of line `index` of a combined option, when it can be told.
    pub fn place_of(&self, option: &str, index: usize, line_count: usize) -> Place {
        match self.config.get_raw("Definition", option) {
            Ok(value) => {
                let line = if value.lines.len() == line_count {
                    value.line_of(index)
                } else {
                    value.place.line
                };
                value.place.at(line)
            }
            Err(_) => self.place.clone(),
        }
    }
}

/// `shlex.split` (POSIX mode, no comments).
pub fn shell_split(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut characters = text.chars();
    while let Some(character) = characters.next() {
        match character {
            '\'' => {
                in_word = true;
                loop {
                    match characters.next() {
                        Some('\'') => break,
                        Some(inner) => current.push(inner),
                        None => return Err("no closing quotation".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match characters.next() {
                        Some('"') => break,
                        Some('\\') => match characters.next() {
                            Some(escaped @ ('"' | '\\' | '$' | '`')) => current.push(escaped),
                            Some(other) => {
                                current.push('\\');
                                current.push(other);
                            }
                            None => return Err("no escaped character".into()),
                        },
                        Some(inner) => current.push(inner),
                        None => return Err("no closing quotation".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match characters.next() {
                    Some(escaped) => current.push(escaped),
                    None => return Err("no escaped character".into()),
                }
            }
            space if space.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            other => {
                in_word = true;
                current.push(other);
            }
        }
    }
    if in_word {
        words.push(current);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_shlex() {
        assert_eq!(
            shell_split("_SYSTEMD_UNIT=sshd.service + _COMM=sshd").unwrap(),
            vec!["_SYSTEMD_UNIT=sshd.service", "+", "_COMM=sshd"]
        );
        assert_eq!(
            shell_split(r#"A="b c" 'd e'"#).unwrap(),
            vec!["A=b c", "d e"]
        );
        assert!(shell_split("'open").is_err());
    }
}
