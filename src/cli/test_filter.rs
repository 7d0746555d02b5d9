//! `nftjail test-filter FILTER LOG`: runs a filter over a log file and prints each failure.
//!
//! Receives a filter (built-in name, `.toml` path, or a fail2ban filter file with fail2ban's
//! option syntax, `sshd.conf[mode=aggressive]`) and a log (file or `-` for stdin); emits one
//! line per failure on stdout (readable, or one JSON object per line with `--json`) and a
//! summary on stderr: lines read, failures, ignored, skipped with reasons, lines per second.
//! Lines that are not failures print nothing. Blank lines and lines starting with `#` are
//! counted apart and never matched (as fail2ban-regex does: annotated sample logs read alike). This is the filter stage's only I/O edge; it
//! never talks to the daemon.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Datelike, NaiveDateTime, Timelike, Utc};
use clap::Args;

use super::{CliError, output};
use crate::errln;
use crate::fail2ban::{FAIL2BAN_DIR, Fail2banOptions, is_fail2ban_reference};
use crate::filter::engine::{AnyMatcher, AnyScreener, CompiledFilter};
use crate::filter::pipe::{self, BATCH_BYTES};
use nftjail_core::filter::{
    DatePattern, Failure, FilterFile, FilterOptions, LogTimeZone, MAX_LINE, Outcome, ScreenedLines,
    SkipReason, builtin,
};
use nftjail_core::hash::FastSet;

/// Arguments of `nftjail test-filter`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  nftjail test-filter sshd /var/log/auth.log\n  \
    journalctl -u ssh -o short-iso | nftjail test-filter sshd - --mode aggressive --json\n  \
    nftjail test-filter /etc/nftjail/filter.d/myapp.toml /var/log/myapp.log\n  \
    nftjail test-filter '/etc/fail2ban/filter.d/sshd.conf[mode=aggressive]' /var/log/auth.log\n  \
    nftjail test-filter 'postfix[mode=extra]' /var/log/mail.log    # fail2ban's, from /etc/fail2ban"
)]
pub struct TestFilterArgs {
    /// A built-in filter name (sshd, postfix, postfix-sasl, dovecot, exim, exim-spam, proftpd,
    /// pure-ftpd, vsftpd, apache-auth, nginx-http-auth, pam-generic, roundcube-auth, sogo-auth,
    /// webmin-auth, directadmin, panel), the path of a filter .toml file, or a fail2ban filter:
    /// a .conf path or a name with fail2ban's options (`exim.conf`, `sshd[mode=aggressive]`;
    /// names resolve under --fail2ban-dir).
    #[arg(value_name = "FILTER")]
    pub filter: String,

    /// The log file to read, or `-` for standard input.
    #[arg(value_name = "LOG")]
    pub log: PathBuf,

    /// The filter mode (fail2ban's: normal, ddos, extra, aggressive, …); default: the filter's.
    #[arg(long, value_name = "M")]
    pub mode: Option<String>,

    /// Print one JSON object per failure: {"line": N, "host": …, "time": …, "user": …}.
    #[arg(long)]
    pub json: bool,

    /// Where and how the log writes its time, strftime-like (e.g. "%Y-%m-%d %H:%M:%S"; a
    /// leading ^ anchors it at the line start; "none": lines carry no time).
    /// For a fail2ban filter: fail2ban's datepattern syntax (`{^LN-BEG}%Y-%m-%d`, `EPOCH`).
    #[arg(long, value_name = "PATTERN")]
    pub datepattern: Option<String>,

    /// Zone of times written without an offset: local, UTC, UTC+0200, +02:00, -0500.
    #[arg(long, value_name = "ZONE", default_value = "local")]
    pub logtimezone: LogTimeZone,

    /// The current time for year inference, RFC 3339 (default: the clock). Makes runs over old
    /// syslog files reproducible.
    #[arg(long, value_name = "TIME")]
    pub now: Option<DateTime<Utc>>,

    /// fail2ban's configuration directory: fail2ban filter names resolve in its filter.d/.
    #[arg(long, value_name = "DIR", default_value = FAIL2BAN_DIR)]
    pub fail2ban_dir: PathBuf,
}

