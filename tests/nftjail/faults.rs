//! The daemon in-process with faults injected below it: a backend that panics or refuses in the
//! middle of a batch, a state log whose fsync fails. Each test checks that the kernel (here the
//! in-memory backend), the state and `banned` agree afterwards — or that the daemon stops.

use std::sync::Arc;
use std::time::Duration;

use nftjail::control::client::Client;
use nftjail::control::protocol::{Reply, Request};
use nftjail::daemon::{self, DaemonError, Options};
use nftjail::state::{Faults, StateStore};
use nftjail_backend::{Backend, BackendFaults, FaultyBackend, MemoryBackend};
use tokio_util::sync::CancellationToken;

/// A configuration in a temp dir: one manual jail, socket and state beside it.
fn config(dir: &std::path::Path) -> nftjail::config::Config {
    let d = dir.display();
    std::fs::write(
        dir.join("nftjail.toml"),
        format!("[daemon]\nsocket = \"{d}/s.sock\"\nstate_dir = \"{d}/state\"\n[defaults]\nignoreself = false\n"),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("jail.d")).unwrap();
    std::fs::write(
        dir.join("jail.d/m.toml"),
        "[manual]\nenabled = true\nport = [\"all\"]\nbantime = \"1h\"\n",
    )
    .unwrap();
    nftjail::config::load(&dir.join("nftjail.toml")).unwrap()
}

pub(crate) struct Running {
    pub shutdown: CancellationToken,
    pub done: std::sync::mpsc::Receiver<Result<(), DaemonError>>,
    pub socket: std::path::PathBuf,
}

/// Starts the daemon on its own runtime thread.
pub(crate) fn start(
    dir: &std::path::Path,
    backend: Box<dyn Backend>,
    state_faults: Arc<Faults>,
) -> Running {
    let config = config(dir);
    let socket = config.daemon.socket.clone();
    let shutdown = CancellationToken::new();
    let (tx, done) = std::sync::mpsc::channel();
    let token = shutdown.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (_reload_tx, reload) = tokio::sync::mpsc::channel(1);
        let options = Options {
            state_faults,
            ..Options::default()
        };
        let result = runtime.block_on(daemon::run(config, backend, options, token, reload));
        let _ = tx.send(result);
    });
    crate::daemon::eventually("the socket", || socket.exists());
    Running {
        shutdown,
        done,
        socket,
    }
}

pub(crate) fn ask(socket: &std::path::Path, request: &Request) -> Reply {
    Client::connect(socket).unwrap().request(request).unwrap()
}

fn ban(socket: &std::path::Path, targets: &[&str]) -> Reply {
    ask(
        socket,
        &Request::Ban {
            jail: "manual".into(),
            targets: targets.iter().map(|t| t.to_string()).collect(),
            length: None,
            stream: false,
        },
    )
}

fn banned(socket: &std::path::Path) -> Vec<String> {
    let mut b: Vec<String> = ask(socket, &Request::Banned { jail: None })
        .bans
        .unwrap()
        .into_iter()
        .map(|b| b.target)
        .collect();
    b.sort();
    b
}

fn saved(dir: &std::path::Path) -> Vec<String> {
    // A dead worker thread lets go of the state's lock as it finishes unwinding.
    crate::daemon::eventually("the state unlocked", || {
        StateStore::open(&dir.join("state")).is_ok()
    });
    let (_, r) = StateStore::open(&dir.join("state")).unwrap();
    let mut b: Vec<String> = r.bans.keys().map(|(_, t)| t.to_string()).collect();
    b.sort();
    b
}

fn memory() -> MemoryBackend {
    MemoryBackend::new("nftjail")
}

