//! A request copied out of nginx, so another thread can own it.
//!
//! Nothing in here points into nginx memory. Body bytes that nginx spilled
//! to its temp file stay there: the body keeps a duplicate of the file
//! descriptor and reads the ranges on demand, so a large upload is never
//! loaded whole into memory.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use crate::nginx::request::{BodyPart, HttpRequest};

#[derive(Debug, Clone, Default)]
pub struct RequestHead {
    pub method: Vec<u8>,
    /// The request target as sent, with the query.
    pub raw_uri: Vec<u8>,
    /// The decoded, normalised path.
    pub path: Vec<u8>,
    pub query: Vec<u8>,
    pub protocol: Vec<u8>,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub remote_addr: Vec<u8>,
    pub remote_port: Option<u16>,
    /// The Host the client asked for, else the server block's server_name.
    pub server_name: Vec<u8>,
    pub server_port: Option<u16>,
    pub https: bool,
    /// The prefix of the plain prefix location that took the request.
    pub location: Option<Vec<u8>>,
    pub has_body: bool,
}

impl RequestHead {
    pub fn capture(r: &HttpRequest) -> RequestHead {
        let host = r.host();
        let server_name = if host.is_empty() { r.server_name() } else { host };
        RequestHead {
            method: r.method().to_vec(),
            raw_uri: r.unparsed_uri().to_vec(),
            path: r.uri().to_vec(),
            query: r.args().to_vec(),
            protocol: r.protocol().to_vec(),
            headers: r.headers_in().map(|(k, v)| (k.to_vec(), v.to_vec())).collect(),
            remote_addr: r.client_addr().to_vec(),
            remote_port: r.client_port(),
            server_name: server_name.to_vec(),
            server_port: r.server_port(),
            https: r.is_https(),
            location: r.location_prefix().map(<[u8]>::to_vec),
            has_body: r.has_body(),
        }
    }
}

#[derive(Debug, Clone)]
enum Piece {
    Memory(Vec<u8>),
    File { file: Arc<File>, start: u64, end: u64 },
}

impl Piece {
    fn len(&self) -> u64 {
        match self {
            Piece::Memory(m) => m.len() as u64,
            Piece::File { start, end, .. } => end - start,
        }
    }
}

/// A fully received request body.
#[derive(Debug, Clone, Default)]
pub struct Body {
    pieces: Vec<Piece>,
    len: u64,
}