/// What a run counted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub lines: u64,
    /// Blank lines and comments (`#` first): counted in `lines`, never matched nor skipped.
    pub comments: u64,
    pub failures: u64,
    pub ignored: u64,
    pub no_match: u64,
    pub skipped: BTreeMap<SkipReason, u64>,
    pub addresses: usize,
}

pub fn run(args: &TestFilterArgs) -> Result<(), CliError> {
    let now = args.now.unwrap_or_else(Utc::now);
    let (filter, name) = compile(args)?;
    let mut matcher = filter.matcher(crate::filter::zone::system());
    let log_name = if args.log == Path::new("-") {
        "stdin".into()
    } else {
        args.log.display().to_string()
    };
    let input: Box<dyn Read + Send> = if args.log == Path::new("-") {
        Box::new(io::stdin())
    } else {
        Box::new(File::open(&args.log).map_err(|source| CliError::Io {
            what: format!("cannot open log {log_name:?}"),
            source,
        })?)
    };
    let stdout = io::stdout().lock();
    let mut out = BufWriter::with_capacity(1 << 16, stdout);
    let started = Instant::now();
    let summary = scan(&mut matcher, input, now, |number, failure| {
        write_failure(&mut out, number, failure, args.json)
    })
    .map_err(|e| match e {
        ScanError::Read(source) => CliError::Io {
            what: format!("cannot read log {log_name:?}"),
            source,
        },
        ScanError::Write(source) => output::stdout_error(source),
    })?;
    out.flush().map_err(output::stdout_error)?;
    let elapsed = started.elapsed().as_secs_f64();
    errln!(
        "{}",
        report(
            &summary,
            &name,
            &filter.mode(),
            filter.regex_count(),
            &log_name,
            elapsed
        )
        .trim_end()
    );
    Ok(())
}

/// The filter named on the command line, compiled with the command's options, and its name.
fn compile(args: &TestFilterArgs) -> Result<(CompiledFilter, String), CliError> {
    if is_fail2ban_reference(&args.filter) {
        let options = Fail2banOptions {
            mode: args.mode.clone(),
            datepattern: args.datepattern.clone(),
            log_time_zone: (args.logtimezone != LogTimeZone::Local)
                .then(|| args.logtimezone.to_string()),
            journal: false,
        };
        // The year window of `%ExY` comes from the clock at load, as fail2ban's does (not from
        // `--now`, which only stands in for the time lines are matched at).
        let filter = crate::fail2ban::load_filter(
            &args.filter,
            &args.fail2ban_dir,
            &options,
            crate::fail2ban::unix_now(),
        )
        .map_err(CliError::Config)?;
        for warning in filter.warnings() {
            errln!("{} (warning)", warning.to_diagnostic());
        }
        return Ok((CompiledFilter::Fail2ban(filter), args.filter.clone()));
    }
    let file = load_filter(&args.filter)?;
    let datepattern = match &args.datepattern {
        Some(text) => Some(
            text.parse::<DatePattern>()
                .map_err(|e| CliError::Usage(format!("--datepattern {text:?}: {e}")))?,
        ),
        None => None,
    };
    let options = FilterOptions {
        mode: args.mode.clone(),
        datepattern,
        timezone: args.logtimezone,
    };
    let filter = file.compile(&options).map_err(CliError::Config)?;
    let name = filter.name().to_string();
    Ok((CompiledFilter::Native(Arc::new(filter)), name))
}

/// The filter named on the command line: a path if it looks like one, else a built-in.
fn load_filter(name: &str) -> Result<FilterFile, CliError> {
    let looks_like_path = name.contains('/') || name.ends_with(".toml");
    if looks_like_path {
        let path = Path::new(name);
        let text = std::fs::read_to_string(path).map_err(|source| CliError::Io {
            what: format!("cannot read filter {name:?}"),
            source,
        })?;
        return FilterFile::parse(path, &text).map_err(CliError::Config);
    }
    match builtin::load(name) {
        Some(parsed) => parsed.map_err(CliError::Config),
        None => {
            let known = builtin::names().collect::<Vec<_>>().join(", ");
            Err(CliError::Usage(format!(
                "{name:?} is neither a built-in filter ({known}) nor a filter file (give a path with a / or ending in .toml)"
            )))
        }
    }
}

