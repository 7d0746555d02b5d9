//! `nftjail http-token`: prints the HTTP API's bearer token (or the console's address with it).
//!
//! Receives `--config` (default `/etc/nftjail/nftjail.toml`); reads only its `[http]` and
//! `[daemon] state_dir`, leniently, as the client commands read their socket, so it works while
//! a jail file is being edited. Emits the token on stdout. Never creates the token: the daemon
//! does on its first start with `[http]` on (a file made here as root could be unreadable for
//! the daemon's service user).

use std::path::{Path, PathBuf};

use clap::Args;

use super::CliError;
use crate::config::http::TOKEN_FILE_NAME;
use crate::config::{DEFAULT_CONFIG, DEFAULT_STATE_DIR};
use crate::http::auth::load_token;
use crate::outln;

/// Arguments of `nftjail http-token`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  nftjail http-token
      the token, for `Authorization: Bearer TOKEN`
  curl -H \"Authorization: Bearer $(nftjail http-token)\" -X DELETE http://127.0.0.1:9469/api/v1/jails/sshd/bans/192.0.2.7
      unban an address through the API
  nftjail http-token --url
      the console's address with the token in its #fragment (open it in a browser)")]
pub struct HttpTokenArgs {
    /// The main configuration file, read for [http] [default: /etc/nftjail/nftjail.toml]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the console's address with the token (http://ADDRESS/#token=TOKEN) instead
    #[arg(long)]
    pub url: bool,
}

/// What `[http]` of a main file says, for this command.
#[derive(Debug, PartialEq, Eq)]
struct HttpTarget {
    listen: String,
    token_file: PathBuf,
}

pub fn run(args: &HttpTokenArgs) -> Result<(), CliError> {
    let path = args
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    let text = std::fs::read_to_string(&path).map_err(|source| CliError::Io {
        what: format!("cannot read {}", path.display()),
        source,
    })?;
    let target = http_target(&text)
        .map_err(|message| CliError::Usage(format!("{}: {message}", path.display())))?;
    let token = match load_token(&target.token_file, false) {
        Ok(token) => token,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CliError::Refused(format!(
                "no token yet in {}: the daemon creates it when it starts with [http] on",
                target.token_file.display()
            )));
        }
        Err(source) => {
            return Err(CliError::Io {
                what: format!("cannot read {}", target.token_file.display()),
                source,
            });
        }
    };
    if args.url {
        if target.listen.starts_with('/') {
            return Err(CliError::Usage(format!(
                "[http] listen is the Unix socket {}: a browser cannot open it; use the token with a client that can",
                target.listen
            )));
        }
        outln!("http://{}/#token={}", target.listen, token.as_str())
    } else {
        outln!("{}", token.as_str())
    }
}

/// `[http] listen` and the token file of a main file's text.
fn http_target(text: &str) -> Result<HttpTarget, String> {
    let table: toml::Table = toml::from_str(text).map_err(|e| e.message().to_string())?;
    let http = table.get("http");
    let listen = match http.and_then(|h| h.get("listen")) {
        Some(toml::Value::String(s)) => s.clone(),
        Some(_) => return Err("[http] listen must be a string".into()),
        None => {
            return Err("the HTTP API is off: set [http] listen (e.g. \"127.0.0.1:9469\")".into());
        }
    };
    let string = |value: Option<&toml::Value>, what: &str| match value {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(PathBuf::from(s))),
        Some(_) => Err(format!("{what} must be a path")),
    };
    let state_dir = string(
        table.get("daemon").and_then(|d| d.get("state_dir")),
        "[daemon] state_dir",
    )?
    .unwrap_or_else(|| Path::new(DEFAULT_STATE_DIR).to_path_buf());
    let token_file = string(http.and_then(|h| h.get("token_file")), "[http] token_file")?
        .unwrap_or_else(|| state_dir.join(TOKEN_FILE_NAME));
    Ok(HttpTarget { listen, token_file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_file_comes_from_http_then_the_state_dir() {
        let target = |text: &str| http_target(text);
        assert_eq!(
            target("[http]\nlisten = \"127.0.0.1:9469\"\n").unwrap(),
            HttpTarget {
                listen: "127.0.0.1:9469".into(),
                token_file: PathBuf::from("/var/lib/nftjail/http-token"),
            }
        );
        assert_eq!(
            target("[daemon]\nstate_dir = \"/s\"\n[http]\nlisten = \"/run/h.sock\"\n")
                .unwrap()
                .token_file,
            PathBuf::from("/s/http-token")
        );
        assert_eq!(
            target("[http]\nlisten = \"[::1]:1\"\ntoken_file = \"/etc/t\"\n")
                .unwrap()
                .token_file,
            PathBuf::from("/etc/t")
        );
        assert!(target("[daemon]\n").unwrap_err().contains("off"));
        assert!(target("[http]\nlisten = 5\n").is_err());
    }
}
