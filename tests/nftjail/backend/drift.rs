//! Drift: what another process does to our table is seen by `TableMonitor` and undone by
//! `reconcile`; what the backend itself does is not drift. Host address changes are seen by
//! `AddressWatcher`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use nftjail::daemon::self_addresses::{AddressWatcher, host_addresses};
use serde_json::Value;

use super::*;

/// Within this, a change made by `nft` must have been reported.
const PROMPTLY: Duration = Duration::from_millis(100);

/// A table with bans, its backend and a monitor, in a private namespace.
struct Fixture {
    ns: Netns,
    backend: NetlinkBackend,
    monitor: TableMonitor,
    layout: Layout,
    /// What the state store holds: jail, target, timeout.
    bans: Vec<(&'static str, BanTarget, Option<Duration>)>,
    /// When the bans were made: their remaining time counts from here.
    start: Instant,
    /// `nft -j` right after the bans were made.
    initial: Value,
}

impl Fixture {
    fn new(tag: &str) -> Fixture {
        let (ns, backend) = setup(tag);
        let monitor = ns
            .enter(|| TableMonitor::open(TABLE, backend.portid()))
            .unwrap();
        let layout = layout(
            &[Hook::Input, Hook::Forward],
            Verdict::Drop,
            vec![
                rules("sshd", ports(&[(22, 22), (2222, 2222)]), &[Protocol::Tcp]),
                rules("recidive", Ports::All, &[]),
            ],
        );
        let hour = Some(Duration::from_secs(3600));
        let bans = vec![
            ("sshd", target("192.0.2.1"), hour),
            ("sshd", target("192.0.2.2"), hour),
            ("sshd", target("192.0.2.3"), hour),
            ("sshd", target("192.0.2.200"), None),
            ("sshd", target("2001:db8::1"), hour),
            ("sshd", target("198.51.100.0/24"), hour),
            (
                "recidive",
                target("203.0.113.7"),
                Some(Duration::from_secs(86_400)),
            ),
        ];
        let mut fixture = Fixture {
            ns,
            backend,
            monitor,
            layout,
            bans,
            start: Instant::now(),
            initial: Value::Null,
        };
        let report = fixture.repair();
        assert_eq!(report.added, fixture.bans.len());
        fixture.initial = fixture.ns.nft_json(TABLE);
        fixture
    }

    /// The state's bans with their remaining time now.
    fn desired(&self) -> Vec<Element> {
        let elapsed = self.start.elapsed();
        self.bans
            .iter()
            .map(|(j, t, timeout)| Element {
                jail: jail(j),
                target: *t,
                timeout: *timeout,
                expires: timeout.map(|d| d.saturating_sub(elapsed)),
            })
            .collect()
    }

    /// What the daemon does after drift: `reconcile` with the state's bans.
    fn repair(&mut self) -> ReconcileReport {
        let desired = self.desired();
        reconcile(&mut self.backend, &self.layout, &desired).unwrap()
    }

    /// The kernel's elements by target; empty when the table is gone.
    fn kernel(&mut self) -> HashMap<BanTarget, Element> {
        match self.backend.list() {
            Ok(listed) => listed.into_iter().map(|e| (e.target, e)).collect(),
            Err(BackendError::NoSuchTable { .. }) => HashMap::new(),
            Err(e) => panic!("list: {e}"),
        }
    }

