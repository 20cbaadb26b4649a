//! FastCGI 1.0 records: the framing nginx workers and pool processes speak.
//!
//! Runs in nginx's workers and in pool processes (both ends of the wire).
//!
//! The pool uses the standard records (and the standard name-value encoding
//! for parameters) rather than a private format, so that other FastCGI
//! responders can be hosted later without a second protocol.
//!
//! A record is an 8-byte header (version 1, type, request id and content
//! length big-endian, padding length, a reserved byte) followed by the
//! content and the padding. Streams (PARAMS, STDIN, STDOUT, STDERR, DATA)
//! are a sequence of records of one type ended by an empty one.
//!
//! This module only frames bytes: it does no I/O, so both ends (the nginx
//! event loop and the blocking pool processes) use the same code.

use std::fmt;

use bytes::{Buf, Bytes, BytesMut};

pub const HEADER_LEN: usize = 8;
pub const MAX_CONTENT: usize = 65535;

pub const BEGIN_REQUEST: u8 = 1;
pub const ABORT_REQUEST: u8 = 2;
pub const END_REQUEST: u8 = 3;
pub const PARAMS: u8 = 4;
pub const STDIN: u8 = 5;
pub const STDOUT: u8 = 6;
pub const STDERR: u8 = 7;
pub const DATA: u8 = 8;
pub const GET_VALUES: u8 = 9;
pub const GET_VALUES_RESULT: u8 = 10;
pub const UNKNOWN_TYPE: u8 = 11;
/// Ours, from a pool process to nginx (FastCGI leaves types past 11
/// undefined, and other responders never send it): a thread began running
/// the request, at the CLOCK_MONOTONIC millisecond in its 8 content bytes
/// (little-endian), for `$rust_queue_time`.
pub const RUST_STARTED: u8 = 100;
/// Our own record type, for a WebSocket's messages (see
/// [`crate::pool::ws_wire`]).
pub const RUST_WS: u8 = 101;

pub const RESPONDER: u16 = 1;

/// BEGIN_REQUEST flag: keep the connection open after the request ends.
pub const KEEP_CONN: u8 = 1;

pub const REQUEST_COMPLETE: u8 = 0;
pub const CANT_MPX_CONN: u8 = 1;
pub const OVERLOADED: u8 = 2;
pub const UNKNOWN_ROLE: u8 = 3;

const VERSION: u8 = 1;

/// Content per record when splitting a stream: the largest multiple of 8
/// under MAX_CONTENT, so full records need no padding and stay aligned.
pub const STREAM_CHUNK: usize = MAX_CONTENT & !7;

/// BEGIN_REQUEST and END_REQUEST bodies are both fixed at 8 bytes.
const BODY_LEN: usize = 8;

/// The largest length the name-value encoding can carry (31 bits).
const MAX_PAIR_LEN: usize = 0x7fff_ffff;

/// Decoded name-value pairs, in stream order (names may repeat), borrowed
/// from the bytes they were decoded from.
pub type Pairs<'a> = Vec<(&'a [u8], &'a [u8])>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProtocolError {}

