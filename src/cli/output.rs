//! Standard output and standard error of the commands.
//!
//! Receives the text a command prints; emits it on stdout (or stderr). A reader that goes away
//! (`nftjail banned | head -3` closes the pipe: EPIPE, as Rust ignores SIGPIPE) ends the command
//! quietly with [`CliError::ClosedPipe`] (exit 0, no message), as `ls | head` does; any other
//! write error is an error naming standard output. Nothing here panics: `println!` panics on
//! EPIPE, so commands print through [`outln!`](crate::outln) and [`errln!`](crate::errln)
//! instead. Messages on stderr are best effort: if stderr itself is gone there is no one to
//! tell.

use std::fmt;
use std::io::{self, Write};

use super::CliError;

/// Writes `text` to standard output as it is.
pub fn print(text: &str) -> Result<(), CliError> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(stdout_error)
}

/// Writes one formatted line to standard output (see [`outln!`](crate::outln)).
pub fn line(args: fmt::Arguments<'_>) -> Result<(), CliError> {
    let mut out = io::stdout().lock();
    out.write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush())
        .map_err(stdout_error)
}

/// Writes one formatted line to standard error, ignoring failures (see
/// [`errln!`](crate::errln)).
pub fn error_line(args: fmt::Arguments<'_>) {
    let mut err = io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|()| err.write_all(b"\n"));
}

/// What a failed write to standard output means for the command.
pub fn stdout_error(error: io::Error) -> CliError {
    if error.kind() == io::ErrorKind::BrokenPipe {
        CliError::ClosedPipe
    } else {
        CliError::Io {
            what: "cannot write to standard output".into(),
            source: error,
        }
    }
}

/// `println!` that returns `Result<(), CliError>` instead of panicking on a closed pipe.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::output::line(format_args!($($arg)*))
    };
}

/// `eprintln!` that never panics (a closed stderr is ignored).
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::cli::output::error_line(format_args!($($arg)*))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_pipe_is_a_quiet_success_other_errors_are_not() {
        let closed = stdout_error(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(matches!(closed, CliError::ClosedPipe));
        assert_eq!(closed.exit_code(), 0);
        let full = stdout_error(io::Error::from(io::ErrorKind::StorageFull));
        assert_eq!(full.exit_code(), 1);
        assert!(full.to_string().contains("standard output"), "{full}");
    }
}