    /// Runs `nft ARGS` as someone else, expects `drift` promptly, repairs with `reconcile`
    /// and checks that the table is as it was: every element back, the survivors untouched.
    fn break_and_repair(&mut self, args: &[&str], check: impl Fn(&[Drift]) -> bool) {
        self.ns.run("nft", args);
        let drift = self.monitor.wait(PROMPTLY).unwrap();
        assert!(check(&drift), "nft {args:?}: unexpected drift {drift:?}");
        assert!(drift.iter().any(Drift::needs_repair), "{drift:?}");
        let survivors = self.kernel();

        let report = self.repair();
        assert_eq!(
            report.added,
            self.bans.len() - survivors.len(),
            "{report:?}"
        );
        assert_eq!(report.refreshed, 0, "{report:?}");
        assert!(report.unknown.is_empty(), "{report:?}");
        let own = self.monitor.wait(Duration::from_millis(50)).unwrap();
        assert_eq!(own, vec![], "the repair is our own change");

        let after = self.ns.nft_json(TABLE);
        assert_eq!(
            comparable(&after),
            comparable(&self.initial),
            "nft {args:?}: the repaired table differs:\n{}",
            self.ns.nft_text(TABLE)
        );
        let elapsed = self.start.elapsed().as_secs() + 1;
        let (was, now) = (timeouts(&self.initial), timeouts(&after));
        for (element, timeout) in &was {
            let back = now[element];
            assert!(
                back <= *timeout && back + elapsed >= *timeout,
                "{element}: timeout {back} s, was {timeout} s"
            );
        }
        let kernel = self.kernel();
        for (_, target, timeout) in &self.bans {
            let element = &kernel[target];
            match survivors.get(target) {
                // Untouched: same timeout, and its clock kept running.
                Some(before) => {
                    assert_eq!(element.timeout, before.timeout, "{target}");
                    assert!(element.expires <= before.expires, "{target} was re-added");
                }
                None => {
                    let remaining = timeout.map(|t| t.saturating_sub(self.start.elapsed()));
                    assert_eq!(element.timeout.is_some(), timeout.is_some(), "{target}");
                    assert!(element.expires <= remaining.map(|r| r + Duration::from_secs(1)));
                }
            }
        }
    }
}

/// The listing without what legitimately changes after a repair: handles, expiry, the exact
/// timeout (checked by [`timeouts`]) and the order of elements.
fn comparable(json: &Value) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(map) => {
                map.remove("handle");
                map.remove("expires");
                if let Some(timeout) = map.get_mut("timeout") {
                    *timeout = Value::Bool(true);
                }
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => {
                items.iter_mut().for_each(strip);
                items.sort_by_key(|item| item.to_string());
            }
            _ => {}
        }
    }
    let mut json = json.clone();
    strip(&mut json);
    json
}

/// The timeout in seconds of every element that has one, by set and value.
fn timeouts(json: &Value) -> HashMap<String, u64> {
    let mut all = HashMap::new();
    for set in objects(json, "set") {
        let name = set["name"].as_str().unwrap();
        for element in elements(json, name) {
            if let Some(timeout) = element["timeout"].as_u64() {
                all.insert(format!("{name} {}", element["val"]), timeout);
            }
        }
    }
    all
}

fn elements_deleted(set: &str, count: usize) -> Drift {
    Drift::ElementsDeleted {
        set: set.to_string(),
        count,
    }
}

#[test]
#[ignore = "needs root"]
fn our_own_changes_are_not_drift_and_a_second_socket_is_someone_else() {
    let mut fx = Fixture::new("drift-own");
    // The set-up itself (layout, bans) was ours.
    assert_eq!(fx.monitor.wait(Duration::from_millis(200)).unwrap(), vec![]);
    fx.backend
        .apply(&[
            add("sshd", "192.0.2.50", Some(60)),
            refresh("sshd", "192.0.2.1", Some(7200)),
            remove("sshd", "192.0.2.2"),
            remove("sshd", "198.51.100.0/24"),
        ])
        .unwrap();
    let mut more = fx.layout.clone();
    more.jails.push(rules("dovecot", ports(&[(993, 993)]), &[]));
    fx.backend.apply_layout(&more).unwrap();
    fx.backend.apply_layout(&fx.layout).unwrap();
    fx.backend.remove_table().unwrap();
    fx.repair();
    assert_eq!(fx.monitor.wait(Duration::from_millis(200)).unwrap(), vec![]);

    // Another socket of the same process is someone else.
    let mut other = fx.ns.enter(|| NetlinkBackend::open(TABLE)).unwrap();
    assert_ne!(other.portid(), fx.backend.portid());
    other.apply(&[remove("sshd", "192.0.2.3")]).unwrap();
    assert_eq!(
        fx.monitor.wait(PROMPTLY).unwrap(),
        vec![elements_deleted("sshd_v4", 1)]
    );
    other.apply(&[add("sshd", "192.0.2.77", None)]).unwrap();
    let added = fx.monitor.wait(PROMPTLY).unwrap();
    assert_eq!(
        added,
        vec![Drift::ElementsAdded {
            set: "sshd_v4".into(),
            count: 1
        }]
    );
    assert!(!added[0].needs_repair());
    // Nothing happened: the timeout passes with nothing.
    let quiet = Instant::now();
    assert_eq!(fx.monitor.wait(Duration::from_millis(30)).unwrap(), vec![]);
    assert!(quiet.elapsed() >= Duration::from_millis(30));
}

