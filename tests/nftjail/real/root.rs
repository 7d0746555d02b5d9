//! The daemons' Debian packages, unpacked once per machine by `fetch-daemons` into
//! `target/tmp/real-daemons/SET/` (one tree per set of packages that can be installed together).
//!
//! Receives: nothing but the set names. Emits: the tree of each set. Never installs a package,
//! runs a maintainer script or starts a service of the host.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// A set of packages unpacked into one tree. Keep in step with `sets` in `fetch-daemons`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Set {
    Rsyslog,
    Ssh,
    /// postfix and dovecot (imapd, pop3d).
    Mail,
    Proftpd,
    Vsftpd,
    PureFtpd,
    /// exim4 (Debian's light daemon and its configuration): conflicts with postfix.
    Exim,
    Nginx,
    Apache,
    /// roundcube-core with SQLite, apache2 and mod_php.
    Roundcube,
}

impl Set {
    pub fn name(self) -> &'static str {
        match self {
            Set::Rsyslog => "rsyslog",
            Set::Ssh => "ssh",
            Set::Mail => "mail",
            Set::Proftpd => "proftpd",
            Set::Vsftpd => "vsftpd",
            Set::PureFtpd => "pure-ftpd",
            Set::Exim => "exim",
            Set::Nginx => "nginx",
            Set::Apache => "apache",
            Set::Roundcube => "roundcube",
        }
    }

    /// The set's unpacked tree (fetching every set first if needed).
    pub fn tree(self) -> PathBuf {
        trees().join(self.name())
    }
}

/// This folder of the source tree (the shell scripts beside this file).
pub fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/nftjail/real")
}

/// Where the trees are: fetched and unpacked by `fetch-daemons` on first use in this process
/// (a no-op when its stamp is current). Panics with the script's output when it fails: a test
/// that cannot get its daemons fails, it never passes without them.
pub fn trees() -> &'static Path {
    static TREES: OnceLock<PathBuf> = OnceLock::new();
    TREES.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("real-daemons");
        let out = Command::new(scripts().join("fetch-daemons"))
            .arg(&dir)
            .output()
            .expect("run tests/nftjail/real/fetch-daemons");
        assert!(
            out.status.success(),
            "fetch-daemons could not download and unpack the daemons' Debian packages (needs \
             root and Debian's package archive): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}
