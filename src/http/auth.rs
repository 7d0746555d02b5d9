//! Who may do what over HTTP, and how often.
//!
//! Receives every request before its handler; emits the request (allowed) or a refusal: `429`
//! past the request rate, `401` without the right bearer token. Mutating requests (anything but
//! `GET`/`HEAD`) need the admin token (`[http] token_file`, created 0600 on first start); the
//! read-only API and `/metrics` need the read token or the admin token when `read_token_file` is
//! set, nothing otherwise; the console's static files never need one (they hold no data). The
//! only credential is the `Authorization: Bearer` header, which a page of another site cannot
//! make a browser send: no cookie is ever looked at, so a cross-site form or image cannot act
//! with an administrator's rights (CSRF). A wrong token is logged at most once a second (with
//! the count of those not logged), so a flood of guesses cannot flood the journal. On a loopback
//! address a request must name a local host (`127.0.0.1:9469`, `[::1]:9469`, `localhost`): a
//! web page whose own name was made to resolve to 127.0.0.1 (DNS rebinding) cannot read the
//! open endpoints through a visitor's browser (`421`). Never logs a token.

use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::App;
use super::listener::Peer;
use super::response::ApiError;

/// Bytes of randomness in a new token (shown as twice as many hex digits).
const TOKEN_BYTES: usize = 32;
/// The shortest token accepted from a file an administrator wrote.
const MIN_TOKEN_LEN: usize = 16;

/// A bearer token, compared in constant time.
#[derive(Clone)]
pub struct Token(Arc<str>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

impl Token {
    pub fn new(text: &str) -> Token {
        Token(text.into())
    }

    /// Whether `offered` is this token, in time independent of where they differ.
    pub fn matches(&self, offered: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), offered.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Reads the token in `path`; creates it (mode 0600, random) when `create` and it is absent.
pub fn load_token(path: &Path, create: bool) -> io::Result<Token> {
    match std::fs::File::open(path) {
        Ok(mut file) => {
            let mode = file.metadata()?.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = format!("{:o}", mode & 0o777),
                    "the HTTP token file can be read by others than its owner: chmod 600 it"
                );
            }
            let mut text = String::new();
            file.read_to_string(&mut text)?;
            let token = text.trim();
            if token.len() < MIN_TOKEN_LEN || token.chars().any(char::is_whitespace) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: a token is one word of at least {MIN_TOKEN_LEN} characters",
                        path.display()
                    ),
                ));
            }
            Ok(Token::new(token))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound && create => create_token(path),
        Err(e) => Err(e),
    }
}

fn create_token(path: &Path) -> io::Result<Token> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut random = [0u8; TOKEN_BYTES];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut random)?;
    let token: String = random.iter().map(|b| format!("{b:02x}")).collect();
    // create_new: never overwrite a token another process wrote meanwhile.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(format!("{token}\n").as_bytes())?;
    file.sync_all()?;
    tracing::info!(path = %path.display(), "HTTP API token created (`nftjail http-token` prints it)");
    Ok(Token::new(&token))
}

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// The console's static files.
    Nothing,
    /// Reading: the read token when one is configured.
    Read,
    /// Changing anything: the admin token.
    Admin,
}

/// What `method path` needs.
pub fn need(method: &Method, path: &str) -> Need {
    let reads = method == Method::GET || method == Method::HEAD;
    match path {
        _ if !reads => Need::Admin,
        "/" | "/console.js" | "/console-firewall.js" | "/console.css" | "/favicon.ico" => {
            Need::Nothing
        }
        _ => Need::Read,
    }
}

