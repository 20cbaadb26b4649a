//! A pool process's front: FastCGI connections from nginx workers in,
//! requests submitted to the process's app hosts, and their responses back
//! as records.
//!
//! Runs in a pool process, on its main thread.
//!
//! One thread, blocking in poll(2) on the listening socket, the
//! connections, the bridge eventfd (responses ready) and a signalfd
//! (SIGTERM: drain). A connection carries one request at a time and is kept
//! open for the next when nginx asks (FCGI_KEEP_CONN).
//!
//! Backpressure both ways: nginx sends the body at the pace this reads it
//! (bodies above [`SPILL`] go to an unlinked temp file), and the window of
//! a response is acknowledged only once its bytes are in the socket, so a
//! slow client holds the app's thread back exactly as in embedded mode.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::pool::fastcgi::{self as fcgi, Decoder, Record};
use crate::pool::log::{mark, say};
use crate::pool::params::{from_params, Extras};
use crate::os::monotonic_us;
use crate::pool::slots::{unix_ms, Table};
use crate::pool::supervisor::spawn::LISTEN_FD;
use crate::core::bridge::Bridge;
use crate::core::capture::{Body, RequestHead};
use crate::core::exchange::{cost, Event, Exchange, ResponseSink};
use crate::core::head::ResponseHead;
use crate::nginx::log::Level;
use crate::python::apps::App;
use crate::asgi::host as asgi;
use crate::wsgi::host as wsgi;


/// Request bodies above this go to a temp file instead of memory.
const SPILL: usize = 1 << 20;
/// Output buffered per connection before file ranges stop being read in.
const OUT_HIGH: usize = 256 * 1024;
/// How long a draining process keeps idle connections open.
const DRAIN_IDLE_GRACE: std::time::Duration = std::time::Duration::from_secs(1);
/// File bytes read per step.
const FILE_STEP: u64 = 64 * 1024;

pub struct Setup<'a> {
    pub table: &'static Table,
    pub slot: usize,
    pub bridge: Arc<Bridge>,
    pub efd: OwnedFd,
    pub signals: OwnedFd,
    pub apps: HashMap<String, Arc<App>>,
    pub default_app: Option<String>,
    pub asgi: Option<AsgiApps<'a>>,
    pub wsgi: &'a wsgi::Host,
    pub queue_timeout_us: u64,
    /// The pool's request timeout (`timeout=`).
    pub timeout_ms: u64,
    pub nginx_uid: u32,
}

/// The pool's ASGI apps: by key, their index in the host.
pub struct AsgiApps<'a> {
    pub keys: HashMap<String, usize>,
    pub host: &'a asgi::Host,
}

pub struct Front<'a> {
    setup: Setup<'a>,
    conns: HashMap<u64, Conn>,
    next_key: u64,
    /// Exchange id to connection key.
    running: HashMap<u64, u64>,
    /// Since when the process drains (SIGTERM).
    draining: Option<std::time::Instant>,
    /// A request passed the timeout; the supervisor is replacing us.
    timed_out: bool,
    /// Requests whose connection nginx closed (client gone, nginx's own
    /// timeout) while the app still runs them: still watched for the
    /// timeout, until their thread lets go of the exchange.
    orphans: Vec<(Arc<Exchange>, u64, Vec<u8>)>,
}

/// Marked for closing in processes the app forks (see
/// [`crate::os::close_in_forks`]) from accept to close.
struct Conn {
    fd: OwnedFd,
    decoder: Decoder,
    out: Vec<u8>,
    out_at: usize,
    /// Window charge of the bytes in `out`, acknowledged once it is sent.
    unacked: usize,
    keep: bool,
    request: Option<Active>,
    /// Close once `out` is sent.
    closing: bool,
}

impl Drop for Conn {
    fn drop(&mut self) {
        crate::os::close_in_forks(self.fd.as_raw_fd(), false);
    }
}

struct Active {
    id: u16,
    params: Vec<u8>,
    head: Option<(RequestHead, Extras)>,
    body: Vec<u8>,
    spilled: Option<(File, u64)>,
    exchange: Option<Arc<Exchange>>,
    /// The rest of a file to send: file, next offset, end.
    file: Option<(File, u64, u64)>,
    /// The app finished while a file range was still being sent.
    end_after_file: bool,
    /// The response is complete in `out` (END_REQUEST written).
    ended: bool,
    started_ms: u64,
    uri: Vec<u8>,
    /// An ASGI request: what the loop is told of it.
    asgi: Option<asgi::Request>,
}

