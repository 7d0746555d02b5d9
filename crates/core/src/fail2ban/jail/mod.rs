//! fail2ban's jail configuration read as `fail2ban-client` reads it (`JailsReader`,
//! `JailReader`): `jail.conf`, `jail.d/*.conf`, `jail.local`, `jail.d/*.local`, their includes
//! (`paths-*.conf`), `[DEFAULT]`, `%(…)s` and `%(known/…)s`, and each enabled jail's filter.
//!
//! Receives: fail2ban's configuration directory and a [`Loader`].
//! Emits: every jail with its effective values ([`Fail2banJail`]) and diagnostics, including
//! every key nftjail does not understand (reported, never dropped silently).
//! Never: globs log paths or reads action files (the caller decides what to do with them).

use std::path::Path;

use crate::fail2ban::filter::{Combined, FilterReader, LoadSettings};
use crate::fail2ban::finding::{Finding, Place};
use crate::fail2ban::ini::{Config, GetError, Value, read_standard};
use crate::fail2ban::loader::Loader;
use crate::fail2ban::options::{FilterSpec, split_with_options, split_words};

/// `JailReader._configOpts` (with the filter's options), in fail2ban's order.
const JAIL_OPTIONS: [&str; 29] = [
    "enabled",
    "backend",
    "maxretry",
    "maxmatches",
    "findtime",
    "bantime",
    "bantime.increment",
    "bantime.factor",
    "bantime.formula",
    "bantime.multipliers",
    "bantime.maxtime",
    "bantime.rndtime",
    "bantime.overalljails",
    "ignorecommand",
    "ignoreself",
    "ignoreip",
    "ignorecache",
    "filter",
    "logtimezone",
    "logencoding",
    "logpath",
    "action",
    "usedns",
    "prefregex",
    "ignoreregex",
    "failregex",
    "maxlines",
    "datepattern",
    "journalmatch",
];

/// Keys nftjail reads besides `JAIL_OPTIONS` (action parameters it maps to nftables).
const UNDERSTOOD_EXTRA: [&str; 6] = [
    "port",
    "protocol",
    "banaction",
    "banaction_allports",
    "chain",
    "mode",
];

/// How a jail bans: all ports or the listed ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BanactionKind {
    AllPorts,
    Multiport,
    /// An action nftjail has no equivalent for (its name).
    Other(String),
}

/// One jail with its effective configuration.
#[derive(Debug, Clone)]
pub struct Fail2banJail {
    pub name: String,
    pub enabled: bool,
    /// The known options after interpolation (`JailReader` values), in fail2ban's order.
    pub options: Vec<(String, String)>,
    pub filter: Option<FilterSpec>,
    /// The filter's combined options as the jail uses them (regexes before tag expansion).
    pub filter_options: Option<Combined>,
    /// `logpath` patterns with their `head`/`tail` flag (not globbed).
    pub logpath: Vec<(String, String)>,
    pub ignoreip: Vec<String>,
    pub journalmatch: Vec<Vec<String>>,
    pub port: Option<String>,
    pub protocol: Option<String>,
    pub banaction: Option<String>,
    pub banaction_kind: Option<BanactionKind>,
    /// Each `action` reference (name and options).
    pub actions: Vec<FilterSpec>,
}

impl Fail2banJail {
    /// An effective option value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
    }
}

/// Reader of a fail2ban configuration directory.
pub struct Fail2banJails;

