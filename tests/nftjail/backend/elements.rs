//! Elements: timeouts and expiry, prefixes, overlaps, missing elements, refresh, bulk, errors.

use std::time::Duration;

use nftjail_core::addr::BanTarget;
use nix::errno::Errno;
use serde_json::{Value, json};

use super::*;

#[test]
#[ignore = "needs root"]
fn elements_carry_their_timeout_and_expire() {
    let (ns, mut backend) = setup("timeout");
    backend
        .apply_layout(&layout(
            &[Hook::Input],
            Verdict::Drop,
            vec![rules("sshd", Ports::All, &[])],
        ))
        .unwrap();
    backend
        .apply(&[
            add("sshd", "192.0.2.1", Some(3600)),
            add("sshd", "2001:db8::1", None),
            add("sshd", "192.0.2.2", Some(2)),
            add("sshd", "198.51.100.0/24", Some(2)),
            add("sshd", "2001:db8:1::/48", Some(15_552_000)), // 180 days
        ])
        .unwrap();
    let json = ns.nft_json(TABLE);
    let v4 = elements(&json, "sshd_v4");
    let ban = element(&v4, &json!("192.0.2.1"));
    assert_eq!(ban["timeout"], 3600);
    assert!(ban["expires"].as_u64().unwrap() <= 3600);
    assert!(ban["expires"].as_u64().unwrap() >= 3590);
    let permanent = element(&elements(&json, "sshd_v6"), &json!("2001:db8::1")).clone();
    assert_eq!(
        permanent,
        json!({"val": "2001:db8::1"}),
        "no timeout, no expires"
    );
    let long = elements(&json, "sshd_net6");
    assert_eq!(
        element(&long, &prefix("2001:db8:1::", 48))["timeout"],
        15_552_000
    );

    let listed = backend.list().unwrap();
    let find = |t: &str| {
        listed
            .iter()
            .find(|e| e.target == target(t))
            .unwrap()
            .clone()
    };
    assert_eq!(find("192.0.2.1").timeout, Some(Duration::from_secs(3600)));
    assert_eq!(find("2001:db8::1").timeout, None);
    assert_eq!(find("2001:db8::1").expires, None);

    // The kernel's clock: the 2 s bans are gone after 3 s, the others stay.
    std::thread::sleep(Duration::from_millis(3000));
    let json = ns.nft_json(TABLE);
    let v4: Vec<_> = elements(&json, "sshd_v4")
        .iter()
        .map(|e| e["val"].clone())
        .collect();
    assert_eq!(v4, vec![json!("192.0.2.1")]);
    assert_eq!(elements(&json, "sshd_net4"), Vec::<Value>::new());
    assert_eq!(backend.list().unwrap().len(), 3);
    // The expired prefix left nothing behind that would refuse it again.
    backend
        .apply(&[add("sshd", "198.51.100.0/24", Some(60))])
        .unwrap();
    let net4 = elements(&ns.nft_json(TABLE), "sshd_net4");
    assert_eq!(element(&net4, &prefix("198.51.100.0", 24))["timeout"], 60);
}

