//! The control socket's server side.
//!
//! Receives connections on a Unix stream socket; decodes requests at the edge (addresses,
//! durations, jail names, streamed blocklists) into [`Call`]s for the daemon's core and writes
//! back one reply per request. It guards the daemon against its clients: a request line is
//! capped at 64 KiB, a client that says nothing is dropped after a read timeout, at most
//! `max_clients` connections are open at once — when full, the connection that has waited on
//! its client the longest (for a request, or for it to take a reply) is closed to make room, so
//! silent or stuck clients can never lock out an administrator — and mutating requests are
//! accepted only from root or members of the configured group (SO_PEERCRED). It must never
//! panic or stop because of what a client sends.
//!
//! Memory per client is bounded whatever the client does. One request at a time: the next
//! request is read only once the previous reply is written, so pipelined requests wait in the
//! client's own socket buffer, not here. A reply in flight is the only thing held for a client
//! (a big one is a [`SharedLine`](super::protocol::SharedLine) many clients write from), the
//! kernel holds at most [`SEND_BUFFER`] of it, and a client that does not take its reply within
//! [`WRITE_TIMEOUT`] (longer for a big reply, see [`write_deadline`]) is disconnected.

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::protocol::{
    ErrorCode, MAX_REQUEST, Rejected, Reply, ReplyLine, Request, RequestError, decode_request,
    parse_list_line,
};
use super::{Call, Command};
use crate::config::BanTime;
use reads::Read;
pub use reads::Reads;

/// How long a client may stay silent before it is dropped.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client has to take a reply (a big reply gets more, see [`write_deadline`]).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// The slowest a client may read a big reply: past [`WRITE_TIMEOUT`], one more second per this
/// many bytes (an 11 MB `banned` list gets 7.6 s; any local reader takes it in milliseconds).
const MIN_READ_RATE: u64 = 4 * 1024 * 1024;
/// How long a new client may wait for a connection slot while every connection is served.
const ADMISSION_WAIT: Duration = Duration::from_secs(1);
/// The socket send buffer asked for each client (SO_SNDBUF; Linux doubles it): the most of a
/// reply the kernel holds for a client that does not read, instead of the default ~208 KiB.
pub const SEND_BUFFER: usize = 64 * 1024;
/// The most lines one streamed ban may carry.
const MAX_STREAM_LINES: usize = 10_000_000;

/// Who may send mutating requests.
#[derive(Debug, Clone, Copy)]
pub struct Access {
    /// The control group's gid, if one is configured.
    pub group: Option<u32>,
    pub max_clients: usize,
}

/// The bound socket. Dropping it removes the socket file (if it is still ours).
pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
    ino: u64,
}

/// Binds the control socket at `path`: mode 0660, group `group`. An existing file there is
/// removed only if it is a socket nobody answers on (a stale one); a live daemon's socket or any
/// other file is an error.
pub fn bind(path: &Path, group: Option<u32>) -> io::Result<ControlSocket> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{} is in use: is another nftjail running?", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists and is not a socket: refusing to remove it",
                    path.display()
                ),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // Bind under a temporary name and rename once the mode is right, so the socket is never
    // reachable with the permissions of the umask.
    let temp = path.with_extension(format!("tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&temp);
    let listener = UnixListener::bind(&temp)?;
    std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o660))?;
    if let Some(gid) = group {
        // Only the group: the daemon may run as an unprivileged (dynamic) user, which can give
        // its socket to a group but not to root.
        std::os::unix::fs::chown(&temp, None, Some(gid))?;
    }
    std::fs::rename(&temp, path)?;
    let ino = std::fs::metadata(path)?.ino();
    Ok(ControlSocket {
        listener,
        path: path.to_path_buf(),
        ino,
    })
}