/// Regression: a panicking banner thread was invisible: orders went nowhere and the daemon
/// kept running. Now it stops with an error (exit 70 under `nftjail run`; systemd restarts it).
#[test]
fn a_banner_that_dies_stops_the_daemon_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(BackendFaults::new());
    let backend = FaultyBackend::new(Box::new(memory()), faults.clone());
    let d = start(dir.path(), Box::new(backend), Arc::default());
    assert!(ban(&d.socket, &["203.0.113.1"]).ok);
    faults.panic_next();
    // An error reply, or the connection closed by the stopping daemon: never "ok".
    let reply = Client::connect(&d.socket).unwrap().request(&Request::Ban {
        jail: "manual".into(),
        targets: vec!["203.0.113.2".into()],
        length: None,
        stream: false,
    });
    assert!(!matches!(&reply, Ok(r) if r.ok), "{reply:?}");
    let result = d
        .done
        .recv_timeout(Duration::from_secs(10))
        .expect("the daemon stopped");
    assert!(
        matches!(result, Err(DaemonError::Internal(_))),
        "{result:?}"
    );
    assert_eq!(
        saved(dir.path()),
        ["203.0.113.1"],
        "only what was applied is saved"
    );
    d.shutdown.cancel();
}

/// A kernel error in the middle of a batch: the changes before it are in, the refused one is
/// not, the ones after it are retried; kernel, state and `banned` agree.
#[test]
fn a_kernel_error_mid_batch_leaves_kernel_state_and_banned_in_agreement() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(BackendFaults::new());
    let shared = Arc::new(std::sync::Mutex::new(memory()));
    let backend = FaultyBackend::new(Box::new(Shared(shared.clone())), faults.clone());
    let d = start(dir.path(), Box::new(backend), Arc::default());
    faults.refuse("203.0.113.3".parse().unwrap());
    let reply = ban(
        &d.socket,
        &["203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4"],
    );
    assert!(!reply.ok && reply.banned == Some(3), "{reply:?}");
    let kernel: Vec<String> = {
        let mut k: Vec<String> = shared
            .lock()
            .unwrap()
            .list()
            .unwrap()
            .into_iter()
            .map(|e| e.target.to_string())
            .collect();
        k.sort();
        k
    };
    let want = ["203.0.113.1", "203.0.113.2", "203.0.113.4"];
    assert_eq!(kernel, want);
    assert_eq!(banned(&d.socket), want);
    d.shutdown.cancel();
    d.done
        .recv_timeout(Duration::from_secs(10))
        .unwrap()
        .unwrap();
    assert_eq!(saved(dir.path()), want);
}

/// A failed fsync: the ban is undone in the kernel and reported failed; nothing is accepted
/// until the log is rewritten (the core does that at once); then bans work again.
#[test]
fn a_failed_fsync_is_undone_and_the_log_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let state = Arc::new(Faults::new());
    let shared = Arc::new(std::sync::Mutex::new(memory()));
    let d = start(dir.path(), Box::new(Shared(shared.clone())), state.clone());
    assert!(ban(&d.socket, &["203.0.113.1"]).ok);
    state.fail_fsyncs(1);
    let reply = ban(&d.socket, &["203.0.113.2"]);
    assert!(!reply.ok, "{reply:?}");
    assert_eq!(banned(&d.socket), ["203.0.113.1"]);
    let in_kernel = |t: &str| {
        shared
            .lock()
            .unwrap()
            .list()
            .unwrap()
            .iter()
            .any(|e| e.target.to_string() == t)
    };
    assert!(!in_kernel("203.0.113.2"), "undone");
    crate::daemon::eventually("bans accepted again after the rewrite", || {
        ban(&d.socket, &["203.0.113.3"]).ok
    });
    assert!(in_kernel("203.0.113.3"));
    d.shutdown.cancel();
    d.done
        .recv_timeout(Duration::from_secs(10))
        .unwrap()
        .unwrap();
    assert_eq!(saved(dir.path()), ["203.0.113.1", "203.0.113.3"]);
}

