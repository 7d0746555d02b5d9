//! `nftjail demo`: the product at work in seconds, touching nothing of the host.
//!
//! Creates three private network namespaces — a server, an attacker and a legitimate user,
//! linked by veth pairs with documentation addresses — runs the real daemon in the server's
//! namespace with a temporary configuration, replays a short SSH password-guessing attack (and a
//! successful login), and shows each step: failures counted, the ban read back from the kernel
//! set, the attacker's connection dropped while the user still connects, `status`. Then it stops
//! the daemon and removes the namespaces and files (also those of an earlier, interrupted run).
//! Needs root and `ip` (iproute2); the host's own network and nftables are never touched.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Args;
use nix::sched::{CloneFlags, setns};

use super::CliError;
use crate::control::client::Client;
use crate::control::protocol::Request;
use crate::outln;
use nftjail_backend::{Backend, NetlinkBackend};

/// Arguments of `nftjail demo`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  sudo nftjail demo\n  sudo nftjail demo --keep   # then look at the daemon's log and state it prints the path of\n\n\
    Needs root (it creates network namespaces) and iproute2. Takes about ten seconds."
)]
pub struct DemoArgs {
    /// Keep the temporary directory (config, state, the daemon's log) for a look afterwards.
    #[arg(long)]
    pub keep: bool,
}

const SERVER: &str = "server";
const ATTACKER: &str = "attacker";
const USER: &str = "user";

/// Everything the demo creates; removed on drop, whatever happened.
struct Stage {
    prefix: String,
    dir: PathBuf,
    daemon: Option<Child>,
    keep: bool,
}

impl Stage {
    fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    fn ip(&self, args: &[&str]) -> Result<(), CliError> {
        let out = Command::new("ip")
            .args(args)
            .output()
            .map_err(|e| CliError::Io {
                what: "cannot run ip (install iproute2)".into(),
                source: e,
            })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(CliError::Refused(format!(
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }

    /// Links the server with `peer` through a veth pair and gives both sides an address.
    fn link(
        &self,
        index: u32,
        server_addr: &str,
        peer: &str,
        peer_addr: &str,
    ) -> Result<(), CliError> {
        let (server, peer) = (self.ns(SERVER), self.ns(peer));
        let ifname = format!("demo{index}");
        self.ip(&[
            "-n", &server, "link", "add", &ifname, "type", "veth", "peer", "name", &ifname,
            "netns", &peer,
        ])?;
        for (ns, addr) in [(&server, server_addr), (&peer, peer_addr)] {
            self.ip(&["-n", ns, "addr", "add", addr, "dev", &ifname])?;
            self.ip(&["-n", ns, "link", "set", &ifname, "up"])?;
        }
        Ok(())
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("nftjail.sock")
    }

    fn log_line(&self, line: &str) -> Result<(), CliError> {
        let mut f = OpenOptions::new()
            .append(true)
            .open(self.dir.join("auth.log"))
            .map_err(|e| io("auth.log", e))?;
        writeln!(
            f,
            "{} mail sshd-session[{}]: {line}",
            chrono::Local::now().format("%b %e %H:%M:%S"),
            std::process::id()
        )
        .map_err(|e| io("auth.log", e))
    }

    fn client(&self) -> Result<Client, CliError> {
        Client::connect(&self.socket()).map_err(CliError::Connect)
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = child.wait();
        }
        for role in [SERVER, ATTACKER, USER] {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(role)])
                .output();
        }
        if !self.keep {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

fn io(what: &str, source: std::io::Error) -> CliError {
    CliError::Io {
        what: what.to_string(),
        source,
    }
}

/// Runs `f` on a thread inside namespace `name` (sockets it opens live there).
fn inside<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> Result<T, CliError> {
    let path = format!("/run/netns/{name}");
    let file = File::open(&path).map_err(|e| io(&path, e))?;
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                setns(&file, CloneFlags::CLONE_NEWNET)
                    .map_err(|e| CliError::Refused(format!("cannot enter {name}: {e}")))?;
                Ok(f())
            })
            .join()
            .unwrap_or_else(|_| Err(CliError::Refused("a demo thread failed".into())))
    })
}