impl Active {
    /// The request is over here: an ASGI app's receive() may be waiting.
    fn gone(&self) {
        if let Some(request) = &self.asgi {
            request.gone();
        }
    }

    fn new(id: u16) -> Active {
        Active {
            id,
            params: Vec::new(),
            head: None,
            body: Vec::new(),
            spilled: None,
            exchange: None,
            file: None,
            end_after_file: false,
            ended: false,
            started_ms: 0,
            uri: Vec::new(),
            asgi: None,
        }
    }
}

/// A signalfd for SIGTERM, SIGINT and SIGQUIT, blocked for the calling
/// thread (the front), which then reads them as events.
pub fn termination_signals() -> io::Result<OwnedFd> {
    // SAFETY: plain syscalls on a sigset we own; the fd is checked.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGQUIT] {
            libc::sigaddset(&mut set, signal);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let fd = libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

impl<'a> Front<'a> {
    pub fn new(setup: Setup<'a>) -> Front<'a> {
        // The listening socket comes from the supervisor, blocking.
        let _ = crate::os::set_nonblocking(LISTEN_FD);
        Front { setup, conns: HashMap::new(), next_key: 1, running: HashMap::new(), draining: None, timed_out: false, orphans: Vec::new() }
    }

    /// Serves until told to stop and every request is answered.
    pub fn run(mut self) {
        loop {
            if self.draining.is_some() {
                self.close_idle();
                if self.conns.is_empty() {
                    return;
                }
            }
            let mut fds = vec![
                pollfd(self.setup.signals.as_raw_fd(), libc::POLLIN),
                pollfd(self.setup.efd.as_raw_fd(), libc::POLLIN),
                pollfd(if self.draining.is_some() { -1 } else { LISTEN_FD }, libc::POLLIN),
            ];
            let keys: Vec<u64> = self.conns.keys().copied().collect();
            for key in &keys {
                let conn = &self.conns[key];
                let events = if conn.out_at < conn.out.len() { libc::POLLIN | libc::POLLOUT } else { libc::POLLIN };
                fds.push(pollfd(conn.fd.as_raw_fd(), events));
            }
            // While requests run, look at their age four times a second.
            self.orphans.retain(|(exchange, _, _)| Arc::strong_count(exchange) > 1);
            let busy = !self.orphans.is_empty() || self.conns.values().any(|c| c.request.as_ref().is_some_and(|a| a.exchange.is_some()));
            let wait = if self.draining.is_some() { 100 } else if busy && !self.timed_out { 250 } else { -1 };
            if crate::os::poll(&mut fds, wait).is_err() {
                continue;
            }
            if busy && !self.timed_out {
                self.check_timeouts();
            }
            if fds[0].revents != 0 {
                self.on_signal();
            }
            if fds[1].revents != 0 {
                self.on_responses();
            }
            if fds[2].revents != 0 {
                self.accept();
            }
            for (i, key) in keys.iter().enumerate() {
                let revents = fds[3 + i].revents;
                if revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
                    self.on_readable(*key);
                }
                if revents & libc::POLLOUT != 0 {
                    self.flush(*key);
                }
            }
            self.publish_load();
        }
    }

    /// A request past the pool's timeout: nginx has answered 504 by now.
    /// The supervisor is told to replace this process (its thread is
    /// stuck), and every thread's Python stack goes to the log.
    fn check_timeouts(&mut self) {
        let now = unix_ms();
        let running = self.conns.values().filter_map(|c| c.request.as_ref()).filter(|a| a.exchange.is_some()).map(|a| (a.started_ms, &a.uri));
        let orphans = self.orphans.iter().map(|(_, started, uri)| (*started, uri));
        let stuck = running.chain(orphans).find(|(started, _)| *started > 0 && now.saturating_sub(*started) > self.setup.timeout_ms);
        let Some((started_ms, uri)) = stuck else { return };
        self.timed_out = true;
        say(
            Level::Error,
            &format!(
                "request \"{}\" has run for {} ms, past the pool's timeout of {} ms; this process will be replaced. Its Python threads:",
                String::from_utf8_lossy(uri),
                now - started_ms,
                self.setup.timeout_ms
            ),
        );
        let _ = crate::os::write(crate::pool::supervisor::spawn::CONTROL_FD, b"T");
        // faulthandler writes straight to fd 2 (the supervisor's pipe),
        // from C, whatever state the stuck thread is in.
        pyo3::Python::attach(|py| {
            use pyo3::types::{PyAnyMethods, PyDictMethods};
            let _ = py.import("faulthandler").and_then(|f| {
                let kwargs = pyo3::types::PyDict::new(py);
                kwargs.set_item("file", 2)?;
                kwargs.set_item("all_threads", true)?;
                f.call_method("dump_traceback", (), Some(&kwargs))
            });
        });
    }

    fn on_signal(&mut self) {
        let mut info = [0u8; std::mem::size_of::<libc::signalfd_siginfo>()];
        while crate::os::read(self.setup.signals.as_raw_fd(), &mut info).is_ok_and(|n| n > 0) {}
        if self.draining.is_none() {
            self.draining = Some(std::time::Instant::now());
            // SAFETY: closing our listening socket: no new connections.
            unsafe { libc::close(LISTEN_FD) };
        }
    }

    /// While draining: idle connections close, but only after a grace
    /// period. An nginx worker may have taken one from its keepalive cache
    /// just before the supervisor marked us draining, and its request
    /// must still be served, not met with a closed socket.
    fn close_idle(&mut self) {
        if self.draining.is_some_and(|since| since.elapsed() < DRAIN_IDLE_GRACE) {
            return;
        }
        let idle: Vec<u64> = self.conns.iter().filter(|(_, c)| c.request.is_none() && c.out_at >= c.out.len()).map(|(k, _)| *k).collect();
        for key in idle {
            self.conns.remove(&key);
        }
    }

    fn accept(&mut self) {
        loop {
            let Ok(fd) = crate::os::accept(LISTEN_FD) else { return };
            if !self.allowed(fd.as_raw_fd()) {
                continue;
            }
            crate::os::close_in_forks(fd.as_raw_fd(), true);
            let key = self.next_key;
            self.next_key += 1;
            self.conns.insert(
                key,
                Conn { fd, decoder: Decoder::new(), out: Vec::new(), out_at: 0, unacked: 0, keep: false, request: None, closing: false },
            );
        }
    }

    /// Only nginx's workers (and root) may send requests.
    fn allowed(&self, fd: RawFd) -> bool {
        let mut cred = libc::ucred { pid: 0, uid: u32::MAX, gid: 0 };
        let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `cred`.
        let ok = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_PEERCRED, (&mut cred as *mut libc::ucred).cast(), &mut len) } == 0;
        // SAFETY: plain syscall.
        ok && (cred.uid == self.setup.nginx_uid || cred.uid == 0 || cred.uid == unsafe { libc::geteuid() })
    }

    fn on_readable(&mut self, key: u64) {
        let Some(conn) = self.conns.get_mut(&key) else { return };
        let mut buf = [0u8; 65536];
        let mut eof = false;
        loop {
            match crate::os::read(conn.fd.as_raw_fd(), &mut buf) {
                Ok(n @ 1..) => {
                    conn.decoder.feed(&buf[..n]);
                    if conn.decoder.buffered() > 4 * 65536 {
                        break;
                    }
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                _ => eof = true,
            }
            break;
        }
        loop {
            let record = match self.conns.get_mut(&key).map(|c| c.decoder.next_record()) {
                Some(Ok(Some(record))) => record,
                Some(Ok(None)) | None => break,
                Some(Err(e)) => {
                    say(Level::Error, &format!("nginx sent a broken FastCGI stream ({e}); closing the connection"));
                    self.close(key);
                    return;
                }
            };
            self.on_record(key, record);
        }
        if eof {
            // nginx closed the connection: a request still running has no
            // one to answer to.
            self.close(key);
        }
    }

    fn on_record(&mut self, key: u64, record: Record) {
        let Some(conn) = self.conns.get_mut(&key) else { return };
        match record.kind {
            fcgi::BEGIN_REQUEST => {
                let Ok(begin) = fcgi::parse_begin_request(&record.content) else { return self.close(key) };
                if conn.request.is_some() {
                    fcgi::push_end_request(&mut conn.out, record.request_id, 0, fcgi::CANT_MPX_CONN);
                } else if begin.role != fcgi::RESPONDER {
                    fcgi::push_end_request(&mut conn.out, record.request_id, 0, fcgi::UNKNOWN_ROLE);
                } else {
                    conn.keep = begin.flags & fcgi::KEEP_CONN != 0;
                    conn.request = Some(Active::new(record.request_id));
                }
            }
            fcgi::PARAMS => {
                let Some(active) = conn.request.as_mut().filter(|a| a.id == record.request_id && a.head.is_none()) else { return };
                if !record.content.is_empty() {
                    active.params.extend_from_slice(&record.content);
                    return;
                }
                match fcgi::decode_pairs(&active.params).map_err(|e| e.to_string()).and_then(from_params) {
                    Ok(parsed) => {
                        active.uri = parsed.0.raw_uri.clone();
                        active.head = Some(parsed);
                        active.params = Vec::new();
                    }
                    Err(e) => {
                        say(Level::Error, &format!("nginx sent params this process cannot read ({e})"));
                        self.close(key);
                    }
                }
            }
            fcgi::STDIN => {
                let Some(active) = conn.request.as_mut().filter(|a| a.id == record.request_id && a.head.is_some()) else { return };
                if active.exchange.is_some() || active.ended {
                    return;
                }
                if !record.content.is_empty() {
                    if let Err(e) = take_body(active, &record.content) {
                        say(Level::Error, &format!("cannot keep the request body: {e}"));
                        self.close(key);
                    }
                    return;
                }
                self.start(key);
            }
            fcgi::ABORT_REQUEST => {
                if let Some(exchange) = conn.request.as_ref().and_then(|a| a.exchange.clone()) {
                    exchange.abandon();
                }
            }
            fcgi::GET_VALUES => {
                let mut content = Vec::new();
                fcgi::encode_pair(&mut content, b"FCGI_MPXS_CONNS", b"0");
                fcgi::push_stream(&mut conn.out, fcgi::GET_VALUES_RESULT, 0, &content);
                self.flush(key);
            }
            kind => {
                let mut content = [0u8; 8];
                content[0] = kind;
                fcgi::push_header(&mut conn.out, fcgi::UNKNOWN_TYPE, 0, 8, 0);
                conn.out.extend_from_slice(&content);
                self.flush(key);
            }
        }
    }

    /// The whole request is in: hand it to a Python thread.
    fn start(&mut self, key: u64) {
        let Some(conn) = self.conns.get_mut(&key) else { return };
        let Some(active) = conn.request.as_mut() else { return };
        let Some((head, extras)) = active.head.take() else { return };
        let body = match active.spilled.take() {
            Some((file, len)) => Body::from_file(file, len),
            None => Body::from_bytes(std::mem::take(&mut active.body)),
        };
        let exchange = Exchange::new(Arc::clone(&self.setup.bridge));
        active.exchange = Some(Arc::clone(&exchange));
        active.started_ms = unix_ms();
        self.running.insert(exchange.id(), key);
        // At once, not at the end of the loop: if the app kills the
        // process, the supervisor reads how many requests died with it.
        self.setup.table.slots[self.setup.slot].active.fetch_add(1, Ordering::Relaxed);
        let sink = ResponseSink::new(Arc::clone(&exchange));
        let name = if extras.app.is_empty() { self.setup.default_app.clone().unwrap_or_default() } else { extras.app.clone() };
        if let Some(AsgiApps { keys, host }) = &self.setup.asgi {
            if let Some(&app) = keys.get(&name) {
                active.asgi = Some(host.submit(app, head, body, sink));
                return;
            }
        }
        let Some(app) = self.setup.apps.get(&name).cloned() else {
            return sink.fail(500, vec![format!("rust_pool: this pool does not serve the app \"{name}\"; reload nginx")]);
        };
        let errors_level = Level::from_name(&extras.errors_level).unwrap_or(Level::Error);
        let not_after = wsgi::NotAfter {
            at_us: extras.queued_at_us.max(monotonic_us().saturating_sub(1_000_000)) + self.setup.queue_timeout_us,
            why: "rust_pool: the request waited longer than the pool's queue_timeout for a free thread",
        };
        self.setup.wsgi.submit(app, head, body, sink, errors_level, Some(not_after));
    }

    /// The bridge says exchanges have news.
    fn on_responses(&mut self) {
        let drained = self.setup.bridge.drain();
        for (level, message) in drained.logs {
            say(level, &message);
        }
        for exchange in drained.ready {
            let events = exchange.take_events();
            let Some(&key) = self.running.get(&exchange.id()) else {
                // Its connection is gone; keep what it wanted logged.
                for event in events {
                    match event {
                        Event::Log(level, message) => say(level, &message),
                        Event::Fail { lines, .. } => lines.iter().for_each(|l| say(Level::Error, l)),
                        _ => {}
                    }
                }
                continue;
            };
            self.write_events(key, events);
            self.flush(key);
        }
    }

    fn write_events(&mut self, key: u64, events: Vec<Event>) {
        let Some(conn) = self.conns.get_mut(&key) else { return };
        let Some(active) = conn.request.as_mut() else { return };
        let id = active.id;
        let mut events = events.into_iter().peekable();
        while let Some(event) = events.next() {
            if active.ended {
                break;
            }
            match event {
                Event::Started { at_ms } => fcgi::push_stream(&mut conn.out, fcgi::RUST_STARTED, id, &at_ms.to_le_bytes()),
                Event::Head(mut head) => {
                    // A file response (file wrapper, pathsend) reaches nginx
                    // as plain bytes: saying it may be ranged lets nginx
                    // answer a Range request from it, as embedded mode does.
                    if matches!(events.peek(), Some(Event::File { .. })) && !head.has_header("accept-ranges") {
                        head.push_header("Accept-Ranges", "bytes".into());
                    }
                    fcgi::push_stream(&mut conn.out, fcgi::STDOUT, id, &cgi_head(&head))
                }
                Event::Body(bytes) => {
                    conn.unacked += cost(bytes.len());
                    fcgi::push_stream(&mut conn.out, fcgi::STDOUT, id, &bytes);
                }
                Event::File { file, start, end, .. } => active.file = Some((file, start, end)),
                Event::End => {
                    if active.file.is_some() {
                        // After the file's bytes (see `pump_file`).
                        active.end_after_file = true;
                    } else {
                        end_request(&mut conn.out, id, 0);
                        active.ended = true;
                    }
                }
                Event::Fail { status, lines } => {
                    for line in lines {
                        push_log(&mut conn.out, id, Level::Error, &line);
                    }
                    end_request(&mut conn.out, id, u32::from(status.max(1)));
                    active.ended = true;
                }
                Event::Log(level, message) => push_log(&mut conn.out, id, level, &message),
                // The pool process buffers request bodies.
                Event::ResumeBody => {}
                Event::RawHead | Event::Redirect { .. } | Event::Other { .. } => {
                    push_log(&mut conn.out, id, Level::Error, "rust_pool: unsupported response event");
                    end_request(&mut conn.out, id, 502);
                    active.ended = true;
                }
            }
        }
    }

    /// Feeds a file range into the output as room allows; ends the
    /// response after it when the app had finished.
    fn pump_file(conn: &mut Conn) {
        let Some(active) = conn.request.as_mut() else { return };
        while conn.out.len() - conn.out_at < OUT_HIGH {
            let Some((file, at, end)) = active.file.as_mut() else { return };
            let step = (*end - *at).min(FILE_STEP) as usize;
            let mut buf = vec![0u8; step];
            let read = file.read_at(&mut buf, *at).unwrap_or(0);
            if read == 0 {
                active.file = None;
            } else {
                fcgi::push_stream(&mut conn.out, fcgi::STDOUT, active.id, &buf[..read]);
                *at += read as u64;
                if *at >= *end {
                    active.file = None;
                }
            }
            if active.file.is_none() && active.end_after_file {
                active.end_after_file = false;
                end_request(&mut conn.out, active.id, 0);
                active.ended = true;
            }
        }
    }

    /// Writes what the socket takes; acknowledges the window once all of
    /// it is out; finishes the request when its end is sent.
    fn flush(&mut self, key: u64) {
        let Some(conn) = self.conns.get_mut(&key) else { return };
        Self::pump_file(conn);
        while conn.out_at < conn.out.len() {
            let sent = crate::os::send(conn.fd.as_raw_fd(), &conn.out[conn.out_at..]);
            if let Ok(n @ 1..) = sent {
                conn.out_at += n;
                if conn.out_at == conn.out.len() {
                    conn.out.clear();
                    conn.out_at = 0;
                    Self::pump_file(conn);
                }
                continue;
            }
            if sent.is_err_and(|e| e.kind() == io::ErrorKind::WouldBlock) {
                return;
            }
            return self.close(key);
        }
        if conn.unacked > 0 {
            if let Some(active) = conn.request.as_ref() {
                if let Some(exchange) = &active.exchange {
                    exchange.ack(std::mem::take(&mut conn.unacked));
                    if let Some(request) = &active.asgi {
                        request.acked(exchange);
                    }
                }
            }
        }
        if conn.request.as_ref().is_some_and(|a| a.ended) {
            self.finish(key);
        } else if conn.closing {
            self.close(key);
        }
    }

    /// The response is sent: count it, and keep the connection for the
    /// next request if nginx asked to.
    fn finish(&mut self, key: u64) {
        let Some(conn) = self.conns.get_mut(&key) else { return };
        let active = conn.request.take();
        active.iter().for_each(Active::gone);
        if let Some(exchange) = active.and_then(|a| a.exchange) {
            self.running.remove(&exchange.id());
            self.setup.table.slots[self.setup.slot].active.fetch_sub(1, Ordering::Relaxed);
        }
        self.setup.table.slots[self.setup.slot].served.fetch_add(1, Ordering::Relaxed);
        if !conn.keep {
            self.conns.remove(&key);
        }
    }

    fn close(&mut self, key: u64) {
        let Some(mut conn) = self.conns.remove(&key) else { return };
        let Some(active) = conn.request.take() else { return };
        active.gone();
        if let Some(exchange) = active.exchange {
            exchange.abandon();
            self.running.remove(&exchange.id());
            self.setup.table.slots[self.setup.slot].active.fetch_sub(1, Ordering::Relaxed);
            if !active.ended {
                self.orphans.push((exchange, active.started_ms, active.uri));
            }
        }
    }

    /// The slot's oldest request, for the status report.
    fn publish_load(&self) {
        let slot = &self.setup.table.slots[self.setup.slot];
        let mut oldest: Option<(u64, &[u8])> = None;
        for conn in self.conns.values() {
            if let Some(a) = conn.request.as_ref().filter(|a| a.exchange.is_some()) {
                if oldest.is_none_or(|(t, _)| a.started_ms < t) {
                    oldest = Some((a.started_ms, &a.uri));
                }
            }
        }
        slot.busy_since_ms.store(oldest.map_or(0, |(t, _)| t), Ordering::Relaxed);
        if let Some((_, uri)) = oldest {
            slot.set_uri(uri);
        }
    }
}

