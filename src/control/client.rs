//! The client side of the control socket, for the CLI: blocking, no runtime needed.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::protocol::{Reply, Request, encode_request};

/// Why the daemon could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot connect to {path}: {source} (is the daemon running? is the socket path right? are you root or in the control group?)"
    )]
    Connect { path: PathBuf, source: io::Error },
    #[error("lost the connection to the daemon: {0}")]
    Io(#[from] io::Error),
    #[error("the daemon sent a reply this client does not understand: {0}")]
    Reply(String),
}

/// A connection to the daemon.
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    pub fn connect(path: &Path) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(path).map_err(|source| ClientError::Connect {
            path: path.to_path_buf(),
            source,
        })?;
        // Bulk bans of 100,000 addresses and reloads take seconds, not minutes.
        stream.set_read_timeout(Some(Duration::from_secs(300)))?;
        let writer = stream.try_clone()?;
        Ok(Client {
            reader: BufReader::new(stream),
            writer,
        })
    }

    /// Sends one request and waits for its reply.
    pub fn request(&mut self, request: &Request) -> Result<Reply, ClientError> {
        // A daemon that refuses at once (too many clients) may close before reading: its
        // reply is still there to read.
        if let Err(e) = self.writer.write_all(&encode_request(request)) {
            return self.reply().map_err(|_| ClientError::Io(e));
        }
        self.reply()
    }

    /// Sends a streamed ban request followed by every line of `list`, then the end marker.
    pub fn ban_stream(
        &mut self,
        request: &Request,
        list: &mut dyn BufRead,
    ) -> Result<Reply, ClientError> {
        let mut out = io::BufWriter::with_capacity(1 << 16, &self.writer);
        out.write_all(&encode_request(request))?;
        let mut line = String::new();
        loop {
            line.clear();
            if list.read_line(&mut line)? == 0 {
                break;
            }
            let text = line.trim_end_matches(['\n', '\r']);
            // An empty line would end the stream early: skip it.
            if !text.trim().is_empty() {
                out.write_all(text.as_bytes())?;
                out.write_all(b"\n")?;
            }
        }
        out.write_all(b"\n")?;
        out.flush()?;
        drop(out);
        self.reply()
    }

    fn reply(&mut self) -> Result<Reply, ClientError> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(ClientError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the daemon closed the connection",
            )));
        }
        serde_json::from_str(&line).map_err(|e| ClientError::Reply(e.to_string()))
    }
}
