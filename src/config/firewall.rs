//! `[firewall]` in `nftjail.toml` and the `firewall.d/*.toml` drop-ins: the host firewall's
//! settings, rules and forwards.
//!
//! Receives the `[firewall]` table and the files of `firewall.d/` (lexical order), each holding
//! `[[rule]]` and `[[forward]]` tables; emits a [`FirewallConfig`] — the settings, and every rule
//! and forward with its file and line — or a diagnostic per bad field, `PATH:LINE:COL: field:
//! message` (a port, an address, an action, a forward that overlaps another). Service names
//! (`ssh`, `imaps`) are resolved here. With the firewall on and a default-drop input policy, the
//! admin ports must stay open through a protected accept rule, and no forward may take an admin
//! port (the lock-out checks), or the configuration is refused. Nothing here touches the kernel.

use std::path::Path;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::files::{FileId, Files, Place, toml_files};
use super::load::{parse_table, toml_error};
use super::ports::parse_ports as resolve_ports;
use super::raw::{OneOrMany, PortRaw};
use super::{PortRange, Ports};
use nftjail_core::diag::Diagnostics;
use nftjail_core::firewall::text::{self, FieldError};
use nftjail_core::firewall::{Entry, FileEntry, Forward, Origin, Policy, Rule, Settings, lockout};

/// The firewall as the configuration gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FirewallConfig {
    pub settings: Settings,
    pub rules: Vec<FileEntry<Rule>>,
    pub forwards: Vec<FileEntry<Forward>>,
}

/// `[firewall]` of `nftjail.toml`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirewallRaw {
    /// Whether the firewall's filter chains are on (until `nftjail firewall enable|disable`).
    pub enabled: Option<Spanned<bool>>,
    pub default_input: Option<Spanned<String>>,
    pub default_output: Option<Spanned<String>>,
    pub default_forward: Option<Spanned<String>>,
    /// TCP ports a default-drop input policy must keep open (protected accept rules).
    pub admin_port: Option<Spanned<OneOrMany<PortRaw>>>,
}

/// A `[[rule]]` of a `firewall.d` file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleRaw {
    /// `input` (default) or `output`.
    pub chain: Option<Spanned<String>>,
    pub protocol: Spanned<String>,
    pub port: Spanned<OneOrMany<PortRaw>>,
    pub source: Option<Spanned<String>>,
    pub action: Spanned<String>,
    pub comment: Option<Spanned<String>>,
    pub protected: Option<bool>,
}

/// A `[[forward]]` of a `firewall.d` file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardRaw {
    pub protocol: Spanned<String>,
    pub port: Spanned<PortRaw>,
    pub to: Spanned<String>,
    pub source: Option<Spanned<String>>,
    pub comment: Option<Spanned<String>>,
}

/// A port value as text (`22`, `"ssh"`, `"1000-2000"`).
fn port_text(port: &PortRaw) -> String {
    match port {
        PortRaw::Number(n) => n.to_string(),
        PortRaw::Text(t) => t.clone(),
    }
}

/// Ports with service names resolved.
pub fn ports_of(values: &[String]) -> Result<Vec<PortRange>, FieldError> {
    if values.iter().all(|v| v.trim().is_empty()) {
        return Err(FieldError::new("port", "no port given"));
    }
    match resolve_ports(values.iter().map(String::as_str)) {
        Ok(Ports::List(ranges)) => Ok(ranges),
        Ok(Ports::All) => text::parse_ports("all"),
        Err(message) => Err(FieldError::new("port", message)),
    }
}

/// One port, a service name allowed.
pub fn single_port(value: &str) -> Result<u16, FieldError> {
    match ports_of(&[value.to_string()])?.as_slice() {
        [r] if r.first == r.last => Ok(r.first),
        _ => Err(FieldError::new(
            "port",
            format!("{value:?}: one port here, not a list or a range"),
        )),
    }
}

