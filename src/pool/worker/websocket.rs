//! A WebSocket to an ASGI app in a pool: nginx's worker does the protocol
//! with the client ([`crate::asgi::upgrade`], as in embedded mode) and
//! links the session to the app in a pool process over a FastCGI
//! connection that then carries the messages ([`crate::pool::ws_wire`]).
//!
//! Runs in nginx's workers.
//!
//! The link sends the handshake as a request (with `RUST_WEBSOCKET`), then
//! the client's messages; it reads the app's messages, log lines and the
//! end, and hands them to the session as the app's exchange would. It
//! reads only while the client has taken what the app sent (at most
//! [`HELD_MAX`] of it waiting in nginx): the pool process acknowledges the
//! app's window when its bytes are in the socket, so a slow client holds
//! the app's send() back. The client's side is bounded by the session (the
//! app's "consumed" messages let it read on), as in embedded mode.

use std::cell::RefCell;
use std::ffi::c_void;
use std::rc::Rc;

use nginx_sys::{ngx_event_t, ngx_int_t};

use super::client::{connect_ready, log_lines};
use crate::asgi::serving::WsEvent;
use crate::asgi::upgrade::{self, AppLink, Deliver};
use crate::asgi::ws::Upgraded;
use crate::core::catch_panic;
use crate::core::exchange::{cost, Event};
use crate::nginx::event::Conn;
use crate::nginx::log::{Level, Log};
use crate::nginx::request::HttpRequest;
use crate::pool::conf::PoolTarget;
use crate::pool::fastcgi::{self as fcgi, Decoder};
use crate::pool::params::{write_params, Extras};
use crate::pool::slots;
use crate::pool::ws_wire::{self, Messages, ToApp};

/// The app's messages handed to the session and not yet written to the
/// client, above which the link stops reading the pool process.
const HELD_MAX: usize = 256 * 1024;
const REQUEST_ID: u16 = 1;

/// The content handler's answer to a WebSocket handshake for an ASGI app in
/// a pool.
pub fn start(req: HttpRequest, target: &'static PoolTarget) -> ngx_int_t {
    catch_panic(req.log(), "rust_asgi websocket (pool)", || {
        let idle = <super::client::PoolPass as crate::core::engine::Adapter>::read_timeout(req);
        let compression = crate::asgi::conf::LOC.of(req).is_none_or(|c| c.websocket_compression != 0);
        upgrade::start_linked(req, idle, crate::asgi::MAX_MESSAGE, compression, |head, deliver| {
            let refuse = |status: u32, line: String| {
                req.log().write(Level::Error, &line);
                status as ngx_int_t
            };
            let Some(table) = slots::table() else {
                return Err(refuse(nginx_sys::NGX_HTTP_SERVICE_UNAVAILABLE, format!("rust_pool \"{}\" is not running", target.name)));
            };
            let place = table.pool_index(target.name.as_bytes()).and_then(|pool| connect_ready(table, pool, false, req.log()));
            let Some((conn, _)) = place else {
                return Err(refuse(
                    nginx_sys::NGX_HTTP_SERVICE_UNAVAILABLE,
                    format!("rust_pool \"{}\": no process is ready for a WebSocket", target.name),
                ));
            };
            let extras = Extras {
                app: target.key.clone(),
                queued_at_us: crate::os::monotonic_us(),
                errors_level: "error".into(),
                websocket: true,
                ..Default::default()
            };
            let mut params = Vec::with_capacity(1024);
            write_params(&head, &extras, |name, value| fcgi::encode_pair(&mut params, name, value));
            let mut out = Vec::new();
            fcgi::push_begin_request(&mut out, REQUEST_ID, fcgi::RESPONDER, 0);
            fcgi::push_params(&mut out, REQUEST_ID, &params);
            let inner = Rc::new(RefCell::new(Inner {
                conn: Some(conn),
                out,
                out_at: 0,
                decoder: Decoder::new(),
                messages: Messages::default(),
                deliver,
                held: 0,
                paused: false,
                ended: false,
                pool: target.name.clone(),
            }));
            let data = Rc::as_ptr(&inner) as *mut c_void;
            if let Some(conn) = inner.borrow().conn.as_ref() {
                conn.rebind(data, Some(on_read), Some(on_write));
                conn.set_log(Log::cycle());
                let _ = conn.want_read();
            }
            inner.borrow_mut().flush();
            Ok(Box::new(PoolLink(inner)))
        })
    })
    .unwrap_or(nginx_sys::NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t)
}

struct Inner {
    conn: Option<Conn>,
    out: Vec<u8>,
    out_at: usize,
    decoder: Decoder,
    messages: Messages,
    deliver: Deliver,
    /// Cost of the app's messages handed over and not yet written.
    held: usize,
    /// Reading stopped at HELD_MAX.
    paused: bool,
    /// END_REQUEST came (or the connection ended).
    ended: bool,
    pool: String,
}

/// The session's link: owned by the session; the connection's handlers
/// reach the same `Inner` through its address (kept alive by the link
/// until `release` closes the connection).
struct PoolLink(Rc<RefCell<Inner>>);

