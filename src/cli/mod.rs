//! The `nftjail` command line: one clap subcommand per command, each implemented in its own
//! file, and the errors a command can end with.
//!
//! Receives parsed arguments from `main`; emits output on stdout/stderr and a [`CliError`] whose
//! [`exit_code`](CliError::exit_code) `main` returns. Commands that talk to the daemon go through
//! the control socket, found with `--socket` or in the configuration (`--config`), given before
//! or after the command name ([`target`]); none of them starts a daemon.

pub mod check;
pub mod control;
pub mod demo;
pub mod firewall;
pub mod http_token;
pub mod import_fail2ban;
pub mod log;
pub mod output;
pub mod run;
pub mod target;
pub mod test_filter;

use clap::{Parser, Subcommand};

use crate::config::Diagnostics;

/// nftjail: a native fail2ban replacement that bans straight into nftables sets.
#[derive(Debug, Parser)]
#[command(
    name = "nftjail",
    version,
    about,
    long_about = None,
    after_help = "Examples:\n  \
    nftjail check                        # validate /etc/nftjail; every key of every jail\n  \
    nftjail status                       # jails and counters\n  \
    nftjail log --since 1d               # bans and unbans of the last day\n  \
    nftjail ban manual 203.0.113.7 --for 180d\n  \
    nftjail test-filter sshd /var/log/auth.log\n\n\
    `nftjail help COMMAND` shows each command's own examples."
)]
pub struct Cli {
    /// Where the commands that talk to the daemon find it (also accepted after the command).
    #[command(flatten)]
    pub client: target::ClientArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// See nftjail work in seconds: a private network namespace, a replayed SSH attack, a real
    /// ban and a dropped connection; nothing of this host is touched (needs root).
    Demo(demo::DemoArgs),
    /// Run the daemon in the foreground (what the systemd unit starts).
    Run(run::RunArgs),
    /// Validate the configuration: every file, regex and reference; errors as PATH:LINE:COL.
    Check(check::CheckArgs),
    /// Run a filter over a log and print every failure it finds (nftjail's fail2ban-regex).
    TestFilter(test_filter::TestFilterArgs),
    /// Show the jails and their counters, or one jail in detail.
    Status(control::StatusArgs),
    /// Ban addresses or prefixes by hand, or a whole blocklist.
    Ban(control::BanArgs),
    /// Lift a ban, from one jail or from all.
    Unban(control::UnbanArgs),
    /// List every active ban: jail, since, expires, ban count.
    Banned(control::BannedArgs),
    /// Re-read the configuration; bans are kept, an invalid configuration is refused.
    Reload(control::ReloadArgs),
    /// The host firewall in the same table: status, enable (with --confirm-within), disable,
    /// confirm.
    Firewall(firewall::FirewallArgs),
    /// The firewall's rules: list, add, delete.
    Rule(firewall::RuleArgs),
    /// Port forwards (DNAT to a backend): list, add, delete.
    Forward(firewall::ForwardArgs),
    /// Print the HTTP API's bearer token ([http] token_file), or the console's address with it.
    HttpToken(http_token::HttpTokenArgs),
    /// Migrate a fail2ban installation: its jails and filters into an nftjail configuration
    /// (--config-dir, --out), its active bans into the running daemon (--db).
    #[command(name = "import-fail2ban")]
    ImportFail2ban(import_fail2ban::ImportArgs),
    /// Show the ban history: bans, unbans and expiries, with the log lines that led to a ban.
    Log(log::LogArgs),
}

/// How a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Wrong arguments (an unknown filter name, say): exit 2.
    #[error("{0}")]
    Usage(String),
    /// A configuration or filter file is invalid: exit 78 (EX_CONFIG).
    #[error("{0}")]
    Config(Diagnostics),
    /// A file or stream could not be read or written: exit 1.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The daemon cannot be reached: exit 2.
    #[error("{0}")]
    Connect(#[from] crate::control::client::ClientError),
    /// The daemon refused or failed the request: exit 1.
    #[error("{0}")]
    Refused(String),
    /// The daemon could not start: exit 77 (permission) or 70.
    #[error("{0}")]
    Start(#[from] crate::daemon::DaemonError),
    /// Standard output was closed by its reader (`| head`): exit 0, nothing to say.
    #[error("standard output closed")]
    ClosedPipe,
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Config(_) => 78,
            CliError::Io { .. } | CliError::Refused(_) => 1,
            CliError::Connect(_) => 2,
            CliError::Start(e) if e.is_permission() => 77,
            CliError::Start(e) if e.is_config() => 78,
            CliError::Start(_) => 70,
            CliError::ClosedPipe => 0,
        }
    }
}

/// Runs the command `cli` asks for.
pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Run(mut args) => {
            args.config = args.config.or(cli.client.config);
            run::run(&args)
        }
        Command::Check(mut args) => {
            args.config = args.config.or(cli.client.config);
            check::run(&args)
        }
        Command::TestFilter(args) => test_filter::run(&args),
        Command::Status(args) => control::status(&args.client.or(&cli.client).socket()?, &args),
        Command::Ban(args) => control::ban(&args.client.or(&cli.client).socket()?, &args),
        Command::Unban(args) => control::unban(&args.client.or(&cli.client).socket()?, &args),
        Command::Banned(args) => control::banned(&args.client.or(&cli.client).socket()?, &args),
        Command::Reload(args) => control::reload(&args.client.or(&cli.client).socket()?, &args),
        Command::Firewall(args) => firewall::firewall(&cli.client, &args),
        Command::Rule(args) => firewall::rule(&cli.client, &args),
        Command::Forward(args) => firewall::forward(&cli.client, &args),
        Command::HttpToken(mut args) => {
            args.config = args.config.or(cli.client.config);
            http_token::run(&args)
        }
        Command::ImportFail2ban(mut args) => {
            args.client = args.client.or(&cli.client);
            import_fail2ban::run(&args)
        }
        Command::Log(args) => log::run(&args.client.or(&cli.client).socket()?, &args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use std::path::PathBuf;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_command_has_examples() {
        let mut cli = Cli::command();
        for command in cli.get_subcommands_mut() {
            let help = command.render_long_help().to_string();
            assert!(
                help.contains("Examples:\n  ") && help.contains("nftjail "),
                "`nftjail {} --help` shows no example:\n{help}",
                command.get_name()
            );
        }
    }

    /// Regression: `--socket` was listed on `test-filter` and `check`, where it does nothing.
    #[test]
    fn socket_and_config_go_before_or_after_client_commands_only() {
        let cli = Cli::try_parse_from(["nftjail", "--socket", "/x", "status"]).unwrap();
        assert_eq!(cli.client.socket, Some(PathBuf::from("/x")));
        let cli = Cli::try_parse_from(["nftjail", "status", "--config", "/c.toml"]).unwrap();
        let Command::Status(args) = cli.command else {
            panic!()
        };
        assert_eq!(args.client.config, Some(PathBuf::from("/c.toml")));
        assert!(
            Cli::try_parse_from(["nftjail", "test-filter", "sshd", "-", "--socket", "/x"]).is_err()
        );
        assert!(Cli::try_parse_from(["nftjail", "check", "--socket", "/x"]).is_err());
        let cli = Cli::try_parse_from(["nftjail", "--config", "/c.toml", "check"]).unwrap();
        assert_eq!(cli.client.config, Some(PathBuf::from("/c.toml")));
    }
}
