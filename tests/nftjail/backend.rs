//! The netlink backend against the real kernel, each test in its own network namespace,
//! checked from outside with `nft -j list table inet …` and with real TCP connections.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use nftjail::addr::BanTarget;
use nftjail::banner::backend::*;
use nftjail::jail::JailName;
use nix::errno::Errno;
use serde_json::{Value, json};

use crate::netns::Netns;

const TABLE: &str = "nftjail";

fn jail(name: &str) -> JailName {
    name.parse().unwrap()
}

fn target(text: &str) -> BanTarget {
    text.parse().unwrap()
}

fn rules(name: &str, ports: Ports, protocols: &[Protocol]) -> JailRules {
    JailRules {
        name: jail(name),
        ports,
        protocols: protocols.to_vec(),
    }
}

fn ports(list: &[(u16, u16)]) -> Ports {
    Ports::List(
        list.iter()
            .map(|&(first, last)| PortRange { first, last })
            .collect(),
    )
}

fn layout(hooks: &[Hook], verdict: Verdict, jails: Vec<JailRules>) -> Layout {
    Layout {
        table: TABLE.into(),
        hooks: hooks.to_vec(),
        verdict,
        jails,
    }
}

/// sshd (tcp 22, 2222), postfix-sasl (tcp+udp 25 and 49152-65534), dovecot (tcp 993),
/// recidive (all ports); both hooks; drop.
fn four_jails() -> Layout {
    layout(
        &[Hook::Input, Hook::Forward],
        Verdict::Drop,
        vec![
            rules("sshd", ports(&[(22, 22), (2222, 2222)]), &[Protocol::Tcp]),
            rules(
                "postfix-sasl",
                ports(&[(25, 25), (49152, 65534)]),
                &[Protocol::Tcp, Protocol::Udp],
            ),
            rules("dovecot", ports(&[(993, 993)]), &[Protocol::Tcp]),
            rules("recidive", Ports::All, &[Protocol::Tcp]),
        ],
    )
}

fn add(j: &str, t: &str, secs: Option<u64>) -> Change {
    Change::Add {
        jail: jail(j),
        target: target(t),
        timeout: secs.map(Duration::from_secs),
    }
}

fn refresh(j: &str, t: &str, secs: Option<u64>) -> Change {
    Change::Refresh {
        jail: jail(j),
        target: target(t),
        timeout: secs.map(Duration::from_secs),
    }
}

fn remove(j: &str, t: &str) -> Change {
    Change::Remove {
        jail: jail(j),
        target: target(t),
    }
}

/// A namespace and a backend whose socket lives in it; `None` when namespaces are unavailable.
fn setup(tag: &str) -> Option<(Netns, NetlinkBackend)> {
    let ns = Netns::new(tag)?;
    let backend = ns.enter(|| NetlinkBackend::open(TABLE)).unwrap();
    Some((ns, backend))
}

/// The objects of kind `kind` ("set", "chain", "rule") of an `nft -j` listing.
fn objects<'a>(json: &'a Value, kind: &str) -> Vec<&'a Value> {
    json["nftables"]
        .as_array()
        .expect("an nftables array")
        .iter()
        .filter_map(|o| o.get(kind))
        .collect()
}

fn set<'a>(json: &'a Value, name: &str) -> &'a Value {
    objects(json, "set")
        .into_iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no set {name}"))
}

/// The `elem` entries of a set, each as `{"val": …, "timeout"?: …, "expires"?: …}`.
fn elements(json: &Value, name: &str) -> Vec<Value> {
    let Some(elems) = set(json, name)["elem"].as_array() else {
        return Vec::new();
    };
    elems
        .iter()
        .map(|e| match e.get("elem") {
            Some(inner) => inner.clone(),
            None => json!({ "val": e }),
        })
        .collect()
}

fn element<'a>(elems: &'a [Value], val: &Value) -> &'a Value {
    elems
        .iter()
        .find(|e| &e["val"] == val)
        .unwrap_or_else(|| panic!("no element {val} in {elems:?}"))
}

