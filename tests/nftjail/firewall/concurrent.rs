//! Firewall requests that arrive together, with reloads among them: each waits its turn (one
//! change in flight), none is lost, every id is given once. In-process, on the memory backend.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use nftjail::control::protocol::{ErrorCode, Request};
use nftjail_backend::MemoryBackend;

use crate::faults::{Shared, ask, start};

#[test]
fn requests_that_arrive_together_wait_their_turn_and_all_land() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("firewall.d")).unwrap();
    std::fs::write(dir.path().join("firewall.d/ssh.toml"), super::PROTECTED_SSH).unwrap();
    let kernel = Arc::new(Mutex::new(MemoryBackend::new("nftjail")));
    let d = start(dir.path(), Box::new(Shared(kernel.clone())), Arc::default());
    let enable = Request::FirewallEnable {
        confirm_within: None,
        session: None,
    };
    assert!(ask(&d.socket, &enable).ok);

    let adds: Vec<_> = (0..12u16)
        .map(|n| {
            let socket = d.socket.clone();
            std::thread::spawn(move || {
                let add = Request::RuleAdd {
                    chain: None,
                    protocol: "tcp".into(),
                    port: (8000 + n).to_string(),
                    source: None,
                    action: "accept".into(),
                    comment: format!("n{n}"),
                };
                ask(&socket, &add)
            })
        })
        .collect();
    let reloads: Vec<_> = (0..3)
        .map(|_| {
            let socket = d.socket.clone();
            std::thread::spawn(move || ask(&socket, &Request::Reload))
        })
        .collect();
    let mut ids: Vec<u64> = adds
        .into_iter()
        .map(|t| {
            let reply = t.join().unwrap();
            assert!(reply.ok, "{reply:?}");
            reply.id.unwrap()
        })
        .collect();
    for reload in reloads {
        let reply = reload.join().unwrap();
        assert!(reply.ok, "{reply:?}");
    }
    ids.sort();
    assert_eq!(
        ids,
        (2..14).collect::<Vec<u64>>(),
        "each id once, after the file rule's"
    );

    let listed = ask(&d.socket, &Request::Rules).rules.unwrap();
    assert_eq!(listed.len(), 13);
    assert_eq!(
        listed[0].origin, "firewall.d/ssh.toml:1",
        "file rules first"
    );
    let comments: Vec<String> = {
        let backend = kernel.lock().unwrap();
        backend.firewall_chains()[0]
            .rules
            .iter()
            .map(|r| r.comment.clone())
            .filter(|c| c.starts_with("rule"))
            .collect()
    };
    let want: Vec<String> = listed
        .iter()
        .map(|r| {
            let mark = if r.protected { " [protected]" } else { "" };
            format!("rule {}: {}{mark}", r.id, r.comment)
        })
        .collect();
    assert_eq!(comments, want, "the kernel holds what is listed, in order");
    // Refusals carry their stable code.
    let code = |request: Request| ask(&d.socket, &request).code;
    assert_eq!(
        code(Request::RuleDelete { id: 99 }),
        Some(ErrorCode::UnknownId)
    );
    assert_eq!(
        code(Request::ForwardDelete { id: 2 }),
        Some(ErrorCode::UnknownId)
    );
    assert_eq!(
        code(Request::RuleDelete { id: 1 }),
        Some(ErrorCode::Protected)
    );
    assert_eq!(code(Request::FirewallConfirm), Some(ErrorCode::NotPending));
    let bad_port = Request::RuleAdd {
        chain: None,
        protocol: "tcp".into(),
        port: "0".into(),
        source: None,
        action: "accept".into(),
        comment: String::new(),
    };
    assert_eq!(code(bad_port), Some(ErrorCode::BadRequest));
    // SSH forwarded away (admin port 22): refused, whatever the policy.
    let ssh_away = Request::ForwardAdd {
        protocol: "tcp".into(),
        port: "ssh".into(),
        to: "10.0.0.2:22".into(),
        source: None,
        comment: String::new(),
        session: None,
    };
    let reply = ask(&d.socket, &ssh_away);
    assert_eq!(reply.code, Some(ErrorCode::Lockout), "{reply:?}");
    assert!(
        reply
            .error
            .unwrap()
            .contains("would take admin port 22 away")
    );
    d.shutdown.cancel();
    d.done
        .recv_timeout(Duration::from_secs(10))
        .unwrap()
        .unwrap();
}
