//! Private network namespaces for integration tests: create, enter, run commands, read nftables,
//! link two namespaces with a veth pair.
//!
//! Each [`Netns`] has a unique name (tag, process id, counter), so tests run in parallel; it is
//! deleted on drop. The tests that need one are `#[ignore = "needs root"]`: a plain `cargo test`
//! reports them as ignored, and `cargo test -- --include-ignored` (what CI runs, as root) runs
//! them. When namespaces cannot be created (not root, no `ip`), [`Netns::new`] panics with the
//! reason: a test that cannot run fails, it never passes without having run.

use std::ffi::OsStr;
use std::fs::File;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use nix::sched::{CloneFlags, setns};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A network namespace created with `ip netns add`, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// A fresh namespace with `lo` up; panics (with the reason) when namespaces are unavailable.
    pub fn new(tag: &str) -> Netns {
        let name = format!(
            "nfj-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let created = Command::new("ip").args(["netns", "add", &name]).output();
        let reason = match created {
            Ok(out) if out.status.success() => None,
            Ok(out) => Some(String::from_utf8_lossy(&out.stderr).trim().to_string()),
            Err(e) => Some(format!("cannot run ip: {e}")),
        };
        if let Some(reason) = reason {
            panic!(
                "network namespaces unavailable ({reason}): this test needs root, `ip` and `nft` \
                 (it is #[ignore]d by default; run it as root with --include-ignored)"
            );
        }
        let netns = Netns { name };
        netns.run("ip", &["link", "set", "lo", "up"]);
        netns
    }

    /// The namespace's name, as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `f` on a thread that entered this namespace (sockets it opens live there).
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
                    setns(&file, CloneFlags::CLONE_NEWNET)
                        .unwrap_or_else(|e| panic!("setns {path}: {e}"));
                    f()
                })
                .join()
                .expect("the closure run in the namespace panicked")
        })
    }

    /// Runs `cmd args` inside the namespace (`ip netns exec`).
    pub fn exec<S: AsRef<OsStr>>(&self, cmd: &str, args: &[S]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name, cmd])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("ip netns exec {} {cmd}: {e}", self.name))
    }

    /// Like [`Netns::exec`], panicking with stderr when the command fails.
    pub fn run(&self, cmd: &str, args: &[&str]) -> String {
        let out = self.exec(cmd, args);
        assert!(
            out.status.success(),
            "{cmd} {args:?} in {}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `nft -j list table inet TABLE` as JSON; `Value::Null` when the table does not exist.
    pub fn nft_json(&self, table: &str) -> serde_json::Value {
        let out = self.exec("nft", &["-j", "list", "table", "inet", table]);
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains("No such file or directory"),
                "nft -j list table inet {table}: {stderr}"
            );
            return serde_json::Value::Null;
        }
        serde_json::from_slice(&out.stdout).expect("nft -j prints JSON")
    }

    /// `nft list table inet TABLE` as text (for messages and the report).
    pub fn nft_text(&self, table: &str) -> String {
        self.run("nft", &["list", "table", "inet", table])
    }

    /// Links `a` and `b` with a veth pair (`veth-<index>` on both sides) and gives each side its
    /// addresses (CIDR notation; IPv6 without duplicate address detection).
    pub fn link(a: &Netns, a_addrs: &[&str], b: &Netns, b_addrs: &[&str], index: u32) {
        let ifname = format!("veth-{index}");
        a.run(
            "ip",
            &[
                "link", "add", &ifname, "type", "veth", "peer", "name", &ifname, "netns", &b.name,
            ],
        );
        for (ns, addrs) in [(a, a_addrs), (b, b_addrs)] {
            for addr in addrs {
                let mut args = vec!["addr", "add", addr, "dev", &ifname];
                if addr.contains(':') {
                    args.push("nodad");
                }
                ns.run("ip", &args);
            }
            ns.run("ip", &["link", "set", &ifname, "up"]);
        }
        // The kernel brings a link's carrier and queue up asynchronously (linkwatch may wait
        // up to a second, longer on a loaded machine): until then packets are dropped, and a
        // lost first ARP request is only retried a second later.
        for ns in [a, b] {
            crate::daemon::eventually(&format!("{ifname} up in {}", ns.name), || {
                ns.run("ip", &["-o", "link", "show", "dev", &ifname])
                    .contains("state UP")
            });
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}
