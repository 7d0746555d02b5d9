//! fail2ban's jail configuration → an nftjail configuration directory.
//!
//! Receives fail2ban's configuration directory (read by core's [`Fail2banJails`] exactly as
//! `fail2ban-client` reads it: jail.conf, jail.d/*.conf, jail.local, jail.d/*.local,
//! paths-*.conf, `[DEFAULT]`, interpolation). Emits the files of an nftjail configuration
//! (`nftjail.toml`, `jail.d/NAME.toml` per enabled jail, `filter.d/` with the fail2ban filter
//! files the jails use and their `.local`s and includes) and a report: each jail converted, and
//! everything not carried over, with the reason. Never drops a key or construct silently: what
//! it does not carry over is in the report.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use nftjail_core::fail2ban::{
    Fail2banFilter, Fail2banJail, Fail2banJails, FilterSpec, LoadSettings, Severity,
};

use super::seconds::{nftjail_text, str2seconds};
use super::{Note, Report};
use crate::fail2ban::FileLoader;

/// A converted configuration: files relative to the output directory, and the report.
#[derive(Debug, Default)]
pub struct Conversion {
    pub files: Vec<(PathBuf, String)>,
    pub report: Report,
}

/// Ban actions: names (or prefixes) of fail2ban actions that only ban an address on this host.
const BAN_ACTIONS: [&str; 10] = [
    "iptables",
    "ip6tables",
    "nftables",
    "firewallcmd",
    "shorewall",
    "ufw",
    "route",
    "pf",
    "npf",
    "ipfw",
];

/// Keys of a jail that only fail2ban's own machinery uses: nothing to carry over.
const FAIL2BAN_ONLY: [&str; 3] = ["maxmatches", "chain", "logencoding"];

/// Converts the fail2ban configuration in `config_dir`, as of `now`.
pub fn convert(config_dir: &Path, now: i64) -> Conversion {
    let settings = LoadSettings::new(config_dir, now);
    let (jails, findings) = Fail2banJails::load(&FileLoader, config_dir, &settings);
    let mut conversion = Conversion::default();
    let enabled: Vec<&Fail2banJail> = jails.iter().filter(|jail| jail.enabled).collect();
    // What fail2ban's reader found: errors always; warnings only about enabled jails.
    for finding in &findings {
        let about_disabled = jails.iter().any(|jail| {
            !jail.enabled
                && finding
                    .message
                    .starts_with(&format!("jail {:?}", jail.name))
        });
        if finding.severity == Severity::Error || !about_disabled {
            conversion.report.notes.push(Note {
                jail: None,
                text: finding.to_diagnostic().to_string(),
                error: finding.is_error(),
            });
        }
    }
    let disabled: Vec<&str> = jails
        .iter()
        .filter(|jail| !jail.enabled)
        .map(|jail| jail.name.as_str())
        .collect();
    conversion.report.disabled = disabled.iter().map(|name| name.to_string()).collect();
    if enabled
        .iter()
        .any(|jail| jail.get("usedns") == Some("warn"))
    {
        conversion.report.notes.push(Note {
            jail: None,
            text: "usedns = warn (fail2ban's default): nftjail matches addresses only; a log line that names a host instead of an address is not counted".into(),
            error: false,
        });
    }
    let mut copied: Vec<PathBuf> = Vec::new();
    for jail in enabled {
        match convert_jail(jail, config_dir, now, &mut conversion, &mut copied) {
            Ok(text) => {
                conversion
                    .files
                    .push((PathBuf::from(format!("jail.d/{}.toml", jail.name)), text));
                conversion.report.converted.push(jail.name.clone());
            }
            Err(reason) => conversion.report.notes.push(Note {
                jail: Some(jail.name.clone()),
                text: format!("not converted: {reason}"),
                error: true,
            }),
        }
    }
    conversion
        .files
        .insert(0, (PathBuf::from("nftjail.toml"), main_file(config_dir)));
    conversion
}

