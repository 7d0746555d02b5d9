//! Tests of the drift parser on notifications captured from the kernel (`vectors.txt`).

use super::*;

/// Real notifications, one section per `nft` command (see the file's header).
const VECTORS: &str = include_str!("vectors.txt");

/// The datagrams of the section whose label starts with `label`.
fn datagrams(label: &str) -> Vec<Vec<u8>> {
    let mut sections = VECTORS.split("\n== ").skip(1);
    let section = sections
        .find(|s| s.starts_with(label))
        .unwrap_or_else(|| panic!("no vector {label}"));
    section.lines().skip(1).map(hex).collect()
}

fn hex(line: &str) -> Vec<u8> {
    (0..line.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&line[i..i + 2], 16).unwrap())
        .collect()
}

fn scope(own_portid: u32) -> Scope {
    Scope {
        table: "nftjail".into(),
        own_portid,
    }
}

/// The drift of one section, read by a monitor whose backend has port id 1.
fn drift_of(label: &str) -> Vec<Drift> {
    let mut collector = Collector::default();
    for datagram in datagrams(label) {
        collector.absorb(&datagram, &scope(1));
    }
    assert!(!collector.transaction_open(), "{label}: NEWGEN closes it");
    collector.take()
}

fn set(name: &str) -> String {
    name.to_string()
}

#[test]
fn every_vector_is_ignored_when_the_change_is_our_own() {
    let labels: Vec<&str> = VECTORS
        .split("\n== ")
        .skip(1)
        .map(|s| s.lines().next().unwrap())
        .collect();
    assert_eq!(labels.len(), 9);
    for label in labels {
        let all = datagrams(label);
        let own = messages(&all[0]).next().unwrap().unwrap().pid;
        let mut collector = Collector::default();
        for datagram in &all {
            collector.absorb(datagram, &scope(own));
        }
        assert!(collector.is_empty(), "{label}: {:?}", collector.take());
        assert!(!collector.transaction_open());
    }
}

#[test]
fn a_flushed_set_is_one_drift_with_the_count() {
    let drift = drift_of("flush set");
    assert_eq!(
        drift,
        vec![Drift::ElementsDeleted {
            set: set("sshd_v4"),
            count: 2
        }]
    );
    assert!(drift[0].needs_repair());
    assert_eq!(drift[0].to_string(), "2 elements deleted from set sshd_v4");
}

#[test]
fn a_deleted_table_stands_for_its_rules_sets_and_chains() {
    assert_eq!(
        drift_of("delete table inet nftjail"),
        vec![Drift::TableDeleted]
    );
}

#[test]
fn a_deleted_rule_names_its_chain_and_handle() {
    let drift = drift_of("delete rule");
    assert_eq!(
        drift,
        vec![Drift::RuleDeleted {
            chain: "input".into(),
            handle: 3
        }]
    );
    assert!(drift[0].needs_repair());
}

#[test]
fn foreign_additions_are_reported() {
    let drift = drift_of("add element");
    assert_eq!(
        drift,
        vec![Drift::ElementsAdded {
            set: set("sshd_v4"),
            count: 1
        }]
    );
    assert!(!drift[0].needs_repair(), "reconcile adopts or ignores it");

    // The rule's anonymous port set and its elements are the rule's business.
    let drift = drift_of("add rule");
    assert_eq!(
        drift,
        vec![Drift::RuleAdded {
            chain: "input".into(),
            handle: 5
        }]
    );
    assert!(
        drift[0].needs_repair(),
        "an accept before our rules skips them"
    );
    // Regression: a firewall chain's policy changed by hand (notified as the chain "added")
    // was left as it was: `policy accept` opened every port until the next periodic check.
    let policy = Drift::ChainAdded {
        chain: "firewall_input".into(),
    };
    assert!(policy.needs_repair());
    assert!(
        !Drift::ChainAdded {
            chain: "someone_elses".into()
        }
        .needs_repair()
    );

    assert_eq!(
        drift_of("-f: table inet nftjail"),
        vec![
            Drift::TableChanged { dormant: false },
            Drift::ChainAdded {
                chain: "input".into()
            },
            Drift::SetAdded {
                set: set("sshd_v4")
            },
            Drift::ElementsAdded {
                set: set("sshd_v4"),
                count: 2
            },
            Drift::RuleAdded {
                chain: "input".into(),
                handle: 3
            },
        ]
    );
}