/// Why [`scan`] stopped.
#[derive(Debug)]
pub enum ScanError {
    Read(io::Error),
    Write(io::Error),
}

/// Feeds every line of `input` to `matcher`, calling `on_failure` with the 1-based line number.
/// Lines longer than [`MAX_LINE`] are skipped without being held in memory whole.
///
/// Two threads share the work, as in the daemon: one reads, splits and screens the lines (the
/// checks that need no rule's regex), the caller's finishes those left, in order, and reports.
pub fn scan<R: Read + Send>(
    matcher: &mut AnyMatcher,
    input: R,
    now: DateTime<Utc>,
    mut on_failure: impl FnMut(u64, &Failure) -> io::Result<()>,
) -> Result<Summary, ScanError> {
    let mut screener = matcher.screener();
    std::thread::scope(|scope| {
        let (to_finish, screened) = pipe::channel::<Screened, Screened>();
        let reader = scope.spawn(move || read_and_screen(input, &mut screener, to_finish));
        let mut summary = Summary::default();
        let mut addresses: FastSet<IpAddr> = FastSet::default();
        let mut written = Ok(());
        while let Some(mut batch) = screened.recv() {
            for (index, &number) in batch.numbers.iter().enumerate() {
                match matcher.finish(&batch.lines, index, now) {
                    Outcome::Failure(failure) => {
                        summary.failures += 1;
                        addresses.insert(failure.host);
                        written = on_failure(number, &failure);
                        if written.is_err() {
                            break;
                        }
                    }
                    outcome => summary.count(outcome),
                }
            }
            if written.is_err() {
                break; // the reader stops at its next batch, finding nobody to take it
            }
            batch.lines.clear();
            batch.numbers.clear();
            screened.give_back(batch);
        }
        drop(screened);
        let read = reader
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        written.map_err(ScanError::Write)?;
        let read = read.map_err(ScanError::Read)?;
        summary.lines = read.lines;
        summary.comments = read.comments;
        summary.no_match += read.no_match;
        for (reason, n) in read.skipped {
            *summary.skipped.entry(reason).or_default() += n;
        }
        summary.addresses = addresses.len();
        Ok(summary)
    })
}

/// Screened lines on their way from the reading thread, with their line numbers.
#[derive(Default)]
struct Screened {
    lines: ScreenedLines,
    numbers: Vec<u64>,
}

impl Summary {
    /// Counts an outcome that is not a failure.
    fn count(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Failure(_) => self.failures += 1,
            Outcome::Ignored => self.ignored += 1,
            // test-filter sets no age limit: every line is matched.
            Outcome::NoMatch | Outcome::TooOld => self.no_match += 1,
            Outcome::Skipped(reason) => *self.skipped.entry(reason).or_default() += 1,
        }
    }
}

