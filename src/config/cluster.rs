//! `[cluster]` of `nftjail.toml`: the fleet that bans together over NATS JetStream.
//!
//! Receives the raw table (serde mirror, `deny_unknown_fields`) and the validated jails;
//! emits a [`ClusterConfig`] or diagnostics with their place. Off unless the table is present
//! (and `enabled` is not false). It checks names, limits and that the credential files exist;
//! it never connects anywhere (the daemon's `fleet` task does).

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::files::{Files, Place};
use super::raw::OneOrMany;
use super::{JailConfig, JailKind};
use nftjail_core::diag::Diagnostics;
use nftjail_core::duration::{BanTime, Span};
use nftjail_core::fleet::{NodeName, PeerLimits};
use nftjail_core::jail::JailName;

/// The stream when `stream` is not set.
pub const DEFAULT_STREAM: &str = "NFTJAIL_BANS";
/// The jail that receives peers' bans when `apply_to` is not set (shipped: `jails/fleet.toml`).
pub const DEFAULT_APPLY_TO: &str = "fleet";
/// The jail whose bans are not shared unless `publish` names it.
pub const LOCAL_ONLY_JAIL: &str = "manual";
/// The longest retention of the stream.
pub const MAX_AGE_CAP: u64 = 30 * 86_400;
/// Messages kept for sending while the server cannot be reached.
pub const DEFAULT_OUTBOX_MAX: usize = 100_000;

/// `[cluster]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterRaw {
    pub enabled: Option<bool>,
    /// One or more `nats://` / `tls://` servers.
    pub url: Option<Spanned<OneOrMany<String>>>,
    pub creds_file: Option<Spanned<PathBuf>>,
    pub nkey_seed_file: Option<Spanned<PathBuf>>,
    pub user: Option<Spanned<String>>,
    pub password_file: Option<Spanned<PathBuf>>,
    pub tls_ca: Option<Spanned<PathBuf>>,
    pub node: Option<Spanned<String>>,
    pub stream: Option<Spanned<String>>,
    pub publish: Option<Spanned<Vec<String>>>,
    pub apply_to: Option<Spanned<String>>,
    pub max_age: Option<Spanned<Span>>,
    pub min_prefix_v4: Option<Spanned<u8>>,
    pub min_prefix_v6: Option<Spanned<u8>>,
    pub peer_rate: Option<Spanned<u32>>,
    pub peer_burst: Option<Spanned<u32>>,
    pub share_lines: Option<bool>,
    pub outbox_max: Option<Spanned<usize>>,
}

/// How the node proves who it is to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterAuth {
    None,
    /// A `.creds` file (JWT and seed, as `nsc` writes it).
    Creds(PathBuf),
    /// A file holding an nkey seed (`SU…`).
    NkeySeed(PathBuf),
    /// A user name, and a file holding the password.
    Password {
        user: String,
        password_file: PathBuf,
    },
}

/// `[cluster]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    pub urls: Vec<String>,
    pub auth: ClusterAuth,
    /// Certificates of the authorities that sign the servers' (`tls://` URLs); the system's
    /// roots when absent.
    pub tls_ca: Option<PathBuf>,
    pub node: NodeName,
    pub stream: String,
    /// The jails whose bans are shared; `None`: every jail but `manual` and `apply_to`.
    pub publish: Option<Vec<JailName>>,
    pub apply_to: JailName,
    /// Seconds the stream keeps a message.
    pub max_age: u64,
    pub limits: PeerLimits,
    pub share_lines: bool,
    pub outbox_max: usize,
}

impl ClusterConfig {
    /// Whether bans of `jail` are shared with the fleet.
    pub fn publishes(&self, jail: &JailName) -> bool {
        match &self.publish {
            Some(list) => list.contains(jail),
            None => jail != &self.apply_to && jail.as_str() != LOCAL_ONLY_JAIL,
        }
    }
}

