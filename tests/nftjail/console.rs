//! The web console in a real browser: headless Chromium (Debian's `chromium`), driven over its
//! DevTools protocol, loads the console from the daemon in its namespace, shows the ban made
//! through the API, and a real mouse click on "unban" takes the address out of the kernel set.
//! The firewall section: the protected rule has no delete button; the switch turns the firewall
//! on and "Keep it on" confirms it; a rule typed into the form and added with a click is in the
//! kernel (`nft -j list`), and its delete button takes it out. Screenshots are kept under
//! `target/tmp/` (CARGO_TARGET_TMPDIR) as the test's artefacts.
//!
//! The DevTools protocol rather than `--dump-dom`: a dump cannot click, and a form posted by
//! the test instead of the page would not test the page. The protocol is JSON over one
//! WebSocket (`tungstenite`, a dev-dependency): a handful of commands, no driver to install.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

use crate::daemon::{Daemon, SSHD_JAIL};
use crate::firewall::PROTECTED_SSH;
use crate::netns::Netns;
use crate::web::{self, Call, LISTEN, http_section, send};

const MANUAL: &str = "\n[manual]\nenabled = true\nport = [\"all\"]\nbantime = \"1d\"\n";
const BANNED: &str = "192.0.2.77";

/// Headless Chromium in a namespace, with a fresh profile; killed (by its pid) on drop.
struct Browser {
    child: Child,
    profile: tempfile::TempDir,
}

impl Browser {
    fn start(ns: &Netns) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", ns.name(), "chromium"])
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--window-size=1280,900",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromium (apt-get install chromium)");
        Browser { child, profile }
    }

    /// `127.0.0.1:PORT` and the browser's WebSocket path, from the profile's DevToolsActivePort.
    fn endpoint(&mut self) -> (String, String) {
        let file = self.profile.path().join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(text) = std::fs::read_to_string(&file)
                && let Some((port, path)) = text.split_once('\n')
                && !path.trim().is_empty()
            {
                return (
                    format!("127.0.0.1:{}", port.trim()),
                    path.trim().to_string(),
                );
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("chromium exited before listening: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "chromium did not start listening"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // `ip netns exec` and Debian's wrapper exec chromium: the child's pid is the browser's.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One DevTools connection (the browser target), with commands to one page session.
struct DevTools {
    socket: WebSocket<TcpStream>,
    next: u64,
    session: Option<String>,
    /// Console errors and exceptions the page reported (a CSP violation among them).
    errors: Vec<String>,
}

impl DevTools {
    fn connect(ns: &Netns, address: &str, path: &str) -> DevTools {
        let stream = ns.enter(|| TcpStream::connect(address).expect("DevTools port"));
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let url = format!("ws://{address}{path}");
        let (socket, _) = tungstenite::client(url.as_str(), stream).expect("DevTools handshake");
        DevTools {
            socket,
            next: 0,
            session: None,
            errors: Vec::new(),
        }
    }

    /// Sends a command and waits for its result, noting the events that come meanwhile.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = &self.session {
            message["sessionId"] = json!(session);
        }
        self.socket
            .send(Message::text(message.to_string()))
            .expect("send to DevTools");
        loop {
            let text = match self.socket.read().expect("read from DevTools") {
                Message::Text(text) => text,
                _ => continue,
            };
            let reply: Value = serde_json::from_str(text.as_str()).unwrap();
            if reply["id"] == id {
                assert!(reply["error"].is_null(), "{method}: {}", reply["error"]);
                return reply["result"].clone();
            }
            match reply["method"].as_str() {
                Some("Runtime.exceptionThrown") => self
                    .errors
                    .push(reply["params"]["exceptionDetails"].to_string()),
                Some("Log.entryAdded") if reply["params"]["entry"]["level"] == "error" => {
                    self.errors.push(reply["params"]["entry"].to_string())
                }
                _ => {}
            }
        }
    }

    /// Opens `url` in a new page and talks to that page from now on.
    fn open(&mut self, url: &str) {
        let target = self.call("Target.createTarget", json!({"url": "about:blank"}));
        let attached = self.call(
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
        );
        self.session = Some(attached["sessionId"].as_str().unwrap().to_string());
        for domain in ["Page.enable", "Runtime.enable", "Log.enable"] {
            self.call(domain, json!({}));
        }
        self.call("Page.navigate", json!({"url": url}));
    }

    /// The value of a JavaScript expression in the page.
    fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true}),
        );
        result["result"]["value"].clone()
    }

    fn wait_for(&mut self, what: &str, expression: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.eval(expression) != json!(true) {
            if Instant::now() >= deadline {
                let seen = self.eval(
                    "location.href + ' | ' + (document.body ? document.body.innerText.slice(0, 800) : '')",
                );
                panic!(
                    "timed out waiting for {what}; page errors: {:?}; the page: {seen}",
                    self.errors
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A left click at the middle of the element `selector`, as a mouse would do it (scrolled
    /// into view first: a mouse reaches only what the window shows).
    fn click(&mut self, selector: &str) {
        let expression = format!(
            "(() => {{ const e = document.querySelector({selector:?}); \
             e.scrollIntoView({{block: 'center', behavior: 'instant'}}); \
             const r = e.getBoundingClientRect(); \
             return [r.x + r.width / 2, r.y + r.height / 2]; }})()"
        );
        let at = self.eval(&expression);
        let (x, y) = (at[0].as_f64().unwrap(), at[1].as_f64().unwrap());
        for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            );
        }
    }

    /// Types `text` into the field `selector`, as a keyboard would (input events included).
    fn type_into(&mut self, selector: &str, text: &str) {
        self.eval(&format!("document.querySelector({selector:?}).focus()"));
        self.call("Input.insertText", json!({"text": text}));
    }

    /// Takes a screenshot of the whole page and keeps it as the artefact `name`.
    fn screenshot(&mut self, name: &str) {
        let shot = self.call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true}),
        );
        let png = data_encoding::BASE64
            .decode(shot["data"].as_str().unwrap().as_bytes())
            .expect("base64 PNG");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let artefact = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
        std::fs::write(&artefact, &png).unwrap();
        eprintln!("console screenshot: {}", artefact.display());
    }
}

