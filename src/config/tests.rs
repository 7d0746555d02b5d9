//! Loading whole configurations from temporary directories.

use std::fs;
use std::path::{Path, PathBuf};

use super::*;

struct Dir(tempfile::TempDir);

impl Dir {
    fn new(main: &str) -> Dir {
        let d = Dir(tempfile::tempdir().unwrap());
        d.write("nftjail.toml", main);
        d
    }

    fn write(&self, rel: &str, text: &str) -> &Dir {
        let path = self.0.path().join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
        self
    }

    fn main(&self) -> PathBuf {
        self.0.path().join("nftjail.toml")
    }

    fn load(&self) -> Result<Config, Diagnostics> {
        load(&self.main())
    }

    /// The diagnostics as `relative/path:line:col: message` lines.
    fn errors(&self) -> Vec<String> {
        let root = format!("{}/", self.0.path().display());
        self.load()
            .unwrap_err()
            .iter()
            .map(|d| d.to_string().replace(&root, ""))
            .collect()
    }
}

const MAIN: &str = r#"
[daemon]
state_dir = "/tmp/x"

[defaults]
maxretry = 4
findtime = "10m"
bantime = "1h"
ignoreip = ["127.0.0.0/8", "::1"]
ignoreself = false

[defaults.escalation]
increment = true
factor = 2
maxtime = "5w"
"#;

