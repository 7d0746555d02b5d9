//! One test's world: the nftjail under test in its network namespace, the server host (private
//! root with rsyslogd and the real daemons) in that same namespace, and the attackers' namespace
//! linked to it.
//!
//! The jails are the shipped ones (`jails/NAME.toml`, copied to `jail.d/10-NAME.toml` as the
//! packages install them), changed only as an administrator would in `jail.d/99-local.toml`:
//! enabled, pointed at the files the private rsyslogd writes, with a smaller maxretry.
//!
//! Receives: package sets, jail names, the local jail overrides, attacker addresses. Emits:
//! bans to look at and ports to probe. Never bans or probes anything outside its namespaces.

use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::thread;

use super::attacker::Attackers;
use super::host::Host;
use super::logins::Login;
use super::root::Set;
use crate::daemon::Daemon;

/// Fields drop in order: the host's daemons first (their logs are kept), nftjail and its
/// temporary directory last.
pub struct Scene {
    pub host: Host,
    pub attackers: Attackers,
    pub nftjail: Daemon,
}

/// Starts Debian's sshd with a fresh host key.
const SSHD_START: &str = "ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
mkdir -p /run/sshd
/usr/sbin/sshd
";

impl Scene {
    /// Prepares everything without starting a process: `jails` are shipped jail names, `local`
    /// the body of `jail.d/99-local.toml` where `{log}` stands for the host's `/var/log`.
    pub fn new(tag: &str, sets: &[Set], jails: &[&str], local: &str, attackers: &[&str]) -> Scene {
        let nftjail = Daemon::create(tag, "", "");
        let host = Host::new(&nftjail.path(tag), sets);
        let jail_dir = nftjail.path("jail.d");
        fs::remove_file(jail_dir.join("test.toml")).unwrap();
        for jail in jails {
            let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("jails/{jail}.toml"));
            fs::copy(&shipped, jail_dir.join(format!("10-{jail}.toml")))
                .unwrap_or_else(|e| panic!("{}: {e}", shipped.display()));
        }
        let log = host.log_dir().display().to_string();
        fs::write(jail_dir.join("99-local.toml"), local.replace("{log}", &log)).unwrap();
        let attackers = Attackers::link(&nftjail.ns, attackers);
        Scene {
            host,
            attackers,
            nftjail,
        }
    }

    /// A host with sshd and one more daemon set started: `configure` prepares that daemon and
    /// gives its start script; the host waits for sshd's port and `ports`, then nftjail starts.
    pub fn beside_sshd(
        tag: &str,
        set: Set,
        jail: &str,
        local: &str,
        clients: &[&str],
        configure: impl FnOnce(&Scene) -> String,
        ports: &[u16],
    ) -> Scene {
        let mut scene = Scene::new(tag, &[Set::Ssh, set], &[jail], local, clients);
        scene
            .host
            .etc_from_tree(Set::Ssh, "usr/share/openssh/sshd_config", "ssh/sshd_config");
        let start = configure(&scene);
        let mut all = vec![22];
        all.extend_from_slice(ports);
        scene.start(&format!("{SSHD_START}{start}"), &all);
        scene
    }

    /// Starts the host's daemons (`script`, waiting for `ports`), then nftjail.
    pub fn start(&mut self, script: &str, ports: &[u16]) {
        self.host.start(&self.nftjail.ns, script, ports);
        self.nftjail.spawn();
    }

    /// `count` failed logins from `from` to `to`, on parallel connections.
    pub fn fail_logins(&self, login: Login, from: &str, to: SocketAddr, user: &str, count: usize) {
        let from = from.parse().unwrap();
        self.attackers.ns.enter(|| {
            thread::scope(|scope| {
                for i in 0..count {
                    scope.spawn(move || {
                        let stream =
                            Attackers::connect_from(from, to, std::time::Duration::from_secs(5))
                                .unwrap_or_else(|e| panic!("{login:?} from {from} to {to}: {e}"));
                        login.fail(stream, &format!("{user}{i}"), "Winter2026!")
                    });
                }
            })
        });
    }

    /// One failed login as `user` (one who exists, say) with a wrong password.
    pub fn fail_login_as(&self, login: Login, from: &str, to: SocketAddr, user: &str) {
        let from = from.parse().unwrap();
        self.attackers.ns.enter(|| {
            let stream = Attackers::connect_from(from, to, std::time::Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("{login:?} from {from} to {to}: {e}"));
            login.fail(stream, user, "Winter2026!")
        });
    }

    /// Waits until `address` is in `jail`'s set (v4 or v6), with every log in the message when
    /// it never comes.
    pub fn wait_banned(&self, jail: &str, address: &str) {
        let set = if address.contains(':') {
            format!("{jail}_v6")
        } else {
            format!("{jail}_v4")
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !self.nftjail.members(&set).iter().any(|m| m == address) {
            assert!(
                std::time::Instant::now() < deadline,
                "{address} not banned in {jail} within 30 s\n{}\n--- nftjail\n{}",
                self.host.report(),
                self.nftjail.log()
            );
            thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// The jails whose sets hold `address`, among `jails`.
    pub fn jails_of(&self, address: &str, jails: &[&str]) -> Vec<String> {
        let family = if address.contains(':') { "v6" } else { "v4" };
        jails
            .iter()
            .filter(|j| {
                self.nftjail
                    .members(&format!("{j}_{family}"))
                    .iter()
                    .any(|m| m == address)
            })
            .map(|j| j.to_string())
            .collect()
    }

    /// Probes every `(from, port, answers)` at once (a dropped port costs its timeout) and
    /// asserts each answers, or not, as expected, over IPv4 or IPv6 as `from` is.
    pub fn assert_ports(&self, probes: &[(&str, u16, bool)]) {
        let results: Vec<bool> = thread::scope(|scope| {
            let handles: Vec<_> = probes
                .iter()
                .map(|(from, port, _)| {
                    scope.spawn(move || {
                        let server = if from.contains(':') {
                            super::attacker::SERVER_V6
                        } else {
                            super::attacker::SERVER_V4
                        };
                        let to = SocketAddr::new(server.parse().unwrap(), *port);
                        self.attackers.answers(from, to)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let wrong: Vec<String> = probes
            .iter()
            .zip(&results)
            .filter(|((_, _, want), got)| want != *got)
            .map(|((from, port, want), _)| {
                format!(
                    "from {from} port {port} should {}",
                    if *want { "answer" } else { "be dropped" }
                )
            })
            .collect();
        assert!(
            wrong.is_empty(),
            "{}\n--- ruleset\n{}",
            wrong.join("\n"),
            self.nftjail.ns.nft_text(crate::daemon::TABLE)
        );
    }
}
