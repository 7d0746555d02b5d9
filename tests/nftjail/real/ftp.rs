//! The FTP servers Debian packages, each on its own host (they all want port 21, and the
//! packages conflict): failed logins ban the attacker on the FTP ports while sshd still answers.

use std::net::SocketAddr;

use super::attacker::SERVER_V4;
use super::logins::Login;
use super::root::Set;
use super::scene::Scene;

/// A host with sshd and one FTP server, the attacker's failed FTP logins, and the ports
/// checked: FTP dropped for the attacker, sshd answering; a bystander still gets FTP.
fn ftp_attack_is_banned_on_ftp_ports_only(
    tag: &str,
    set: Set,
    jail: &str,
    local: &str,
    configure: impl FnOnce(&Scene) -> String,
) {
    let (attacker, bystander) = ("192.0.2.21", "192.0.2.22");
    let scene = Scene::beside_sshd(
        tag,
        set,
        jail,
        local,
        &[attacker, bystander],
        configure,
        &[21],
    );
    scene.fail_logins(
        Login::Ftp,
        attacker,
        SocketAddr::new(SERVER_V4.parse().unwrap(), 21),
        "webmaster",
        3,
    );
    scene.wait_banned(jail, attacker);
    scene.assert_ports(&[
        (attacker, 21, false),
        (attacker, 22, true),
        (bystander, 21, true),
    ]);
}

#[test]
#[ignore = "needs root and the daemons"]
fn proftpd_bans_its_attacker_on_the_ftp_ports_only() {
    let local =
        "[proftpd]\nenabled = true\nlogpath = [\"{log}/proftpd/proftpd.log\"]\nmaxretry = 3\n";
    ftp_attack_is_banned_on_ftp_ports_only("proftpd", Set::Proftpd, "proftpd", local, |scene| {
        // proftpd-core's postinst writes /etc/proftpd from its templates.
        let host = &scene.host;
        host.etc_from_tree(
            Set::Proftpd,
            "usr/share/proftpd/templates/proftpd.conf",
            "proftpd/proftpd.conf",
        );
        host.etc_from_tree(
            Set::Proftpd,
            "usr/share/proftpd/templates/modules.conf",
            "proftpd/modules.conf",
        );
        "mkdir -p /var/log/proftpd /run/proftpd\nproftpd\n".to_string()
    });
}

#[test]
#[ignore = "needs root and the daemons"]
fn vsftpd_bans_its_attacker_on_the_ftp_ports_only() {
    let local = "[vsftpd]\nenabled = true\nlogpath = [\"{log}/vsftpd.log\"]\nmaxretry = 3\n";
    ftp_attack_is_banned_on_ftp_ports_only("vsftpd", Set::Vsftpd, "vsftpd", local, |_| {
        // Debian's /etc/vsftpd.conf as the package ships it: standalone on IPv6 (IPv4 mapped),
        // local users through PAM, its own log in /var/log/vsftpd.log.
        "mkdir -p /var/run/vsftpd/empty\nvsftpd /etc/vsftpd.conf &\n".to_string()
    });
}

#[test]
#[ignore = "needs root and the daemons"]
fn pure_ftpd_bans_its_attacker_on_the_ftp_ports_only() {
    let local = "[pure-ftpd]\nenabled = true\nlogpath = [\"{log}/syslog\"]\nmaxretry = 3\n";
    ftp_attack_is_banned_on_ftp_ports_only("pure-ftpd", Set::PureFtpd, "pure-ftpd", local, |_| {
        // Debian's /etc/pure-ftpd/conf as the package ships it (PAM, no anonymous), started by
        // its wrapper as the init script does, standalone (the postinst's default answer); it
        // logs through syslog (facility ftp).
        "mkdir -p /var/log/pure-ftpd /var/run/pure-ftpd\nSTANDALONE_OR_INETD=standalone pure-ftpd-wrapper\n"
            .to_string()
    });
}
