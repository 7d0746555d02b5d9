use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::*;

const BIG: usize = 32 << 20;

/// A server of two routes on a loopback port: `/` (a short answer) and `/big` (more than the
/// kernel buffers of a connection whose client does not read).
async fn server(max_connections: usize) -> (SocketAddr, CancellationToken) {
    let router = Router::new()
        .route("/", get(|| async { "hello" }))
        .route("/big", get(|| async { vec![b'x'; BIG] }));
    let listener = Listener::tcp("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(serve(listener, router, max_connections, stop.clone()));
    (addr, stop)
}

async fn get_root(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text)
        .await
        .expect("a clean answer, even when busy");
    text
}

#[test]
fn accept_failures_back_off_exponentially_and_reset() {
    let mut backoff = Backoff::default();
    let waits: Vec<u64> = (0..10)
        .map(|_| backoff.failed().as_millis() as u64)
        .collect();
    assert_eq!(waits, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
    for _ in 0..100 {
        backoff.failed();
    }
    assert_eq!(backoff.failed(), ACCEPT_BACKOFF_MAX, "no overflow");
    backoff.reset();
    assert_eq!(backoff.failed(), ACCEPT_BACKOFF_MIN);
    let text = std::str::from_utf8(BUSY).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(
        head.contains(&format!("Content-Length: {}", body.len())),
        "{text}"
    );
    assert!(serde_json::from_str::<serde_json::Value>(body).is_ok());
}

// Regression (the hand-written metrics responder): every connection got a task of its own,
// without limit, so a flood of idle connections held as many tasks and descriptors as it liked.
#[tokio::test]
async fn connections_over_the_cap_get_503_at_once() {
    let (addr, stop) = server(4).await;
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    let mut extra = TcpStream::connect(addr).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(2), extra.read_to_string(&mut answer))
        .await
        .expect("answered at once")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    // A slot frees when a connection ends: the next client is served.
    drop(idle.pop());
    let served = async {
        loop {
            let text = get_root(addr).await;
            if text.starts_with("HTTP/1.1 200 ") {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let text = tokio::time::timeout(Duration::from_secs(2), served)
        .await
        .expect("a freed slot serves the next client");
    assert!(text.ends_with("hello"), "{text}");
    stop.cancel();
}

// A client that opens a connection and says nothing (or idles between keep-alive requests)
// loses it after the head timeout.
#[tokio::test(start_paused = true)]
async fn a_silent_client_is_dropped_after_the_head_timeout() {
    let (addr, _stop) = server(4).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HT").await.unwrap();
    let started = tokio::time::Instant::now();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).await.unwrap();
    assert!(started.elapsed() >= HEAD_TIMEOUT);
    assert!(
        rest.is_empty() || rest.starts_with(b"HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&rest)
    );
}

// A client that asks for a big answer and never reads it must not keep its slot for ever.
#[tokio::test(start_paused = true)]
async fn a_client_that_does_not_take_its_response_is_dropped() {
    let (addr, _stop) = server(1).await;
    let mut stuck = TcpStream::connect(addr).await.unwrap();
    stuck
        .write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // The only slot is taken: others are turned away until the stuck one is dropped.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(get_root(addr).await.starts_with("HTTP/1.1 503 "));
    tokio::time::sleep(WRITE_TIMEOUT + Duration::from_secs(1)).await;
    assert!(
        get_root(addr).await.starts_with("HTTP/1.1 200 "),
        "the slot came back"
    );
    let mut got = Vec::new();
    let _ = stuck.read_to_end(&mut got).await;
    assert!(got.len() < BIG, "cut off mid-answer, not served whole");
}