fn main_file(config_dir: &Path) -> String {
    format!(
        "# nftjail's configuration, converted from fail2ban's ({}) by `nftjail import-fail2ban`.\n\
         # Each enabled fail2ban jail is a file in jail.d/ with its effective values (fail2ban's\n\
         # [DEFAULT] merged in), using fail2ban's own filter files, copied to filter.d/.\n\
         # Check it with `nftjail check --config THIS_FILE`; see the README's \"Migrating from\n\
         # fail2ban\" for what carries over.\n\n\
         [daemon]\n\
         # socket = \"/run/nftjail/nftjail.sock\"\n\
         # state_dir = \"/var/lib/nftjail\"\n\n\
         [nftables]\n\
         # table = \"nftjail\"\n\
         # hooks = [\"input\", \"forward\"]\n",
        config_dir.display()
    )
}

fn quote(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|item| quote(item)).collect();
    format!("[{}]", quoted.join(", "))
}

/// A duration key as nftjail writes it; an error names the fail2ban text.
fn duration(jail: &Fail2banJail, key: &str) -> Result<Option<String>, String> {
    let Some(text) = jail.get(key) else {
        return Ok(None);
    };
    let seconds = str2seconds(text)
        .ok_or_else(|| format!("{key} = {text:?} is not a duration nftjail reads"))?;
    Ok(Some(nftjail_text(seconds)))
}

fn truthy(text: &str) -> bool {
    matches!(
        text.trim().to_ascii_lowercase().as_str(),
        "1" | "on" | "true" | "yes"
    )
}

fn note(conversion: &mut Conversion, jail: &str, text: String) {
    conversion.report.notes.push(Note {
        jail: Some(jail.to_string()),
        text,
        error: false,
    });
}

fn convert_jail(
    jail: &Fail2banJail,
    config_dir: &Path,
    now: i64,
    conversion: &mut Conversion,
    copied: &mut Vec<PathBuf>,
) -> Result<String, String> {
    let name = &jail.name;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "# fail2ban jail [{name}], converted by nftjail import-fail2ban."
    );
    let _ = writeln!(text, "[{name}]\nenabled = true");
    let backend = jail.get("backend").unwrap_or("auto").trim().to_string();
    let journal = backend.starts_with("systemd");
    let spec = jail.filter.clone();
    let recidive = spec.as_ref().is_some_and(|spec| spec.name == "recidive");
    let allports = banaction_allports(jail);
    if recidive {
        let _ = writeln!(text, "filter = \"recidive\"");
        let maxbans = jail.get("maxretry").unwrap_or("5");
        let _ = writeln!(
            text,
            "maxbans = {}",
            maxbans
                .trim()
                .parse::<i64>()
                .map_err(|_| format!("maxretry = {maxbans:?} is not a number"))?
        );
        note(conversion, name, "recidive becomes nftjail's native recidive: it counts the bans of the other jails itself instead of reading fail2ban.log".into());
    } else if let Some(spec) = &spec {
        let reference = copy_filter(spec, config_dir, &backend, now, conversion, copied)?;
        let _ = writeln!(text, "filter = {}", quote(&reference));
        if journal {
            let _ = writeln!(text, "backend = \"journal\"");
            if let Some(options) = backend
                .strip_prefix("systemd")
                .filter(|o| !o.trim().is_empty())
            {
                note(
                    conversion,
                    name,
                    format!(
                        "backend options {options:?} are not carried over (nftjail reads the system journal, or journalpath = […])"
                    ),
                );
            }
            // Written out (the filter's, then the jail's, as fail2ban adds them), so that a
            // journalmatch of another drop-in for the same jail cannot replace them.
            let mut words: Vec<String> = Vec::new();
            for line in jail.journalmatch.iter().filter(|l| !l.is_empty()) {
                if !words.is_empty() {
                    words.push("+".into());
                }
                words.extend(line.iter().cloned());
            }
            if !words.is_empty() {
                let _ = writeln!(text, "journalmatch = {}", list(&words));
            }
        } else {
            // fail2ban's file backends never read the journal: neither does the jail, whatever
            // another drop-in for it says.
            let file_backend = if backend == "polling" {
                "polling"
            } else {
                "file"
            };
            let _ = writeln!(text, "backend = {}", quote(file_backend));
            let paths: Vec<String> = jail
                .logpath
                .iter()
                .map(|(path, _)| path.trim().to_string())
                .filter(|path| !path.is_empty())
                .collect();
            if paths.is_empty() {
                return Err("no logpath".into());
            }
            let _ = writeln!(text, "logpath = {}", list(&paths));
            if jail.logpath.iter().any(|(_, mode)| mode == "tail") {
                note(conversion, name, "logpath … tail: nftjail starts new logs at their end and keeps its read position".into());
            }
        }
        for key in ["datepattern", "logtimezone"] {
            if let Some(value) = jail.get(key).filter(|v| !v.trim().is_empty()) {
                let _ = writeln!(text, "{key} = {}", quote(value.trim()));
            }
        }
    } else {
        note(
            conversion,
            name,
            "no filter: a jail for manual bans (nftjail ban)".into(),
        );
    }
    if allports || recidive {
        let _ = writeln!(text, "port = [\"all\"]");
    } else if let Some(port) = jail.port.as_deref().filter(|p| !p.trim().is_empty()) {
        let words: Vec<String> = port
            .split([',', ' ', '\n'])
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect();
        let _ = writeln!(text, "port = {}", list(&words));
    }
    if let Some(protocol) = jail.protocol.as_deref().filter(|p| !p.trim().is_empty()) {
        let _ = writeln!(text, "protocol = {}", quote(protocol.trim()));
    }
    if !recidive && let Some(maxretry) = jail.get("maxretry") {
        let maxretry: i64 = maxretry
            .trim()
            .parse()
            .map_err(|_| format!("maxretry = {maxretry:?} is not a number"))?;
        let _ = writeln!(text, "maxretry = {maxretry}");
    }
    for key in ["findtime", "bantime"] {
        if let Some(value) = duration(jail, key)? {
            let _ = writeln!(text, "{key} = {}", quote(&value));
        }
    }
    if !jail.ignoreip.is_empty() {
        let _ = writeln!(text, "ignoreip = {}", list(&jail.ignoreip));
    }
    if let Some(ignoreself) = jail.get("ignoreself") {
        let _ = writeln!(text, "ignoreself = {}", truthy(ignoreself));
    }
    escalation(jail, &mut text)?;
    report_leftovers(jail, conversion);
    Ok(text)
}

