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
//! delivered to the engine as it comes, by the reader and window CGI
//! shares with the pool ([`crate::core::upstream`]).
//! Reading pauses while a window's worth of output is still unwritten to
//! the client, so a slow client slows the program down (its writes block)
//! instead of filling memory.

use std::ffi::c_void;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};


use super::children::{self, ChildId};
use crate::core::cgi_head;
use crate::core::capture::BodyReader;
use crate::core::engine::{Ending, Source};
use crate::core::exchange::Event;
use crate::core::upstream::{self, HeadReader, Headed, Window};
use crate::nginx::event::Conn;
use crate::nginx::log::Level;
use crate::nginx::request::HttpRequest;

/// How much output is read at a time.
const READ_SIZE: usize = 64 * 1024;

/// What comes before the CGI head proper.
enum Prefix {
    /// None: the head (or, after it, the body) is the reader's.
    None,
    /// An nph- program on HTTP/1: its output is passed on raw, status line
    /// and headers included; nothing has arrived yet.
    Raw,
    /// An nph- program on HTTP/2 or HTTP/3: its status line is read, and
    /// the rest of its head parsed as a CGI head, since raw HTTP/1 bytes
    /// cannot be passed on.
    NphStatus(Vec<u8>),
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
    prefix: Prefix,
    /// An nph- program's status line, for its head.
    status_line: Option<Vec<u8>>,
    output: HeadReader,
    /// `rust_cgi_header_limit`.
    header_limit: usize,
    window: Window,
    read_buf: Box<[u8]>,
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
        let prefix = match (nph, req.is_multiplexed()) {
            (false, _) => Prefix::None,
            (true, true) => Prefix::NphStatus(Vec::new()),
            (true, false) => Prefix::Raw,
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
                prefix,
                status_line: None,
                output: HeadReader::new(),
                header_limit,
                window: Window::default(),
                read_buf: vec![0; READ_SIZE].into_boxed_slice(),
            });
        // The Box does not move, so its address can be the events' data.
        let data = &mut *process as *mut CgiProcess as *mut c_void;
        let started = Conn::register(stdio.stdout, req.log(), data, Some(upstream::on_read::<CgiProcess>), None).and_then(|conn| {
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
        let conn = Conn::register(stdin, self.req.log(), data, None, Some(upstream::on_write::<CgiProcess>))?;
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
            if self.output.done() || self.window.full() {
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
        let bytes = match std::mem::replace(&mut self.prefix, Prefix::None) {
            Prefix::None => bytes,
            Prefix::Raw => {
                events.push(Event::RawHead);
                self.output = HeadReader::Body;
                bytes
            }
            Prefix::NphStatus(mut buf) => {
                buf.extend_from_slice(&bytes);
                match cgi_head::nph_status_line(&buf) {
                    Some((status, used)) => {
                        self.status_line = Some(status);
                        buf.split_off(used)
                    }
                    None if buf.len() > self.header_limit || buf.contains(&b'\n') => {
                        return self.broken(events, "did not start with an HTTP status line (nph- program)".into());
                    }
                    None => {
                        self.prefix = Prefix::NphStatus(buf);
                        return;
                    }
                }
            }
        };
        let status_line = &mut self.status_line;
        let taken = self.output.take(bytes.into(), self.header_limit, true, &mut self.window, events, |headed, events| {
            match headed {
                Headed::LocalRedirect { uri, args } => events.push(Event::Redirect { uri, args }),
                Headed::Response(mut head) => {
                    if let Some(status) = status_line.take() {
                        head.set_status(&status).map_err(|e| format!("sent an {e}"))?;
                    }
                    events.push(Event::Head(head));
                }
            }
            Ok(())
        });
        if let Err(problem) = taken {
            self.broken(events, problem);
        }
    }

    /// The program broke the protocol: 502, and it is stopped.
    fn broken(&mut self, events: &mut Vec<Event>, problem: String) {
        self.output = HeadReader::Done;
        events.push(Event::Fail { status: 502, lines: vec![format!("rust_cgi: \"{}\" {problem}", self.script)] });
    }

    /// The program closed its output.
    fn end(&mut self, events: &mut Vec<Event>) {
        let waiting = !matches!(self.prefix, Prefix::None);
        match std::mem::replace(&mut self.output, HeadReader::Done) {
            HeadReader::Body if !waiting => events.push(Event::End),
            HeadReader::Done => {}
            _ => {
                let how = children::describe_exit(self.child).map_or_else(String::new, |exit| format!(" ({exit})"));
                self.broken(events, format!("closed its output before sending a complete header{how}"));
            }
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
        upstream::resume(&mut self.window, bytes, self.stdout.as_ref());
    }

    fn pid(&self) -> Option<u32> {
        Some(self.pid as u32)
    }

    fn abandon(&mut self, ending: Ending) {
        self.output = HeadReader::Done;
        self.close_pipes();
        children::detach(self.child, ending == Ending::Failed);
    }
}

/// The pipes' handlers ([`upstream::on_read`] and [`upstream::on_write`]):
/// the connections' data is their CgiProcess, which closes them before it
/// goes (abandon).
impl upstream::Producer for CgiProcess {
    const READING: &'static str = "rust_cgi output";
    const WRITING: &'static str = "rust_cgi input";

    fn request(&self) -> HttpRequest {
        self.req
    }

    /// The program wrote (or closed) its output.
    fn read(&mut self) -> Vec<Event> {
        self.read_output()
    }

    /// Its stdin pipe can take more of the request body.
    fn write(&mut self) {
        self.write_input();
    }
}
