//! Lookups with Python's `BasicInterpolation` as fail2ban decorates it.
//!
//! Receives: a section, an option and optional `vars` (the jail's options, or a filter's
//! `[k=v]` options) on a merged [`Config`].
//! Emits: the interpolated value: `%%` → `%`, `%(name)s` from vars → section → `[DEFAULT]`,
//! `%(__name__)s` → the section, `%(section/option)s`, `%(known/option)s` and
//! `%(default/option)s` (mapped from the top-level value only, as fail2ban does).
//! Never: recurses deeper than Python's 10 levels or guesses a missing name.

use std::fmt;
use std::sync::LazyLock;

use super::includes::Config;
use super::section::{Section, Value};
use crate::fail2ban::python_re::PythonRegex;

static SECTION_OPTION_REFERENCE: LazyLock<PythonRegex> =
    LazyLock::new(|| PythonRegex::internal(r"%\(([\w\-]+/([^\)]+))\)s"));
static SECTION_OPTION_NAME: LazyLock<PythonRegex> =
    LazyLock::new(|| PythonRegex::internal(r"^([\w\-]+)/([^\s>]+)$"));
static KEY_REFERENCE: LazyLock<PythonRegex> =
    LazyLock::new(|| PythonRegex::internal(r"^%\(([^)]+)\)s"));

const MAX_INTERPOLATION_DEPTH: usize = 10;

/// Variables given to a lookup (`vars=` in Python); keys are lowercased like option names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars {
    entries: Vec<(String, String)>,
}

impl Vars {
    pub fn new() -> Self {
        Vars::default()
    }

    pub fn insert(&mut self, key: &str, value: impl Into<String>) {
        let key = key.to_lowercase();
        let value = value.into();
        match self
            .entries
            .iter_mut()
            .find(|(existing, _)| *existing == key)
        {
            Some(entry) => entry.1 = value,
            None => self.entries.push((key, value)),
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(existing, _)| existing == key)
            .map(|(_, value)| value.as_str())
    }

    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }
}

/// Why a lookup failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GetError {
    NoSection(String),
    NoOption {
        section: String,
        option: String,
    },
    /// A `%(…)s` problem in the value (missing name, bad syntax, too deep).
    Interpolation {
        section: String,
        option: String,
        message: String,
    },
}

impl fmt::Display for GetError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GetError::NoSection(section) => write!(formatter, "no section: {section:?}"),
            GetError::NoOption { section, option } => {
                write!(formatter, "no option {option:?} in section {section:?}")
            }
            GetError::Interpolation {
                section,
                option,
                message,
            } => write!(
                formatter,
                "bad value substitution in option {option:?} of section {section:?}: {message}"
            ),
        }
    }
}

/// The lookup chain of one `get`: mapped names, vars, section, defaults.
struct Chain<'c> {
    mapped: Vec<(String, String)>,
    vars: Option<&'c Vars>,
    section: Option<&'c Section>,
    defaults: &'c Section,
}

impl Chain<'_> {
    fn lookup(&self, key: &str) -> Option<String> {
        if let Some((_, value)) = self.mapped.iter().find(|(name, _)| name == key) {
            return Some(value.clone());
        }
        if let Some(value) = self.vars.and_then(|vars| vars.get(key)) {
            return Some(value.to_string());
        }
        if let Some(value) = self.section.and_then(|section| section.get(key)) {
            return Some(value.text.clone());
        }
        self.defaults.get(key).map(|value| value.text.clone())
    }
}

impl Config {
    /// `ConfigParser.has_section`.
    pub fn has_section(&self, section: &str) -> bool {
        self.sections.contains(section)
    }

    /// `ConfigParser.has_option` (with defaults) or own options only.
    pub fn has_option(&self, section: &str, option: &str, with_default: bool) -> bool {
        let option = option.to_lowercase();
        if section.is_empty() || section == "DEFAULT" {
            return self.sections.defaults.contains(&option);
        }
        match self.sections.get(section) {
            Some(own) => {
                own.contains(&option) || (with_default && self.sections.defaults.contains(&option))
            }
            None => false,
        }
    }