/// `[NAME.escalation]` from `bantime.*`.
fn escalation(jail: &Fail2banJail, text: &mut String) -> Result<(), String> {
    let increment = jail.get("bantime.increment").is_some_and(truthy);
    if !increment {
        return Ok(());
    }
    let _ = writeln!(text, "\n[{}.escalation]\nincrement = true", jail.name);
    if let Some(factor) = jail.get("bantime.factor").filter(|f| !f.trim().is_empty()) {
        let value: f64 = factor
            .trim()
            .parse()
            .map_err(|_| format!("bantime.factor = {factor:?} is not a number"))?;
        let _ = writeln!(text, "factor = {value:?}");
    }
    if let Some(multipliers) = jail
        .get("bantime.multipliers")
        .filter(|m| !m.trim().is_empty())
    {
        let values: Result<Vec<f64>, _> = multipliers.split_whitespace().map(str::parse).collect();
        let values = values.map_err(|_| {
            format!("bantime.multipliers = {multipliers:?} is not a list of numbers")
        })?;
        let written: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
        let _ = writeln!(text, "multipliers = [{}]", written.join(", "));
    }
    for (key, name) in [
        ("bantime.maxtime", "maxtime"),
        ("bantime.rndtime", "rndtime"),
    ] {
        if let Some(value) = duration(jail, key)?.filter(|v| v != "0") {
            let _ = writeln!(text, "{name} = {}", quote(&value));
        }
    }
    if let Some(overall) = jail.get("bantime.overalljails") {
        let _ = writeln!(text, "overalljails = {}", truthy(overall));
    }
    Ok(())
}

