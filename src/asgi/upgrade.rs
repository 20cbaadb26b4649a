//! The nginx side of an ASGI WebSocket: the handshake, then the frames.
//!
//! The request is held open past the content handler. The app's first
//! word (through the exchange) decides: `websocket.accept` sends the 101
//! and takes the connection over, `websocket.close` denies with 403. Then
//! tungstenite does RFC 6455 (framing, masking, fragments, UTF-8, ping and
//! close replies, the size limit) over in-memory buffers, and the bytes go
//! through nginx's own `recv` and `send` (TLS included). Nothing here
//! blocks, and an idle connection costs no thread: the loop just holds an
//! awaiting task.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::rc::Rc;
use std::sync::Arc;

use nginx_sys::{ngx_http_request_t, ngx_int_t, ngx_msec_t, NGX_DONE, NGX_ERROR, NGX_HTTP_FORBIDDEN, NGX_HTTP_INTERNAL_SERVER_ERROR};
use tungstenite::protocol::frame::coding::{CloseCode, Data};
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tungstenite::{Message, WebSocket};

use super::credit::{Credit, INCOMING_LIMIT};
use super::deflate::{self, Agreed, Inflater};
use super::serving::{Inbound, WsEvent, WsStart};
use crate::core::capture::RequestHead;
use super::ws::Upgraded;
use crate::core::exchange::{cost, Event, Exchange};
use crate::core::inbox::Inbox;
use crate::core::metrics;
use crate::core::{catch_panic, runtime, threaded};
use crate::nginx::log::{Level, Log};
use crate::nginx::request::HttpRequest;
use crate::nginx::takeover::Takeover;

const READ_STEP: usize = 16 * 1024;

/// In-memory stream for tungstenite: what nginx read, what it should send.
#[derive(Default)]
struct Pipe {
    input: Vec<u8>,
    at: usize,
    output: Vec<u8>,
    /// How much of `output` the socket took: the rest waits for the next
    /// write event (cleared once all is sent, so a big message is not
    /// moved down after each partial write).
    sent: usize,
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = &self.input[self.at..];
        if left.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = left.len().min(buf.len());
        buf[..n].copy_from_slice(&left[..n]);
        self.at += n;
        if self.at == self.input.len() {
            self.input.clear();
            self.at = 0;
            // What a big message grew stays with tungstenite; an idle
            // connection keeps one read's room.
            if self.input.capacity() > 4 * READ_STEP {
                self.input = Vec::new();
            }
        }
        Ok(n)
    }
}

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the app to accept or deny.
    Handshake,
    Open,
    /// A close frame went out or came in; waiting for the other (or the
    /// timer), or for ours to be written.
    Closing,
    Over,
}

/// Where the app is: on this worker's loop ([`LocalLink`]) or in a pool
/// process (the pool's link, through [`start_linked`]).
pub trait AppLink {
    /// Something for the app's receive().
    fn event(&mut self, event: WsEvent);
    /// What the app sent is in the client's socket, `cost` of its window.
    fn written(&mut self, cost: usize);
    /// The connection is over: let the app go.
    fn release(&mut self);
}

/// The app on this worker's loop.
struct LocalLink {
    exchange: Arc<Exchange>,
    inbox: Arc<Inbox<Inbound>>,
    credit: Credit,
}

impl AppLink for LocalLink {
    fn event(&mut self, event: WsEvent) {
        self.inbox.push(Inbound::WsEvent(self.exchange.id(), event));
    }

    fn written(&mut self, cost: usize) {
        self.exchange.ack(cost);
        self.credit.after_ack(&self.exchange, &self.inbox);
    }

    fn release(&mut self) {
        self.exchange.abandon();
        threaded::detach(self.exchange.id());
    }
}

/// Not linked yet (a session being made).
struct NoLink;

impl AppLink for NoLink {
    fn event(&mut self, _event: WsEvent) {}
    fn written(&mut self, _cost: usize) {}
    fn release(&mut self) {}
}

/// Hands a linked app's events to its session (see [`start_linked`]).
#[derive(Clone)]
pub struct Deliver(std::rc::Weak<RefCell<Session>>);

impl Deliver {
    /// The app's events, as its exchange would deliver them; never from
    /// inside a call of the session into the link.
    pub fn deliver(&self, events: Vec<Event>) {
        if let Some(session) = self.0.upgrade() {
            on_events(&session, events);
        }
    }
}

