//! The server against well-behaved and hostile clients, with a stand-in core.

use std::time::Instant;

use tokio::io::AsyncReadExt;

use super::*;
use crate::control::protocol::{SharedLine, encode_request};

/// Binds a socket in a temp dir and serves it with a core that answers every call with a
/// summary of the command. Returns the socket path, the temp dir and the shutdown token.
async fn server(max_clients: usize) -> (PathBuf, tempfile::TempDir, CancellationToken) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run/nftjail.sock");
    let socket = bind(&path, None).unwrap();
    let (tx, mut rx) = mpsc::channel::<Call>(16);
    tokio::spawn(async move {
        while let Some(call) = rx.recv().await {
            let reply = match call.command {
                Command::Ban {
                    targets, rejected, ..
                } => Reply {
                    banned: Some(targets.len()),
                    rejected,
                    ..Reply::ok()
                },
                Command::Status { jail } => Reply {
                    error: jail,
                    ..Reply::ok()
                },
                other => Reply {
                    error: Some(format!("{other:?}")),
                    ..Reply::ok()
                },
            };
            let _ = call.reply.send(reply);
        }
    });
    let shutdown = CancellationToken::new();
    tokio::spawn(serve(
        socket,
        Access {
            group: None,
            max_clients,
        },
        tx,
        shutdown.clone(),
    ));
    (path, dir, shutdown)
}

async fn ask(path: &Path, bytes: &[u8]) -> String {
    let mut s = UnixStream::connect(path).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut reader = BufReader::new(s);
    let mut line = String::new();
    reader.read_line(&mut line).await.unwrap();
    line
}

#[tokio::test]
async fn socket_is_0660_and_answers_requests() {
    let (path, _dir, _stop) = server(8).await;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    assert!(
        ask(&path, b"{\"command\":\"ping\"}\n")
            .await
            .starts_with("{\"ok\":true,\"version\":")
    );
    assert_eq!(
        ask(&path, b"{\"command\":\"status\",\"jail\":\"sshd\"}\n").await,
        "{\"ok\":true,\"error\":\"sshd\"}\n"
    );
}

#[tokio::test]
async fn garbage_and_bad_values_get_error_replies_and_the_connection_survives() {
    let (path, _dir, _stop) = server(8).await;
    let mut s = UnixStream::connect(&path).await.unwrap();
    s.write_all(b"\x00\x01garbage\xff\n{\"command\":\"nope\"}\n{\"command\":\"ban\",\"jail\":\"sshd\",\"targets\":[\"1.2.3.4\"],\"for\":\"forever-ish\"}\n{\"command\":\"unban\"}\n{\"command\":\"ping\"}\n").await.unwrap();
    let mut reader = BufReader::new(s);
    let mut replies = Vec::new();
    for _ in 0..5 {
        let mut line = String::new();
        reader.read_line(&mut line).await.unwrap();
        replies.push(line);
    }
    assert!(replies[0].contains("not UTF-8"), "{replies:?}");
    assert!(replies[1].contains("unknown variant"), "{replies:?}");
    assert!(replies[2].contains("not a duration"), "{replies:?}");
    assert!(replies[3].contains("unban needs an address"), "{replies:?}");
    assert!(replies[4].contains("\"ok\":true"), "{replies:?}");
}

#[tokio::test]
async fn a_ten_megabyte_request_is_refused_without_buffering_it() {
    let (path, _dir, _stop) = server(8).await;
    let mut s = UnixStream::connect(&path).await.unwrap();
    let huge = vec![b'x'; 10 * 1024 * 1024];
    let writer = tokio::spawn(async move {
        // The server may close before all of it is sent.
        let _ = s.write_all(&huge).await;
        let _ = s.write_all(b"\n").await;
        s
    });
    let mut s = writer.await.unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).await.unwrap();
    assert!(reply.contains("request too large"), "{reply}");
    assert!(
        ask(&path, b"{\"command\":\"ping\"}\n")
            .await
            .contains("\"ok\":true"),
        "still serving"
    );
}