/// The token of an `Authorization: Bearer TOKEN` header; `None` without one.
fn bearer(request: &Request) -> Option<&str> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Whether a `Host` header names this machine: an address, `localhost` or `*.localhost`, with
/// or without a port. No header (HTTP/1.0) passes: browsers always send one.
pub fn local_host(host: Option<&str>) -> bool {
    let Some(host) = host else { return true };
    let name = match host.strip_prefix('[') {
        Some(v6) => {
            return v6
                .split_once(']')
                .is_some_and(|(a, _)| a.parse::<std::net::Ipv6Addr>().is_ok());
        }
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name.parse::<std::net::Ipv4Addr>().is_ok()
        || name == "localhost"
        || name.ends_with(".localhost")
}

/// The middleware in front of every handler: rate, host, then token.
pub async fn guard(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    if !app.rate.take(Instant::now()) {
        return ApiError::rate_limited().into_response();
    }
    if app.loopback {
        let host = request
            .headers()
            .get(header::HOST)
            .map(|h| h.to_str().unwrap_or("?"));
        if !local_host(host) {
            return ApiError::new(
                axum::http::StatusCode::MISDIRECTED_REQUEST,
                "wrong_host",
                "this API listens on loopback and answers requests for a local host only (an address or localhost); behind a reverse proxy, do not preserve the Host header",
            )
            .into_response();
        }
    }
    let allowed: Vec<&Token> = match need(request.method(), request.uri().path()) {
        Need::Nothing => Vec::new(),
        Need::Read => match &app.read_token {
            Some(read) => vec![read, &app.token],
            None => Vec::new(),
        },
        Need::Admin => vec![&app.token],
    };
    if !allowed.is_empty() {
        match bearer(&request) {
            None => return ApiError::unauthorized("missing").into_response(),
            Some(offered) if !allowed.iter().any(|t| t.matches(offered)) => {
                let peer = request.extensions().get::<Peer>().map(|p| p.0.clone());
                app.wrong_tokens.refused(
                    Instant::now(),
                    peer.as_deref().unwrap_or("?"),
                    request.uri().path(),
                );
                return ApiError::unauthorized("wrong").into_response();
            }
            Some(_) => {}
        }
    }
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let response = next.run(request).await;
    tracing::debug!(%method, path, status = response.status().as_u16(), "HTTP request");
    response
}

/// A token bucket over all requests: `rate` a second sustained, bursts up to twice that.
#[derive(Debug)]
pub struct RateLimit {
    rate: f64,
    burst: f64,
    bucket: Mutex<(f64, Instant)>,
}

impl RateLimit {
    pub fn new(per_second: u32, now: Instant) -> RateLimit {
        let rate = f64::from(per_second.max(1));
        RateLimit {
            rate,
            burst: rate * 2.0,
            bucket: Mutex::new((rate * 2.0, now)),
        }
    }

    /// Takes one request's token; `false` when the bucket is empty.
    pub fn take(&self, now: Instant) -> bool {
        let mut bucket = self
            .bucket
            .lock()
            .expect("invariant: rate lock not poisoned");
        let (tokens, last) = *bucket;
        let refilled = (tokens + now.saturating_duration_since(last).as_secs_f64() * self.rate)
            .min(self.burst);
        if refilled >= 1.0 {
            *bucket = (refilled - 1.0, now);
            true
        } else {
            *bucket = (refilled, now);
            false
        }
    }
}

/// Logs refused tokens at most once a [`WrongTokens::EVERY`].
#[derive(Debug, Default)]
pub struct WrongTokens {
    state: Mutex<(Option<Instant>, u64)>,
}

impl WrongTokens {
    pub const EVERY: Duration = Duration::from_secs(1);

    /// One more wrong token; `true` when this one was logged.
    pub fn refused(&self, now: Instant, peer: &str, path: &str) -> bool {
        let mut state = self.state.lock().expect("invariant: log lock not poisoned");
        let (last, unlogged) = &mut *state;
        if last.is_some_and(|at| now.saturating_duration_since(at) < Self::EVERY) {
            *unlogged += 1;
            return false;
        }
        tracing::warn!(
            peer,
            path,
            not_logged_since = *unlogged,
            "HTTP request with a wrong token refused (401)"
        );
        *last = Some(now);
        *unlogged = 0;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        let t = Token::new("0123456789abcdef");
        assert!(t.matches("0123456789abcdef"));
        for wrong in [
            "",
            "0123456789abcde",
            "0123456789abcdeF",
            "0123456789abcdef0",
        ] {
            assert!(!t.matches(wrong), "{wrong:?}");
        }
        assert_eq!(format!("{t:?}"), "Token(…)", "never printed");
    }

    #[test]
    fn what_each_request_needs() {
        let cases = [
            (Method::GET, "/", Need::Nothing),
            (Method::GET, "/console.js", Need::Nothing),
            (Method::GET, "/console-firewall.js", Need::Nothing),
            (Method::HEAD, "/console.css", Need::Nothing),
            (Method::GET, "/api/v1/firewall/rules", Need::Read),
            (Method::POST, "/api/v1/firewall/enable", Need::Admin),
            (Method::DELETE, "/api/v1/firewall/rules/7", Need::Admin),
            (Method::GET, "/metrics", Need::Read),
            (Method::GET, "/api/v1/bans", Need::Read),
            (Method::POST, "/api/v1/jails/sshd/bans", Need::Admin),
            (
                Method::DELETE,
                "/api/v1/jails/sshd/bans/192.0.2.1",
                Need::Admin,
            ),
            (Method::POST, "/", Need::Admin),
            (Method::OPTIONS, "/api/v1/bans", Need::Admin),
        ];
        for (method, path, want) in cases {
            assert_eq!(need(&method, path), want, "{method} {path}");
        }
    }

    #[test]
    fn only_local_host_names_pass_on_loopback() {
        for host in [
            None,
            Some("127.0.0.1:9469"),
            Some("127.0.0.1"),
            Some("[::1]:9469"),
            Some("localhost:9469"),
            Some("LOCALHOST"),
            Some("panel.localhost:9469"),
            Some("10.1.2.3:9469"),
        ] {
            assert!(local_host(host), "{host:?}");
        }
        for host in [
            Some("evil.example:9469"),
            Some("evil.example"),
            Some("localhost.evil.example"),
            Some("[::1"),
            Some("?"),
            Some(""),
        ] {
            assert!(!local_host(host), "{host:?}");
        }
    }

    #[test]
    fn a_new_token_file_is_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/http-token");
        assert!(
            load_token(&path, false).is_err(),
            "not created unless asked"
        );
        let made = load_token(&path, true).unwrap();
        assert_eq!(made.as_str().len(), 2 * TOKEN_BYTES);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(
            load_token(&path, true).unwrap().matches(made.as_str()),
            "kept"
        );
        std::fs::write(&path, "short\n").unwrap();
        assert!(
            load_token(&path, true).is_err(),
            "a too short token is refused"
        );
    }

    #[test]
    fn the_rate_refills_and_caps_bursts() {
        let start = Instant::now();
        let rate = RateLimit::new(10, start);
        let taken = (0..100).filter(|_| rate.take(start)).count();
        assert_eq!(taken, 20, "a burst of twice the rate");
        assert!(!rate.take(start + Duration::from_millis(50)));
        assert!(rate.take(start + Duration::from_millis(150)), "refilled");
        let later = start + Duration::from_secs(3600);
        let taken = (0..100).filter(|_| rate.take(later)).count();
        assert_eq!(taken, 20, "idle time does not bank more than a burst");
    }

    #[test]
    fn wrong_tokens_are_logged_at_most_once_a_second() {
        let log = WrongTokens::default();
        let start = Instant::now();
        let logged = (0..50)
            .filter(|i| log.refused(start + Duration::from_millis(i * 40), "peer", "/"))
            .count();
        // 50 refusals over 2 s: at 0 ms, 1000 ms and 2000 ms... the last is at 1960 ms.
        assert_eq!(logged, 2);
    }
}