pub struct Session {
    conn: Takeover,
    link: Box<dyn AppLink>,
    key: Vec<u8>,
    ws: Option<WebSocket<Pipe>>,
    phase: Phase,
    idle_ms: ngx_msec_t,
    /// How long a close we sent waits for the client's: nginx's
    /// `lingering_timeout`, the wait it gives a client to finish.
    close_wait_ms: ngx_msec_t,
    max_message: usize,
    /// Window charge written to the socket but not yet acked.
    written_cost: usize,
    unconsumed: usize,
    /// The app was told the connection is over.
    told: bool,
    /// The close handshake is over (both close frames), or we failed the
    /// WebSocket (RFC 6455, 7.1.7: a protocol error, invalid UTF-8, a
    /// message too big), which waits for no reply: once what tungstenite
    /// queued is written, the TCP connection goes ([`Takeover::linger`]).
    /// Nothing more the client sends is processed.
    hang_up: bool,
    /// permessage-deflate, as the client offered it: agreed once the 101
    /// says so.
    deflate: Option<(Agreed, String)>,
    /// The incoming side of permessage-deflate, and what it has not
    /// rewritten yet (a partial frame).
    inflater: Option<Inflater>,
    raw: Vec<u8>,
    /// Counted among the worker's open WebSockets from the 101 on.
    counted: Option<metrics::Held>,
}

type Shared = Rc<RefCell<Session>>;

thread_local! {
    /// Sessions by exchange id, for the connection's event handlers.
    static SESSIONS: RefCell<std::collections::HashMap<usize, Shared>> = RefCell::new(std::collections::HashMap::new());
}

/// What a handshake needs from the request: the key, the deflate offer,
/// the close wait; or the status to answer.
fn handshake(req: &HttpRequest, compression: bool) -> Result<(Vec<u8>, Option<(Agreed, String)>, ngx_msec_t), ngx_int_t> {
    let keys: Vec<&[u8]> = req.headers_in().filter(|(n, _)| n.eq_ignore_ascii_case(b"sec-websocket-key")).map(|(_, v)| v).collect();
    let version_ok = req.headers_in().any(|(n, v)| n.eq_ignore_ascii_case(b"sec-websocket-version") && v.trim_ascii() == b"13");
    let key = match keys[..] {
        [key] if version_ok && valid_key(key) => key.to_vec(),
        _ => {
            req.log().write(
                Level::Info,
                "rust_asgi: a WebSocket handshake without version 13 or without one Sec-WebSocket-Key of base64 of 16 bytes (RFC 6455, 4.2.1)",
            );
            return Err(nginx_sys::NGX_HTTP_BAD_REQUEST as ngx_int_t);
        }
    };
    let deflate = if compression {
        deflate::negotiate(req.headers_in().filter(|(n, _)| n.eq_ignore_ascii_case(b"sec-websocket-extensions")).map(|(_, v)| v))
    } else {
        None
    };
    Ok((key, deflate, req.core_lingering_timeout()))
}

/// A session for `req`, linked to its app by `link`, held open past the
/// content handler; NGX_DONE, or what to answer.
fn open(req: HttpRequest, idle_ms: ngx_msec_t, max_message: usize, compression: bool, link: impl FnOnce(Deliver) -> Result<Box<dyn AppLink>, ngx_int_t>) -> ngx_int_t {
    let (key, deflate, close_wait_ms) = match handshake(&req, compression) {
        Ok(parts) => parts,
        Err(rc) => return rc,
    };
    let conn = Takeover::of(req);
    let session = Rc::new(RefCell::new(Session {
        conn,
        link: Box::new(NoLink),
        key,
        ws: None,
        phase: Phase::Handshake,
        idle_ms,
        close_wait_ms,
        max_message,
        written_cost: 0,
        unconsumed: 0,
        told: false,
        hang_up: false,
        deflate,
        inflater: None,
        raw: Vec::new(),
        counted: None,
    }));
    match link(Deliver(Rc::downgrade(&session))) {
        Ok(link) => session.borrow_mut().link = link,
        Err(rc) => return rc,
    }
    if req.add_cleanup(on_cleanup, req.as_ptr().cast()).is_err() {
        session.borrow_mut().link.release();
        return NGX_ERROR as ngx_int_t;
    }
    SESSIONS.with_borrow_mut(|s| s.insert(req.as_ptr() as usize, Rc::clone(&session)));
    conn.hold();
    // Until the app answers, a client that leaves is noticed as usual.
    req.set_event_handlers(on_handshake_write);
    NGX_DONE as ngx_int_t
}

