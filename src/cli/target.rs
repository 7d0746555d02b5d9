//! Where a client command finds the daemon: `--socket`, or the socket the configuration names.
//!
//! Receives the command's `--config` and `--socket` (given before or after the command name);
//! emits the control socket's path. `--socket` wins; otherwise the `[daemon] socket` of
//! `--config` (default `/etc/nftjail/nftjail.toml`), read leniently — only that key, so a client
//! still reaches the daemon while a jail file is being edited; otherwise the default socket. A
//! `--config` given explicitly that cannot be read is an error; the default one may be absent.

use std::path::{Path, PathBuf};

use clap::Args;

use super::CliError;
use crate::config::{DEFAULT_CONFIG, DEFAULT_SOCKET};

/// `--config` and `--socket` of a command that talks to the daemon.
#[derive(Debug, Clone, Default, Args)]
pub struct ClientArgs {
    /// The daemon's configuration, read for its socket path [default: /etc/nftjail/nftjail.toml]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The daemon's control socket (overrides the configuration's) [default:
    /// /run/nftjail/nftjail.sock]
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

impl ClientArgs {
    /// These arguments, with those given before the command name filling what is missing.
    pub fn or(&self, outer: &ClientArgs) -> ClientArgs {
        ClientArgs {
            config: self.config.clone().or_else(|| outer.config.clone()),
            socket: self.socket.clone().or_else(|| outer.socket.clone()),
        }
    }

    /// The control socket to talk to.
    pub fn socket(&self) -> Result<PathBuf, CliError> {
        if let Some(socket) = &self.socket {
            return Ok(socket.clone());
        }
        let (path, explicit) = match &self.config {
            Some(p) => (p.as_path(), true),
            None => (Path::new(DEFAULT_CONFIG), false),
        };
        match std::fs::read_to_string(path) {
            Ok(text) => socket_of(&text)
                .map_err(|message| CliError::Usage(format!("{}: {message}", path.display()))),
            Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => {
                Ok(PathBuf::from(DEFAULT_SOCKET))
            }
            Err(source) => Err(CliError::Io {
                what: format!("cannot read {}", path.display()),
                source,
            }),
        }
    }
}

/// The `[daemon] socket` of a main configuration file's text, or the default.
fn socket_of(text: &str) -> Result<PathBuf, String> {
    let table: toml::Table = toml::from_str(text).map_err(|e| e.message().to_string())?;
    match table.get("daemon").and_then(|d| d.get("socket")) {
        None => Ok(PathBuf::from(DEFAULT_SOCKET)),
        Some(toml::Value::String(s)) => Ok(PathBuf::from(s)),
        Some(_) => Err("[daemon] socket must be a path".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_comes_from_the_flag_then_the_configuration_then_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("nftjail.toml");
        std::fs::write(&config, "[daemon]\nsocket = \"/tmp/x.sock\"\n").unwrap();
        let args = |config: Option<&Path>, socket: Option<&str>| ClientArgs {
            config: config.map(Path::to_path_buf),
            socket: socket.map(PathBuf::from),
        };
        assert_eq!(
            args(Some(&config), None).socket().unwrap(),
            PathBuf::from("/tmp/x.sock")
        );
        assert_eq!(
            args(Some(&config), Some("/y")).socket().unwrap(),
            PathBuf::from("/y"),
            "--socket wins"
        );
        std::fs::write(&config, "[nftables]\ntable = \"t\"\n").unwrap();
        assert_eq!(
            args(Some(&config), None).socket().unwrap(),
            PathBuf::from(DEFAULT_SOCKET)
        );
        assert!(matches!(
            args(Some(&dir.path().join("absent.toml")), None).socket(),
            Err(CliError::Io { .. })
        ));
        // Given before the command name, filled in after it.
        let outer = args(Some(&config), Some("/outer"));
        assert_eq!(
            args(None, None).or(&outer).socket().unwrap(),
            PathBuf::from("/outer")
        );
        assert_eq!(
            args(None, Some("/inner")).or(&outer).socket().unwrap(),
            PathBuf::from("/inner")
        );
    }
}
