//! A running `nftjail run` for end-to-end tests: its own temporary directory (config, jail.d,
//! state, socket, logs) and its own network namespace, started as a real process.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use crate::netns::Netns;

pub const BIN: &str = env!("CARGO_BIN_EXE_nftjail");
pub const TABLE: &str = "nftjail";

/// A daemon under test.
pub struct Daemon {
    pub ns: Netns,
    pub dir: tempfile::TempDir,
    /// Extra environment of the daemon process.
    pub env: Vec<(String, String)>,
    child: Option<Child>,
}

impl Daemon {
    /// Writes `nftjail.toml` (socket and state in the temp dir, plus `main_extra`) and
    /// `jail.d/test.toml` (`jails`, where `{dir}` stands for the temp dir), then starts the
    /// daemon in a fresh namespace (panics when namespaces are unavailable: see [`Netns::new`]).
    pub fn start(tag: &str, main_extra: &str, jails: &str) -> Daemon {
        let mut d = Daemon::create(tag, main_extra, jails);
        d.spawn();
        d
    }

    /// Like `start`, without starting the process.
    pub fn create(tag: &str, main_extra: &str, jails: &str) -> Daemon {
        let ns = Netns::new(tag);
        let dir = tempfile::tempdir().expect("temp dir");
        let d = Daemon {
            ns,
            dir,
            env: Vec::new(),
            child: None,
        };
        d.write_config(main_extra, jails);
        d
    }

    /// Writes the config; `main_extra` may begin with a `[daemon]` table whose keys join the
    /// harness's own `[daemon]` (socket and state in the temp dir).
    pub fn write_config(&self, main_extra: &str, jails: &str) {
        let dir = self.dir.path().display().to_string();
        let (daemon_extra, rest) = match main_extra.strip_prefix("[daemon]\n") {
            Some(body) => body.split_at(body.find("\n[").map_or(body.len(), |i| i + 1)),
            None => ("", main_extra),
        };
        let main = format!(
            "[daemon]\nsocket = \"{dir}/nftjail.sock\"\nstate_dir = \"{dir}/state\"\nloglevel = \"debug\"\n{daemon_extra}\n{}\n",
            rest.replace("{dir}", &dir)
        );
        fs::write(self.path("nftjail.toml"), main).unwrap();
        fs::create_dir_all(self.path("jail.d")).unwrap();
        fs::write(self.path("jail.d/test.toml"), jails.replace("{dir}", &dir)).unwrap();
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn socket(&self) -> PathBuf {
        self.path("nftjail.sock")
    }

    /// Starts the process and waits until it answers on its socket.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path("daemon.log"))
            .unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", self.ns.name(), BIN, "run", "--config"])
            .arg(self.path("nftjail.toml"))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start nftjail run");
        self.child = Some(child);
        self.wait_until("the daemon answers on its socket", || {
            self.cli(&["status"]).status.success()
        });
    }

    /// `nftjail --socket SOCKET ARGS…` (the client needs no namespace: the socket is a file).
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("--socket")
            .arg(self.socket())
            .args(args)
            .output()
            .expect("run the nftjail client")
    }

    /// Like `cli`, asserting success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "nftjail {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The daemon's own log so far (for failure messages).
    pub fn log(&self) -> String {
        fs::read_to_string(self.path("daemon.log")).unwrap_or_default()
    }

    /// Polls `cond` every 20 ms for up to 15 s; panics with the daemon's log otherwise.
    pub fn wait_until(&self, what: &str, cond: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !cond() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\n--- daemon log ---\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        // `ip netns exec` execs the daemon: the child's pid is the daemon's.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = child.wait();
    }

    /// SIGTERM, and the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        child.wait().unwrap()
    }

    /// The daemon's process id (`ip netns exec` execs the daemon: the child's pid is its pid).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// The daemon's resident memory (VmRSS of /proc/PID/status), in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// Sends a signal to the running daemon.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let child = self.child.as_ref().expect("running");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
    }

    /// Elements of one of the table's sets, as `nft -j` prints them (`{"elem": {…}}` objects or
    /// plain values), empty when the set or table does not exist.
    pub fn elements(&self, set: &str) -> Vec<serde_json::Value> {
        let out = self
            .ns
            .exec("nft", &["-j", "list", "set", "inet", TABLE, set]);
        if !out.status.success() {
            return Vec::new();
        }
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        json["nftables"]
            .as_array()
            .and_then(|items| {
                items
                    .iter()
                    .find_map(|i| i["set"]["elem"].as_array().cloned())
            })
            .unwrap_or_default()
    }

    /// The addresses (or prefixes, as `a.b.c.d/len`) in a set.
    pub fn members(&self, set: &str) -> Vec<String> {
        let mut out: Vec<String> = self.elements(set).iter().map(element_text).collect();
        out.sort();
        out
    }

    /// `(timeout, expires)` in seconds of one member of a set.
    pub fn timing(&self, set: &str, member: &str) -> Option<(Option<u64>, Option<u64>)> {
        self.elements(set)
            .iter()
            .find(|e| element_text(e) == member)
            .map(|e| {
                let elem = &e["elem"];
                (elem["timeout"].as_u64(), elem["expires"].as_u64())
            })
    }

    /// Appends lines to a file of the temp dir.
    pub fn append(&self, rel: &str, lines: &[String]) {
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path(rel))
            .unwrap();
        for line in lines {
            writeln!(f, "{line}").unwrap();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A member as text: `192.0.2.1`, or `198.51.100.0/24` for a prefix.
pub fn element_text(e: &serde_json::Value) -> String {
    let value = if e["elem"].is_object() {
        &e["elem"]["val"]
    } else {
        e
    };
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Object(o) if o.contains_key("prefix") => {
            format!(
                "{}/{}",
                o["prefix"]["addr"].as_str().unwrap_or("?"),
                o["prefix"]["len"]
            )
        }
        other => other.to_string(),
    }
}

/// A syslog line stamped now, as rsyslog writes it to auth.log.
pub fn syslog(ident: &str, pid: u32, message: &str) -> String {
    format!(
        "{} mail {ident}[{pid}]: {message}",
        chrono::Local::now().format("%b %e %H:%M:%S")
    )
}

/// An sshd password failure of `addr` stamped now.
pub fn ssh_failure(addr: &str, pid: u32) -> String {
    syslog(
        "sshd-session",
        pid,
        &format!(
            "Failed password for root from {addr} port {} ssh2",
            40_000 + pid % 20_000
        ),
    )
}

/// The file jail most tests use: sshd on `{dir}/auth.log`, port 22, three failures.
pub const SSHD_JAIL: &str = "[sshd]\nenabled = true\nfilter = \"sshd\"\nlogpath = \"{dir}/auth.log\"\nport = [\"ssh\"]\nmaxretry = 3\nfindtime = \"10m\"\nbantime = \"1h\"\n";

/// Waits up to 15 s for `cond` (for tests that have no `Daemon` at hand).
pub fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
