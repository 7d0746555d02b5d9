//! The firewall's endpoints under `/api/v1/firewall`, a mirror of its control requests.
//!
//! Receives HTTP requests that passed the guard (reads: the read token when one is set; changes:
//! the admin token); emits the control socket's replies. Each endpoint builds the very
//! [`Request`] the socket takes and is answered by the same path (`api::ask`): fields checked
//! and named by the control edge (`port: port 70000 is out of range`), one netlink transaction
//! per change, answered once the kernel and the state log took it. Refusals keep their codes:
//! `unknown_id` 404; `protected`, `from_file`, `duplicate`, `overlap`, `lockout`, `pending`,
//! `not_pending`, `already_enabled` 409 — a panel tells them apart by the code.
//!
//! | endpoint | control request |
//! |---|---|
//! | `GET /api/v1/firewall` | `firewall` (status) |
//! | `POST /api/v1/firewall/enable` (body optional: `{"confirm_within": "60s"}`) | `firewall_enable` |
//! | `POST /api/v1/firewall/disable` | `firewall_disable` |
//! | `POST /api/v1/firewall/confirm` | `firewall_confirm` |
//! | `GET /api/v1/firewall/rules` | `rules` |
//! | `POST /api/v1/firewall/rules` `{"chain", "protocol", "port", "source", "action", "comment"}` | `rule_add` |
//! | `DELETE /api/v1/firewall/rules/{id}` | `rule_delete` |
//! | `GET /api/v1/firewall/forwards` | `forwards` |
//! | `POST /api/v1/firewall/forwards` `{"protocol", "port", "to", "source", "comment"}` | `forward_add` |
//! | `DELETE /api/v1/firewall/forwards/{id}` | `forward_delete` |
//!
//! The lock-out check over HTTP: a request over HTTP comes from a panel or a script, not from the
//! administrator's SSH session, so it never names a session (a `session` field is refused):
//! `enable` with a `drop` input policy, and `forwards`, keep every `[firewall] admin_port` open,
//! as the CLI does when it is not run over SSH. A panel that serves its administrators on a port
//! of its own lists that port in `admin_port` too. Never decides anything itself.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Deserialize;

use super::App;
use super::api::{ask, bad_path, json_body, optional_json_body};
use super::response::ApiError;
use crate::control::protocol::firewall::port_text;
use crate::control::protocol::{ErrorCode, Request};

/// The firewall's routes.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/api/v1/firewall", get(status))
        .route("/api/v1/firewall/enable", post(enable))
        .route("/api/v1/firewall/disable", post(disable))
        .route("/api/v1/firewall/confirm", post(confirm))
        .route("/api/v1/firewall/rules", get(rules).post(add_rule))
        .route("/api/v1/firewall/rules/{id}", delete(delete_rule))
        .route("/api/v1/firewall/forwards", get(forwards).post(add_forward))
        .route("/api/v1/firewall/forwards/{id}", delete(delete_forward))
}

async fn status(State(app): State<Arc<App>>) -> Response {
    ask(&app, Request::Firewall).await
}

/// The body of `POST /api/v1/firewall/enable` (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnableBody {
    /// Rolls back by itself unless confirmed within this time (`60s`, `5m`).
    #[serde(default)]
    confirm_within: Option<String>,
    /// Refused with a reason: see [`enable_request`].
    #[serde(default)]
    session: Option<serde_json::Value>,
}

async fn enable(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    let request = match optional_json_body(&headers, body).await {
        Ok(body) => enable_request(body),
        Err(e) => Err(e),
    };
    match request {
        Ok(request) => ask(&app, request).await,
        Err(e) => e.into_response(),
    }
}

/// The `firewall_enable` of an HTTP body: never with a session, so that the core's lock-out
/// check keeps every admin port open.
fn enable_request(body: EnableBody) -> Result<Request, ApiError> {
    if body.session.is_some() {
        return Err(ApiError::of(
            ErrorCode::BadRequest,
            "session: a request over HTTP keeps every [firewall] admin_port open; it names no SSH session (list a panel's own port in admin_port)",
        ));
    }
    Ok(Request::FirewallEnable {
        confirm_within: body.confirm_within,
        session: None,
    })
}

async fn disable(State(app): State<Arc<App>>) -> Response {
    ask(&app, Request::FirewallDisable).await
}

async fn confirm(State(app): State<Arc<App>>) -> Response {
    ask(&app, Request::FirewallConfirm).await
}

async fn rules(State(app): State<Arc<App>>) -> Response {
    ask(&app, Request::Rules).await
}

/// The body of `POST /api/v1/firewall/rules`: a row of `rules` without `id` and `origin`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleBody {
    /// `input` (the default) or `output`.
    #[serde(default)]
    chain: Option<String>,
    protocol: String,
    /// A number, a service name, a range or a list (`22`, `"ssh"`, `"1000-2000"`, `"80,443"`).
    #[serde(deserialize_with = "port_text")]
    port: String,
    #[serde(default)]
    source: Option<String>,
    action: String,
    #[serde(default)]
    comment: Option<String>,
    /// Only `false`: protected rules are written in `firewall.d` files.
    #[serde(default)]
    protected: bool,
}

