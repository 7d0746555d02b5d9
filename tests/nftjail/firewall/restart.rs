//! The firewall across restarts, reboots, reloads and hands that edit the table: the rules come
//! back exactly, and nothing that is in place is flushed and re-added.

use super::*;

/// The firewall chains as `nft -j` lists them, with handles (they show whether a rule was
/// re-added) but without counters (they move with traffic).
fn firewall_chains(d: &Daemon) -> Vec<serde_json::Value> {
    let json = d.ns.nft_json("nftjail");
    json["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| {
            let chain = o
                .get("rule")
                .or_else(|| o.get("chain"))
                .map(|r| &r["chain"]);
            let name = o.get("chain").map(|c| &c["name"]);
            name.or(chain)
                .and_then(|n| n.as_str())
                .is_some_and(|n| n.starts_with("firewall_"))
        })
        .map(|o| {
            let mut o = o.clone();
            if let Some(exprs) = o.pointer_mut("/rule/expr").and_then(|e| e.as_array_mut()) {
                exprs.retain(|e| e.get("counter").is_none());
            }
            o
        })
        .collect()
}

/// The chains and rules without handles, chain by chain (a chain put back is listed last).
fn without_handles(items: &[serde_json::Value]) -> Vec<serde_json::Value> {
    let mut items = items.to_vec();
    let chain = |o: &serde_json::Value| {
        o.pointer("/chain/name")
            .or_else(|| o.pointer("/rule/chain"))
            .and_then(|n| n.as_str())
            .unwrap_or("")
            .to_string()
    };
    items.sort_by_key(chain);
    items
        .iter()
        .map(|o| {
            let mut o = o.clone();
            for kind in ["rule", "chain"] {
                if let Some(map) = o.get_mut(kind).and_then(|v| v.as_object_mut()) {
                    map.remove("handle");
                }
            }
            o
        })
        .collect()
}

const MAIL: &str = "[[rule]]\nprotocol = \"tcp\"\nport = [\"smtp\", \"submission\"]\naction = \"accept\"\ncomment = \"SMTP\"\n\n[[forward]]\nprotocol = \"tcp\"\nport = \"imaps\"\nto = \"10.0.0.2:993\"\ncomment = \"IMAPS to the mail backend\"\n";

#[test]
#[ignore = "needs root"]
fn after_kill_9_and_after_the_table_is_deleted_the_rules_come_back_exactly() {
    let mut d = start(
        "fw-restart",
        "enabled = true\n",
        &[("10-ssh.toml", PROTECTED_SSH), ("20-mail.toml", MAIL)],
    );
    d.ok(&[
        "rule",
        "add",
        "--protocol",
        "udp",
        "--port",
        "1194",
        "--source",
        "2001:db8::/48",
        "--action",
        "accept",
        "--comment",
        "VPN",
    ]);
    d.ok(&[
        "rule",
        "add",
        "--chain",
        "output",
        "--protocol",
        "tcp",
        "--port",
        "25",
        "--action",
        "reject",
    ]);
    d.ok(&[
        "forward",
        "add",
        "--protocol",
        "udp",
        "--port",
        "5353",
        "--to",
        "[fd00::53]:53",
    ]);
    let rules_before = rules(&d);
    let forwards_before = d.ok(&["forward", "list", "--json"]);
    let kernel_before = firewall_chains(&d);
    assert_eq!(
        kernel_before
            .iter()
            .filter(|o| o.get("chain").is_some())
            .count(),
        5
    );

    // kill -9 with the table in place: nothing flushed and re-added (the handles stay).
    d.kill9();
    d.spawn();
    assert_eq!(rules(&d), rules_before, "same ids, order and origins");
    assert_eq!(d.ok(&["forward", "list", "--json"]), forwards_before);
    assert_eq!(firewall_chains(&d), kernel_before, "not a rule re-added");
    assert!(d.log().contains("firewall reconciled"));

    // A reboot: the table is gone; everything comes back as it was.
    d.kill9();
    d.ns.run("nft", &["delete", "table", "inet", "nftjail"]);
    d.spawn();
    assert_eq!(rules(&d), rules_before);
    assert_eq!(
        without_handles(&firewall_chains(&d)),
        without_handles(&kernel_before)
    );

    // Hands on the table: a rule deleted and a chain deleted are put back within a second.
    let kernel = firewall_chains(&d);
    let ssh = kernel
        .iter()
        .find(|o| {
            o.pointer("/rule/comment").and_then(|c| c.as_str()) == Some("rule 1: SSH [protected]")
        })
        .unwrap();
    let handle = ssh["rule"]["handle"].to_string();
    d.ns.run(
        "nft",
        &[
            "delete",
            "rule",
            "inet",
            "nftjail",
            "firewall_input",
            "handle",
            &handle,
        ],
    );
    d.ns.run(
        "nft",
        &["delete", "chain", "inet", "nftjail", "firewall_prerouting"],
    );
    d.ns.run(
        "nft",
        &[
            "insert",
            "rule",
            "inet",
            "nftjail",
            "firewall_input",
            "tcp",
            "dport",
            "23",
            "accept",
        ],
    );
    d.wait_until("the firewall repaired", || {
        without_handles(&firewall_chains(&d)) == without_handles(&kernel)
    });
    // A policy turned to accept by hand (every port open) is turned back.
    d.ns.run(
        "nft",
        &["add chain inet nftjail firewall_input { type filter hook input priority filter; policy accept; }"],
    );
    d.wait_until("the policy repaired", || {
        d.ns.nft_text("nftjail")
            .contains("hook input priority filter; policy drop;")
    });
}

