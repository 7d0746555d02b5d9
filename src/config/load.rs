//! The high layer: reads every file, deserializes each table on its own (so one bad jail does
//! not hide the errors of the next), merges `[defaults]` and the drop-ins, and validates.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue};

use super::files::{FileId, Files, Place, toml_files};
use super::filters::FilterCache;
use super::http::{HttpRaw, validate_http};
use super::jail::{Layers, validate_jail};
use super::raw::{DaemonRaw, JailRaw, MetricsRaw, NftablesRaw};
use super::{
    Config, DEFAULT_SOCKET, DEFAULT_STATE_DIR, DaemonConfig, Hook, NftablesConfig, Verdict,
};
use nftjail_core::diag::{Diagnostic, Diagnostics};
use nftjail_core::jail::JailName;

/// Loads and validates the configuration whose main file is `main`, with `jail.d/` and
/// `filter.d/` beside it. Returns every problem of every file, or the config.
pub fn load(main: &Path) -> Result<Config, Diagnostics> {
    let mut files = Files::default();
    let mut diags = Diagnostics::default();
    let main_id = files.read(main)?;
    let dir = main
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);

    let mut sections = MainSections::default();
    for (key, place, table) in tables(&files, main_id, &mut diags) {
        match key.as_str() {
            "daemon" => sections.daemon = parse_table(&files, &place, table, &mut diags),
            "nftables" => sections.nftables = parse_table(&files, &place, table, &mut diags),
            "defaults" => sections.defaults = parse_table(&files, &place, table, &mut diags),
            "metrics" => sections.metrics = parse_table(&files, &place, table, &mut diags),
            "http" => sections.http = parse_table(&files, &place, table, &mut diags),
            "firewall" => sections.firewall = parse_table(&files, &place, table, &mut diags),
            "cluster" => {
                sections.cluster = parse_table(&files, &place, table, &mut diags).map(|c| (place, c))
            }
            other => diags.push(files.diag(
                &place,
                format!("unknown section `{other}` (nftjail.toml has [daemon], [nftables], [defaults], [metrics], [http], [firewall] and [cluster]; jails go in jail.d/*.toml, firewall rules in firewall.d/*.toml)"),
            )),
        }
    }

    // Jails: every top-level table of every jail.d file, merged key by key in file order.
    let mut jails: Vec<JailTables> = Vec::new();
    for path in toml_files(&dir.join("jail.d")).unwrap_or_else(|d| {
        diags.push(d);
        Vec::new()
    }) {
        let id = match files.read(&path) {
            Ok(id) => id,
            Err(d) => {
                diags.push(d);
                continue;
            }
        };
        for (key, place, table) in tables(&files, id, &mut diags) {
            let name: JailName = match key.parse() {
                Ok(n) => n,
                Err(e) => {
                    diags.push(files.diag(&place, e.to_string()));
                    continue;
                }
            };
            let Some(raw) = parse_table::<JailRaw>(&files, &place, table, &mut diags) else {
                continue;
            };
            match jails.iter_mut().find(|(n, ..)| *n == name) {
                Some((_, _, layers)) => layers.push((id, raw)),
                None => jails.push((name, place, vec![(id, raw)])),
            }
        }
    }

    let filter_dir = dir.join("filter.d");
    let filter_files = toml_files(&filter_dir).unwrap_or_else(|d| {
        diags.push(d);
        Vec::new()
    });

    let daemon = validate_daemon(
        &files,
        main_id,
        sections.daemon.unwrap_or_default(),
        &mut diags,
    );
    let nftables = validate_nftables(
        &files,
        main_id,
        sections.nftables.unwrap_or_default(),
        &mut diags,
    );
    let mut warnings = Vec::new();
    let metrics_listen = sections.metrics.and_then(|m| m.listen);
    let http = sections.http.and_then(|raw| {
        let (state_dir, metrics) = (&daemon.state_dir, metrics_listen.as_ref());
        validate_http(
            &files,
            main_id,
            raw,
            state_dir,
            metrics,
            &mut diags,
            &mut warnings,
        )
    });
    let metrics = metrics_listen.map(|l| l.into_inner());

    let firewall = super::firewall::load(
        &mut files,
        &dir,
        main_id,
        sections.firewall.unwrap_or_default(),
        &mut diags,
    );

    let mut filters = FilterCache::new(&filter_files, &dir);
    filters.check_all();
    let defaults = sections.defaults.unwrap_or_default();
    let mut validated = Vec::new();
    for (name, place, layers) in &jails {
        let mut all = vec![(main_id, &defaults)];
        all.extend(layers.iter().map(|(id, raw)| (*id, raw)));
        let layers = Layers {
            files: &files,
            layers: all,
            name,
            place,
        };
        match validate_jail(&layers, &mut filters, &mut warnings) {
            Ok(jail) => validated.push(jail),
            Err(d) => diags.extend(d),
        }
    }

    let cluster = sections.cluster.and_then(|(place, raw)| {
        super::cluster::validate_cluster(&files, &place, raw, &validated, &mut diags)
    });
    diags.extend(std::mem::take(&mut filters.diags));
    warnings.append(&mut filters.warnings);
    if !diags.is_empty() {
        return Err(diags);
    }
    Ok(Config {
        path: main.to_path_buf(),
        daemon,
        nftables,
        metrics,
        http,
        cluster,
        jails: validated,
        firewall,
        warnings,
        files: files
            .paths()
            .map(Path::to_path_buf)
            .chain(filter_files)
            .collect(),
    })
}

