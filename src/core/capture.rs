//! A request copied out of nginx, so another thread can own it.
//!
//! Nothing in here points into nginx memory. Body bytes that nginx spilled
//! to its temp file stay there: the body keeps a duplicate of the file
//! descriptor and reads the ranges on demand, so a large upload is never
//! loaded whole into memory.

use std::fs::File;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use bytes::Bytes;

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
    /// The user an nginx auth module (auth_basic) authenticated, and the
    /// scheme of the credentials (REMOTE_USER, AUTH_TYPE).
    pub user: Option<(Vec<u8>, Vec<u8>)>,
    /// `rust_param`s, evaluated: environ entries set after the others.
    pub params: Vec<(Vec<u8>, Vec<u8>)>,
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
            user: r.authenticated_user().map(|user| (user.to_vec(), r.auth_scheme().to_vec())),
            params: Vec::new(),
        }
    }
}

/// Body memory parts smaller than this are copied: adopting costs a pool
/// cleanup and an allocation of its own.
const ADOPT_MIN: usize = 16 * 1024;

#[derive(Debug, Clone)]
enum Piece {
    Memory(Bytes),
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
    /// Only the start of an unbuffered body: the rest comes later.
    more: bool,
}

impl Body {
    /// Copies the in-memory parts and duplicates the temp file's fd.
    pub fn capture(r: &HttpRequest) -> io::Result<Body> {
        let mut body = Body::default();
        // A large body is nginx's own block: adopted, not copied on nginx's
        // thread (a MiB costs ~100 µs to copy). nginx's reads leave it in
        // several parts of one buffer, which are slices of the block.
        let parts = r.body_parts();
        let big = parts.iter().any(|p| matches!(p, BodyPart::Memory(m) if m.len() >= ADOPT_MIN));
        let buffer = big.then(|| r.adopt_body_buffer()).flatten().map(|(block, at)| (Bytes::from_owner(block), at as usize));
        for part in parts {
            let piece = match part {
                BodyPart::Memory(bytes) => Piece::Memory(match &buffer {
                    Some((whole, at)) if (bytes.as_ptr() as usize).checked_sub(*at).is_some_and(|off| off + bytes.len() <= whole.len()) => {
                        let off = bytes.as_ptr() as usize - at;
                        whole.slice(off..off + bytes.len())
                    }
                    _ => (bytes.len() >= ADOPT_MIN)
                        .then(|| r.adopt_body_memory(bytes))
                        .flatten()
                        .map_or_else(|| Bytes::copy_from_slice(bytes), Bytes::from_owner),
                }),
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
        body.push(Piece::Memory(Bytes::from(bytes)));
        body
    }

    /// A body in pieces as they arrived (a pool process's STDIN records,
    /// each still in the buffer its socket read filled).
    pub fn from_pieces(pieces: impl IntoIterator<Item = Bytes>) -> Body {
        let mut body = Body::default();
        for piece in pieces {
            body.push(Piece::Memory(piece));
        }
        body
    }

    /// More of it comes later (see [`Body::streaming`]).
    pub fn reader_more_to_come(&self) -> bool {
        self.more
    }

    /// The start of an unbuffered body, whose rest nginx reads later.
    pub fn streaming(mut self) -> Body {
        self.more = true;
        self
    }

    /// The first `len` bytes of `file` (a pool process's spilled upload).
    pub fn from_file(file: File, len: u64) -> Body {
        let mut body = Body::default();
        body.push(Piece::File { file: Arc::new(file), start: 0, end: len });
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
        BodyReader { body: self, piece: 0, offset: 0, passed: 0 }
    }
}

/// Reads a [`Body`] front to back with the calls a file-like object needs.
#[derive(Debug)]
pub struct BodyReader {
    body: Body,
    piece: usize,
    /// Offset within the current piece.
    offset: u64,
    /// Bytes of the pieces before the current one.
    passed: u64,
}

impl BodyReader {
    /// More of the body comes after these bytes (see [`Body::streaming`]).
    pub fn more_to_come(&self) -> bool {
        self.body.more
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> u64 {
        self.body.len - self.passed - self.offset
    }

    /// How many bytes a read of at most `max` (`None`: all) returns.
    pub fn read_len(&self, max: Option<usize>) -> usize {
        max.map_or(self.remaining(), |m| (m as u64).min(self.remaining())) as usize
    }

    /// Reads up to `max` bytes (all that is left with `None`).
    pub fn read(&mut self, max: Option<usize>) -> io::Result<Vec<u8>> {
        let len = self.read_len(max);
        let mut out = Vec::with_capacity(len);
        self.fill(&mut out.spare_capacity_mut()[..len])?;
        // SAFETY: fill() initialised these `len` bytes.
        unsafe { out.set_len(len) };
        Ok(out)
    }

    /// Fills `out` with the next bytes: one copy, straight from memory or
    /// from nginx's temp file, so a caller can read into the buffer it
    /// returns (a Python bytes object) without zeroing it first. All of
    /// `out` is written unless this fails; `out` must be at most
    /// `remaining()` long.
    pub fn fill(&mut self, out: &mut [MaybeUninit<u8>]) -> io::Result<()> {
        let mut filled = 0;
        while filled < out.len() {
            let Some(piece) = self.body.pieces.get(self.piece) else {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end of the request body"));
            };
            let take = ((out.len() - filled) as u64).min(piece.len() - self.offset) as usize;
            let dest = out[filled..filled + take].as_mut_ptr().cast::<u8>();
            match piece {
                Piece::Memory(m) => {
                    let src = &m[self.offset as usize..][..take];
                    // SAFETY: `dest` has room for `take` bytes and is not
                    // part of the body.
                    unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dest, take) };
                }
                Piece::File { file, start, .. } => pread_exact(file, dest, take, start + self.offset)?,
            }
            filled += take;
            self.advance(take as u64);
        }
        Ok(())
    }

    /// The next bytes, up to `max`, when they are in memory: borrowed, not
    /// consumed (see [`BodyReader::consume`]). None at the end of the body or
    /// when the next bytes are in nginx's temp file. Never crosses from one
    /// piece to the next.
    pub fn memory_span(&self, max: usize) -> Option<&[u8]> {
        match self.body.pieces.get(self.piece)? {
            Piece::Memory(m) => {
                let rest = &m[self.offset as usize..];
                Some(&rest[..rest.len().min(max)])
            }
            Piece::File { .. } => None,
        }
    }

    /// Marks `n` bytes of the current [`BodyReader::memory_span`] as read.
    pub fn consume(&mut self, n: usize) {
        debug_assert!(self.memory_span(n).is_some_and(|s| s.len() == n));
        self.advance(n as u64);
    }

    /// Reads through the next `\n` (included), at most `max` bytes.
    pub fn read_line(&mut self, max: Option<usize>) -> io::Result<Vec<u8>> {
        let limit = max.unwrap_or(usize::MAX);
        let mut out = Vec::new();
        while out.len() < limit {
            let Some(piece) = self.body.pieces.get(self.piece) else { break };
            let window = (limit - out.len()).min(8192) as u64;
            let take = window.min(piece.len() - self.offset) as usize;
            let used = {
                let bytes = self.span(take)?;
                let used = bytes.iter().position(|&c| c == b'\n').map_or(bytes.len(), |i| i + 1);
                out.extend_from_slice(&bytes[..used]);
                used
            };
            self.advance(used as u64);
            if out.last() == Some(&b'\n') {
                break;
            }
        }
        Ok(out)
    }

    /// Sends what is left to a non-blocking pipe or socket, from memory with
    /// write() and from nginx's temp file with sendfile() (no copy through
    /// this process). Returns true once everything is sent, false when the
    /// pipe is full (wait for it to become writable and call again). A
    /// reader that is gone is EPIPE: both calls would raise SIGPIPE too,
    /// but nginx ignores it in all its processes (`ngx_init_signals`).
    pub fn send_to(&mut self, fd: std::os::fd::RawFd) -> io::Result<bool> {
        loop {
            let Some(piece) = self.body.pieces.get(self.piece) else { return Ok(true) };
            let left = (piece.len() - self.offset) as usize;
            // SAFETY: plain syscalls on an fd we own, from memory we own or
            // from a file we hold open; lengths stay within the piece.
            let n = unsafe {
                match piece {
                    Piece::Memory(m) => libc::write(fd, m[self.offset as usize..].as_ptr().cast(), left),
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
                return Err(short_file());
            }
            self.advance(n as u64);
        }
    }

    /// Up to `len` bytes of the current piece, not consumed: borrowed from
    /// memory, read from the file.
    fn span(&self, len: usize) -> io::Result<std::borrow::Cow<'_, [u8]>> {
        match &self.body.pieces[self.piece] {
            Piece::Memory(m) => Ok(std::borrow::Cow::Borrowed(&m[self.offset as usize..][..len])),
            Piece::File { file, start, .. } => {
                let mut buf = vec![0; len];
                read_exact_at(file, &mut buf, start + self.offset)?;
                Ok(std::borrow::Cow::Owned(buf))
            }
        }
    }

    fn advance(&mut self, n: u64) {
        self.offset += n;
        if let Some(piece) = self.body.pieces.get(self.piece) {
            if self.offset >= piece.len() {
                self.passed += piece.len();
                self.piece += 1;
                self.offset = 0;
            }
        }
    }
}

fn read_exact_at(file: &File, buf: &mut [u8], at: u64) -> io::Result<()> {
    pread_exact(file, buf.as_mut_ptr(), buf.len(), at)
}

/// pread() until `len` bytes are at `dest`, which may be uninitialised.
fn pread_exact(file: &File, dest: *mut u8, len: usize, at: u64) -> io::Result<()> {
    // SAFETY: `dest` has room for `len` bytes, possibly uninitialised.
    let dest = unsafe { std::slice::from_raw_parts_mut(dest.cast::<MaybeUninit<u8>>(), len) };
    let mut done = 0;
    while done < len {
        match crate::os::pread_uninit(file.as_raw_fd(), &mut dest[done..], at + done as u64)? {
            0 => return Err(short_file()),
            n => done += n,
        }
    }
    Ok(())
}

fn short_file() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "request body temp file is shorter than nginx recorded")
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
        body.push(Piece::Memory(Bytes::from_static(b"ij")));
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
