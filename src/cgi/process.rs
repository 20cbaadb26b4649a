//! One CGI request's program, seen from the nginx thread.
//!
//! The program's stdin and stdout are two pipes, each an nginx connection
//! here while it is in use. The request body is written into stdin as the
//! pipe takes it, and our end is closed after it (at once for an empty
//! body), so the program reads EOF. Its output is read from stdout without
//! blocking until EOF, which comes once no process holds the pipe's other
//! end: a program that closes its stdout (`exec >&-`) has ended its
//! response then, whatever it goes on doing, while with one socket for both
//! its still open stdin would have held the output open too. The head is
//! parsed (or, for nph- programs, passed through raw) and the body is
//! delivered to the engine as it comes.
//! Reading pauses while a window's worth of output is still unwritten to
//! the client, so a slow client slows the program down (its writes block)
//! instead of filling memory.

use std::ffi::c_void;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nginx_sys::ngx_event_t;

use super::children::{self, ChildId};
use crate::core::cgi_head::{self, CgiHead};
use crate::core::capture::BodyReader;
use crate::core::catch_panic;
use crate::core::engine::{self, Ending, Source};
use crate::core::exchange::{cost, Event, WINDOW};
use crate::nginx::event::Conn;
use crate::nginx::log::{Level, Log};
use crate::nginx::request::HttpRequest;

/// How much output is read at a time.
const READ_SIZE: usize = 64 * 1024;

enum Output {
    /// Reading the CGI head.
    Head(Vec<u8>),
    /// An nph- program on HTTP/1: its output is passed on raw, status line
    /// and headers included; nothing has arrived yet.
    Raw,
    /// An nph- program on HTTP/2 or HTTP/3: its status line is read and the
    /// rest of its head parsed, since raw HTTP/1 bytes cannot be passed on.
    NphHead(Vec<u8>),
    Body,
    Done,
}

/// Our ends of the program's stdin and stdout pipes.
pub struct Stdio {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
}

pub struct CgiProcess {
    req: HttpRequest,
    child: ChildId,
    pid: libc::pid_t,
    script: String,
    /// The program's output, until it ends.
    stdout: Option<Conn>,
    /// Its input, while the pipe cannot take the rest of the body yet.
    stdin: Option<Conn>,
    body: BodyReader,
    output: Output,
    /// `rust_cgi_header_limit`.
    header_limit: usize,
    /// Window charge (see `cost`) delivered and not yet written to the
    /// client.
    in_flight: usize,
    read_buf: Box<[u8]>,
    paused: bool,
}

impl CgiProcess {
    /// Takes over `stdio`, starts writing `body` into the program's stdin
    /// and reading its stdout.
    pub fn start(
        req: HttpRequest,
        (child, pid): (ChildId, libc::pid_t),
        script: String,
        stdio: Stdio,
        body: BodyReader,
        nph: bool,
        header_limit: usize,
    ) -> Result<Box<CgiProcess>, String> {
        let output = match (nph, req.is_multiplexed()) {
            (false, _) => Output::Head(Vec::new()),
            (true, true) => Output::NphHead(Vec::new()),
            (true, false) => Output::Raw,
        };
        let mut process =
            Box::new(CgiProcess {
                req,
                child,
                pid,
                script,
                stdout: None,
                stdin: None,
                body,
                output,
                header_limit,
                in_flight: 0,
                read_buf: vec![0; READ_SIZE].into_boxed_slice(),
                paused: false,
            });
        // The Box does not move, so its address can be the events' data.
        let data = &mut *process as *mut CgiProcess as *mut c_void;
        let started = Conn::register(stdio.stdout, req.log(), data, Some(on_output), None).and_then(|conn| {
            process.stdout = Some(conn);
            process.start_input(stdio.stdin, data)
        });
        if let Err(e) = started {
            // Out of the event loop before `process`, their events' data,
            // goes.
            process.close_pipes();
            return Err(e);
        }
        Ok(process)
    }

    /// Writes what the pipe takes of the body now (all of a small one, so
    /// it needs no connection), and the rest as it takes more.
    fn start_input(&mut self, stdin: OwnedFd, data: *mut c_void) -> Result<(), String> {
        if self.send_input(stdin.as_raw_fd()) {
            // Dropping our end is the program's EOF.
            return Ok(());
        }
        let conn = Conn::register(stdin, self.req.log(), data, None, Some(on_input))?;
        conn.want_write().map_err(|e| e.to_string())?;
        self.stdin = Some(conn);
        Ok(())
    }

    /// Reads what the program wrote, up to the window; returns the events
    /// for the engine.
    fn read_output(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        let Some(fd) = self.stdout.as_ref().map(Conn::fd) else { return events };
        loop {
            if matches!(self.output, Output::Done) {
                break;
            }
            if self.in_flight >= WINDOW {
                // The client is behind: leave the rest in the pipe (the
                // program blocks writing) until `ack` makes room.
                self.paused = true;
                break;
            }
            let err = match crate::os::read(fd, &mut self.read_buf) {
                Ok(0) => {
                    self.end(&mut events);
                    break;
                }
                Ok(n) => {
                    // A copy of exactly what arrived: the window counts
                    // bytes, so memory must be bytes too (not a 64 KiB
                    // buffer per short line of a chatty program).
                    let bytes = self.read_buf[..n].to_vec();
                    self.take(bytes, &mut events);
                    continue;
                }
                Err(e) => e,
            };
            match err.kind() {
                io::ErrorKind::WouldBlock => {
                    if let Some(conn) = self.stdout.as_ref() {
                        let _ = conn.want_read();
                    }
                }
                // EIO and the like: treat as the end of output.
                _ => self.end(&mut events),
            }
            break;
        }
        events
    }