impl Body {
    /// Copies the in-memory parts and duplicates the temp file's fd.
    pub fn capture(r: &HttpRequest) -> io::Result<Body> {
        let mut body = Body::default();
        for part in r.body_parts() {
            let piece = match part {
                BodyPart::Memory(bytes) => Piece::Memory(bytes.to_vec()),
                BodyPart::File { fd, start, end } => Piece::File {
                    file: Arc::new(File::from(fd.try_clone_to_owned()?)),
                    start,
                    end,
                },
            };
            body.push(piece);
        }
        Ok(body)
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Body {
        let mut body = Body::default();
        body.push(Piece::Memory(bytes));
        body
    }

    fn push(&mut self, piece: Piece) {
        if piece.len() > 0 {
            self.len += piece.len();
            self.pieces.push(piece);
        }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn reader(self) -> BodyReader {
        BodyReader { body: self, piece: 0, offset: 0 }
    }
}

/// Reads a [`Body`] front to back with the calls a file-like object needs.
#[derive(Debug)]
pub struct BodyReader {
    body: Body,
    piece: usize,
    /// Offset within the current piece.
    offset: u64,
}

impl BodyReader {
    /// Bytes not read yet.
    pub fn remaining(&self) -> u64 {
        let consumed: u64 = self.body.pieces[..self.piece].iter().map(Piece::len).sum();
        self.body.len - consumed - self.offset
    }

    /// Reads up to `max` bytes (all that is left with `None`).
    pub fn read(&mut self, max: Option<usize>) -> io::Result<Vec<u8>> {
        let want = max.map_or(self.remaining(), |m| (m as u64).min(self.remaining())) as usize;
        let mut out = Vec::with_capacity(want);
        while out.len() < want {
            let chunk = self.next_chunk(want - out.len())?;
            if chunk.is_empty() {
                break;
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// Reads through the next `\n` (included), at most `max` bytes.
    pub fn read_line(&mut self, max: Option<usize>) -> io::Result<Vec<u8>> {
        let limit = max.unwrap_or(usize::MAX);
        let mut out = Vec::new();
        while out.len() < limit {
            let Some(piece) = self.body.pieces.get(self.piece) else { break };
            let window = (limit - out.len()).min(8192) as u64;
            let take = window.min(piece.len() - self.offset) as usize;
            let bytes = self.peek(take)?;
            let used = match bytes.iter().position(|&c| c == b'\n') {
                Some(i) => i + 1,
                None => bytes.len(),
            };
            out.extend_from_slice(&bytes[..used]);
            self.advance(used as u64);
            if out.last() == Some(&b'\n') {
                break;
            }
        }
        Ok(out)
    }

    /// Sends what is left to a non-blocking socket, from memory with
    /// send() and from nginx's temp file with sendfile() (no copy through
    /// this process). Returns true once everything is sent, false when the
    /// socket is full (wait for it to become writable and call again).
    pub fn send_to(&mut self, fd: std::os::fd::RawFd) -> io::Result<bool> {
        loop {
            let Some(piece) = self.body.pieces.get(self.piece) else { return Ok(true) };
            let left = (piece.len() - self.offset) as usize;
            // SAFETY: plain syscalls on a socket we own, from memory we own
            // or from a file we hold open; lengths stay within the piece.
            let n = unsafe {
                match piece {
                    Piece::Memory(m) => libc::send(
                        fd,
                        m[self.offset as usize..].as_ptr().cast(),
                        left,
                        libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
                    ),
                    Piece::File { file, start, .. } => {
                        let mut at = (start + self.offset) as libc::off_t;
                        libc::sendfile(fd, std::os::fd::AsRawFd::as_raw_fd(&**file), &mut at, left)
                    }
                }
            };
            if n < 0 {
                let err = io::Error::last_os_error();
                return match err.kind() {
                    io::ErrorKind::WouldBlock => Ok(false),
                    io::ErrorKind::Interrupted => continue,
                    _ => Err(err),
                };
            }
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "request body temp file is shorter than nginx recorded"));
            }
            self.advance(n as u64);
        }
    }

    /// Up to `max` bytes from the current piece, consumed.
    fn next_chunk(&mut self, max: usize) -> io::Result<Vec<u8>> {
        let Some(piece) = self.body.pieces.get(self.piece) else { return Ok(Vec::new()) };
        let take = (max as u64).min(piece.len() - self.offset) as usize;
        let bytes = self.peek(take)?;
        self.advance(bytes.len() as u64);
        Ok(bytes)
    }

    /// Up to `len` bytes from the current piece, not consumed.
    fn peek(&self, len: usize) -> io::Result<Vec<u8>> {
        match &self.body.pieces[self.piece] {
            Piece::Memory(m) => {
                let at = self.offset as usize;
                Ok(m[at..at + len].to_vec())
            }
            Piece::File { file, start, .. } => {
                let mut buf = vec![0; len];
                let mut filled = 0;
                while filled < len {
                    let n = file.read_at(&mut buf[filled..], start + self.offset + filled as u64)?;
                    if n == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "request body temp file is shorter than nginx recorded",
                        ));
                    }
                    filled += n;
                }
                Ok(buf)
            }
        }
    }

    fn advance(&mut self, n: u64) {
        self.offset += n;
        if let Some(piece) = self.body.pieces.get(self.piece) {
            if self.offset >= piece.len() {
                self.piece += 1;
                self.offset = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn mixed_body() -> Body {
        // "ab\ncd" in memory, then "ef\ngh\n" from a file range, then "ij".
        let mut tmp = tempfile();
        tmp.write_all(b"XXef\ngh\nYY").unwrap();
        let mut body = Body::from_bytes(b"ab\ncd".to_vec());
        body.push(Piece::File { file: Arc::new(tmp), start: 2, end: 8 });
        body.push(Piece::Memory(b"ij".to_vec()));
        body
    }

    fn tempfile() -> File {
        let path = std::env::temp_dir().join(format!("rgw-body-{}-{:?}", std::process::id(), std::thread::current().id()));
        let f = File::options().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        f
    }

    #[test]
    fn read_all_spans_memory_and_file() {
        let mut r = mixed_body().reader();
        assert_eq!(r.remaining(), 13);
        assert_eq!(r.read(None).unwrap(), b"ab\ncdef\ngh\nij");
        assert_eq!(r.read(None).unwrap(), b"");
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn sized_reads_cross_pieces() {
        let mut r = mixed_body().reader();
        assert_eq!(r.read(Some(4)).unwrap(), b"ab\nc");
        assert_eq!(r.read(Some(4)).unwrap(), b"def\n");
        assert_eq!(r.read(Some(100)).unwrap(), b"gh\nij");
    }

    #[test]
    fn lines_cross_pieces() {
        let mut r = mixed_body().reader();
        assert_eq!(r.read_line(None).unwrap(), b"ab\n");
        assert_eq!(r.read_line(None).unwrap(), b"cdef\n");
        assert_eq!(r.read_line(Some(1)).unwrap(), b"g");
        assert_eq!(r.read_line(None).unwrap(), b"h\n");
        assert_eq!(r.read_line(None).unwrap(), b"ij");
        assert_eq!(r.read_line(None).unwrap(), b"");
    }

    #[test]
    fn empty_body_reads_nothing() {
        let mut r = Body::default().reader();
        assert_eq!(r.read(Some(10)).unwrap(), b"");
        assert_eq!(r.read_line(None).unwrap(), b"");
    }
}