/// One record, padding stripped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub kind: u8,
    pub request_id: u16,
    pub content: Bytes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BeginRequest {
    pub role: u16,
    pub flags: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndRequest {
    pub app_status: u32,
    pub protocol_status: u8,
}

/// Padding that brings `len` bytes of content to a multiple of 8, which the
/// spec recommends so that the next header starts aligned.
fn padding_for(len: usize) -> u8 {
    // At most 7, so the cast cannot truncate.
    ((8 - len % 8) % 8) as u8
}

/// Appends one record header.
pub fn push_header(out: &mut Vec<u8>, kind: u8, request_id: u16, content_len: u16, padding: u8) {
    let [id_hi, id_lo] = request_id.to_be_bytes();
    let [len_hi, len_lo] = content_len.to_be_bytes();
    out.extend_from_slice(&[VERSION, kind, id_hi, id_lo, len_hi, len_lo, padding, 0]);
}

/// Appends one record holding `content` (at most MAX_CONTENT bytes, which
/// the callers here guarantee), padded to a multiple of 8.
fn push_record(out: &mut Vec<u8>, kind: u8, request_id: u16, content: &[u8]) {
    debug_assert!(content.len() <= MAX_CONTENT);
    let padding = padding_for(content.len());
    // Callers split at STREAM_CHUNK or pass fixed 8-byte bodies.
    let len = u16::try_from(content.len()).unwrap_or(u16::MAX);
    push_header(out, kind, request_id, len, padding);
    out.extend_from_slice(content);
    out.resize(out.len() + usize::from(padding), 0);
}

/// Appends `data` as records of `kind`, split at the record size limit.
/// Empty `data` appends nothing: an empty record would end the stream,
/// which is [`push_stream_end`]'s job.
pub fn push_stream(out: &mut Vec<u8>, kind: u8, request_id: u16, data: &[u8]) {
    out.reserve(data.len() + data.len().div_ceil(STREAM_CHUNK) * (HEADER_LEN + 7));
    for chunk in data.chunks(STREAM_CHUNK) {
        push_record(out, kind, request_id, chunk);
    }
}

/// Appends up to `len` bytes as records of `kind`, split as
/// [`push_stream`] splits, but has `fill` write each record's content
/// straight into `out` (a request body from nginx's buffers or temp file,
/// a file response: one copy, not two, and nothing zeroed first). `fill`
/// gets the room for the next record and returns how many bytes it wrote
/// there; fewer than the room (0 at the end of a file) ends the stream
/// there. Returns the bytes appended; on an error, nothing of this call's
/// records is left in `out`.
///
/// # Safety
/// When `fill` returns Ok(n), it must have initialized the first `n`
/// bytes of the slice it was given.
pub unsafe fn push_stream_with(
    out: &mut Vec<u8>,
    kind: u8,
    request_id: u16,
    len: usize,
    mut fill: impl FnMut(&mut [std::mem::MaybeUninit<u8>]) -> std::io::Result<usize>,
) -> std::io::Result<usize> {
    out.reserve(len + len.div_ceil(STREAM_CHUNK) * (HEADER_LEN + 7));
    let start = out.len();
    let mut done = 0;
    while done < len {
        let room = (len - done).min(STREAM_CHUNK);
        let header = out.len();
        // Its length and padding are written once the content is in.
        push_header(out, kind, request_id, 0, 0);
        out.reserve(room);
        let n = match fill(&mut out.spare_capacity_mut()[..room]) {
            Ok(n) => n.min(room),
            Err(e) => {
                out.truncate(start);
                return Err(e);
            }
        };
        if n == 0 {
            out.truncate(header);
            break;
        }
        // SAFETY: the caller's `fill` initialized these `n` bytes of the
        // spare capacity, just past the length.
        unsafe { out.set_len(out.len() + n) };
        let padding = padding_for(n);
        // `n` is at most STREAM_CHUNK, which fits in a u16.
        let [len_hi, len_lo] = (n as u16).to_be_bytes();
        out[header + 4..header + 7].copy_from_slice(&[len_hi, len_lo, padding]);
        out.resize(out.len() + usize::from(padding), 0);
        done += n;
        if n < room {
            break;
        }
    }
    Ok(done)
}

/// Appends the empty record that ends a stream (PARAMS, STDIN, STDOUT, STDERR).
pub fn push_stream_end(out: &mut Vec<u8>, kind: u8, request_id: u16) {
    push_header(out, kind, request_id, 0, 0);
}

pub fn push_begin_request(out: &mut Vec<u8>, request_id: u16, role: u16, flags: u8) {
    let [role_hi, role_lo] = role.to_be_bytes();
    push_record(
        out,
        BEGIN_REQUEST,
        request_id,
        &[role_hi, role_lo, flags, 0, 0, 0, 0, 0],
    );
}

pub fn push_end_request(out: &mut Vec<u8>, request_id: u16, app_status: u32, protocol_status: u8) {
    let mut body = [0u8; BODY_LEN];
    body[..4].copy_from_slice(&app_status.to_be_bytes());
    body[4] = protocol_status;
    push_record(out, END_REQUEST, request_id, &body);
}

fn push_pair_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        // Checked just above: fits in 7 bits.
        out.push(len as u8);
    } else {
        // Request data never comes near 2 GiB (nginx caps headers far
        // lower), so a longer length is a bug in the caller, not input.
        assert!(
            len <= MAX_PAIR_LEN,
            "FastCGI name or value of {len} bytes exceeds 31 bits"
        );
        out.extend_from_slice(&((len as u32) | 0x8000_0000).to_be_bytes());
    }
}

