//! The request a connection carries, as its FastCGI records arrive.
//!
//! Runs in a pool process, on its main thread (the front's).
//!
//! Records build the request up (BEGIN_REQUEST, PARAMS, STDIN) until the
//! empty STDIN record says it is whole; the front then hands it to a host.
//! The body is kept in memory up to `SPILL` bytes, then in an unlinked
//! temp file (from its first byte when its length says it will not fit). Management records (GET_VALUES) are answered here; one
//! request at a time per connection, as nginx sends them.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::Arc;

use bytes::Bytes;

use crate::asgi::host as asgi;
use crate::core::capture::RequestHead;
use crate::core::exchange::Exchange;
use crate::nginx::log::Level;
use crate::pool::fastcgi::{self as fcgi, Record};
use crate::pool::log::say;
use crate::pool::params::{from_params, Extras};

use super::front::Conn;

/// Request bodies above this go to a temp file instead of memory.
const SPILL: usize = 1 << 20;

pub struct Active {
    pub id: u16,
    params: Vec<u8>,
    pub head: Option<(RequestHead, Extras)>,
    /// The body so far: STDIN records' content, still in the buffers the
    /// socket was read into.
    pub body: Vec<Bytes>,
    body_len: usize,
    pub spilled: Option<(File, u64)>,
    pub exchange: Option<Arc<Exchange>>,
    /// The rest of a file to send: file, next offset, end.
    pub file: Option<(File, u64, u64)>,
    /// The app finished while a file range was still being sent.
    pub end_after_file: bool,
    /// The response is complete in `out` (END_REQUEST written).
    pub ended: bool,
    /// From another web server (see [`Extras::plain`]).
    pub plain: bool,
    /// The response's head went out.
    pub head_sent: bool,
    pub started_ms: u64,
    pub uri: Vec<u8>,
    /// An ASGI request: what the loop is told of it.
    pub asgi: Option<asgi::Request>,
    /// Its body comes after it started (`rust_asgi_request_buffering
    /// off`), each STDIN record straight to the app; `body_done` once the
    /// empty one came.
    pub streaming: bool,
    pub body_done: bool,
    /// A WebSocket: the app's handle, and the messages nginx sends for it.
    pub websocket: bool,
    pub ws: Option<asgi::RemoteWebSocket>,
    ws_in: crate::pool::ws_wire::Messages,
}

impl Active {
    fn new(id: u16) -> Active {
        Active {
            id,
            params: Vec::new(),
            head: None,
            body: Vec::new(),
            body_len: 0,
            spilled: None,
            exchange: None,
            file: None,
            end_after_file: false,
            ended: false,
            started_ms: 0,
            uri: Vec::new(),
            asgi: None,
            streaming: false,
            body_done: false,
            websocket: false,
            plain: false,
            head_sent: false,
            ws: None,
            ws_in: Default::default(),
        }
    }

    /// Whether the front should read the connection now: not while the app
    /// has no room for more of a streamed body (it says when it has).
    pub fn wants_input(&self) -> bool {
        !self.streaming || self.body_done || self.asgi.as_ref().is_none_or(asgi::Request::body_room)
    }

    /// Running in a host: its start and URI, for the watchdog. A streamed
    /// body's transfer is not the app's time (as nginx's worker counts
    /// `timeout=` from the body's end): it counts from then.
    pub fn running(&self) -> Option<(u64, &[u8])> {
        // A WebSocket lives as long as its client wants: not timed.
        (self.exchange.is_some() && !self.websocket && (!self.streaming || self.body_done)).then_some((self.started_ms, self.uri.as_slice()))
    }

    /// The request is over here: an ASGI app's receive() may be waiting.
    pub fn gone(&self) {
        if let Some(request) = &self.asgi {
            request.gone();
        }
        if let Some(ws) = &self.ws {
            ws.disconnect(1006, String::new());
        }
    }
}

/// What the front does after a record.
pub enum Next {
    Nothing,
    /// Answer bytes are in `out`.
    Flush,
    /// The request is whole: submit it.
    Start,
    /// The stream is broken, or the body cannot be kept.
    Close,
}

