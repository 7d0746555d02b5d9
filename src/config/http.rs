//! `[http]` of `nftjail.toml`, both layers: the raw table as written, and its validation into an
//! [`HttpConfig`] (the HTTP API, the web console and `/metrics`; off unless `listen` is set).
//!
//! Receives the raw table, `[daemon] state_dir` (the token file's default home) and `[metrics]`
//! (which must not claim the same address); emits the validated settings, diagnostics at their
//! place, and a warning when the API listens beyond loopback (no TLS: the token would travel in
//! clear text). Never opens a socket or a file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::files::{FileId, Files, Place};
use nftjail_core::diag::{Diagnostic, Diagnostics};

/// Connections served at once when `max_connections` is not set.
pub const DEFAULT_MAX_CONNECTIONS: usize = 64;
/// Requests a second (sustained) when `requests_per_second` is not set.
pub const DEFAULT_REQUESTS_PER_SECOND: u32 = 100;
/// The token file's name in the state directory when `token_file` is not set.
pub const TOKEN_FILE_NAME: &str = "http-token";

/// `[http]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpRaw {
    /// `ADDRESS:PORT` (`127.0.0.1:9469`, `[::1]:9469`) or an absolute Unix socket path.
    pub listen: Option<Spanned<String>>,
    /// The bearer token of mutating requests; created (0600) on first start if absent.
    pub token_file: Option<Spanned<PathBuf>>,
    /// A token of its own for the read-only endpoints; absent: they need none.
    pub read_token_file: Option<Spanned<PathBuf>>,
    pub max_connections: Option<Spanned<usize>>,
    pub requests_per_second: Option<Spanned<u32>>,
}

/// Where the HTTP server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    Tcp(SocketAddr),
    /// A Unix stream socket (mode 0660, `[daemon] socket_group`), for panels on the same host.
    Unix(PathBuf),
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Tcp(addr) => write!(f, "http://{addr}"),
            Listen::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// `[http]`, validated, with defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    pub listen: Listen,
    pub token_file: PathBuf,
    pub read_token_file: Option<PathBuf>,
    pub max_connections: usize,
    pub requests_per_second: u32,
}