fn take_body(active: &mut Active, data: &[u8]) -> io::Result<()> {
    if let Some((file, len)) = active.spilled.as_mut() {
        file.write_all(data)?;
        *len += data.len() as u64;
        return Ok(());
    }
    active.body.extend_from_slice(data);
    if active.body.len() > SPILL {
        let mut file = temp_file()?;
        file.write_all(&active.body)?;
        active.spilled = Some((file, active.body.len() as u64));
        active.body = Vec::new();
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

/// The response head as a CGI head, for nginx to parse as it parses any
/// FastCGI responder's.
fn cgi_head(head: &ResponseHead) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + head.headers().len() * 32);
    out.extend_from_slice(b"Status: ");
    match head.status_line() {
        Some(line) => out.extend_from_slice(line),
        None => out.extend_from_slice(head.status().to_string().as_bytes()),
    }
    out.extend_from_slice(b"\r\n");
    for (name, value) in head.headers() {
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The end of STDOUT and END_REQUEST. A non-zero `app_status` is an HTTP
/// status for nginx to answer (no head sent yet) or, after a head, a
/// response that broke off.
fn end_request(out: &mut Vec<u8>, id: u16, app_status: u32) {
    fcgi::push_stream_end(out, fcgi::STDOUT, id);
    fcgi::push_end_request(out, id, app_status, fcgi::REQUEST_COMPLETE);
}

fn push_log(out: &mut Vec<u8>, id: u16, level: Level, message: &str) {
    for line in message.lines() {
        let mut text = mark(level, line).into_bytes();
        text.push(b'\n');
        fcgi::push_stream(out, fcgi::STDERR, id, &text);
    }
}

fn pollfd(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd { fd, events, revents: 0 }
}
