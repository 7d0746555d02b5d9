//! Bad fail2ban filter files through `nftjail check` and `nftjail run`: each names its file and
//! line and the reason, exits 78, and nothing starts. Needs neither root nor fail2ban.

use std::process::Command;

use super::BIN;

/// A configuration with one jail using `filter.d/NAME.conf`, which holds `files`.
fn check(files: &[(&str, &str)], reference: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("jail.d")).unwrap();
    std::fs::create_dir_all(root.join("filter.d")).unwrap();
    std::fs::write(
        root.join("nftjail.toml"),
        format!(
            "[daemon]\nsocket = \"{0}/s.sock\"\nstate_dir = \"{0}/state\"\n",
            root.display()
        ),
    )
    .unwrap();
    std::fs::write(
        root.join("jail.d/app.toml"),
        format!(
            "[app]\nenabled = true\nfilter = \"{reference}\"\nlogpath = [\"{}/app.log\"]\n",
            root.display()
        ),
    )
    .unwrap();
    for (name, text) in files {
        std::fs::write(root.join("filter.d").join(name), text).unwrap();
    }
    let main = root.join("nftjail.toml");
    let out = Command::new(BIN)
        .arg("check")
        .arg("--config")
        .arg(&main)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).replace(&root.display().to_string(), "DIR");
    // `run` refuses the same configuration before it touches anything (no root needed).
    let run = Command::new(BIN)
        .arg("run")
        .arg("--config")
        .arg(&main)
        .output()
        .unwrap();
    assert_eq!(
        run.status.code(),
        Some(78),
        "run: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(!root.join("state").exists(), "nothing started");
    (out.status.code(), stderr)
}

#[test]
fn fail2ban_filter_with_a_syntax_error_names_its_line() {
    let (code, stderr) = check(
        &[(
            "app.conf",
            "[Definition]\nfailregex = ^x <HOST>$\nthis line is junk\n",
        )],
        "app.conf",
    );
    assert_eq!(code, Some(78));
    assert!(stderr.contains("DIR/filter.d/app.conf:3:1: "), "{stderr}");
}

#[test]
fn fail2ban_filter_with_a_mistyped_tag_is_refused() {
    let (code, stderr) = check(
        &[(
            "app.conf",
            "[Definition]\nfailregex = ^login failed from <HOTS>$\n            ^denied <HOTS> from <ADDR>$\n",
        )],
        "app.conf[mode=normal]",
    );
    assert_eq!(code, Some(78));
    // A regex without any address group: fail2ban refuses it too.
    assert!(stderr.contains("DIR/filter.d/app.conf:2:1: failregex \"^login failed from <HOTS>$\": no failure-id group"), "{stderr}");
    // With an address elsewhere fail2ban would run it, never matching: nftjail refuses.
    assert!(
        stderr.contains(
            "DIR/filter.d/app.conf:3:1: failregex: unknown tag <HOTS> (did you mean <HOST>?)"
        ),
        "{stderr}"
    );
}

#[test]
fn fail2ban_filter_regex_that_does_not_compile_names_its_line() {
    let (code, stderr) = check(
        &[(
            "app.conf",
            "[Definition]\nfailregex = ^ok <HOST>$\n            ^broken (<HOST>$\n",
        )],
        "app.conf",
    );
    assert_eq!(code, Some(78));
    assert!(
        stderr
            .contains("DIR/filter.d/app.conf:3:1: failregex \"^broken (<HOST>$\" does not compile"),
        "{stderr}"
    );
}

#[test]
fn fail2ban_filter_include_loop_names_the_including_line() {
    let (code, stderr) = check(
        &[
            (
                "app.conf",
                "[INCLUDES]\nbefore = common-app.conf\n[Definition]\nfailregex = ^x <HOST>$\n",
            ),
            (
                "common-app.conf",
                "[INCLUDES]\n\nbefore = app.conf\n[DEFAULT]\na = 1\n",
            ),
        ],
        "app.conf",
    );
    assert_eq!(code, Some(78));
    assert!(
        stderr.contains("DIR/filter.d/common-app.conf:3:1: include loop"),
        "{stderr}"
    );
}

#[test]
fn fail2ban_filter_that_is_fine_passes_check() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("jail.d")).unwrap();
    std::fs::create_dir_all(root.join("filter.d")).unwrap();
    std::fs::write(root.join("nftjail.toml"), "").unwrap();
    std::fs::write(
        root.join("filter.d/app.conf"),
        "[Definition]\nfailregex = ^\\s*<F-USER>\\S+</F-USER> failed from <HOST>$\n",
    )
    .unwrap();
    // The .local overrides the .conf, as in fail2ban.
    std::fs::write(
        root.join("filter.d/app.local"),
        "[Definition]\nfailregex = ^\\s*login of <F-USER>\\S+</F-USER> failed from <HOST>$\n",
    )
    .unwrap();
    std::fs::write(
        root.join("jail.d/app.toml"),
        format!(
            "[app]\nenabled = true\nfilter = \"app\"\nlogpath = [\"{}/app.log\"]\n",
            root.display()
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("check")
        .arg("--config")
        .arg(root.join("nftjail.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(
            "app: enabled — bans on all ports after 5 failures within 10m (filter app) read from"
        ),
        "{stdout}"
    );
    let log = "2026-11-23 07:18:36 login of bob failed from 192.0.2.7\n2026-11-23 07:18:37 bob failed from 192.0.2.8\n";
    std::fs::write(root.join("app.log"), log).unwrap();
    let out = Command::new(BIN)
        .args([
            "test-filter",
            root.join("filter.d/app.conf").to_str().unwrap(),
            root.join("app.log").to_str().unwrap(),
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "{\"line\": 1, \"host\": \"192.0.2.7\", \"time\": \"2026-11-23T07:18:36\", \"user\": \"bob\"}\n"
    );
}
