//! Validation of one jail: its layers (`[defaults]`, then each drop-in that names it) merged key
//! by key, the last file winning, and every value checked where it was written.

use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

use super::files::{FileId, Files, Place};
use super::filters::FilterCache;
use super::ports::parse_ports;
use super::raw::{EscalationRaw, JailRaw, OneOrMany, PortRaw};
use super::{BanTime, CompiledFilter, FilterChoice, JailConfig, JailKind, Ports, Protocol, Source};
use crate::fail2ban::Fail2banOptions;
use nftjail_core::addr::BanTarget;
use nftjail_core::diag::{Diagnostic, Diagnostics};
use nftjail_core::filter::FilterOptions;
use nftjail_core::jail::JailName;
use nftjail_core::tracker::{Escalation, IgnoreList, JailPolicy};

/// Built-in defaults, as fail2ban's jail.conf has them.
const MAXRETRY: i64 = 5;
const FINDTIME: u64 = 600;
const BANTIME: u64 = 600;
const MAXTRACKED: i64 = 100_000;

/// The layers of one jail, lowest first: `[defaults]` of the main file, then each drop-in table.
pub struct Layers<'a> {
    pub files: &'a Files,
    pub layers: Vec<(FileId, &'a JailRaw)>,
    pub name: &'a JailName,
    /// The jail's first table header.
    pub place: &'a Place,
}

impl Layers<'_> {
    /// The value of a key from the last layer that sets it, with its file.
    pub(super) fn pick<T>(&self, get: impl Fn(&JailRaw) -> Option<&T>) -> Option<(FileId, &T)> {
        self.layers
            .iter()
            .rev()
            .find_map(|(id, raw)| get(raw).map(|v| (*id, v)))
    }

    /// Like `pick`, for a key of the `escalation` sub-table.
    pub(super) fn pick_escalation<T>(
        &self,
        get: impl Fn(&EscalationRaw) -> Option<&T>,
    ) -> Option<(FileId, &T)> {
        self.layers
            .iter()
            .rev()
            .find_map(|(id, raw)| raw.escalation.as_ref().and_then(&get).map(|v| (*id, v)))
    }

    /// The `port` in force. `[defaults] port = "all"` is fail2ban's `banaction =
    /// nftables-allports`: it wins over the ports listed by the table that defines the jail (a
    /// shipped `jail.d/10-NAME.toml`, say); a `port` set for the jail again in a later drop-in
    /// (`jail.d/99-local.toml`) wins over it. Any other `[defaults] port` only fills in for
    /// jails that list none.
    pub(super) fn pick_port(&self) -> Option<(FileId, &Spanned<OneOrMany<PortRaw>>)> {
        fn port<'r>(
            (id, raw): &(FileId, &'r JailRaw),
        ) -> Option<(FileId, &'r Spanned<OneOrMany<PortRaw>>)> {
            raw.port.as_ref().map(|v| (*id, v))
        }
        if let Some(again) = self.layers.iter().skip(2).rev().find_map(port) {
            return Some(again);
        }
        let defaults = self.layers.first().and_then(port);
        if defaults.is_some_and(|(_, v)| port_words_are_all(v.get_ref())) {
            return defaults;
        }
        self.pick(|r| r.port.as_ref())
    }

    fn place<T>(&self, file: FileId, value: &Spanned<T>) -> Place {
        Place {
            file,
            span: value.span(),
        }
    }

    fn diag<T>(&self, file: FileId, value: &Spanned<T>, message: impl Into<String>) -> Diagnostic {
        self.files.diag(&self.place(file, value), message)
    }
}

