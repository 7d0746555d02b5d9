//! Port forwarding: a real connection from a client, through the daemon's host, to a backend
//! that sees it masqueraded; IPv4 and IPv6; `net.ipv4.ip_forward` reported, never changed.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::*;

/// Accepts one connection on `listener` (in another thread) and returns the peer's address
/// and what it sent.
fn serve_one(listener: TcpListener) -> std::thread::JoinHandle<(SocketAddr, String)> {
    listener.set_nonblocking(false).unwrap();
    std::thread::spawn(move || {
        let (mut stream, peer) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        (peer, text)
    })
}

fn send(ns: &Netns, to: &str, text: &str) {
    let to: SocketAddr = to.parse().unwrap();
    ns.enter(|| {
        let mut stream = TcpStream::connect_timeout(&to, Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("connect to {to}: {e}"));
        stream.write_all(text.as_bytes()).unwrap();
    });
}

#[test]
#[ignore = "needs root"]
fn a_forward_carries_a_real_connection_to_the_backend_masqueraded() {
    // The firewall is on with a drop policy for forwarding too: only the forward passes.
    let d = start(
        "fw-forward",
        "enabled = true\ndefault_forward = \"drop\"\n",
        &[("10-ssh.toml", PROTECTED_SSH)],
    );
    let client = client_of(&d);
    let backend = Netns::new("fwbackend");
    Netns::link(
        &d.ns,
        &["10.0.0.1/24", "fd00::1/64"],
        &backend,
        &["10.0.0.2/24", "fd00::2/64"],
        1,
    );
    // The backend has no route back to the client: only a masqueraded connection can answer.
    let smtp = listen(&backend, "[::]:25");

    // Forwarding is off in a fresh namespace: said, not changed.
    let out = d.cli(&[
        "forward",
        "add",
        "--protocol",
        "tcp",
        "--port",
        "2525",
        "--to",
        "10.0.0.2:25",
        "--comment",
        "SMTP to the backend",
    ]);
    assert!(out.status.success(), "{out:?}");
    let warning = String::from_utf8_lossy(&out.stderr);
    assert!(warning.contains("net.ipv4.ip_forward is 0"), "{warning}");
    assert_eq!(
        d.ns.run("cat", &["/proc/sys/net/ipv4/ip_forward"]).trim(),
        "0",
        "not changed by nftjail"
    );
    let status: serde_json::Value =
        serde_json::from_str(&d.ok(&["firewall", "status", "--json"])).unwrap();
    assert_eq!(status["firewall"]["ip_forward"]["ipv4"], false);
    // What the administrator does (no `sysctl` binary needed).
    let sysctl =
        "echo 1 > /proc/sys/net/ipv4/ip_forward; echo 1 > /proc/sys/net/ipv6/conf/all/forwarding";
    d.ns.run("sh", &["-c", sysctl]);

    let served = serve_one(smtp.try_clone().unwrap());
    send(&client, "192.0.2.1:2525", "EHLO client\r\n");
    let (peer, text) = served.join().unwrap();
    assert_eq!(text, "EHLO client\r\n");
    assert_eq!(
        peer.ip().to_string(),
        "::ffff:10.0.0.1",
        "masqueraded to the host's address on the backend's link"
    );

    // IPv6, through a second forward.
    d.ok(&[
        "forward",
        "add",
        "--protocol",
        "tcp",
        "--port",
        "2525",
        "--to",
        "[fd00::2]:25",
    ]);
    let served = serve_one(smtp);
    send(&client, "[2001:db8::1]:2525", "EHLO six\r\n");
    let (peer, text) = served.join().unwrap();
    assert_eq!(
        (peer.ip().to_string(), text.as_str()),
        ("fd00::1".to_string(), "EHLO six\r\n")
    );

    // An overlapping forward is refused, naming what it overlaps; the list shows both.
    let error = refused(
        &d,
        &[
            "forward",
            "add",
            "--protocol",
            "tcp",
            "--port",
            "2525",
            "--to",
            "10.0.0.3:25",
        ],
    );
    assert!(
        error.contains("already takes these packets: tcp port 2525 from any to 10.0.0.2:25"),
        "{error}"
    );
    let list: serde_json::Value =
        serde_json::from_str(&d.ok(&["forward", "list", "--json"])).unwrap();
    let forwards = list["forwards"].as_array().unwrap();
    assert_eq!(forwards.len(), 2);
    assert_eq!(forwards[0]["to"], "10.0.0.2:25");
    assert_eq!(forwards[0]["comment"], "SMTP to the backend");
    // Deleted: the port is closed again (the firewall drops it).
    let id = forwards[0]["id"].as_u64().unwrap().to_string();
    d.ok(&["forward", "delete", &id]);
    assert_eq!(
        reach(&client, "192.0.2.2", "192.0.2.1:2525"),
        Reach::Dropped
    );
}
