//! Real packets: a banned source is dropped on the jail's ports only, directly and behind a DNAT.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use super::*;

/// Whether a TCP connection to `addr` is accepted within half a second.
fn connects(ns: &Netns, addr: &str) -> bool {
    let addr: SocketAddr = addr.parse().unwrap();
    ns.enter(|| TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok())
}

/// Whether a TCP connection to `addr` is accepted within three tries of a second each: for
/// what must answer, so that a loaded machine's slow first packet is not taken for a drop.
/// (Regression: a flaky "before the ban" check under a load of 15.)
fn answers(ns: &Netns, addr: &str) -> bool {
    let addr: SocketAddr = addr.parse().unwrap();
    (0..3).any(|_| ns.enter(|| TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()))
}

fn listen(ns: &Netns, addr: &str) -> TcpListener {
    ns.enter(|| TcpListener::bind(addr)).unwrap()
}

#[test]
#[ignore = "needs root"]
fn a_banned_source_is_dropped_on_jail_ports_while_other_ports_answer() {
    let (server, client) = (Netns::new("server"), Netns::new("client"));
    Netns::link(
        &server,
        &["192.0.2.1/24", "2001:db8::1/64"],
        &client,
        &["192.0.2.2/24", "2001:db8::2/64"],
        0,
    );
    // Dual-stack listeners: the kernel completes handshakes without accept().
    let _jail_port = listen(&server, "[::]:2222");
    let _other_port = listen(&server, "[::]:8080");
    let mut backend = server.enter(|| NetlinkBackend::open(TABLE)).unwrap();
    backend
        .apply_layout(&layout(
            &[Hook::Input, Hook::Forward],
            Verdict::Drop,
            vec![rules("sshd", ports(&[(2222, 2222)]), &[Protocol::Tcp])],
        ))
        .unwrap();
    let all = [
        "192.0.2.1:2222",
        "192.0.2.1:8080",
        "[2001:db8::1]:2222",
        "[2001:db8::1]:8080",
    ];
    for addr in all {
        assert!(answers(&client, addr), "{addr} before the ban");
    }
    backend
        .apply(&[
            add("sshd", "192.0.2.2", Some(60)),
            add("sshd", "2001:db8::2", Some(60)),
        ])
        .unwrap();
    let started = Instant::now();
    assert!(
        !connects(&client, "192.0.2.1:2222"),
        "v4 jail port after the ban"
    );
    assert!(
        !connects(&client, "[2001:db8::1]:2222"),
        "v6 jail port after the ban"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "dropped, not refused"
    );
    assert!(
        answers(&client, "192.0.2.1:8080"),
        "v4 other port after the ban"
    );
    assert!(
        answers(&client, "[2001:db8::1]:8080"),
        "v6 other port after the ban"
    );
    // The counters of the rules saw the dropped SYNs.
    assert!(
        server
            .nft_text(TABLE)
            .contains("drop comment \"nftjail:sshd\"")
    );

    backend
        .apply(&[remove("sshd", "192.0.2.2"), remove("sshd", "2001:db8::2")])
        .unwrap();
    assert!(answers(&client, "192.0.2.1:2222"), "v4 after the unban");
    assert!(answers(&client, "[2001:db8::1]:2222"), "v6 after the unban");
}

#[test]
#[ignore = "needs root"]
fn forward_chain_matches_the_published_port_before_dnat() {
    let (client, router, container) = (
        Netns::new("fwclient"),
        Netns::new("fwrouter"),
        Netns::new("fwcontainer"),
    );
    Netns::link(&client, &["192.0.2.2/24"], &router, &["192.0.2.1/24"], 1);
    Netns::link(
        &router,
        &["198.51.100.1/24"],
        &container,
        &["198.51.100.2/24"],
        2,
    );
    container.run("ip", &["route", "add", "default", "via", "198.51.100.1"]);
    router.run("sysctl", &["-qw", "net.ipv4.ip_forward=1"]);
    // What Docker does for `-p 2525:25`: DNAT host port 2525 to the container's port 25.
    // (Test scaffolding only: the product never runs nft.)
    router.run("nft", &["add table ip nat"]);
    router.run(
        "nft",
        &["add chain ip nat prerouting { type nat hook prerouting priority dstnat; }"],
    );
    router.run(
        "nft",
        &["add rule ip nat prerouting tcp dport 2525 dnat to 198.51.100.2:25"],
    );
    let _smtp = listen(&container, "0.0.0.0:25");
    assert!(
        answers(&client, "192.0.2.1:2525"),
        "published port before the ban"
    );

    let mut backend = router.enter(|| NetlinkBackend::open(TABLE)).unwrap();
    let jail_on = |port| {
        layout(
            &[Hook::Forward],
            Verdict::Drop,
            vec![rules("postfix", ports(&[(port, port)]), &[Protocol::Tcp])],
        )
    };
    backend.apply_layout(&jail_on(25)).unwrap();
    backend
        .apply(&[add("postfix", "192.0.2.2", Some(60))])
        .unwrap();
    // The container's port is not what the client connected to: no match.
    assert!(
        answers(&client, "192.0.2.1:2525"),
        "jail on the container port"
    );
    backend.apply_layout(&jail_on(2525)).unwrap();
    assert!(
        !connects(&client, "192.0.2.1:2525"),
        "jail on the published port"
    );
}
