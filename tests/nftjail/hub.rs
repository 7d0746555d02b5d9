//! A NATS server with JetStream for fleet tests: `nats-server` in a namespace of its own (the
//! hub), linked to each daemon's namespace by a veth pair, with one user per node whose
//! permissions are the README's (publish only under its own name, read the stream), and an
//! `admin` user that creates the stream. Deleted (server stopped, namespace removed) on drop.
//! `NFTJAIL_NATS_SERVER=PATH` runs another server binary (a newer release, say) than the
//! `nats-server` on the PATH.

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::daemon::Daemon;
use crate::netns::Netns;

pub const STREAM: &str = "NFTJAIL_BANS";
pub const ADMIN_PASSWORD: &str = "admin-secret";

/// The password of node `node`'s user.
pub fn password(node: &str) -> String {
    format!("{node}-secret")
}

/// The server's address as node `index` reaches it over its veth pair.
pub fn url(index: u32) -> String {
    format!("nats://198.18.{index}.1:4222")
}

/// The permissions of one node's user: what the README's server configuration gives it.
pub fn node_user(node: &str) -> String {
    format!(
        r#"{{ user: "{node}", password: "{password}", permissions: {{
        publish: {{ allow: [
          "nftjail.bans.{node}.>",
          "$JS.API.STREAM.INFO.{STREAM}",
          "$JS.API.CONSUMER.CREATE.{STREAM}",
          "$JS.API.CONSUMER.CREATE.{STREAM}.>",
          "$JS.API.CONSUMER.MSG.NEXT.{STREAM}.>",
          "$JS.API.CONSUMER.INFO.{STREAM}.>",
          "$JS.API.CONSUMER.DELETE.{STREAM}.>"
        ] }}
        subscribe: {{ allow: ["_INBOX_{node}.>"] }}
      }} }}"#,
        password = password(node)
    )
}

/// A running nats-server in its own namespace.
pub struct Hub {
    pub ns: Netns,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    links: u32,
    /// The authority that signed the server's certificate, when it speaks TLS.
    pub ca: Option<std::path::PathBuf>,
}

impl Hub {
    /// Starts nats-server with JetStream and users `nodes` (plus `admin`), and creates the
    /// stream (retention `max_age` seconds) as admin.
    pub fn start(nodes: &[&str], max_age: u64) -> Hub {
        Hub::start_with(nodes, max_age, false)
    }

    /// [`Hub::start`]; with `tls`, the server requires TLS with a certificate signed by a
    /// throw-away authority (`ca`), valid for every address a daemon reaches it at.
    pub fn start_with(nodes: &[&str], max_age: u64, tls: bool) -> Hub {
        let ns = Netns::new("hub");
        let dir = tempfile::tempdir().unwrap();
        let (tls_conf, ca) = if tls {
            let ca = certificates(dir.path());
            let conf = format!(
                "tls {{ cert_file: \"{}\", key_file: \"{}\" }}\n",
                dir.path().join("server.pem").display(),
                dir.path().join("server.key").display()
            );
            (conf, Some(ca))
        } else {
            (String::new(), None)
        };
        let users: Vec<String> = nodes.iter().map(|n| node_user(n)).collect();
        let conf = format!(
            "listen: 0.0.0.0:4222\nmax_payload: 1MB\n{tls_conf}jetstream {{ store_dir: \"{js}\" }}\n\
             accounts {{\n  FLEET {{\n    jetstream: enabled\n    users: [\n      {{ user: admin, password: \"{ADMIN_PASSWORD}\" }}\n      {}\n    ]\n  }}\n}}\n",
            users.join("\n      "),
            js = dir.path().join("js").display(),
        );
        fs::write(dir.path().join("nats.conf"), conf).unwrap();
        let mut hub = Hub {
            ns,
            dir,
            child: None,
            links: 0,
            ca,
        };
        hub.spawn();
        hub.admin(|client| async move {
            let js = async_nats::jetstream::new(client);
            js.create_stream(async_nats::jetstream::stream::Config {
                name: STREAM.to_string(),
                subjects: vec!["nftjail.bans.>".to_string()],
                max_age: Duration::from_secs(max_age),
                storage: async_nats::jetstream::stream::StorageType::File,
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            })
            .await
            .expect("create the stream");
        });
        hub
    }