/// Starts a WebSocket handshake for `req` (the content handler saw an
/// upgrade request), for an app on this worker's loop. Returns what the
/// content handler returns.
pub fn start(req: HttpRequest, app: usize, inbox: Arc<Inbox<Inbound>>, idle_ms: ngx_msec_t, max_message: usize, compression: bool) -> ngx_int_t {
    let Some(bridge) = runtime::bridge() else { return NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t };
    let head = RequestHead::capture(&req);
    open(req, idle_ms, max_message, compression, move |deliver| {
        let exchange = Exchange::new(bridge);
        let id = exchange.id();
        let credit = Credit::default();
        threaded::attach_handler(&exchange, Rc::new(move |events| deliver.deliver(events)));
        let sink = crate::core::exchange::ResponseSink::new(Arc::clone(&exchange));
        inbox.push(Inbound::WsStart(Box::new(WsStart { id, app, head, sink, credit: credit.clone() })));
        Ok(Box::new(LocalLink { exchange, inbox, credit }))
    })
}

/// Starts a WebSocket handshake for `req` whose app runs elsewhere (in a
/// pool process): `link` gets the request's head and the way to hand the
/// app's events back, and returns the link, or the status to answer.
pub fn start_linked(
    req: HttpRequest,
    idle_ms: ngx_msec_t,
    max_message: usize,
    compression: bool,
    link: impl FnOnce(RequestHead, Deliver) -> Result<Box<dyn AppLink>, ngx_int_t>,
) -> ngx_int_t {
    let head = RequestHead::capture(&req);
    open(req, idle_ms, max_message, compression, move |deliver| link(head, deliver))
}

/// RFC 6455, 4.2.1: the key is base64 of 16 bytes (canonical, as every
/// encoder writes it).
fn valid_key(key: &[u8]) -> bool {
    data_encoding::BASE64.decode(key.trim_ascii()).is_ok_and(|k| k.len() == 16)
}

/// Nothing to write during the handshake.
unsafe extern "C" fn on_handshake_write(_r: *mut ngx_http_request_t) {}

fn session_of(r: *mut ngx_http_request_t) -> Option<Shared> {
    SESSIONS.with_borrow(|s| s.get(&(r as usize)).cloned())
}

/// The request is going away (normal end, client gone, error).
unsafe extern "C" fn on_cleanup(data: *mut std::ffi::c_void) {
    catch_panic(Log::cycle(), "rust_asgi websocket cleanup", || {
        if let Some(session) = SESSIONS.with_borrow_mut(|s| s.remove(&(data as usize))) {
            session.borrow_mut().release(1006);
        }
    });
}

/// The worker is shutting down gracefully: every open WebSocket gets a
/// close frame (1001, going away) instead of waiting for its idle timeout,
/// and the worker exits once the clients answered (or after the close
/// handshake's wait).
pub fn close_all_for_exit() {
    let sessions: Vec<Shared> = SESSIONS.with_borrow(|s| s.values().cloned().collect());
    for session in sessions {
        let end = {
            let mut s = session.borrow_mut();
            if s.phase != Phase::Open {
                continue;
            }
            s.close(1001, "server shutting down")
        };
        conclude(&session, end);
    }
}

unsafe extern "C" fn on_read(r: *mut ngx_http_request_t) {
    catch_panic(Log::cycle(), "rust_asgi websocket read", || {
        if let Some(session) = session_of(r) {
            let end = session.borrow_mut().on_read();
            conclude(&session, end);
        }
    });
}

unsafe extern "C" fn on_write(r: *mut ngx_http_request_t) {
    catch_panic(Log::cycle(), "rust_asgi websocket write", || {
        if let Some(session) = session_of(r) {
            let end = session.borrow_mut().write_out();
            conclude(&session, end);
        }
    });
}

fn on_events(session: &Shared, events: Vec<Event>) {
    let end = session.borrow_mut().apply(events);
    conclude(session, end);
}