impl RuleBody {
    fn request(self) -> Result<Request, ApiError> {
        if self.protected {
            return Err(ApiError::of(
                ErrorCode::BadRequest,
                "protected: protected rules come from firewall.d files, not from the API",
            ));
        }
        Ok(Request::RuleAdd {
            chain: self.chain,
            protocol: self.protocol,
            port: self.port,
            source: self.source,
            action: self.action,
            comment: self.comment.unwrap_or_default(),
        })
    }
}

async fn add_rule(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    let request = match json_body::<RuleBody>(&headers, body).await {
        Ok(body) => body.request(),
        Err(e) => Err(e),
    };
    match request {
        Ok(request) => ask(&app, request).await,
        Err(e) => e.into_response(),
    }
}

async fn delete_rule(
    State(app): State<Arc<App>>,
    id: Result<Path<u64>, PathRejection>,
) -> Response {
    match id {
        Ok(Path(id)) => ask(&app, Request::RuleDelete { id }).await,
        Err(e) => bad_path(e),
    }
}

async fn forwards(State(app): State<Arc<App>>) -> Response {
    ask(&app, Request::Forwards).await
}

/// The body of `POST /api/v1/firewall/forwards`: a row of `forwards` without `id` and `origin`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ForwardBody {
    protocol: String,
    /// One port of this host (a number or a name).
    #[serde(deserialize_with = "port_text")]
    port: String,
    /// The backend, `ADDR:PORT` or `[IPv6]:PORT`.
    to: String,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    comment: Option<String>,
}

async fn add_forward(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    match json_body::<ForwardBody>(&headers, body).await {
        Ok(body) => {
            let request = Request::ForwardAdd {
                protocol: body.protocol,
                port: body.port,
                to: body.to,
                source: body.source,
                comment: body.comment.unwrap_or_default(),
                // As for enable: the admin ports, never a session.
                session: None,
            };
            ask(&app, request).await
        }
        Err(e) => e.into_response(),
    }
}

async fn delete_forward(
    State(app): State<Arc<App>>,
    id: Result<Path<u64>, PathRejection>,
) -> Response {
    match id {
        Ok(Path(id)) => ask(&app, Request::ForwardDelete { id }).await,
        Err(e) => bad_path(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn rule_bodies_become_the_sockets_rule_add() {
        let rule: RuleBody = body(
            r#"{"protocol": "tcp", "port": 8080, "source": "192.0.2.0/24", "action": "accept", "comment": "panel"}"#,
        )
        .unwrap();
        assert_eq!(
            rule.request().unwrap(),
            Request::RuleAdd {
                chain: None,
                protocol: "tcp".into(),
                port: "8080".into(),
                source: Some("192.0.2.0/24".into()),
                action: "accept".into(),
                comment: "panel".into(),
            }
        );
        // A row as `rules` lists it, echoed back by a panel: `protected: false` and a null
        // comment are fine; `id` is not a field of a new rule.
        let echoed: RuleBody = body(
            r#"{"chain": "output", "protocol": "udp", "port": "53", "source": null, "action": "drop", "comment": null, "protected": false}"#,
        )
        .unwrap();
        assert!(
            matches!(echoed.request(), Ok(Request::RuleAdd { chain: Some(c), .. }) if c == "output")
        );
        let protected: RuleBody =
            body(r#"{"protocol": "tcp", "port": 22, "action": "accept", "protected": true}"#)
                .unwrap();
        let e = protected.request().unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (400, "bad_request"));
        assert!(e.message.starts_with("protected: "), "{}", e.message);
        let e = body::<RuleBody>(r#"{"id": 3, "protocol": "tcp", "port": 22, "action": "accept"}"#)
            .unwrap_err();
        assert!(e.contains("unknown field `id`"), "{e}");
        let e = body::<RuleBody>(r#"{"protocol": "tcp", "action": "accept"}"#).unwrap_err();
        assert!(e.contains("missing field `port`"), "{e}");
    }

    #[test]
    fn an_enable_over_http_names_no_session() {
        assert_eq!(
            enable_request(EnableBody::default()).unwrap(),
            Request::FirewallEnable {
                confirm_within: None,
                session: None
            }
        );
        let within: EnableBody = body(r#"{"confirm_within": "60s"}"#).unwrap();
        assert_eq!(
            enable_request(within).unwrap(),
            Request::FirewallEnable {
                confirm_within: Some("60s".into()),
                session: None
            }
        );
        let claimed: EnableBody =
            body(r#"{"session": {"client": "198.51.100.7", "port": 22}}"#).unwrap();
        let e = enable_request(claimed).unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (400, "bad_request"));
        assert!(e.message.contains("admin_port"), "{}", e.message);
    }
}
