//! The nginx side of a pool: an engine [`Adapter`] that sends a request to
//! a pool process over FastCGI and turns the records that come back into
//! the engine's events.
//!
//! Runs in nginx's workers.
//!
//! Everything here runs on nginx's thread without blocking. The process is
//! the ready one with the fewest requests (its own count in the shared
//! table, plus this worker's requests on their way to it). Connections are
//! kept alive per process and reused; an idle one that closes is dropped,
//! and one is checked before reuse.
//! The body goes out as STDIN records as fast as the socket takes it, and
//! the response is read only while the client keeps up (the engine's
//! window), so the pool process's writes block when the client is slow.

use std::cell::RefCell;
use std::ffi::c_void;
use std::io;

use nginx_sys::{ngx_event_t, ngx_http_request_t, ngx_int_t, ngx_msec_t};
use rustc_hash::FxHashMap;

use crate::pool::conf::PoolTarget;
use crate::pool::fastcgi::{self as fcgi, Decoder};
use crate::pool::log::split_level;
use crate::pool::params::{write_params, write_program_params, Extras};
use super::line;
use crate::os::monotonic_us;
use crate::python::app_conf::{self, AppLocConf};
use crate::pool::slots::{self, ExitCause, State};
use crate::pool::slots::describe;
use crate::core::upstream::{self, HeadReader, Headed, Window};
use crate::core::capture::{Body, BodyReader, RequestHead};
use crate::core::served::{Label, Text};
use crate::core::catch_panic;
use crate::core::engine::{self, Adapter, Ending, Refusal, Source};
use crate::core::exchange::Event;
use crate::nginx::event::{Conn, Timer};
use crate::nginx::log::{Level, Log};
use crate::nginx::request::HttpRequest;

/// The pool process's head is trusted, and an app may send many headers.
const HEAD_LIMIT: usize = 4 << 20;
/// STDIN bytes read from the body per batch: one full record, so that the
/// pool process receives records of one size and none straddles its reads.
const STDIN_STEP: usize = fcgi::STREAM_CHUNK;
/// How often a request waiting for a ready process looks again.
const WAIT_STEP_MS: ngx_msec_t = 20;
/// How long a broken connection waits for the supervisor to say how its
/// process ended, so the log line can name it.
const EXIT_WAIT_STEPS: u32 = 25;
/// Bytes of an unbuffered body held here, waiting for the pool process's
/// socket, before nginx stops reading the client (see `body_room`).
const BODY_HELD_MAX: usize = 256 * 1024;
/// Idle connections kept per process in each worker.
const IDLE_PER_SLOT: usize = 16;
const REQUEST_ID: u16 = 1;

pub struct PoolPass;

impl Adapter for PoolPass {
    const NAME: &'static str = "rust_wsgi";
    const READ_TIMEOUT_DIRECTIVE: &'static str = "rust_wsgi_read_timeout";
    type Job = &'static PoolTarget;

    fn read_timeout(r: HttpRequest) -> ngx_msec_t {
        app_conf::LOC.of(r).map_or(AppLocConf::DEFAULT_READ_TIMEOUT, |c| c.read_timeout)
    }


    /// `rust_asgi_request_buffering off` in an ASGI pool location: the body
    /// goes to the pool process, and on to the app, as it arrives.
    fn unbuffered_body(r: HttpRequest) -> bool {
        target(r).is_some_and(|t| t.asgi) && crate::asgi::conf::LOC.of(r).is_some_and(|c| c.request_buffering == 0)
    }

    fn label(target: &&'static PoolTarget) -> Label {
        Label { app: Some(Text::Static(&target.label)), pool: Some(&target.name) }
    }

    fn names(target: &&'static PoolTarget) -> (&'static str, &'static str) {
        if target.program {
            ("rust_fastcgi_pass", "rust_fastcgi_read_timeout")
        } else if target.asgi {
            ("rust_asgi", "rust_asgi_read_timeout")
        } else {
            ("rust_wsgi", "rust_wsgi_read_timeout")
        }
    }