impl Fail2banJails {
    /// Reads every jail as `fail2ban-client -d` would.
    pub fn load(
        loader: &dyn Loader,
        config_dir: &Path,
        settings: &LoadSettings,
    ) -> (Vec<Fail2banJail>, Vec<Finding>) {
        let mut diagnostics = Vec::new();
        let Some(mut config) = read_standard(loader, config_dir, "jail", &mut diagnostics) else {
            return (Vec::new(), diagnostics);
        };
        let place = Place::new(&config_dir.join("jail.conf"), None);
        for (key, value) in [
            ("fail2ban_version", "1.0.2".to_string()),
            (
                "fail2ban_confpath",
                config_dir
                    .to_string_lossy()
                    .trim_end_matches('/')
                    .to_string(),
            ),
        ] {
            config
                .sections
                .defaults
                .insert(key.to_string(), Value::synthetic(value, place.clone()));
        }
        let names: Vec<String> = config
            .sections
            .names()
            .filter(|name| *name != "INCLUDES" && !name.starts_with("KNOWN/"))
            .map(str::to_string)
            .collect();
        let mut jails = Vec::new();
        for name in names {
            if let Some(jail) = read_jail(loader, &mut config, &name, settings, &mut diagnostics) {
                jails.push(jail);
            }
        }
        (jails, diagnostics)
    }
}

fn place_of(config: &Config, section: &str, key: &str) -> Place {
    config
        .get_raw(section, key)
        .map(|value| value.place.clone())
        .unwrap_or_else(|_| Place::new(Path::new("jail.conf"), None))
}

fn get_option(
    config: &Config,
    section: &str,
    key: &str,
    diagnostics: &mut Vec<Finding>,
    severity_error: bool,
) -> Option<String> {
    match config.get(section, key, None) {
        Ok(value) => Some(value),
        Err(GetError::NoOption { .. } | GetError::NoSection(_)) => None,
        Err(error) => {
            let place = place_of(config, section, key);
            diagnostics.push(if severity_error {
                Finding::error(&place, error.to_string())
            } else {
                Finding::warning(&place, error.to_string())
            });
            None
        }
    }
}

fn as_bool(value: &str) -> bool {
    matches!(
        value.trim().to_lowercase().as_str(),
        "1" | "on" | "true" | "yes"
    )
}

