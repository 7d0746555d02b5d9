//! fail2ban's filters in nftjail and in `fail2ban-regex`, side by side on logs nobody tuned them
//! to: every test log of fail2ban's corpus run through filters written for other services (a
//! mixed log of ~90 formats), and generated sshd/postfix/dovecot/exim logs. The addresses found
//! must agree (≥ 99%; measured: 100%).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{BIN, CONFIG_DIR, CORPUS, require_fail2ban};

#[allow(dead_code)]
#[path = "../../../examples/fail2ban_logs.rs"]
mod generator;

/// Every line of every corpus log that is not an annotation, in one file.
fn mixed_log(dir: &Path) -> PathBuf {
    let mut names: Vec<PathBuf> = std::fs::read_dir(CORPUS)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    names.sort();
    let mut text = Vec::new();
    for path in names {
        let bytes = std::fs::read(&path).unwrap();
        for line in bytes.split(|b| *b == b'\n') {
            if line.starts_with(b"#") || line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            text.extend_from_slice(line);
            text.push(b'\n');
        }
    }
    let path = dir.join("mixed.log");
    std::fs::write(&path, text).unwrap();
    path
}

fn normalise(text: &str) -> String {
    text.trim().parse::<std::net::IpAddr>().map_or_else(
        |_| text.trim().to_string(),
        |ip| {
            match ip {
                std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
                v4 => v4,
            }
            .to_string()
        },
    )
}

fn fail2ban_regex(log: &Path, filter: &str) -> Vec<String> {
    let out = Command::new("fail2ban-regex")
        .args(["-o", "ip", "--usedns", "no"])
        .arg(log)
        .arg(filter)
        .output()
        .expect("fail2ban-regex runs");
    assert!(
        out.status.success(),
        "fail2ban-regex {filter}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(normalise)
        .collect()
}

fn nftjail(log: &Path, filter: &str) -> Vec<String> {
    let out = Command::new(BIN)
        .args(["test-filter", filter])
        .arg(log)
        .args(["--json", "--fail2ban-dir", CONFIG_DIR])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "test-filter {filter}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            normalise(v["host"].as_str().unwrap())
        })
        .collect()
}

/// Failures both found (as a multiset), over the larger count.
fn agreement(ours: &[String], theirs: &[String]) -> f64 {
    let mut counts: HashMap<&str, i64> = HashMap::new();
    for host in theirs {
        *counts.entry(host).or_default() += 1;
    }
    let mut common = 0;
    for host in ours {
        if let Some(n) = counts.get_mut(host.as_str())
            && *n > 0
        {
            *n -= 1;
            common += 1;
        }
    }
    let total = ours.len().max(theirs.len());
    if total == 0 {
        1.0
    } else {
        common as f64 / total as f64
    }
}

// Done means (issue 11): on untuned logs, the same addresses as fail2ban-regex (≥ 99%).
#[test]
#[ignore = "needs fail2ban"]
fn fail2ban_filters_find_what_fail2ban_regex_finds() {
    require_fail2ban();
    let dir = tempfile::tempdir().unwrap();
    let mixed = mixed_log(dir.path());
    let generated = generator::write_logs(dir.path(), 10_000);
    let mut runs: Vec<(String, PathBuf, String)> = [
        "sshd",
        "sshd[mode=aggressive]",
        "postfix[mode=aggressive]",
        "dovecot",
        "exim",
        "exim-spam",
        "apache-auth",
        "nginx-http-auth",
        "pam-generic",
        "proftpd",
        "pure-ftpd",
        "vsftpd",
        "courier-auth",
        "named-refused",
    ]
    .into_iter()
    .map(|f| (f.to_string(), mixed.clone(), "mixed corpus".to_string()))
    .collect();
    for (path, filter) in generated.iter().zip([
        "sshd[mode=aggressive]",
        "postfix[mode=aggressive]",
        "dovecot",
        "exim",
    ]) {
        runs.push((
            filter.to_string(),
            path.clone(),
            path.file_name().unwrap().to_string_lossy().into_owned(),
        ));
    }
    let (mut all_ours, mut all_common, mut all_total) = (0usize, 0f64, 0usize);
    println!(
        "{:<28} {:<14} {:>8} {:>8} {:>8}",
        "filter", "log", "nftjail", "f2b", "agree"
    );
    for (filter, log, label) in &runs {
        let theirs = fail2ban_regex(
            log,
            &format!(
                "{CONFIG_DIR}/filter.d/{}",
                filter
                    .replacen('[', ".conf[", 1)
                    .replace(".conf.conf", ".conf")
                    + if filter.contains('[') { "" } else { ".conf" }
            ),
        );
        let reference = if filter.contains('[') {
            filter.clone()
        } else {
            format!("{filter}.conf")
        };
        let ours = nftjail(log, &reference);
        let agree = agreement(&ours, &theirs);
        println!(
            "{filter:<28} {label:<14} {:>8} {:>8} {:>7.2}%",
            ours.len(),
            theirs.len(),
            agree * 100.0
        );
        all_ours += ours.len();
        all_total += ours.len().max(theirs.len());
        all_common += agree * ours.len().max(theirs.len()) as f64;
        if agree < 1.0 {
            let mut only_theirs = theirs.clone();
            for host in &ours {
                if let Some(i) = only_theirs.iter().position(|h| h == host) {
                    only_theirs.swap_remove(i);
                }
            }
            println!(
                "    only fail2ban-regex: {:?}",
                &only_theirs[..only_theirs.len().min(5)]
            );
        }
    }
    let total = all_common / all_total.max(1) as f64;
    println!(
        "TOTAL: {all_ours} failures, {:.3}% agreement",
        100.0 * total
    );
    // The known difference: fail2ban's corpus writes 192.030.0.6, which is no address (sshd
    // prints none with leading zeros: it is text an attacker put in the line); fail2ban keeps it
    // as a raw id, nftjail cannot put it in a set and does not guess which address it means.
    assert!(total >= 0.99, "{:.3}% agreement", 100.0 * total);
    assert!(
        all_ours > 25_000,
        "the comparison found failures to compare"
    );
}
