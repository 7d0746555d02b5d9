//! Every shipped file, checked with the code that uses it: the unit against the CLI parser and
//! the defaults, the main config and the jails (laid out as the installers lay them out) with
//! the daemon's own loader, the .deb assets and the .rpm spec, the log paths the jails read on
//! Debian and on the RHEL family, and the install script into a staging tree. The packages
//! themselves are built and checked by pkg/build, pkg/check and pkg/try-root (run by CI).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;
use nftjail::cli::{Cli, Command as Sub};
use nftjail::config::{self, DEFAULT_CONFIG, DEFAULT_SOCKET, DEFAULT_STATE_DIR};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn unit() -> String {
    fs::read_to_string(Path::new(ROOT).join("systemd/nftjail.service")).unwrap()
}

/// The values of `key=` lines of the unit.
fn unit_values(key: &str) -> Vec<String> {
    unit()
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::to_string)
        .collect()
}

fn jail_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(Path::new(ROOT).join("jails"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn the_unit_starts_and_reloads_with_commands_the_cli_accepts() {
    assert_eq!(unit_values("Type"), ["notify"]);
    let start = &unit_values("ExecStart")[0];
    let cli = Cli::try_parse_from(start.split_whitespace())
        .unwrap_or_else(|e| panic!("ExecStart={start}: {e}"));
    match cli.command {
        Sub::Run(args) => assert!(
            args.config.is_none_or(|c| c == Path::new(DEFAULT_CONFIG)),
            "ExecStart reads the default configuration"
        ),
        other => panic!("ExecStart runs {other:?}"),
    }
    let reload = unit_values("ExecReload")[0]
        .trim_start_matches(['+', '-', '@', '!'])
        .to_string();
    let cli = Cli::try_parse_from(reload.split_whitespace()).unwrap();
    let Sub::Reload(args) = cli.command else {
        panic!("ExecReload runs {reload}")
    };
    let socket = args.client.or(&cli.client);
    assert!(
        socket.socket.is_none() && socket.config.is_none_or(|c| c == Path::new(DEFAULT_CONFIG)),
        "reload finds the socket in the default configuration"
    );
    assert_eq!(
        nftjail::config::DEFAULT_SOCKET,
        DEFAULT_SOCKET,
        "and, without one, the default socket"
    );
    let no_retry: BTreeSet<String> = unit_values("RestartPreventExitStatus")
        .iter()
        .flat_map(|v| v.split_whitespace().map(str::to_string))
        .collect();
    assert!(
        no_retry.contains("78") && no_retry.contains("77"),
        "a config error (78) or missing privilege (77) is not retried"
    );
}

#[test]
fn the_units_directories_are_the_default_socket_and_state_paths() {
    assert_eq!(
        Path::new(DEFAULT_SOCKET).parent().unwrap(),
        Path::new("/run").join(&unit_values("RuntimeDirectory")[0])
    );
    assert_eq!(
        Path::new(DEFAULT_STATE_DIR),
        Path::new("/var/lib").join(&unit_values("StateDirectory")[0])
    );
    let main = fs::read_to_string(Path::new(ROOT).join("dist/nftjail.toml")).unwrap();
    assert!(
        main.contains(&format!("socket = \"{DEFAULT_SOCKET}\"")),
        "dist/nftjail.toml names the default socket"
    );
    assert!(main.contains(&format!("state_dir = \"{DEFAULT_STATE_DIR}\"")));
}

/// The shipped config laid out as the installers do: `jail.d/10-NAME.toml`.
fn installed_layout() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::copy(
        Path::new(ROOT).join("dist/nftjail.toml"),
        dir.path().join("nftjail.toml"),
    )
    .unwrap();
    fs::create_dir_all(dir.path().join("jail.d")).unwrap();
    for file in jail_files() {
        fs::copy(
            &file,
            dir.path().join("jail.d").join(format!(
                "10-{}",
                file.file_name().unwrap().to_string_lossy()
            )),
        )
        .unwrap();
    }
    dir
}

#[test]
fn the_shipped_configuration_loads_with_the_daemons_loader_and_local_overrides_win() {
    let dir = installed_layout();
    let c = config::load(&dir.path().join("nftjail.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let enabled: Vec<&str> = c.enabled().map(|j| j.name.as_str()).collect();
    assert_eq!(
        enabled,
        ["manual", "recidive", "sshd"],
        "sshd is protected out of the box"
    );
    assert_eq!(c.jails.len(), jail_files().len());
    for jail in &c.jails {
        assert!(
            jail.policy.ignore.contains("127.0.0.1".parse().unwrap()),
            "{}: loopback ignored",
            jail.name
        );
    }
    // A local drop-in overrides the shipped one, key by key.
    fs::write(
        dir.path().join("jail.d/99-local.toml"),
        "[postfix]\nenabled = true\nmaxretry = 2\n",
    )
    .unwrap();
    let c = config::load(&dir.path().join("nftjail.toml")).unwrap();
    let postfix = c
        .jails
        .iter()
        .find(|j| j.name.as_str() == "postfix")
        .unwrap();
    assert!(postfix.enabled);
    assert_eq!(postfix.policy.maxretry, 2);
    assert_eq!(
        postfix.policy.findtime, 600,
        "what the shipped file does not set comes from [defaults]"
    );
}

/// The keys a shipped jail may set: what is specific to it, as in fail2ban's jail.conf.
/// maxretry, findtime, bantime, ignore lists and escalation come from `[defaults]`; recidive's
/// window and ban, and manual's ban, are what those jails are.
const SPECIFIC: &[&str] = &[
    "enabled",
    "filter",
    "mode",
    "logpath",
    "backend",
    "journalmatch",
    "journalpath",
    "port",
    "protocol",
    "datepattern",
    "logtimezone",
];

// Regression: the shipped jail files set maxretry, findtime and bantime and silently
// overrode [defaults] (dovecot ran with 5/10m/1h under `[defaults] maxretry = 6, …`).
#[test]
fn shipped_jails_set_only_what_is_specific_to_them() {
    for file in jail_files() {
        let text = fs::read_to_string(&file).unwrap();
        let table: toml::Table = toml::from_str(&text).unwrap();
        for (jail, keys) in &table {
            let allowed: Vec<&str> = match jail.as_str() {
                "recidive" => [SPECIFIC, &["maxbans", "findtime", "bantime"]].concat(),
                "manual" => [SPECIFIC, &["bantime"]].concat(),
                _ => SPECIFIC.to_vec(),
            };
            for key in keys.as_table().unwrap().keys() {
                assert!(
                    allowed.contains(&key.as_str()),
                    "{}: [{jail}] sets {key}, which belongs in [defaults] (or jail.d/99-local.toml)",
                    file.display()
                );
            }
        }
    }
}

#[test]
fn defaults_reach_the_shipped_jails_and_allports_beats_their_ports() {
    let dir = installed_layout();
    let main = dir.path().join("nftjail.toml");
    let text = fs::read_to_string(&main).unwrap();
    let text = text
        .replacen("\nmaxretry = 5 ", "\nmaxretry = 6 ", 1)
        .replacen(
            "\nfindtime = \"10m\" ",
            "\nport = \"all\"\nfindtime = \"1w\" ",
            1,
        )
        .replacen("\nbantime = \"1h\" ", "\nbantime = \"1w\" ", 1);
    fs::write(&main, &text).unwrap();
    // The line of a key in a file, as `check` names it.
    let line_of = |text: &str, key: &str| {
        1 + text
            .lines()
            .position(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no {key}"))
    };
    let maxretry_line = format!("nftjail.toml:{}", line_of(&text, "maxretry = 6"));
    let shipped = fs::read_to_string(dir.path().join("jail.d/10-dovecot.toml")).unwrap();
    let filter_line = format!("jail.d/10-dovecot.toml:{}", line_of(&shipped, "filter ="));
    fs::write(
        dir.path().join("jail.d/99-local.toml"),
        "[dovecot]\nenabled = true\n\n[sshd]\nport = [\"ssh\", 2222]\n",
    )
    .unwrap();
    let c = config::load(&main).unwrap_or_else(|e| panic!("{e}"));
    let jail = |name: &str| c.jails.iter().find(|j| j.name.as_str() == name).unwrap();
    let dovecot = jail("dovecot");
    assert_eq!(
        (dovecot.policy.maxretry, dovecot.policy.findtime),
        (6, 604_800)
    );
    assert_eq!(dovecot.policy.bantime.seconds(), Some(604_800));
    assert_eq!(
        dovecot.ports,
        config::Ports::All,
        "allports beats 10-dovecot.toml"
    );
    assert_ne!(
        jail("sshd").ports,
        config::Ports::All,
        "a port set again in 99-local.toml beats allports"
    );
    assert_eq!(
        jail("recidive").policy.bantime.seconds(),
        Some(604_800),
        "recidive keeps its own window and ban"
    );
    assert_eq!(jail("recidive").policy.findtime, 86_400);
    // `check` says where each value came from.
    let out = Command::new(env!("CARGO_BIN_EXE_nftjail"))
        .args(["check", "--config"])
        .arg(&main)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    let dovecot_keys: Vec<&str> = report
        .split("\ndovecot: enabled")
        .nth(1)
        .expect("dovecot in the report")
        .lines()
        .take_while(|l| !l.is_empty())
        .collect();
    let line = |key: &str| {
        dovecot_keys
            .iter()
            .find(|l| l.trim_start().starts_with(&format!("{key} ")))
            .unwrap_or_else(|| panic!("no {key} in {report}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(line("maxretry")[1..], ["6", "[defaults]", &maxretry_line]);
    assert_eq!(line("findtime")[1..3], ["1w", "[defaults]"]);
    assert_eq!(line("bantime")[1..3], ["1w", "[defaults]"]);
    assert_eq!(line("port")[1..3], ["all", "[defaults]"]);
    assert_eq!(line("enabled")[1..], ["true", "jail.d/99-local.toml:2"]);
    assert_eq!(line("filter")[1..], ["dovecot", &filter_line]);
    assert_eq!(line("maxtracked")[1..], ["100000", "built-in"]);
}

#[test]
fn every_shipped_jail_is_in_the_debian_package() {
    let cargo = fs::read_to_string(Path::new(ROOT).join("Cargo.toml")).unwrap();
    for file in jail_files() {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let asset = format!("[\"jails/{name}\", \"etc/nftjail/jail.d/10-{name}\", \"644\"]");
        assert!(
            cargo.contains(&asset),
            "{asset} missing from [package.metadata.deb] assets"
        );
    }
}

/// Where the packages and install.sh put `firewall/hosting.toml`: documentation, not
/// configuration, so that the host firewall is never changed by installing nftjail.
const FIREWALL_EXAMPLE: &str = "usr/share/doc/nftjail/examples/firewall.d/10-hosting.toml";

#[test]
fn the_firewall_example_ships_as_documentation_and_is_in_force_only_once_copied() {
    let cargo = fs::read_to_string(Path::new(ROOT).join("Cargo.toml")).unwrap();
    let asset = format!("[\"firewall/hosting.toml\", \"{FIREWALL_EXAMPLE}\", \"644\"]");
    assert!(
        cargo.contains(&asset),
        "{asset} missing from the .deb's assets"
    );
    let spec = spec();
    let install = spec_section(&spec, "%install").join("\n");
    assert!(
        install.contains("\"$src/firewall/hosting.toml\"")
            && install.contains(&format!("%{{buildroot}}/{FIREWALL_EXAMPLE}")),
        "%install copies the example:\n{install}"
    );
    let files = spec_section(&spec, "%files");
    assert!(
        files.contains(&format!("%doc /{FIREWALL_EXAMPLE}")),
        "%files marks the example as documentation: {files:?}"
    );

    // As installed, no firewall rule is read: the shipped configuration leaves the firewall off.
    let dir = installed_layout();
    let main = dir.path().join("nftjail.toml");
    let c = config::load(&main).unwrap_or_else(|e| panic!("{e}"));
    assert!(!c.firewall.settings.enabled);
    assert!(c.firewall.rules.is_empty() && c.firewall.forwards.is_empty());
    // Copied into firewall.d, it loads, every rule protected, and keeps the default admin port
    // (ssh) open under a default-drop policy: the lock-out check of `nftjail check` passes.
    fs::create_dir_all(dir.path().join("firewall.d")).unwrap();
    fs::copy(
        Path::new(ROOT).join("firewall/hosting.toml"),
        dir.path().join("firewall.d/10-hosting.toml"),
    )
    .unwrap();
    let text = fs::read_to_string(&main).unwrap();
    fs::write(
        &main,
        format!("{text}\n[firewall]\nenabled = true\ndefault_input = \"drop\"\n"),
    )
    .unwrap();
    let c = config::load(&main).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert!(c.firewall.settings.enabled);
    assert!(c.firewall.rules.len() >= 9, "{:?}", c.firewall.rules);
    assert!(c.firewall.rules.iter().all(|r| r.item.protected));
}

fn spec() -> String {
    fs::read_to_string(Path::new(ROOT).join("pkg/nftjail.spec")).unwrap()
}

/// The sections of an RPM spec that end the one before them.
const SPEC_SECTIONS: &[&str] = &[
    "%description",
    "%prep",
    "%build",
    "%install",
    "%files",
    "%post",
    "%preun",
    "%postun",
];

/// The lines of the spec's `section`, up to the next section.
fn spec_section(spec: &str, section: &str) -> Vec<String> {
    spec.lines()
        .skip_while(|l| l.trim() != section)
        .skip(1)
        .take_while(|l| !SPEC_SECTIONS.contains(&l.trim()))
        .map(str::to_string)
        .collect()
}

#[test]
fn every_shipped_jail_is_in_the_rpm_as_noreplace_configuration() {
    // The spec takes the jails by a glob, so a new file in jails/ needs no change there: check
    // that the glob, the 10- prefix and %config(noreplace) stay (pkg/check checks the package).
    let spec = spec();
    let install = spec_section(&spec, "%install").join("\n");
    assert!(
        install.contains(r#"for jail in "$src"/jails/*.toml; do"#)
            && install.contains(r#""%{buildroot}/etc/nftjail/jail.d/10-${jail##*/}""#),
        "%install copies every jails/NAME.toml to jail.d/10-NAME.toml:\n{install}"
    );
    let files = spec_section(&spec, "%files");
    for needed in [
        "%config(noreplace) /etc/nftjail/nftjail.toml",
        "%config(noreplace) /etc/nftjail/jail.d/*.toml",
        "/usr/bin/nftjail",
        "/usr/lib/systemd/system/nftjail.service",
    ] {
        assert!(
            files.iter().any(|l| l == needed),
            "%files lacks {needed:?}: {files:?}"
        );
    }
    // Nothing under /etc ships without %config(noreplace) (an upgrade would overwrite edits).
    for line in files.iter().filter(|l| l.contains("/etc/")) {
        assert!(
            line.starts_with("%config(noreplace) ") || line.starts_with("%dir "),
            "{line:?} is not %config(noreplace)"
        );
    }
}

#[test]
fn the_rpm_installs_the_binary_where_the_unit_starts_it() {
    let start = &unit_values("ExecStart")[0];
    let binary = start.split_whitespace().next().unwrap();
    assert_eq!(binary, "/usr/bin/nftjail");
    assert!(
        spec().contains("%{buildroot}/usr/bin/nftjail"),
        "the spec installs {binary}"
    );
}

/// Debian's log (or unit) and the RHEL family's: a jail that reads one must read the other.
const DEBIAN_AND_RHEL: &[(&str, &str)] = &[
    ("/var/log/auth.log", "/var/log/secure"),
    ("/var/log/mail.log", "/var/log/maillog"),
    ("_SYSTEMD_UNIT=ssh.service", "_SYSTEMD_UNIT=sshd.service"),
    (
        "_SYSTEMD_UNIT=postfix@-.service",
        "_SYSTEMD_UNIT=postfix.service",
    ),
];

#[test]
fn the_shipped_jails_read_the_logs_of_debian_and_of_the_rhel_family() {
    for file in jail_files() {
        let jail: toml::Table = toml::from_str(&fs::read_to_string(&file).unwrap()).unwrap();
        for (name, table) in &jail {
            let mut read: Vec<&str> = Vec::new();
            for key in ["logpath", "journalmatch"] {
                if let Some(values) = table.get(key).and_then(|v| v.as_array()) {
                    read.extend(values.iter().filter_map(|v| v.as_str()));
                }
            }
            for (debian, rhel) in DEBIAN_AND_RHEL {
                assert_eq!(
                    read.contains(debian),
                    read.contains(rhel),
                    "{}: [{name}] reads {debian:?} or {rhel:?} but not both: {read:?}",
                    file.display()
                );
            }
        }
    }
}

#[test]
fn install_sh_stages_installs_idempotently_keeps_edits_and_uninstalls() {
    let stage = tempfile::tempdir().unwrap();
    let install = |args: &[&str]| {
        let out = Command::new("sh")
            .arg(Path::new(ROOT).join("dist/install.sh"))
            .args(["--binary", env!("CARGO_BIN_EXE_nftjail"), "--no-reload"])
            .args(args)
            .env("DESTDIR", stage.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "install.sh {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    install(&[]);
    let at = |p: &str| stage.path().join(p.trim_start_matches('/'));
    assert!(at("/usr/local/bin/nftjail").exists());
    assert!(at("/etc/nftjail/nftjail.toml").exists());
    assert!(at("/etc/nftjail/jail.d/10-sshd.toml").exists());
    assert!(at("/usr/local/lib/systemd/system/nftjail.service").exists());
    let example = at(&format!(
        "/usr/local/{}",
        FIREWALL_EXAMPLE.trim_start_matches("usr/")
    ));
    assert_eq!(
        fs::read(&example).unwrap(),
        fs::read(Path::new(ROOT).join("firewall/hosting.toml")).unwrap(),
        "the firewall example, as documentation"
    );
    assert_eq!(
        fs::read_dir(at("/etc/nftjail/firewall.d")).unwrap().count(),
        0,
        "firewall.d is there, empty: nothing in force"
    );
    let unit = fs::read_to_string(at("/usr/local/lib/systemd/system/nftjail.service")).unwrap();
    assert!(
        unit.contains("ExecStart=/usr/local/bin/nftjail run"),
        "the unit points at the installed binary"
    );
    // The staged configuration is valid for the installed binary.
    let check = Command::new(env!("CARGO_BIN_EXE_nftjail"))
        .args(["check", "--config"])
        .arg(at("/etc/nftjail/nftjail.toml"))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    // An edit survives a re-run, which leaves the new version beside it.
    fs::write(
        at("/etc/nftjail/jail.d/10-sshd.toml"),
        "[sshd]\nenabled = false\n",
    )
    .unwrap();
    install(&[]);
    assert_eq!(
        fs::read_to_string(at("/etc/nftjail/jail.d/10-sshd.toml")).unwrap(),
        "[sshd]\nenabled = false\n"
    );
    install(&["--uninstall"]);
    assert!(!at("/usr/local/bin/nftjail").exists());
    assert!(!example.exists() && !at("/usr/local/share/doc/nftjail").exists());
    assert!(!at("/usr/local/lib/systemd/system/nftjail.service").exists());
    assert!(
        at("/etc/nftjail/jail.d/10-sshd.toml").exists(),
        "an edited configuration is kept"
    );
}