/// Finalizes with `end` when a step said the connection is over.
fn conclude(session: &Shared, end: Option<ngx_int_t>) {
    let Some(rc) = end else { return };
    let req = {
        let mut s = session.borrow_mut();
        if s.phase == Phase::Over {
            return;
        }
        s.phase = Phase::Over;
        s.release(1006);
        s.conn.request()
    };
    let runner = req.posted_runner();
    req.finalize(rc);
    runner.run();
}

impl Session {
    fn log(&self) -> Log {
        self.conn.request().log()
    }

    /// Tells the app the connection is over, once: the first code (and
    /// reason) stands.
    fn tell_disconnect(&mut self, code: u16, reason: &str) {
        if !std::mem::replace(&mut self.told, true) {
            self.link.event(WsEvent::Disconnect(code, reason.to_owned()));
        }
    }

    /// Tells the app (once) and lets go of it.
    fn release(&mut self, code: u16) {
        self.tell_disconnect(code, "");
        self.link.release();
    }

    fn apply(&mut self, events: Vec<Event>) -> Option<ngx_int_t> {
        let log = self.log();
        for event in events {
            let end = match event {
                Event::Log(level, message) => {
                    log.write(level, &message);
                    None
                }
                Event::Fail { lines, .. } => {
                    lines.iter().for_each(|l| log.write(Level::Error, l));
                    self.fail()
                }
                Event::End => self.app_returned(),
                // Only this room's WebSocket code sends these.
                Event::Other { message, .. } => match message.downcast::<Upgraded>() {
                    Ok(message) => self.upgraded(*message),
                    Err(_) => None,
                },
                _ => None,
            };
            if end.is_some() {
                return end;
            }
        }
        None
    }

    fn fail(&mut self) -> Option<ngx_int_t> {
        match self.phase {
            Phase::Handshake => Some(NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t),
            Phase::Open => self.close(1011, "internal error"),
            _ => None,
        }
    }

    fn app_returned(&mut self) -> Option<ngx_int_t> {
        match self.phase {
            Phase::Handshake => {
                self.log().write(Level::Error, "rust_asgi: the app returned without accepting or closing the WebSocket");
                Some(NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t)
            }
            Phase::Open => self.close(1000, ""),
            _ => None,
        }
    }

    fn upgraded(&mut self, message: Upgraded) -> Option<ngx_int_t> {
        match (self.phase, message) {
            (Phase::Handshake, Upgraded::Accept { subprotocol, headers }) => self.accept(subprotocol, headers),
            // A close before the accept denies the handshake.
            (Phase::Handshake, Upgraded::Close { .. }) => {
                self.told = true;
                Some(NGX_HTTP_FORBIDDEN as ngx_int_t)
            }
            (Phase::Open, Upgraded::Text(text)) => self.send(Data::Text, text.as_bytes()),
            (Phase::Open, Upgraded::Binary(bytes)) => self.send(Data::Binary, &bytes),
            (Phase::Open, Upgraded::Close { code, reason }) => self.close(code, &reason),
            (_, Upgraded::Consumed(n)) => {
                let was_paused = self.unconsumed >= INCOMING_LIMIT;
                self.unconsumed = self.unconsumed.saturating_sub(n);
                if was_paused && self.unconsumed < INCOMING_LIMIT && self.phase == Phase::Open {
                    return self.on_read();
                }
                None
            }
            // Sends after a close are dropped (the app learns of the
            // disconnect from receive()).
            _ => None,
        }
    }