/// Appends one name-value pair in FastCGI's length-prefixed encoding (not a
/// record).
///
/// # Panics
///
/// If `name` or `value` is 2 GiB or longer, which the encoding cannot carry.
pub fn encode_pair(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    push_pair_len(out, name.len());
    push_pair_len(out, value.len());
    out.extend_from_slice(name);
    out.extend_from_slice(value);
}

/// Appends a whole PARAMS stream: the pairs (encoded with [`encode_pair`];
/// they may straddle records, so they are encoded first and split here),
/// then the empty PARAMS record.
/// A GET_VALUES record asking for `names` (FastCGI §4.1: the values are
/// empty).
pub fn push_get_values(out: &mut Vec<u8>, names: &[&[u8]]) {
    let mut content = Vec::new();
    for name in names {
        encode_pair(&mut content, name, b"");
    }
    push_header(out, GET_VALUES, 0, content.len() as u16, 0);
    out.extend_from_slice(&content);
}

/// The variables a web server asks a FastCGI program for (FastCGI §4.1).
pub const MAX_CONNS: &[u8] = b"FCGI_MAX_CONNS";
pub const MAX_REQS: &[u8] = b"FCGI_MAX_REQS";
pub const MPXS_CONNS: &[u8] = b"FCGI_MPXS_CONNS";

/// How many requests at once a program says it takes, from the content of
/// its GET_VALUES_RESULT: the lower of FCGI_MAX_CONNS and FCGI_MAX_REQS
/// (its connections carry one request each unless FCGI_MPXS_CONNS is 1,
/// which we do not use), 1 when it says neither. php-cgi and libfcgi say 1.
pub fn capacity_of(content: &[u8]) -> u32 {
    let Ok(pairs) = decode_pairs(content) else { return 1 };
    pairs
        .iter()
        .filter(|(name, _)| *name == MAX_CONNS || *name == MAX_REQS)
        .filter_map(|(_, value)| std::str::from_utf8(value).ok()?.trim().parse::<u32>().ok())
        .filter(|&n| n > 0)
        .min()
        .unwrap_or(1)
        .min(1024)
}

pub fn push_params(out: &mut Vec<u8>, request_id: u16, encoded: &[u8]) {
    push_stream(out, PARAMS, request_id, encoded);
    push_stream_end(out, PARAMS, request_id);
}

/// Reads one pair length at `*pos`, advancing past it.
fn read_pair_len(buf: &[u8], pos: &mut usize) -> Result<usize, ProtocolError> {
    let at = *pos;
    let truncated = || ProtocolError(format!("FastCGI name-value pair truncated at byte {at}"));
    let first = *buf.get(at).ok_or_else(truncated)?;
    if first & 0x80 == 0 {
        *pos += 1;
        return Ok(usize::from(first));
    }
    let bytes: [u8; 4] = buf
        .get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(truncated)?;
    *pos += 4;
    let len = u32::from_be_bytes(bytes) & 0x7fff_ffff;
    usize::try_from(len).map_err(|_| ProtocolError(format!("FastCGI pair length {len} too large")))
}

/// Decodes the concatenated content of a PARAMS stream (or GET_VALUES and
/// GET_VALUES_RESULT bodies, which use the same encoding).
pub fn decode_pairs(buf: &[u8]) -> Result<Pairs<'_>, ProtocolError> {
    let mut pairs = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let name_len = read_pair_len(buf, &mut pos)?;
        let value_len = read_pair_len(buf, &mut pos)?;
        // Checked arithmetic: the lengths come from the peer and could
        // otherwise wrap on 32-bit targets.
        let name_end = pos.checked_add(name_len);
        let value_end = name_end.and_then(|end| end.checked_add(value_len));
        let (Some(name_end), Some(value_end)) = (name_end, value_end) else {
            return Err(ProtocolError("FastCGI pair length overflows".into()));
        };
        if value_end > buf.len() {
            return Err(ProtocolError(format!(
                "FastCGI name-value pair truncated: needs {} bytes, {} left",
                value_end - pos,
                buf.len() - pos
            )));
        }
        pairs.push((&buf[pos..name_end], &buf[name_end..value_end]));
        pos = value_end;
    }
    Ok(pairs)
}