pub fn on_record(conn: &mut Conn, record: Record) -> Next {
    match record.kind {
        fcgi::BEGIN_REQUEST => {
            let Ok(begin) = fcgi::parse_begin_request(&record.content) else { return Next::Close };
            if conn.request.is_some() {
                fcgi::push_end_request(&mut conn.out, record.request_id, 0, fcgi::CANT_MPX_CONN);
            } else if begin.role != fcgi::RESPONDER {
                fcgi::push_end_request(&mut conn.out, record.request_id, 0, fcgi::UNKNOWN_ROLE);
            } else {
                conn.keep = begin.flags & fcgi::KEEP_CONN != 0;
                conn.request = Some(Active::new(record.request_id));
            }
            Next::Nothing
        }
        fcgi::PARAMS => {
            let Some(active) = conn.request.as_mut().filter(|a| a.id == record.request_id && a.head.is_none()) else {
                return Next::Nothing;
            };
            if !record.content.is_empty() {
                active.params.extend_from_slice(&record.content);
                return Next::Nothing;
            }
            match fcgi::decode_pairs(&active.params).map_err(|e| e.to_string()).and_then(from_params) {
                Ok(parsed) => {
                    // A body that will not stay in memory goes to a file
                    // from its first byte.
                    let expected = parsed.1.content_length;
                    if expected > SPILL as u64 {
                        match temp_file() {
                            Ok(file) => active.spilled = Some((file, 0)),
                            Err(e) => {
                                say(Level::Error, &format!("cannot keep the request body: {e}"));
                                return Next::Close;
                            }
                        }
                    }
                    active.uri = parsed.0.raw_uri.clone();
                    active.streaming = parsed.1.streaming;
                    active.websocket = parsed.1.websocket;
                    active.plain = parsed.1.plain;
                    active.head = Some(parsed);
                    active.params = Vec::new();
                    if active.streaming || active.websocket {
                        // The app starts now and gets the body as it comes.
                        return Next::Start;
                    }
                    Next::Nothing
                }
                Err(e) => {
                    say(Level::Error, &format!("nginx sent params this process cannot read ({e})"));
                    Next::Close
                }
            }
        }
        fcgi::STDIN if conn.request.as_ref().is_some_and(|a| a.streaming && a.id == record.request_id) => {
            let Some(active) = conn.request.as_mut() else { return Next::Nothing };
            if active.body_done {
                return Next::Nothing;
            }
            let last = record.content.is_empty();
            active.body_done = last;
            if last {
                active.started_ms = crate::pool::slots::unix_ms();
            }
            if let Some(request) = &active.asgi {
                request.more_body(record.content.to_vec(), last);
            }
            Next::Nothing
        }
        fcgi::STDIN => {
            let Some(active) = conn.request.as_mut().filter(|a| a.id == record.request_id && a.head.is_some()) else {
                return Next::Nothing;
            };
            if active.exchange.is_some() || active.ended {
                return Next::Nothing;
            }
            if record.content.is_empty() {
                return Next::Start;
            }
            match take_body(active, record.content) {
                Ok(()) => Next::Nothing,
                Err(e) => {
                    say(Level::Error, &format!("cannot keep the request body: {e}"));
                    Next::Close
                }
            }
        }
        fcgi::RUST_WS => {
            let Some(active) = conn.request.as_mut().filter(|a| a.websocket && a.id == record.request_id) else { return Next::Nothing };
            active.ws_in.feed(&record.content);
            while let Some(message) = active.ws_in.next_to_app() {
                let Some(ws) = &active.ws else { continue };
                match message {
                    Ok(crate::pool::ws_wire::ToApp::Text(text)) => ws.text(text),
                    Ok(crate::pool::ws_wire::ToApp::Bytes(bytes)) => ws.bytes(bytes),
                    Ok(crate::pool::ws_wire::ToApp::Disconnect(code, reason)) => ws.disconnect(code, reason),
                    Err(e) => {
                        say(Level::Error, &format!("nginx sent a WebSocket message this process cannot read ({e})"));
                        return Next::Close;
                    }
                }
            }
            Next::Nothing
        }
        fcgi::ABORT_REQUEST => {
            if let Some(exchange) = conn.request.as_ref().and_then(|a| a.exchange.clone()) {
                exchange.abandon();
            }
            Next::Nothing
        }
        fcgi::GET_VALUES => {
            let mut content = Vec::new();
            fcgi::encode_pair(&mut content, b"FCGI_MPXS_CONNS", b"0");
            fcgi::push_stream(&mut conn.out, fcgi::GET_VALUES_RESULT, 0, &content);
            Next::Flush
        }
        kind => {
            let mut content = [0u8; 8];
            content[0] = kind;
            fcgi::push_header(&mut conn.out, fcgi::UNKNOWN_TYPE, 0, 8, 0);
            conn.out.extend_from_slice(&content);
            Next::Flush
        }
    }
}

fn take_body(active: &mut Active, data: Bytes) -> io::Result<()> {
    if let Some((file, len)) = active.spilled.as_mut() {
        file.write_all(&data)?;
        *len += data.len() as u64;
        return Ok(());
    }
    active.body_len += data.len();
    active.body.push(data);
    if active.body_len > SPILL {
        let mut file = temp_file()?;
        for piece in active.body.drain(..) {
            file.write_all(&piece)?;
        }
        active.spilled = Some((file, active.body_len as u64));
    }
    Ok(())
}

/// An unlinked file in /tmp: nothing to clean up, whatever happens.
fn temp_file() -> io::Result<File> {
    let dir = std::ffi::CString::new(std::env::temp_dir().as_os_str().as_encoded_bytes()).unwrap_or_default();
    // SAFETY: plain syscall; the fd is checked and owned.
    let fd = unsafe { libc::open(dir.as_ptr(), libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC, 0o600) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}