/// Reads `[firewall]` (from `main`) and `firewall.d/` beside it.
pub fn load(
    files: &mut Files,
    dir: &Path,
    main: FileId,
    raw: FirewallRaw,
    diags: &mut Diagnostics,
) -> FirewallConfig {
    let settings = settings(files, main, &raw, diags);
    let mut config = FirewallConfig {
        settings,
        ..FirewallConfig::default()
    };
    let paths = toml_files(&dir.join("firewall.d")).unwrap_or_else(|d| {
        diags.push(d);
        Vec::new()
    });
    for path in paths {
        match files.read(&path) {
            Ok(id) => drop_in(files, id, &mut config, diags),
            Err(d) => diags.push(d),
        }
    }
    if config.settings.enabled && config.settings.default_input == Policy::Drop {
        let entries: Vec<Entry<Rule>> = config
            .rules
            .iter()
            .map(|e| Entry {
                id: 0,
                origin: Origin::File {
                    file: e.file.clone(),
                    line: e.line,
                },
                item: e.item.clone(),
            })
            .collect();
        if let Err(lockout) = lockout::check(&entries, None, &config.settings.admin_ports) {
            let span = raw
                .default_input
                .as_ref()
                .map(Spanned::span)
                .or_else(|| raw.enabled.as_ref().map(Spanned::span))
                .unwrap_or(0..0);
            diags.push(files.diag(&Place { file: main, span }, lockout.to_string()));
        }
    }
    config
}

fn settings(files: &Files, main: FileId, raw: &FirewallRaw, diags: &mut Diagnostics) -> Settings {
    let defaults = Settings::default();
    let mut policy = |value: &Option<Spanned<String>>, field, default| match value {
        None => default,
        Some(v) => text::parse_policy(field, v.get_ref()).unwrap_or_else(|e| {
            let place = Place {
                file: main,
                span: v.span(),
            };
            diags.push(files.diag(&place, e.to_string()));
            default
        }),
    };
    let default_input = policy(&raw.default_input, "default_input", defaults.default_input);
    let default_output = policy(
        &raw.default_output,
        "default_output",
        defaults.default_output,
    );
    let default_forward = policy(
        &raw.default_forward,
        "default_forward",
        defaults.default_forward,
    );
    let admin_ports = match &raw.admin_port {
        None => defaults.admin_ports,
        Some(ports) => {
            let place = Place {
                file: main,
                span: ports.span(),
            };
            let values: Vec<String> = match ports.get_ref() {
                OneOrMany::One(p) => vec![port_text(p)],
                OneOrMany::Many(list) => list.iter().map(port_text).collect(),
            };
            let parsed: Result<Vec<u16>, FieldError> =
                values.iter().map(|v| single_port(v)).collect();
            parsed.unwrap_or_else(|e| {
                diags.push(files.diag(&place, format!("admin_port: {}", e.message)));
                Vec::new()
            })
        }
    };
    Settings {
        enabled: raw.enabled.as_ref().is_some_and(|e| *e.get_ref()),
        default_input,
        default_output,
        default_forward,
        admin_ports,
    }
}

/// The path shown for a file of `firewall.d`: `firewall.d/NAME.toml`.
fn shown(files: &Files, id: FileId) -> String {
    let name = files
        .path(id)
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    format!("firewall.d/{name}")
}

