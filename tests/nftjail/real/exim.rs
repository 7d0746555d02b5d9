//! Exim 4 as Debian 12 configures it for an internet site, on its own host (exim4 and postfix
//! conflict as packages), with SMTP AUTH PLAIN turned on the way Debian's README tells an
//! administrator to: failed logins ban the attacker on the SMTP ports while sshd still answers.

use std::net::SocketAddr;

use super::attacker::SERVER_V4;
use super::logins::Login;
use super::root::Set;
use super::scene::Scene;

const LOCAL: &str = "[exim]\nenabled = true\nlogpath = [\"{log}/exim4/mainlog\"]\nmaxretry = 3\n";

/// The answers to exim4-config's debconf questions for an internet site listening on every
/// interface (its postinst writes them to this file).
const UPDATE_EXIM4_CONF: &str = "dc_eximconfig_configtype='internet'
dc_other_hostnames='mail.example.org'
dc_local_interfaces=''
dc_readhost=''
dc_relay_domains=''
dc_minimaldns='false'
dc_relay_nets=''
dc_smarthost=''
CFILEMODE='644'
dc_use_split_config='false'
dc_hide_mailname=''
dc_mailname_in_oh='true'
dc_localdelivery='mail_spool'
";

/// Password logins without TLS (the bot does not start TLS): Debian's documented macro.
const LOCALMACROS: &str = "AUTH_SERVER_ALLOW_NOTLS_PASSWORDS = 1\n";

const START: &str = "ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
mkdir -p /run/sshd
/usr/sbin/sshd
mkdir -p /var/spool/exim4 /var/log/exim4 /var/lib/exim4 /var/mail
chown Debian-exim:Debian-exim /var/spool/exim4 /var/log/exim4
update-exim4.conf
exim4 -bdf -q30m &
";

/// Uncomments the `plain_server` authenticator of Debian's template (users and crypted
/// passwords in /etc/exim4/passwd), as its comments tell an administrator to.
fn with_plain_server(template: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in template.lines() {
        if line == "# plain_server:" {
            inside = true;
        } else if inside && !line.starts_with("# ") {
            inside = false;
        }
        match line.strip_prefix("# ") {
            Some(rest) if inside => out.push_str(rest),
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    assert!(
        out.contains("\nplain_server:\n"),
        "no plain_server example in Debian's exim4.conf.template"
    );
    out
}

#[test]
#[ignore = "needs root and the daemons"]
fn exim_bans_its_attacker_on_the_smtp_ports_only() {
    let (attacker, bystander) = ("192.0.2.31", "192.0.2.32");
    let mut scene = Scene::new(
        "exim",
        &[Set::Ssh, Set::Exim],
        &["exim"],
        LOCAL,
        &[attacker, bystander],
    );
    let host = &scene.host;
    host.etc_from_tree(Set::Ssh, "usr/share/openssh/sshd_config", "ssh/sshd_config");
    let template = std::fs::read_to_string(Set::Exim.tree().join("etc/exim4/exim4.conf.template"))
        .expect("exim4.conf.template in the exim tree");
    host.etc("exim4/exim4.conf.template", &with_plain_server(&template));
    host.etc("exim4/update-exim4.conf.conf", UPDATE_EXIM4_CONF);
    host.etc("exim4/exim4.conf.localmacros", LOCALMACROS);
    host.etc("exim4/passwd", "");
    host.etc("mailname", "mail.example.org\n");
    scene.start(START, &[22, 25]);
    scene.fail_logins(
        Login::Smtp,
        attacker,
        SocketAddr::new(SERVER_V4.parse().unwrap(), 25),
        "office",
        3,
    );
    scene.wait_banned("exim", attacker);
    scene.assert_ports(&[
        (attacker, 25, false),
        (attacker, 22, true),
        (bystander, 25, true),
    ]);
}