/// Validates one jail; `filter_files` are the `filter.d/*.toml` paths (a jail's filter is looked
/// up there first, then among the built-ins).
pub fn validate_jail(
    l: &Layers<'_>,
    filters: &mut FilterCache,
    warnings: &mut Vec<Diagnostic>,
) -> Result<JailConfig, Diagnostics> {
    let mut diags = Diagnostics::default();
    let name = l.name.clone();
    let enabled = l
        .pick(|r| r.enabled.as_ref())
        .is_some_and(|(_, e)| *e.get_ref());

    let int = |key: &str,
               v: Option<(FileId, &Spanned<i64>)>,
               min: i64,
               default: i64,
               diags: &mut Diagnostics| match v {
        Some((f, s)) if *s.get_ref() < min => {
            diags.push(l.diag(
                f,
                s,
                format!("{key} must be at least {min}, not {}", s.get_ref()),
            ));
            default
        }
        Some((_, s)) => *s.get_ref(),
        None => default,
    };
    let maxretry = int(
        "maxretry",
        l.pick(|r| r.maxretry.as_ref()),
        1,
        MAXRETRY,
        &mut diags,
    );
    let maxtracked = int(
        "maxtracked",
        l.pick(|r| r.maxtracked.as_ref()),
        1,
        MAXTRACKED,
        &mut diags,
    );
    let findtime = match l.pick(|r| r.findtime.as_ref()) {
        Some((f, s)) if s.get_ref().as_secs() == 0 => {
            diags.push(l.diag(f, s, "findtime must be longer than 0"));
            FINDTIME
        }
        Some((_, s)) => s.get_ref().as_secs(),
        None => FINDTIME,
    };
    let bantime = l
        .pick(|r| r.bantime.as_ref())
        .map_or(BanTime::For(Duration::from_secs(BANTIME)), |(_, b)| {
            *b.get_ref()
        });
    let fold_v6 = match l.pick(|r| r.ipv6_prefix.as_ref()) {
        Some((f, s)) if !(1..=128).contains(s.get_ref()) => {
            diags.push(l.diag(
                f,
                s,
                format!("ipv6_prefix must be between 1 and 128, not {}", s.get_ref()),
            ));
            None
        }
        Some((_, s)) if *s.get_ref() == 128 => None,
        Some((_, s)) => Some(*s.get_ref() as u8),
        None => None,
    };

    let escalation = escalation(l, &mut diags);
    let ignore = ignore_list(l, &mut diags, warnings);
    let (ports, protocols) = ports_and_protocols(l, &mut diags);
    let kind = kind(l, filters, &mut diags);
    let recidive = match kind {
        JailKind::Recidive => Some(int(
            "maxbans",
            l.pick(|r| r.maxbans.as_ref()),
            1,
            maxretry,
            &mut diags,
        ) as u32),
        _ => {
            if let Some((f, s)) = l.pick(|r| r.maxbans.as_ref()) {
                diags.push(l.diag(
                    f,
                    s,
                    "maxbans only applies to the recidive jail (filter = \"recidive\")",
                ));
            }
            None
        }
    };
    let command =
        |v: Option<(FileId, &Spanned<Vec<String>>)>, key: &str, diags: &mut Diagnostics| {
            let (f, s) = v?;
            if s.get_ref().is_empty() || s.get_ref()[0].is_empty() {
                diags.push(l.diag(
                    f,
                    s,
                    format!("{key} needs a program: [\"/path/to/program\", \"arg\", …]"),
                ));
                return None;
            }
            Some(s.get_ref().clone())
        };
    let on_ban = command(l.pick(|r| r.on_ban.as_ref()), "on_ban", &mut diags);
    let on_unban = command(l.pick(|r| r.on_unban.as_ref()), "on_unban", &mut diags);

    if !diags.is_empty() {
        return Err(diags);
    }
    let policy = JailPolicy {
        name: name.clone(),
        maxretry: u32::try_from(maxretry).unwrap_or(u32::MAX),
        findtime,
        bantime,
        escalation,
        ignore: Arc::new(ignore),
        fold_v6,
        maxtracked: usize::try_from(maxtracked).unwrap_or(usize::MAX),
        recidive,
        ignoreself: l
            .pick(|r| r.ignoreself.as_ref())
            .is_none_or(|(_, b)| *b.get_ref()),
    };
    let mut jail = JailConfig {
        name,
        enabled,
        kind,
        ports,
        protocols,
        policy,
        on_ban,
        on_unban,
        settings: Vec::new(),
    };
    jail.settings = super::effective::settings(l, &jail);
    Ok(jail)
}

