//! The JSON API under `/api/v1/`, a mirror of the control socket.
//!
//! Receives HTTP requests that passed the guard (rate, token); emits the control socket's
//! replies. Every endpoint is turned into the control protocol's [`Request`] and answered by the
//! same code path as the Unix socket ([`server::answer`]): the same checks, the same shared
//! `banned` lines, and a ban or unban answered only once the kernel and the state log took it.
//! What only HTTP needs is checked here first: the path and query, the body (JSON, at most
//! [`MAX_BODY`] bytes, within [`BODY_TIMEOUT`]), and every address and duration of a ban — one
//! bad address refuses the whole request (400) and nothing is banned.
//!
//! | endpoint | control request |
//! |---|---|
//! | `GET /api/v1/ping` | `ping` |
//! | `GET /api/v1/status` | `status` |
//! | `GET /api/v1/jails/{jail}` | `status JAIL` |
//! | `GET /api/v1/bans?jail=J` | `banned` |
//! | `POST /api/v1/jails/{jail}/bans` `{"targets": [...], "for": "1h"}` (or `"target"`) | `ban` |
//! | `DELETE /api/v1/jails/{jail}/bans/{target}` (a prefix as `a.b.c.d/len` or `%2F`) | `unban --jail` |
//! | `DELETE /api/v1/jails/{jail}/bans` | `unban --jail J --all` |
//! | `DELETE /api/v1/bans/{target}` | `unban` (every jail) |
//! | `POST /api/v1/reload` | `reload` |
//! | `GET /api/v1/history` | none: the chart's series ([`super::history`]) |
//! | `/api/v1/firewall…` | the firewall's requests ([`super::firewall`]) |
//!
//! A new control request becomes an endpoint with one route and one handler that builds its
//! [`Request`] (the ban log's `GET /api/v1/log?since=` is still to come).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Deserialize;

use super::App;
use super::response::{self, ApiError};
use crate::config::BanTime;
use crate::control::protocol::{ErrorCode, Rejected, Request};
use crate::control::server;
use nftjail_core::addr::BanTarget;

/// The largest request body read (about 40,000 addresses in one ban).
pub const MAX_BODY: usize = 1024 * 1024;
/// How long a client has to send its body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// The API's routes.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/api/v1/ping", get(ping))
        .route("/api/v1/status", get(status))
        .route("/api/v1/jails/{jail}", get(jail))
        .route("/api/v1/jails/{jail}/bans", post(ban).delete(unban_all))
        .route("/api/v1/jails/{jail}/bans/{*target}", delete(unban_in_jail))
        .route("/api/v1/bans", get(bans))
        .route("/api/v1/bans/{*target}", delete(unban_everywhere))
        .route("/api/v1/reload", post(reload))
        .route("/api/v1/history", get(history))
        .route("/api/v1/log", get(log))
        .merge(super::firewall::routes())
}

/// Asks the daemon's core, through the control socket's own path.
pub(super) async fn ask(app: &App, request: Request) -> Response {
    let line = server::answer(request, &mut tokio::io::empty(), &app.calls, &app.reads).await;
    response::from_line(line, &app.reads)
}

pub(super) fn bad_path(e: PathRejection) -> Response {
    ApiError::of(ErrorCode::BadRequest, e.body_text()).into_response()
}

async fn ping(State(app): State<Arc<App>>) -> Response {
    ask(&app, Request::Ping).await
}

async fn status(State(app): State<Arc<App>>) -> Response {
    ask(&app, Request::Status { jail: None }).await
}