impl ControlSocket {
    /// The listening socket (the HTTP API's Unix socket is bound and accepted the same way).
    pub fn listener(&self) -> &UnixListener {
        &self.listener
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        if std::fs::metadata(&self.path).is_ok_and(|m| m.ino() == self.ino) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The open connections: since when each waits on its client (for a request, or to take a
/// reply; `None` while the core serves it) and how to close it.
#[derive(Default)]
struct Registry {
    next: u64,
    open: HashMap<u64, (Option<Instant>, CancellationToken)>,
}

type Shared = Arc<Mutex<Registry>>;

fn set_idle(registry: &Shared, id: u64, idle: bool) {
    if let Some(entry) = registry
        .lock()
        .expect("invariant: registry lock not poisoned")
        .open
        .get_mut(&id)
    {
        entry.0 = idle.then(Instant::now);
    }
}

/// Closes the connection that has waited on its client the longest; `false` when the core is
/// serving every connection.
fn evict_idlest(registry: &Shared) -> bool {
    let registry = registry
        .lock()
        .expect("invariant: registry lock not poisoned");
    let oldest = registry
        .open
        .values()
        .filter_map(|(idle, token)| idle.map(|at| (at, token)))
        .min_by_key(|(at, _)| *at);
    match oldest {
        Some((_, token)) => {
            token.cancel();
            true
        }
        None => false,
    }
}

/// Takes a connection slot for a new client. When all are taken, the connection that has
/// waited on its client the longest is closed to make room; when the core is serving every one
/// of them, a slot is awaited for up to [`ADMISSION_WAIT`] (a served connection soon waits on
/// its client, and can then be closed). `None`: still full.
async fn admit(slots: &Arc<Semaphore>, registry: &Shared) -> Option<OwnedSemaphorePermit> {
    let deadline = tokio::time::Instant::now() + ADMISSION_WAIT;
    loop {
        if let Ok(permit) = slots.clone().try_acquire_owned() {
            return Some(permit);
        }
        let wait = if evict_idlest(registry) {
            ADMISSION_WAIT
        } else {
            Duration::from_millis(20)
        };
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return None;
        }
        if let Ok(Ok(permit)) =
            tokio::time::timeout(wait.min(left), slots.clone().acquire_owned()).await
        {
            return Some(permit);
        }
    }
}

/// Serves clients until `shutdown`; each request becomes a [`Call`] on `calls`.
pub async fn serve(
    socket: ControlSocket,
    access: Access,
    calls: mpsc::Sender<Call>,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(access.max_clients));
    let registry: Shared = Arc::default();
    let reads = Reads::default();
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = socket.listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "control socket accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = admit(&slots, &registry) => permit,
        };
        let Some(permit) = permit else {
            tokio::spawn(async move {
                let mut stream = stream;
                let reply = Reply::refuse(
                    ErrorCode::Busy,
                    format!(
                        "too many clients (max_clients = {}), all busy; try again",
                        access.max_clients
                    ),
                );
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    stream.write_all(&reply.to_line()),
                )
                .await;
            });
            continue;
        };
        let close = shutdown.child_token();
        let id = {
            let mut r = registry
                .lock()
                .expect("invariant: registry lock not poisoned");
            r.next += 1;
            let id = r.next;
            r.open.insert(id, (Some(Instant::now()), close.clone()));
            id
        };
        let (calls, reads, registry) = (calls.clone(), reads.clone(), registry.clone());
        tokio::spawn(async move {
            connection(stream, access, calls, reads, close, &registry, id).await;
            registry
                .lock()
                .expect("invariant: registry lock not poisoned")
                .open
                .remove(&id);
            drop(permit);
        });
    }
    drop(socket);
}

/// Serves one client until it closes, stalls, is evicted, or the daemon stops.
async fn connection(
    stream: UnixStream,
    access: Access,
    calls: mpsc::Sender<Call>,
    reads: Reads,
    close: CancellationToken,
    registry: &Shared,
    id: u64,
) {
    let cred = stream.peer_cred().ok();
    if let Err(e) =
        nix::sys::socket::setsockopt(&stream, nix::sys::socket::sockopt::SndBuf, &SEND_BUFFER)
    {
        tracing::debug!(error = %e, "cannot set the control client's send buffer");
    }
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        set_idle(registry, id, true);
        let line = tokio::select! {
            _ = close.cancelled() => return,
            line = tokio::time::timeout(READ_TIMEOUT, read_line(&mut reader)) => line,
        };
        set_idle(registry, id, false);
        let line = match line {
            Err(_) | Ok(Ok(None)) => return,
            Ok(Err(e)) => {
                let reply = Reply::refuse(ErrorCode::BadRequest, e.to_string()).into_line();
                let _ = send(&mut write, reply, &close, registry, id).await;
                return;
            }
            Ok(Ok(Some(line))) => line,
        };
        let reply = match decode_request(&line) {
            Err(e) => Reply::refuse(ErrorCode::BadRequest, e.to_string()).into_line(),
            Ok(request) if request.mutates() && !privileged(cred.as_ref(), access.group).await => Reply::refuse(ErrorCode::PermissionDenied, match access.group {
                Some(gid) => format!("permission denied: this request needs root or membership of the control group (gid {gid})"),
                None => "permission denied: this request needs root (set daemon.socket_group to allow a group)".to_string(),
            }).into_line(),
            Ok(request) => answer(request, &mut reader, &calls, &reads).await,
        };
        let shared = matches!(reply, ReplyLine::Shared(_));
        let sent = send(&mut write, reply, &close, registry, id).await;
        if shared {
            reads.release();
        }
        if !sent {
            return;
        }
    }
}