/// Validates `[cluster]` against the jails; `None` when it is off.
pub fn validate_cluster(
    files: &Files,
    section: &Place,
    raw: ClusterRaw,
    jails: &[JailConfig],
    diags: &mut Diagnostics,
) -> Option<ClusterConfig> {
    if raw.enabled == Some(false) {
        return None;
    }
    let id = section.file;
    let at = |span| Place { file: id, span };
    let before = diags.len();
    let urls = match raw.url {
        None => {
            diags.push(files.diag(
                section,
                "[cluster]: `url` is required (e.g. url = \"nats://nats.example.org:4222\")",
            ));
            Vec::new()
        }
        Some(u) => {
            let place = at(u.span());
            let urls = match u.into_inner() {
                OneOrMany::One(u) => vec![u],
                OneOrMany::Many(u) => u,
            };
            if urls.is_empty() {
                diags.push(files.diag(&place, "url: at least one server"));
            }
            for url in &urls {
                let ok = ["nats://", "tls://"]
                    .iter()
                    .any(|s| url.strip_prefix(s).is_some_and(|rest| !rest.is_empty()));
                if !ok {
                    diags.push(files.diag(
                        &place,
                        format!("url: {url:?} is not a nats://HOST:PORT or tls://HOST:PORT URL"),
                    ));
                }
            }
            urls
        }
    };
    let mut file = |p: Option<Spanned<PathBuf>>, key: &str| {
        p.map(|p| {
            if !p.get_ref().is_file() {
                diags.push(files.diag(
                    &at(p.span()),
                    format!("{key}: {} is not a readable file", p.get_ref().display()),
                ));
            }
            p.into_inner()
        })
    };
    let creds = file(raw.creds_file, "creds_file");
    let seed = file(raw.nkey_seed_file, "nkey_seed_file");
    let password_file = file(raw.password_file, "password_file");
    let tls_ca = file(raw.tls_ca, "tls_ca");
    let auth = match (creds, seed, raw.user, password_file) {
        (None, None, None, None) => ClusterAuth::None,
        (Some(c), None, None, None) => ClusterAuth::Creds(c),
        (None, Some(s), None, None) => ClusterAuth::NkeySeed(s),
        (None, None, Some(user), Some(password_file)) => ClusterAuth::Password {
            user: user.into_inner(),
            password_file,
        },
        (None, None, Some(user), None) => {
            diags.push(files.diag(&at(user.span()), "user: needs password_file too"));
            ClusterAuth::None
        }
        _ => {
            diags.push(files.diag(
                section,
                "[cluster]: give one of creds_file, nkey_seed_file, or user with password_file",
            ));
            ClusterAuth::None
        }
    };
    let node = match raw.node {
        Some(n) => n.get_ref().parse().map_err(|e| {
            diags.push(files.diag(&at(n.span()), format!("node: {e}")));
        }),
        None => nix::unistd::gethostname()
            .ok()
            .and_then(|h| NodeName::from_host_name(&h.to_string_lossy()).ok())
            .ok_or_else(|| {
                diags.push(files.diag(
                    section,
                    "[cluster]: the host name makes no node name: set `node`",
                ));
            }),
    };
    let stream = match raw.stream {
        Some(s) => {
            let ok = !s.get_ref().is_empty()
                && s.get_ref().len() <= 64
                && s.get_ref()
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !ok {
                diags.push(files.diag(
                    &at(s.span()),
                    format!(
                        "stream: {:?} is not a stream name (letters, digits, '_', '-')",
                        s.get_ref()
                    ),
                ));
            }
            s.into_inner()
        }
        None => DEFAULT_STREAM.to_string(),
    };
    let jail_named = |name: &Spanned<String>, key: &str, diags: &mut Diagnostics| {
        let found = jails.iter().find(|j| j.name.as_str() == name.get_ref());
        if found.is_none() {
            diags.push(files.diag(
                &at(name.span()),
                format!("{key}: no jail named {:?}", name.get_ref()),
            ));
        }
        found
    };
    let apply_to_raw = raw
        .apply_to
        .unwrap_or_else(|| Spanned::new(section.span.clone(), DEFAULT_APPLY_TO.to_string()));
    let apply_to = jail_named(&apply_to_raw, "apply_to", diags).and_then(|j| {
        let problem = if !j.enabled {
            Some("is not enabled (set `enabled = true` in its jail.d file)")
        } else if matches!(j.kind, JailKind::Recidive) {
            Some("is a recidive jail")
        } else {
            None
        };
        match problem {
            Some(p) => {
                diags.push(files.diag(
                    &at(apply_to_raw.span()),
                    format!("apply_to: jail {} {p}: it receives the peers' bans", j.name),
                ));
                None
            }
            None => Some(j.name.clone()),
        }
    });
    let publish = raw.publish.map(|list| {
        let span = list.span();
        list.into_inner()
            .into_iter()
            .filter_map(|name| {
                jail_named(&Spanned::new(span.clone(), name), "publish", diags)
                    .map(|j| j.name.clone())
            })
            .collect::<Vec<_>>()
    });
    if let (Some(list), Some(apply_to)) = (&publish, &apply_to)
        && list.contains(apply_to)
    {
        diags.push(files.diag(
            section,
            format!("publish: {apply_to} receives the peers' bans; they are never published again"),
        ));
    }
    let longest = jails
        .iter()
        .filter(|j| j.enabled)
        .map(|j| {
            let base = match j.policy.bantime {
                BanTime::Permanent => MAX_AGE_CAP,
                BanTime::For(d) => d.as_secs(),
            };
            let escalated = j
                .policy
                .escalation
                .maxtime
                .filter(|_| j.policy.escalation.increment);
            base.max(escalated.unwrap_or(0))
        })
        .max()
        .unwrap_or(3600);
    let max_age = match raw.max_age {
        Some(m) if m.get_ref().as_secs() == 0 || m.get_ref().as_secs() > MAX_AGE_CAP => {
            diags.push(files.diag(&at(m.span()), "max_age: between 1s and 30d"));
            MAX_AGE_CAP
        }
        Some(m) => m.get_ref().as_secs(),
        None => longest.clamp(60, MAX_AGE_CAP),
    };
    let defaults = PeerLimits::default();
    let mut bounded = |v: Option<Spanned<u8>>, key: &str, max: u8, default: u8| match v {
        Some(v) if *v.get_ref() > max => {
            diags.push(files.diag(&at(v.span()), format!("{key}: at most {max}")));
            default
        }
        Some(v) => v.into_inner(),
        None => default,
    };
    let min_prefix_v4 = bounded(
        raw.min_prefix_v4,
        "min_prefix_v4",
        32,
        defaults.min_prefix_v4,
    );
    let min_prefix_v6 = bounded(
        raw.min_prefix_v6,
        "min_prefix_v6",
        128,
        defaults.min_prefix_v6,
    );
    let mut positive = |v: Option<Spanned<u32>>, key: &str, default: u32| match v {
        Some(v) if *v.get_ref() == 0 => {
            diags.push(files.diag(&at(v.span()), format!("{key}: at least 1")));
            default
        }
        Some(v) => v.into_inner(),
        None => default,
    };
    let rate = positive(raw.peer_rate, "peer_rate", defaults.rate);
    let burst = positive(raw.peer_burst, "peer_burst", defaults.burst);
    let outbox_max = match raw.outbox_max {
        Some(v) if *v.get_ref() == 0 => {
            diags.push(files.diag(&at(v.span()), "outbox_max: at least 1"));
            DEFAULT_OUTBOX_MAX
        }
        Some(v) => v.into_inner(),
        None => DEFAULT_OUTBOX_MAX,
    };
    if diags.len() > before {
        return None;
    }
    Some(ClusterConfig {
        urls,
        auth,
        tls_ca,
        node: node.ok()?,
        stream,
        publish,
        apply_to: apply_to?,
        max_age,
        limits: PeerLimits {
            min_prefix_v4,
            min_prefix_v6,
            rate,
            burst,
        },
        share_lines: raw.share_lines.unwrap_or(false),
        outbox_max,
    })
}

#[cfg(test)]
mod tests;