#[test]
#[ignore = "needs root"]
fn prefixes_round_trip_including_the_top_of_the_space() {
    let (ns, mut backend) = setup("prefix");
    let jails = vec![
        rules("web", Ports::All, &[]),
        rules("all6", Ports::All, &[]),
    ];
    backend
        .apply_layout(&layout(&[Hook::Input], Verdict::Drop, jails))
        .unwrap();
    let targets = [
        ("web", "192.0.2.0/24"),
        ("web", "255.255.255.0/24"),
        ("web", "10.0.0.0/8"),
        ("web", "2001:db8:1:2::/64"),
        ("web", "ffff:ffff:ffff:ffff::/64"),
        ("all6", "::/0"),
        ("all6", "0.0.0.0/0"),
    ];
    let changes: Vec<_> = targets.iter().map(|(j, t)| add(j, t, Some(600))).collect();
    backend.apply(&changes).unwrap();
    let json = ns.nft_json(TABLE);
    let net4 = elements(&json, "web_net4");
    for (addr, len) in [("192.0.2.0", 24), ("255.255.255.0", 24), ("10.0.0.0", 8)] {
        assert_eq!(element(&net4, &prefix(addr, len))["timeout"], 600);
    }
    let net6 = elements(&json, "web_net6");
    element(&net6, &prefix("2001:db8:1:2::", 64));
    element(&net6, &prefix("ffff:ffff:ffff:ffff::", 64));
    assert_eq!(elements(&json, "all6_net6").len(), 1);

    let mut listed: Vec<(String, String)> = backend
        .list()
        .unwrap()
        .into_iter()
        .map(|e| (e.jail.to_string(), e.target.to_string()))
        .collect();
    listed.sort();
    let mut want: Vec<(String, String)> = targets
        .iter()
        .map(|(j, t)| (j.to_string(), t.to_string()))
        .collect();
    want.sort();
    assert_eq!(listed, want);

    // Deleting prefixes (start and end elements) leaves the sets empty.
    let removes: Vec<_> = targets.iter().map(|(j, t)| remove(j, t)).collect();
    backend.apply(&removes).unwrap();
    assert_eq!(backend.list().unwrap(), vec![]);
}

#[test]
#[ignore = "needs root"]
fn overlapping_prefixes_are_refused_and_the_rest_is_reported() {
    let (_ns, mut backend) = setup("overlap");
    backend
        .apply_layout(&layout(
            &[Hook::Input],
            Verdict::Drop,
            vec![rules("sshd", Ports::All, &[])],
        ))
        .unwrap();
    backend.apply(&[add("sshd", "10.0.0.0/8", None)]).unwrap();
    // Same prefix again, and an address inside it (another set): fine.
    backend
        .apply(&[
            add("sshd", "10.0.0.0/8", Some(60)),
            add("sshd", "10.1.2.3", None),
        ])
        .unwrap();
    let err = backend
        .apply(&[
            add("sshd", "192.0.2.1", None),
            add("sshd", "10.1.0.0/16", None),
            add("sshd", "192.0.2.2", None),
        ])
        .unwrap_err();
    assert_eq!(err.committed, 1);
    match &err.error {
        BackendError::Overlap { jail, target: t } => {
            assert_eq!((jail.as_str(), *t), ("sshd", target("10.1.0.0/16")));
        }
        other => panic!("expected an overlap, got {other}"),
    }
    assert!(err.to_string().contains("overlaps"), "{err}");
    let listed: Vec<String> = backend
        .list()
        .unwrap()
        .iter()
        .map(|e| e.target.to_string())
        .collect();
    assert!(listed.contains(&"192.0.2.1".to_string()));
    assert!(!listed.contains(&"192.0.2.2".to_string()));
    assert!(!listed.contains(&"10.1.0.0/16".to_string()));
}

#[test]
#[ignore = "needs root"]
fn removing_a_missing_element_fails_at_its_place() {
    let (_ns, mut backend) = setup("missing");
    backend
        .apply_layout(&layout(
            &[Hook::Input],
            Verdict::Drop,
            vec![rules("sshd", Ports::All, &[])],
        ))
        .unwrap();
    backend
        .apply(&[
            add("sshd", "192.0.2.1", None),
            add("sshd", "192.0.2.3", None),
        ])
        .unwrap();
    // Three removes share one message: the probe finds which one failed.
    let err = backend
        .apply(&[
            remove("sshd", "192.0.2.1"),
            remove("sshd", "192.0.2.2"),
            remove("sshd", "192.0.2.3"),
        ])
        .unwrap_err();
    assert_eq!(err.committed, 1);
    assert!(
        matches!(
            &err.error,
            BackendError::ElementRefused { target: t, errno: Errno::ENOENT, .. } if *t == target("192.0.2.2")
        ),
        "{err}"
    );
    let listed: Vec<String> = backend
        .list()
        .unwrap()
        .iter()
        .map(|e| e.target.to_string())
        .collect();
    assert_eq!(listed, vec!["192.0.2.3"]);
}

