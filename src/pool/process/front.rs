//! A pool process's front: the loop over FastCGI connections from nginx's
//! workers.
//!
//! Runs in a pool process, on its main thread.
//!
//! One thread, blocking in poll(2) on the listening socket, the
//! connections, the bridge eventfd (responses ready) and a signalfd
//! (SIGTERM, SIGINT, SIGQUIT: drain). A connection carries one request at
//! a time and is kept open for the next when nginx asks (FCGI_KEEP_CONN). The loop's parts
//! are beside it: [`super::request`] builds a request from its records,
//! [`super::dispatch`] hands it to an app host, [`super::reply`] writes the
//! response's events back as records, and [`super::watchdog`] watches the
//! running requests' age.
//!
//! Backpressure both ways: nginx sends the body at the pace this reads it,
//! and the window of a response is acknowledged only once its bytes are
//! in the socket, so a slow client holds the app's thread back exactly as
//! in embedded mode.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::core::bridge::Bridge;
use crate::core::capture::Body;
use crate::core::exchange::{Event, Exchange, ResponseSink};
use crate::nginx::log::Level;
use crate::pool::fastcgi::{Decoder, Record};
use crate::pool::log::say;
use crate::pool::slots::{unix_ms, Table};
use crate::pool::supervisor::spawn::LISTEN_FD;

use super::dispatch::Apps;
use super::request::{self, Active, Next};
use super::{reply, watchdog};

/// How long a draining process keeps idle connections open.
const DRAIN_IDLE_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a process stays idle before it gives freed memory back.
const IDLE_TRIM_MS: libc::c_int = 1000;

pub struct Setup<'a> {
    pub table: &'static Table,
    pub slot: usize,
    pub bridge: Arc<Bridge>,
    pub efd: OwnedFd,
    pub signals: OwnedFd,
    pub apps: Apps<'a>,
    /// The pool's request timeout (`timeout=`).
    pub timeout_ms: u64,
    pub nginx_uid: u32,
}

pub struct Front<'a> {
    setup: Setup<'a>,
    /// Small integer keys, hashed cheaply (no untrusted input picks them).
    conns: FxHashMap<u64, Conn>,
    next_key: u64,
    /// Exchange id to connection key.
    running: FxHashMap<u64, u64>,
    /// Since when the process drains (SIGTERM).
    draining: Option<std::time::Instant>,
    /// A request passed the timeout; the supervisor is replacing us.
    timed_out: bool,
    /// Requests whose connection nginx closed (client gone, nginx's own
    /// timeout) while the app still runs them: still watched for the
    /// timeout, until their thread lets go of the exchange.
    orphans: Vec<(Arc<Exchange>, u64, Vec<u8>)>,
    /// Requests ran since the heap was last trimmed.
    untrimmed: bool,
}

/// Marked for closing in processes the app forks (see
/// [`crate::os::close_in_forks`]) from accept to close.
pub struct Conn {
    fd: OwnedFd,
    decoder: Decoder,
    pub out: Vec<u8>,
    pub out_at: usize,
    /// Window charge of the bytes in `out`, acknowledged once it is sent.
    pub unacked: usize,
    pub keep: bool,
    pub request: Option<Active>,
    /// Close once `out` is sent.
    closing: bool,
}