/// One `firewall.d` file: its `[[rule]]`s and `[[forward]]`s, in file order.
fn drop_in(files: &Files, id: FileId, config: &mut FirewallConfig, diags: &mut Diagnostics) {
    let text = files.text(id);
    let root = match DeTable::parse(text) {
        Ok(root) => root.into_inner(),
        Err(e) => {
            diags.push(toml_error(files, id, &e));
            return;
        }
    };
    let mut items = Vec::new();
    for (key, value) in root {
        let place = Place {
            file: id,
            span: key.span(),
        };
        let kind = key.get_ref().to_string();
        match (kind.as_str(), value.into_inner()) {
            ("rule" | "forward", DeValue::Array(array)) => {
                for item in array {
                    let span = item.span();
                    match item.into_inner() {
                        DeValue::Table(table) => {
                            items.push((kind.clone(), Place { file: id, span }, table))
                        }
                        _ => diags.push(
                            files.diag(&place, format!("write each {kind} as a [[{kind}]] table")),
                        ),
                    }
                }
            }
            ("rule" | "forward", _) => {
                diags.push(files.diag(&place, format!("write each {kind} as a [[{kind}]] table")))
            }
            (other, _) => diags.push(files.diag(
                &place,
                format!(
                    "unknown key `{other}` (firewall.d files hold [[rule]] and [[forward]] tables)"
                ),
            )),
        }
    }
    items.sort_by_key(|(_, place, _)| place.span.start);
    let file = shown(files, id);
    for (kind, place, table) in items {
        let line = files.diag(&place, "").line;
        if kind == "rule" {
            let Some(raw) = parse_table::<RuleRaw>(files, &place, table, diags) else {
                continue;
            };
            match rule(&raw) {
                Ok(item) => config.rules.push(FileEntry {
                    file: file.clone(),
                    line,
                    item,
                }),
                Err((span, e)) => diags.push(files.diag(&Place { file: id, span }, e.to_string())),
            }
        } else {
            let Some(raw) = parse_table::<ForwardRaw>(files, &place, table, diags) else {
                continue;
            };
            match forward(&raw) {
                Ok(item) => {
                    let overlapped = config.forwards.iter().find(|f| f.item.overlaps(&item));
                    let admin = &config.settings.admin_ports;
                    if let Err(lockout) = lockout::check_forward(&item, None, admin) {
                        let place = Place {
                            file: id,
                            span: raw.port.span(),
                        };
                        diags.push(files.diag(&place, format!("port: {lockout}")));
                        continue;
                    }
                    match overlapped {
                        Some(other) => diags.push(files.diag(
                            &Place {
                                file: id,
                                span: raw.port.span(),
                            },
                            format!(
                                "port: this forward overlaps the one at {}:{} ({})",
                                other.file, other.line, other.item
                            ),
                        )),
                        None => config.forwards.push(FileEntry {
                            file: file.clone(),
                            line,
                            item,
                        }),
                    }
                }
                Err((span, e)) => diags.push(files.diag(&Place { file: id, span }, e.to_string())),
            }
        }
    }
}

type Located<T> = Result<T, (std::ops::Range<usize>, FieldError)>;

/// `result`, its error placed at `span`.
fn at<T>(span: std::ops::Range<usize>, result: Result<T, FieldError>) -> Located<T> {
    result.map_err(|e| (span, e))
}

fn rule(raw: &RuleRaw) -> Located<Rule> {
    let chain = match &raw.chain {
        Some(c) => at(c.span(), text::parse_chain(c.get_ref()))?,
        None => nftjail_core::firewall::Chain::Input,
    };
    let protocol = at(
        raw.protocol.span(),
        text::parse_protocol(raw.protocol.get_ref()),
    )?;
    let values: Vec<String> = match raw.port.get_ref() {
        OneOrMany::One(p) => vec![port_text(p)],
        OneOrMany::Many(list) => list.iter().map(port_text).collect(),
    };
    let ports = at(raw.port.span(), ports_of(&values))?;
    let source = match &raw.source {
        Some(s) => Some(at(s.span(), text::parse_source(s.get_ref()))?),
        None => None,
    };
    let action = at(raw.action.span(), text::parse_action(raw.action.get_ref()))?;
    let comment = raw.comment.as_ref().map_or("", |c| c.get_ref().as_str());
    let protected = raw.protected.unwrap_or(false);
    Rule::new(chain, protocol, &ports, source, action, comment, protected).map_err(|e| {
        let span = match e.field {
            "comment" => raw.comment.as_ref().map(Spanned::span),
            _ => None,
        };
        (span.unwrap_or_else(|| raw.port.span()), e)
    })
}

fn forward(raw: &ForwardRaw) -> Located<Forward> {
    let protocol = at(
        raw.protocol.span(),
        text::parse_protocol(raw.protocol.get_ref()),
    )?;
    let port = at(raw.port.span(), single_port(&port_text(raw.port.get_ref())))?;
    let to = at(raw.to.span(), text::parse_to(raw.to.get_ref()))?;
    let source = match &raw.source {
        Some(s) => Some(at(s.span(), text::parse_source(s.get_ref()))?),
        None => None,
    };
    let comment = raw.comment.as_ref().map_or("", |c| c.get_ref().as_str());
    Forward::new(protocol, port, to, source, comment).map_err(|e| {
        let span = match e.field {
            "source" => raw.source.as_ref().map(Spanned::span),
            "comment" => raw.comment.as_ref().map(Spanned::span),
            _ => None,
        };
        (span.unwrap_or_else(|| raw.to.span()), e)
    })
}

#[cfg(test)]
mod tests;