/// Writes one reply within its deadline; `false` when the connection is done for (the client
/// went away, did not take the reply in time, or was evicted meanwhile).
async fn send(
    write: &mut OwnedWriteHalf,
    line: ReplyLine,
    close: &CancellationToken,
    registry: &Shared,
    id: u64,
) -> bool {
    // Waiting for the client again: a client that does not read can be evicted.
    set_idle(registry, id, true);
    let deadline = write_deadline(line.len());
    let write_all = async {
        for chunk in line.chunks() {
            write.write_all(chunk).await?;
        }
        io::Result::Ok(())
    };
    let written = tokio::select! {
        _ = close.cancelled() => return false,
        written = tokio::time::timeout(deadline, write_all) => written,
    };
    match written {
        Ok(Ok(())) => true,
        Ok(Err(_)) => false,
        Err(_) => {
            tracing::debug!(
                bytes = line.len(),
                seconds = deadline.as_secs(),
                "control client did not take its reply in time; disconnected"
            );
            false
        }
    }
}

/// How long a client has to take a reply of `len` bytes: [`WRITE_TIMEOUT`], plus a second per
/// [`MIN_READ_RATE`] bytes.
pub fn write_deadline(len: usize) -> Duration {
    WRITE_TIMEOUT + Duration::from_secs(len as u64 / MIN_READ_RATE)
}

const STOPPING: &str = "the daemon is stopping";

/// The one way from a request to its reply, for both doors (this socket and the HTTP API, which
/// checks its own callers first): the request is checked and turned into a [`Command`] (a
/// streamed address list is read from `reader`), read-only commands are shared through `reads`,
/// the others go to the core and are answered once their outcome is settled.
pub async fn answer<R: AsyncBufRead + Unpin>(
    request: Request,
    reader: &mut R,
    calls: &mpsc::Sender<Call>,
    reads: &Reads,
) -> ReplyLine {
    match command(request, reader).await {
        Ok(None) => Reply {
            version: Some(env!("CARGO_PKG_VERSION").to_string()),
            ..Reply::ok()
        }
        .into_line(),
        Ok(Some(command)) => match Read::of(&command) {
            Some(read) => reads
                .ask(read, calls)
                .await
                .unwrap_or_else(|| Reply::refuse(ErrorCode::Stopping, STOPPING).into_line()),
            None => call(calls, command).await.into_line(),
        },
        Err(refusal) => refusal.into_line(),
    }
}

/// Sends a command to the core and waits for its reply.
async fn call(calls: &mpsc::Sender<Call>, command: Command) -> Reply {
    let (reply, answer) = oneshot::channel();
    if calls.send(Call { command, reply }).await.is_err() {
        return Reply::refuse(ErrorCode::Stopping, STOPPING);
    }
    answer
        .await
        .unwrap_or_else(|_| Reply::refuse(ErrorCode::Stopping, STOPPING))
}

/// Turns a request into a command, reading a streamed list when there is one. `None`: ping.
async fn command<R: AsyncBufRead + Unpin>(
    request: Request,
    reader: &mut R,
) -> Result<Option<Command>, Reply> {
    Ok(Some(match request {
        Request::Ping => return Ok(None),
        Request::Status { jail } => Command::Status { jail },
        Request::Banned { jail } => Command::Banned { jail },
        Request::Reload => Command::Reload,
        firewall @ (Request::Firewall
        | Request::FirewallEnable { .. }
        | Request::FirewallDisable
        | Request::FirewallConfirm
        | Request::Rules
        | Request::RuleAdd { .. }
        | Request::RuleDelete { .. }
        | Request::Forwards
        | Request::ForwardAdd { .. }
        | Request::ForwardDelete { .. }) => {
            Command::Firewall(super::firewall::FirewallCommand::from_request(firewall)?)
        }
        Request::Import { bans, stream } => import::command(bans, stream, reader).await?,
        Request::Log { jail, since, after } => Command::Log { jail, since, after },
        Request::Unban { target, jail, all } => {
            let target = match target {
                Some(t) => Some(t.parse().map_err(|e: nftjail_core::addr::TargetError| {
                    Reply::refuse(ErrorCode::InvalidAddress, e.to_string())
                })?),
                None if all && jail.is_some() => None,
                None => {
                    return Err(Reply::refuse(
                        ErrorCode::BadRequest,
                        "unban needs an address, or a jail with \"all\": true",
                    ));
                }
            };
            Command::Unban { target, jail, all }
        }
        Request::Ban {
            jail,
            targets,
            length,
            stream,
        } => {
            let length = match length {
                Some(text) => Some(
                    text.parse::<BanTime>()
                        .map_err(|e| Reply::refuse(ErrorCode::InvalidDuration, e.to_string()))?,
                ),
                None => None,
            };
            let mut parsed = Vec::with_capacity(targets.len());
            let mut rejected = Vec::new();
            for text in targets {
                match parse_list_line(&text) {
                    Ok(Some(t)) => parsed.push(t),
                    Ok(None) => {}
                    Err(error) => rejected.push(Rejected {
                        line: 0,
                        text,
                        error,
                    }),
                }
            }
            if stream {
                read_stream(reader, &mut parsed, &mut rejected)
                    .await
                    .map_err(|e| Reply::refuse(ErrorCode::BadRequest, e))?;
            }
            Command::Ban {
                jail,
                targets: parsed,
                length,
                rejected,
            }
        }
    }))
}