fn prefix(addr: &str, len: u8) -> Value {
    json!({ "prefix": { "addr": addr, "len": len } })
}

/// The `expr` arrays of the rules of `chain` commented `nftjail:JAIL`.
fn rule_exprs(json: &Value, chain: &str, jail: &str) -> Vec<Value> {
    objects(json, "rule")
        .into_iter()
        .filter(|r| r["chain"] == chain && r["comment"] == format!("nftjail:{jail}"))
        .map(|r| r["expr"].clone())
        .collect()
}

fn saddr(family: &str, set: &str) -> Value {
    json!({"match": {"left": {"payload": {"field": "saddr", "protocol": family}}, "op": "==", "right": format!("@{set}")}})
}

fn dport(protocol: &str, right: Value) -> Value {
    json!({"match": {"left": {"payload": {"field": "dport", "protocol": protocol}}, "op": "==", "right": right}})
}

fn counter() -> Value {
    json!({"counter": {"bytes": 0, "packets": 0}})
}

/// The listing without handles (they change when rules are rebuilt).
fn without_handles(mut json: Value) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(map) => {
                map.remove("handle");
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut json);
    json
}

#[test]
fn layout_is_exactly_as_specified_and_idempotent() {
    let Some((ns, mut backend)) = setup("layout") else {
        return;
    };
    backend.apply_layout(&four_jails()).unwrap();
    let json = ns.nft_json(TABLE);
    assert_ne!(json, Value::Null, "table missing in {}", ns.name());

    let chains: Vec<_> = objects(&json, "chain")
        .into_iter()
        .map(|c| json!([c["name"], c["type"], c["hook"], c["prio"], c["policy"]]))
        .collect();
    assert_eq!(
        chains,
        vec![
            json!(["input", "filter", "input", -10, "accept"]),
            json!(["forward", "filter", "forward", -10, "accept"]),
        ]
    );

    for jail in ["sshd", "postfix-sasl", "dovecot", "recidive"] {
        for (suffix, kind, flags) in [
            ("v4", "ipv4_addr", json!(["timeout"])),
            ("v6", "ipv6_addr", json!(["timeout"])),
            ("net4", "ipv4_addr", json!(["interval", "timeout"])),
            ("net6", "ipv6_addr", json!(["interval", "timeout"])),
        ] {
            let s = set(&json, &format!("{jail}_{suffix}"));
            assert_eq!(
                (&s["type"], &s["flags"]),
                (&json!(kind), &flags),
                "{jail}_{suffix}"
            );
        }
    }
    assert_eq!(objects(&json, "set").len(), 16);

    // Per hook: 4 sets x protocols (sshd 1, postfix-sasl 2, dovecot 1, recidive all ports 1).
    for chain in ["input", "forward"] {
        let count = |j| rule_exprs(&json, chain, j).len();
        assert_eq!(
            (
                count("sshd"),
                count("postfix-sasl"),
                count("dovecot"),
                count("recidive")
            ),
            (4, 8, 4, 4),
            "{chain}"
        );
    }
    let drop = json!({"drop": null});
    let sshd = rule_exprs(&json, "input", "sshd");
    assert_eq!(
        sshd[0],
        json!([
            saddr("ip", "sshd_v4"),
            dport("tcp", json!({"set": [22, 2222]})),
            counter(),
            drop
        ])
    );
    assert_eq!(sshd[3][0], saddr("ip6", "sshd_net6"));
    let dovecot = rule_exprs(&json, "input", "dovecot");
    assert_eq!(
        dovecot[1][1],
        dport("tcp", json!(993)),
        "a single port is a plain compare"
    );
    let recidive = rule_exprs(&json, "input", "recidive");
    assert_eq!(
        recidive[1],
        json!([saddr("ip6", "recidive_v6"), counter(), drop])
    );
    // Forward: the port as the client sent it (before DNAT), a range as an interval.
    let postfix = rule_exprs(&json, "forward", "postfix-sasl");
    assert_eq!(
        postfix[1],
        json!([
            saddr("ip", "postfix-sasl_v4"),
            {"match": {"left": {"meta": {"key": "l4proto"}}, "op": "==", "right": "udp"}},
            {"match": {"left": {"ct": {"dir": "original", "key": "proto-dst"}}, "op": "==",
                       "right": {"set": [25, {"range": [49152, 65534]}]}}},
            counter(),
            drop
        ])
    );

    // Again, from a fresh socket (a restart): the same table.
    let mut again = ns.enter(|| NetlinkBackend::open(TABLE)).unwrap();
    again.apply_layout(&four_jails()).unwrap();
    assert_eq!(without_handles(ns.nft_json(TABLE)), without_handles(json));
}