/// The comments of the rules in the firewall's input chain, from `nft -j list`, and the chain's
/// policy (`None`: no such chain, the firewall is off).
fn firewall_input(d: &Daemon) -> (Option<String>, Vec<String>) {
    let listed = d.ns.nft_json("nftjail");
    let objects = listed["nftables"].as_array().cloned().unwrap_or_default();
    let policy = objects
        .iter()
        .find(|o| o["chain"]["name"] == "firewall_input")
        .map(|o| o["chain"]["policy"].as_str().unwrap_or("").to_string());
    let comments = objects
        .iter()
        .filter(|o| o["rule"]["chain"] == "firewall_input")
        .filter_map(|o| o["rule"]["comment"].as_str().map(str::to_string))
        .collect();
    (policy, comments)
}

#[test]
#[ignore = "needs root and chromium"]
fn the_console_lifts_a_ban_and_adds_and_deletes_a_firewall_rule_in_the_kernel() {
    let mut d = Daemon::create(
        "console",
        &format!(
            "{}[firewall]\nenabled = false\ndefault_input = \"drop\"\n",
            http_section("")
        ),
        &format!("{SSHD_JAIL}{MANUAL}"),
    );
    std::fs::create_dir_all(d.path("firewall.d")).unwrap();
    std::fs::write(d.path("firewall.d/10-ssh.toml"), PROTECTED_SSH).unwrap();
    d.spawn();
    web::wait_for_api(&d);
    let token = web::token(&d);
    let ban = send(
        &d,
        Call::new("POST", "/api/v1/jails/manual/bans")
            .token(&token)
            .json(json!({"targets": [BANNED, "2001:db8::77"], "for": "1h"})),
    );
    assert_eq!(ban.status, 200, "{}", ban.text());
    assert!(d.members("manual_v4").contains(&BANNED.to_string()));

    let mut browser = Browser::start(&d.ns);
    let (address, path) = browser.endpoint();
    let mut page = DevTools::connect(&d.ns, &address, &path);
    page.open(&format!("http://{LISTEN}/#token={token}"));
    let row = format!("#ban-rows tr[data-target=\"{BANNED}\"]");
    page.wait_for(
        "the banned list to show the ban",
        &format!(
            "document.querySelector({row:?}) !== null && document.body.dataset.loaded === 'true'"
        ),
    );
    assert_eq!(
        page.eval("location.hash"),
        json!(""),
        "the token leaves the address bar"
    );
    assert_eq!(
        page.eval("document.querySelectorAll('#jail-rows tr').length"),
        json!(2)
    );
    page.wait_for(
        "the chart of both jails",
        "document.querySelectorAll('#charts .chart svg').length === 2",
    );
    assert_eq!(
        page.eval(
            "[...document.querySelectorAll('a[href]')].every(a => { const h = a.getAttribute('href'); \
             return h.startsWith('#') && document.getElementById(h.slice(1)) !== null; })"
        ),
        json!(true),
        "no dead links"
    );
    page.screenshot("console.png");

    page.click(&format!("{row} button.unban"));
    d.wait_until("the click to lift the ban in the kernel", || {
        !d.members("manual_v4").contains(&BANNED.to_string())
    });
    page.wait_for(
        "the row to go",
        &format!("document.querySelector({row:?}) === null"),
    );
    assert_eq!(d.members("manual_v6"), ["2001:db8::77"], "only that one");
    // The ban log shows the ban and, newest first, the unban the click made.
    page.wait_for(
        "the ban log to show the unban above the ban",
        &format!(
            "[...document.querySelectorAll('#log-rows tr[data-target=\"{BANNED}\"]')]\
             .map(r => r.dataset.action).join(',') === 'unban,ban'"
        ),
    );

    // The firewall: the protected rule from firewall.d is listed without a delete button.
    let protected = "#rule-rows tr[data-id=\"1\"]";
    page.wait_for(
        "the firewall's rules",
        &format!(
            "document.body.dataset.firewall === 'loaded' && document.querySelector({protected:?}) !== null"
        ),
    );
    assert_eq!(
        page.eval(&format!(
            "document.querySelector({protected:?}).dataset.protected"
        )),
        json!("true")
    );
    assert_eq!(
        page.eval(&format!(
            "document.querySelectorAll({:?}).length",
            format!("{protected} button")
        )),
        json!(0),
        "no delete button on a protected rule"
    );
    // On, rolled back unless kept: the switch, then "Keep it on".
    assert_eq!(firewall_input(&d).0, None, "off: no filter chain");
    page.click("#firewall-toggle");
    page.wait_for(
        "the confirmation button",
        "!document.getElementById('firewall-confirm').hidden",
    );
    assert_eq!(firewall_input(&d).0.as_deref(), Some("drop"));
    page.click("#firewall-confirm");
    page.wait_for(
        "the firewall to be kept on",
        "document.getElementById('firewall-state').textContent === 'on'",
    );
    let status: Value = serde_json::from_str(&d.ok(&["firewall", "status", "--json"])).unwrap();
    assert_eq!(
        (
            status["firewall"]["enabled"].clone(),
            status["firewall"]["pending"].clone()
        ),
        (json!(true), Value::Null)
    );
    // A rule typed into the form and added with a click is in the kernel.
    page.type_into("#rule-port", "8080");
    page.type_into("#rule-source", "192.0.2.2");
    page.type_into("#rule-comment", "panel");
    page.click("#rule-form button[type=submit]");
    let added = "#rule-rows tr[data-id=\"2\"] button.delete";
    page.wait_for(
        "the new rule with its delete button",
        &format!("document.querySelector({added:?}) !== null"),
    );
    assert!(
        firewall_input(&d).1.contains(&"rule 2: panel".to_string()),
        "{:?}",
        firewall_input(&d)
    );
    page.screenshot("console-firewall.png");
    page.click(added);
    d.wait_until("the click to delete the rule in the kernel", || {
        !firewall_input(&d).1.contains(&"rule 2: panel".to_string())
    });
    page.wait_for(
        "the row to go",
        "document.querySelector('#rule-rows tr[data-id=\"2\"]') === null",
    );
    assert!(
        page.errors.is_empty(),
        "the page reported errors: {:?}",
        page.errors
    );
    page.session = None;
    let _ = page.call("Browser.close", json!({}));
}
