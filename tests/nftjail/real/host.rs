//! A server host for the real daemons: a private root (see `private-root`) inside the network
//! namespace of the nftjail under test, with its own rsyslogd writing Debian 12's default
//! files and format (`/var/log/auth.log`, `mail.log`, `syslog`, RFC 3339 stamps) into
//! `WORK/log`, and the daemons a test starts beside it.
//!
//! Receives: the package sets, the test's configuration files (under `WORK/etc`, laid over
//! `/etc`) and the shell lines that start its daemons. Emits: the log directory and the running
//! daemons. Never touches the host: every mount lives in the host's own mount namespace, every
//! process in its own PID namespace, and dropping the `Host` ends them all (its init is killed).

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::root::{self, Set};
use crate::netns::Netns;

/// System users and groups the daemons' maintainer scripts would create (name, id, home); each is
/// added to the private root's `/etc/passwd` and `/etc/group` unless the host has it.
const USERS: &[(&str, u32, &str)] = &[
    ("sshd", 64_900, "/run/sshd"),
    ("postfix", 64_901, "/var/spool/postfix"),
    ("dovecot", 64_902, "/usr/lib/dovecot"),
    ("dovenull", 64_903, "/nonexistent"),
    ("Debian-exim", 64_904, "/var/spool/exim4"),
    ("proftpd", 64_905, "/run/proftpd"),
    ("ftp", 64_906, "/srv/ftp"),
    ("www-data", 33, "/var/www"),
];
/// Groups without a user of the same name.
const GROUPS: &[(&str, u32)] = &[("postdrop", 64_910), ("adm", 4), ("nogroup", 65_534)];

/// The host name the daemons log under.
pub const HOSTNAME: &str = "mail";

/// A private root with rsyslogd and the test's daemons, in a network namespace.
pub struct Host {
    work: PathBuf,
    sets: Vec<Set>,
    child: Option<Child>,
}

impl Host {
    /// Prepares `work` (created if needed): `etc/` with the system users, a resolver that
    /// answers nothing (no lookup leaves the namespace), and Debian's `rsyslog.conf` without
    /// `imklog` (the kernel's log is the host's). `Set::Rsyslog` is always laid in.
    pub fn new(work: &Path, sets: &[Set]) -> Host {
        let mut all = vec![Set::Rsyslog];
        all.extend(sets.iter().copied().filter(|s| *s != Set::Rsyslog));
        let host = Host {
            work: work.to_path_buf(),
            sets: all,
            child: None,
        };
        fs::create_dir_all(host.work.join("etc")).unwrap();
        fs::create_dir_all(host.work.join("log")).unwrap();
        host.write_users();
        host.etc("resolv.conf", "nameserver 127.0.0.1\n");
        let hosts = fs::read_to_string("/etc/hosts").unwrap_or_default();
        host.etc(
            "hosts",
            &format!("{hosts}\n192.0.2.1 {HOSTNAME}.example.org {HOSTNAME}\n"),
        );
        let rsyslog = fs::read_to_string(Set::Rsyslog.tree().join("etc/rsyslog.conf"))
            .expect("rsyslog.conf in the rsyslog tree");
        let rsyslog: String = rsyslog
            .lines()
            .filter(|l| !l.contains("imklog"))
            .map(|l| format!("{l}\n"))
            .collect();
        host.etc("rsyslog.conf", &rsyslog);
        host
    }