    /// Option names of a section (own first, then defaults when asked).
    pub fn options(&self, section: &str, with_default: bool) -> Result<Vec<String>, GetError> {
        let own = self
            .sections
            .get(section)
            .ok_or_else(|| GetError::NoSection(section.to_string()))?;
        let mut names: Vec<String> = own.keys().map(str::to_string).collect();
        if with_default {
            for key in self.sections.defaults.keys() {
                if !own.contains(key) {
                    names.push(key.to_string());
                }
            }
        }
        Ok(names)
    }

    /// The raw value and its place (vars are not consulted).
    pub fn get_raw(&self, section: &str, option: &str) -> Result<&Value, GetError> {
        let option = option.to_lowercase();
        let own = self.section_for_lookup(section)?;
        own.and_then(|own| own.get(&option))
            .or_else(|| self.sections.defaults.get(&option))
            .ok_or(GetError::NoOption {
                section: section.to_string(),
                option,
            })
    }

    fn section_for_lookup(&self, section: &str) -> Result<Option<&Section>, GetError> {
        match self.sections.get(section) {
            Some(own) => Ok(Some(own)),
            None if section == "DEFAULT" => Ok(None),
            None => Err(GetError::NoSection(section.to_string())),
        }
    }

    /// `ConfigParser.get(section, option, vars=vars)` with fail2ban's interpolation.
    pub fn get(
        &self,
        section: &str,
        option: &str,
        vars: Option<&Vars>,
    ) -> Result<String, GetError> {
        let option = option.to_lowercase();
        let own = self.section_for_lookup(section)?;
        let mut chain = Chain {
            mapped: Vec::new(),
            vars,
            section: own,
            defaults: &self.sections.defaults,
        };
        let raw = chain.lookup(&option).ok_or_else(|| GetError::NoOption {
            section: section.to_string(),
            option: option.clone(),
        })?;
        let mut output = String::new();
        self.interpolate(&mut chain, section, &option, &raw, 1, &mut output)?;
        Ok(output)
    }

    /// `get_ex`: like [`Config::get`] but `section/option` names read that section.
    pub fn get_ex(
        &self,
        section: &str,
        option: &str,
        vars: Option<&Vars>,
    ) -> Result<String, GetError> {
        if option.contains('/')
            && let Some(found) = SECTION_OPTION_NAME.search(option)
        {
            let named = found.group(1).unwrap_or_default();
            let name = found.group(2).unwrap_or_default();
            let candidates: Vec<String> = match named.to_lowercase().as_str() {
                "known" => vec![format!("KNOWN/{section}"), section.to_string()],
                "default" => vec!["DEFAULT".to_string()],
                _ => vec![named.to_string()],
            };
            for candidate in candidates {
                match self.get(&candidate, name, None) {
                    Ok(value) => return Ok(value),
                    Err(GetError::NoSection(_) | GetError::NoOption { .. }) => {}
                    Err(other) => return Err(other),
                }
            }
        }
        self.get(section, option, vars)
    }

    /// `_map_section_options`: resolves `%(section/option)s` names found in the top-level value.
    fn map_section_options(&self, section: &str, raw: &str, chain: &mut Chain<'_>) {
        if !raw.contains('/') || !raw.contains("%(") {
            return;
        }
        for found in SECTION_OPTION_REFERENCE.find_iter(raw) {
            let reference = found.group(1).unwrap_or_default();
            let option = found.group(2).unwrap_or_default();
            if chain.lookup(reference).is_some() {
                continue;
            }
            let named = &reference[..reference.len() - option.len() - 1];
            let mut value = None;
            let mut use_default = false;
            match named.to_lowercase().as_str() {
                "default" => use_default = true,
                "known" => match self
                    .sections
                    .get(&format!("KNOWN/{section}"))
                    .and_then(|known| known.get(option))
                {
                    Some(known) => value = Some(known.text.clone()),
                    None => use_default = true,
                },
                _ => match self.sections.get(named) {
                    None => continue,
                    Some(other) => match other.get(option) {
                        Some(found) => value = Some(found.text.clone()),
                        None => use_default = true,
                    },
                },
            }
            if use_default {
                match self.sections.defaults.get(option) {
                    Some(found) => value = Some(found.text.clone()),
                    None => continue,
                }
            }
            if let Some(value) = value {
                chain.mapped.push((reference.to_string(), value));
            }
        }
    }
}

