//! fail2ban 1.0.2's filters and jail configuration, read and matched exactly as fail2ban does,
//! without I/O.
//!
//! Receives: fail2ban files through the caller's [`Loader`] (the daemon reads the file system),
//! filter references in fail2ban's syntax (`sshd[mode=aggressive]`,
//! `/etc/fail2ban/filter.d/exim.conf`), log lines with `now` and the log's [`Zone`].
//! Emits: compiled [`Fail2banFilter`]s, per-source [`Fail2banMatcher`]s that report [`Found`]
//! failures as fail2ban would, fail2ban's effective jails ([`Fail2banJails`]), and every problem
//! as a [`Finding`] with its file and line (a [`crate::diag::Diagnostic`] at the boundary).
//! Never: reads a file, the clock or the system zone; resolves a host name (`usedns` is `no`:
//! `<HOST>` matches addresses, a filter that can only capture host names finds nothing); runs
//! an action.
//!
//! Regexes run on PCRE2 (JIT, UTF, UCP) behind a translation of Python's `re` syntax: it is the
//! one engine that compiles every regex of fail2ban's stock filters and agrees with Python on
//! all of fail2ban's own test corpus; nftjail's TOML filters stay on the `regex` crate.
//!
//! # Layout
//!
//! - `python_re`: Python `re` semantics on PCRE2 (syntax translation, search, sub).
//! - `loader`: the [`Loader`] trait through which the caller provides files.
//! - `finding`: [`Finding`], a problem with its file and line.
//! - `ini`: fail2ban's configuration reader (ConfigParser, includes, `.local`, interpolation).
//! - `options`: `name[key=value,…]` option syntax ([`FilterSpec`]) and word lists.
//! - `tags`: the recursive `<tag>` substitution.
//! - `address`: address text → [`std::net::IpAddr`] as fail2ban parses it.
//! - `date`: the date detector, its templates, strptime and time zones.
//! - `filter`: [`Fail2banFilter`], a filter file read and compiled.
//! - `matcher`: [`Fail2banMatcher`], the stateful per-source line matcher.
//! - `jail`: [`Fail2banJails`], fail2ban's jail configuration read as fail2ban reads it.

pub mod address;
pub mod date;
pub mod filter;
pub mod finding;
pub mod ini;
pub mod jail;
pub mod loader;
pub mod matcher;
pub mod options;
pub mod python_re;
pub mod tags;

pub use date::{LocalRules, PosixZone, Zone};
pub use filter::{Fail2banFilter, LoadSettings};
pub use finding::{Finding, Place, Severity};
pub use jail::{BanactionKind, Fail2banJail, Fail2banJails};
pub use loader::Loader;
pub use matcher::{Fail2banMatcher, Found};
pub use options::FilterSpec;
