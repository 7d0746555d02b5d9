//! `[cluster]` loaded from whole configurations in temporary directories.
use std::fs;

use crate::config::{Config, load};

const JAILS: &str = "[sshd]\nenabled = true\nlogpath = \"/var/log/auth.log\"\nbantime = \"2h\"\n\
    [manual]\nenabled = true\nport = [\"all\"]\nbantime = \"180d\"\n\
    [fleet]\nenabled = true\nport = [\"all\"]\n";

/// Loads `cluster` as nftjail.toml's `[cluster]` with `JAILS`; errors as
/// `nftjail.toml:LINE:COL: message`.
fn load_cluster(cluster: &str, jails: &str) -> Result<Config, Vec<String>> {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("secret"), "pw\n").unwrap();
    let main = format!(
        "[daemon]\nstate_dir = \"/tmp/x\"\n[cluster]\n{}\n",
        cluster.replace("{dir}", &dir.path().display().to_string())
    );
    fs::write(dir.path().join("nftjail.toml"), main).unwrap();
    fs::create_dir_all(dir.path().join("jail.d")).unwrap();
    fs::write(dir.path().join("jail.d/jails.toml"), jails).unwrap();
    let root = format!("{}/", dir.path().display());
    load(&dir.path().join("nftjail.toml"))
        .map_err(|d| d.iter().map(|d| d.to_string().replace(&root, "")).collect())
}

#[test]
fn defaults() {
    let config = load_cluster("url = \"nats://127.0.0.1:4222\"", JAILS).unwrap();
    let c = config.cluster.unwrap();
    assert_eq!(c.urls, ["nats://127.0.0.1:4222"]);
    assert_eq!(c.stream, "NFTJAIL_BANS");
    assert_eq!(c.apply_to.as_str(), "fleet");
    assert_eq!(c.max_age, 30 * 86_400, "manual's 180d, capped at 30d");
    assert_eq!((c.limits.min_prefix_v4, c.limits.min_prefix_v6), (16, 32));
    assert!(!c.share_lines);
    let jail = |n: &str| n.parse().unwrap();
    assert!(c.publishes(&jail("sshd")));
    assert!(!c.publishes(&jail("manual")), "manual bans stay local");
    assert!(
        !c.publishes(&jail("fleet")),
        "peers' bans are never published again"
    );
    assert!(!c.node.as_str().is_empty(), "the host name");
}

#[test]
fn everything_set() {
    let config = load_cluster(
        "url = [\"tls://a.example:4222\", \"tls://b.example:4222\"]\nuser = \"mail1\"\n\
         password_file = \"{dir}/secret\"\ntls_ca = \"{dir}/secret\"\nnode = \"mail1\"\n\
         stream = \"BANS\"\npublish = [\"sshd\", \"manual\"]\nmax_age = \"2h\"\n\
         min_prefix_v4 = 24\nmin_prefix_v6 = 48\npeer_rate = 10\npeer_burst = 100\n\
         share_lines = true\noutbox_max = 50",
        JAILS,
    )
    .unwrap();
    let c = config.cluster.unwrap();
    assert_eq!(c.urls.len(), 2);
    assert!(matches!(&c.auth, super::ClusterAuth::Password { user, .. } if user == "mail1"));
    assert_eq!(
        (c.node.as_str(), c.stream.as_str(), c.max_age),
        ("mail1", "BANS", 7200)
    );
    assert!(c.publishes(&"manual".parse().unwrap()));
    assert_eq!((c.limits.rate, c.limits.burst, c.outbox_max), (10, 100, 50));
}

#[test]
fn off() {
    assert!(
        load_cluster("enabled = false", JAILS)
            .unwrap()
            .cluster
            .is_none()
    );
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("nftjail.toml"), "[daemon]\n").unwrap();
    assert!(
        load(&dir.path().join("nftjail.toml"))
            .unwrap()
            .cluster
            .is_none()
    );
}

#[test]
fn errors_name_their_place() {
    let cases: &[(&str, &str, &str)] = &[
        ("", JAILS, "nftjail.toml:3:2: [cluster]: `url` is required"),
        (
            "url = \"http://x\"",
            JAILS,
            "nftjail.toml:4:7: url: \"http://x\" is not a nats://",
        ),
        (
            "url = \"nats://x\"\nnode = \"a.b\"",
            JAILS,
            "nftjail.toml:5:8: node: \"a.b\" is not a valid node name",
        ),
        (
            "url = \"nats://x\"\nstream = \"a b\"",
            JAILS,
            "nftjail.toml:5:10: stream: \"a b\" is not a stream name",
        ),
        (
            "url = \"nats://x\"\napply_to = \"nope\"",
            JAILS,
            "nftjail.toml:5:12: apply_to: no jail named \"nope\"",
        ),
        (
            "url = \"nats://x\"",
            "[fleet]\nenabled = false\n",
            "nftjail.toml:3:2: apply_to: jail fleet is not enabled",
        ),
        (
            "url = \"nats://x\"\npublish = [\"fleet\"]",
            JAILS,
            "publish: fleet receives the peers' bans",
        ),
        (
            "url = \"nats://x\"\ncreds_file = \"/no/such/file\"",
            JAILS,
            "nftjail.toml:5:14: creds_file: /no/such/file is not a readable file",
        ),
        (
            "url = \"nats://x\"\nuser = \"u\"",
            JAILS,
            "nftjail.toml:5:8: user: needs password_file too",
        ),
        (
            "url = \"nats://x\"\nmin_prefix_v4 = 33",
            JAILS,
            "nftjail.toml:5:17: min_prefix_v4: at most 32",
        ),
        (
            "url = \"nats://x\"\nmax_age = \"31d\"",
            JAILS,
            "max_age: between 1s and 30d",
        ),
        (
            "url = \"nats://x\"\npeer_rate = 0",
            JAILS,
            "peer_rate: at least 1",
        ),
        (
            "url = \"nats://x\"\nsubject = \"x\"",
            JAILS,
            "nftjail.toml:5:1: unknown key `subject`",
        ),
    ];
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|(cluster, jails, expected)| {
            let errors = load_cluster(cluster, jails).unwrap_err();
            (!errors.iter().any(|e| e.contains(expected)))
                .then(|| format!("{cluster:?}: {errors:?}"))
        })
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
}