/// One jail's tables across the drop-ins: name, first header, and `(file, table)` in file order.
type JailTables = (JailName, Place, Vec<(FileId, JailRaw)>);

#[derive(Default)]
struct MainSections {
    daemon: Option<DaemonRaw>,
    nftables: Option<NftablesRaw>,
    defaults: Option<JailRaw>,
    metrics: Option<MetricsRaw>,
    http: Option<HttpRaw>,
    firewall: Option<super::firewall::FirewallRaw>,
    cluster: Option<(Place, super::cluster::ClusterRaw)>,
}

/// The top-level tables of a file, in file order. Anything else at the top level is reported.
fn tables<'f>(
    files: &'f Files,
    id: FileId,
    diags: &mut Diagnostics,
) -> Vec<(String, Place, DeTable<'f>)> {
    let text = files.text(id);
    let root = match DeTable::parse(text) {
        Ok(root) => root.into_inner(),
        Err(e) => {
            diags.push(toml_error(files, id, &e));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (key, value) in root {
        let place = Place {
            file: id,
            span: key.span(),
        };
        match value.into_inner() {
            DeValue::Table(table) => out.push((key.into_inner().into_owned(), place, table)),
            _ => diags.push(files.diag(
                &place,
                format!("`{}` must be a table ([{}])", key.get_ref(), key.get_ref()),
            )),
        }
    }
    out.sort_by_key(|(_, place, _)| place.span.start);
    out
}

/// Deserializes one table; a failure is reported and yields `None`.
pub(super) fn parse_table<T: DeserializeOwned>(
    files: &Files,
    place: &Place,
    table: DeTable<'_>,
    diags: &mut Diagnostics,
) -> Option<T> {
    let deserializer = toml::de::Deserializer::from(toml::Spanned::new(place.span.clone(), table));
    match T::deserialize(deserializer) {
        Ok(t) => Some(t),
        Err(e) => {
            diags.push(toml_error(files, place.file, &e));
            None
        }
    }
}

/// A TOML error as a diagnostic, with "did you mean" for misspelt keys.
pub(super) fn toml_error(files: &Files, id: FileId, err: &toml::de::Error) -> Diagnostic {
    let mut d = Diagnostic::from_toml(files.path(id), files.text(id), err);
    d.message = suggest(&d.message);
    d
}

/// Rewrites serde's "unknown field `x`, expected one of `a`, `b`" into
/// "unknown key `x` (did you mean `a`?)" when a known key is close.
fn suggest(message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message.to_string();
    };
    let Some((key, expected)) = rest.split_once('`') else {
        return message.to_string();
    };
    let known: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let closest = known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min();
    match closest {
        Some((_, k)) => format!("unknown key `{key}` (did you mean `{k}`?)"),
        None => format!("unknown key `{key}` (known keys: {})", known.join(", ")),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

fn validate_daemon(
    files: &Files,
    id: FileId,
    raw: DaemonRaw,
    diags: &mut Diagnostics,
) -> DaemonConfig {
    let at = |span| Place { file: id, span };
    let socket_group = raw.socket_group.and_then(|g| {
        let place = at(g.span());
        let name = g.into_inner();
        match nix::unistd::Group::from_name(&name) {
            Ok(Some(group)) => Some((name, group.gid.as_raw())),
            _ => {
                diags.push(files.diag(
                    &place,
                    format!("socket_group: no group named {name:?} on this host"),
                ));
                None
            }
        }
    });
    let max_clients = match raw.max_clients {
        Some(m) if *m.get_ref() == 0 => {
            diags.push(files.diag(&at(m.span()), "max_clients must be at least 1"));
            64
        }
        Some(m) => m.into_inner(),
        None => 64,
    };
    let loglevel = match raw.loglevel {
        Some(l) if !["error", "warn", "info", "debug", "trace"].contains(&l.get_ref().as_str()) => {
            diags.push(files.diag(
                &at(l.span()),
                format!(
                    "loglevel {:?}: use error, warn, info, debug or trace",
                    l.get_ref()
                ),
            ));
            "info".to_string()
        }
        Some(l) => l.into_inner(),
        None => "info".to_string(),
    };
    DaemonConfig {
        socket: raw.socket.unwrap_or_else(|| DEFAULT_SOCKET.into()),
        socket_group,
        state_dir: raw.state_dir.unwrap_or_else(|| DEFAULT_STATE_DIR.into()),
        dbpurgeage: raw.dbpurgeage.map_or(86_400, |s| s.as_secs()),
        max_clients,
        loglevel,
    }
}

fn validate_nftables(
    files: &Files,
    id: FileId,
    raw: NftablesRaw,
    diags: &mut Diagnostics,
) -> NftablesConfig {
    let at = |span| Place { file: id, span };
    let table = match raw.table {
        Some(t) => {
            let name = t.get_ref();
            let ok = !name.is_empty()
                && name.len() <= 64
                && name.starts_with(|c: char| c.is_ascii_alphabetic())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !ok {
                diags.push(files.diag(
                    &at(t.span()),
                    format!(
                        "table {name:?}: use letters, digits, '_' and '-', starting with a letter"
                    ),
                ));
            }
            t.into_inner()
        }
        None => "nftjail".to_string(),
    };
    let mut hooks = Vec::new();
    for h in raw.hooks.unwrap_or_else(|| {
        vec![
            toml::Spanned::new(0..0, "input".into()),
            toml::Spanned::new(0..0, "forward".into()),
        ]
    }) {
        let hook = match h.get_ref().as_str() {
            "input" => Hook::Input,
            "forward" => Hook::Forward,
            other => {
                diags.push(files.diag(
                    &at(h.span()),
                    format!("hook {other:?}: nftjail attaches to \"input\" and/or \"forward\""),
                ));
                continue;
            }
        };
        if !hooks.contains(&hook) {
            hooks.push(hook);
        }
    }
    let verdict = match raw.verdict {
        Some(v) => match v.get_ref().as_str() {
            "drop" => Verdict::Drop,
            "reject" => Verdict::Reject,
            other => {
                diags.push(files.diag(
                    &at(v.span()),
                    format!("verdict {other:?}: use \"drop\" or \"reject\""),
                ));
                Verdict::Drop
            }
        },
        None => Verdict::Drop,
    };
    NftablesConfig {
        table,
        hooks,
        verdict,
        keep_on_stop: raw.keep_on_stop.unwrap_or(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_for_misspelt_keys() {
        assert_eq!(
            suggest("unknown field `maxretyr`, expected one of `maxretry`, `findtime`"),
            "unknown key `maxretyr` (did you mean `maxretry`?)"
        );
        assert_eq!(
            suggest("unknown field `zzz`, expected `a` or `b`"),
            "unknown key `zzz` (known keys: a, b)"
        );
        assert_eq!(suggest("invalid type"), "invalid type");
    }
}
