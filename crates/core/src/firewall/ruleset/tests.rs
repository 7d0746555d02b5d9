use super::*;
use crate::firewall::text::{parse_ports, parse_to};
use crate::firewall::{Action, Chain};
use crate::ports::Protocol;

fn rule(port: &str, action: Action, comment: &str, protected: bool) -> Rule {
    Rule::new(
        Chain::Input,
        Protocol::Tcp,
        &parse_ports(port).unwrap(),
        None,
        action,
        comment,
        protected,
    )
    .unwrap()
}

fn in_file(file: &str, line: usize, item: Rule) -> FileEntry<Rule> {
    FileEntry {
        file: file.to_string(),
        line,
        item,
    }
}

fn forward(port: u16, to: &str) -> Forward {
    Forward::new(Protocol::Tcp, port, parse_to(to).unwrap(), None, "").unwrap()
}

/// `(id, origin, comment)` of every rule, in order.
fn shape(ruleset: &Ruleset) -> Vec<(u64, String, String)> {
    ruleset
        .rules()
        .iter()
        .map(|e| (e.id, e.origin.to_string(), e.item.comment.clone()))
        .collect()
}

/// Replays `records` the way a restart does.
fn replay(records: &[FirewallRecord]) -> Ruleset {
    let mut state = FirewallState::default();
    for r in records {
        state.apply(r.clone());
    }
    Ruleset::restore(state)
}

#[test]
fn file_rules_keep_their_ids_while_unchanged_and_api_rules_stay_after_them() {
    let ssh = rule("22", Action::Accept, "SSH", true);
    let web = rule("80,443", Action::Accept, "web", false);
    let first = Ruleset::default().with_files(
        &[
            in_file("firewall.d/10-hosting.toml", 1, ssh.clone()),
            in_file("firewall.d/10-hosting.toml", 9, web.clone()),
        ],
        &[],
    );
    assert_eq!(first.records.len(), 2);
    let api = first
        .ruleset
        .add_rule(rule("8080", Action::Accept, "panel", false))
        .unwrap();
    assert_eq!(api.id, Some(3));
    // The web rule moves up a line and a new rule comes before SSH; SSH is edited.
    let ssh2 = rule("22", Action::Accept, "SSH (edited)", true);
    let mail = rule("25", Action::Accept, "SMTP", false);
    let reloaded = api.ruleset.with_files(
        &[
            in_file("firewall.d/05-mail.toml", 1, mail),
            in_file("firewall.d/10-hosting.toml", 1, ssh2),
            in_file("firewall.d/10-hosting.toml", 8, web),
        ],
        &[],
    );
    assert_eq!(
        shape(&reloaded.ruleset),
        [
            (
                4,
                "firewall.d/05-mail.toml:1".to_string(),
                "SMTP".to_string()
            ),
            (
                5,
                "firewall.d/10-hosting.toml:1".into(),
                "SSH (edited)".into()
            ),
            (2, "firewall.d/10-hosting.toml:8".into(), "web".into()),
            (3, "api".into(), "panel".into()),
        ]
    );
    assert!(
        reloaded
            .records
            .contains(&FirewallRecord::Deleted { id: 1 })
    );
    // An unchanged reload changes nothing and writes nothing.
    let again = reloaded.ruleset.with_files(
        &reloaded
            .ruleset
            .rules()
            .iter()
            .filter_map(|e| match &e.origin {
                Origin::File { file, line } => Some(in_file(file, *line, e.item.clone())),
                Origin::Api => None,
            })
            .collect::<Vec<_>>(),
        &[],
    );
    assert!(again.records.is_empty());
    assert_eq!(again.ruleset, reloaded.ruleset);
}

#[test]
fn a_replayed_log_gives_the_same_rules_ids_and_order() {
    let files = [in_file(
        "firewall.d/a.toml",
        2,
        rule("22", Action::Accept, "SSH", true),
    )];
    let mut log = Vec::new();
    let mut change = Ruleset::default().with_files(&files, &[]);
    log.extend(change.records.clone());
    for (port, action) in [
        ("8080", Action::Accept),
        ("9090", Action::Drop),
        ("7070", Action::Reject),
    ] {
        change = change
            .ruleset
            .add_rule(rule(port, action, port, false))
            .unwrap();
        log.extend(change.records.clone());
    }
    change = change.ruleset.delete_rule(3).unwrap();
    log.extend(change.records.clone());
    change = change
        .ruleset
        .add_forward(forward(2525, "10.0.0.2:25"))
        .unwrap();
    log.extend(change.records.clone());
    change = change.ruleset.set_enabled(true);
    log.extend(change.records.clone());
    let live = change.ruleset;

    let restored = replay(&log).with_files(&files, &[]);
    assert!(restored.records.is_empty(), "{:?}", restored.records);
    assert_eq!(restored.ruleset, live);
    // A compaction's snapshot replays to the same too, and keeps the counter past a deleted id.
    let compacted = replay(&live.records()).with_files(&files, &[]).ruleset;
    assert_eq!(compacted, live);
    let deleted_last = live.delete_forward(5).unwrap().ruleset;
    let next = replay(&deleted_last.records())
        .add_rule(rule("1", Action::Accept, "", false))
        .unwrap();
    assert_eq!(next.id, Some(6), "an id is never given twice");
}

