//! The README must not drift from the code: its configuration reference lists exactly the keys
//! the loader accepts, its shipped-jail table every shipped jail, and its test command is the
//! one CI runs.

use std::collections::BTreeSet;

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap()
}

/// The `` `key` `` cells of the first column of the table after the heading containing `heading`.
fn table_keys(readme: &str, heading: &str) -> BTreeSet<String> {
    let start = readme
        .find(heading)
        .unwrap_or_else(|| panic!("README lacks a {heading:?} heading"));
    readme[start..]
        .lines()
        .skip(1)
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| l.split('|').nth(1))
        .filter_map(|cell| {
            cell.trim()
                .strip_prefix('`')?
                .strip_suffix('`')
                .map(str::to_string)
        })
        .collect()
}

#[test]
fn the_configuration_reference_lists_exactly_the_keys_the_code_accepts() {
    let readme = readme();
    for (heading, section) in [
        ("### `[daemon]`", "daemon"),
        ("### `[nftables]`", "nftables"),
        ("### `[metrics]`", "metrics"),
        ("### `[http]`", "http"),
        ("### `[cluster]`", "cluster"),
        ("### Jails: ", "jail"),
        ("### `[defaults.escalation]`", "escalation"),
        ("### `[firewall]`", "firewall"),
        ("### Firewall rules: ", "firewall rule"),
        ("### Port forwards: ", "firewall forward"),
    ] {
        let mut code: BTreeSet<String> =
            nftjail::config::section_keys(section).into_iter().collect();
        assert!(!code.is_empty(), "no keys found for {section}");
        // The escalation sub-table is documented in its own section.
        code.remove("escalation");
        assert_eq!(
            table_keys(&readme, heading),
            code,
            "README section {heading} vs the code"
        );
    }
}

#[test]
fn every_shipped_jail_is_in_the_readme_table() {
    let documented = table_keys(&readme(), "### Shipped jails");
    let shipped: BTreeSet<String> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/jails"))
            .unwrap()
            .map(|e| {
                e.unwrap()
                    .path()
                    .file_stem()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
    assert_eq!(documented, shipped);
}

#[test]
fn ci_runs_the_readme_test_command() {
    let readme = readme();
    let command = readme
        .lines()
        .find(|l| l.contains("cargo test"))
        .expect("the README gives a test command");
    let cargo = &command[command.find("cargo test").unwrap()..];
    let ci = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/run")).unwrap();
    assert!(
        ci.lines().any(|l| l.trim() == cargo.trim()),
        "{cargo:?} is not a line of .ci/run"
    );
}