    /// Writes `WORK/etc/REL` (seen as `/etc/REL` inside), creating its folders.
    pub fn etc(&self, rel: &str, contents: &str) {
        let path = self.work.join("etc").join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, contents).unwrap();
    }

    /// Copies a file of a set's tree (a path as the package installs it, e.g.
    /// `usr/share/postfix/master.cf.dist`) to `WORK/etc/REL`, as its maintainer script would.
    pub fn etc_from_tree(&self, set: Set, path: &str, rel: &str) -> String {
        let text = fs::read_to_string(set.tree().join(path))
            .unwrap_or_else(|e| panic!("{path} in the {} tree: {e}", set.name()));
        self.etc(rel, &text);
        text
    }

    /// Copies every file of a folder of a set's tree to `WORK/etc/REL`.
    pub fn etc_dir_from_tree(&self, set: Set, dir: &str, rel: &str) {
        let entries = fs::read_dir(set.tree().join(dir))
            .unwrap_or_else(|e| panic!("{dir} in the {} tree: {e}", set.name()));
        for entry in entries {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            self.etc_from_tree(set, &format!("{dir}/{name}"), &format!("{rel}/{name}"));
        }
    }

    /// Where the daemons' logs are (`/var/log` inside).
    pub fn log_dir(&self) -> PathBuf {
        self.work.join("log")
    }

    /// Starts the private root in `ns`: rsyslogd, then `script` (shell lines, run by bash with
    /// `set -eu` inside the root), then waits until every TCP port of `ports` accepts on
    /// 127.0.0.1. Panics with the script's output and the logs when a daemon does not come up.
    pub fn start(&mut self, ns: &Netns, script: &str, ports: &[u16]) {
        assert!(self.child.is_none(), "already started");
        let start = format!(
            "set -eu\nhostname {HOSTNAME}\nrsyslogd -f /etc/rsyslog.conf\n{script}\necho '--- started'\nexec sleep infinity\n"
        );
        fs::write(self.work.join("start"), start).unwrap();
        let out = fs::File::create(self.work.join("out")).unwrap();
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", ns.name()])
            .args(["unshare", "--mount", "--pid", "--fork", "--kill-child"])
            .args(["--mount-proc", "--uts", "--propagation", "private"])
            .arg(root::scripts().join("private-root"))
            .arg(&self.work);
        for set in &self.sets {
            command.arg(set.tree());
        }
        command
            .args(["--", "/bin/bash"])
            .arg(self.work.join("start"));
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start the private root (ip netns exec … unshare)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut waiting: Vec<u16> = ports.to_vec();
        while !waiting.is_empty() || !self.output().contains("--- started") {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "the private root stopped ({status}) before its daemons were up\n{}",
                    self.report()
                );
            }
            assert!(
                Instant::now() < deadline,
                "ports {waiting:?} still closed after 60 s\n{}",
                self.report()
            );
            waiting.retain(|port| {
                let addr = SocketAddr::from(([127, 0, 0, 1], *port));
                !ns.enter(|| TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok())
            });
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What the start script printed.
    pub fn output(&self) -> String {
        fs::read_to_string(self.work.join("out")).unwrap_or_default()
    }

    /// The start script's output and every log file, for failure messages.
    pub fn report(&self) -> String {
        let mut text = format!("--- start script output\n{}", self.output());
        for file in self.log_files() {
            let body = fs::read_to_string(self.log_dir().join(&file)).unwrap_or_default();
            text.push_str(&format!("--- /var/log/{}\n{body}", file.display()));
        }
        text
    }

    /// Every file under the log directory, relative to it, sorted.
    pub fn log_files(&self) -> Vec<PathBuf> {
        fn walk(base: &Path, rel: &Path, out: &mut Vec<PathBuf>) {
            for entry in fs::read_dir(base.join(rel)).into_iter().flatten().flatten() {
                let rel = rel.join(entry.file_name());
                match entry.file_type() {
                    Ok(t) if t.is_dir() => walk(base, &rel, out),
                    Ok(t) if t.is_file() => out.push(rel),
                    _ => {}
                }
            }
        }
        let mut files = Vec::new();
        walk(&self.log_dir(), Path::new(""), &mut files);
        files.sort();
        files
    }

    fn write_users(&self) {
        let passwd = fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
        let group = fs::read_to_string("/etc/group").expect("read /etc/group");
        let shadow = fs::read_to_string("/etc/shadow").unwrap_or_default();
        let has = |file: &str, name: &str| file.lines().any(|l| l.split(':').next() == Some(name));
        let (mut passwd_out, mut group_out, mut shadow_out) =
            (passwd.clone(), group.clone(), shadow.clone());
        for (name, id, home) in USERS {
            if !has(&passwd, name) {
                passwd_out.push_str(&format!("{name}:x:{id}:{id}::{home}:/usr/sbin/nologin\n"));
                shadow_out.push_str(&format!("{name}:*:20000:0:99999:7:::\n"));
            }
            if !has(&group, name) {
                group_out.push_str(&format!("{name}:x:{id}:\n"));
            }
        }
        for (name, id) in GROUPS {
            if !has(&group, name) {
                group_out.push_str(&format!("{name}:x:{id}:\n"));
            }
        }
        self.etc("passwd", &passwd_out);
        self.etc("group", &group_out);
        self.etc("shadow", &shadow_out);
    }
}

impl Drop for Host {
    /// Kills the root's init (`unshare --kill-child` passes the kill on; the PID namespace dies
    /// with its init) and keeps the logs in `target/tmp/real-logs/NAME/` for a look afterwards
    /// (and for the filters' corpora).
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let name = self
            .work
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        if let Some(name) = name {
            let keep = Path::new(env!("CARGO_TARGET_TMPDIR"))
                .join("real-logs")
                .join(name);
            let _ = fs::remove_dir_all(&keep);
            for file in self.log_files() {
                let to = keep.join(&file);
                if let Some(parent) = to.parent() {
                    let _ = fs::create_dir_all(parent);
                }
                let _ = fs::copy(self.log_dir().join(&file), to);
            }
        }
    }
}