#[test]
#[ignore = "needs root"]
fn lost_notifications_are_an_overrun_never_a_silence() {
    let mut fx = Fixture::new("drift-overrun");
    fx.monitor.set_receive_queue(16 << 10).unwrap();
    // 2,000 notifications of our own do not fit: whose they were is unknown.
    let bans: Vec<Change> = (0..2000u32)
        .map(|i| Change::Add {
            jail: jail("sshd"),
            target: BanTarget::addr(std::net::IpAddr::from([10, 2, (i >> 8) as u8, i as u8])),
            timeout: Some(Duration::from_secs(600)),
        })
        .collect();
    fx.backend.apply(&bans).unwrap();
    assert_eq!(fx.monitor.wait(PROMPTLY).unwrap(), vec![Drift::Overrun]);
    assert!(Drift::Overrun.needs_repair());
    // Read to the end, the socket reports again.
    fx.ns.run(
        "nft",
        &[
            "delete",
            "element",
            "inet",
            TABLE,
            "sshd_v4",
            "{ 192.0.2.1 }",
        ],
    );
    assert_eq!(
        fx.monitor.wait(PROMPTLY).unwrap(),
        vec![elements_deleted("sshd_v4", 1)]
    );
}

#[test]
#[ignore = "needs root"]
fn a_deleted_table_is_seen_and_rebuilt() {
    let mut fx = Fixture::new("drift-table");
    fx.break_and_repair(&["delete", "table", "inet", TABLE], |d| {
        d == [Drift::TableDeleted]
    });
}

#[test]
#[ignore = "needs root"]
fn a_flushed_set_is_seen_and_refilled() {
    let mut fx = Fixture::new("drift-flush");
    fx.break_and_repair(&["flush", "set", "inet", TABLE, "sshd_v4"], |d| {
        d == [elements_deleted("sshd_v4", 4)]
    });
}

#[test]
#[ignore = "needs root"]
fn a_deleted_element_is_seen_and_re_added() {
    let mut fx = Fixture::new("drift-element");
    fx.break_and_repair(
        &[
            "delete",
            "element",
            "inet",
            TABLE,
            "sshd_v4",
            "{ 192.0.2.2 }",
        ],
        |d| d == [elements_deleted("sshd_v4", 1)],
    );
    // A prefix is two kernel elements of the interval set: its start and its end.
    fx.break_and_repair(
        &[
            "delete",
            "element",
            "inet",
            TABLE,
            "sshd_net4",
            "{ 198.51.100.0/24 }",
        ],
        |d| d == [elements_deleted("sshd_net4", 2)],
    );
}

#[test]
#[ignore = "needs root"]
fn a_deleted_chain_is_seen_and_rebuilt() {
    let mut fx = Fixture::new("drift-chain");
    fx.break_and_repair(&["delete", "chain", "inet", TABLE, "input"], |d| {
        d == [Drift::ChainDeleted {
            chain: "input".into(),
        }]
    });
}

#[test]
#[ignore = "needs root"]
fn a_deleted_rule_is_seen_and_rebuilt() {
    let mut fx = Fixture::new("drift-rule");
    let rule = objects(&fx.initial, "rule")
        .into_iter()
        .find(|r| r["chain"] == "input" && r["comment"] == "nftjail:sshd")
        .expect("an sshd rule in input");
    let handle = rule["handle"].as_u64().unwrap();
    let text = handle.to_string();
    fx.break_and_repair(
        &["delete", "rule", "inet", TABLE, "input", "handle", &text],
        |d| {
            d == [Drift::RuleDeleted {
                chain: "input".into(),
                handle,
            }]
        },
    );
}

#[test]
#[ignore = "needs root"]
fn a_foreign_rule_and_a_dormant_table_are_undone() {
    let mut fx = Fixture::new("drift-foreign");
    // An accept before our rules would let banned addresses through.
    fx.break_and_repair(
        &[
            "insert",
            "rule",
            "inet",
            TABLE,
            "input",
            "ip saddr 192.0.2.1 accept",
        ],
        |d| matches!(d, [Drift::RuleAdded { chain, .. }] if chain == "input"),
    );
    // A dormant table filters nothing.
    fx.break_and_repair(
        &["add", "table", "inet", TABLE, "{ flags dormant; }"],
        |d| d == [Drift::TableChanged { dormant: true }],
    );
    assert!(!fx.ns.nft_text(TABLE).contains("dormant"));
}