impl Drop for Conn {
    fn drop(&mut self) {
        crate::os::close_in_forks(self.fd.as_raw_fd(), false);
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
        Front { setup, conns: FxHashMap::default(), next_key: 1, running: FxHashMap::default(), draining: None, timed_out: false, orphans: Vec::new(), untrimmed: false }
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
                // Not read while the app has no room for more of a streamed
                // body: nginx's sends then block, and nginx stops reading
                // the client.
                let input = if conn.request.as_ref().is_none_or(Active::wants_input) { libc::POLLIN } else { 0 };
                let events = if conn.out_at < conn.out.len() { input | libc::POLLOUT } else { input };
                fds.push(pollfd(conn.fd.as_raw_fd(), events));
            }
            // While requests run, look at their age four times a second.
            self.orphans.retain(|(exchange, _, _)| Arc::strong_count(exchange) > 1);
            let busy = !self.orphans.is_empty() || self.conns.values().any(|c| c.request.as_ref().is_some_and(|a| a.exchange.is_some()));
            let idle = !busy && self.draining.is_none();
            let wait = if self.draining.is_some() {
                100
            } else if busy && !self.timed_out {
                250
            } else if idle && self.untrimmed {
                IDLE_TRIM_MS
            } else {
                -1
            };
            match crate::os::poll(&mut fds, wait) {
                Ok(0) if idle && self.untrimmed => self.trim(),
                Ok(_) => {}
                Err(_) => continue,
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

    /// Idle for a second after requests ran: gives the heap's free pages
    /// back to the system. Request bodies are buffered here (up to a MiB
    /// each) and freed on the app's threads, and glibc keeps freed memory
    /// in its arenas, so after a burst of uploads a process would hold its
    /// peak for good (measured: 0.8 MiB of heap before, 10 MiB after 32 concurrent
    /// 1 MiB uploads). Once per idle period, never under load, so no
    /// request pays the page faults of memory handed back a moment before.
    fn trim(&mut self) {
        self.untrimmed = false;
        // SAFETY: malloc_trim only releases free memory of glibc's arenas.
        unsafe { libc::malloc_trim(0) };
    }

    /// A request past the pool's timeout: see [`watchdog`].
    fn check_timeouts(&mut self) {
        let running = self.conns.values().filter_map(|c| c.request.as_ref()?.running());
        let orphans = self.orphans.iter().map(|(_, started, uri)| (*started, uri.as_slice()));
        if let Some(stuck) = watchdog::stuck(running.chain(orphans), self.setup.timeout_ms) {
            self.timed_out = true;
            watchdog::replace_me(stuck, self.setup.timeout_ms);
        }
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
        // A few reads per turn of the loop, so one busy connection does not
        // starve the others; the records of each read are handled before
        // the next (see `Decoder::read_from`).
        for _ in 0..4 {
            let Some(conn) = self.conns.get_mut(&key) else { return };
            let read = conn.decoder.read_from(conn.fd.as_raw_fd());
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
            match read {
                Ok(1..) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // nginx closed the connection: a request still running has
                // no one to answer to.
                _ => return self.close(key),
            }
        }
    }

    fn on_record(&mut self, key: u64, record: Record) {
        let Some(conn) = self.conns.get_mut(&key) else { return };
        match request::on_record(conn, record) {
            Next::Nothing => {}
            Next::Flush => self.flush(key),
            Next::Start => self.start(key),
            Next::Close => self.close(key),
        }
    }

    /// The whole request is in: hand it to a Python thread.
    fn start(&mut self, key: u64) {
        let Some(conn) = self.conns.get_mut(&key) else { return };
        let Some(active) = conn.request.as_mut() else { return };
        let Some((head, extras)) = active.head.take() else { return };
        let body = match active.spilled.take() {
            _ if active.streaming => Body::default().streaming(),
            Some((file, len)) => Body::from_file(file, len),
            None => Body::from_pieces(std::mem::take(&mut active.body)),
        };
        let exchange = Exchange::new(Arc::clone(&self.setup.bridge));
        active.exchange = Some(Arc::clone(&exchange));
        active.started_ms = unix_ms();
        self.untrimmed = true;
        self.running.insert(exchange.id(), key);
        // At once, not at the end of the loop: if the app kills the
        // process, the supervisor reads how many requests died with it.
        self.setup.table.slots[self.setup.slot].active.fetch_add(1, Ordering::Relaxed);
        let sink = ResponseSink::new(Arc::clone(&exchange));
        if active.websocket {
            active.ws = self.setup.apps.submit_websocket(head, &extras, sink);
            return;
        }
        active.asgi = self.setup.apps.submit(head, &extras, body, sink);
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
            if let Some(conn) = self.conns.get_mut(&key) {
                reply::write_events(conn, events);
            }
            self.flush(key);
        }
    }

    /// Writes what the socket takes; acknowledges the window once all of
    /// it is out; finishes the request when its end is sent.
    fn flush(&mut self, key: u64) {
        let Some(conn) = self.conns.get_mut(&key) else { return };
        reply::pump_file(conn);
        while conn.out_at < conn.out.len() {
            let sent = crate::os::send(conn.fd.as_raw_fd(), &conn.out[conn.out_at..]);
            if let Ok(n @ 1..) = sent {
                conn.out_at += n;
                if conn.out_at == conn.out.len() {
                    conn.out.clear();
                    conn.out_at = 0;
                    reply::pump_file(conn);
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
                    if let Some(ws) = &active.ws {
                        ws.acked(exchange);
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
        let running = self.conns.values().filter_map(|c| c.request.as_ref()?.running());
        watchdog::publish_oldest(&self.setup.table.slots[self.setup.slot], running);
    }
}

fn pollfd(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd { fd, events, revents: 0 }
}
