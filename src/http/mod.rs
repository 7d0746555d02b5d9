//! The HTTP server: a JSON API mirroring the control socket, a small web console, and
//! `/metrics` (`[http]`, off by default; and the older `[metrics] listen`, served by the same
//! stack with `/metrics` alone).
//!
//! Receives the configuration, a sender of control [`Call`]s to the core (the same door as the
//! Unix socket: see [`api`]), the core's metrics snapshots and the banner's counters; emits HTTP
//! responses. Built on axum's router over hyper's HTTP/1.1 server with our own accept loop
//! ([`listener`]: connection cap, deadlines, accept backoff). Every request passes [`auth`]'s
//! guard (request rate, bearer token) before its handler. Keeps a bounded 24-hour series of bans
//! and failures per jail for the console's chart ([`history`], fed by each snapshot the core
//! publishes, once a second). When `[http]` and `[metrics]` are off none of this is started (no task,
//! no socket, no memory). It never decides anything: every change goes to the core and is
//! answered after the kernel and the state log took it.

pub mod api;
pub mod auth;
mod console;
pub mod firewall;
pub mod history;
pub mod listener;
pub mod response;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::{Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::banner::BannerStats;
use crate::config::Config;
use crate::config::http::{HttpConfig, Listen};
use crate::control::Call;
use crate::control::server::Reads;
use crate::daemon::metrics::{self, Snapshot};
use auth::{RateLimit, Token, WrongTokens};
use history::History;
use listener::Listener;
use response::ApiError;

/// Connections the `[metrics] listen` endpoint serves at once (Prometheus scrapes one at a time).
pub const METRICS_MAX_CONNECTIONS: usize = 16;

/// What the handlers share.
pub struct App {
    pub calls: mpsc::Sender<Call>,
    pub reads: Reads,
    pub token: Token,
    pub read_token: Option<Token>,
    pub rate: RateLimit,
    pub wrong_tokens: WrongTokens,
    pub scrape: Scrape,
    pub history: Mutex<History>,
    /// Listening on a loopback address: requests must name a local host (see
    /// [`auth::local_host`]).
    pub loopback: bool,
}

/// What `/metrics` reads.
#[derive(Clone)]
pub struct Scrape {
    pub snapshot: watch::Receiver<Arc<Snapshot>>,
    pub banner: Arc<BannerStats>,
}

/// What the daemon hands the HTTP server.
pub struct Parts {
    pub calls: mpsc::Sender<Call>,
    pub scrape: Scrape,
    /// The group of a Unix socket listener (`[daemon] socket_group`).
    pub socket_group: Option<u32>,
}

/// Why the HTTP server could not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot listen on {listen}: {source}")]
    Listen {
        listen: String,
        source: std::io::Error,
    },
    #[error("cannot read or create the HTTP token file {path}: {source}")]
    Token {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

impl HttpError {
    /// Whether this is a permission problem (the daemon exits 77).
    pub fn is_permission(&self) -> bool {
        let (HttpError::Listen { source, .. } | HttpError::Token { source, .. }) = self;
        source.kind() == std::io::ErrorKind::PermissionDenied
    }
}

/// Whether the daemon must publish metrics snapshots (some HTTP endpoint reads them).
pub fn wanted(config: &Config) -> bool {
    config.http.is_some() || config.metrics.is_some()
}

/// Binds what the configuration asks for and serves it until `shutdown`; returns the server
/// tasks (none when `[http]` and `[metrics]` are off).
pub async fn start(
    config: &Config,
    parts: Parts,
    shutdown: CancellationToken,
) -> Result<Vec<JoinHandle<()>>, HttpError> {
    let mut tasks = Vec::new();
    if let Some(http) = &config.http {
        let listener = bind(&http.listen, parts.socket_group).await?;
        let app = Arc::new(app(http, &parts)?);
        tasks.push(tokio::spawn(sample(app.clone(), shutdown.clone())));
        tracing::info!(listen = %http.listen, "HTTP API and console on");
        tasks.push(tokio::spawn(listener::serve(
            listener,
            router(app),
            http.max_connections,
            shutdown.clone(),
        )));
    }
    if let Some(addr) = config.metrics {
        let listen = Listen::Tcp(addr);
        let listener = bind(&listen, None).await?;
        tracing::info!(listen = %listen, "metrics endpoint on");
        tasks.push(tokio::spawn(listener::serve(
            listener,
            metrics_router(parts.scrape.clone()).fallback(not_found),
            METRICS_MAX_CONNECTIONS,
            shutdown,
        )));
    }
    Ok(tasks)
}

async fn bind(listen: &Listen, group: Option<u32>) -> Result<Listener, HttpError> {
    let bound = match listen {
        Listen::Tcp(addr) => Listener::tcp(*addr).await,
        Listen::Unix(path) => Listener::unix(path, group),
    };
    bound.map_err(|source| HttpError::Listen {
        listen: listen.to_string(),
        source,
    })
}

/// The handlers' shared state: tokens read (the admin one created if absent).
pub fn app(http: &HttpConfig, parts: &Parts) -> Result<App, HttpError> {
    let token = |path: &std::path::Path, create: bool| {
        auth::load_token(path, create).map_err(|source| HttpError::Token {
            path: path.to_path_buf(),
            source,
        })
    };
    Ok(App {
        calls: parts.calls.clone(),
        reads: Reads::default(),
        token: token(&http.token_file, true)?,
        read_token: match &http.read_token_file {
            Some(path) => Some(token(path, false)?),
            None => None,
        },
        rate: RateLimit::new(http.requests_per_second, Instant::now()),
        wrong_tokens: WrongTokens::default(),
        scrape: parts.scrape.clone(),
        history: Mutex::new(History::default()),
        loopback: matches!(http.listen, Listen::Tcp(addr) if addr.ip().is_loopback()),
    })
}

/// Everything `[http] listen` serves, behind the guard.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .merge(api::routes().with_state(app.clone()))
        .merge(console::routes())
        .merge(metrics_router(app.scrape.clone()))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(app, auth::guard))
}

fn metrics_router(scrape: Scrape) -> Router {
    Router::new()
        .route("/metrics", get(scrape_metrics))
        .with_state(scrape)
}

async fn scrape_metrics(State(scrape): State<Scrape>) -> Response {
    let snapshot = scrape.snapshot.borrow().clone();
    let lags = metrics::lags(&snapshot).await;
    let text = metrics::render(snapshot, &scrape.banner, lags);
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response()
}

async fn not_found(uri: Uri) -> Response {
    ApiError::not_found(uri.path()).into_response()
}

async fn method_not_allowed(uri: Uri) -> Response {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not take this method", uri.path()),
    )
    .into_response()
}

/// Feeds the chart's series with each snapshot the core publishes, until `shutdown`.
async fn sample(app: Arc<App>, shutdown: CancellationToken) {
    let mut snapshots = app.scrape.snapshot.clone();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = snapshots.changed() => if changed.is_err() { return },
        }
        let snapshot = snapshots.borrow_and_update().clone();
        app.history
            .lock()
            .expect("invariant: history lock not poisoned")
            .observe(crate::daemon::unix_now(), &snapshot.jails);
    }
}