/// Reads a streamed address list up to an empty line or the end of input.
async fn read_stream<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    parsed: &mut Vec<nftjail_core::addr::BanTarget>,
    rejected: &mut Vec<Rejected>,
) -> Result<(), String> {
    stream_lines(
        reader,
        "address list",
        rejected,
        |number, line, rejected| {
            let text = String::from_utf8_lossy(line);
            match parse_list_line(&text) {
                Ok(Some(t)) => parsed.push(t),
                Ok(None) => {}
                Err(error) => rejected.push(Rejected {
                    line: number,
                    text: text.into_owned(),
                    error,
                }),
            }
        },
    )
    .await
}

/// Hands each line of a stream (numbered from 1) to `each`, up to an empty line or the end of
/// input. An over-long line is rejected and the stream goes on; a stall of [`READ_TIMEOUT`], a
/// read error or more than [`MAX_STREAM_LINES`] lines end it with an error naming `what`.
pub(super) async fn stream_lines<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    what: &str,
    rejected: &mut Vec<Rejected>,
    mut each: impl FnMut(usize, &[u8], &mut Vec<Rejected>),
) -> Result<(), String> {
    for number in 1..=MAX_STREAM_LINES {
        let line = match tokio::time::timeout(READ_TIMEOUT, read_line(reader)).await {
            Err(_) => return Err(format!("the {what} stalled at line {number}")),
            Ok(Ok(None)) => return Ok(()),
            Ok(Ok(Some(line))) if line.is_empty() => return Ok(()),
            Ok(Ok(Some(line))) => line,
            Ok(Err(RequestError::TooLarge)) => {
                rejected.push(Rejected {
                    line: number,
                    text: String::new(),
                    error: "line too long".into(),
                });
                continue;
            }
            Ok(Err(e)) => return Err(e.to_string()),
        };
        each(number, &line, rejected);
    }
    Err(format!("{what} longer than {MAX_STREAM_LINES} lines"))
}

/// Reads one line without its newline, refusing more than [`MAX_REQUEST`] bytes (the rest of an
/// over-long line is consumed). `None` at the end of input.
async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
) -> Result<Option<Vec<u8>>, RequestError> {
    let mut line = Vec::new();
    let mut too_large = false;
    loop {
        let buf = reader
            .fill_buf()
            .await
            .map_err(|e| RequestError::Malformed(e.to_string()))?;
        if buf.is_empty() {
            return match (line.is_empty(), too_large) {
                (_, true) => Err(RequestError::TooLarge),
                (true, false) => Ok(None),
                (false, false) => Ok(Some(line)),
            };
        }
        let (chunk, done) = match memchr::memchr(b'\n', buf) {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        if !too_large {
            if line.len() + chunk.len() > MAX_REQUEST {
                too_large = true;
                line = Vec::new();
            } else {
                line.extend_from_slice(chunk);
            }
        }
        let used = done.unwrap_or(buf.len());
        reader.consume(used);
        if done.is_some() {
            if too_large {
                return Err(RequestError::TooLarge);
            }
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(Some(line));
        }
    }
}

/// Root, or a member of the control group: its primary group, a supplementary member in the
/// group database, or (when /proc shows it, which a hardened unit's ProtectProc= may not) one of
/// the peer process's own groups.
async fn privileged(cred: Option<&tokio::net::unix::UCred>, group: Option<u32>) -> bool {
    let Some(cred) = cred else { return false };
    if cred.uid() == 0 {
        return true;
    }
    let Some(gid) = group else { return false };
    if cred.gid() == gid {
        return true;
    }
    let uid = cred.uid();
    // NSS lookups may read files (or ask a directory service): not on the runtime's threads.
    let listed = tokio::task::spawn_blocking(move || {
        let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()?;
        let group = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
            .ok()
            .flatten()?;
        Some(group.mem.contains(&user.name))
    })
    .await;
    if matches!(listed, Ok(Some(true))) {
        return true;
    }
    let Some(pid) = cred.pid() else { return false };
    let Ok(status) = tokio::fs::read_to_string(format!("/proc/{pid}/status")).await else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .is_some_and(|groups| groups.split_whitespace().any(|g| g.parse() == Ok(gid)))
}

mod import;
pub mod reads;
#[cfg(test)]
mod tests;
