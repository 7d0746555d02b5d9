//! The netlink backend against the real kernel, each test in its own network namespace,
//! checked from outside with `nft -j list table inet …` and with real TCP connections.
//!
//! `layout`: chains, sets, rules, verdicts, removed jails. `drift`: foreign changes seen by the
//! monitor and repaired by reconcile, host address changes. `elements`: timeouts, expiry,
//! prefixes, overlaps, refresh, errors, bulk. `firewall`: the firewall's chains read back,
//! changed in place, repaired. `reconcile`: restarts. `packets`: real TCP
//! connections through a veth pair, and through a DNAT like Docker's.

mod drift;
mod elements;
mod firewall;
mod layout;
mod packets;
mod permission;
mod reconcile;

use std::time::Duration;

use nftjail_backend::*;
use nftjail_core::addr::BanTarget;
use nftjail_core::jail::JailName;
use serde_json::{Value, json};

use crate::netns::Netns;

pub const TABLE: &str = "nftjail";

pub fn jail(name: &str) -> JailName {
    name.parse().unwrap()
}

pub fn target(text: &str) -> BanTarget {
    text.parse().unwrap()
}

pub fn rules(name: &str, ports: Ports, protocols: &[Protocol]) -> JailRules {
    JailRules {
        name: jail(name),
        ports,
        protocols: protocols.to_vec(),
    }
}

pub fn ports(list: &[(u16, u16)]) -> Ports {
    Ports::List(
        list.iter()
            .map(|&(first, last)| PortRange { first, last })
            .collect(),
    )
}

pub fn layout(hooks: &[Hook], verdict: Verdict, jails: Vec<JailRules>) -> Layout {
    Layout {
        table: TABLE.into(),
        hooks: hooks.to_vec(),
        verdict,
        jails,
    }
}

/// sshd (tcp 22, 2222), postfix-sasl (tcp+udp 25 and 49152-65534), dovecot (tcp 993),
/// recidive (all ports); both hooks; drop.
pub fn four_jails() -> Layout {
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

pub fn add(j: &str, t: &str, secs: Option<u64>) -> Change {
    Change::Add {
        jail: jail(j),
        target: target(t),
        timeout: secs.map(Duration::from_secs),
    }
}

pub fn refresh(j: &str, t: &str, secs: Option<u64>) -> Change {
    Change::Refresh {
        jail: jail(j),
        target: target(t),
        timeout: secs.map(Duration::from_secs),
    }
}

pub fn remove(j: &str, t: &str) -> Change {
    Change::Remove {
        jail: jail(j),
        target: target(t),
    }
}

/// A namespace and a backend whose socket lives in it (panics when namespaces are unavailable).
pub fn setup(tag: &str) -> (Netns, NetlinkBackend) {
    let ns = Netns::new(tag);
    let backend = ns.enter(|| NetlinkBackend::open(TABLE)).unwrap();
    (ns, backend)
}

/// The objects of kind `kind` ("set", "chain", "rule") of an `nft -j` listing.
pub fn objects<'a>(json: &'a Value, kind: &str) -> Vec<&'a Value> {
    json["nftables"]
        .as_array()
        .expect("an nftables array")
        .iter()
        .filter_map(|o| o.get(kind))
        .collect()
}

pub fn set<'a>(json: &'a Value, name: &str) -> &'a Value {
    objects(json, "set")
        .into_iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no set {name}"))
}

/// The `elem` entries of a set, each as `{"val": …, "timeout"?: …, "expires"?: …}`.
pub fn elements(json: &Value, name: &str) -> Vec<Value> {
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

pub fn element<'a>(elems: &'a [Value], val: &Value) -> &'a Value {
    elems
        .iter()
        .find(|e| &e["val"] == val)
        .unwrap_or_else(|| panic!("no element {val} in {elems:?}"))
}

pub fn prefix(addr: &str, len: u8) -> Value {
    json!({ "prefix": { "addr": addr, "len": len } })
}

/// The `expr` arrays of the rules of `chain` commented `nftjail:JAIL`.
pub fn rule_exprs(json: &Value, chain: &str, jail: &str) -> Vec<Value> {
    objects(json, "rule")
        .into_iter()
        .filter(|r| r["chain"] == chain && r["comment"] == format!("nftjail:{jail}"))
        .map(|r| r["expr"].clone())
        .collect()
}

pub fn saddr(family: &str, set: &str) -> Value {
    json!({"match": {"left": {"payload": {"field": "saddr", "protocol": family}}, "op": "==", "right": format!("@{set}")}})
}

pub fn dport(protocol: &str, right: Value) -> Value {
    json!({"match": {"left": {"payload": {"field": "dport", "protocol": protocol}}, "op": "==", "right": right}})
}

pub fn counter() -> Value {
    json!({"counter": {"bytes": 0, "packets": 0}})
}

/// The listing without handles (they change when rules are rebuilt).
pub fn without_handles(mut json: Value) -> Value {
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