fn escalation(l: &Layers<'_>, diags: &mut Diagnostics) -> Escalation {
    let mut e = Escalation {
        increment: l
            .pick_escalation(|e| e.increment.as_ref())
            .is_some_and(|(_, v)| *v.get_ref()),
        maxtime: l
            .pick_escalation(|e| e.maxtime.as_ref())
            .map(|(_, s)| s.get_ref().as_secs()),
        rndtime: l
            .pick_escalation(|e| e.rndtime.as_ref())
            .map(|(_, s)| s.get_ref().as_secs()),
        overalljails: l
            .pick_escalation(|e| e.overalljails.as_ref())
            .is_some_and(|(_, v)| *v.get_ref()),
        ..Escalation::default()
    };
    if let Some((f, factor)) = l.pick_escalation(|e| e.factor.as_ref()) {
        if *factor.get_ref() > 0.0 && factor.get_ref().is_finite() {
            e.factor = *factor.get_ref();
        } else {
            diags.push(l.diag(
                f,
                factor,
                format!(
                    "escalation factor must be a positive number, not {}",
                    factor.get_ref()
                ),
            ));
        }
    }
    if let Some((f, m)) = l.pick_escalation(|e| e.multipliers.as_ref()) {
        if !m.get_ref().is_empty() && m.get_ref().iter().all(|x| *x > 0.0 && x.is_finite()) {
            e.multipliers = m.get_ref().clone();
        } else {
            diags.push(l.diag(
                f,
                m,
                "escalation multipliers must be a non-empty list of positive numbers",
            ));
        }
    }
    e
}

fn ignore_list(
    l: &Layers<'_>,
    diags: &mut Diagnostics,
    warnings: &mut Vec<Diagnostic>,
) -> IgnoreList {
    let mut list = IgnoreList::default();
    // fail2ban's default: loopback is never banned unless ignoreip says otherwise.
    if l.pick(|r| r.ignoreip.as_ref()).is_none() {
        list.insert("127.0.0.0/8".parse().expect("invariant: literal prefix"));
        list.insert("::1".parse().expect("invariant: literal address"));
    }
    if let Some((f, entry)) = l.pick(|r| r.ignoreip.as_ref()) {
        for text in entry.get_ref().clone().into_vec() {
            // fail2ban allows several entries in one string, separated by spaces or commas.
            for word in text.split([' ', ',']).filter(|w| !w.is_empty()) {
                match word.parse::<BanTarget>() {
                    Ok(t) => list.insert(t),
                    Err(_) if word.contains('/') || word.parse::<f64>().is_ok() => {
                        diags.push(l.diag(f, entry, format!("ignoreip: {word:?} is not an address, CIDR prefix or host name")));
                    }
                    Err(_) => match resolve(word, RESOLVE_TIMEOUT) {
                        Ok(addrs) => addrs.into_iter().for_each(|a| list.insert(BanTarget::addr(a))),
                        Err(e) => warnings.push(l.diag(f, entry, format!("ignoreip: host name {word:?} does not resolve ({e}); it is not ignored"))),
                    },
                }
            }
        }
    }
    list
}

/// How long a host name in `ignoreip` may take to resolve before it is reported and skipped.
const RESOLVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Resolves `name` on a thread of its own, giving up after `timeout` (a stuck resolver must not
/// hold up a reload; the thread finishes on its own).
fn resolve(name: &str, timeout: std::time::Duration) -> std::io::Result<Vec<std::net::IpAddr>> {
    let (tx, rx) = std::sync::mpsc::channel();
    let owned = name.to_string();
    std::thread::Builder::new()
        .name("resolve".into())
        .spawn(move || {
            let result = (owned.as_str(), 0)
                .to_socket_addrs()
                .map(|addrs| addrs.map(|a| a.ip()).collect::<Vec<_>>());
            let _ = tx.send(result);
        })?;
    rx.recv_timeout(timeout).unwrap_or_else(|_| {
        Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer within {} s", timeout.as_secs()),
        ))
    })
}

