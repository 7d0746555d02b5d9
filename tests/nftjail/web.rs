//! A tiny HTTP/1.1 client for the API tests: one request per connection (`Connection: close`),
//! made from inside the daemon's network namespace (where its loopback listener is), or over
//! its Unix socket. Written by hand so the tests see the bytes the server sends.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::daemon::Daemon;

/// Where `[http] listen` puts the API in the tests' namespaces.
pub const LISTEN: &str = "127.0.0.1:9469";

/// `[http]` on [`LISTEN`], plus `extra` keys.
pub fn http_section(extra: &str) -> String {
    format!("[http]\nlisten = \"{LISTEN}\"\n{extra}\n")
}

/// An answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}), status {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `error` code of a refusal.
    pub fn code(&self) -> String {
        self.json()["error"].as_str().unwrap_or("").to_string()
    }
}

/// A request to send.
pub struct Call<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub token: Option<&'a str>,
    pub headers: Vec<(&'a str, String)>,
    pub body: Option<Vec<u8>>,
}

impl<'a> Call<'a> {
    pub fn new(method: &'a str, path: &'a str) -> Call<'a> {
        Call {
            method,
            path,
            token: None,
            headers: Vec::new(),
            body: None,
        }
    }

    pub fn token(mut self, token: &'a str) -> Call<'a> {
        self.token = Some(token);
        self
    }

    pub fn json(mut self, body: serde_json::Value) -> Call<'a> {
        self.headers
            .push(("Content-Type", "application/json".to_string()));
        self.body = Some(body.to_string().into_bytes());
        self
    }

    pub fn header(mut self, name: &'a str, value: &str) -> Call<'a> {
        self.headers.push((name, value.to_string()));
        self
    }

    /// Declares a body of `length` bytes and sends none of it (a server that refuses it by its
    /// length answers at once, with nothing unread to reset the connection).
    pub fn declared(mut self, length: usize) -> Call<'a> {
        self.headers.push(("Content-Length", length.to_string()));
        self
    }

    pub fn raw_body(mut self, body: Vec<u8>) -> Call<'a> {
        self.body = Some(body);
        self
    }

    fn bytes(&self) -> Vec<u8> {
        let mut head = format!(
            "{} {} HTTP/1.1\r\nConnection: close\r\n",
            self.method, self.path
        );
        if !self
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("host"))
        {
            head.push_str("Host: localhost\r\n");
        }
        if let Some(token) = self.token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        let body = self.body.clone().unwrap_or_default();
        if self.body.is_some() {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(&body);
        out
    }
}

/// Sends `call` to the daemon's TCP listener (from inside its namespace).
pub fn send(d: &Daemon, call: Call<'_>) -> Answer {
    let stream = connect(d);
    exchange(stream, &call.bytes())
}

/// A connection to the daemon's listener, made inside its namespace.
pub fn connect(d: &Daemon) -> TcpStream {
    d.ns.enter(|| TcpStream::connect(LISTEN).unwrap_or_else(|e| panic!("connect {LISTEN}: {e}")))
}

/// Sends `call` over a Unix socket listener.
pub fn send_unix(path: &Path, call: Call<'_>) -> Answer {
    let stream =
        UnixStream::connect(path).unwrap_or_else(|e| panic!("connect {}: {e}", path.display()));
    exchange(stream, &call.bytes())
}

fn exchange<S: Read + Write>(mut stream: S, request: &[u8]) -> Answer {
    stream.write_all(request).expect("send the request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the answer");
    parse(&raw)
}

/// Parses a whole HTTP/1.1 response (content-length or chunked).
pub fn parse(raw: &[u8]) -> Answer {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let rest = &raw[end + 4..];
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        unchunk(rest)
    } else {
        rest.to_vec()
    };
    Answer {
        status,
        headers,
        body,
    }
}

fn unchunk(mut rest: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") else {
            return body;
        };
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&rest[..line_end])
                .split(';')
                .next()
                .unwrap_or("0")
                .trim(),
            16,
        )
        .unwrap_or(0);
        if size == 0 {
            return body;
        }
        let start = line_end + 2;
        body.extend_from_slice(&rest[start..start + size]);
        rest = &rest[start + size + 2..];
    }
}

/// The daemon's admin token (created on its first start).
pub fn token(d: &Daemon) -> String {
    std::fs::read_to_string(d.path("state/http-token"))
        .expect("the daemon created its token")
        .trim()
        .to_string()
}

/// Waits until the API answers `GET /api/v1/ping`.
pub fn wait_for_api(d: &Daemon) {
    d.wait_until("the HTTP API answers", || {
        d.ns.enter(|| TcpStream::connect_timeout(&LISTEN.parse().unwrap(), Duration::from_secs(1)))
            .is_ok()
    });
}
