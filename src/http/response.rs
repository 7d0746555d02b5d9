//! Control replies as HTTP responses, and the API's errors.
//!
//! Receives a control reply line (what the Unix socket would have written) or a refusal decided
//! at the HTTP edge; emits a response. A success is the control reply's JSON as it is
//! (`{"ok": true, …}`, status 200), a big shared `banned` line written from its shared chunks
//! without a copy. A refusal is `{"ok": false, "error": CODE, "message": TEXT}` (plus
//! `diagnostics` or `rejected` when the reply had them), with the status of its code: the
//! control protocol's [`ErrorCode`]s and the HTTP edge's own (`unauthorized`, `not_found`,
//! `method_not_allowed`, `body_too_large`, `unsupported_media_type`, `timeout`, `wrong_host`,
//! `rate_limited`).
//! Codes are stable; messages are for people.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::control::protocol::{ErrorCode, Rejected, Reply, ReplyLine, SharedLine};
use crate::control::server::Reads;

/// A refusal made at the HTTP edge (or translated from a control reply).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub diagnostics: Vec<String>,
    pub rejected: Vec<Rejected>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    ok: bool,
    error: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    diagnostics: &'a [String],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    rejected: &'a [Rejected],
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            diagnostics: Vec::new(),
            rejected: Vec::new(),
        }
    }

    /// A refusal of the control protocol's kind.
    pub fn of(code: ErrorCode, message: impl Into<String>) -> ApiError {
        let status = StatusCode::from_u16(code.http_status())
            .expect("invariant: error codes map to valid statuses");
        ApiError::new(status, code.as_str(), message)
    }

    /// `missing` or `wrong`.
    pub fn unauthorized(what: &str) -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            format!(
                "{what} bearer token: send `Authorization: Bearer TOKEN` (`nftjail http-token` prints it)"
            ),
        )
    }

    pub fn rate_limited() -> ApiError {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests ([http] requests_per_second); retry shortly",
        )
    }

    pub fn not_found(path: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("nothing at {path} (the API is under /api/v1/, the metrics at /metrics)"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&ErrorBody {
            ok: false,
            error: self.code,
            message: &self.message,
            diagnostics: &self.diagnostics,
            rejected: &self.rejected,
        })
        .expect("invariant: errors serialize");
        let mut response = (self.status, json_headers(), body).into_response();
        match self.status {
            StatusCode::UNAUTHORIZED => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"nftjail\""),
                );
            }
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}

fn json_headers() -> [(header::HeaderName, HeaderValue); 2] {
    [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
    ]
}

/// The head of a reply line: enough to tell a success from a refusal.
pub fn refusal(reply: Reply) -> ApiError {
    let mut error = ApiError::of(
        reply.code.unwrap_or(ErrorCode::Refused),
        reply.error.unwrap_or_else(|| "refused".to_string()),
    );
    error.diagnostics = reply.diagnostics;
    error.rejected = reply.rejected;
    error
}

/// A control reply line as a response. `reads` is told when a shared line is written out.
pub fn from_line(line: ReplyLine, reads: &Reads) -> Response {
    match line {
        // Only successes are shared.
        ReplyLine::Shared(line) => {
            let body = Body::new(SharedBody {
                line: Some(line),
                next: 0,
                reads: reads.clone(),
            });
            (StatusCode::OK, json_headers(), body).into_response()
        }
        ReplyLine::Owned(bytes) => match serde_json::from_slice::<Reply>(&bytes) {
            Ok(reply) if reply.ok => (StatusCode::OK, json_headers(), bytes).into_response(),
            Ok(reply) => refusal(reply).into_response(),
            Err(e) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "failed",
                format!("the daemon's reply did not parse: {e}"),
            )
            .into_response(),
        },
    }
}

/// A shared reply line written chunk by chunk from its shared buffer. When the body is done
/// (or the client gone), the line is let go and `reads` may forget it.
struct SharedBody {
    line: Option<SharedLine>,
    next: usize,
    reads: Reads,
}

/// One chunk of a shared line, kept alive by the line itself.
struct Chunk(SharedLine, usize);

impl AsRef<[u8]> for Chunk {
    fn as_ref(&self) -> &[u8] {
        self.0
            .chunks()
            .nth(self.1)
            .expect("invariant: a chunk index below the count")
    }
}

impl http_body::Body for SharedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        let Some(line) = &self.line else {
            return Poll::Ready(None);
        };
        if self.next >= line.chunks().count() {
            return Poll::Ready(None);
        }
        let chunk = Bytes::from_owner(Chunk(line.clone(), self.next));
        self.next += 1;
        Poll::Ready(Some(Ok(http_body::Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.line
            .as_ref()
            .is_none_or(|line| self.next >= line.chunks().count())
    }

    fn size_hint(&self) -> http_body::SizeHint {
        let left: usize = self.line.as_ref().map_or(0, |line| {
            line.chunks().skip(self.next).map(<[u8]>::len).sum()
        });
        http_body::SizeHint::with_exact(left as u64)
    }
}

impl Drop for SharedBody {
    fn drop(&mut self) {
        self.line = None;
        self.reads.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::protocol::{BanEntryRef, ErrorCode};
    use nftjail_core::addr::BanTarget;
    use nftjail_core::tracker::Origin;

    async fn body_of(response: Response) -> (StatusCode, serde_json::Value) {
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn refusals_carry_their_code_and_status() {
        let reads = Reads::default();
        let cases = [
            (
                Reply::refuse(ErrorCode::UnknownJail, "no jail"),
                404,
                "unknown_jail",
            ),
            (
                Reply::refuse(ErrorCode::InvalidConfig, "bad"),
                422,
                "invalid_config",
            ),
            (Reply::refuse(ErrorCode::Failed, "kernel"), 500, "failed"),
            (Reply::error("no code"), 409, "refused"),
        ];
        for (reply, status, code) in cases {
            let (got, body) = body_of(from_line(reply.into_line(), &reads)).await;
            assert_eq!(got.as_u16(), status, "{body}");
            assert_eq!(body["error"], code);
            assert_eq!(body["ok"], false);
            assert!(body["message"].is_string());
        }
        let (status, body) = body_of(from_line(Reply::ok().into_line(), &reads)).await;
        assert_eq!(
            (status.as_u16(), body),
            (200, serde_json::json!({"ok": true}))
        );
    }

    #[tokio::test]
    async fn a_shared_line_is_written_whole_from_its_chunks() {
        let targets: Vec<BanTarget> = (0..5_000u32)
            .map(|i| BanTarget::addr(std::net::Ipv4Addr::from(0xc000_0200 + i).into()))
            .collect();
        let line = SharedLine::banned(targets.iter().map(|t| BanEntryRef {
            jail: "sshd",
            target: t,
            since: 1,
            expires: None,
            count: 1,
            origin: &Origin::Manual,
        }));
        assert!(line.chunks().count() > 1, "several chunks");
        let want = line.to_vec();
        let response = from_line(ReplyLine::Shared(line.clone()), &Reads::default());
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(bytes, want);
        assert_eq!(line.holders(), 1, "the body let go of the line");
    }
}