#[tokio::test]
async fn silent_clients_do_not_starve_status() {
    // Exactly the default cap: the 65th client only gets in by evicting an idle one.
    let (path, _dir, _stop) = server(64).await;
    let mut silent = Vec::new();
    for _ in 0..64 {
        silent.push(UnixStream::connect(&path).await.unwrap());
    }
    let start = Instant::now();
    let reply = ask(&path, b"{\"command\":\"status\"}\n").await;
    assert!(reply.contains("\"ok\":true"), "{reply}");
    // Starved, it would wait for a silent client's READ_TIMEOUT (10 s); the bound leaves room
    // for a machine busy with other builds.
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "status took {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn when_full_the_idlest_client_makes_room() {
    let (path, _dir, _stop) = server(2).await;
    let mut first = UnixStream::connect(&path).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let _second = UnixStream::connect(&path).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let reply = ask(&path, b"{\"command\":\"status\"}\n").await;
    assert!(reply.contains("\"ok\":true"), "{reply}");
    let mut rest = Vec::new();
    first.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "the longest idle connection was closed");
}

#[tokio::test]
async fn when_every_client_is_busy_the_next_is_told_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let socket = bind(&path, None).unwrap();
    // A core that never answers keeps its clients busy.
    let (tx, _rx) = mpsc::channel::<Call>(16);
    let stop = CancellationToken::new();
    tokio::spawn(serve(
        socket,
        Access {
            group: None,
            max_clients: 1,
        },
        tx,
        stop.clone(),
    ));
    let mut busy = UnixStream::connect(&path).await.unwrap();
    busy.write_all(b"{\"command\":\"status\"}\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let reply = ask(&path, b"{\"command\":\"status\"}\n").await;
    assert!(reply.contains("too many clients"), "{reply}");
}

#[tokio::test]
async fn a_streamed_blocklist_of_100k_lines_becomes_one_call() {
    let (path, _dir, _stop) = server(8).await;
    let mut s = UnixStream::connect(&path).await.unwrap();
    let header = encode_request(&Request::Ban {
        jail: "manual".into(),
        targets: vec![],
        length: Some("1d".into()),
        stream: true,
    });
    let mut body = header;
    body.extend_from_slice(b"# a blocklist\n");
    for n in 0..100_000u32 {
        body.extend_from_slice(
            format!("10.{}.{}.{}\n", n >> 16, (n >> 8) & 255, n & 255).as_bytes(),
        );
    }
    body.extend_from_slice(b"not-an-address\n\n");
    s.write_all(&body).await.unwrap();
    let mut reader = BufReader::new(s);
    let mut line = String::new();
    reader.read_line(&mut line).await.unwrap();
    let reply: Reply = serde_json::from_str(&line).unwrap();
    assert_eq!(reply.banned, Some(100_000));
    assert_eq!(reply.rejected.len(), 1);
    assert_eq!(reply.rejected[0].line, 100_002);
}

#[tokio::test]
async fn stale_sockets_are_replaced_and_other_files_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap()); // leaves a stale socket file
    let live = bind(&path, None).unwrap();
    let err = bind(&path, None).err().unwrap();
    assert!(err.to_string().contains("is in use"), "{err}");
    drop(live);
    assert!(!path.exists(), "dropping the socket removes it");
    std::fs::write(&path, "precious").unwrap();
    let err = bind(&path, None).err().unwrap();
    assert!(err.to_string().contains("not a socket"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
}

#[tokio::test]
async fn mutating_requests_need_root_here_we_are_root() {
    // The peer is this test process. As root it may ban; the refusal of a non-root peer is
    // exercised end to end in tests/nftjail/control.rs (a client run under setpriv).
    let (path, _dir, _stop) = server(8).await;
    let reply = ask(
        &path,
        b"{\"command\":\"ban\",\"jail\":\"sshd\",\"targets\":[\"192.0.2.1\"]}\n",
    )
    .await;
    if nix::unistd::geteuid().is_root() {
        assert!(reply.contains("\"banned\":1"), "{reply}");
    } else {
        assert!(reply.contains("permission denied"), "{reply}");
    }
}

/// Serves a socket whose core is the returned receiver: the test answers the calls itself.
async fn bare_server(
    max_clients: usize,
) -> (
    PathBuf,
    tempfile::TempDir,
    mpsc::Receiver<Call>,
    CancellationToken,
) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let socket = bind(&path, None).unwrap();
    let (tx, rx) = mpsc::channel::<Call>(16);
    let stop = CancellationToken::new();
    tokio::spawn(serve(
        socket,
        Access {
            group: None,
            max_clients,
        },
        tx,
        stop.clone(),
    ));
    (path, dir, rx, stop)
}

/// A `banned` reply of `len` bytes (a valid reply line).
fn big_line(len: usize) -> SharedLine {
    let mut line = b"{\"ok\":true,\"error\":\"".to_vec();
    line.resize(len - 3, b'x');
    line.extend_from_slice(b"\"}\n");
    SharedLine::from(line)
}