/// A `logpath` entry split as fail2ban reads it: the path, and whether it ends with the option
/// `tail` (a file seen for the first time is read from its end, not from `findtime` ago;
/// `head`, the default, may be written too).
pub(super) fn logpath_entry(entry: &str) -> (&str, bool) {
    let entry = entry.trim();
    match entry.rsplit_once(char::is_whitespace) {
        Some((path, "tail")) => (path.trim_end(), true),
        Some((path, "head")) => (path.trim_end(), false),
        _ => (entry, false),
    }
}

/// Whether a `logpath` entry (a path, or a pattern with `*`/`?` in its last component) names
/// an existing file now.
fn any_file_exists(pattern: &str) -> bool {
    let path = std::path::Path::new(pattern);
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    if !name.contains(['*', '?']) {
        return path.is_file();
    }
    let dir = path.parent().unwrap_or(std::path::Path::new("/"));
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.filter_map(Result::ok).any(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| crate::source::files::wildcard(name.as_bytes(), n.as_bytes()))
        })
    })
}

/// The words of a `port` value, as text.
fn port_words(values: &OneOrMany<PortRaw>) -> Vec<String> {
    values
        .clone()
        .into_vec()
        .into_iter()
        .map(|p| match p {
            PortRaw::Number(n) => n.to_string(),
            PortRaw::Text(t) => t,
        })
        .collect()
}

/// Whether a `port` value says every port (`"all"`).
fn port_words_are_all(values: &OneOrMany<PortRaw>) -> bool {
    matches!(
        parse_ports(port_words(values).iter().map(String::as_str)),
        Ok(Ports::All)
    )
}

fn ports_and_protocols(l: &Layers<'_>, diags: &mut Diagnostics) -> (Ports, Vec<Protocol>) {
    let ports = match l.pick_port() {
        None => Ports::All,
        Some((f, values)) => {
            let words = port_words(values.get_ref());
            match parse_ports(words.iter().map(String::as_str)) {
                Ok(p) => p,
                Err(e) => {
                    diags.push(l.diag(f, values, format!("port: {e}")));
                    Ports::All
                }
            }
        }
    };
    let mut protocols = Vec::new();
    match l.pick(|r| r.protocol.as_ref()) {
        None => protocols.push(Protocol::Tcp),
        Some((f, values)) => {
            for word in values
                .get_ref()
                .clone()
                .into_vec()
                .iter()
                .flat_map(|w| w.split(',').map(str::trim).collect::<Vec<_>>())
            {
                let new: &[Protocol] = match word.to_ascii_lowercase().as_str() {
                    "tcp" => &[Protocol::Tcp],
                    "udp" => &[Protocol::Udp],
                    "all" => &[Protocol::Tcp, Protocol::Udp],
                    other => {
                        diags.push(l.diag(
                            f,
                            values,
                            format!("protocol {other:?}: use \"tcp\", \"udp\" or \"all\""),
                        ));
                        &[]
                    }
                };
                for p in new {
                    if !protocols.contains(p) {
                        protocols.push(*p);
                    }
                }
            }
        }
    }
    (ports, protocols)
}