#[test]
fn deletions_that_are_refused_say_why() {
    let change = Ruleset::default().with_files(
        &[
            in_file(
                "firewall.d/a.toml",
                1,
                rule("22", Action::Accept, "SSH", true),
            ),
            in_file(
                "firewall.d/a.toml",
                7,
                rule("80", Action::Accept, "web", false),
            ),
        ],
        &[FileEntry {
            file: "firewall.d/a.toml".into(),
            line: 12,
            item: forward(993, "10.0.0.2:993"),
        }],
    );
    let ruleset = change
        .ruleset
        .add_rule(rule("8080", Action::Accept, "", false))
        .unwrap()
        .ruleset;
    let cases: [(Result<Change, FirewallError>, &str); 6] = [
        (
            ruleset.delete_rule(1),
            "rule 1 is protected (input tcp port 22 from any accept \"SSH\")",
        ),
        (
            ruleset.delete_rule(2),
            "rule 2 comes from firewall.d/a.toml:7: remove it there and reload",
        ),
        (ruleset.delete_rule(3), "3 is a forward, not a rule"),
        (
            ruleset.delete_rule(99),
            "there is no rule or forward with id 99",
        ),
        (
            ruleset.delete_forward(3),
            "forward 3 comes from firewall.d/a.toml:12",
        ),
        (ruleset.delete_forward(4), "4 is a rule, not a forward"),
    ];
    for (result, want) in cases {
        let error = result.unwrap_err().to_string();
        assert!(
            error.starts_with(want),
            "{error:?} should start with {want:?}"
        );
    }
    let gone = ruleset.delete_rule(4).unwrap();
    assert_eq!(gone.records, [FirewallRecord::Deleted { id: 4 }]);
    assert_eq!(gone.ruleset.rules().len(), 2);
}

#[test]
fn duplicates_overlaps_and_protection_from_the_api_are_refused() {
    let ruleset = Ruleset::default()
        .add_rule(rule("22", Action::Accept, "SSH", false))
        .unwrap()
        .ruleset;
    let error = ruleset
        .add_rule(rule("22", Action::Accept, "again", false))
        .unwrap_err();
    assert!(
        matches!(error, FirewallError::Duplicate { id: 1, .. }),
        "{error}"
    );
    // The same port with another action is another rule.
    assert!(
        ruleset
            .add_rule(rule("22", Action::Drop, "", false))
            .is_ok()
    );
    assert_eq!(
        ruleset
            .add_rule(rule("23", Action::Accept, "", true))
            .unwrap_err(),
        FirewallError::ProtectedFromApi
    );
    let ruleset = ruleset
        .add_forward(forward(2525, "10.0.0.2:25"))
        .unwrap()
        .ruleset;
    let error = ruleset
        .add_forward(forward(2525, "10.0.0.3:25"))
        .unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("forward 2 already takes these packets"),
        "{error}"
    );
    assert!(
        ruleset
            .add_forward(forward(2525, "[2001:db8::2]:25"))
            .is_ok()
    );
}

#[test]
fn records_read_back_from_their_json() {
    let records = [
        FirewallRecord::Rule {
            id: 7,
            rule: rule("25,465", Action::Reject, "mail", false),
            file: Some("firewall.d/x.toml".into()),
        },
        FirewallRecord::Forward {
            id: 8,
            forward: forward(993, "[2001:db8::2]:993"),
            file: None,
        },
        FirewallRecord::Deleted { id: 7 },
        FirewallRecord::Enabled { enabled: false },
        FirewallRecord::NextId { next: 9 },
    ];
    for record in records {
        let json = serde_json::to_string(&record).unwrap();
        assert_eq!(
            serde_json::from_str::<FirewallRecord>(&json).unwrap(),
            record,
            "{json}"
        );
    }
}