#[test]
#[ignore = "needs root"]
fn an_address_added_to_the_host_is_seen_at_once() {
    let ns = Netns::new("drift-addr");
    let mut watcher = ns.enter(AddressWatcher::open).unwrap();
    assert!(!watcher.changed(), "nothing happened yet");
    ns.run("ip", &["addr", "add", "198.51.100.7/32", "dev", "lo"]);
    // No waiting: the notification was queued before `ip` returned.
    assert!(watcher.changed());
    assert!(!watcher.changed(), "each change is told once");
    let addresses = ns.enter(host_addresses);
    assert!(
        addresses.contains(&"198.51.100.7".parse().unwrap()),
        "{addresses:?}"
    );
    ns.run("ip", &["addr", "add", "2001:db8::7/128", "dev", "lo"]);
    assert!(watcher.changed());
    ns.run("ip", &["addr", "del", "198.51.100.7/32", "dev", "lo"]);
    assert!(watcher.changed());
    // Other kinds of change are not address changes (a veth pair is down: no link-local yet).
    ns.run(
        "ip",
        &[
            "link", "add", "veth-a", "type", "veth", "peer", "name", "veth-b",
        ],
    );
    assert!(!watcher.changed());
}

/// Prints how long detection and repair take for a table of 10,000 bans (a measurement, not
/// a timed assertion: run with `--nocapture`).
#[test]
#[ignore = "needs root"]
fn drift_detection_and_repair_of_10000_elements_is_measured() {
    const BANS: u32 = 10_000;
    let (ns, mut backend) = setup("drift-measure");
    let mut monitor = ns
        .enter(|| TableMonitor::open(TABLE, backend.portid()))
        .unwrap();
    let layout = layout(
        &[Hook::Input],
        Verdict::Drop,
        vec![rules("sshd", Ports::All, &[])],
    );
    let desired: Vec<Element> = (0..BANS)
        .map(|i| Element {
            jail: jail("sshd"),
            target: BanTarget::addr(std::net::IpAddr::from([10, 1, (i >> 8) as u8, i as u8])),
            timeout: Some(Duration::from_secs(3600)),
            expires: Some(Duration::from_secs(3600)),
        })
        .collect();
    let started = Instant::now();
    reconcile(&mut backend, &layout, &desired).unwrap();
    let first = started.elapsed();
    // Our own 10,000 notifications were queued for the monitor: none is drift, none lost.
    assert_eq!(monitor.wait(Duration::from_millis(200)).unwrap(), vec![]);

    let mut other = ns.enter(|| NetlinkBackend::open(TABLE)).unwrap();
    for (what, drift) in [
        ("table deleted", Drift::TableDeleted),
        ("set flushed", elements_deleted("sshd_v4", BANS as usize)),
    ] {
        let (seen, waited) = std::thread::scope(|scope| {
            let watcher = scope.spawn(|| {
                let drift = monitor.wait(Duration::from_secs(5)).unwrap();
                (drift, Instant::now())
            });
            std::thread::sleep(Duration::from_millis(50)); // the monitor is waiting
            let broke = Instant::now();
            match drift {
                // In-process, as another socket: the kernel's delay alone.
                Drift::TableDeleted => other.remove_table().unwrap(),
                // One transaction of 10,000 deletions (nft's run time included).
                _ => drop(ns.run("nft", &["flush", "set", "inet", TABLE, "sshd_v4"])),
            }
            let (seen, at) = watcher.join().unwrap();
            (seen, at.duration_since(broke))
        });
        assert_eq!(seen, vec![drift.clone()]);
        let repairing = Instant::now();
        let report = reconcile(&mut backend, &layout, &desired).unwrap();
        let repaired = repairing.elapsed();
        assert_eq!(report.added, BANS as usize);
        assert_eq!(monitor.wait(Duration::from_millis(200)).unwrap(), vec![]);
        assert_eq!(backend.list().unwrap().len(), BANS as usize);
        println!(
            "drift: {what} ({BANS} elements): change made to Drift {:.2} ms, Drift to \
             reconcile done {:.1} ms (first fill {:.1} ms)",
            waited.as_secs_f64() * 1e3,
            repaired.as_secs_f64() * 1e3,
            first.as_secs_f64() * 1e3,
        );
    }
}