/// What feeds the jail: a log (through a filter), the other jails' bans (recidive), or nothing.
fn kind(l: &Layers<'_>, filters: &mut FilterCache, diags: &mut Diagnostics) -> JailKind {
    let filter = l.pick(|r| r.filter.as_ref());
    let (filter_name, filter_place) = match filter {
        Some((f, s)) => (s.get_ref().clone(), l.place(f, s)),
        None => (l.name.to_string(), l.place.clone()),
    };
    let logpath = l.pick(|r| r.logpath.as_ref());
    let backend = l.pick(|r| r.backend.as_ref());
    let backend_name = backend.map_or("auto", |(_, b)| b.get_ref().as_str());
    if !["auto", "file", "polling", "journal", "systemd"].contains(&backend_name) {
        let (f, b) = backend.expect("invariant: a non-default name came from a layer");
        diags.push(l.diag(
            f,
            b,
            format!("backend {backend_name:?}: use \"auto\", \"file\", \"polling\" or \"journal\""),
        ));
    }
    let journalmatch = l.pick(|r| r.journalmatch.as_ref());
    // `auto` with both a logpath and a journalmatch reads the files if any of them exists, and
    // the journal otherwise: one jail file serves hosts with and without a syslog daemon.
    let journal = match backend_name {
        "journal" | "systemd" => true,
        "auto" => {
            journalmatch.is_some()
                && logpath.is_none_or(|(_, p)| {
                    !p.get_ref()
                        .clone()
                        .into_vec()
                        .iter()
                        .any(|entry| any_file_exists(logpath_entry(entry).0))
                })
        }
        _ => false,
    };

    if filter_name == "recidive" {
        if let Some((f, p)) = logpath {
            diags.push(l.diag(f, p, "the recidive jail reads no log: it counts the bans of the other jails (remove logpath)"));
        }
        return JailKind::Recidive;
    }
    let logpath = if journal { None } else { logpath };
    if logpath.is_none() && !journal {
        if let Some((f, s)) = filter {
            diags.push(l.diag(
                f,
                s,
                "this jail has a filter but nothing to read: set logpath, or backend = \"journal\"",
            ));
        }
        return JailKind::Manual;
    }
    let fail2ban = filters.is_fail2ban(&filter_name);
    if !fail2ban && !filters.exists(&filter_name) {
        diags.push(l.files.diag(
            &filter_place,
            format!(
                "unknown filter {filter_name:?} (not in filter.d/ nor among the built-in filters; a fail2ban filter is written NAME.conf or a path)"
            ),
        ));
    }
    let compiled = if fail2ban {
        compile_fail2ban(l, filters, &filter_name, journal, diags)
    } else {
        compile_filter(l, filters, &filter_name, diags)
    };
    let source = if journal {
        // A journal jail takes its filter's journalmatch (fail2ban's) unless it sets its own.
        let matches = l
            .pick(|r| r.journalmatch.as_ref())
            .map(|(_, m)| m.get_ref().clone().into_vec())
            .or_else(|| match compiled.as_ref().map(|c| &c.filter) {
                Some(CompiledFilter::Fail2ban(filter)) => {
                    let lines = filter.journalmatch();
                    (!lines.is_empty()).then(|| lines.join(&["+".to_string()][..]))
                }
                _ => None,
            })
            .unwrap_or_default();
        if let Some((f, m)) = l.pick(|r| r.journalmatch.as_ref()) {
            for word in m.get_ref().clone().into_vec() {
                if word != "+"
                    && !word.split_once('=').is_some_and(|(k, _)| {
                        !k.is_empty()
                            && k.bytes()
                                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
                    })
                {
                    diags.push(l.diag(f, m, format!("journalmatch {word:?}: write FIELD=value, e.g. \"_SYSTEMD_UNIT=ssh.service\"")));
                }
            }
        }
        let paths = l
            .pick(|r| r.journalpath.as_ref())
            .map(|(_, p)| {
                p.get_ref()
                    .clone()
                    .into_vec()
                    .into_iter()
                    .map(PathBuf::from)
                    .collect()
            })
            .unwrap_or_default();
        Source::Journal { matches, paths }
    } else {
        let (f, p) = logpath.expect("invariant: a file jail has a logpath");
        let mut paths = Vec::new();
        let mut tail = Vec::new();
        for entry in p.get_ref().clone().into_vec() {
            let (path, from_end) = logpath_entry(&entry);
            if !path.starts_with('/') {
                diags.push(l.diag(f, p, format!("logpath {path:?} must be absolute")));
            }
            if from_end {
                tail.push(path.to_string());
            }
            paths.push(path.to_string());
        }
        if paths.is_empty() {
            diags.push(l.diag(f, p, "logpath is empty"));
        }
        Source::Files {
            paths,
            poll_only: backend_name == "polling",
            tail,
        }
    };
    match compiled {
        Some(filter) => JailKind::Log { filter, source },
        // The errors are reported; the kind does not matter any more.
        None => JailKind::Manual,
    }
}

