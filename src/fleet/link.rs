//! The connection to the NATS servers and the stream.
//!
//! Receives the `[cluster]` settings; emits a connected (or reconnecting) client, its
//! JetStream context, and the stream, created when it is missing and this node may create it.
//! The client retries for ever in the background (every 100 ms at first, at most every
//! second), so nothing here ever holds up the daemon's start or its local bans. Credentials are
//! read from the files `[cluster]` names, once, at start.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use async_nats::{Client, ConnectOptions};

use crate::config::cluster::{ClusterAuth, ClusterConfig};
use nftjail_core::fleet::SUBJECT_ROOT;

/// How long the server may take to acknowledge a message before it is sent again.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a stored message ID protects against a duplicate (a resend after a lost ack).
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// Why the fleet could not be reached or set up.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("cannot read {path}: {source}")]
    Credentials {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot connect to {urls:?}: {message}")]
    Connect { urls: Vec<String>, message: String },
    #[error("stream {stream}: {message}")]
    Stream { stream: String, message: String },
}

/// Connects to the servers of `config` (returning at once: the client keeps trying).
pub async fn connect(config: &ClusterConfig) -> Result<Client, LinkError> {
    let mut options = match &config.auth {
        ClusterAuth::None => ConnectOptions::new(),
        ClusterAuth::Creds(path) => ConnectOptions::with_credentials_file(path.clone())
            .await
            .map_err(|source| LinkError::Credentials {
                path: path.clone(),
                source,
            })?,
        ClusterAuth::NkeySeed(path) => {
            let seed = read_secret(path)?;
            ConnectOptions::with_nkey(seed)
        }
        ClusterAuth::Password {
            user,
            password_file,
        } => {
            let password = read_secret(password_file)?;
            ConnectOptions::with_user_and_password(user.clone(), password)
        }
    };
    if let Some(ca) = &config.tls_ca {
        options = options.add_root_certificates(ca.clone());
    }
    if config.urls.iter().any(|u| u.starts_with("tls://")) {
        options = options.require_tls(true);
    }
    let node = config.node.as_str();
    options
        .name(format!("nftjail {node}"))
        // Replies (acknowledgements, consumer pulls) come to an inbox only this node may read.
        .custom_inbox_prefix(format!("_INBOX_{node}"))
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(2))
        .ping_interval(Duration::from_secs(10))
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis(100 * u64::try_from(attempts.min(10)).unwrap_or(10))
        })
        .connect(config.urls.clone())
        .await
        .map_err(|e| LinkError::Connect {
            urls: config.urls.clone(),
            message: e.to_string(),
        })
}

/// The JetStream context for `client`.
pub fn jetstream(client: Client) -> jetstream::Context {
    jetstream::ContextBuilder::new()
        .timeout(ACK_TIMEOUT)
        .build(client)
}

/// The stream of `config`: found, or created when missing (if this node's user may).
pub async fn stream(
    js: &jetstream::Context,
    config: &ClusterConfig,
) -> Result<stream::Stream, LinkError> {
    let err = |message: String| LinkError::Stream {
        stream: config.stream.clone(),
        message,
    };
    match js.get_stream(&config.stream).await {
        Ok(s) => return Ok(s),
        Err(e) => {
            let missing = matches!(
                e.kind(),
                jetstream::context::GetStreamErrorKind::JetStream(j)
                    if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
            );
            if !missing {
                return Err(err(e.to_string()));
            }
        }
    }
    tracing::info!(stream = %config.stream, max_age_s = config.max_age, "creating the fleet's stream");
    js.create_stream(stream::Config {
        name: config.stream.clone(),
        subjects: vec![format!("{SUBJECT_ROOT}.>")],
        max_age: Duration::from_secs(config.max_age),
        storage: stream::StorageType::File,
        duplicate_window: DUPLICATE_WINDOW,
        discard: stream::DiscardPolicy::Old,
        ..Default::default()
    })
    .await
    .map_err(|e| {
        err(format!(
            "missing, and this node cannot create it ({e}): create it on the server (see the README)"
        ))
    })
}

/// A secret read from a file, without its trailing newline.
fn read_secret(path: &std::path::Path) -> Result<String, LinkError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|source| LinkError::Credentials {
            path: path.to_path_buf(),
            source,
        })
}
