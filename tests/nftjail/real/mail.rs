//! sshd, Dovecot (IMAP, POP3) and Postfix with SASL through Dovecot on one mail host, as Debian
//! 12 installs them, logging through rsyslogd to `auth.log` and `mail.log`: each attacker is
//! banned by its service's jail, on that jail's ports only.

use std::net::SocketAddr;

use super::attacker::{SERVER_V4, SERVER_V6};
use super::logins::Login;
use super::root::Set;
use super::scene::Scene;

const JAILS: &[&str] = &["sshd", "dovecot", "postfix-sasl"];

const LOCAL: &str = r#"# What an administrator adds in jail.d/99-local.toml: the jails on, reading rsyslog's files.
[sshd]
logpath = ["{log}/auth.log"]
maxretry = 3

[dovecot]
enabled = true
logpath = ["{log}/mail.log"]
maxretry = 3

[postfix-sasl]
enabled = true
logpath = ["{log}/mail.log"]
maxretry = 3
"#;

/// Dovecot's local.conf: plaintext logins allowed without TLS (the bot does not start TLS), the
/// protocols the imapd and pop3d packages' scripts would enable, and the SASL socket Postfix's
/// smtpd (chrooted in /var/spool/postfix) uses.
pub(super) const DOVECOT_LOCAL: &str = "protocols = imap pop3
disable_plaintext_auth = no
auth_mechanisms = plain login
service auth {
  unix_listener /var/spool/postfix/private/auth {
    mode = 0660
    user = postfix
    group = postfix
  }
}
";

/// What Debian's postinst and an administrator add to main.cf for SASL through Dovecot.
const POSTFIX_MAIN: &str = "myhostname = mail.example.org
mydestination = $myhostname, localhost
mynetworks = 127.0.0.0/8 [::1]/128
inet_interfaces = all
inet_protocols = all
alias_maps =
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = private/auth
smtpd_relay_restrictions = permit_mynetworks permit_sasl_authenticated defer_unauth_destination
";

/// The start of each daemon (postfix first: dovecot's SASL socket goes into its queue), after what its maintainer script would have done (host keys, the
/// snakeoil certificate, postfix's queue and permissions, the chroot's copies of /etc files).
const START: &str = r#"ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
mkdir -p /run/sshd
/usr/sbin/sshd
mkdir -p /var/spool/postfix/etc /var/spool/postfix/dev /var/lib/postfix /var/mail
for f in localtime hosts services resolv.conf nsswitch.conf; do cp /etc/$f /var/spool/postfix/etc/; done
chown postfix /var/lib/postfix
postfix set-permissions >/dev/null 2>&1 || true
postfix start
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=mail \
  -days 2 -keyout /etc/dovecot/private/dovecot.key -out /etc/dovecot/private/dovecot.pem 2>/dev/null
dovecot
"#;

#[test]
#[ignore = "needs root and the daemons"]
fn sshd_dovecot_and_postfix_each_ban_their_attacker_on_their_ports_only() {
    let (ssh4, ssh6, imap, pop3, smtp) = (
        "192.0.2.11",
        "2001:db8::11",
        "192.0.2.12",
        "192.0.2.13",
        "192.0.2.14",
    );
    let mut scene = Scene::new(
        "mail",
        &[Set::Ssh, Set::Mail],
        JAILS,
        LOCAL,
        &[ssh4, ssh6, imap, pop3, smtp],
    );
    let host = &scene.host;
    host.etc_from_tree(Set::Ssh, "usr/share/openssh/sshd_config", "ssh/sshd_config");
    host.etc_from_tree(
        Set::Mail,
        "usr/share/dovecot/dovecot.conf",
        "dovecot/dovecot.conf",
    );
    // dovecot-core's postinst copies its configuration from /usr/share/dovecot to /etc.
    host.etc_dir_from_tree(Set::Mail, "usr/share/dovecot/conf.d", "dovecot/conf.d");
    host.etc("dovecot/local.conf", DOVECOT_LOCAL);
    host.etc_from_tree(
        Set::Mail,
        "usr/share/postfix/master.cf.dist",
        "postfix/master.cf",
    );
    let main = host.etc_from_tree(
        Set::Mail,
        "usr/share/postfix/main.cf.debian",
        "postfix/main.cf",
    );
    host.etc("postfix/main.cf", &format!("{main}\n{POSTFIX_MAIN}"));
    scene.start(START, &[22, 25, 110, 143]);

    let v4 = |port| SocketAddr::new(SERVER_V4.parse().unwrap(), port);
    let work = |name| scene.nftjail.path(name);
    // sshd counts "Invalid user" too: the ban may cut a client before its last try.
    let _ssh_clients = [
        scene.attackers.ssh(
            &work("ssh4"),
            ssh4,
            &format!("root@{SERVER_V4}"),
            "Winter2026!",
            3,
        ),
        scene.attackers.ssh(
            &work("ssh6"),
            ssh6,
            &format!("admin@{SERVER_V6}"),
            "Winter2026!",
            3,
        ),
    ];
    std::thread::scope(|s| {
        s.spawn(|| scene.fail_logins(Login::Imap, imap, v4(143), "info", 3));
        s.spawn(|| scene.fail_logins(Login::Pop3, pop3, v4(110), "sales", 3));
        s.spawn(|| scene.fail_logins(Login::Smtp, smtp, v4(25), "office", 3));
    });
    for (jail, address) in [
        ("sshd", ssh4),
        ("sshd", ssh6),
        ("dovecot", imap),
        ("dovecot", pop3),
        ("postfix-sasl", smtp),
    ] {
        scene.wait_banned(jail, address);
        assert_eq!(
            scene.jails_of(address, JAILS),
            [jail],
            "{address}: banned by its service's jail only"
        );
    }
    scene.assert_ports(&[
        // sshd's port only.
        (ssh4, 22, false),
        (ssh4, 25, true),
        (ssh4, 143, true),
        (ssh6, 22, false),
        (ssh6, 25, true),
        // dovecot: pop3, imap (and their TLS ports, submission, sieve), not ssh or smtp.
        (imap, 143, false),
        (imap, 110, false),
        (imap, 22, true),
        (imap, 25, true),
        (pop3, 110, false),
        (pop3, 22, true),
        // postfix-sasl: smtp and the mailbox ports, not ssh.
        (smtp, 25, false),
        (smtp, 143, false),
        (smtp, 22, true),
    ]);
}