/// Whether the jail bans on all ports (its ban action is an `allports` one).
fn banaction_allports(jail: &Fail2banJail) -> bool {
    jail.actions
        .iter()
        .any(|action| action.name.contains("allports") || action.option("type") == Some("allports"))
        || matches!(
            jail.banaction_kind,
            Some(nftjail_core::fail2ban::BanactionKind::AllPorts)
        )
}

/// Everything of the jail that has no nftjail equivalent, in the report.
fn report_leftovers(jail: &Fail2banJail, conversion: &mut Conversion) {
    let name = &jail.name;
    for action in &jail.actions {
        let bans = BAN_ACTIONS
            .iter()
            .any(|prefix| action.name.trim().starts_with(prefix));
        if !bans {
            note(
                conversion,
                name,
                format!(
                    "action {:?} is not carried over: nftjail bans into its own nftables sets; for mail or a webhook use on_ban (see the README's Hooks)",
                    action.name.trim()
                ),
            );
        }
    }
    if jail.get("usedns").is_some_and(|v| v.trim() == "yes") {
        note(conversion, name, "usedns = yes is not carried over: nftjail never resolves host names, it bans the addresses the logs name".into());
    }
    for key in ["ignorecommand", "ignorecache", "bantime.formula"] {
        if let Some(value) = jail.get(key).filter(|v| !v.trim().is_empty()) {
            note(
                conversion,
                name,
                format!("{key} = {value:?} is not carried over (nftjail has no equivalent)"),
            );
        }
    }
    for key in ["failregex", "ignoreregex", "prefregex", "maxlines"] {
        if let Some(value) = jail.get(key).filter(|v| !v.trim().is_empty()) {
            note(
                conversion,
                name,
                format!(
                    "{key} set in the jail ({value:?}) is not carried over: put it in a filter.d/NAME.local"
                ),
            );
        }
    }
    for key in FAIL2BAN_ONLY {
        if let Some(value) = jail.get(key) {
            let default = match key {
                "maxmatches" => jail.get("maxretry").unwrap_or_default() == value,
                "logencoding" => value.trim() == "auto",
                _ => true,
            };
            if !default {
                note(
                    conversion,
                    name,
                    format!("{key} = {value:?} is not carried over (fail2ban's own bookkeeping)"),
                );
            }
        }
    }
}

/// Copies the files of the jail's filter into `filter.d/` (once each) and returns the reference
/// the nftjail jail uses (`NAME.conf[options]`).
fn copy_filter(
    spec: &FilterSpec,
    config_dir: &Path,
    backend: &str,
    now: i64,
    conversion: &mut Conversion,
    copied: &mut Vec<PathBuf>,
) -> Result<String, String> {
    let mut settings = LoadSettings::new(config_dir, now);
    settings.backend = Some(backend.to_string());
    let filter = Fail2banFilter::load(&FileLoader, spec, &settings).map_err(|findings| {
        let first = findings
            .iter()
            .find(|finding| finding.is_error())
            .or(findings.first())
            .map_or_else(|| "unknown error".to_string(), ToString::to_string);
        format!("its filter {:?} does not load: {first}", spec.name)
    })?;
    let filter_dir = config_dir.join("filter.d");
    for file in filter.files() {
        let relative = file
            .strip_prefix(&filter_dir)
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| PathBuf::from(file.file_name().unwrap_or_default()));
        let target = PathBuf::from("filter.d").join(relative);
        if copied.contains(&target) {
            continue;
        }
        let text =
            std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        copied.push(target.clone());
        conversion
            .files
            .push((target, String::from_utf8_lossy(&text).into_owned()));
    }
    let stem = Path::new(spec.name.trim())
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = stem
        .strip_suffix(".conf")
        .or_else(|| stem.strip_suffix(".local"))
        .unwrap_or(&stem)
        .to_string();
    let mut reference = FilterSpec {
        name: format!("{stem}.conf"),
        options: spec.options.clone(),
    }
    .to_string();
    if spec.options.is_empty() {
        reference = format!("{stem}.conf");
    }
    Ok(reference)
}