    fn take(&mut self, bytes: Vec<u8>, events: &mut Vec<Event>) {
        match &mut self.output {
            Output::Raw => {
                events.push(Event::RawHead);
                self.output = Output::Body;
                self.take(bytes, events);
            }
            Output::Body => {
                self.in_flight += cost(bytes.len());
                events.push(Event::Body(bytes.into()));
            }
            Output::Head(buf) | Output::NphHead(buf) => {
                buf.extend_from_slice(&bytes);
                self.parse_head(events);
            }
            Output::Done => {}
        }
    }

    fn parse_head(&mut self, events: &mut Vec<Event>) {
        let (mut buf, nph) = match std::mem::replace(&mut self.output, Output::Done) {
            Output::Head(buf) => (buf, false),
            Output::NphHead(buf) => (buf, true),
            other => {
                self.output = other;
                return;
            }
        };
        let mut status_line = None;
        if nph {
            match cgi_head::nph_status_line(&buf) {
                Some((status, used)) => {
                    status_line = Some(status);
                    buf.drain(..used);
                }
                None if buf.len() > self.header_limit || buf.contains(&b'\n') => {
                    return self.broken(events, "did not start with an HTTP status line (nph- program)".into());
                }
                None => {
                    self.output = Output::NphHead(buf);
                    return;
                }
            }
        }
        match cgi_head::parse(&buf, self.header_limit) {
            Ok(None) => self.output = if nph { Output::NphHead(buf) } else { Output::Head(buf) },
            Err(problem) => self.broken(events, problem.to_string()),
            Ok(Some((CgiHead::LocalRedirect { uri, args }, _))) => events.push(Event::Redirect { uri, args }),
            Ok(Some((CgiHead::Response(mut head), used))) => {
                if let Some(status) = status_line {
                    if let Err(e) = head.set_status(&status) {
                        return self.broken(events, format!("sent an {e}"));
                    }
                }
                events.push(Event::Head(head));
                let rest = buf.split_off(used);
                self.output = Output::Body;
                if !rest.is_empty() {
                    self.in_flight += cost(rest.len());
                    events.push(Event::Body(rest.into()));
                }
            }
        }
    }

    /// The program broke the protocol: 502, and it is stopped.
    fn broken(&mut self, events: &mut Vec<Event>, problem: String) {
        self.output = Output::Done;
        events.push(Event::Fail { status: 502, lines: vec![format!("rust_cgi: \"{}\" {problem}", self.script)] });
    }

    /// The program closed its output.
    fn end(&mut self, events: &mut Vec<Event>) {
        match std::mem::replace(&mut self.output, Output::Done) {
            Output::Body => events.push(Event::End),
            Output::Head(_) | Output::NphHead(_) | Output::Raw => {
                let how = children::describe_exit(self.child).map_or_else(String::new, |exit| format!(" ({exit})"));
                self.broken(events, format!("closed its output before sending a complete header{how}"));
            }
            Output::Done => {}
        }
    }

    /// The pipe can take more of the request body; after its end, our end
    /// is closed.
    fn write_input(&mut self) {
        let Some(fd) = self.stdin.as_ref().map(Conn::fd) else { return };
        if self.send_input(fd) {
            if let Some(conn) = self.stdin.take() {
                conn.close();
            }
        } else if let Some(conn) = self.stdin.as_ref() {
            let _ = conn.want_write();
        }
    }

    fn close_pipes(&mut self) {
        for conn in [self.stdout.take(), self.stdin.take()].into_iter().flatten() {
            conn.close();
        }
    }

    /// Sends what `fd` takes of the body now; true once nothing more will
    /// be sent: the body is all written, or the program does not read it.
    fn send_input(&mut self, fd: RawFd) -> bool {
        match self.body.send_to(fd) {
            Ok(done) => done,
            Err(e) => {
                // A program that exits without reading its input (EPIPE) is
                // not an error; anything else is worth a line.
                if e.raw_os_error() != Some(libc::EPIPE) {
                    self.req.log().write(Level::Error, &format!("rust_cgi: cannot write the request body to \"{}\": {e}", self.script));
                }
                true
            }
        }
    }
}

impl Source for CgiProcess {
    fn ack(&mut self, bytes: usize) {
        self.in_flight = self.in_flight.saturating_sub(bytes);
        if self.paused && self.in_flight < WINDOW {
            self.paused = false;
            // Not from here: we are inside the engine. After this event.
            if let Some(conn) = self.stdout.as_ref() {
                conn.post_read();
            }
        }
    }

    fn pid(&self) -> Option<u32> {
        Some(self.pid as u32)
    }

    fn abandon(&mut self, ending: Ending) {
        self.output = Output::Done;
        self.close_pipes();
        children::detach(self.child, ending == Ending::Failed);
    }
}

/// The program wrote (or closed) its output.
unsafe extern "C" fn on_output(ev: *mut ngx_event_t) {
    catch_panic(Log::cycle(), "rust_cgi output", || {
        // SAFETY: the connection's data is its CgiProcess, which closes the
        // connection before it goes (abandon), so it is alive here.
        let process = unsafe { &mut *(Conn::data_of(ev) as *mut CgiProcess) };
        let req = process.req;
        let events = process.read_output();
        // `process` may be freed inside deliver (the request can end); it is
        // not touched again.
        if !events.is_empty() {
            engine::deliver(req, events);
        }
    });
}

/// The program's stdin pipe can take more of the request body.
unsafe extern "C" fn on_input(ev: *mut ngx_event_t) {
    catch_panic(Log::cycle(), "rust_cgi input", || {
        // SAFETY: as in `on_output`.
        let process = unsafe { &mut *(Conn::data_of(ev) as *mut CgiProcess) };
        process.write_input();
    });
}
