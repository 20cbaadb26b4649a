//! What every producer on nginx's own thread shares, as nginx's upstream
//! module is shared by its protocol modules: a producer that reads an fd in
//! the event loop (a CGI program's stdout, a pool process's FastCGI
//! socket) turns what it reads into the engine's events the same way.
//!
//! - [`Window`]: reading stops while a window's worth of output is not yet
//!   written to the client, and resumes once the client took enough.
//! - [`HeadReader`]: a CGI-style head (RFC 3875, 6; [`super::cgi_head`])
//!   then the body, as [`Event::Head`] and [`Event::Body`].
//! - [`Producer`], with [`on_read`] and [`on_write`] as its connection's
//!   handlers; [`deliver_from`]: the shape they share (a producer's timers
//!   use it too).
//!
//! The protocols stay with their rooms: CGI reads a pipe as it is (and
//! knows nph- programs), the pool decodes FastCGI records.

use std::ffi::c_void;

use bytes::Bytes;

use super::cgi_head::{self, CgiHead};
use super::exchange::{cost, Event, WINDOW};
use super::head::ResponseHead;
use super::{catch_panic, engine};
use crate::nginx::event::Conn;
use crate::nginx::log::Log;
use crate::nginx::request::HttpRequest;

/// The output delivered and not yet written to the client, in window
/// charge (see [`cost`]).
#[derive(Default)]
pub struct Window {
    in_flight: usize,
    paused: bool,
}

impl Window {
    /// Counts `bytes` delivered.
    pub fn charge(&mut self, bytes: usize) {
        self.in_flight += cost(bytes);
    }

    /// Whether reading must stop now: the client is behind. The producer
    /// leaves the rest in its fd (the other side blocks writing) until
    /// [`Window::ack`] says to go on.
    pub fn full(&mut self) -> bool {
        if self.in_flight >= WINDOW {
            self.paused = true;
        }
        self.paused
    }

    /// The client took `bytes` of charge: true when reading stopped for the
    /// window and may go on (the producer posts a read: not from inside
    /// the engine's call).
    pub fn ack(&mut self, bytes: usize) -> bool {
        self.in_flight = self.in_flight.saturating_sub(bytes);
        if self.paused && self.in_flight < WINDOW {
            self.paused = false;
            return true;
        }
        false
    }
}

/// Posts a read on `conn` when [`Window::ack`] says so.
pub fn resume(window: &mut Window, bytes: usize, conn: Option<&Conn>) {
    if window.ack(bytes) {
        if let Some(conn) = conn {
            conn.post_read();
        }
    }
}

/// A response as a CGI-style head, then its body.
pub enum HeadReader {
    Head(Vec<u8>),
    Body,
    Done,
}

/// A complete head, as the producer may still amend it (an nph- program's
/// status line), and a local redirect, which only CGI allows.
pub enum Headed {
    Response(ResponseHead),
    LocalRedirect { uri: Vec<u8>, args: Vec<u8> },
}

impl HeadReader {
    pub fn new() -> HeadReader {
        HeadReader::Head(Vec::new())
    }

    pub fn done(&self) -> bool {
        matches!(self, HeadReader::Done)
    }

    pub fn in_head(&self) -> bool {
        matches!(self, HeadReader::Head(_))
    }

    /// Takes what the producer wrote: head bytes until the head is whole
    /// (then `on_head` turns it into events, or refuses it), body after.
    /// A head that does not parse, or that `on_head` refuses, ends the
    /// reader with the problem, for the producer's log line. Only CGI has
    /// `local_redirects` (see [`cgi_head::parse_head`]).
    pub fn take(
        &mut self,
        bytes: Bytes,
        limit: usize,
        local_redirects: bool,
        window: &mut Window,
        events: &mut Vec<Event>,
        on_head: impl FnOnce(Headed, &mut Vec<Event>) -> Result<(), String>,
    ) -> Result<(), String> {
        let buf = match self {
            HeadReader::Body => {
                window.charge(bytes.len());
                events.push(Event::Body(bytes));
                return Ok(());
            }
            HeadReader::Done => return Ok(()),
            HeadReader::Head(buf) => buf,
        };
        buf.extend_from_slice(&bytes);
        let (head, used) = match cgi_head::parse_head(buf, limit, local_redirects) {
            Ok(None) => return Ok(()),
            Ok(Some(parsed)) => parsed,
            Err(problem) => {
                *self = HeadReader::Done;
                return Err(problem.to_string());
            }
        };
        let rest = buf.split_off(used);
        let headed = match head {
            CgiHead::Response(head) => Headed::Response(head),
            CgiHead::LocalRedirect { uri, args } => Headed::LocalRedirect { uri, args },
        };
        let body = matches!(headed, Headed::Response(_));
        *self = HeadReader::Done;
        on_head(headed, events)?;
        if body {
            *self = HeadReader::Body;
            if !rest.is_empty() {
                window.charge(rest.len());
                events.push(Event::Body(rest.into()));
            }
        }
        Ok(())
    }
}

impl Default for HeadReader {
    fn default() -> Self {
        Self::new()
    }
}

/// A producer whose fd is an nginx connection, with this module's two
/// handlers for it ([`on_read`], [`on_write`]).
pub trait Producer {
    /// For a panic's log line: "rust_cgi output", ...
    const READING: &'static str;
    const WRITING: &'static str;
    fn request(&self) -> HttpRequest;
    /// The fd has something (or EOF): what it makes for the engine.
    fn read(&mut self) -> Vec<Event>;
    /// The fd can take more of the request.
    fn write(&mut self);
}

/// A producer's read handler.
///
/// # Safety
/// Only nginx calls it, for a connection whose data is a live `T`.
pub unsafe extern "C" fn on_read<T: Producer>(ev: *mut nginx_sys::ngx_event_t) {
    // SAFETY: see above.
    unsafe { deliver_from::<T>(Conn::data_of(ev), T::READING, T::request, |p| Some(p.read())) }
}

/// A producer's write handler.
///
/// # Safety
/// As for [`on_read`].
pub unsafe extern "C" fn on_write<T: Producer>(ev: *mut nginx_sys::ngx_event_t) {
    // SAFETY: see above.
    unsafe {
        deliver_from::<T>(Conn::data_of(ev), T::WRITING, T::request, |p| {
            p.write();
            None
        })
    }
}

/// The shape of a producer's event handler: find the producer that `data`
/// points at, let it run, and deliver what it produced to its request.
///
/// # Safety
/// `data` must point at a live `T` (the producer closes or rebinds its
/// connections and disarms its timers before it goes).
pub unsafe fn deliver_from<T>(data: *mut c_void, what: &str, request: impl FnOnce(&T) -> HttpRequest, run: impl FnOnce(&mut T) -> Option<Vec<Event>>) {
    catch_panic(Log::cycle(), what, || {
        // SAFETY: see above.
        let producer = unsafe { &mut *(data as *mut T) };
        let req = request(producer);
        // `producer` may be freed inside deliver (the request can end); it
        // is not touched again.
        if let Some(events) = run(producer).filter(|e| !e.is_empty()) {
            engine::deliver(req, events);
        }
    });
}
