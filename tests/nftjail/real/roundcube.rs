//! Roundcube 1.6 as Debian 12 packages it (roundcube-core with SQLite, Apache with mod_php) in
//! front of Dovecot's IMAP on the same host: failed webmail logins, each a real browser's two
//! requests (the login page for its session cookie and request token, then the form), ban the
//! attacker on the HTTP ports while IMAP and sshd still answer.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::attacker::{Attackers, SERVER_V4};
use super::mail::DOVECOT_LOCAL;
use super::root::Set;
use super::scene::Scene;

/// `backend = "file"`: Roundcube creates errors.log at its first error, so at nftjail's start
/// no logpath exists and `auto` would choose the jail's journalmatch instead, for good.
const LOCAL: &str = "[roundcube-auth]\nenabled = true\nbackend = \"file\"\nlogpath = [\"{log}/roundcube/errors.log\"]\nmaxretry = 3\n";

/// What the maintainer scripts do on a fresh install, in order: sshd's host key; dovecot's
/// certificate; PHP's module files enabled for every SAPI and php.ini-production in place
/// (php8.2-*'s postinsts); Apache's defaults with mod_php on the prefork MPM
/// (libapache2-mod-php8.2's postinst); Roundcube's SQLite database from its initial schema
/// (dbconfig-common), its log folder and the Apache configuration linked and enabled.
const START: &str = r#"ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
mkdir -p /run/sshd
/usr/sbin/sshd
mkdir -p /var/spool/postfix/private
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=mail \
  -days 2 -keyout /etc/dovecot/private/dovecot.key -out /etc/dovecot/private/dovecot.pem 2>/dev/null