/// Answers every call with `line`, counting the calls.
fn answer_all(mut calls: mpsc::Receiver<Call>, line: SharedLine) -> Arc<Mutex<usize>> {
    let count = Arc::new(Mutex::new(0));
    let counter = count.clone();
    tokio::spawn(async move {
        while let Some(call) = calls.recv().await {
            *counter.lock().unwrap() += 1;
            // As a busy core would be, a little later.
            tokio::time::sleep(Duration::from_millis(20)).await;
            let _ = call.reply.send(Reply::shared(line.clone()));
        }
    });
    count
}

// Regression: a reply was written with `write_all` and no timeout, so a client that never read
// pinned its reply (and its connection slot) for as long as it stayed connected.
#[tokio::test(start_paused = true)]
async fn a_client_that_does_not_take_its_reply_is_disconnected() {
    let (path, _dir, calls, _stop) = bare_server(8).await;
    let line = big_line(4 << 20);
    answer_all(calls, line.clone());
    let mut s = UnixStream::connect(&path).await.unwrap();
    s.write_all(b"{\"command\":\"banned\"}\n").await.unwrap();
    // The client reads nothing until long after the deadline (the paused clock jumps there).
    tokio::time::sleep(write_deadline(line.len()) + Duration::from_secs(1)).await;
    let mut got = Vec::new();
    s.read_to_end(&mut got).await.unwrap();
    assert!(
        got.len() < line.len(),
        "the connection was closed before the whole reply went out ({} bytes read)",
        got.len()
    );
    assert_eq!(write_deadline(100), WRITE_TIMEOUT);
    assert_eq!(
        write_deadline(11_000_000),
        WRITE_TIMEOUT + Duration::from_secs(2)
    );
}

// Regression: clients stuck on a reply they do not read counted as busy, so 64 of them (the
// default max_clients) locked every other client out with "too many clients".
#[tokio::test]
async fn a_client_stuck_on_its_reply_makes_room_for_the_next() {
    let (path, _dir, calls, _stop) = bare_server(1).await;
    answer_all(calls, big_line(4 << 20));
    let mut stuck = UnixStream::connect(&path).await.unwrap();
    stuck
        .write_all(b"{\"command\":\"banned\"}\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let start = Instant::now();
    let reply = ask(&path, b"{\"command\":\"ping\"}\n").await;
    assert!(reply.contains("\"ok\":true"), "{reply}");
    // Locked out, it would be refused, or let in only once the stuck client's write deadline
    // (6 s for this line) ran out; the bound leaves room for a busy machine.
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn reads_asked_together_share_one_call_and_one_buffer() {
    let (path, _dir, calls, _stop) = bare_server(64).await;
    let line = big_line(1 << 20);
    let count = answer_all(calls, line.clone());
    let clients: Vec<_> = (0..32)
        .map(|_| {
            let path = path.clone();
            tokio::spawn(async move {
                let mut s = UnixStream::connect(&path).await.unwrap();
                s.write_all(b"{\"command\":\"banned\"}\n").await.unwrap();
                let mut reader = BufReader::new(s);
                let mut got = Vec::new();
                reader.read_until(b'\n', &mut got).await.unwrap();
                got
            })
        })
        .collect();
    for client in clients {
        assert_eq!(client.await.unwrap(), line.to_vec());
    }
    let calls = *count.lock().unwrap();
    assert!(calls <= 3, "{calls} calls to the core for 32 equal reads");
}

#[tokio::test]
async fn a_read_never_gets_a_reply_computed_before_it_was_asked() {
    let (path, _dir, mut calls, _stop) = bare_server(8).await;
    let read = |path: PathBuf| async move { ask(&path, b"{\"command\":\"status\"}\n").await };
    let first = tokio::spawn(read(path.clone()));
    let call1 = calls.recv().await.unwrap();
    // Asked while the first call is with the core: it must wait for a call of its own.
    let second = tokio::spawn(read(path.clone()));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        calls.try_recv().is_err(),
        "no second call while the first runs"
    );
    let _ = call1.reply.send(Reply {
        error: Some("state 1".into()),
        ..Reply::ok()
    });
    assert!(first.await.unwrap().contains("state 1"));
    let call2 = calls.recv().await.unwrap();
    let _ = call2.reply.send(Reply {
        error: Some("state 2".into()),
        ..Reply::ok()
    });
    assert!(second.await.unwrap().contains("state 2"));
}