fn read_jail(
    loader: &dyn Loader,
    config: &mut Config,
    name: &str,
    settings: &LoadSettings,
    diagnostics: &mut Vec<Finding>,
) -> Option<Fail2banJail> {
    let enabled =
        get_option(config, name, "enabled", diagnostics, true).is_some_and(|value| as_bool(&value));
    let backend = get_option(config, name, "backend", diagnostics, enabled)
        .unwrap_or_else(|| "auto".to_string());
    let filter_text = get_option(config, name, "filter", diagnostics, enabled).unwrap_or_default();
    let mut filter_spec = None;
    let mut reader: Option<FilterReader> = None;
    if enabled && !filter_text.is_empty() {
        match FilterSpec::parse(&filter_text) {
            Ok(spec) => {
                let mut files = Vec::new();
                match read_standard(
                    loader,
                    &settings.config_dir,
                    &format!("filter.d/{}", spec.name),
                    &mut files,
                ) {
                    Some(filter_config) => {
                        let place = Place::new(
                            &settings
                                .config_dir
                                .join("filter.d")
                                .join(format!("{}.conf", spec.name)),
                            None,
                        );
                        let mut filter =
                            FilterReader::new(filter_config, spec.options.clone(), place);
                        filter.apply_auto_options(&backend);
                        let first = vec![
                            ("enabled".to_string(), "true".to_string()),
                            ("backend".to_string(), backend.clone()),
                            ("filter".to_string(), filter_text.clone()),
                        ];
                        match filter.combined(&first, true) {
                            Ok(combined) => {
                                let known: Vec<(String, Value)> = combined
                                    .values
                                    .iter()
                                    .map(|(key, value)| {
                                        (
                                            key.clone(),
                                            Value::synthetic(
                                                value.clone(),
                                                place_of(config, name, "filter"),
                                            ),
                                        )
                                    })
                                    .collect();
                                config.merge_section(name, &known, "known/");
                                reader = Some(filter);
                            }
                            Err(errors) => diagnostics.extend(errors),
                        }
                    }
                    None => diagnostics.push(Finding::error(
                        &place_of(config, name, "filter"),
                        format!("jail {name:?}: unable to read the filter {:?}", spec.name),
                    )),
                }
                diagnostics.extend(files);
                filter_spec = Some(spec);
            }
            Err(error) => diagnostics.push(Finding::error(
                &place_of(config, name, "filter"),
                format!("invalid filter definition {filter_text:?}: {error}"),
            )),
        }
    }
    let mut options = Vec::new();
    for key in JAIL_OPTIONS {
        if let Some(value) = get_option(config, name, key, diagnostics, enabled) {
            options.push((key.to_string(), value));
        }
    }
    let get = |key: &str| {
        options
            .iter()
            .find(|(option, _)| option == key)
            .map(|(_, value)| value.clone())
    };
    let filter_options = match reader.as_mut() {
        Some(filter) => {
            let jail_options: Vec<(String, String)> = options.clone();
            match filter.combined(&jail_options, false) {
                Ok(combined) => Some(combined),
                Err(errors) => {
                    diagnostics.extend(errors);
                    None
                }
            }
        }
        None => None,
    };
    let logpath = get("logpath")
        .map(|text| {
            text.split('\n')
                .map(|line| match line.rsplit_once(' ') {
                    Some((path, tail)) => (path.to_string(), tail.to_string()),
                    None => (line.to_string(), "head".to_string()),
                })
                .collect()
        })
        .unwrap_or_default();
    let journal_text = filter_options
        .as_ref()
        .and_then(|combined| combined.get("journalmatch").map(str::to_string))
        .into_iter()
        .chain(get("journalmatch"));
    let mut journalmatch = Vec::new();
    for text in journal_text {
        for line in text.split('\n').filter(|line| !line.is_empty()) {
            if let Ok(words) = crate::fail2ban::filter::reader::shell_split(line) {
                journalmatch.push(words);
            }
        }
    }
    let mut actions = Vec::new();
    for action in split_with_options(&get("action").unwrap_or_default()) {
        let action = action.trim();
        if action.is_empty() {
            continue;
        }
        match FilterSpec::parse(action) {
            Ok(spec) => actions.push(spec),
            Err(error) => diagnostics.push(Finding::error(
                &place_of(config, name, "action"),
                format!("invalid action definition {action:?}: {error}"),
            )),
        }
    }
    let extra = |key: &str, diagnostics: &mut Vec<Finding>| {
        get_option(config, name, key, diagnostics, false)
    };
    let banaction = extra("banaction", diagnostics);
    let allports = extra("banaction_allports", diagnostics);
    let banaction_kind = banaction.as_ref().map(|action| {
        if allports.as_deref() == Some(action.as_str()) || action.contains("allports") {
            BanactionKind::AllPorts
        } else if action.contains("multiport") {
            BanactionKind::Multiport
        } else {
            BanactionKind::Other(action.clone())
        }
    });
    let port = extra("port", diagnostics);
    let protocol = extra("protocol", diagnostics);
    if let Some(section) = config.sections.get(name) {
        for (key, value) in section.iter() {
            let known = JAIL_OPTIONS.contains(&key)
                || UNDERSTOOD_EXTRA.contains(&key)
                || key.starts_with("known/")
                || key.starts_with("action_")
                || filter_spec
                    .as_ref()
                    .is_some_and(|spec| spec.option(key).is_some());
            if !known {
                diagnostics.push(Finding::warning(
                    &value.place,
                    format!("jail {name:?}: key {key:?} is not understood by nftjail (kept as fail2ban reads it, not applied)"),
                ));
            }
        }
    }
    Some(Fail2banJail {
        name: name.to_string(),
        enabled,
        ignoreip: get("ignoreip")
            .map(|text| split_words(&text))
            .unwrap_or_default(),
        options,
        filter: filter_spec,
        filter_options,
        logpath,
        journalmatch,
        port,
        protocol,
        banaction,
        banaction_kind,
        actions,
    })
}