impl AppLink for PoolLink {
    fn event(&mut self, event: WsEvent) {
        let message = match event {
            WsEvent::Text(text) => ToApp::Text(text.as_str().to_owned()),
            WsEvent::Bytes(bytes) => ToApp::Bytes(bytes.to_vec()),
            WsEvent::Disconnect(code, reason) => ToApp::Disconnect(code, reason),
        };
        let mut inner = self.0.borrow_mut();
        ws_wire::push_to_app(&mut inner.out, REQUEST_ID, &message);
        inner.flush();
    }

    fn written(&mut self, cost: usize) {
        let mut inner = self.0.borrow_mut();
        inner.held = inner.held.saturating_sub(cost);
        if inner.paused && inner.held < HELD_MAX {
            inner.paused = false;
            if let Some(conn) = inner.conn.as_ref() {
                conn.post_read();
            }
        }
    }

    fn release(&mut self) {
        // Closing tells the pool process the client is gone (the app's
        // receive() hears a disconnect, if the session did not say so).
        if let Some(conn) = self.0.borrow_mut().conn.take() {
            conn.close();
        }
    }
}

impl Drop for PoolLink {
    fn drop(&mut self) {
        self.release();
    }
}

impl Inner {
    /// Sends what the socket takes.
    fn flush(&mut self) {
        let Some(fd) = self.conn.as_ref().map(Conn::fd) else { return };
        while self.out_at < self.out.len() {
            match crate::os::send(fd, &self.out[self.out_at..]) {
                Ok(n) => self.out_at += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if let Some(conn) = self.conn.as_ref() {
                        let _ = conn.want_write();
                    }
                    return;
                }
                // Gone: reading says how.
                Err(_) => break,
            }
        }
        self.out.clear();
        self.out_at = 0;
    }

    /// Reads what the pool process sent, into the session's events.
    fn read(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        let Some(fd) = self.conn.as_ref().map(Conn::fd) else { return events };
        while !self.ended && self.held < HELD_MAX {
            match self.decoder.read_from(fd) {
                Ok(1..) => self.records(&mut events),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if let Some(conn) = self.conn.as_ref() {
                        let _ = conn.want_read();
                    }
                    return events;
                }
                _ => {
                    self.ended = true;
                    events.push(Event::Fail { status: 502, lines: vec![format!("rust_pool \"{}\": the pool process closed the WebSocket's connection", self.pool)] });
                }
            }
        }
        self.paused = !self.ended;
        events
    }

    fn records(&mut self, events: &mut Vec<Event>) {
        loop {
            let record = match self.decoder.next_record() {
                Ok(Some(record)) => record,
                Ok(None) => return,
                Err(e) => {
                    self.ended = true;
                    events.push(Event::Fail { status: 502, lines: vec![format!("rust_pool \"{}\": the pool process broke the protocol: {e}", self.pool)] });
                    return;
                }
            };
            match record.kind {
                fcgi::RUST_WS => {
                    self.messages.feed(&record.content);
                    while let Some(message) = self.messages.next_from_app() {
                        match message {
                            Ok(message) => {
                                let charge = match &message {
                                    Upgraded::Text(t) => cost(t.len()),
                                    Upgraded::Binary(b) => cost(b.len()),
                                    _ => 0,
                                };
                                self.held += charge;
                                events.push(Event::Other { cost: charge, message: Box::new(message) });
                            }
                            Err(e) => {
                                self.ended = true;
                                events.push(Event::Fail { status: 502, lines: vec![format!("rust_pool \"{}\": a WebSocket message: {e}", self.pool)] });
                                return;
                            }
                        }
                    }
                }
                fcgi::STDERR => log_lines(&record.content, events),
                fcgi::END_REQUEST => {
                    self.ended = true;
                    events.push(match fcgi::parse_end_request(&record.content).map_or(502, |e| e.app_status) {
                        0 => Event::End,
                        status => Event::Fail { status: status.min(599) as u16, lines: vec![] },
                    });
                    return;
                }
                _ => {}
            }
        }
    }
}

/// Runs `f` on the link's state, then delivers what it produced (outside
/// the borrow: the session may call back into the link).
///
/// # Safety
/// `data` is the address of a live `Inner` (its connection, which carries
/// it, is closed before the link goes).
unsafe fn with_inner(data: *mut c_void, what: &str, f: impl FnOnce(&mut Inner) -> Vec<Event>) {
    catch_panic(Log::cycle(), what, || {
        // SAFETY: see above; the RefCell is not borrowed here (handlers
        // run from nginx's event loop, never inside the session's calls).
        let cell = unsafe { &*(data as *const RefCell<Inner>) };
        let events = f(&mut cell.borrow_mut());
        if !events.is_empty() {
            // The deliverer is a weak handle: clone it out of the borrow.
            let deliver = cell.borrow().deliver.clone();
            deliver.deliver(events);
        }
    });
}

unsafe extern "C" fn on_read(ev: *mut ngx_event_t) {
    // SAFETY: the connection's data is its Inner.
    unsafe { with_inner(Conn::data_of(ev), "rust_pool websocket read", Inner::read) }
}

unsafe extern "C" fn on_write(ev: *mut ngx_event_t) {
    // SAFETY: as above.
    unsafe {
        with_inner(Conn::data_of(ev), "rust_pool websocket write", |inner| {
            inner.flush();
            Vec::new()
        })
    }
}