#[test]
#[ignore = "needs root"]
fn a_reload_changes_only_the_rules_that_changed_and_refuses_a_lockout() {
    let d = start(
        "fw-reload",
        "enabled = true\n",
        &[("10-ssh.toml", PROTECTED_SSH), ("20-mail.toml", MAIL)],
    );
    d.ok(&[
        "rule",
        "add",
        "--protocol",
        "tcp",
        "--port",
        "8443",
        "--action",
        "accept",
        "--comment",
        "panel",
    ]);
    let before = rules(&d);
    let kernel_before = firewall_chains(&d);

    // SMTP loses a port; IMAP comes.
    let edited = MAIL.replace("[\"smtp\", \"submission\"]", "\"smtp\"")
        + "\n[[rule]]\nprotocol = \"tcp\"\nport = \"imaps\"\naction = \"accept\"\ncomment = \"IMAPS\"\n";
    std::fs::write(d.path("firewall.d/20-mail.toml"), edited).unwrap();
    d.ok(&["reload"]);
    let after = rules(&d);
    let shape = |rules: &[serde_json::Value]| -> Vec<(u64, String, String)> {
        rules
            .iter()
            .map(|r| {
                (
                    r["id"].as_u64().unwrap(),
                    r["port"].as_str().unwrap().into(),
                    r["origin"].as_str().unwrap().into(),
                )
            })
            .collect()
    };
    let panel = before[2]["id"].as_u64().unwrap();
    assert_eq!(
        shape(&after),
        [
            (1, "22".into(), "firewall.d/10-ssh.toml:1".into()),
            (panel + 1, "25".into(), "firewall.d/20-mail.toml:1".into()),
            (panel + 2, "993".into(), "firewall.d/20-mail.toml:13".into()),
            (panel, "8443".into(), "api".into()),
        ]
    );
    // The kernel: the SSH and panel rules kept their handles (not flushed, not re-added).
    let kernel_after = firewall_chains(&d);
    for comment in ["rule 1: SSH [protected]", &format!("rule {panel}: panel")] {
        let find = |k: &[serde_json::Value]| {
            k.iter()
                .find(|o| o.pointer("/rule/comment").and_then(|c| c.as_str()) == Some(comment))
                .map(|o| o["rule"]["handle"].clone())
        };
        assert_eq!(find(&kernel_after), find(&kernel_before), "{comment}");
    }

    // A configuration that would lock the admin out is refused; the running one stays.
    std::fs::remove_file(d.path("firewall.d/10-ssh.toml")).unwrap();
    let out = d.cli(&["reload"]);
    assert_eq!(out.status.code(), Some(1));
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(error.contains("would lock out admin port 22"), "{error}");
    assert_eq!(rules(&d), after);
}