dovecot
mkdir -p /etc/php/8.2/mods-available /etc/php/8.2/apache2/conf.d /etc/php/8.2/cli/conf.d
cp /usr/share/php8.2-*/*/*.ini /etc/php/8.2/mods-available/
cp /usr/lib/php/8.2/php.ini-production /etc/php/8.2/apache2/php.ini
cp /usr/lib/php/8.2/php.ini-production.cli /etc/php/8.2/cli/php.ini
phpenmod -v 8.2 -s ALL $(cd /etc/php/8.2/mods-available && ls | sed 's/\.ini$//')
mkdir -p /var/log/apache2 /var/lib/apache2 /var/www/html
a2enmod -m -q mpm_prefork
for module in authz_host auth_basic access_compat authn_file authz_user alias dir autoindex \
    env mime negotiation setenvif filter deflate status reqtimeout php8.2; do
  a2enmod -m -q $module
done
a2ensite -q 000-default
db=/var/lib/dbconfig-common/sqlite3/roundcube
mkdir -p $db /var/log/roundcube
php8.2 -r '$db = new PDO("sqlite:/var/lib/dbconfig-common/sqlite3/roundcube/roundcube");
  $db->exec(file_get_contents("/usr/share/roundcube/SQL/sqlite.initial.sql"));'
chown -R www-data $db /var/log/roundcube /var/lib/roundcube/temp
ln -s ../../roundcube/apache.conf /etc/apache2/conf-available/roundcube.conf
a2enconf -q roundcube
apache2ctl start
"#;

/// dbconfig-common's answers for SQLite.
const DEBIAN_DB: &str = "<?php\n$dbuser='roundcube';\n$dbpass='';\n$basepath='/var/lib/dbconfig-common/sqlite3/roundcube';\n$dbname='roundcube';\n$dbserver='';\n$dbport='';\n$dbtype='sqlite3';\n";

/// One HTTP request on its own connection from `from`, read to its end.
fn http(from: IpAddr, to: SocketAddr, request: &str) -> String {
    let mut stream = Attackers::connect_from(from, to, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("HTTP from {from} to {to}: {e}"));
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// The text between `before` and the next `after` in `text`.
fn between<'a>(text: &'a str, before: &str, after: &str) -> Option<&'a str> {
    let start = text.find(before)? + before.len();
    let len = text[start..].find(after)?;
    Some(&text[start..start + len])
}

/// A failed Roundcube login from `from`, as a browser makes it; returns the answer's status
/// line (panics with the answers when the login page or the refusal is not what a browser gets).
fn fail_roundcube_login(from: &str, user: &str, password: &str) -> String {
    let from: IpAddr = from.parse().unwrap();
    let to = SocketAddr::new(SERVER_V4.parse().unwrap(), 80);
    let page = http(
        from,
        to,
        "GET /roundcube/ HTTP/1.1\r\nHost: mail.example.org\r\nConnection: close\r\n\r\n",
    );
    let (Some(session), Some(token)) = (
        between(&page, "roundcube_sessid=", ";"),
        between(&page, "name=\"_token\" value=\"", "\""),
    ) else {
        panic!("no session cookie or request token on Roundcube's login page:\n{page}");
    };
    let body = format!(
        "_token={token}&_task=login&_action=login&_timezone=UTC&_url=&_user={user}&_pass={password}"
    );
    let answer = http(
        from,
        to,
        &format!(
            "POST /roundcube/?_task=login HTTP/1.1\r\nHost: mail.example.org\r\nCookie: roundcube_sessid={session}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    let status = answer.lines().next().unwrap_or_default().to_string();
    assert!(
        status.contains(" 401 "),
        "not a refused Roundcube login:\n{answer}"
    );
    status
}

#[test]
#[ignore = "needs root and the daemons"]
fn roundcube_bans_its_attacker_on_the_http_ports_only() {
    let (attacker, bystander) = ("192.0.2.51", "192.0.2.52");
    let mut scene = Scene::new(
        "roundcube",
        &[Set::Ssh, Set::Mail, Set::Roundcube],
        &["roundcube-auth"],
        LOCAL,
        &[attacker, bystander],
    );
    let host = &scene.host;
    host.etc_from_tree(Set::Ssh, "usr/share/openssh/sshd_config", "ssh/sshd_config");
    host.etc_from_tree(
        Set::Mail,
        "usr/share/dovecot/dovecot.conf",
        "dovecot/dovecot.conf",
    );
    host.etc_dir_from_tree(Set::Mail, "usr/share/dovecot/conf.d", "dovecot/conf.d");
    host.etc("dovecot/local.conf", DOVECOT_LOCAL);
    // roundcube-core's postinst writes config.inc.php from the sample with a random des_key;
    // the administrator uncomments the Alias in /etc/roundcube/apache.conf.
    let sample = std::fs::read_to_string(
        Set::Roundcube
            .tree()
            .join("usr/share/roundcube/config.inc.php.sample"),
    )
    .expect("config.inc.php.sample in the roundcube tree");
    host.etc(
        "roundcube/config.inc.php",
        &sample.replace("rcmail-!24ByteDESkey*Str", "nftjail-test-des-key-24c"),
    );
    host.etc("roundcube/debian-db.php", DEBIAN_DB);
    let apache = host.etc_from_tree(
        Set::Roundcube,
        "etc/roundcube/apache.conf",
        "roundcube/apache.conf",
    );
    host.etc(
        "roundcube/apache.conf",
        &apache.replace(
            "#    Alias /roundcube /var/lib/roundcube/public_html",
            "Alias /roundcube /var/lib/roundcube/public_html",
        ),
    );
    scene.start(START, &[22, 80, 143]);
    scene.attackers.ns.enter(|| {
        std::thread::scope(|scope| {
            for i in 0..3 {
                scope.spawn(move || {
                    fail_roundcube_login(attacker, &format!("info{i}"), "Winter2026")
                });
            }
        })
    });
    scene.wait_banned("roundcube-auth", attacker);
    scene.assert_ports(&[
        (attacker, 80, false),
        (attacker, 143, true),
        (attacker, 22, true),
        (bystander, 80, true),
    ]);
}