#[test]
fn a_dormant_table_needs_repair() {
    let drift = drift_of("add table inet nftjail { flags dormant; }");
    assert_eq!(drift, vec![Drift::TableChanged { dormant: true }]);
    assert!(drift[0].needs_repair());
}

#[test]
fn other_tables_are_not_ours() {
    assert_eq!(drift_of("-f: table inet other"), vec![]);
    assert_eq!(drift_of("delete table inet other"), vec![]);
}

#[test]
fn the_kernels_own_element_removals_are_not_drift() {
    // The flush as the kernel would send it for expired elements: nlmsg_pid 0.
    let mut datagram = datagrams("flush set")[0].clone();
    let mut at = 0;
    while at < datagram.len() {
        let len = u32::from_ne_bytes(datagram[at..at + 4].try_into().unwrap()) as usize;
        datagram[at + 12..at + 16].copy_from_slice(&0u32.to_ne_bytes());
        at += len;
    }
    let mut collector = Collector::default();
    collector.absorb(&datagram, &scope(1));
    assert!(collector.is_empty());
    assert!(!collector.transaction_open());
}

#[test]
fn a_transaction_is_open_until_its_generation() {
    let all = datagrams("flush set");
    let mut collector = Collector::default();
    collector.absorb(&all[0], &scope(1));
    assert!(collector.transaction_open());
    collector.absorb(&all[1], &scope(1));
    assert!(!collector.transaction_open());
    assert_eq!(collector.take().len(), 1);
}

#[test]
fn an_unreadable_notification_is_an_overrun_not_a_silence() {
    let mut datagram = datagrams("delete rule")[0].clone();
    datagram.truncate(100); // nlmsg_len says 288
    let mut collector = Collector::default();
    collector.absorb(&datagram, &scope(1));
    assert_eq!(collector.take(), vec![Drift::Overrun]);
    // A DELRULE whose chain attribute is cut off.
    let mut short = datagrams("delete rule")[0][..36].to_vec();
    short[0..4].copy_from_slice(&36u32.to_ne_bytes());
    collector.absorb(&short, &scope(1));
    assert_eq!(collector.take(), vec![Drift::Overrun]);
    // A DELRULE without its handle.
    let mut no_handle = datagrams("delete rule")[0][..44].to_vec();
    no_handle[0..4].copy_from_slice(&44u32.to_ne_bytes());
    collector.absorb(&no_handle, &scope(1));
    collector.overrun();
    assert_eq!(collector.take(), vec![Drift::Overrun]);
    assert_eq!(Drift::Overrun.to_string(), "notifications lost");
}

#[test]
fn deletions_absorb_what_they_held() {
    let mut collector = Collector::default();
    let rule = |chain: &str, handle| Drift::RuleDeleted {
        chain: chain.into(),
        handle,
    };
    let elements = |s: &str, count| Drift::ElementsDeleted { set: set(s), count };
    collector.push(rule("input", 4));
    collector.push(rule("forward", 4));
    collector.push(elements("sshd_v4", 3));
    collector.push(elements("sshd_v6", 1));
    collector.push(elements("sshd_v4", 2));
    collector.push(Drift::ChainDeleted {
        chain: "input".into(),
    });
    collector.push(Drift::SetDeleted {
        set: set("sshd_v6"),
    });
    collector.push(Drift::SetDeleted {
        set: set("sshd_v6"),
    });
    assert_eq!(
        collector.take(),
        vec![
            rule("forward", 4),
            elements("sshd_v4", 5),
            Drift::ChainDeleted {
                chain: "input".into()
            },
            Drift::SetDeleted {
                set: set("sshd_v6")
            },
        ]
    );
    collector.push(Drift::Overrun);
    collector.push(elements("sshd_v4", 1));
    collector.push(Drift::TableDeleted);
    collector.push(Drift::Overrun);
    assert_eq!(collector.take(), vec![Drift::Overrun, Drift::TableDeleted]);
}