impl Config {
    /// `BasicInterpolation._interpolate_some` behind fail2ban's wrapper. The wrapper tests
    /// `__name__ in map` with the *module* name, so it runs at every level: `__name__` and the
    /// `%(section/option)s` names of each nested value are mapped too.
    fn interpolate(
        &self,
        chain: &mut Chain<'_>,
        section: &str,
        option: &str,
        rest: &str,
        depth: usize,
        output: &mut String,
    ) -> Result<(), GetError> {
        if !section.is_empty() {
            match chain.mapped.iter_mut().find(|(name, _)| name == "__name__") {
                Some(entry) => entry.1 = section.to_string(),
                None => chain
                    .mapped
                    .push(("__name__".to_string(), section.to_string())),
            }
            self.map_section_options(section, rest, chain);
        }
        let error = |message: String| GetError::Interpolation {
            section: section.to_string(),
            option: option.to_string(),
            message,
        };
        if depth > MAX_INTERPOLATION_DEPTH {
            return Err(error(
                "recursion limit exceeded in value substitution".into(),
            ));
        }
        let mut rest = rest;
        while !rest.is_empty() {
            let Some(percent) = rest.find('%') else {
                output.push_str(rest);
                return Ok(());
            };
            output.push_str(&rest[..percent]);
            rest = &rest[percent..];
            match rest.as_bytes().get(1) {
                Some(b'%') => {
                    output.push('%');
                    rest = &rest[2..];
                }
                Some(b'(') => {
                    let Some(found) = KEY_REFERENCE.search(rest) else {
                        return Err(error(format!(
                            "bad interpolation variable reference {rest:?}"
                        )));
                    };
                    let name = found.group(1).unwrap_or_default().to_lowercase();
                    let end = found.end();
                    let value = chain.lookup(&name).ok_or_else(|| {
                        error(format!(
                            "interpolation key {name:?} is not a valid option name"
                        ))
                    })?;
                    rest = &rest[end..];
                    if value.contains('%') {
                        self.interpolate(chain, section, option, &value, depth + 1, output)?;
                    } else {
                        output.push_str(&value);
                    }
                }
                _ => {
                    return Err(error(format!(
                        "'%' must be followed by '%' or '(', found: {rest:?}"
                    )));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fail2ban::ini::parse;
    use std::path::Path;

    fn config(text: &str) -> Config {
        Config::from_sections(parse(Path::new("/t.conf"), text).unwrap())
    }

    #[test]
    fn interpolates_names_sections_and_vars() {
        let config = config(
            "[DEFAULT]\nbase = b\n[lt_file]\ndp = {^LN-BEG}\n[Definition]\na = %(base)s-%(__name__)s-%(lt_file/dp)s\nb = 100%%\nc = %(missing)s\nd = %(v)s\n",
        );
        assert_eq!(
            config.get("Definition", "a", None).unwrap(),
            "b-Definition-{^LN-BEG}"
        );
        assert_eq!(config.get("Definition", "b", None).unwrap(), "100%");
        assert!(matches!(
            config.get("Definition", "c", None),
            Err(GetError::Interpolation { .. })
        ));
        let mut vars = Vars::new();
        vars.insert("V", "given");
        assert_eq!(config.get("Definition", "d", Some(&vars)).unwrap(), "given");
        assert!(matches!(
            config.get("Nope", "a", None),
            Err(GetError::NoSection(_))
        ));
        assert_eq!(
            config.get_ex("Definition", "lt_file/dp", None).unwrap(),
            "{^LN-BEG}"
        );
    }

    #[test]
    fn stops_at_ten_levels() {
        let config = config("[s]\na = %(a)s\n");
        assert!(config.get("s", "a", None).is_err());
    }
}
