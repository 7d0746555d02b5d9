//! The web console: one static page, its script and its style, compiled into the binary.
//!
//! Receives `GET /`, `/console.js`, `/console-firewall.js`, `/console.css` (and `/favicon.ico`:
//! none); emits the files with headers that keep the
//! page to itself: a Content-Security-Policy that allows only its own script, style and API
//! (no inline script, no other origin, no framing: clickjacking an "unban" button is not
//! possible), no referrer, no MIME sniffing. The page holds no data: its script reads the API
//! with the token the administrator gives it (pasted, or in the URL's `#token=` fragment, which
//! browsers never send to the server), kept in the tab's `sessionStorage`, sent as a bearer
//! header — never as a cookie. No build step: plain HTML, CSS and JavaScript.

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

const INDEX: &str = include_str!("console/index.html");
const SCRIPT: &str = include_str!("console/console.js");
/// The firewall's section (rules, forwards, the switch).
const FIREWALL_SCRIPT: &str = include_str!("console/console-firewall.js");
const STYLE: &str = include_str!("console/console.css");

/// What the page may load and who may frame it.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub fn routes() -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { file("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/console.js",
            get(|| async { file("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/console-firewall.js",
            get(|| async { file("text/javascript; charset=utf-8", FIREWALL_SCRIPT) }),
        )
        .route(
            "/console.css",
            get(|| async { file("text/css; charset=utf-8", STYLE) }),
        )
        // Browsers ask for it by themselves; there is none.
        .route(
            "/favicon.ico",
            get(|| async { axum::http::StatusCode::NO_CONTENT }),
        )
}

fn file(content_type: &'static str, body: &'static str) -> Response {
    let headers: [(HeaderName, HeaderValue); 6] = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    (headers, body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_its_own_files() {
        assert!(INDEX.contains("<script src=\"/console.js\"></script>"));
        assert!(INDEX.contains("<script src=\"/console-firewall.js\"></script>"));
        assert!(INDEX.contains("href=\"/console.css\""));
        // No inline script or style: the policy would block them.
        assert_eq!(INDEX.matches("<script").count(), 2);
        assert!(!INDEX.contains("<style") && !INDEX.contains(" style="));
        assert!(!INDEX.contains("onclick="));
        for script in [SCRIPT, FIREWALL_SCRIPT] {
            // Data reaches the page as text, never as markup.
            assert!(!script.contains("innerHTML"), "use textContent");
            assert!(!script.contains("document.cookie"), "no cookies");
        }
        // Every in-page link has its target.
        for link in INDEX.split("href=\"#").skip(1) {
            let id = &link[..link.find('"').unwrap()];
            assert!(
                INDEX.contains(&format!("id=\"{id}\"")),
                "#{id} links nowhere"
            );
        }
    }
}