fn fixed_body<'a>(content: &'a [u8], what: &str) -> Result<&'a [u8; BODY_LEN], ProtocolError> {
    // A body of another size means the two ends disagree on framing.
    content.try_into().map_err(|_| {
        ProtocolError(format!(
            "FastCGI {what} body of {} bytes, expected {BODY_LEN}",
            content.len()
        ))
    })
}

pub fn parse_begin_request(content: &[u8]) -> Result<BeginRequest, ProtocolError> {
    let body = fixed_body(content, "BEGIN_REQUEST")?;
    Ok(BeginRequest {
        role: u16::from_be_bytes([body[0], body[1]]),
        flags: body[2],
    })
}

pub fn parse_end_request(content: &[u8]) -> Result<EndRequest, ProtocolError> {
    let body = fixed_body(content, "END_REQUEST")?;
    Ok(EndRequest {
        app_status: u32::from_be_bytes([body[0], body[1], body[2], body[3]]),
        protocol_status: body[4],
    })
}

/// The most a read takes while no large record is being received.
const SMALL_READ: usize = 8 * 1024;
/// The allocation that reads of short records share.
const SHARED_ALLOC: usize = 16 * 1024;

/// Incremental decoder for a byte stream of records (a socket read in
/// arbitrary pieces).
///
/// Records come out sharing the buffer they were read into: a record's
/// content is a slice of that allocation, not a copy, so a body piece or
/// a response chunk goes on from the socket's read without being moved.
/// Once every record of a read is dropped, the allocation is reused for
/// the next reads.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: BytesMut,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    pub fn feed(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Reads from `fd` straight into the buffer; callers take the complete
    /// records out between reads.
    ///
    /// A large record (above `SMALL_READ`) is read to its end plus the
    /// next header, into an allocation with room for all of it: it never
    /// straddles two allocations, so nothing of it is moved when the next
    /// one is made (a 64 KiB record read 64 KiB at a time would otherwise
    /// be copied once more, whole). Otherwise reads take at most
    /// `SMALL_READ` bytes, so that little of a large record that starts
    /// in them is moved, and short records share an allocation of
    /// `SHARED_ALLOC` bytes rather than hold one each while nginx sends
    /// them.
    pub fn read_from(&mut self, fd: std::os::fd::RawFd) -> std::io::Result<usize> {
        let (want, alloc) = match self.pending_len() {
            Some(total) if total > SMALL_READ && self.buf.len() < total => {
                let want = total - self.buf.len() + HEADER_LEN;
                (want, want)
            }
            _ => (SMALL_READ, SHARED_ALLOC),
        };
        if self.buf.capacity() - self.buf.len() < want {
            // A fresh allocation with only the unfinished record (a header,
            // or the start of a record) moved into it; the records already
            // taken out keep the old one alive as long as they need it.
            let mut fresh = BytesMut::with_capacity(self.buf.len() + alloc);
            fresh.extend_from_slice(&self.buf);
            self.buf = fresh;
        }
        let spare = self.buf.spare_capacity_mut();
        let room = spare.len().min(want);
        let n = crate::os::read_uninit(fd, &mut spare[..room])?;
        // SAFETY: read_uninit initialized the first `n` bytes of the spare
        // capacity, just past the length.
        unsafe { self.buf.set_len(self.buf.len() + n) };
        Ok(n)
    }

    /// The whole length (header, content, padding) of the record at the
    /// front, once its header is in.
    fn pending_len(&self) -> Option<usize> {
        let header = self.buf.get(..HEADER_LEN)?;
        Some(HEADER_LEN + usize::from(u16::from_be_bytes([header[4], header[5]])) + usize::from(header[6]))
    }

    /// The next complete record, Ok(None) if more bytes are needed.
    ///
    /// A header with a version other than 1 is an error, and stays one:
    /// after it the record boundaries are unknown, so the connection is lost.
    pub fn next_record(&mut self) -> Result<Option<Record>, ProtocolError> {
        let Some(header) = self.buf.get(..HEADER_LEN) else {
            return Ok(None);
        };
        if header[0] != VERSION {
            return Err(ProtocolError(format!(
                "FastCGI record version {}, expected {VERSION}",
                header[0]
            )));
        }
        let kind = header[1];
        let request_id = u16::from_be_bytes([header[2], header[3]]);
        let content_len = usize::from(u16::from_be_bytes([header[4], header[5]]));
        let padding = usize::from(header[6]);
        let total = HEADER_LEN + content_len + padding;
        if self.buf.len() < total {
            return Ok(None);
        }
        let mut record = self.buf.split_to(total);
        record.advance(HEADER_LEN);
        record.truncate(content_len);
        Ok(Some(Record { kind, request_id, content: record.freeze() }))
    }

    /// Bytes received and not yet returned as records.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8]) -> Vec<Record> {
        let mut decoder = Decoder::new();
        decoder.feed(bytes);
        let mut records = Vec::new();
        while let Some(record) = decoder.next_record().unwrap() {
            records.push(record);
        }
        assert_eq!(decoder.buffered(), 0);
        records
    }

    /// The content of one stream of `kind`, checking that it is ended.
    fn collect_stream(records: &[Record], kind: u8, request_id: u16) -> Vec<u8> {
        let mut data = Vec::new();
        let mut ended = false;
        for record in records
            .iter()
            .filter(|r| r.kind == kind && r.request_id == request_id)
        {
            assert!(!ended, "records after the end of the stream");
            if record.content.is_empty() {
                ended = true;
            }
            data.extend_from_slice(&record.content);
        }
        assert!(ended, "stream not ended");
        data
    }

    #[test]
    fn header_round_trip() {
        let mut out = Vec::new();
        push_header(&mut out, STDOUT, 0x1234, 5, 3);
        assert_eq!(out, [1, STDOUT, 0x12, 0x34, 0, 5, 3, 0]);
        out.extend_from_slice(b"hello\0\0\0");
        let records = decode_all(&out);
        assert_eq!(
            records,
            [Record {
                kind: STDOUT,
                request_id: 0x1234,
                content: Bytes::from_static(b"hello")
            }]
        );

        let mut out = Vec::new();
        push_header(&mut out, STDIN, u16::MAX, u16::MAX, 255);
        assert_eq!(out, [1, STDIN, 0xff, 0xff, 0xff, 0xff, 255, 0]);
    }

    #[test]
    fn stream_splits_at_record_limit_and_pads_to_8() {
        let data: Vec<u8> = (0..STREAM_CHUNK * 2 + 5).map(|i| (i % 251) as u8).collect();
        let mut out = Vec::new();
        push_stream(&mut out, STDIN, 7, &data);
        // Two full records, then 5 bytes padded by 3.
        assert_eq!(out.len(), 3 * HEADER_LEN + STREAM_CHUNK * 2 + 8);
        assert_eq!(out.len() % 8, 0);

        let records = decode_all(&out);
        assert_eq!(records.len(), 3);
        assert!(records.iter().all(|r| r.kind == STDIN && r.request_id == 7));
        assert!(records.iter().all(|r| r.content.len() <= MAX_CONTENT));
        assert_eq!(records[0].content.len(), STREAM_CHUNK);
        assert_eq!(records[2].content.len(), 5);
        // The last header says 3 bytes of padding.
        let last = HEADER_LEN * 2 + STREAM_CHUNK * 2;
        assert_eq!(&out[last..last + HEADER_LEN], &[1, STDIN, 0, 7, 0, 5, 3, 0]);
        let joined: Vec<u8> = records
            .iter()
            .flat_map(|r| r.content.iter().copied())
            .collect();
        assert_eq!(joined, data);

        // Exactly one full record needs no padding.
        let mut out = Vec::new();
        push_stream(&mut out, STDOUT, 1, &data[..STREAM_CHUNK]);
        assert_eq!(out.len(), HEADER_LEN + STREAM_CHUNK);
        assert_eq!(out[6], 0);
    }

    #[test]
    fn empty_stream_and_stream_end() {
        let mut out = Vec::new();
        push_stream(&mut out, STDIN, 1, b"");
        assert!(out.is_empty());

        push_stream_end(&mut out, STDIN, 0x0102);
        assert_eq!(out, [1, STDIN, 1, 2, 0, 0, 0, 0]);
        let records = decode_all(&out);
        assert_eq!(
            records,
            [Record {
                kind: STDIN,
                request_id: 0x0102,
                content: Bytes::new()
            }]
        );
    }

    #[test]
    fn short_pairs() {
        let mut out = Vec::new();
        encode_pair(&mut out, b"A", b"bc");
        assert_eq!(out, [1, 2, b'A', b'b', b'c']);

        let name = vec![b'n'; 127];
        let mut out = Vec::new();
        encode_pair(&mut out, &name, b"");
        assert_eq!(&out[..2], &[127, 0]);
        assert_eq!(out.len(), 2 + 127);
        assert_eq!(decode_pairs(&out).unwrap(), [(&name[..], &b""[..])]);
    }

    #[test]
    fn records_read_from_a_socket_arrive_whole_big_and_small() {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        let (mut tx, rx) = std::os::unix::net::UnixStream::pair().unwrap();
        rx.set_nonblocking(true).unwrap();
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
        let mut out = Vec::new();
        push_stream(&mut out, STDOUT, 1, &big);
        for i in 0..100u8 {
            push_stream(&mut out, STDERR, 1, &[i; 37]);
        }
        push_stream(&mut out, STDOUT, 1, &big);
        let writer = std::thread::spawn(move || tx.write_all(&out).unwrap());
        let mut decoder = Decoder::new();
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        while stderr.len() < 100 || stdout.len() < 2 * big.len() {
            match decoder.read_from(rx.as_raw_fd()) {
                Ok(0) => panic!("the stream ended early"),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
            while let Some(record) = decoder.next_record().unwrap() {
                match record.kind {
                    STDOUT => stdout.extend_from_slice(&record.content),
                    _ => stderr.push(record.content),
                }
            }
        }
        writer.join().unwrap();
        assert_eq!(stdout, [&big[..], &big[..]].concat());
        assert!(stderr.iter().enumerate().all(|(i, c)| c[..] == [i as u8; 37]));
    }

    #[test]
    fn streams_filled_in_place_are_the_same_records() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut expected = vec![1, 2, 3];
        push_stream(&mut expected, STDIN, 1, &data);
        let mut out = vec![1, 2, 3];
        let mut at = 0;
        let copy = |at: &mut usize, buf: &mut [std::mem::MaybeUninit<u8>], data: &[u8]| {
            let n = buf.len().min(data.len() - *at);
            for (cell, &b) in buf.iter_mut().zip(&data[*at..*at + n]) {
                cell.write(b);
            }
            *at += n;
            Ok(n)
        };
        // SAFETY: `copy` initializes the bytes it counts.
        let appended = unsafe { push_stream_with(&mut out, STDIN, 1, data.len(), |buf| copy(&mut at, buf, &data)) };
        assert_eq!(appended.unwrap(), data.len());
        assert_eq!(out, expected);
        // A failed fill leaves nothing of its records behind.
        // SAFETY: the fill initializes nothing and says so.
        let failed = unsafe { push_stream_with(&mut out, STDIN, 1, 10, |_| Err(std::io::Error::other("gone"))) };
        assert!(failed.is_err());
        assert_eq!(out, expected);
        // A short fill (a file that ends early) ends the stream there,
        // in a record of the right length.
        let short = &data[..100_000];
        let mut at = 0;
        let mut out = Vec::new();
        // SAFETY: as above.
        let appended = unsafe { push_stream_with(&mut out, STDOUT, 1, 150_000, |buf| copy(&mut at, buf, short)) };
        assert_eq!(appended.unwrap(), short.len());
        let mut expected = Vec::new();
        push_stream(&mut expected, STDOUT, 1, short);
        assert_eq!(out, expected);
    }

    #[test]
    fn long_pairs() {
        let name = vec![b'N'; 300];
        let value: Vec<u8> = (0..70_000u32).map(|i| (i % 256) as u8).collect();
        let mut out = Vec::new();
        encode_pair(&mut out, &name, &value);
        // 300 = 0x12c, 70,000 = 0x11170, each with the top bit set.
        assert_eq!(&out[..8], &[0x80, 0, 0x01, 0x2c, 0x80, 0x01, 0x11, 0x70]);
        assert_eq!(out.len(), 8 + 300 + 70_000);

        // The boundary: 128 takes the 4-byte form.
        let mut boundary = Vec::new();
        encode_pair(&mut boundary, &[b'x'; 128], b"short");
        assert_eq!(&boundary[..5], &[0x80, 0, 0, 128, 5]);

        encode_pair(&mut out, b"SHORT", b"value");
        out.extend_from_slice(&boundary);
        let pairs = decode_pairs(&out).unwrap();
        assert_eq!(
            pairs,
            [
                (&name[..], &value[..]),
                (&b"SHORT"[..], &b"value"[..]),
                (&[b'x'; 128][..], &b"short"[..]),
            ]
        );
        assert!(decode_pairs(b"").unwrap().is_empty());
    }

    #[test]
    fn truncated_pairs_are_errors() {
        let mut out = Vec::new();
        encode_pair(&mut out, b"NAME", b"value");
        encode_pair(&mut out, &[b'n'; 200], &[b'v'; 300]);
        let first_len = 2 + 4 + 5;
        for cut in 1..out.len() {
            let result = decode_pairs(&out[..cut]);
            if cut == first_len {
                assert_eq!(result.unwrap().len(), 1);
            } else {
                assert!(result.is_err(), "cut at {cut} decoded");
            }
        }
        // A length claiming more than is there.
        assert!(decode_pairs(&[0x80, 0, 0, 200, 0]).is_err());
        assert!(decode_pairs(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn params_larger_than_a_record() {
        let big_value = vec![b'v'; 100_000];
        let big_name = vec![b'N'; 70_000];
        let pairs: Vec<(&[u8], &[u8])> = vec![
            (b"SCRIPT_NAME", b"/app"),
            (b"HTTP_COOKIE", &big_value),
            (&big_name, b"x"),
            (b"EMPTY", b""),
        ];
        let mut out = Vec::new();
        push_params(&mut out, 3, &encode_all(pairs.iter().copied()));

        let records = decode_all(&out);
        assert!(
            records.len() >= 4,
            "expected the pairs split over several records"
        );
        assert!(records
            .iter()
            .all(|r| r.kind == PARAMS && r.content.len() <= MAX_CONTENT));
        assert!(records.last().unwrap().content.is_empty());
        let content = collect_stream(&records, PARAMS, 3);
        let decoded = decode_pairs(&content).unwrap();
        assert_eq!(decoded, pairs);

        // No pairs still ends the stream.
        let mut out = Vec::new();
        push_params(&mut out, 3, &[]);
        assert_eq!(out, [1, PARAMS, 0, 3, 0, 0, 0, 0]);
    }

    fn encode_all<'a>(pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> Vec<u8> {
        let mut encoded = Vec::new();
        for (name, value) in pairs {
            encode_pair(&mut encoded, name, value);
        }
        encoded
    }

    fn sample_conversation() -> Vec<u8> {
        let mut out = Vec::new();
        push_begin_request(&mut out, 1, RESPONDER, KEEP_CONN);
        push_params(
            &mut out,
            1,
            &encode_all([
                (&b"REQUEST_METHOD"[..], &b"POST"[..]),
                (b"QUERY_STRING", b"a=1"),
            ]),
        );
        let body: Vec<u8> = (0..150_000u32).map(|i| (i * 7 % 256) as u8).collect();
        push_stream(&mut out, STDIN, 1, &body);
        push_stream_end(&mut out, STDIN, 1);
        push_stream(&mut out, STDOUT, 1, b"Status: 200 OK\r\n\r\nhi");
        push_stream(&mut out, STDERR, 1, b"warning");
        push_stream_end(&mut out, STDERR, 1);
        push_stream_end(&mut out, STDOUT, 1);
        push_end_request(&mut out, 1, 0, REQUEST_COMPLETE);
        out
    }

    #[test]
    fn byte_by_byte_matches_whole() {
        let bytes = sample_conversation();
        let whole = decode_all(&bytes);
        assert_eq!(whole.first().unwrap().kind, BEGIN_REQUEST);
        assert_eq!(whole.last().unwrap().kind, END_REQUEST);

        let mut decoder = Decoder::new();
        let mut pieces = Vec::new();
        let mut returned = 0;
        for (i, byte) in bytes.iter().enumerate() {
            decoder.feed(std::slice::from_ref(byte));
            while let Some(record) = decoder.next_record().unwrap() {
                // Every record here was written padded to 8 by this module.
                returned += HEADER_LEN
                    + record.content.len()
                    + usize::from(padding_for(record.content.len()));
                pieces.push(record);
            }
            assert_eq!(decoder.buffered(), i + 1 - returned);
        }
        assert_eq!(decoder.buffered(), 0);
        assert_eq!(pieces, whole);

        // Uneven pieces, several records per feed.
        let mut decoder = Decoder::new();
        let mut uneven = Vec::new();
        for chunk in bytes.chunks(12_345) {
            decoder.feed(chunk);
            while let Some(record) = decoder.next_record().unwrap() {
                uneven.push(record);
            }
        }
        assert_eq!(uneven, whole);
    }

    #[test]
    fn incomplete_record_waits() {
        let mut out = Vec::new();
        push_stream(&mut out, STDOUT, 2, b"abc");
        let mut decoder = Decoder::new();
        decoder.feed(&out[..HEADER_LEN + 3]);
        // Content is there but the padding is not.
        assert_eq!(decoder.next_record().unwrap(), None);
        assert_eq!(decoder.buffered(), HEADER_LEN + 3);
        decoder.feed(&out[HEADER_LEN + 3..]);
        assert_eq!(decoder.next_record().unwrap().unwrap().content, &b"abc"[..]);
        assert_eq!(decoder.next_record().unwrap(), None);
    }

    #[test]
    fn bad_version_is_an_error() {
        let mut decoder = Decoder::new();
        decoder.feed(&[2, STDOUT, 0, 1, 0, 0, 0, 0]);
        assert!(decoder.next_record().is_err());
        assert!(decoder.next_record().is_err());

        // Reported as soon as the header is complete, before any content.
        let mut decoder = Decoder::new();
        decoder.feed(&[0, STDOUT, 0, 1, 0xff, 0xff, 0, 0]);
        let err = decoder.next_record().unwrap_err();
        assert!(err.to_string().contains("version 0"), "{err}");
    }

    #[test]
    fn begin_and_end_request_round_trip() {
        let mut out = Vec::new();
        push_begin_request(&mut out, 9, RESPONDER, KEEP_CONN);
        push_end_request(&mut out, 9, 0xdead_beef, OVERLOADED);
        assert_eq!(out.len(), 2 * (HEADER_LEN + 8));
        assert_eq!(
            &out[..16],
            &[
                1,
                BEGIN_REQUEST,
                0,
                9,
                0,
                8,
                0,
                0,
                0,
                1,
                KEEP_CONN,
                0,
                0,
                0,
                0,
                0
            ]
        );

        let records = decode_all(&out);
        assert_eq!(records[0].kind, BEGIN_REQUEST);
        assert_eq!(records[0].request_id, 9);
        assert_eq!(
            parse_begin_request(&records[0].content).unwrap(),
            BeginRequest {
                role: RESPONDER,
                flags: KEEP_CONN
            }
        );
        assert_eq!(records[1].kind, END_REQUEST);
        assert_eq!(
            parse_end_request(&records[1].content).unwrap(),
            EndRequest {
                app_status: 0xdead_beef,
                protocol_status: OVERLOADED
            }
        );

        assert!(parse_begin_request(&[0, 1, 0]).is_err());
        assert!(parse_end_request(&[0; 9]).is_err());
    }

    #[test]
    fn capacity_from_get_values_result() {
        let mut content = Vec::new();
        encode_pair(&mut content, MPXS_CONNS, b"0");
        encode_pair(&mut content, MAX_REQS, b"1");
        encode_pair(&mut content, MAX_CONNS, b"1");
        assert_eq!(capacity_of(&content), 1);
        let mut content = Vec::new();
        encode_pair(&mut content, MAX_CONNS, b"16");
        encode_pair(&mut content, MAX_REQS, b"8");
        assert_eq!(capacity_of(&content), 8);
        assert_eq!(capacity_of(b""), 1);
        let mut content = Vec::new();
        encode_pair(&mut content, MAX_CONNS, b"many");
        assert_eq!(capacity_of(&content), 1);
        let mut out = Vec::new();
        push_get_values(&mut out, &[MAX_CONNS]);
        let mut decoder = Decoder::new();
        decoder.feed(&out);
        let record = decoder.next_record().unwrap().unwrap();
        assert_eq!((record.kind, record.request_id), (GET_VALUES, 0));
        assert_eq!(decode_pairs(&record.content).unwrap(), vec![(MAX_CONNS, &b""[..])]);
    }
}