/// The reading thread of [`scan`]: reads `input`, splits it into lines and screens them,
/// sending the lines left in batches; returns what it counted of the lines it decided (its
/// `lines` is every line read). Stops early, without error, when nobody takes its batches.
fn read_and_screen<R: Read>(
    mut input: R,
    screener: &mut AnyScreener,
    to_finish: pipe::Sender<Screened, Screened>,
) -> io::Result<Summary> {
    let mut summary = Summary::default();
    let mut batch = Screened::default();
    let mut buf = vec![0u8; 1 << 20];
    let mut filled = 0; // bytes of buf holding data
    let mut overlong = false; // discarding the rest of a line longer than MAX_LINE
    let mut searched = 0; // bytes at the start of buf known to hold no newline
    let mut eof = false;
    while !eof {
        let n = match input.read(&mut buf[filled..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        eof = n == 0;
        filled += n;
        let mut start = 0;
        // A line arriving in many small reads is searched once, not once per read.
        let mut from = searched;
        loop {
            let line_end = match memchr::memchr(b'\n', &buf[from..filled]) {
                Some(i) => from + i,
                None if eof && start < filled => filled,
                None => break,
            };
            let line = &buf[start..line_end];
            summary.lines += 1;
            if overlong {
                overlong = false;
                summary.count(Outcome::Skipped(SkipReason::TooLong));
            } else if is_comment_or_blank(line) {
                summary.comments += 1;
            } else {
                match screener.line(line, &mut batch.lines) {
                    Some(outcome) => summary.count(outcome),
                    None => batch.numbers.push(summary.lines),
                }
            }
            start = (line_end + 1).min(filled);
            from = start;
            if line_end == filled {
                break;
            }
        }
        if batch.lines.bytes() >= BATCH_BYTES || (eof && !batch.lines.is_empty()) {
            if to_finish
                .send(std::mem::replace(&mut batch, to_finish.spare()))
                .is_err()
            {
                break;
            }
            // The next batch: searched here too while the other side is behind.
            screener.search_ahead(to_finish.behind());
        }
        // Keep the unfinished line; drop it if it can no longer be a line we examine.
        if start > 0 {
            buf.copy_within(start..filled, 0);
            filled -= start;
        }
        if filled > MAX_LINE {
            overlong = true;
            filled = 0;
        }
        searched = filled;
    }
    Ok(summary)
}

/// A blank line (spaces, tabs, a carriage return) or a comment (`#` in the first column).
fn is_comment_or_blank(line: &[u8]) -> bool {
    line.first() == Some(&b'#') || line.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r'))
}

/// Writes one failure as `test-filter` prints it (JSON line or readable line). Numbers and the
/// time are written by hand: this runs once per failure, often a million times a second.
pub fn write_failure(
    out: &mut impl Write,
    number: u64,
    failure: &Failure,
    json: bool,
) -> io::Result<()> {
    const CAPACITY: usize = 256;
    let mut line = [0u8; CAPACITY];
    let mut at = 0;
    let mut put = |bytes: &[u8], at: &mut usize| {
        line[*at..*at + bytes.len()].copy_from_slice(bytes);
        *at += bytes.len();
    };
    let mut digits = [0u8; 20];
    let number = decimal(number, &mut digits);
    let mut host_buf = [0u8; 48];
    let host = address(failure.host, &mut host_buf);
    let time = iso(failure.time);
    if json {
        put(b"{\"line\": ", &mut at);
        put(number, &mut at);
        put(b", \"host\": \"", &mut at);
        put(host, &mut at);
        put(b"\", \"time\": \"", &mut at);
        put(&time, &mut at);
        put(b"\"", &mut at);
    } else {
        put(b"line ", &mut at);
        put(number, &mut at);
        put(b": ", &mut at);
        put(host, &mut at);
        put(b" at ", &mut at);
        put(&time, &mut at);
    }
    match (failure.user.as_deref(), json) {
        // Most names need no escape in either form: copied as they are.
        (Some(user), _) if at + user.len() + 16 <= CAPACITY && !needs_escape(user) => {
            if json {
                put(b", \"user\": \"", &mut at);
                put(user.as_bytes(), &mut at);
                put(b"\"}\n", &mut at);
            } else {
                put(b" user ", &mut at);
                put(user.as_bytes(), &mut at);
                put(b"\n", &mut at);
            }
        }
        (Some(user), true) => {
            out.write_all(&line[..at])?;
            let quoted =
                serde_json::to_string(user).expect("invariant: a string always serializes");
            return writeln!(out, ", \"user\": {quoted}}}");
        }
        (Some(user), false) => {
            out.write_all(&line[..at])?;
            return writeln!(out, " user {}", user.escape_debug());
        }
        (None, true) => put(b"}\n", &mut at),
        (None, false) => put(b"\n", &mut at),
    }
    out.write_all(&line[..at])
}

/// Whether `user` reads differently through `str::escape_debug` or as a JSON string: anything
/// but printable ASCII, quotes and backslashes. The rest is written as it is.
fn needs_escape(user: &str) -> bool {
    user.bytes()
        .any(|b| !(b' '..=b'~').contains(&b) || matches!(b, b'"' | b'\'' | b'\\'))
}

/// `host` as `Display` writes it, in `buf`, by hand: `Display` goes through the formatter and
/// cost over a thousand instructions per address (IPv4 ~1,050, IPv6 ~1,500).
fn address(host: IpAddr, buf: &mut [u8; 48]) -> &[u8] {
    let len = match host {
        IpAddr::V4(v4) => ipv4(v4, buf, 0),
        IpAddr::V6(v6) => ipv6(v6, buf),
    };
    &buf[..len]
}

/// Writes `a.b.c.d` at `at`; where it ends.
fn ipv4(v4: Ipv4Addr, buf: &mut [u8; 48], mut at: usize) -> usize {
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            buf[at] = b'.';
            at += 1;
        }
        if octet >= 100 {
            buf[at] = b'0' + octet / 100;
            at += 1;
        }
        if octet >= 10 {
            buf[at] = b'0' + octet / 10 % 10;
            at += 1;
        }
        buf[at] = b'0' + octet % 10;
        at += 1;
    }
    at
}

