//! Without CAP_NET_ADMIN every operation fails with a typed `Permission` error.
//!
//! The test re-runs itself as `nobody` without capabilities (`setpriv`), in the host's
//! namespace: such a process can open the netlink socket but the kernel refuses every
//! nf_tables message, so nothing can change.

use std::process::Command;

use super::*;

const CHILD: &str = "NFTJAIL_TEST_UNPRIVILEGED";
const NAME: &str = "backend::permission::without_cap_net_admin_every_error_says_permission";

#[test]
#[ignore = "needs root"]
fn without_cap_net_admin_every_error_says_permission() {
    if std::env::var_os(CHILD).is_some() {
        unprivileged_child();
        return;
    }
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "dropping privileges needs root (this test is #[ignore]d by default)"
    );
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--",
        ])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            NAME,
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .expect("setpriv runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "unprivileged run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn unprivileged_child() {
    assert!(!nix::unistd::Uid::effective().is_root());
    let mut backend = NetlinkBackend::open("nftjail-unprivileged").unwrap();
    let is_permission = |e: &BackendError| matches!(e, BackendError::Permission { .. });
    let err = backend.list().unwrap_err();
    assert!(is_permission(&err), "list: {err}");
    let err = backend
        .apply(&[add("sshd", "192.0.2.1", Some(60))])
        .unwrap_err();
    assert!(is_permission(&err.error), "apply: {err}");
    assert_eq!(err.committed, 0);
    let err = backend.remove_table().unwrap_err();
    assert!(is_permission(&err), "remove_table: {err}");
    let layout = layout(
        &[Hook::Input],
        Verdict::Drop,
        vec![rules("sshd", Ports::All, &[])],
    );
    let err = backend.apply_layout(&layout).unwrap_err();
    assert!(is_permission(&err), "apply_layout: {err}");
    println!("{err}");
}