#[test]
fn defaults_and_drop_ins_merge_key_by_key_last_file_wins() {
    let d = Dir::new(MAIN);
    d.write("jail.d/10-sshd.toml", "[sshd]\nenabled = false\nlogpath = \"/var/log/auth.log\"\nport = [\"ssh\"]\nmaxretry = 3\n");
    d.write(
        "jail.d/90-local.toml",
        "[sshd]\nenabled = true\nport = [\"ssh\", 2222]\n\n[sshd.escalation]\nfactor = 3\n",
    );
    let c = d.load().unwrap();
    assert_eq!(c.jails.len(), 1);
    let j = &c.jails[0];
    assert!(j.enabled);
    assert_eq!(j.policy.maxretry, 3, "from 10-sshd.toml");
    assert_eq!(j.policy.findtime, 600, "from [defaults]");
    assert_eq!(
        j.policy.bantime,
        BanTime::For(std::time::Duration::from_secs(3600))
    );
    assert_eq!(
        j.ports,
        Ports::List(vec![PortRange::single(22), PortRange::single(2222)]),
        "90-local.toml replaces the list"
    );
    assert_eq!(
        (j.policy.escalation.factor, j.policy.escalation.maxtime),
        (3.0, Some(5 * 604_800))
    );
    assert!(j.policy.escalation.increment);
    assert!(j.policy.ignore.contains("127.0.0.9".parse().unwrap()));
    match &j.kind {
        JailKind::Log { filter, source } => {
            assert_eq!(
                filter.name, "sshd",
                "the filter defaults to the jail's name"
            );
            assert_eq!(
                *source,
                Source::Files {
                    paths: vec!["/var/log/auth.log".into()],
                    poll_only: false,
                    tail: Vec::new(),
                }
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.daemon.state_dir, Path::new("/tmp/x"));
    assert_eq!(c.daemon.socket, Path::new(DEFAULT_SOCKET));
    assert_eq!(
        c.nftables,
        NftablesConfig {
            table: "nftjail".into(),
            hooks: vec![Hook::Input, Hook::Forward],
            verdict: Verdict::Drop,
            keep_on_stop: true
        }
    );
}

#[test]
fn every_error_of_every_file_names_its_place() {
    let d = Dir::new("[daemon]\nstate_dirr = \"/x\"\n\n[nftables]\nverdict = \"accept\"\n");
    d.write(
        "jail.d/a.toml",
        "[sshd]\nenabled = true\nlogpath = \"/var/log/auth.log\"\nmaxretyr = 3\n",
    );
    d.write("jail.d/b.toml", "[web]\nenabled = true\nlogpath = \"relative.log\"\nfilter = \"nosuch\"\nbantime = \"ten\"\n");
    d.write("jail.d/c.toml", "[mail]\nenabled = true\nlogpath = \"/var/log/mail.log\"\nfilter = \"postfix\"\nport = [\"smtp\", \"nosuchservice\"]\nmaxretry = 0\n");
    d.write("jail.d/d.toml", "[broken\n");
    let errors = d.errors();
    let want = [
        "nftjail.toml:2:1: unknown key `state_dirr` (did you mean `state_dir`?)",
        "nftjail.toml:5:11: verdict \"accept\": use \"drop\" or \"reject\"",
        "jail.d/a.toml:4:1: unknown key `maxretyr` (did you mean `maxretry`?)",
        "jail.d/b.toml:5:11: \"ten\" is not a duration",
        "jail.d/c.toml:5:8: port: unknown service name \"nosuchservice\"",
        "jail.d/c.toml:6:12: maxretry must be at least 1, not 0",
        "jail.d/d.toml:1:8:",
    ];
    for w in want {
        assert!(
            errors.iter().any(|e| e.starts_with(w)),
            "missing {w:?} in:\n{}",
            errors.join("\n")
        );
    }
    // b.toml fails to deserialize at bantime, so its logpath/filter are not reached: one error.
    assert_eq!(errors.len(), want.len(), "{}", errors.join("\n"));
}

#[test]
fn semantic_errors_of_one_jail_are_all_reported() {
    let d = Dir::new("");
    d.write("jail.d/web.toml", "[web]\nenabled = true\nlogpath = \"relative.log\"\nfilter = \"nosuch\"\nprotocol = \"sctp\"\nipv6_prefix = 200\n");
    let errors = d.errors();
    for w in [
        "jail.d/web.toml:3:11: logpath \"relative.log\" must be absolute",
        "jail.d/web.toml:4:10: unknown filter \"nosuch\"",
        "jail.d/web.toml:5:12: protocol \"sctp\"",
        "jail.d/web.toml:6:15: ipv6_prefix must be between 1 and 128",
    ] {
        assert!(
            errors.iter().any(|e| e.starts_with(w)),
            "missing {w:?} in:\n{}",
            errors.join("\n")
        );
    }
}

const MYAPP: &str = "prefix = \"syslog\"\ndaemons = [\"myapp\"]\n\n[modes.normal]\nfailregex = [\"^login failed from <HOST>$\"]\n";

#[test]
fn filter_d_adds_filters_and_jail_kinds_are_recognised() {
    let d = Dir::new("");
    d.write("filter.d/myapp.toml", MYAPP);
    d.write("jail.d/jails.toml", concat!(
        "[myapp]\nenabled = true\nlogpath = \"/var/log/myapp/*.log\"\n\n",
        "[recidive]\nenabled = true\nfindtime = \"1d\"\nbantime = \"1w\"\nmaxretry = 5\n\n",
        "[manual]\nenabled = true\nbantime = \"180d\"\n\n",
        "[sshd-journal]\nenabled = true\nfilter = \"sshd\"\nbackend = \"journal\"\njournalmatch = [\"_SYSTEMD_UNIT=ssh.service\"]\n",
    ));
    let c = d.load().unwrap();
    let kinds: Vec<(&str, String)> = c
        .jails
        .iter()
        .map(|j| {
            (
                j.name.as_str(),
                format!("{:?}", j.kind)
                    .split([' ', '{'])
                    .next()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("myapp", "Log".to_string()),
            ("recidive", "Recidive".into()),
            ("manual", "Manual".into()),
            ("sshd-journal", "Log".into())
        ]
    );
    assert_eq!(
        c.jails[1].policy.recidive,
        Some(5),
        "maxbans defaults to maxretry"
    );
    assert_eq!(c.history_retention(), 86_400);
    match &c.jails[3].kind {
        JailKind::Log {
            source: Source::Journal { matches, .. },
            ..
        } => assert_eq!(matches, &["_SYSTEMD_UNIT=ssh.service"]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn recidive_with_a_logpath_and_misplaced_maxbans_are_errors() {
    let d = Dir::new("");
    d.write("jail.d/r.toml", "[recidive]\nenabled = true\nlogpath = \"/var/log/fail2ban.log\"\n\n[sshd]\nlogpath = \"/l\"\nmaxbans = 3\n");
    let errors = d.errors();
    assert!(
        errors[0].starts_with("jail.d/r.toml:3:11: the recidive jail reads no log"),
        "{errors:?}"
    );
    assert!(
        errors[1].starts_with("jail.d/r.toml:7:11: maxbans only applies"),
        "{errors:?}"
    );
}

#[test]
fn bad_jail_names_and_non_table_keys_are_refused() {
    let d = Dir::new("stray = 1\n");
    d.write("jail.d/x.toml", "[\"1bad\"]\nenabled = true\n\n[ok]\n");
    let errors = d.errors();
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("nftjail.toml:1:1: `stray` must be a table")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("jail.d/x.toml:1:2: \"1bad\" is not a valid jail name")),
        "{errors:?}"
    );
}

#[test]
fn a_missing_main_file_is_one_clear_error() {
    let errs = load(Path::new("/nonexistent/nftjail.toml")).unwrap_err();
    assert_eq!(errs.len(), 1);
    assert!(
        errs.to_string()
            .starts_with("/nonexistent/nftjail.toml:1:1: cannot read:"),
        "{errs}"
    );
}

#[test]
fn ignoreip_accepts_fail2ban_strings_and_host_names() {
    let d = Dir::new(
        "[defaults]\nignoreself = false\nignoreip = \"127.0.0.1/8 ::1, 192.0.2.5 localhost\"\n",
    );
    d.write("jail.d/m.toml", "[manual]\nenabled = true\n");
    let c = d.load().unwrap();
    let ignore = &c.jails[0].policy.ignore;
    for ip in ["127.1.2.3", "::1", "192.0.2.5"] {
        assert!(ignore.contains(ip.parse().unwrap()), "{ip}");
    }
    assert!(!ignore.contains("192.0.2.6".parse().unwrap()));
    let d = Dir::new("[defaults]\nignoreip = [\"no-such-host.invalid\"]\n");
    d.write("jail.d/m.toml", "[manual]\nenabled = true\n");
    let c = d.load().unwrap();
    assert!(
        c.warnings[0].message.contains("does not resolve"),
        "{:?}",
        c.warnings
    );
}

#[test]
fn ignoreself_is_on_unless_turned_off() {
    let d = Dir::new("");
    d.write(
        "jail.d/m.toml",
        "[manual]\nenabled = true\n\n[open]\nenabled = true\nignoreself = false\n",
    );
    let c = d.load().unwrap();
    assert!(c.jails[0].policy.ignoreself);
    assert!(!c.jails[1].policy.ignoreself);
}

#[test]
fn wrong_value_types_say_what_was_expected() {
    let d = Dir::new("");
    d.write("jail.d/x.toml", "[x]\nlogpath = 5\n\n[y]\nport = [true]\n");
    let errors = d.errors();
    assert!(
        errors[0].starts_with("jail.d/x.toml:2:11: invalid type: integer `5`, expected a string"),
        "{errors:?}"
    );
    assert!(errors[1].starts_with("jail.d/x.toml:5:9: invalid type: boolean `true`, expected a port number or a service name"), "{errors:?}");
}

#[test]
fn auto_backend_reads_files_when_they_exist_and_the_journal_otherwise() {
    let d = Dir::new("");
    let log = d.0.path().join("auth.log");
    let jail = format!(
        "[sshd]\nenabled = true\nlogpath = [\"{}\", \"/nonexistent/secure\"]\njournalmatch = [\"_SYSTEMD_UNIT=ssh.service\"]\n",
        log.display()
    );
    d.write("jail.d/sshd.toml", &jail);
    let source = |c: &Config| match &c.jails[0].kind {
        JailKind::Log { source, .. } => source.clone(),
        other => panic!("{other:?}"),
    };
    assert!(
        matches!(source(&d.load().unwrap()), Source::Journal { .. }),
        "no log file: the journal"
    );
    fs::write(&log, "").unwrap();
    assert!(
        matches!(source(&d.load().unwrap()), Source::Files { .. }),
        "auth.log exists: the files"
    );
}

#[test]
fn filter_problems_are_reported_where_they_are_written() {
    let d = Dir::new("");
    // A broken regex in a filter.d file (unused by any jail: still checked), and a jail asking
    // a mode the built-in sshd filter does not have.
    d.write(
        "filter.d/broken.toml",
        "daemons = [\"x\"]\n[modes.normal]\nfailregex = [\n  \"^(unclosed <HOST>\",\n]\n",
    );
    d.write("jail.d/sshd.toml", "[sshd]\nlogpath = \"/var/log/auth.log\"\nmode = \"paranoid\"\nlogtimezone = \"Mars/Olympus\"\n");
    let errors = d.errors();
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("filter.d/broken.toml:4:3:")),
        "{}",
        errors.join("\n")
    );
    assert!(
        errors.iter().any(|e| e.starts_with(
            "jail.d/sshd.toml:3:8: filter \"sshd\" has no mode \"paranoid\" (its modes: "
        )),
        "{}",
        errors.join("\n")
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("jail.d/sshd.toml:4:15: logtimezone:")),
        "{}",
        errors.join("\n")
    );
}

#[test]
fn filter_d_overrides_a_built_in_filter() {
    let d = Dir::new("");
    d.write("filter.d/sshd.toml", &MYAPP.replace("myapp", "sshd"));
    d.write(
        "jail.d/sshd.toml",
        "[sshd]\nenabled = true\nlogpath = \"/var/log/auth.log\"\n",
    );
    let c = d.load().unwrap();
    let JailKind::Log { filter, .. } = &c.jails[0].kind else {
        panic!()
    };
    assert!(
        filter.path.ends_with("filter.d/sshd.toml"),
        "{}",
        filter.path.display()
    );
    assert_eq!(filter.filter.regex_count(), 1);
}

#[test]
fn loopback_is_ignored_by_default_like_fail2ban() {
    let d = Dir::new("[defaults]\nignoreself = false\n");
    d.write("jail.d/m.toml", "[manual]\nenabled = true\n");
    let c = d.load().unwrap();
    assert!(
        c.jails[0]
            .policy
            .ignore
            .contains("127.0.0.1".parse().unwrap())
    );
    assert!(c.jails[0].policy.ignore.contains("::1".parse().unwrap()));
    let d = Dir::new("[defaults]\nignoreself = false\nignoreip = []\n");
    d.write("jail.d/m.toml", "[manual]\nenabled = true\n");
    assert!(
        !d.load().unwrap().jails[0]
            .policy
            .ignore
            .contains("127.0.0.1".parse().unwrap()),
        "an explicit empty list ignores nothing"
    );
}

#[test]
fn logpath_takes_fail2bans_tail_option() {
    let d = Dir::new("");
    d.write(
        "jail.d/a.toml",
        "[sshd]\nenabled = true\nlogpath = [\"/var/log/auth.log tail\", \"/var/log/secure  head\", \"/var/log/x.log\"]\n",
    );
    let c = d.load().unwrap();
    match &c.jails[0].kind {
        JailKind::Log { source, .. } => assert_eq!(
            *source,
            Source::Files {
                paths: vec![
                    "/var/log/auth.log".into(),
                    "/var/log/secure".into(),
                    "/var/log/x.log".into()
                ],
                poll_only: false,
                tail: vec!["/var/log/auth.log".into()],
            }
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_defaults_port_list_only_fills_in_while_all_is_allports() {
    let d = Dir::new("[defaults]\nport = [\"ssh\"]\n");
    d.write(
        "jail.d/10-a.toml",
        "[own]\nenabled = true\nport = [\"smtp\"]\n\n[none]\nenabled = true\n",
    );
    let c = d.load().unwrap();
    assert_eq!(c.jails[0].ports, Ports::List(vec![PortRange::single(25)]));
    assert_eq!(c.jails[1].ports, Ports::List(vec![PortRange::single(22)]));

    let d = Dir::new("[defaults]\nport = \"all\"\n");
    d.write(
        "jail.d/10-a.toml",
        "[own]\nenabled = true\nport = [\"smtp\"]\n",
    );
    assert_eq!(d.load().unwrap().jails[0].ports, Ports::All);
    d.write("jail.d/99-local.toml", "[own]\nport = [\"smtp\", 2525]\n");
    let c = d.load().unwrap();
    assert_eq!(
        c.jails[0].ports,
        Ports::List(vec![PortRange::single(25), PortRange::single(2525)]),
        "set again in a later drop-in: its own ports"
    );
    let port = c.jails[0]
        .settings
        .iter()
        .find(|s| s.key == "port")
        .unwrap();
    assert_eq!(
        (port.value.as_str(), port.origin.as_str()),
        ("25, 2525", "jail.d/99-local.toml:2")
    );
}