/// Writes an IPv6 address as std does (RFC 5952): IPv4-mapped ones as `::ffff:a.b.c.d`, else
/// lower-case groups without leading zeros, the first longest run of two or more zero groups
/// as `::`. Its length.
fn ipv6(v6: Ipv6Addr, buf: &mut [u8; 48]) -> usize {
    if let Some(v4) = v6.to_ipv4_mapped() {
        buf[..7].copy_from_slice(b"::ffff:");
        return ipv4(v4, buf, 7);
    }
    let groups = v6.segments();
    let (mut zeros, mut zeros_len) = (0, 0);
    let mut run = 0;
    for (i, &group) in groups.iter().enumerate() {
        run = if group == 0 { run + 1 } else { 0 };
        if run > zeros_len {
            (zeros, zeros_len) = (i + 1 - run, run);
        }
    }
    if zeros_len < 2 {
        zeros = groups.len();
    }
    let mut at = 0;
    let mut i = 0;
    while i < groups.len() {
        if i == zeros {
            buf[at..at + 2].copy_from_slice(b"::");
            at += 2;
            i += zeros_len;
            continue;
        }
        if i > 0 && i != zeros + zeros_len {
            buf[at] = b':';
            at += 1;
        }
        let group = groups[i];
        let nibbles = (19 - group.leading_zeros() as usize) / 4;
        for shift in (0..nibbles.max(1)).rev() {
            buf[at] = b"0123456789abcdef"[usize::from(group >> (4 * shift)) & 0xf];
            at += 1;
        }
        i += 1;
    }
    at
}

/// `00` to `99`: numbers are written two digits per division.
const PAIRS: [[u8; 2]; 100] = {
    let mut pairs = [[0; 2]; 100];
    let mut i = 0;
    while i < 100 {
        pairs[i] = [b'0' + (i / 10) as u8, b'0' + (i % 10) as u8];
        i += 1;
    }
    pairs
};

/// `n` in decimal, in the tail of `buf`.
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    while n >= 100 {
        at -= 2;
        buf[at..at + 2].copy_from_slice(&PAIRS[(n % 100) as usize]);
        n /= 100;
    }
    if n >= 10 {
        at -= 2;
        buf[at..at + 2].copy_from_slice(&PAIRS[n as usize]);
    } else {
        at -= 1;
        buf[at] = b'0' + n as u8;
    }
    &buf[at..]
}

/// `YYYY-MM-DDTHH:MM:SS` (years outside 0..=9999 are clamped: logs do not go there).
fn iso(t: NaiveDateTime) -> [u8; 19] {
    let mut out = *b"0000-00-00T00:00:00";
    let year = t.year().clamp(0, 9999) as u32;
    let fields = [
        (0, year / 100),
        (2, year % 100),
        (5, t.month()),
        (8, t.day()),
        (11, t.hour()),
        (14, t.minute()),
        (17, t.second()),
    ];
    for (start, value) in fields {
        out[start..start + 2].copy_from_slice(&PAIRS[value as usize]);
    }
    out
}