    fn prepare(r: HttpRequest) -> Result<&'static PoolTarget, Refusal> {
        let target = target(r).ok_or_else(|| Refusal { status: 500, message: "no pool is configured here".into() })?;
        if slots::table().is_none() {
            return Err(Refusal { status: 503, message: format!("rust_pool \"{}\" is not running (see the error log)", target.name) });
        }
        Ok(target)
    }

    fn start(target: &'static PoolTarget, r: HttpRequest, head: RequestHead, body: Body) -> Result<Box<dyn Source>, Refusal> {
        let errors_level = app_conf::LOC.of(r).map_or(AppLocConf::DEFAULT_ERRORS_LEVEL, AppLocConf::errors_level);
        // A program's params are the location's, evaluated now, as
        // nginx's fastcgi module evaluates its fastcgi_params.
        let program_params = target.program.then(|| {
            let fastcgi = crate::pool::conf::LOC.of(r).map(|c| c.fastcgi_params(r)).unwrap_or_default();
            let mut params = Vec::with_capacity(1024);
            write_program_params(&fastcgi, &head, |name, value| fcgi::encode_pair(&mut params, name, value));
            params
        });
        let streaming = body.reader_more_to_come();
        let mut request = Box::new(PoolRequest {
            streaming,
            more: std::collections::VecDeque::new(),
            more_len: 0,
            more_last: false,
            body_held: false,
            req: r,
            target,
            slot: None,
            conn: None,
            out: Vec::new(),
            out_at: 0,
            head: Some(head),
            body_len: body.len(),
            body: body.reader(),
            body_sent: false,
            stdin_borrowed: 0,
            errors_level,
            decoder: Decoder::new(),
            response: HeadReader::new(),
            complete: false,
            window: Window::default(),
            timer: None,
            waited: 0,
            waiting_since: None,
            program_started: None,
            broken: None,
            pending: None,
            pid: None,
            deadline: None,
            program_params,
            queued: false,
            stuck: false,
        });
        let data = &mut *request as *mut PoolRequest as *mut c_void;
        request.timer = Some(Timer::new(on_timer, data, r.log(), false));
        request.dispatch();
        Ok(request)
    }
}

fn target(r: HttpRequest) -> Option<&'static PoolTarget> {
    crate::pool::conf::LOC.of(r).and_then(|c| c.target.as_ref())
}

/// The content handler of `rust_wsgi ... pool=`, `rust_wsgi_pool` and
/// `rust_asgi ... pool=`.
///
/// # Safety
/// Only nginx calls it, with a live request.
pub unsafe extern "C" fn content_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx calls content handlers with the live request.
    let Some(req) = (unsafe { HttpRequest::from_raw(r) }) else { return nginx_sys::NGX_ERROR as ngx_int_t };
    if let Some(target) = target(req).filter(|t| t.asgi) {
        if crate::nginx::takeover::is_websocket_request(&req) {
            return super::websocket::start(req, target);
        }
    }
    // SAFETY: as above.
    unsafe { engine::handle::<PoolPass>(r) }
}

/// The process a request went to.
pub(super) struct Dispatched {
    pub index: usize,
    pub serial: u32,
    pub pid: u32,
}

/// A connection to the ready Python process of pool `pool` with the fewest
/// requests (its own count, or this worker's requests on their way to it),
/// kept alive from an earlier request when `reuse` allows.
pub(super) fn connect_ready(table: &'static slots::Table, pool: usize, reuse: bool, log: Log) -> Option<(Conn, Dispatched)> {
    let busy = |i: usize| SENT.with_borrow(|s| s.get(&i).copied().unwrap_or(0));
    let mut candidates: Vec<(u32, usize)> = table
        .claimed()
        .filter(|(_, s)| s.state() == State::Ready && s.pool.load(std::sync::atomic::Ordering::Relaxed) as usize == pool)
        .map(|(i, s)| (s.active.load(std::sync::atomic::Ordering::Relaxed).max(busy(i)), i))
        .collect();
    candidates.sort_unstable();
    for (_, index) in candidates {
        let slot = &table.slots[index];
        let serial = slot.serial.load(std::sync::atomic::Ordering::Acquire);
        let pid = slot.pid.load(std::sync::atomic::Ordering::Relaxed);
        let conn = match reuse.then(|| take_idle(index, serial)).flatten() {
            Some(conn) => conn,
            None => match connect(table.supervisor.load(std::sync::atomic::Ordering::Relaxed), index, serial, false, log) {
                Ok(conn) => conn,
                // Gone, or its backlog is full: the next one.
                Err(_) => continue,
            },
        };
        return Some((conn, Dispatched { index, serial, pid }));
    }
    None
}

/// A pool process's STDERR content as log events, each line at the level
/// its `<N>` prefix says.
pub(super) fn log_lines(content: &[u8], events: &mut Vec<Event>) {
    for line in String::from_utf8_lossy(content).lines() {
        let (level, text) = split_level(line);
        events.push(Event::Log(level, text.to_string()));
    }
}