async fn jail(State(app): State<Arc<App>>, jail: Result<Path<String>, PathRejection>) -> Response {
    match jail {
        Ok(Path(jail)) => ask(&app, Request::Status { jail: Some(jail) }).await,
        Err(e) => bad_path(e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BansQuery {
    jail: Option<String>,
}

async fn bans(
    State(app): State<Arc<App>>,
    query: Result<Query<BansQuery>, QueryRejection>,
) -> Response {
    match query {
        Ok(Query(q)) => ask(&app, Request::Banned { jail: q.jail }).await,
        Err(e) => ApiError::of(ErrorCode::BadRequest, e.body_text()).into_response(),
    }
}

/// `GET /api/v1/log?jail=&since=&after=`: the control socket's `log` request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogQuery {
    jail: Option<String>,
    /// Only events at or after this instant (Unix seconds).
    since: Option<i64>,
    /// Only events after this sequence number (the `last` of a previous reply).
    after: Option<u64>,
}

async fn log(
    State(app): State<Arc<App>>,
    query: Result<Query<LogQuery>, QueryRejection>,
) -> Response {
    match query {
        Ok(Query(q)) => {
            ask(
                &app,
                Request::Log {
                    jail: q.jail,
                    since: q.since,
                    after: q.after,
                },
            )
            .await
        }
        Err(e) => ApiError::of(ErrorCode::BadRequest, e.body_text()).into_response(),
    }
}

/// The body of `POST /api/v1/jails/{jail}/bans`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BanBody {
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    targets: Vec<String>,
    /// fail2ban notation (`1h`, `180d`, `-1`); the jail's bantime when absent.
    #[serde(default, rename = "for")]
    length: Option<String>,
}

async fn ban(
    State(app): State<Arc<App>>,
    jail: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let jail = match jail {
        Ok(Path(jail)) => jail,
        Err(e) => return bad_path(e),
    };
    let body: BanBody = match json_body(&headers, body).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let targets: Vec<String> = body.target.into_iter().chain(body.targets).collect();
    if let Err(e) = check_ban(&targets, body.length.as_deref()) {
        return e.into_response();
    }
    let request = Request::Ban {
        jail,
        targets,
        length: body.length,
        stream: false,
    };
    ask(&app, request).await
}

/// Every address and the duration of a ban, checked before anything is asked: all or nothing.
fn check_ban(targets: &[String], length: Option<&str>) -> Result<(), ApiError> {
    if targets.is_empty() {
        return Err(ApiError::of(
            ErrorCode::BadRequest,
            "give \"target\": ADDRESS or \"targets\": [ADDRESS, …]",
        ));
    }
    let rejected: Vec<Rejected> = targets
        .iter()
        .enumerate()
        .filter_map(|(i, text)| {
            text.trim().parse::<BanTarget>().err().map(|e| Rejected {
                line: i + 1,
                text: text.clone(),
                error: e.to_string(),
            })
        })
        .collect();
    if let Some(first) = rejected.first() {
        let mut error = ApiError::of(
            ErrorCode::InvalidAddress,
            format!(
                "{} invalid address(es), nothing banned: {:?}: {}",
                rejected.len(),
                first.text,
                first.error
            ),
        );
        error.rejected = rejected;
        return Err(error);
    }
    if let Some(text) = length
        && let Err(e) = text.parse::<BanTime>()
    {
        return Err(ApiError::of(
            ErrorCode::InvalidDuration,
            format!("\"for\": {e}"),
        ));
    }
    Ok(())
}

async fn unban_in_jail(
    State(app): State<Arc<App>>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    match path {
        Ok(Path((jail, target))) => unban(&app, Some(jail), target).await,
        Err(e) => bad_path(e),
    }
}

async fn unban_everywhere(
    State(app): State<Arc<App>>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    match path {
        Ok(Path(target)) => unban(&app, None, target).await,
        Err(e) => bad_path(e),
    }
}

async fn unban(app: &App, jail: Option<String>, target: String) -> Response {
    let target = target.trim_start_matches('/').to_string();
    if let Err(e) = target.parse::<BanTarget>() {
        return ApiError::of(ErrorCode::InvalidAddress, format!("{target:?}: {e}")).into_response();
    }
    let request = Request::Unban {
        target: Some(target),
        jail,
        all: false,
    };
    ask(app, request).await
}

async fn unban_all(
    State(app): State<Arc<App>>,
    jail: Result<Path<String>, PathRejection>,
) -> Response {
    match jail {
        Ok(Path(jail)) => {
            let request = Request::Unban {
                target: None,
                jail: Some(jail),
                all: true,
            };
            ask(&app, request).await
        }
        Err(e) => bad_path(e),
    }
}

async fn reload(State(app): State<Arc<App>>) -> Response {
    ask(&app, Request::Reload).await
}

async fn history(State(app): State<Arc<App>>) -> Response {
    let now = crate::daemon::unix_now();
    let view = app
        .history
        .lock()
        .expect("invariant: history lock not poisoned")
        .view(now);
    #[derive(serde::Serialize)]
    struct HistoryReply {
        ok: bool,
        #[serde(flatten)]
        view: super::history::HistoryView,
    }
    let mut response = axum::Json(HistoryReply { ok: true, view }).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

/// A JSON body: `Content-Type: application/json`, at most [`MAX_BODY`] bytes, in
/// [`BODY_TIMEOUT`].
pub(super) async fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
) -> Result<T, ApiError> {
    if !is_json(headers) {
        return Err(not_json());
    }
    parse_body(&read_body(headers, body).await?)
}

/// A JSON body that may be left out: no body (or an empty one) is `T::default()`; a body that
/// is there is held to [`json_body`]'s rules.
pub(super) async fn optional_json_body<T: serde::de::DeserializeOwned + Default>(
    headers: &HeaderMap,
    body: Body,
) -> Result<T, ApiError> {
    let typed = headers.contains_key(header::CONTENT_TYPE);
    if typed && !is_json(headers) {
        return Err(not_json());
    }
    let bytes = read_body(headers, body).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    if !typed {
        return Err(not_json());
    }
    parse_body(&bytes)
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

fn not_json() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "send the body as JSON (Content-Type: application/json)",
    )
}