/// Removes namespaces left by demos that were interrupted (their process is gone).
fn sweep_leftovers() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix("nftjail-demo-") else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or("");
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", name]).output();
        }
    }
}

pub fn run(args: &DemoArgs) -> Result<(), CliError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(CliError::Refused(
            "the demo creates network namespaces: run it as root (sudo nftjail demo)".into(),
        ));
    }
    sweep_leftovers();
    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("nftjail-demo-{pid}"));
    fs::create_dir_all(&dir).map_err(|e| io("cannot create the demo directory", e))?;
    let mut stage = Stage {
        prefix: format!("nftjail-demo-{pid}"),
        dir,
        daemon: None,
        keep: args.keep,
    };

    outln!("nftjail demo: three private network namespaces; nothing of this host is touched.")?;
    for role in [SERVER, ATTACKER, USER] {
        stage.ip(&["netns", "add", &stage.ns(role)])?;
        stage.ip(&["-n", &stage.ns(role), "link", "set", "lo", "up"])?;
    }
    stage.link(0, "192.0.2.1/24", ATTACKER, "192.0.2.66/24")?;
    stage.link(1, "198.51.100.1/24", USER, "198.51.100.7/24")?;
    outln!("  server    192.0.2.1, 198.51.100.1   nftjail, and an \"sshd\" on port 22")?;
    outln!("  attacker  192.0.2.66")?;
    outln!("  user      198.51.100.7\n")?;

    let d = stage.dir.display().to_string();
    let config = format!(
        "[daemon]\nsocket = \"{d}/nftjail.sock\"\nstate_dir = \"{d}/state\"\n\n[defaults]\nignoreself = false\n"
    );
    let jail = format!(
        "# the shipped sshd jail, on a demo log\n[sshd]\nenabled = true\nfilter = \"sshd\"\nlogpath = \"{d}/auth.log\"\nport = [\"ssh\"]\nmaxretry = 3\nfindtime = \"10m\"\nbantime = \"10m\"\n"
    );
    fs::create_dir_all(stage.dir.join("jail.d")).map_err(|e| io("jail.d", e))?;
    fs::write(stage.dir.join("nftjail.toml"), config).map_err(|e| io("nftjail.toml", e))?;
    fs::write(stage.dir.join("jail.d/sshd.toml"), jail).map_err(|e| io("jail.d/sshd.toml", e))?;
    fs::write(stage.dir.join("auth.log"), "").map_err(|e| io("auth.log", e))?;

    let exe = std::env::current_exe().map_err(|e| io("cannot find the nftjail binary", e))?;
    let log = File::create(stage.dir.join("daemon.log")).map_err(|e| io("daemon.log", e))?;
    let child = Command::new("ip")
        .args(["netns", "exec", &stage.ns(SERVER)])
        .arg(&exe)
        .arg("run")
        .arg("--config")
        .arg(stage.dir.join("nftjail.toml"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| io("cannot start the daemon", e))?;
    stage.daemon = Some(child);
    let started = Instant::now();
    while stage
        .client()
        .and_then(|mut c| c.request(&Request::Ping).map_err(CliError::Connect))
        .is_err()
    {
        if started.elapsed() > Duration::from_secs(10) {
            let log = fs::read_to_string(stage.dir.join("daemon.log")).unwrap_or_default();
            return Err(CliError::Refused(format!(
                "the daemon did not start:\n{log}"
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    outln!(
        "[1] nftjail runs in the server's namespace (started in {} ms), watching auth.log.",
        started.elapsed().as_millis()
    )?;
    let _listener = inside(&stage.ns(SERVER), || TcpListener::bind("0.0.0.0:22"))?
        .map_err(|e| io("cannot listen on port 22", e))?;

    stage.log_line(
        "Accepted publickey for alice from 198.51.100.7 port 50122 ssh2: ED25519 SHA256:demo",
    )?;
    outln!("[2] alice logs in from 198.51.100.7: a success, nothing is counted.")?;
    outln!("[3] the attacker guesses root's password (maxretry = 3):")?;
    let mut third_line_at = Instant::now();
    for n in 1..=3 {
        std::thread::sleep(Duration::from_millis(400));
        third_line_at = Instant::now();
        stage.log_line(&format!(
            "Failed password for root from 192.0.2.66 port {} ssh2",
            50_000 + n
        ))?;
        if n < 3 {
            let seen = wait_for(|| failures(&stage).is_some_and(|f| f >= n));
            outln!(
                "      Failed password for root from 192.0.2.66   → failures counted: {}",
                if seen { n.to_string() } else { "?".into() }
            )?;
        }
    }
    // The ban, read back from the kernel over netlink (the same way the daemon writes it).
    let server = stage.ns(SERVER);
    let element = inside(&server, || -> Option<(String, Duration)> {
        let mut backend = NetlinkBackend::open("nftjail").ok()?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(list) = backend.list()
                && let Some(e) = list
                    .into_iter()
                    .find(|e| e.target.to_string() == "192.0.2.66")
            {
                let latency = third_line_at.elapsed();
                let timeout = e.timeout.map_or("none".into(), |t| {
                    nftjail_core::duration::format_seconds(t.as_secs())
                });
                return Some((
                    format!("{} in set {}_v4, timeout {timeout}", e.target, e.jail),
                    latency,
                ));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        None
    })?;
    match element {
        Some((text, latency)) => {
            outln!("      Failed password for root from 192.0.2.66   → banned")?;
            outln!(
                "[4] in the kernel {} ms after the third line: {text}",
                latency.as_millis()
            )?;
        }
        None => {
            return Err(CliError::Refused(
                "the ban did not reach the kernel set".into(),
            ));
        }
    }

    outln!("[5] connections to port 22:")?;
    let attacker = inside(&stage.ns(ATTACKER), || connect("192.0.2.1:22"))?;
    let user = inside(&stage.ns(USER), || connect("198.51.100.1:22"))?;
    outln!(
        "      attacker 192.0.2.66   → 192.0.2.1:22     {}",
        if attacker {
            "connected (unexpected!)"
        } else {
            "dropped: no answer within 1 s"
        }
    )?;
    outln!(
        "      user     198.51.100.7 → 198.51.100.1:22  {}",
        if user {
            "connected"
        } else {
            "no answer (unexpected!)"
        }
    )?;

    outln!("[6] nftjail status sshd:")?;
    let status = Command::new(&exe)
        .arg("--socket")
        .arg(stage.socket())
        .args(["status", "sshd"])
        .output()
        .map_err(|e| io("status", e))?;
    for line in String::from_utf8_lossy(&status.stdout).lines() {
        outln!("      {line}")?;
    }
    if args.keep {
        outln!(
            "\nThe demo directory stays: {} (config, state, daemon.log).",
            stage.dir.display()
        )?;
    }
    drop(stage);
    outln!(
        "\nCleaned up: daemon stopped, namespaces removed. Next: sudo .ci/run (the tests), or see README.md to install."
    )?;
    if attacker || !user {
        return Err(CliError::Refused(
            "the demo did not behave as expected".into(),
        ));
    }
    Ok(())
}

/// The failures the jail has counted.
fn failures(stage: &Stage) -> Option<u64> {
    let reply = stage
        .client()
        .ok()?
        .request(&Request::Status {
            jail: Some("sshd".into()),
        })
        .ok()?;
    reply.jail.map(|j| j.stats.total_failed)
}

fn wait_for(cond: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

fn connect(to: &str) -> bool {
    let to: SocketAddr = to.parse().expect("invariant: literal address");
    TcpStream::connect_timeout(&to, Duration::from_secs(1)).is_ok()
}