/// A place in the ready program process of pool `pool` with the fewest
/// requests, and a new connection to it; None when every place is taken.
pub(super) fn take_place(table: &'static slots::Table, pool: usize, log: Log) -> Option<(Conn, Dispatched)> {
    let mut candidates: Vec<(u32, usize)> = table
        .claimed()
        .filter(|(_, s)| {
            s.state() == State::Ready
                && s.pool.load(std::sync::atomic::Ordering::Relaxed) as usize == pool
                && s.capacity.load(std::sync::atomic::Ordering::Relaxed) > s.active.load(std::sync::atomic::Ordering::Relaxed)
        })
        .map(|(i, s)| (s.active.load(std::sync::atomic::Ordering::Relaxed), i))
        .collect();
    candidates.sort_unstable();
    for (_, index) in candidates {
        let slot = &table.slots[index];
        if !slot.reserve() {
            continue;
        }
        let serial = slot.serial.load(std::sync::atomic::Ordering::Acquire);
        let pid = slot.pid.load(std::sync::atomic::Ordering::Relaxed);
        match connect(table.supervisor.load(std::sync::atomic::Ordering::Relaxed), index, serial, true, log) {
            Ok(conn) => {
                let _ = slot.busy_since_ms.compare_exchange(0, slots::unix_ms(), std::sync::atomic::Ordering::Relaxed, std::sync::atomic::Ordering::Relaxed);
                super::wake::held(table, index, serial, true);
                return Some((conn, Dispatched { index, serial, pid }));
            }
            Err(_) => slot.release(),
        }
    }
    None
}

