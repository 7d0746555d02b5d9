//! Real daemons, not only recorded lines: the services Debian 12 packages run in a private root
//! inside a network namespace, log through a real rsyslogd in Debian's default format, take
//! real failed logins from an attackers' namespace, and the shipped jails ban each attacker on
//! that service's ports only (checked with real packets).
//!
//! Layout:
//! - `fetch-daemons` (script): downloads and unpacks the packages once (`target/tmp/real-daemons`)
//! - `private-root` (script): the daemons' view of the machine (overlays, /dev, /run, /var/log)
//! - `root`: the package sets and their trees
//! - `host`: the server's private root, its users, rsyslogd and daemons
//! - `attacker`: the attackers' namespace, connections from a chosen address, ssh
//! - `logins`: failed logins over IMAP, POP3, SMTP AUTH, FTP and HTTP basic auth
//! - `scene`: nftjail with the shipped jails, the host and the attackers together
//! - one module per daemon family: `mail` (sshd, dovecot, postfix), `exim`, `ftp` (proftpd,
//!   vsftpd, pure-ftpd), `web` (nginx and apache2 with basic
//!   auth), `roundcube` (with apache2, mod_php and dovecot)
//!
//! Each test is `#[ignore = "needs root and the daemons"]`; `--include-ignored` (CI) runs them,
//! and a daemon that cannot be fetched or started fails the test. The logs of the last run stay
//! in `target/tmp/real-logs/` (the filters' corpora take their lines from there).

mod attacker;
mod exim;
mod ftp;
mod host;
mod logins;
mod mail;
mod root;
mod roundcube;
mod scene;
mod web;
