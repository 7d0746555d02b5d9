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
}

impl Hub {
    /// Starts nats-server with JetStream and users `nodes` (plus `admin`), and creates the
    /// stream (retention `max_age` seconds) as admin.
    pub fn start(nodes: &[&str], max_age: u64) -> Hub {
        let ns = Netns::new("hub");
        let dir = tempfile::tempdir().unwrap();
        let users: Vec<String> = nodes.iter().map(|n| node_user(n)).collect();
        let conf = format!(
            "listen: 0.0.0.0:4222\nmax_payload: 1MB\njetstream {{ store_dir: \"{js}\" }}\n\
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
        self.ns.enter(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let inbox = format!("_INBOX_{user}");
                let client = async_nats::ConnectOptions::with_user_and_password(user, password)
                    .custom_inbox_prefix(inbox)
                    .connect("nats://127.0.0.1:4222")
                    .await
                    .expect("connect to the hub");
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
    let main = format!(
        "[cluster]\nurl = \"{}\"\nnode = \"{node}\"\nuser = \"{node}\"\npassword_file = \"{{dir}}/nats-password\"\n{cluster_extra}\n",
        url(index)
    );
    let jails = format!(
        "{}\n[fleet]\nenabled = true\nport = [\"all\"]\n{fleet_extra}\n",
        crate::daemon::SSHD_JAIL.replace("maxretry = 3", "maxretry = 1")
    );
    d.write_config(&main, &jails);
    d.spawn();
    d
}