/// Loads the jail's fail2ban filter with the jail's `mode`, `datepattern` and `logtimezone` as
/// fail2ban passes jail options to its filter; the filter file's errors are reported by the
/// cache, at their file and line.
fn compile_fail2ban(
    l: &Layers<'_>,
    filters: &mut FilterCache,
    reference: &str,
    journal: bool,
    diags: &mut Diagnostics,
) -> Option<FilterChoice> {
    let mut options = Fail2banOptions {
        journal,
        ..Fail2banOptions::default()
    };
    options.mode = l
        .pick(|r| r.mode.as_ref())
        .map(|(_, m)| m.get_ref().clone());
    options.datepattern = l
        .pick(|r| r.datepattern.as_ref())
        .map(|(_, p)| p.get_ref().clone());
    if let Some((f, zone)) = l.pick(|r| r.logtimezone.as_ref()) {
        match zone.get_ref().parse::<nftjail_core::filter::LogTimeZone>() {
            Ok(nftjail_core::filter::LogTimeZone::Local) => {}
            Ok(_) => options.log_time_zone = Some(zone.get_ref().clone()),
            Err(e) => diags.push(l.diag(f, zone, format!("logtimezone: {e}"))),
        }
    }
    let filter = filters.fail2ban(reference, &options)?;
    Some(FilterChoice {
        name: reference.to_string(),
        path: filters.fail2ban_path(reference),
        filter: CompiledFilter::Fail2ban(filter),
    })
}

/// Compiles the jail's filter in its mode with its date options; every problem is reported at
/// its place (jail keys in the jail file, regexes in the filter file).
fn compile_filter(
    l: &Layers<'_>,
    filters: &mut FilterCache,
    name: &str,
    diags: &mut Diagnostics,
) -> Option<FilterChoice> {
    let file = filters.file(name)?;
    let mut options = FilterOptions::default();
    if let Some((f, mode)) = l.pick(|r| r.mode.as_ref()) {
        if file.modes().any(|m| m == mode.get_ref()) {
            options.mode = Some(mode.get_ref().clone());
        } else {
            let modes: Vec<&str> = file.modes().collect();
            diags.push(l.diag(
                f,
                mode,
                format!(
                    "filter {name:?} has no mode {:?} (its modes: {})",
                    mode.get_ref(),
                    modes.join(", ")
                ),
            ));
        }
    }
    if let Some((f, pattern)) = l.pick(|r| r.datepattern.as_ref()) {
        match pattern.get_ref().parse() {
            Ok(p) => options.datepattern = Some(p),
            Err(e) => diags.push(l.diag(f, pattern, format!("datepattern: {e}"))),
        }
    }
    if let Some((f, zone)) = l.pick(|r| r.logtimezone.as_ref()) {
        match zone.get_ref().parse::<nftjail_core::filter::LogTimeZone>() {
            Ok(z) => options.timezone = z,
            Err(e) => diags.push(l.diag(f, zone, format!("logtimezone: {e}"))),
        }
    }
    match file.compile(&options) {
        Ok(filter) => Some(FilterChoice {
            name: name.to_string(),
            path: file.path().to_path_buf(),
            filter: CompiledFilter::Native(Arc::new(filter)),
        }),
        // The filter file's own errors are reported by the cache, once for all jails.
        Err(_) => None,
    }
}