fn report(
    s: &Summary,
    filter: &str,
    mode: &str,
    regexes: usize,
    log: &str,
    seconds: f64,
) -> String {
    let mut text = String::new();
    let skipped: u64 = s.skipped.values().sum();
    let _ = writeln!(
        text,
        "filter {filter} (mode {mode}, {regexes} regexes) over {log}"
    );
    let _ = writeln!(
        text,
        "lines read: {} ({} blank or comments), failures: {} ({} addresses), ignored: {}, not matched: {}, skipped: {}",
        s.lines, s.comments, s.failures, s.addresses, s.ignored, s.no_match, skipped
    );
    for (reason, count) in &s.skipped {
        let _ = writeln!(text, "  skipped, {reason}: {count}");
    }
    let rate = if seconds > 0.0 {
        s.lines as f64 / seconds
    } else {
        0.0
    };
    let _ = writeln!(text, "time: {seconds:.3} s, {rate:.0} lines/s");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-11-23T12:00:00Z".parse().unwrap()
    }

    fn sshd() -> AnyMatcher {
        let file = builtin::load("sshd").unwrap().unwrap();
        let options = FilterOptions {
            timezone: "UTC".parse().unwrap(),
            ..FilterOptions::default()
        };
        CompiledFilter::Native(Arc::new(file.compile(&options).unwrap()))
            .matcher(nftjail_core::filter::LocalZone::utc())
    }

    /// Reads `input` in reads of at most `chunk` bytes, to exercise line splitting.
    struct Chunked<'a> {
        data: &'a [u8],
        chunk: usize,
    }

    impl Read for Chunked<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.chunk.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// The numbers and times written by hand read as `Display` writes them.
    #[test]
    fn hand_written_numbers_and_times_read_as_display() {
        let mut buf = [0u8; 20];
        for n in [
            0,
            7,
            9,
            10,
            99,
            100,
            101,
            999,
            1000,
            12_345,
            200_000,
            u64::MAX,
        ] {
            assert_eq!(decimal(n, &mut buf), n.to_string().as_bytes());
        }
        for text in [
            "0000-01-01T00:00:00",
            "2026-11-23T07:08:09",
            "1999-12-31T23:59:59",
            "9999-12-31T23:59:59",
        ] {
            let t: NaiveDateTime = text.parse().unwrap();
            assert_eq!(iso(t), text.as_bytes());
        }
    }

    #[test]
    fn counts_lines_and_reports_failures_with_numbers() {
        let mut log = Vec::new();
        log.extend_from_slice(
            b"Nov 23 07:18:36 h sshd[1]: Invalid user bob from 192.0.2.1 port 22\n",
        );
        log.extend_from_slice(b"garbage\n");
        // Regression: comments and blank lines were counted as skipped ("no timestamp").
        log.extend_from_slice(b"# failJSON: { \"match\": false }\n \t\r\n");
        // Mostly not text, and no failure: counted as skipped.
        log.extend_from_slice(
            b"Nov 23 07:18:36 h sshd[1]: \xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\xf7\xf6\n",
        );
        log.extend_from_slice(&vec![b'x'; 3 * MAX_LINE]);
        log.extend_from_slice(b"\n\nNov 23 07:18:37 h sshd[1]: Failed password for root from 2001:db8::1 port 22 ssh2");
        for chunk in [1, 7, 4096, 1 << 20] {
            let mut seen = Vec::new();
            let summary = scan(&mut sshd(), Chunked { data: &log, chunk }, now(), |n, f| {
                seen.push((n, f.host.to_string()));
                Ok(())
            })
            .unwrap();
            assert_eq!(
                seen,
                [(1, "192.0.2.1".to_string()), (8, "2001:db8::1".to_string())],
                "chunk {chunk}"
            );
            assert_eq!(
                (
                    summary.lines,
                    summary.comments,
                    summary.failures,
                    summary.no_match,
                    summary.addresses
                ),
                (8, 3, 2, 0, 2)
            );
            let skipped: Vec<_> = summary.skipped.into_iter().collect();
            assert_eq!(
                skipped,
                [
                    (SkipReason::InvalidUtf8, 1),
                    (SkipReason::TooLong, 1),
                    (SkipReason::NoTimestamp, 1)
                ],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn json_and_text_lines() {
        let failure = Failure {
            host: "192.0.2.1".parse().unwrap(),
            time: "2026-11-23T07:18:36.5".parse().unwrap(),
            at: 0,
            user: Some("ro\"ot".into()),
        };
        let mut out = Vec::new();
        write_failure(&mut out, 12, &failure, true).unwrap();
        write_failure(
            &mut out,
            12,
            &Failure {
                user: None,
                ..failure.clone()
            },
            true,
        )
        .unwrap();
        write_failure(&mut out, 12, &failure, false).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"line\": 12, \"host\": \"192.0.2.1\", \"time\": \"2026-11-23T07:18:36\", \"user\": \"ro\\\"ot\"}\n\
             {\"line\": 12, \"host\": \"192.0.2.1\", \"time\": \"2026-11-23T07:18:36\"}\n\
             line 12: 192.0.2.1 at 2026-11-23T07:18:36 user ro\\\"ot\n"
        );
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        let edges = [0u8, 1, 9, 10, 11, 99, 100, 101, 199, 200, 255];
        let mut buf = [0u8; 48];
        for a in edges {
            for b in edges {
                for (c, d) in [(0, 255), (9, 10), (99, 100), (255, 0), (a, b)] {
                    let host = IpAddr::from([a, b, c, d]);
                    let written = address(host, &mut buf);
                    assert_eq!(written, host.to_string().as_bytes(), "{host}");
                }
            }
        }
        for text in [
            "::",
            "::1",
            "2001:db8::1",
            "2001:db8:0:0:1:0:0:1",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "::ffff:255.255.255.255",
            "::ffff:192.0.2.1",
            "64:ff9b::192.0.2.1",
        ] {
            let host: IpAddr = text.parse().unwrap();
            assert_eq!(
                address(host, &mut buf),
                host.to_string().as_bytes(),
                "{text}"
            );
        }
        // Every pattern of zero groups (runs, ties, both ends), with groups of 1 to 4 digits,
        // and IPv4-mapped and -compatible addresses.
        for zeros in 0..=255u32 {
            for fill in [0x1u16, 0xf, 0x10, 0xab, 0x100, 0xfff, 0x1000, 0xffff] {
                let mut groups = [0u16; 8];
                for (i, group) in groups.iter_mut().enumerate() {
                    if zeros & (1 << i) == 0 {
                        *group = fill.rotate_left(i as u32 * 3).max(1);
                    }
                }
                let mut mapped = groups;
                (mapped[4], mapped[5]) = (0, 0xffff);
                for host in [groups, mapped].map(|g| IpAddr::from(Ipv6Addr::from(g))) {
                    assert_eq!(
                        address(host, &mut buf),
                        host.to_string().as_bytes(),
                        "{host}"
                    );
                }
            }
        }
    }

    #[test]
    fn user_names_are_escaped_only_when_they_need_it() {
        let long = "x".repeat(300);
        for user in [
            "root",
            "",
            "ro\"ot",
            "o'brien",
            "back\\slash",
            "tab\there",
            "new\nline",
            "del\u{7f}",
            "nul\0",
            "j\u{f6}rg",
            "\u{301}accent",
            "~!@#$%^&*()_+{}|:<>?`-=[];,./",
            long.as_str(),
        ] {
            let failure = Failure {
                host: "192.0.2.1".parse().unwrap(),
                time: "2026-11-23T07:18:36".parse().unwrap(),
                at: 0,
                user: Some(user.into()),
            };
            let mut text = Vec::new();
            write_failure(&mut text, 7, &failure, false).unwrap();
            let want = format!(
                "line 7: 192.0.2.1 at 2026-11-23T07:18:36 user {}\n",
                user.escape_debug()
            );
            assert_eq!(String::from_utf8(text).unwrap(), want, "{user:?}");
            let mut json = Vec::new();
            write_failure(&mut json, 7, &failure, true).unwrap();
            let want = format!(
                "{{\"line\": 7, \"host\": \"192.0.2.1\", \"time\": \"2026-11-23T07:18:36\", \"user\": {}}}\n",
                serde_json::to_string(user).unwrap()
            );
            assert_eq!(String::from_utf8(json).unwrap(), want, "{user:?}");
        }
    }

    #[test]
    fn the_help_names_every_builtin_filter() {
        use clap::Args as _;
        let help = TestFilterArgs::augment_args(clap::Command::new("test-filter"))
            .render_long_help()
            .to_string();
        for name in builtin::names() {
            assert!(help.contains(name), "--help does not name {name}");
        }
    }

    #[test]
    fn unknown_filters_are_usage_errors() {
        let err = load_filter("nope").unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("sshd"), "{err}");
        let err = load_filter("/nonexistent/x.toml").unwrap_err();
        assert_eq!(err.exit_code(), 1);
    }
}