    fn accept(&mut self, subprotocol: Option<String>, headers: Vec<(Vec<u8>, Vec<u8>)>) -> Option<ngx_int_t> {
        let req = self.conn.request();
        let accept_key = tungstenite::handshake::derive_accept_key(&self.key);
        // An app that answers the extensions itself keeps them.
        if headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(b"sec-websocket-extensions")) {
            self.deflate = None;
        }
        let extensions = self.deflate.as_ref().map(|(_, answer)| answer.clone());
        let set = || -> Result<(), crate::nginx::NgxError> {
            req.set_status(101, Some(b"101 Switching Protocols"))?;
            req.add_response_header(b"Upgrade", b"websocket")?;
            req.add_response_header(b"Sec-WebSocket-Accept", accept_key.as_bytes())?;
            if let Some(protocol) = &subprotocol {
                req.add_response_header(b"Sec-WebSocket-Protocol", protocol.as_bytes())?;
            }
            if let Some(answer) = &extensions {
                req.add_response_header(b"Sec-WebSocket-Extensions", answer.as_bytes())?;
            }
            for (name, value) in &headers {
                req.add_response_header(name, value)?;
            }
            req.clear_content_length();
            Ok(())
        };
        if set().is_err() {
            return Some(NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t);
        }
        let rc = req.send_header();
        if rc == NGX_ERROR as ngx_int_t || rc > nginx_sys::NGX_OK as ngx_int_t {
            return Some(NGX_ERROR as ngx_int_t);
        }
        if self.conn.begin(on_read, on_write).is_err() {
            return Some(NGX_ERROR as ngx_int_t);
        }
        // Small buffers: an idle connection should cost little (they grow
        // for big messages), and our stream is memory, so tungstenite
        // need not batch writes.
        let config = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0)
            .max_message_size(Some(self.max_message))
            .max_frame_size(Some(self.max_message));
        let mut pipelined = self.conn.take_pipelined();
        if let Some((agreed, _)) = &self.deflate {
            // What came with the handshake goes through the inflater too.
            self.inflater = Some(Inflater::new(*agreed, self.max_message));
            self.raw = std::mem::take(&mut pipelined);
        }
        self.ws = Some(WebSocket::from_partially_read(Pipe::default(), pipelined, Role::Server, Some(config)));
        self.phase = Phase::Open;
        self.counted = metrics::Held::websocket();
        self.conn.restart_idle_timer(self.idle_ms);
        self.on_read()
    }

    /// A data message as one frame (compressed when agreed), after
    /// anything tungstenite queued (a pong). Written here rather than by
    /// tungstenite, which would copy it once more through its own buffer;
    /// only the open phase sends, so its state needs no update.
    fn send(&mut self, opcode: Data, payload: &[u8]) -> Option<ngx_int_t> {
        let agreed = self.inflater.as_ref().map(Inflater::agreed);
        let ws = self.ws.as_mut()?;
        let _ = ws.flush();
        let output = &mut ws.get_mut().output;
        match agreed {
            Some(agreed) => deflate::compress_frame(agreed, opcode, payload, output),
            None => deflate::plain_frame(opcode, payload, output),
        }
        self.written_cost += cost(payload.len());
        self.conn.restart_idle_timer(self.idle_ms);
        self.write_out()
    }

    /// Sends a close frame. Unless it fails the WebSocket (`hang_up`), the
    /// client's reply is awaited for `close_wait_ms`.
    fn close(&mut self, code: u16, reason: &str) -> Option<ngx_int_t> {
        let ws = self.ws.as_mut()?;
        let _ = ws.close(Some(CloseFrame { code: CloseCode::from(code), reason: reason.to_owned().into() }));
        self.phase = Phase::Closing;
        self.conn.restart_idle_timer(self.close_wait_ms);
        self.write_out()
    }

    /// Sends what tungstenite queued; acks the app's window once it is all
    /// in the socket.
    fn write_out(&mut self) -> Option<ngx_int_t> {
        // The 101 head goes through nginx's filters; frames must not pass
        // it if the socket did not take it all at once.
        match self.conn.flush_head() {
            Ok(true) => {}
            Ok(false) => return self.conn.want_events(true).err().map(|_| NGX_ERROR as ngx_int_t),
            Err(_) => return Some(NGX_ERROR as ngx_int_t),
        }
        let ws = self.ws.as_mut()?;
        let _ = ws.flush();
        let pipe = ws.get_mut();
        while pipe.sent < pipe.output.len() {
            match self.conn.send(&pipe.output[pipe.sent..]) {
                Ok(n) => pipe.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return Some(NGX_ERROR as ngx_int_t),
            }
        }
        let drained = pipe.sent == pipe.output.len();
        if drained {
            pipe.output.clear();
            pipe.sent = 0;
        }
        if drained && self.written_cost > 0 {
            let cost = std::mem::take(&mut self.written_cost);
            self.link.written(cost);
        }
        if drained && self.hang_up {
            return Some(self.conn.linger());
        }
        if self.conn.want_events(!drained).is_err() {
            return Some(NGX_ERROR as ngx_int_t);
        }
        None
    }

    /// Reads frames while the app keeps up; control frames are answered.
    fn on_read(&mut self) -> Option<ngx_int_t> {
        if self.conn.timed_out() {
            if self.phase == Phase::Open {
                self.log().write(Level::Info, "rust_asgi: WebSocket idle timeout (rust_asgi_read_timeout); closing");
                return self.close(1001, "idle timeout");
            }
            return Some(NGX_ERROR as ngx_int_t);
        }
        let mut eof = false;
        // Once hanging up, only our last frames still matter (nginx's
        // lingering close reads and drops the rest).
        while !self.hang_up && self.unconsumed < INCOMING_LIMIT && self.conn.readable() {
            let Some(ws) = self.ws.as_mut() else { break };
            // Straight into tungstenite's input, or the inflater's.
            let into = if self.inflater.is_some() { &mut self.raw } else { &mut ws.get_mut().input };
            match self.conn.recv_into(into, READ_STEP) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(_) => {
                    if let Some(end) = self.take_in() {
                        return Some(end);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    eof = true;
                    break;
                }
            }
        }
        if let Some(end) = self.take_in() {
            return Some(end);
        }
        if eof {
            self.release(1006);
            return Some(NGX_ERROR as ngx_int_t);
        }
        self.write_out()
    }

    /// Decodes the messages that what was read completes (through the
    /// inflater first, when compression was agreed).
    fn take_in(&mut self) -> Option<ngx_int_t> {
        let ws = self.ws.as_mut()?;
        let Some(inflater) = self.inflater.as_mut() else { return self.frames() };
        let failed = inflater.rewrite(&mut self.raw, &mut ws.get_mut().input).err();
        // The messages before a bad one still reach the app.
        if let Some(end) = self.frames() {
            return Some(end);
        }
        let failure = failed?;
        if self.hang_up {
            return None;
        }
        let (code, why) = failure.close();
        self.log().write(Level::Info, &format!("rust_asgi: failing a WebSocket: permessage-deflate: {why}"));
        self.tell_disconnect(code, why);
        self.hang_up = true;
        self.raw = Vec::new();
        self.close(code, why)
    }

    /// Decodes what was read into messages for the app.
    fn frames(&mut self) -> Option<ngx_int_t> {
        loop {
            if self.hang_up {
                return None;
            }
            let ws = self.ws.as_mut()?;
            match ws.read() {
                Ok(Message::Text(text)) => {
                    // Counted as protocol.py counts it: len() of the str.
                    self.unconsumed += text.as_str().chars().count();
                    self.conn.restart_idle_timer(self.idle_ms);
                    self.link.event(WsEvent::Text(text));
                }
                Ok(Message::Binary(bytes)) => {
                    self.unconsumed += bytes.len();
                    self.conn.restart_idle_timer(self.idle_ms);
                    self.link.event(WsEvent::Bytes(bytes));
                }
                Ok(Message::Close(frame)) => {
                    // tungstenite queued the reply; the app hears the code.
                    match &frame {
                        Some(f) => self.tell_disconnect(u16::from(f.code), &f.reason),
                        None => self.tell_disconnect(1005, ""),
                    }
                    self.phase = Phase::Closing;
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    // Both close frames: ours (a reply, if the client
                    // closed first) goes out, then the TCP connection,
                    // server first (RFC 6455, 7.1.1).
                    self.hang_up = true;
                    return self.write_out();
                }
                Err(e) => {
                    let (code, why) = match e {
                        tungstenite::Error::Capacity(_) => (1009, "message too big"),
                        tungstenite::Error::Utf8(_) => (1007, "invalid UTF-8"),
                        _ => (1002, "protocol error"),
                    };
                    // Fail the WebSocket Connection (RFC 6455, 7.1.7): a
                    // close frame, and no waiting for the client's.
                    self.log().write(Level::Info, &format!("rust_asgi: failing a WebSocket: {e}"));
                    self.tell_disconnect(code, why);
                    self.hang_up = true;
                    return self.close(code, why);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::valid_key;

    #[test]
    fn a_key_is_base64_of_16_bytes() {
        assert!(valid_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "RFC 6455's example");
        assert!(valid_key(b" dGhlIHNhbXBsZSBub25jZQ== "));
        for bad in [&b""[..], b"hello", b"dGhlIHNhbXBsZSBub25jZQ", b"dGhlIHNhbXBsZSBub25j", b"dGhlIHNhbXBsZSBub25jZSE=", b"dGhlIHNhbXBsZSBub25jZR==", b"dGhlIHNhbXBsZSBub25jZQ==dGhl"] {
            assert!(!valid_key(bad), "{}", String::from_utf8_lossy(bad));
        }
    }
}
