//! Web servers Debian packages, each on its own host, with HTTP basic auth on a folder as an
//! administrator sets it up: failed logins ban the attacker on the HTTP ports while sshd still
//! answers.

use std::net::SocketAddr;

use super::attacker::SERVER_V4;
use super::logins::Login;
use super::root::Set;
use super::scene::Scene;

/// The protected folder.
const ADMIN: &str = "/admin/";

/// One user (`admin`, password `Tr0ub4dor&3`, APR1-MD5 as `htpasswd` or `openssl passwd -apr1`
/// writes it).
const HTPASSWD: &str = "admin:$apr1$nftjail$3KLKJxIhEKDrHM7hP..bz.\n";

/// A host with sshd and one web server, the attacker's failed basic-auth logins, and the ports
/// checked: HTTP dropped for the attacker, sshd answering; a bystander still gets HTTP.
fn web_attack_is_banned_on_http_ports_only(
    tag: &str,
    set: Set,
    jail: &str,
    local: &str,
    configure: impl FnOnce(&Scene) -> String,
) {
    let (attacker, bystander) = ("192.0.2.41", "192.0.2.42");
    let scene = Scene::beside_sshd(
        tag,
        set,
        jail,
        local,
        &[attacker, bystander],
        configure,
        &[80],
    );
    // Two users the server does not know, then a wrong password for the one it knows: the
    // error log words them differently.
    let http = SocketAddr::new(SERVER_V4.parse().unwrap(), 80);
    scene.fail_logins(Login::Http(ADMIN), attacker, http, "webmaster", 2);
    scene.fail_login_as(Login::Http(ADMIN), attacker, http, "admin");
    scene.wait_banned(jail, attacker);
    scene.assert_ports(&[
        (attacker, 80, false),
        (attacker, 22, true),
        (bystander, 80, true),
    ]);
}

#[test]
#[ignore = "needs root and the daemons"]
fn nginx_basic_auth_bans_its_attacker_on_the_http_ports_only() {
    let local =
        "[nginx-http-auth]\nenabled = true\nlogpath = [\"{log}/nginx/error.log\"]\nmaxretry = 3\n";
    web_attack_is_banned_on_http_ports_only(
        "nginx",
        Set::Nginx,
        "nginx-http-auth",
        local,
        |scene| {
            // Debian's default site (the postinst links it into sites-enabled) with basic auth
            // on /admin/.
            let host = &scene.host;
            let site = std::fs::read_to_string(
                Set::Nginx.tree().join("etc/nginx/sites-available/default"),
            )
            .expect("sites-available/default in the nginx tree");
            let protected = format!(
                "location {ADMIN} {{\n\t\tauth_basic \"Administration\";\n\t\tauth_basic_user_file /etc/nginx/htpasswd;\n\t}}\n\n\tlocation / {{"
            );
            assert!(
                site.contains("location / {"),
                "Debian's default site changed"
            );
            host.etc(
                "nginx/sites-enabled/default",
                &site.replacen("location / {", &protected, 1),
            );
            host.etc("nginx/htpasswd", HTPASSWD);
            "mkdir -p /var/log/nginx /var/lib/nginx /var/www/html\nnginx\n".to_string()
        },
    );
}

/// What apache2's postinst does on a fresh install (default MPM, modules, configuration and
/// site), then the administrator's `a2enconf admin`, then `apache2ctl start`.
const APACHE_START: &str = "mkdir -p /var/log/apache2 /var/lib/apache2 /var/www/html
a2enmod -m -q mpm_event
for module in authz_host auth_basic access_compat authn_file authz_user alias dir autoindex \\
    env mime negotiation setenvif filter deflate status reqtimeout; do
  a2enmod -m -q $module
done
for conf in charset localized-error-pages other-vhosts-access-log security serve-cgi-bin; do
  a2enconf -m -q $conf
done
a2ensite -q 000-default
a2enconf -q admin
apache2ctl start
";

#[test]
#[ignore = "needs root and the daemons"]
fn apache_basic_auth_bans_its_attacker_on_the_http_ports_only() {
    let local =
        "[apache-auth]\nenabled = true\nlogpath = [\"{log}/apache2/error.log\"]\nmaxretry = 3\n";
    web_attack_is_banned_on_http_ports_only("apache", Set::Apache, "apache-auth", local, |scene| {
        let host = &scene.host;
        host.etc(
            "apache2/conf-available/admin.conf",
            &format!(
                "<Location {ADMIN}>\n    AuthType Basic\n    AuthName \"Administration\"\n    \
                 AuthUserFile /etc/apache2/htpasswd\n    Require valid-user\n</Location>\n"
            ),
        );
        host.etc("apache2/htpasswd", HTPASSWD);
        APACHE_START.to_string()
    });
}
