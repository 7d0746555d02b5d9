//! Reconcile at start: existing bans stay untouched, missing ones are added.

use std::time::Duration;

use super::*;

#[test]
#[ignore = "needs root"]
fn reconcile_keeps_existing_bans_and_adds_missing_ones() {
    let (ns, mut backend) = setup("reconcile");
    let layout = layout(
        &[Hook::Input],
        Verdict::Drop,
        vec![rules("sshd", Ports::All, &[])],
    );
    let desired = |t: &str, secs: u64| Element {
        jail: jail("sshd"),
        target: target(t),
        timeout: Some(Duration::from_secs(3600)),
        expires: Some(Duration::from_secs(secs)),
    };
    let report = reconcile(&mut backend, &layout, &[desired("192.0.2.1", 3600)]).unwrap();
    assert_eq!(report.added, 1);
    std::thread::sleep(Duration::from_millis(1500));

    // A restart: a new socket; the state's clock says 3602 s are left (within the tolerance of
    // the kernel's ~3598.5 s) and it knows one more ban.
    let mut restarted = ns.enter(|| NetlinkBackend::open(TABLE)).unwrap();
    let report = reconcile(
        &mut restarted,
        &layout,
        &[desired("192.0.2.1", 3602), desired("2001:db8::7", 1800)],
    )
    .unwrap();
    assert_eq!((report.added, report.refreshed, report.kept), (1, 0, 1));
    assert!(report.unknown.is_empty());
    let listed = restarted.list().unwrap();
    let kept = listed
        .iter()
        .find(|e| e.target == target("192.0.2.1"))
        .unwrap();
    // Not recreated: its clock kept running (re-added, it would say ~3602 s).
    assert!(
        kept.expires.unwrap() < Duration::from_millis(3_598_600),
        "{kept:?}"
    );
    assert_eq!(kept.timeout, Some(Duration::from_secs(3600)));
    let added = listed
        .iter()
        .find(|e| e.target == target("2001:db8::7"))
        .unwrap();
    assert!(added.expires.unwrap() <= Duration::from_secs(1800));

    // An element the state does not know is reported, not deleted.
    restarted.apply(&[add("sshd", "192.0.2.50", None)]).unwrap();
    let report = reconcile(
        &mut restarted,
        &layout,
        &[desired("192.0.2.1", 3597), desired("2001:db8::7", 1799)],
    )
    .unwrap();
    assert_eq!((report.added, report.refreshed, report.kept), (0, 0, 2));
    assert_eq!(report.unknown.len(), 1);
    assert_eq!(restarted.list().unwrap().len(), 3);
}