#[test]
#[ignore = "needs root"]
fn refresh_resets_the_timeout_and_adds_what_vanished() {
    let (ns, mut backend) = setup("refresh");
    backend
        .apply_layout(&layout(
            &[Hook::Input],
            Verdict::Drop,
            vec![rules("sshd", Ports::All, &[])],
        ))
        .unwrap();
    backend
        .apply(&[
            add("sshd", "192.0.2.1", Some(100)),
            add("sshd", "192.0.2.0/28", Some(100)),
        ])
        .unwrap();
    backend
        .apply(&[
            refresh("sshd", "192.0.2.1", Some(3600)),
            refresh("sshd", "192.0.2.9", Some(3600)), // not there: added
            refresh("sshd", "192.0.2.0/28", Some(7200)),
        ])
        .unwrap();
    let json = ns.nft_json(TABLE);
    let v4 = elements(&json, "sshd_v4");
    assert_eq!(element(&v4, &json!("192.0.2.1"))["timeout"], 3600);
    assert!(
        element(&v4, &json!("192.0.2.1"))["expires"]
            .as_u64()
            .unwrap()
            > 3500
    );
    assert_eq!(element(&v4, &json!("192.0.2.9"))["timeout"], 3600);
    let net4 = elements(&json, "sshd_net4");
    assert_eq!(element(&net4, &prefix("192.0.2.0", 28))["timeout"], 7200);
    // A refresh to permanent drops the timeout.
    backend
        .apply(&[refresh("sshd", "192.0.2.1", None)])
        .unwrap();
    let v4 = elements(&ns.nft_json(TABLE), "sshd_v4");
    assert_eq!(element(&v4, &json!("192.0.2.1")).get("timeout"), None);
}

#[test]
#[ignore = "needs root"]
fn ten_thousand_elements_in_one_apply_all_arrive() {
    let (ns, mut backend) = setup("bulk");
    backend
        .apply_layout(&layout(
            &[Hook::Input],
            Verdict::Drop,
            vec![rules("sshd", Ports::All, &[])],
        ))
        .unwrap();
    let changes: Vec<Change> = (0..10_000u32)
        .map(|i| Change::Add {
            jail: jail("sshd"),
            target: BanTarget::addr(std::net::Ipv4Addr::from(0x0a00_0000 + i).into()),
            timeout: Some(Duration::from_secs(3600)),
        })
        .collect();
    backend.apply(&changes).unwrap();
    assert_eq!(elements(&ns.nft_json(TABLE), "sshd_v4").len(), 10_000);
    let listed = backend.list().unwrap();
    assert_eq!(listed.len(), 10_000);
    assert!(
        listed
            .iter()
            .all(|e| e.timeout == Some(Duration::from_secs(3600)))
    );
}

#[test]
#[ignore = "needs root"]
fn errors_are_typed_when_the_table_is_missing() {
    let (ns, mut backend) = setup("notable");
    let err = backend
        .apply(&[add("sshd", "192.0.2.1", None)])
        .unwrap_err();
    assert_eq!(err.committed, 0);
    assert!(
        matches!(err.error, BackendError::NoSuchTable { .. }),
        "{err}"
    );
    assert!(matches!(
        backend.list(),
        Err(BackendError::NoSuchTable { .. })
    ));
    assert!(matches!(
        backend.remove_table(),
        Err(BackendError::NoSuchTable { .. })
    ));

    backend
        .apply_layout(&layout(
            &[Hook::Input],
            Verdict::Drop,
            vec![rules("sshd", Ports::All, &[])],
        ))
        .unwrap();
    // A jail the layout does not have: its set is missing.
    let err = backend
        .apply(&[add("ghost", "192.0.2.1", None)])
        .unwrap_err();
    assert!(
        matches!(&err.error, BackendError::Kernel { errno: Errno::ENOENT, operation } if operation.contains("ghost_v4")),
        "{err}"
    );
    backend.remove_table().unwrap();
    assert_eq!(ns.nft_json(TABLE), Value::Null);
}