/// The durability rule for the firewall: a rule whose record cannot be saved is taken back out
/// of the kernel and reported failed; `rule list`, the kernel and the state agree.
#[test]
fn a_firewall_rule_that_cannot_be_saved_is_taken_back_out_of_the_kernel() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("firewall.d")).unwrap();
    std::fs::write(
        dir.path().join("firewall.d/ssh.toml"),
        "[[rule]]\nprotocol = \"tcp\"\nport = 22\naction = \"accept\"\nprotected = true\n",
    )
    .unwrap();
    let state = Arc::new(Faults::new());
    let shared = Arc::new(std::sync::Mutex::new(memory()));
    let d = start(dir.path(), Box::new(Shared(shared.clone())), state.clone());
    let enable = Request::FirewallEnable {
        confirm_within: None,
        session: None,
    };
    assert!(ask(&d.socket, &enable).ok);
    let add = |port: &str| Request::RuleAdd {
        chain: None,
        protocol: "tcp".into(),
        port: port.into(),
        source: None,
        action: "accept".into(),
        comment: String::new(),
    };
    // The comments of the kernel's input rules that are not the host's own.
    let kernel = || -> Vec<String> {
        let backend = shared.lock().unwrap();
        let chains = backend.firewall_chains();
        chains[0]
            .rules
            .iter()
            .map(|r| r.comment.clone())
            .filter(|c| c.starts_with("rule"))
            .collect()
    };
    assert_eq!(kernel(), ["rule 1 [protected]"]);
    state.fail_fsyncs(1);
    let reply = ask(&d.socket, &add("8080"));
    assert!(!reply.ok, "{reply:?}");
    assert!(reply.error.unwrap().contains("could not be saved"));
    assert_eq!(kernel(), ["rule 1 [protected]"], "undone in the kernel");
    let listed = ask(&d.socket, &Request::Rules).rules.unwrap();
    assert_eq!(listed.len(), 1, "not listed either");
    // Once the log is rewritten, rules are taken again. The refused rule was never saved nor
    // listed, so its id was never seen: the next rule takes it.
    crate::daemon::eventually("rules accepted again after the rewrite", || {
        ask(&d.socket, &add("8443")).ok
    });
    assert_eq!(kernel(), ["rule 1 [protected]", "rule 2"]);
    d.shutdown.cancel();
    d.done
        .recv_timeout(Duration::from_secs(10))
        .unwrap()
        .unwrap();
    // The worker thread lets go of the state's lock as it finishes.
    crate::daemon::eventually("the state unlocked", || {
        StateStore::open(&dir.path().join("state")).is_ok()
    });
    let (_, recovered) = StateStore::open(&dir.path().join("state")).unwrap();
    let saved: Vec<String> = recovered
        .firewall
        .rules
        .values()
        .map(|(rule, _)| rule.to_string())
        .collect();
    assert_eq!(
        saved,
        [
            "input tcp port 22 from any accept",
            "input tcp port 8443 from any accept"
        ]
    );
}

/// A memory backend shared with the test, which reads the "kernel" while the daemon runs.
pub(crate) struct Shared(pub Arc<std::sync::Mutex<MemoryBackend>>);

impl Backend for Shared {
    fn apply_layout(
        &mut self,
        layout: &nftjail_backend::Layout,
    ) -> Result<(), nftjail_backend::BackendError> {
        self.0.lock().unwrap().apply_layout(layout)
    }
    fn apply(
        &mut self,
        changes: &[nftjail_backend::Change],
    ) -> Result<(), nftjail_backend::ApplyError> {
        self.0.lock().unwrap().apply(changes)
    }
    fn apply_firewall(
        &mut self,
        firewall: &nftjail_backend::FirewallLayout,
    ) -> Result<nftjail_backend::FirewallReport, nftjail_backend::BackendError> {
        self.0.lock().unwrap().apply_firewall(firewall)
    }
    fn list(&mut self) -> Result<Vec<nftjail_backend::Element>, nftjail_backend::BackendError> {
        self.0.lock().unwrap().list()
    }
    fn remove_table(&mut self) -> Result<(), nftjail_backend::BackendError> {
        self.0.lock().unwrap().remove_table()
    }
}
