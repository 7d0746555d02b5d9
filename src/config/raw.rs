//! The low layer: serde structs that mirror the TOML files key for key.
//!
//! Every table refuses unknown keys (`deny_unknown_fields`), so a typo is an error with its
//! place, never a silently ignored setting. Values that need validation against other files
//! (filter names, ports, addresses) keep their span (`Spanned`) for the high layer in `load`.
//! Keys use fail2ban's names where fail2ban has one.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use nftjail_core::duration::{BanTime, Span};

/// `[daemon]` of `nftjail.toml`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonRaw {
    pub socket: Option<PathBuf>,
    /// Group allowed to use the control socket for mutating requests (besides root).
    pub socket_group: Option<Spanned<String>>,
    pub state_dir: Option<PathBuf>,
    /// How long past bans are remembered for escalation (fail2ban's `dbpurgeage`).
    pub dbpurgeage: Option<Span>,
    /// Most control clients served at once.
    pub max_clients: Option<Spanned<usize>>,
    /// `error`, `warn`, `info`, `debug` or `trace` (overridden by `RUST_LOG`).
    pub loglevel: Option<Spanned<String>>,
}

/// `[nftables]` of `nftjail.toml`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NftablesRaw {
    pub table: Option<Spanned<String>>,
    pub hooks: Option<Vec<Spanned<String>>>,
    pub verdict: Option<Spanned<String>>,
    /// Leave the table and its bans in the kernel when the daemon stops (default true).
    pub keep_on_stop: Option<bool>,
}

/// `[metrics]` of `nftjail.toml`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsRaw {
    /// Address of the Prometheus endpoint, e.g. `127.0.0.1:9469`. Absent: no endpoint.
    pub listen: Option<Spanned<SocketAddr>>,
}

/// `[defaults.escalation]` or `[JAIL.escalation]`: fail2ban's `bantime.*` keys.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationRaw {
    pub increment: Option<Spanned<bool>>,
    pub factor: Option<Spanned<f64>>,
    pub multipliers: Option<Spanned<Vec<f64>>>,
    pub maxtime: Option<Spanned<Span>>,
    pub rndtime: Option<Spanned<Span>>,
    pub overalljails: Option<Spanned<bool>>,
}

/// A string or a list of strings (fail2ban users write both).
#[derive(Debug, Clone)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{IntoDeserializer, SeqAccess, Visitor, value::Error as ValueError};
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a value or a list of values")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                let de: serde::de::value::StrDeserializer<'_, ValueError> = v.into_deserializer();
                T::deserialize(de).map(OneOrMany::One).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
                let de: serde::de::value::I64Deserializer<ValueError> = v.into_deserializer();
                T::deserialize(de).map(OneOrMany::One).map_err(E::custom)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(OneOrMany::Many(items))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

impl<T> OneOrMany<T> {
    pub fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::One(t) => vec![t],
            OneOrMany::Many(v) => v,
        }
    }
}

/// A port as written: a number or a string (`"ssh"`, `"2222"`, `"49152:65534"`, `"all"`).
#[derive(Debug, Clone)]
pub enum PortRaw {
    Number(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for PortRaw {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = PortRaw;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a port number or a service name")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<PortRaw, E> {
                Ok(PortRaw::Number(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<PortRaw, E> {
                Ok(PortRaw::Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A jail table in `jail.d/*.toml`, or `[defaults]` in `nftjail.toml`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JailRaw {
    pub enabled: Option<Spanned<bool>>,
    pub filter: Option<Spanned<String>>,
    pub mode: Option<Spanned<String>>,
    /// Paths or patterns; fail2ban's `PATH tail` reads a file seen for the first time from its
    /// end instead of reading back `findtime` of it.
    pub logpath: Option<Spanned<OneOrMany<String>>>,
    /// `auto`, `file`, `polling`, `journal` (alias `systemd`).
    pub backend: Option<Spanned<String>>,
    pub journalmatch: Option<Spanned<OneOrMany<String>>>,
    /// Journal directories or files to read instead of the system journal.
    pub journalpath: Option<Spanned<OneOrMany<String>>>,
    pub port: Option<Spanned<OneOrMany<PortRaw>>>,
    pub protocol: Option<Spanned<OneOrMany<String>>>,
    pub maxretry: Option<Spanned<i64>>,
    pub findtime: Option<Spanned<Span>>,
    pub bantime: Option<Spanned<BanTime>>,
    /// Recidive jails: bans within findtime that trigger (defaults to maxretry).
    pub maxbans: Option<Spanned<i64>>,
    pub ignoreip: Option<Spanned<OneOrMany<String>>>,
    pub ignoreself: Option<Spanned<bool>>,
    /// Fold IPv6 addresses into prefixes of this length (64 bans a whole /64).
    pub ipv6_prefix: Option<Spanned<i64>>,
    /// Most addresses a jail tracks at once (memory bound under distributed attacks).
    pub maxtracked: Option<Spanned<i64>>,
    pub datepattern: Option<Spanned<String>>,
    pub logtimezone: Option<Spanned<String>>,
    /// Command (argv, no shell) run after a ban / unban.
    pub on_ban: Option<Spanned<Vec<String>>>,
    pub on_unban: Option<Spanned<Vec<String>>>,
    pub escalation: Option<EscalationRaw>,
}
