//! The control socket's server side.
//!
//! Receives connections on a Unix stream socket; decodes requests at the edge (addresses,
//! durations, jail names, streamed blocklists) into [`Call`]s for the daemon's core and writes
//! back one reply per request. It guards the daemon against its clients: a request line is
//! capped at 64 KiB, a client that says nothing is dropped after a read timeout, at most
//! `max_clients` connections are open at once — when full, the connection idle the longest
//! (waiting for a request, not being served) is closed to make room, so silent clients can
//! never lock out an administrator — and mutating
//! requests are accepted only from root or members of the configured group (SO_PEERCRED). It
//! must never panic or stop because of what a client sends.

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::protocol::{
    MAX_REQUEST, Rejected, Reply, Request, RequestError, decode_request, parse_list_line,
};
use super::{Call, Command};
use crate::config::BanTime;

/// How long a client may stay silent before it is dropped.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
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

impl Drop for ControlSocket {
    fn drop(&mut self) {
        if std::fs::metadata(&self.path).is_ok_and(|m| m.ino() == self.ino) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The open connections: when each became idle (waiting for a request) and how to close it.
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

/// Closes the connection idle the longest; `false` when every connection is busy.
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

/// Serves clients until `shutdown`; each request becomes a [`Call`] on `calls`.
pub async fn serve(
    socket: ControlSocket,
    access: Access,
    calls: mpsc::Sender<Call>,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(access.max_clients));
    let registry: Shared = Arc::default();
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
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            // Full: make room by closing the connection idle the longest, if any is idle.
            Err(_) if evict_idlest(&registry) => {
                tokio::time::timeout(Duration::from_secs(1), slots.clone().acquire_owned())
                    .await
                    .ok()
                    .and_then(Result::ok)
            }
            Err(_) => None,
        };
        let Some(permit) = permit else {
            tokio::spawn(async move {
                let mut stream = stream;
                let reply = Reply::error(format!(
                    "too many clients (max_clients = {}), all busy; try again",
                    access.max_clients
                ));
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
        let (calls, registry) = (calls.clone(), registry.clone());
        tokio::spawn(async move {
            connection(stream, access, calls, close, &registry, id).await;
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
    close: CancellationToken,
    registry: &Shared,
    id: u64,
) {
    let cred = stream.peer_cred().ok();
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
                let _ = write
                    .write_all(&Reply::error(e.to_string()).to_line())
                    .await;
                return;
            }
            Ok(Ok(Some(line))) => line,
        };
        let reply = match decode_request(&line) {
            Err(e) => Reply::error(e.to_string()),
            Ok(request) if request.mutates() && !privileged(cred.as_ref(), access.group).await => Reply::error(match access.group {
                Some(gid) => format!("permission denied: this request needs root or membership of the control group (gid {gid})"),
                None => "permission denied: this request needs root (set daemon.socket_group to allow a group)".to_string(),
            }),
            Ok(request) => match command(request, &mut reader).await {
                Ok(None) => Reply { version: Some(env!("CARGO_PKG_VERSION").to_string()), ..Reply::ok() },
                Ok(Some(command)) => call(&calls, command).await,
                Err(message) => Reply::error(message),
            },
        };
        if write.write_all(&reply.to_line()).await.is_err() {
            return;
        }
    }
}

/// Sends a command to the core and waits for its reply.
async fn call(calls: &mpsc::Sender<Call>, command: Command) -> Reply {
    let (reply, answer) = oneshot::channel();
    if calls.send(Call { command, reply }).await.is_err() {
        return Reply::error("the daemon is stopping");
    }
    answer
        .await
        .unwrap_or_else(|_| Reply::error("the daemon is stopping"))
}

/// Turns a request into a command, reading a streamed list when there is one. `None`: ping.
async fn command<R: AsyncBufRead + Unpin>(
    request: Request,
    reader: &mut R,
) -> Result<Option<Command>, String> {
    Ok(Some(match request {
        Request::Ping => return Ok(None),
        Request::Status { jail } => Command::Status { jail },
        Request::Banned { jail } => Command::Banned { jail },
        Request::Reload => Command::Reload,
        Request::Unban { target, jail, all } => {
            let target = match target {
                Some(t) => Some(
                    t.parse()
                        .map_err(|e: crate::addr::TargetError| e.to_string())?,
                ),
                None if all && jail.is_some() => None,
                None => {
                    return Err("unban needs an address, or a jail with \"all\": true".to_string());
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
                Some(text) => Some(text.parse::<BanTime>().map_err(|e| e.to_string())?),
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
                read_stream(reader, &mut parsed, &mut rejected).await?;
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
    parsed: &mut Vec<crate::addr::BanTarget>,
    rejected: &mut Vec<Rejected>,
) -> Result<(), String> {
    for number in 1..=MAX_STREAM_LINES {
        let line = match tokio::time::timeout(READ_TIMEOUT, read_line(reader)).await {
            Err(_) => return Err(format!("the address list stalled at line {number}")),
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
        let text = String::from_utf8_lossy(&line);
        match parse_list_line(&text) {
            Ok(Some(t)) => parsed.push(t),
            Ok(None) => {}
            Err(error) => rejected.push(Rejected {
                line: number,
                text: text.into_owned(),
                error,
            }),
        }
    }
    Err(format!("address list longer than {MAX_STREAM_LINES} lines"))
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

#[cfg(test)]
mod tests;