/// Validates `[http]`; `None` when it is off (no `listen`) or invalid (then `diags` say why).
pub fn validate_http(
    files: &Files,
    id: FileId,
    raw: HttpRaw,
    state_dir: &Path,
    metrics: Option<&Spanned<SocketAddr>>,
    diags: &mut Diagnostics,
    warnings: &mut Vec<Diagnostic>,
) -> Option<HttpConfig> {
    let at = |span| Place { file: id, span };
    let before = diags.len();
    let absolute = |file: Option<Spanned<PathBuf>>, key: &str, diags: &mut Diagnostics| {
        let file = file?;
        if file.get_ref().is_absolute() {
            Some(file.into_inner())
        } else {
            diags.push(files.diag(
                &at(file.span()),
                format!(
                    "{key} {:?}: give an absolute path",
                    file.get_ref().display()
                ),
            ));
            None
        }
    };
    let token_file = absolute(raw.token_file, "token_file", diags)
        .unwrap_or_else(|| state_dir.join(TOKEN_FILE_NAME));
    let read_token_file = absolute(raw.read_token_file, "read_token_file", diags);
    let max_connections = match raw.max_connections {
        Some(m) if !(1..=4096).contains(m.get_ref()) => {
            diags.push(files.diag(&at(m.span()), "max_connections must be between 1 and 4096"));
            DEFAULT_MAX_CONNECTIONS
        }
        Some(m) => m.into_inner(),
        None => DEFAULT_MAX_CONNECTIONS,
    };
    let requests_per_second = match raw.requests_per_second {
        Some(r) if *r.get_ref() == 0 => {
            diags.push(files.diag(&at(r.span()), "requests_per_second must be at least 1"));
            DEFAULT_REQUESTS_PER_SECOND
        }
        Some(r) => r.into_inner(),
        None => DEFAULT_REQUESTS_PER_SECOND,
    };
    let listen = raw.listen?;
    let place = at(listen.span());
    let text = listen.into_inner();
    let listen = if text.starts_with('/') {
        Listen::Unix(PathBuf::from(text))
    } else {
        match text.parse::<SocketAddr>() {
            Ok(addr) => Listen::Tcp(addr),
            Err(_) => {
                diags.push(files.diag(
                    &place,
                    format!(
                        "listen {text:?}: give ADDRESS:PORT (\"127.0.0.1:9469\", \"[::1]:9469\") or an absolute Unix socket path"
                    ),
                ));
                return None;
            }
        }
    };
    if let Listen::Tcp(addr) = &listen {
        if let Some(m) = metrics
            && m.get_ref() == addr
        {
            diags.push(files.diag(
                &at(m.span()),
                format!(
                    "[metrics] listen {addr} is also [http] listen: [http] serves /metrics too, remove [metrics]"
                ),
            ));
        }
        if !addr.ip().is_loopback() {
            warnings.push(files.diag(
                &place,
                format!(
                    "listen {addr} is reachable beyond this host and nftjail speaks no TLS: the API token would travel in clear text; prefer loopback behind a TLS reverse proxy"
                ),
            ));
        }
    }
    (diags.len() == before).then_some(HttpConfig {
        listen,
        token_file,
        read_token_file,
        max_connections,
        requests_per_second,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, load};

    fn load_main(main: &str) -> (tempfile::TempDir, Result<Config, Diagnostics>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("nftjail.toml"), main).unwrap();
        let loaded = load(&dir.path().join("nftjail.toml"));
        (dir, loaded)
    }

    /// The diagnostics of a main file, as `nftjail.toml:LINE:COL: message`.
    fn errors(main: &str) -> Vec<String> {
        let (dir, loaded) = load_main(main);
        let root = format!("{}/", dir.path().display());
        loaded
            .unwrap_err()
            .iter()
            .map(|d| d.to_string().replace(&root, ""))
            .collect()
    }

    #[test]
    fn off_unless_listen_is_set_with_defaults_from_the_state_dir() {
        let (_d, c) = load_main("[daemon]\nstate_dir = \"/s\"\n");
        assert_eq!(c.unwrap().http, None);
        let (_d, c) = load_main("[daemon]\nstate_dir = \"/s\"\n[http]\ntoken_file = \"/t\"\n");
        assert_eq!(c.unwrap().http, None, "no listen, no server");
        let (_d, c) =
            load_main("[daemon]\nstate_dir = \"/s\"\n[http]\nlisten = \"127.0.0.1:9469\"\n");
        assert_eq!(
            c.unwrap().http,
            Some(HttpConfig {
                listen: Listen::Tcp("127.0.0.1:9469".parse().unwrap()),
                token_file: PathBuf::from("/s/http-token"),
                read_token_file: None,
                max_connections: DEFAULT_MAX_CONNECTIONS,
                requests_per_second: DEFAULT_REQUESTS_PER_SECOND,
            })
        );
        let (_d, c) = load_main(
            "[http]\nlisten = \"/run/nftjail/http.sock\"\nread_token_file = \"/etc/nftjail/read\"\nmax_connections = 8\nrequests_per_second = 20\n",
        );
        let http = c.unwrap().http.unwrap();
        assert_eq!(http.listen, Listen::Unix("/run/nftjail/http.sock".into()));
        assert_eq!(
            http.read_token_file,
            Some(PathBuf::from("/etc/nftjail/read"))
        );
        assert_eq!((http.max_connections, http.requests_per_second), (8, 20));
    }

    #[test]
    fn every_bad_value_is_named_at_its_place() {
        assert_eq!(
            errors("[http]\nlisten = \"localhost\"\n"),
            [
                "nftjail.toml:2:10: listen \"localhost\": give ADDRESS:PORT (\"127.0.0.1:9469\", \"[::1]:9469\") or an absolute Unix socket path"
            ]
        );
        assert_eq!(
            errors(
                "[http]\nlisten = \"127.0.0.1:1\"\ntoken_file = \"token\"\nmax_connections = 0\nrequests_per_second = 0\n"
            ),
            [
                "nftjail.toml:3:14: token_file \"token\": give an absolute path",
                "nftjail.toml:4:19: max_connections must be between 1 and 4096",
                "nftjail.toml:5:23: requests_per_second must be at least 1",
            ]
        );
        let unknown = errors("[http]\nlisten = \"127.0.0.1:1\"\ntokenfile = \"/t\"\n");
        assert!(
            unknown[0].contains("did you mean `token_file`"),
            "{unknown:?}"
        );
        // [metrics] on the [http] address could not bind at start: refused up front instead.
        assert_eq!(
            errors("[metrics]\nlisten = \"127.0.0.1:9469\"\n[http]\nlisten = \"127.0.0.1:9469\"\n"),
            [
                "nftjail.toml:2:10: [metrics] listen 127.0.0.1:9469 is also [http] listen: [http] serves /metrics too, remove [metrics]"
            ]
        );
    }

    #[test]
    fn listening_beyond_loopback_is_allowed_with_a_warning() {
        let (_d, c) = load_main("[http]\nlisten = \"0.0.0.0:9469\"\n");
        let c = c.unwrap();
        assert!(c.http.is_some());
        assert!(
            c.warnings[0].message.contains("clear text"),
            "{:?}",
            c.warnings
        );
        let (_d, c) = load_main("[http]\nlisten = \"[::1]:9469\"\n");
        assert!(c.unwrap().warnings.is_empty());
    }
}
