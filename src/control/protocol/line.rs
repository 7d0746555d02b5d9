//! Reply lines as they are written: owned bytes, or a [`SharedLine`] many clients write from.
//!
//! A shared line is serialized once, straight from borrowed data, into chunks of [`CHUNK`]
//! bytes, and shared by reference count; it is freed when the last client is done with it.
//! Chunks rather than one buffer: a `banned` list of 100k bans is ~11 MB, and one buffer that
//! size is mmapped and, once freed, raises glibc's dynamic mmap threshold to its size, after
//! which big buffers come from the heap and linger. Measured with 64 clients that never read,
//! 100k bans: one buffer, 92.9 MB before and 104.0 MB after; chunks, 76.9 MB before and 87.7 MB
//! after. In both, about one line stays resident once the clients are gone (free memory glibc
//! keeps and the next build reuses: 87.5 MB after each of three rounds), never one per client.

use std::fmt;
use std::io;
use std::sync::Arc;

use serde::{Serialize, Serializer};

use super::BanEntryRef;

/// The size of the chunks of a shared line (below glibc's default mmap threshold of 128 KiB).
pub const CHUNK: usize = 64 * 1024;

/// A complete reply line (JSON object and newline), serialized once and shared by reference
/// count: every client given the same line writes from the same chunks.
#[derive(Clone, Default)]
pub struct SharedLine(Arc<Chunks>);

#[derive(Default)]
struct Chunks {
    chunks: Vec<Box<[u8]>>,
    len: usize,
}

impl SharedLine {
    /// The line of a successful `banned` reply listing `bans` in the given order, serialized
    /// straight from the borrowed entries (no per-ban allocation). The bytes are those of
    /// `Reply { bans: Some(..), ..Reply::ok() }.to_line()`.
    pub fn banned<'a>(bans: impl Iterator<Item = BanEntryRef<'a>> + Clone) -> SharedLine {
        struct Bans<I>(I);
        impl<'a, I: Iterator<Item = BanEntryRef<'a>> + Clone> Serialize for Bans<I> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_seq(self.0.clone())
            }
        }
        #[derive(Serialize)]
        struct BannedReply<I: Serialize> {
            ok: bool,
            bans: I,
        }
        let mut writer = ChunkWriter::default();
        serde_json::to_writer(
            &mut writer,
            &BannedReply {
                ok: true,
                bans: Bans(bans),
            },
        )
        .expect("invariant: replies serialize");
        writer.push(b"\n");
        writer.finish()
    }

    /// The line's chunks, in order.
    pub fn chunks(&self) -> impl Iterator<Item = &[u8]> {
        self.0.chunks.iter().map(|c| &c[..])
    }

    /// A copy of the whole line.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        self.chunks().for_each(|c| out.extend_from_slice(c));
        out
    }

    pub fn len(&self) -> usize {
        self.0.len
    }

    pub fn is_empty(&self) -> bool {
        self.0.len == 0
    }

    /// Whether both are the very same line (not merely equal bytes).
    pub fn same_buffer(&self, other: &SharedLine) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// How many handles share the line (1: only this one).
    pub fn holders(&self) -> usize {
        Arc::strong_count(&self.0)
    }
}

impl PartialEq for SharedLine {
    /// Same bytes (the very same line first, then the bytes, whatever the chunking).
    fn eq(&self, other: &SharedLine) -> bool {
        if self.same_buffer(other) {
            return true;
        }
        if self.len() != other.len() {
            return false;
        }
        let (mut a, mut b) = (self.chunks(), other.chunks());
        let (mut x, mut y): (&[u8], &[u8]) = (&[], &[]);
        loop {
            if x.is_empty() {
                x = match a.next() {
                    Some(c) => c,
                    None => return true, // same length: both are done
                };
            }
            if y.is_empty() {
                y = b.next().unwrap_or_default();
            }
            let n = x.len().min(y.len());
            if x[..n] != y[..n] {
                return false;
            }
            (x, y) = (&x[n..], &y[n..]);
        }
    }
}

impl Eq for SharedLine {}

impl From<Vec<u8>> for SharedLine {
    /// Takes a complete line (with its newline), as one chunk.
    fn from(line: Vec<u8>) -> SharedLine {
        let len = line.len();
        SharedLine(Arc::new(Chunks {
            chunks: vec![line.into_boxed_slice()],
            len,
        }))
    }
}

impl fmt::Debug for SharedLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SharedLine({} bytes in {} chunks)",
            self.0.len,
            self.0.chunks.len()
        )
    }
}

/// Collects written bytes into [`CHUNK`]-sized chunks.
#[derive(Default)]
struct ChunkWriter {
    done: Vec<Box<[u8]>>,
    current: Vec<u8>,
    len: usize,
}

impl ChunkWriter {
    fn push(&mut self, mut bytes: &[u8]) {
        self.len += bytes.len();
        while !bytes.is_empty() {
            let room = CHUNK - self.current.len();
            let (now, rest) = bytes.split_at(room.min(bytes.len()));
            let need = self.current.len() + now.len();
            if need > self.current.capacity() {
                // Doubling from small (a short reply stays small), never past CHUNK.
                let want = (self.current.capacity() * 2).clamp(256, CHUNK).max(need);
                self.current.reserve_exact(want - self.current.len());
            }
            self.current.extend_from_slice(now);
            bytes = rest;
            if self.current.len() == CHUNK {
                // Full, so exactly its capacity (never more than CHUNK): boxing it does not
                // reallocate.
                self.done
                    .push(std::mem::take(&mut self.current).into_boxed_slice());
            }
        }
    }

    fn finish(mut self) -> SharedLine {
        if !self.current.is_empty() {
            self.done.push(self.current.into_boxed_slice());
        }
        SharedLine(Arc::new(Chunks {
            chunks: self.done,
            len: self.len,
        }))
    }
}

impl io::Write for ChunkWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.push(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The bytes of one reply, ready to write.
#[derive(Debug, Clone)]
pub enum ReplyLine {
    Owned(Vec<u8>),
    Shared(SharedLine),
}

impl ReplyLine {
    /// The bytes, as the slices to write in order.
    pub fn chunks(&self) -> Box<dyn Iterator<Item = &[u8]> + Send + '_> {
        match self {
            ReplyLine::Owned(bytes) => Box::new(std::iter::once(&bytes[..])),
            ReplyLine::Shared(line) => Box::new(line.chunks()),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            ReplyLine::Owned(bytes) => bytes.len(),
            ReplyLine::Shared(line) => line.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_hold_the_bytes_and_compare_whatever_the_chunking() {
        let bytes: Vec<u8> = (0..3 * CHUNK + 17).map(|i| (i % 251) as u8).collect();
        let mut writer = ChunkWriter::default();
        for piece in bytes.chunks(1000) {
            writer.push(piece);
        }
        let chunked = writer.finish();
        assert_eq!(chunked.len(), bytes.len());
        assert_eq!(chunked.to_vec(), bytes);
        let sizes: Vec<usize> = chunked.chunks().map(<[u8]>::len).collect();
        assert_eq!(sizes, [CHUNK, CHUNK, CHUNK, 17]);
        let whole = SharedLine::from(bytes.clone());
        assert_eq!(whole, chunked, "equal bytes, other chunking");
        let mut other = bytes;
        *other.last_mut().unwrap() ^= 1;
        assert_ne!(SharedLine::from(other), chunked);
        assert_eq!(SharedLine::default(), SharedLine::from(Vec::new()));
    }
}