#[test]
fn reject_verdict_is_tcp_reset_for_tcp_and_icmpx_otherwise() {
    let Some((ns, mut backend)) = setup("reject") else {
        return;
    };
    let layout = layout(
        &[Hook::Input],
        Verdict::Reject,
        vec![
            rules(
                "postfix",
                ports(&[(25, 25)]),
                &[Protocol::Tcp, Protocol::Udp],
            ),
            rules("recidive", Ports::All, &[]),
        ],
    );
    backend.apply_layout(&layout).unwrap();
    let json = ns.nft_json(TABLE);
    let postfix = rule_exprs(&json, "input", "postfix");
    let last = |e: &Value| e.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last(&postfix[0]), json!({"reject": {"type": "tcp reset"}}));
    let icmpx = json!({"reject": {"expr": "admin-prohibited", "type": "icmpx"}});
    assert_eq!(last(&postfix[1]), icmpx);
    assert_eq!(last(&rule_exprs(&json, "input", "recidive")[0]), icmpx);
}

#[test]
fn elements_carry_their_timeout_and_expire() {
    let Some((ns, mut backend)) = setup("timeout") else {
        return;
    };
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
fn prefixes_round_trip_including_the_top_of_the_space() {
    let Some((ns, mut backend)) = setup("prefix") else {
        return;
    };
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
fn overlapping_prefixes_are_refused_and_the_rest_is_reported() {
    let Some((_ns, mut backend)) = setup("overlap") else {
        return;
    };
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
fn removing_a_missing_element_fails_at_its_place() {
    let Some((_ns, mut backend)) = setup("missing") else {
        return;
    };
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
fn refresh_resets_the_timeout_and_adds_what_vanished() {
    let Some((ns, mut backend)) = setup("refresh") else {
        return;
    };
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
fn reconcile_keeps_existing_bans_and_adds_missing_ones() {
    let Some((ns, mut backend)) = setup("reconcile") else {
        return;
    };
    let layout = layout(
        &[Hook::Input],
        Verdict::Drop,
        vec![rules("sshd", Ports::All, &[])],
    );
    let desired = |t: &str, secs: u64| Element {
        jail: jail("sshd"),
        target: target(t),
        timeout: Some(Duration::from_secs(3600)),
        expires: Some(Duration::from_secs(secs)),
    };
    let report = reconcile(&mut backend, &layout, &[desired("192.0.2.1", 3600)]).unwrap();
    assert_eq!(report.added, 1);
    std::thread::sleep(Duration::from_millis(1500));

    // A restart: a new socket, the state says 3598 s are left and knows one more ban.
    let mut restarted = ns.enter(|| NetlinkBackend::open(TABLE)).unwrap();
    let report = reconcile(
        &mut restarted,
        &layout,
        &[desired("192.0.2.1", 3598), desired("2001:db8::7", 1800)],
    )
    .unwrap();
    assert_eq!((report.added, report.refreshed, report.kept), (1, 0, 1));
    assert!(report.unknown.is_empty());
    let listed = restarted.list().unwrap();
    let kept = listed
        .iter()
        .find(|e| e.target == target("192.0.2.1"))
        .unwrap();
    // Not recreated: its clock kept running (it would say ~3600 s if it had been re-added).
    assert!(
        kept.expires.unwrap() < Duration::from_millis(3_598_600),
        "{kept:?}"
    );
    assert_eq!(kept.timeout, Some(Duration::from_secs(3600)));
    let added = listed
        .iter()
        .find(|e| e.target == target("2001:db8::7"))
        .unwrap();
    assert!(added.expires.unwrap() <= Duration::from_secs(1800));

    // An element the state does not know is reported, not deleted.
    restarted.apply(&[add("sshd", "192.0.2.50", None)]).unwrap();
    let report = reconcile(
        &mut restarted,
        &layout,
        &[desired("192.0.2.1", 3597), desired("2001:db8::7", 1799)],
    )
    .unwrap();
    assert_eq!((report.added, report.refreshed, report.kept), (0, 0, 2));
    assert_eq!(report.unknown.len(), 1);
    assert_eq!(restarted.list().unwrap().len(), 3);
}

#[test]
fn a_removed_jail_disappears_and_the_others_keep_their_bans() {
    let Some((ns, mut backend)) = setup("removejail") else {
        return;
    };
    backend.apply_layout(&four_jails()).unwrap();
    backend
        .apply(&[
            add("sshd", "192.0.2.1", Some(3600)),
            add("postfix-sasl", "192.0.2.2", Some(3600)),
            add("postfix-sasl", "2001:db8::/64", None),
        ])
        .unwrap();
    let mut smaller = four_jails();
    smaller.jails.retain(|j| j.name.as_str() != "sshd");
    smaller.hooks = vec![Hook::Input];
    backend.apply_layout(&smaller).unwrap();

    let json = ns.nft_json(TABLE);
    let names: Vec<String> = objects(&json, "set")
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with("sshd_")), "{names:?}");
    assert_eq!(names.len(), 12);
    assert!(rule_exprs(&json, "input", "sshd").is_empty());
    let chains: Vec<_> = objects(&json, "chain")
        .iter()
        .map(|c| c["name"].clone())
        .collect();
    assert_eq!(chains, vec![json!("input")]);
    assert_eq!(rule_exprs(&json, "input", "postfix-sasl").len(), 8);
    let v4 = elements(&json, "postfix-sasl_v4");
    assert_eq!(element(&v4, &json!("192.0.2.2"))["timeout"], 3600);
    assert_eq!(elements(&json, "postfix-sasl_net6").len(), 1);
    assert_eq!(backend.list().unwrap().len(), 2);
}

#[test]
fn ten_thousand_elements_in_one_apply_all_arrive() {
    let Some((ns, mut backend)) = setup("bulk") else {
        return;
    };
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
fn errors_are_typed_when_the_table_is_missing() {
    let Some((ns, mut backend)) = setup("notable") else {
        return;
    };
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

/// Whether a TCP connection to `addr` is accepted within half a second.
fn connects(ns: &Netns, addr: &str) -> bool {
    let addr: SocketAddr = addr.parse().unwrap();
    ns.enter(|| TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok())
}

fn listen(ns: &Netns, addr: &str) -> TcpListener {
    ns.enter(|| TcpListener::bind(addr)).unwrap()
}

#[test]
fn a_banned_source_is_dropped_on_jail_ports_while_other_ports_answer() {
    let (Some(server), Some(client)) = (Netns::new("server"), Netns::new("client")) else {
        return;
    };
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
        assert!(connects(&client, addr), "{addr} before the ban");
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
        connects(&client, "192.0.2.1:8080"),
        "v4 other port after the ban"
    );
    assert!(
        connects(&client, "[2001:db8::1]:8080"),
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
    assert!(connects(&client, "192.0.2.1:2222"), "v4 after the unban");
    assert!(
        connects(&client, "[2001:db8::1]:2222"),
        "v6 after the unban"
    );
}

#[test]
fn forward_chain_matches_the_published_port_before_dnat() {
    let (Some(client), Some(router), Some(container)) = (
        Netns::new("fwclient"),
        Netns::new("fwrouter"),
        Netns::new("fwcontainer"),
    ) else {
        return;
    };
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
        connects(&client, "192.0.2.1:2525"),
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
        connects(&client, "192.0.2.1:2525"),
        "jail on the container port"
    );
    backend.apply_layout(&jail_on(2525)).unwrap();
    assert!(
        !connects(&client, "192.0.2.1:2525"),
        "jail on the published port"
    );
}