    /// Starts the server process and waits until it takes connections.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "already running");
        let server = std::env::var("NFTJAIL_NATS_SERVER").unwrap_or_else(|_| "nats-server".into());
        let which = Command::new(&server).arg("--version").output();
        assert!(
            which.is_ok_and(|o| o.status.success()),
            "nats-server is not installed (apt-get install nats-server): this test needs it"
        );
        let log = fs::File::create(self.dir.path().join("nats.log")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", self.ns.name(), &server, "-c"])
            .arg(self.dir.path().join("nats.conf"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        let to: SocketAddr = "127.0.0.1:4222".parse().unwrap();
        while !self
            .ns
            .enter(|| TcpStream::connect_timeout(&to, Duration::from_millis(200)).is_ok())
        {
            assert!(
                Instant::now() < deadline,
                "nats-server did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server (SIGTERM: it flushes its store, as on a service restart).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = child.wait();
        }
    }

    /// The server's process id (`ip netns exec` execs it), while it runs.
    #[allow(dead_code, reason = "used by benches/fleet.rs, which shares this file")]
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("nats.log")).unwrap_or_default()
    }

    /// Links a daemon's namespace to the hub: the daemon reaches the server at `url(index)`.
    pub fn link(&mut self, d: &Daemon) -> u32 {
        let index = self.links;
        self.links += 1;
        Netns::link(
            &self.ns,
            &[&format!("198.18.{index}.1/24")],
            &d.ns,
            &[&format!("198.18.{index}.2/24")],
            index,
        );
        index
    }

    /// Runs `f` with a client connected as `user` from inside the hub's namespace.
    pub fn client_as<T, F>(
        &self,
        user: &str,
        password: &str,
        f: impl FnOnce(async_nats::Client) -> F + Send,
    ) -> T
    where
        F: std::future::Future<Output = T>,
        T: Send,
    {
        let user = user.to_string();
        let password = password.to_string();
        let ca = self.ca.clone();
        self.ns.enter(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let inbox = format!("_INBOX_{user}");
                let mut options =
                    async_nats::ConnectOptions::with_user_and_password(user, password)
                        .custom_inbox_prefix(inbox);
                let url = match ca {
                    Some(ca) => {
                        options = options.add_root_certificates(ca).require_tls(true);
                        "tls://127.0.0.1:4222"
                    }
                    None => "nats://127.0.0.1:4222",
                };
                let client = options.connect(url).await.expect("connect to the hub");
                let out = f(client.clone()).await;
                let _ = client.flush().await;
                out
            })
        })
    }

    /// Runs `f` with a client connected as admin.
    pub fn admin<T: Send, F: std::future::Future<Output = T>>(
        &self,
        f: impl FnOnce(async_nats::Client) -> F + Send,
    ) -> T {
        self.client_as("admin", ADMIN_PASSWORD, f)
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Makes a throw-away authority and a server certificate for 127.0.0.1 and 198.18.0-15.1 in
/// `dir` (with `openssl`); returns the authority's certificate.
fn certificates(dir: &std::path::Path) -> std::path::PathBuf {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl (apt-get install openssl)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=nftjail test CA",
    ]);
    run(&ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=hub",
    ]);
    run(&csr);
    let names: Vec<String> = std::iter::once("IP:127.0.0.1".to_string())
        .chain((0..16).map(|i| format!("IP:198.18.{i}.1")))
        .collect();
    fs::write(
        dir.join("san.cnf"),
        format!("subjectAltName={}\n", names.join(",")),
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.cnf",
    ]);
    dir.join("ca.pem")
}

/// A daemon of the fleet: node `node`, its `[cluster]` pointing at the hub (its password in a
/// file), an sshd jail that bans at the first failure, and the fleet jail with `fleet_extra`.
pub fn fleet_daemon(hub: &mut Hub, node: &str, cluster_extra: &str, fleet_extra: &str) -> Daemon {
    fleet_daemon_with(hub, node, cluster_extra, fleet_extra, &[])
}

/// [`fleet_daemon`] with extra environment for the daemon process (`RUST_LOG`, say).
pub fn fleet_daemon_with(
    hub: &mut Hub,
    node: &str,
    cluster_extra: &str,
    fleet_extra: &str,
    env: &[(&str, &str)],
) -> Daemon {
    let mut d = Daemon::create(&format!("fleet-{node}"), "", "");
    d.env = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let index = hub.link(&d);
    fs::write(d.path("nats-password"), password(node)).unwrap();
    let (url, tls) = match &hub.ca {
        Some(ca) => {
            fs::copy(ca, d.path("nats-ca.pem")).unwrap();
            (
                url(index).replace("nats://", "tls://"),
                "tls_ca = \"{dir}/nats-ca.pem\"\n",
            )
        }
        None => (url(index), ""),
    };
    let main = format!(
        "[cluster]\nurl = \"{url}\"\nnode = \"{node}\"\nuser = \"{node}\"\npassword_file = \"{{dir}}/nats-password\"\n{tls}{cluster_extra}\n"
    );
    let jails = format!(
        "{}\n[fleet]\nenabled = true\nport = [\"all\"]\n{fleet_extra}\n",
        crate::daemon::SSHD_JAIL.replace("maxretry = 3", "maxretry = 1")
    );
    d.write_config(&main, &jails);
    d.spawn();
    d
}