fn parse_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::of(ErrorCode::BadRequest, format!("the body: {e}")))
}

/// The body's bytes: at most [`MAX_BODY`] (by its declared length, or as it arrives), within
/// [`BODY_TIMEOUT`].
async fn read_body(headers: &HeaderMap, body: Body) -> Result<axum::body::Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!(
                "the body is over {MAX_BODY} bytes (send long address lists in several requests, or through the control socket's stream)"
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large());
    }
    match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_BODY)).await {
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            "the body did not arrive in time",
        )),
        Ok(Err(_)) => Err(too_large()),
        Ok(Ok(bytes)) => Ok(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ban_is_checked_whole_before_it_is_asked() {
        let ok = |t: &[&str], l: Option<&str>| {
            check_ban(&t.iter().map(|s| s.to_string()).collect::<Vec<_>>(), l)
        };
        assert!(ok(&["192.0.2.1", "2001:db8::/48"], Some("1h")).is_ok());
        assert!(ok(&["198.51.100.0/24"], None).is_ok());
        let e = ok(&["192.0.2.1", "not-an-ip", "300.1.1.1"], None).unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (400, "invalid_address"));
        assert_eq!(
            e.rejected.iter().map(|r| r.line).collect::<Vec<_>>(),
            [2, 3]
        );
        let e = ok(&["192.0.2.1"], Some("soon")).unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (400, "invalid_duration"));
        let e = ok(&[], None).unwrap_err();
        assert_eq!(e.code, "bad_request");
    }

    // A body without a declared length (chunked) is cut at the cap, not read whole.
    #[tokio::test]
    async fn bodies_are_json_and_capped_whatever_their_framing() {
        let mut json = HeaderMap::new();
        json.insert(
            header::CONTENT_TYPE,
            "application/json; charset=utf-8".parse().unwrap(),
        );
        let huge = Body::from(vec![b' '; MAX_BODY + 1]);
        let e = json_body::<BanBody>(&json, huge).await.unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (413, "body_too_large"));
        let fine = Body::from(r#"{"target": "192.0.2.1"}"#);
        let body = json_body::<BanBody>(&json, fine).await.unwrap();
        assert_eq!(body.target.as_deref(), Some("192.0.2.1"));
        let e = json_body::<BanBody>(&HeaderMap::new(), Body::from("{}"))
            .await
            .unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (415, "unsupported_media_type"));
    }

    #[tokio::test]
    async fn an_optional_body_may_be_left_out_but_not_sent_untyped() {
        #[derive(Debug, Default, Deserialize, PartialEq)]
        #[serde(deny_unknown_fields)]
        struct Optional {
            #[serde(default)]
            within: Option<String>,
        }
        let mut json = HeaderMap::new();
        json.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        let mut text = HeaderMap::new();
        text.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        let none = HeaderMap::new();
        let read = |headers: &HeaderMap, body: &'static str| {
            let headers = headers.clone();
            async move { optional_json_body::<Optional>(&headers, Body::from(body)).await }
        };
        assert_eq!(read(&none, "").await.unwrap(), Optional::default());
        assert_eq!(read(&json, " \n").await.unwrap(), Optional::default());
        assert_eq!(
            read(&json, r#"{"within": "60s"}"#)
                .await
                .unwrap()
                .within
                .as_deref(),
            Some("60s")
        );
        for (headers, body, status, code) in [
            (&none, r#"{"within": "60s"}"#, 415, "unsupported_media_type"),
            (&text, "", 415, "unsupported_media_type"),
            (&json, r#"{"whithin": "60s"}"#, 400, "bad_request"),
        ] {
            let e = read(headers, body).await.unwrap_err();
            assert_eq!((e.status.as_u16(), e.code), (status, code), "{body:?}");
        }
    }

    /// A body that never comes (a slow client holding its connection).
    struct Never;

    impl http_body::Body for Never {
        type Data = axum::body::Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
            std::task::Poll::Pending
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_does_not_arrive_in_time_is_refused() {
        let mut json = HeaderMap::new();
        json.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        let started = tokio::time::Instant::now();
        let e = json_body::<BanBody>(&json, Body::new(Never))
            .await
            .unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (408, "timeout"));
        assert!(started.elapsed() >= BODY_TIMEOUT);
    }
}