/// Gives back the place [`take_place`] took (`served`: its request was
/// answered), unless the slot went to another process meanwhile.
pub(super) fn give_back(table: &slots::Table, place: &Dispatched, served: bool) {
    let s = &table.slots[place.index];
    if s.serial.load(std::sync::atomic::Ordering::Acquire) != place.serial {
        return;
    }
    if served {
        s.served.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    s.busy_since_ms.store(0, std::sync::atomic::Ordering::Relaxed);
    super::wake::held(table, place.index, place.serial, false);
    s.release();
}

/// A request to it passed the pool's timeout: it takes no more requests,
/// and the supervisor kills it.
pub(super) fn mark_stuck(table: &slots::Table, place: &Dispatched) -> bool {
    let s = &table.slots[place.index];
    if s.serial.load(std::sync::atomic::Ordering::Acquire) != place.serial {
        return false;
    }
    s.stuck.store(1, std::sync::atomic::Ordering::Relaxed);
    true
}

struct PoolRequest {
    req: HttpRequest,
    target: &'static PoolTarget,
    slot: Option<Dispatched>,
    conn: Option<Conn>,
    /// Records not yet written.
    out: Vec<u8>,
    out_at: usize,
    /// Until it is turned into params at dispatch.
    head: Option<RequestHead>,
    body_len: u64,
    body: BodyReader,
    body_sent: bool,
    /// Content of the STDIN record whose header is in `out` that is still
    /// to be sent straight from the body's memory (not copied into `out`).
    stdin_borrowed: usize,
    errors_level: Level,
    decoder: Decoder,
    response: HeadReader,
    /// END_REQUEST arrived: the connection can be reused.
    complete: bool,
    window: Window,
    timer: Option<Timer>,
    /// Steps waited for an exit status.
    waited: u32,
    /// Since when it waits for a process (CLOCK_MONOTONIC ms): the queue
    /// timeout counts from here, however often it is woken meanwhile.
    waiting_since: Option<u64>,
    /// When a program process got the request (it runs it at once, in the
    /// place reserved for it), told to the engine with its first answer:
    /// a program sends no RUST_STARTED of its own.
    program_started: Option<u64>,
    /// The connection broke mid-request: what to say once the exit is known.
    broken: Option<String>,
    /// Events for the next timer run (see [`PoolRequest::post`]).
    pending: Option<Vec<Event>>,
    /// The process it went to (`$rust_pid`), kept after the slot is let go.
    pid: Option<u32>,
    /// The pool's `timeout=`, from when the app has the whole request.
    deadline: Option<Timer>,
    /// A request to a program: its params, encoded (see
    /// [`write_program_params`]).
    program_params: Option<Vec<u8>>,
    /// Counted in its pool's `waiting`: no process could take it yet (and,
    /// for a program, in this worker's line for a place).
    queued: bool,
    /// It passed the timeout in a program process: the process is stuck,
    /// and its place stays taken until the supervisor replaces it.
    stuck: bool,
    /// An unbuffered body: `body` is empty, and the body comes through
    /// `more_body` into `more`, to be sent as STDIN records as it comes.
    streaming: bool,
    more: std::collections::VecDeque<Vec<u8>>,
    more_len: usize,
    /// The last of it arrived.
    more_last: bool,
    /// nginx stopped reading the client for us (`body_room` said no): it
    /// is told to read on once `more` has gone out.
    body_held: bool,
}

thread_local! {
    /// Kept-alive connections of this worker, by slot.
    static IDLE: RefCell<FxHashMap<usize, Vec<(u32, Conn)>>> = RefCell::new(FxHashMap::default());
    /// This worker's requests sent to each slot and not yet over.
    static SENT: RefCell<FxHashMap<usize, u32>> = RefCell::new(FxHashMap::default());
}

impl PoolRequest {
    fn fail(&mut self, status: u16, line: String) -> Vec<Event> {
        self.response = HeadReader::Done;
        vec![Event::Fail { status, lines: vec![line] }]
    }

    /// The whole request is in the pool process's socket: from now on the
    /// app has it, and the pool's `timeout=` counts, as uWSGI's harakiri
    /// does (an upload's own transfer never does). Armed once.
    fn start_deadline(&mut self) {
        if self.deadline.is_some() || self.target.timeout_ms == 0 {
            return;
        }
        let data = self as *mut PoolRequest as *mut c_void;
        let mut deadline = Timer::new(on_deadline, data, self.req.log(), true);
        deadline.arm(self.target.timeout_ms as ngx_msec_t);
        self.deadline = Some(deadline);
    }

    /// Picks a process and connects, or waits a step for one to be ready.
    fn dispatch(&mut self) {
        let Some(table) = slots::table() else { return };
        let name = &self.target.name;
        let Some(pool) = table.pool_index(name.as_bytes()) else { return self.wait() };
        if self.target.program {
            return self.dispatch_program(table, pool);
        }
        if let Some((conn, place)) = connect_ready(table, pool, true, self.req.log()) {
            self.leave_queue(table, pool);
            self.attach(conn, place);
            return;
        }
        if self.crash_loop(table, pool) {
            return;
        }
        // No ready process: counted as waiting, which makes a pool that
        // scales start one (and one with min_processes=0 its first).
        if !self.queued {
            self.queued = true;
            table.pools[pool].waiting.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.wait();
    }

    /// A program process takes a fixed number of requests at once: a
    /// request goes to one with a free place (the one with the fewest
    /// requests), on a new connection, or waits in line for one.
    fn dispatch_program(&mut self, table: &'static slots::Table, pool: usize) {
        let key = self as *const PoolRequest as *const ();
        if line::may_try(table, pool, key, self.queued) {
            if let Some((conn, place)) = take_place(table, pool, self.req.log()) {
                table.slots[place.index].set_uri(self.req.unparsed_uri());
                self.program_started = Some(crate::os::monotonic_ms());
                self.leave_queue(table, pool);
                self.attach(conn, place);
                // Places may have come free for the next in line too.
                line::wake_first(pool);
                return;
            }
        }
        if self.crash_loop(table, pool) {
            return;
        }
        if !self.queued {
            self.queued = true;
            line::join(table, pool, line::Waiter { key, wake: wake_request });
        }
        self.wait();
    }

    /// A pool in a crash loop answers 503 at once instead of keeping the
    /// request waiting; whether it did.
    fn crash_loop(&mut self, table: &slots::Table, pool: usize) -> bool {
        if table.pools[pool].failing.load(std::sync::atomic::Ordering::Relaxed) == 0 {
            return false;
        }
        self.leave_queue(table, pool);
        let name = &self.target.name;
        let events = self.fail(503, format!("rust_pool \"{name}\" is in a crash loop: its processes die before they are ready (see the error log)"));
        self.post(events);
        true
    }

    /// Out of this worker's line (and of the pool's count of waiting
    /// requests).
    fn leave_queue(&mut self, table: &slots::Table, pool: usize) {
        if !std::mem::take(&mut self.queued) {
            return;
        }
        if self.target.program {
            line::leave(table, pool, self as *const PoolRequest as *const ());
        } else {
            // A Python request waits for a ready process, out of line.
            let _ = table.pools[pool].waiting.fetch_update(std::sync::atomic::Ordering::Relaxed, std::sync::atomic::Ordering::Relaxed, |n| n.checked_sub(1));
        }
    }

    fn wait(&mut self) {
        let now = crate::os::monotonic_ms();
        let since = *self.waiting_since.get_or_insert(now);
        if now.saturating_sub(since) > self.target.queue_timeout_ms {
            if let Some((table, pool)) = slots::table().and_then(|t| Some((t, t.pool_index(self.target.name.as_bytes())?))) {
                self.leave_queue(table, pool);
            }
            let events = self.fail(503, format!("rust_pool \"{}\": no process was ready within queue_timeout", self.target.name));
            return self.post(events);
        }
        if let Some(timer) = self.timer.as_mut() {
            timer.arm(WAIT_STEP_MS);
        }
    }

    /// Delivers `events` from a timer or a later event, never from inside
    /// the engine's own call into us.
    fn post(&mut self, events: Vec<Event>) {
        self.broken = None;
        self.post_events(events);
    }

    /// As `post`, beside events already waiting.
    fn post_events(&mut self, events: Vec<Event>) {
        match self.pending.as_mut() {
            Some(pending) => pending.extend(events),
            None => self.pending = Some(events),
        }
        if let Some(timer) = self.timer.as_mut() {
            timer.arm(0);
        }
    }

    fn attach(&mut self, conn: Conn, slot: Dispatched) {
        let data = self as *mut PoolRequest as *mut c_void;
        conn.rebind(data, Some(upstream::on_read::<PoolRequest>), Some(upstream::on_write::<PoolRequest>));
        conn.set_log(self.req.log());
        SENT.with_borrow_mut(|s| *s.entry(slot.index).or_default() += 1);
        let extras = Extras {
            app: self.target.key.clone(),
            queued_at_us: monotonic_us(),
            errors_level: crate::pool::log::name(self.errors_level).into(),
            content_length: self.body_len,
            streaming: self.streaming,
            websocket: false,
            plain: false,
        };
        if let Some(params) = self.program_params.take() {
            // One request per connection: a program that keeps a connection
            // open waits on it and takes no other (php-cgi, libfcgi).
            self.head = None;
            fcgi::push_begin_request(&mut self.out, REQUEST_ID, fcgi::RESPONDER, 0);
            fcgi::push_params(&mut self.out, REQUEST_ID, &params);
        } else if let Some(head) = self.head.take() {
            let mut params = Vec::with_capacity(1024);
            write_params(&head, &extras, |name, value| fcgi::encode_pair(&mut params, name, value));
            fcgi::push_begin_request(&mut self.out, REQUEST_ID, fcgi::RESPONDER, fcgi::KEEP_CONN);
            fcgi::push_params(&mut self.out, REQUEST_ID, &params);
        }
        if !self.streaming && self.body.remaining() == 0 {
            // No body: its end goes with the params, in the same send.
            fcgi::push_stream_end(&mut self.out, fcgi::STDIN, REQUEST_ID);
            self.body_sent = true;
        }
        self.pid = Some(slot.pid);
        self.slot = Some(slot);
        self.conn = Some(conn);
        self.send_records();
        if let Some(conn) = self.conn.as_ref() {
            let _ = conn.want_read();
        }
    }

    /// Writes records while the socket takes them, refilling from the body.
    /// Body bytes in memory go out from where they are, each record's
    /// header and content in one sendmsg (as nginx's fastcgi module chains
    /// its header buffers to the body's); only bytes in nginx's temp file
    /// are read into `out` first.
    fn send_records(&mut self) {
        let Some(fd) = self.conn.as_ref().map(Conn::fd) else { return };
        loop {
            if self.out_at >= self.out.len() && self.stdin_borrowed == 0 {
                self.out.clear();
                self.out_at = 0;
                if self.body_sent {
                    self.start_deadline();
                    return;
                }
                if let Err(e) = self.next_stdin_record() {
                    let events = self.fail(500, format!("rust_pool: cannot read the request body: {e}"));
                    return self.post(events);
                }
                if self.out.is_empty() && self.stdin_borrowed == 0 {
                    // An unbuffered body that has not come yet.
                    return;
                }
            }
            let head = &self.out[self.out_at..];
            let sent = match self.body.memory_span(self.stdin_borrowed).filter(|_| self.stdin_borrowed > 0) {
                Some(content) => crate::os::send_parts(fd, [head, content]),
                None => crate::os::send(fd, head),
            };
            if let Ok(n @ 1..) = sent {
                let from_out = n.min(self.out.len() - self.out_at);
                self.out_at += from_out;
                let from_body = n - from_out;
                if from_body > 0 {
                    self.body.consume(from_body);
                    self.stdin_borrowed -= from_body;
                }
                continue;
            }
            if sent.as_ref().is_err_and(|e| e.kind() == io::ErrorKind::WouldBlock) {
                if let Some(conn) = self.conn.as_ref() {
                    let _ = conn.want_write();
                }
                return;
            }
            // The process is gone; reading tells how (EOF).
            self.body_sent = true;
            self.stdin_borrowed = 0;
            self.out.clear();
            self.out_at = 0;
            return;
        }
    }

    /// Puts the next STDIN record in `out`: a header whose content is the
    /// body's next bytes in memory (left there, `stdin_borrowed`), a record
    /// read from nginx's temp file, or the empty record that ends the body.
    fn next_stdin_record(&mut self) -> io::Result<()> {
        if let Some(span) = self.body.memory_span(STDIN_STEP).filter(|s| !s.is_empty()) {
            // At most STDIN_STEP, which fits in a record. No padding: it is
            // optional, and the pool process reads records of any length.
            fcgi::push_header(&mut self.out, fcgi::STDIN, REQUEST_ID, span.len() as u16, 0);
            self.stdin_borrowed = span.len();
            return Ok(());
        }
        let len = self.body.read_len(Some(STDIN_STEP));
        if len == 0 && self.streaming {
            self.next_streamed_record();
            return Ok(());
        }
        if len == 0 {
            fcgi::push_stream_end(&mut self.out, fcgi::STDIN, REQUEST_ID);
            self.body_sent = true;
            return Ok(());
        }
        let body = &mut self.body;
        // SAFETY: BodyReader::fill writes all of the slice it is given
        // unless it fails, and `len` is within what is left.
        unsafe { fcgi::push_stream_with(&mut self.out, fcgi::STDIN, REQUEST_ID, len, |out| body.fill(out).map(|()| out.len())) }
            .map(drop)
    }

    /// An unbuffered body: the next chunk nginx read into `more` as a
    /// STDIN record, or the end, or nothing yet (`more_body` sends on).
    fn next_streamed_record(&mut self) {
        match self.more.pop_front() {
            Some(chunk) => {
                self.more_len -= chunk.len();
                fcgi::push_stream(&mut self.out, fcgi::STDIN, REQUEST_ID, &chunk);
            }
            None if self.more_last => {
                fcgi::push_stream_end(&mut self.out, fcgi::STDIN, REQUEST_ID);
                self.body_sent = true;
            }
            None => {}
        }
        if self.body_held && self.more_len < BODY_HELD_MAX / 2 {
            // Room again: nginx reads the client on.
            self.body_held = false;
            self.post_events(vec![Event::ResumeBody]);
        }
    }

    /// Reads records up to the window; returns events for the engine.
    fn read_records(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        let Some(fd) = self.conn.as_ref().map(Conn::fd) else { return events };
        loop {
            if self.response.done() || self.window.full() {
                break;
            }
            let read = self.decoder.read_from(fd);
            if let Ok(1..) = read {
                self.records(&mut events);
                continue;
            }
            if read.as_ref().is_err_and(|e| e.kind() == io::ErrorKind::WouldBlock) {
                if let Some(conn) = self.conn.as_ref() {
                    let _ = conn.want_read();
                }
                break;
            }
            self.lost();
            break;
        }
        events
    }

    fn records(&mut self, events: &mut Vec<Event>) {
        if let Some(at_ms) = self.program_started.take() {
            events.push(Event::Started { at_ms });
        }
        loop {
            let record = match self.decoder.next_record() {
                Ok(Some(record)) => record,
                Ok(None) => return,
                Err(e) => {
                    events.extend(self.fail(502, format!("rust_pool \"{}\": the pool process broke the protocol: {e}", self.target.name)));
                    return;
                }
            };
            if self.response.done() {
                return;
            }
            match record.kind {
                fcgi::STDOUT if !record.content.is_empty() => self.stdout(record.content, events),
                fcgi::RUST_STARTED => {
                    if let Ok(at) = <[u8; 8]>::try_from(&record.content[..]) {
                        events.push(Event::Started { at_ms: u64::from_le_bytes(at) });
                    }
                }
                fcgi::STDERR if self.target.program => {
                    // As nginx's fastcgi module logs a program's stderr.
                    for line in String::from_utf8_lossy(&record.content).lines().filter(|l| !l.is_empty()) {
                        events.push(Event::Log(Level::Error, format!("rust_fastcgi_pass \"{}\" sent in stderr: \"{line}\"", self.target.name)));
                    }
                }
                fcgi::STDERR => log_lines(&record.content, events),
                fcgi::END_REQUEST => {
                    // A program's appStatus is its exit status, which nginx
                    // ignores too; ours is the status to answer.
                    let status = match fcgi::parse_end_request(&record.content) {
                        Ok(_) if self.target.program => 0,
                        Ok(end) => end.app_status,
                        Err(_) => 502,
                    };
                    self.complete = true;
                    let was = std::mem::replace(&mut self.response, HeadReader::Done);
                    events.push(match (was, status) {
                        (HeadReader::Body, 0) => Event::End,
                        // Lines were logged from STDERR already.
                        (HeadReader::Body, _) => Event::Fail { status: 500, lines: vec![] },
                        (HeadReader::Head(_), 400..=599) => Event::Fail { status: status as u16, lines: vec![] },
                        (_, _) => Event::Fail {
                            status: 502,
                            lines: vec![format!("rust_pool \"{}\": the pool process ended the request without a response", self.target.name)],
                        },
                    });
                    return;
                }
                _ => {}
            }
        }
    }

    fn stdout(&mut self, content: bytes::Bytes, events: &mut Vec<Event>) {
        let taken = self.response.take(content, HEAD_LIMIT, false, &mut self.window, events, |headed, events| match headed {
            Headed::Response(head) => {
                events.push(Event::Head(head));
                Ok(())
            }
            // A pool app answers; it does not redirect nginx.
            Headed::LocalRedirect { .. } => Err(String::new()),
        });
        if taken.is_err() {
            events.extend(self.fail(502, format!("rust_pool \"{}\": the pool process sent a bad response head", self.target.name)));
        }
    }

    /// The connection ended mid-request: wait briefly for the supervisor
    /// to record how the process ended, then answer 502 naming it.
    fn lost(&mut self) {
        if let Some(conn) = self.conn.take() {
            conn.close();
        }
        self.complete = false;
        let pid = self.slot.as_ref().map_or(0, |s| s.pid);
        let when = if self.response.in_head() { "before its response" } else { "in the middle of its response" };
        self.response = HeadReader::Done;
        self.broken = Some(format!("rust_pool \"{}\": process {pid} closed the connection {when}", self.target.name));
        self.waited = 0;
        if let Some(timer) = self.timer.as_mut() {
            timer.arm(0);
        }
    }

    /// Timer: waiting for a process, for an exit status, or delivering.
    fn on_timer(&mut self) -> Option<Vec<Event>> {
        if let Some(events) = self.pending.take() {
            return Some(events);
        }
        if let Some(line) = self.broken.clone() {
            let pid = self.slot.as_ref().map_or(0, |s| s.pid);
            let exit = slots::table().and_then(|t| t.exit_of(pid));
            self.waited += 1;
            if exit.is_none() && self.waited < EXIT_WAIT_STEPS {
                if let Some(timer) = self.timer.as_mut() {
                    timer.arm(WAIT_STEP_MS);
                }
                return None;
            }
            let how = match exit {
                Some((status, ExitCause::Stopped)) => format!(": it was stopped by the pool ({})", describe(status, ExitCause::Stopped)),
                Some((status, cause)) => format!(": it {}", describe(status, cause)),
                None => ": it is still running (it closed the connection itself)".into(),
            };
            self.broken = None;
            return Some(vec![Event::Fail { status: 502, lines: vec![format!("{line}{how}")] }]);
        }
        if self.conn.is_none() {
            self.dispatch();
        }
        self.pending.take()
    }
}

impl Source for PoolRequest {
    fn pid(&self) -> Option<u32> {
        self.pid
    }

    fn more_body(&mut self, chunk: Vec<u8>, last: bool) {
        if !chunk.is_empty() {
            self.more_len += chunk.len();
            self.more.push_back(chunk);
        }
        self.more_last |= last;
        if self.conn.is_some() && !self.body_sent {
            self.send_records();
        }
    }

    fn body_room(&mut self) -> bool {
        let room = self.more_len < BODY_HELD_MAX;
        self.body_held |= !room;
        room
    }

    fn ack(&mut self, bytes: usize) {
        upstream::resume(&mut self.window, bytes, self.conn.as_ref());
    }

    fn abandon(&mut self, ending: Ending) {
        if let Some(mut timer) = self.timer.take() {
            timer.disarm();
        }
        if let Some(mut deadline) = self.deadline.take() {
            deadline.disarm();
        }
        let slot = self.slot.take();
        if let Some(slot) = &slot {
            SENT.with_borrow_mut(|s| {
                if let Some(n) = s.get_mut(&slot.index) {
                    *n = n.saturating_sub(1);
                }
            });
        }
        let table = slots::table();
        if let Some((table, pool)) = table.and_then(|t| Some((t, t.pool_index(self.target.name.as_bytes())?))).filter(|_| self.queued) {
            self.leave_queue(table, pool);
        }
        if self.target.program {
            if let (Some(table), Some(slot)) = (table, &slot) {
                // A stuck process keeps the place until it is killed.
                if !self.stuck {
                    give_back(table, slot, ending == Ending::Done && self.complete);
                    if let Some(pool) = table.pool_index(self.target.name.as_bytes()) {
                        line::place_free(table, pool);
                    }
                }
            }
            if let Some(conn) = self.conn.take() {
                conn.close();
            }
            return;
        }
        let Some(conn) = self.conn.take() else { return };
        match slot {
            Some(slot) if self.complete && ending == Ending::Done && self.decoder.buffered() == 0 => keep_idle(slot, conn),
            // Mid-request: closing tells the pool process to stop.
            _ => conn.close(),
        }
    }
}

fn take_idle(index: usize, serial: u32) -> Option<Conn> {
    IDLE.with_borrow_mut(|idle| {
        let list = idle.get_mut(&index)?;
        while let Some((s, conn)) = list.pop() {
            if s == serial && still_open(conn.fd()) {
                return Some(conn);
            }
            conn.close();
        }
        None
    })
}

/// Whether an idle connection is still open. Its close is noticed by
/// `on_idle_read`, but only when the event loop gets to it: a process that
/// died moments ago (its slot not yet reaped) may have closed one that is
/// still cached, and a request sent there would get a 502 for a crash it
/// had no part in (see [`crate::os::idle_socket_open`]).
fn still_open(fd: std::os::fd::RawFd) -> bool {
    crate::os::idle_socket_open(fd)
}

fn keep_idle(slot: Dispatched, conn: Conn) {
    // The fd is the idle connection's name in its handler.
    // Both handlers stay set: once the write event has been armed, epoll
    // reports it with every state change of the socket.
    conn.rebind(conn.fd() as usize as *mut c_void, Some(on_idle_read), Some(on_idle_write));
    conn.set_log(Log::cycle());
    if conn.want_read().is_err() {
        return conn.close();
    }
    IDLE.with_borrow_mut(|idle| {
        let list = idle.entry(slot.index).or_default();
        if list.len() >= IDLE_PER_SLOT {
            conn.close();
        } else {
            list.push((slot.serial, conn));
        }
    });
}

/// Closes every kept-alive connection (worker exit).
pub fn close_idle() {
    let all: Vec<Conn> = IDLE.with_borrow_mut(|idle| idle.drain().flat_map(|(_, list)| list.into_iter().map(|(_, c)| c)).collect());
    all.into_iter().for_each(Conn::close);
}

/// A request in the line looks again (see [`line::Waiter`]).
///
/// # Safety
/// `key` is a PoolRequest in the line (it leaves before it goes).
unsafe fn wake_request(key: *const ()) {
    // SAFETY: see above; nginx's thread only.
    if let Some(timer) = unsafe { (*(key as *mut PoolRequest)).timer.as_mut() } {
        timer.arm(0);
    }
}

fn connect(supervisor: u32, index: usize, serial: u32, program: bool, log: Log) -> io::Result<Conn> {
    let owned = slots::connect(&slots::address(supervisor, index, serial, program))?;
    // Handlers are set by `attach` before any event can run.
    Conn::register(owned, log, std::ptr::null_mut(), None, Some(on_idle_write)).map_err(io::Error::other)
}

/// The connection's handlers ([`upstream::on_read`] and
/// [`upstream::on_write`]): its data is its PoolRequest while attached;
/// abandon closes or rebinds it before the request goes.
impl upstream::Producer for PoolRequest {
    const READING: &'static str = "rust_pool read";
    const WRITING: &'static str = "rust_pool write";

    fn request(&self) -> HttpRequest {
        self.req
    }

    /// The pool process wrote (or closed).
    fn read(&mut self) -> Vec<Event> {
        self.read_records()
    }

    /// The socket can take more of the request.
    fn write(&mut self) {
        self.send_records();
    }
}

/// The pool's `timeout=` passed: 504 (or, after the head, a closed
/// connection); the pool process logs the stuck thread's stack and is
/// replaced.
unsafe extern "C" fn on_deadline(ev: *mut ngx_event_t) {
    catch_panic(Log::cycle(), "rust_pool timeout", || {
        // SAFETY: as in `on_timer`: abandon disarms it before the request
        // goes.
        let request = unsafe { &mut *(Timer::data_of(ev) as *mut PoolRequest) };
        let req = request.req;
        let line = if request.target.program {
            // The program cannot say it is stuck: its process takes no more
            // requests, and the supervisor kills it. Its place stays taken.
            if let (Some(table), Some(slot)) = (slots::table(), &request.slot) {
                request.stuck = mark_stuck(table, slot);
            }
            format!(
                "rust_fastcgi_pass: the program did not finish within the timeout= of rust_pool \"{}\" ({} ms); answering 504 (process {} is killed and replaced)",
                request.target.name,
                request.target.timeout_ms,
                request.pid.unwrap_or(0)
            )
        } else {
            let name = if request.target.asgi { "rust_asgi" } else { "rust_wsgi" };
            format!(
                "{name}: the app did not finish within the timeout= of rust_pool \"{}\" ({} ms); answering 504 (the pool process logs its stack and is replaced)",
                request.target.name, request.target.timeout_ms
            )
        };
        let events = request.fail(504, line);
        engine::deliver(req, events);
    });
}

unsafe extern "C" fn on_timer(ev: *mut ngx_event_t) {
    // SAFETY: the timer's data is its PoolRequest; abandon disarms it
    // before the request goes.
    unsafe { upstream::deliver_from::<PoolRequest>(Timer::data_of(ev), "rust_pool timer", |r| r.req, PoolRequest::on_timer) }
}

/// An idle connection is writable: nothing to write.
unsafe extern "C" fn on_idle_write(_ev: *mut ngx_event_t) {}

/// Anything on an idle connection (the process closed it) ends it.
unsafe extern "C" fn on_idle_read(ev: *mut ngx_event_t) {
    catch_panic(Log::cycle(), "rust_pool idle", || {
        // SAFETY: idle connections carry their fd as data.
        let fd = unsafe { Conn::data_of(ev) } as usize as i32;
        let conn = IDLE.with_borrow_mut(|idle| {
            idle.values_mut().find_map(|list| list.iter().position(|(_, c)| c.fd() == fd).map(|at| list.remove(at).1))
        });
        if let Some(conn) = conn {
            conn.close();
        }
    });
}
