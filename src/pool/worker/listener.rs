//! A program pool's `listen=`: FastCGI connections from another nginx (a
//! stock one's `fastcgi_pass`, on this host or another), relayed to the
//! pool's processes.
//!
//! Runs in nginx's master (declaring the listening socket, as nginx's
//! stream module declares its own) and in its workers (the relay).
//!
//! nginx opens the socket, keeps it across reloads and hands it to a new
//! binary, like any `listen`; its workers accept. A client outside
//! `allow=` is closed at once (FastCGI has no authentication). Otherwise
//! each request on the connection takes a place in a process, as a
//! request of this nginx does (so a process never gets more than it
//! takes, and a request that finds every place taken waits, counted for
//! scaling, up to `queue_timeout`), and its records are relayed as they
//! are, both ways, with the same backpressure: at most [`WINDOW`] bytes
//! are held in either direction. A connection carries its requests one
//! after the other (nginx's `fastcgi_keep_conn on`); each may go to
//! another process.
//!
//! What the relay answers itself, as FastCGI responses: 503 when no place
//! came free within `queue_timeout`, 502 when the process died before
//! answering, 504 past `timeout=` (the process is then killed and
//! replaced, as for this nginx's requests).

use std::cell::RefCell;
use std::ffi::c_void;
use std::net::IpAddr;
use std::os::fd::{FromRawFd, OwnedFd};

use nginx_sys::{ngx_conf_t, ngx_connection_t, ngx_event_t, ngx_msec_t};

use super::client::{connect_ready, give_back, mark_stuck, take_place, Dispatched};
use super::line;
use crate::core::catch_panic;
use crate::nginx::event::{Conn, Timer};
use crate::nginx::log::{Level, Log};
use crate::nginx::stat::Active;
use crate::pool::fastcgi as fcgi;
use crate::pool::conf::PoolSpec;
use crate::pool::listen::{Address, AllowList};
use crate::pool::slots;

/// Bytes held in either direction before the relay stops reading that
/// side.
const WINDOW: usize = 256 * 1024;
/// How often a request waiting for a place looks again.
const WAIT_STEP_MS: ngx_msec_t = 20;

/// What a listening socket serves: kept in the configuration's pool.
struct ListenTarget {
    pool: String,
    /// A program pool (places to take), else a Python pool's own app=.
    program: bool,
    allow: AllowList,
    timeout_ms: u64,
    queue_timeout_ms: u64,
}

/// Declares the pool's listening socket in the configuration being read.
///
/// # Safety
/// `cf` must be the configuration being parsed.
pub unsafe fn add_listening(cf: *mut ngx_conf_t, spec: &PoolSpec, address: &Address) -> Result<(), String> {
    let (storage, len) = sockaddr_of(address)?;
    // SAFETY: see above; nginx copies the address, and the target lives as
    // long as the configuration's pool (a cleanup frees it).
    unsafe {
        let ls = nginx_sys::ngx_create_listening(cf, (&storage as *const libc::sockaddr_storage).cast_mut().cast(), len);
        if ls.is_null() {
            return Err("cannot declare the listening socket".into());
        }
        (*ls).handler = Some(on_accept);
        (*ls).pool_size = 256;
        (*ls).backlog = 511;
        (*ls).set_addr_ntop(1);
        (*ls).logp = (*(*cf).cycle).log;
        (*ls).log.data = std::ptr::addr_of_mut!((*ls).addr_text).cast();
        (*ls).log.handler = Some(nginx_sys::ngx_accept_log_error);
        let cleanup = nginx_sys::ngx_pool_cleanup_add((*cf).pool, 0);
        if cleanup.is_null() {
            return Err("out of memory".into());
        }
        let target = Box::new(ListenTarget {
            pool: spec.name.clone(),
            program: spec.program.is_some(),
            allow: spec.allow.clone(),
            timeout_ms: spec.timeout_ms,
            queue_timeout_ms: spec.queue_timeout_ms,
        });
        (*cleanup).data = Box::into_raw(target).cast();
        (*cleanup).handler = Some(drop_target);
        (*ls).servers = (*cleanup).data;
    }
    Ok(())
}

unsafe extern "C" fn drop_target(data: *mut c_void) {
    // SAFETY: the cleanup's data is the box `add_listening` leaked, freed
    // once, with the configuration's pool.
    drop(unsafe { Box::from_raw(data as *mut ListenTarget) });
}

fn sockaddr_of(address: &Address) -> Result<(libc::sockaddr_storage, libc::socklen_t), String> {
    // SAFETY: zeroed is a valid sockaddr_storage, and each family's
    // structure fits in it.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match address {
        Address::Tcp(std::net::SocketAddr::V4(v4)) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(v4.ip().octets()) },
                sin_zero: [0; 8],
            };
            // SAFETY: see above.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        Address::Tcp(std::net::SocketAddr::V6(v6)) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr { s6_addr: v6.ip().octets() },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: see above.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
        Address::Unix(path) => {
            use std::os::unix::ffi::OsStrExt;
            let (addr, len) = slots::sockaddr(path.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
            // SAFETY: see above.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), addr) };
            len as usize
        }
    };
    Ok((storage, len as libc::socklen_t))
}

/// The client's address, if it has one (a unix socket's has none).
///
/// # Safety
/// `sa` must be null or point at a socket address.
unsafe fn peer_ip(sa: *const libc::sockaddr) -> Option<IpAddr> {
    // SAFETY: see above; the family says which structure it is.
    unsafe {
        match sa.as_ref()?.sa_family as i32 {
            libc::AF_INET => Some(IpAddr::from((*(sa as *const libc::sockaddr_in)).sin_addr.s_addr.to_ne_bytes())),
            libc::AF_INET6 => Some(IpAddr::from((*(sa as *const libc::sockaddr_in6)).sin6_addr.s6_addr)),
            _ => None,
        }
    }
}

/// nginx accepted a connection on a pool's socket.
unsafe extern "C" fn on_accept(c: *mut ngx_connection_t) {
    catch_panic(Log::cycle(), "rust_pool listen", || {
        // SAFETY: nginx hands over the connection it accepted, whose
        // listening socket is one `add_listening` declared. The relay
        // keeps a copy of the fd in a connection of its own; nginx's is
        // closed here, with its pool, as nginx's own handlers close theirs.
        unsafe {
            let target = &*((*(*c).listening).servers as *const ListenTarget);
            // Off stub_status's active connections when it closes, as
            // nginx's http and stream modules take theirs off.
            let active = Active::adopt();
            let peer = peer_ip((*c).sockaddr as *const libc::sockaddr);
            let fd = libc::fcntl((*c).fd, libc::F_DUPFD_CLOEXEC, 0);
            let pool = (*c).pool;
            nginx_sys::ngx_close_connection(c);
            nginx_sys::ngx_destroy_pool(pool);
            if fd < 0 {
                return;
            }
            let fd = OwnedFd::from_raw_fd(fd);
            if let Some(ip) = peer.filter(|ip| !target.allow.allows(*ip)) {
                Log::cycle().write(
                    Level::Error,
                    &format!("rust_pool \"{}\": refused a FastCGI connection from {ip}: not in allow= ({})", target.pool, target.allow.describe()),
                );
                return;
            }
            Relay::start(target, fd, active);
        }
    });
}

/// One client connection and, while a request runs, its process's.
struct Relay {
    pool: String,
    /// See [`ListenTarget::program`].
    is_program: bool,
    pool_index: Option<usize>,
    timeout_ms: u64,
    queue_timeout_ms: u64,
    client: Option<Conn>,
    program: Option<Conn>,
    place: Option<Dispatched>,
    /// From the client, not yet taken into a request.
    inbox: Vec<u8>,
    /// To the process, and how much of it went.
    up: Vec<u8>,
    up_at: usize,
    /// To the client, how much of it went, and where the next record of
    /// the process's output starts in it (to find END_REQUEST).
    down: Vec<u8>,
    down_at: usize,
    scan_at: usize,
    /// END_REQUEST's end in `down`, once it arrived.
    end_at: Option<usize>,
    /// A request began (BEGIN_REQUEST) and has not ended.
    in_request: bool,
    request_id: u16,
    keep_conn: bool,
    /// Its input ended (the empty STDIN record).
    input_done: bool,
    /// Bytes of the process's answer sent to the client for this request.
    answered: bool,
    timer: Option<Timer>,
    deadline: Option<Timer>,
    /// Since when the request waits for a place (CLOCK_MONOTONIC ms).
    waiting_since: Option<u64>,
    queued: bool,
    stuck: bool,
    /// Closed: freed once the event that closed it returns (see
    /// [`with_relay`]).
    done: bool,
    /// The relay answered the request itself (see `refuse`): it is not
    /// dispatched again.
    refused: bool,
    /// Reading stopped at the window (not at EAGAIN): the side is read
    /// again, by a posted event, once there is room.
    client_paused: bool,
    program_paused: bool,
    /// Counted among stub_status's active connections until freed.
    _active: Active,
}

impl Relay {
    fn start(target: &ListenTarget, fd: OwnedFd, active: Active) {
        let log = Log::cycle();
        let table = slots::table();
        let pool_index = table.and_then(|t| t.pool_index(target.pool.as_bytes()));
        let (timeout_ms, queue_timeout_ms) = (target.timeout_ms, target.queue_timeout_ms);
        let relay = Box::into_raw(Box::new(Relay {
            pool: target.pool.clone(),
            is_program: target.program,
            pool_index,
            timeout_ms,
            queue_timeout_ms,
            client: None,
            program: None,
            place: None,
            inbox: Vec::new(),
            up: Vec::new(),
            up_at: 0,
            down: Vec::new(),
            down_at: 0,
            scan_at: 0,
            end_at: None,
            in_request: false,
            request_id: 1,
            keep_conn: false,
            input_done: false,
            answered: false,
            timer: None,
            deadline: None,
            waiting_since: None,
            queued: false,
            stuck: false,
            done: false,
            refused: false,
            client_paused: false,
            program_paused: false,
            _active: active,
        }));
        RELAYS.with_borrow_mut(|all| all.push(relay));
        // SAFETY: just made; freed only by `finish`, which closes the
        // connections and disarms the timers that point at it first.
        let r = unsafe { &mut *relay };
        r.timer = Some(Timer::new(on_timer, relay.cast(), log, false));
        match Conn::register(fd, log, relay.cast(), Some(on_client_read), Some(on_client_write)) {
            Ok(conn) => r.client = Some(conn),
            Err(e) => {
                log.write(Level::Error, &format!("rust_pool \"{}\": cannot take a FastCGI connection: {e}", r.pool));
                r.finish();
                free(relay);
            }
        }
    }

    /// Reads what the client sent, takes the current request's records,
    /// and moves things along.
    fn client_readable(&mut self) {
        let Some(client) = self.client.as_ref() else { return };
        let filled = fill(client, &mut self.inbox, WINDOW, |_| false);
        self.client_paused = filled == Filled::Full;
        if filled == Filled::End {
            // The client is gone: a request it left goes too (closing the
            // process's connection tells the program).
            return self.finish();
        }
        self.take_records();
    }

    /// Takes the current request's records in, asks for a place for it,
    /// and sends what the process may take.
    fn take_records(&mut self) {
        if self.done {
            return;
        }
        self.move_records();
        if self.in_request && !self.refused && self.program.is_none() && self.place.is_none() {
            self.dispatch();
        }
        self.pump_up();
    }

    /// Moves whole records of the current request from `inbox` to `up`, as
    /// long as `up` holds less than the window (the rest waits in `inbox`,
    /// itself bounded by the window). Whether it moved any.
    fn move_records(&mut self) -> bool {
        let mut at = 0;
        while !(self.in_request && self.input_done) && self.up.len() - self.up_at < WINDOW {
            let Some(header) = self.inbox.get(at..at + fcgi::HEADER_LEN) else { break };
            let kind = header[1];
            let id = u16::from_be_bytes([header[2], header[3]]);
            let content = usize::from(u16::from_be_bytes([header[4], header[5]]));
            let total = fcgi::HEADER_LEN + content + usize::from(header[6]);
            let Some(record) = self.inbox.get(at..at + total) else { break };
            at += total;
            match kind {
                // Management records (id 0): nginx sends none; nothing to
                // relay them to.
                _ if id == 0 => {}
                fcgi::BEGIN_REQUEST if !self.in_request => {
                    self.in_request = true;
                    self.input_done = false;
                    self.answered = false;
                    self.request_id = id;
                    self.keep_conn = record.get(fcgi::HEADER_LEN + 2).is_some_and(|f| f & fcgi::KEEP_CONN != 0);
                    self.up.extend_from_slice(record);
                }
                // Not of the current request (FastCGI: nginx multiplexes
                // nothing): dropped.
                _ if !self.in_request || id != self.request_id => {}
                fcgi::STDIN if content == 0 => {
                    self.input_done = true;
                    self.up.extend_from_slice(record);
                }
                _ => self.up.extend_from_slice(record),
            }
        }
        self.inbox.drain(..at);
        at > 0
    }

    fn dispatch(&mut self) {
        if self.done {
            return;
        }
        let (Some(table), Some(pool)) = (slots::table(), self.pool_index) else {
            return self.refuse(503, "the pool is not running");
        };
        let log = Log::cycle();
        let key = self as *const Relay as *const ();
        if line::may_try(table, pool, key, self.queued) {
            // A Python process queues what its threads cannot take yet:
            // no place to take, only a ready process.
            let got = if self.is_program { take_place(table, pool, log) } else { connect_ready(table, pool, false, log) };
            if let Some((conn, place)) = got {
                self.leave_queue(table, pool);
                self.waiting_since = None;
                let data = self as *mut Relay as *mut c_void;
                conn.rebind(data, Some(on_program_read), Some(on_program_write));
                let _ = conn.want_read();
                self.program = Some(conn);
                self.place = Some(place);
                // Places may have come free for the next in line too.
                line::wake_first(pool);
                return;
            }
        }
        if table.pools[pool].failing.load(std::sync::atomic::Ordering::Relaxed) != 0 {
            self.leave_queue(table, pool);
            return self.refuse(503, "its processes die before they are ready (a crash loop; see the error log)");
        }
        if !self.queued {
            self.queued = true;
            line::join(table, pool, line::Waiter { key, wake: wake_relay });
        }
        let now = crate::os::monotonic_ms();
        let since = *self.waiting_since.get_or_insert(now);
        if now.saturating_sub(since) > self.queue_timeout_ms {
            self.leave_queue(table, pool);
            return self.refuse(503, "no process could take the request within queue_timeout");
        }
        if let Some(timer) = self.timer.as_mut() {
            timer.arm(WAIT_STEP_MS);
        }
    }

    fn leave_queue(&mut self, table: &slots::Table, pool: usize) {
        if std::mem::take(&mut self.queued) {
            line::leave(table, pool, self as *const Relay as *const ());
        }
    }

    /// A place this relay held came free.
    fn place_free(&self, table: &slots::Table) {
        if let Some(pool) = self.pool_index {
            line::place_free(table, pool);
        }
    }

    /// Answers the client's request itself (FastCGI STDOUT and
    /// END_REQUEST), logs why, and closes the connection once it is sent.
    fn refuse(&mut self, status: u16, why: &str) {
        self.refused = true;
        if let Some(mut deadline) = self.deadline.take() {
            deadline.disarm();
        }
        Log::cycle().write(Level::Error, &format!("rust_pool \"{}\": answering {status} to a FastCGI client: {why}", self.pool));
        let reason = match status {
            502 => "Bad Gateway",
            503 => "Service Unavailable",
            _ => "Gateway Timeout",
        };
        let head = format!("Status: {status} {reason}\r\nContent-Type: text/plain\r\n\r\n{status} {reason}\n");
        let mut out = Vec::new();
        fcgi::push_stream(&mut out, fcgi::STDOUT, self.request_id, head.as_bytes());
        fcgi::push_end_request(&mut out, self.request_id, 0, fcgi::REQUEST_COMPLETE);
        self.down.truncate(self.down_at);
        self.down.extend_from_slice(&out);
        self.scan_at = self.down.len();
        self.end_at = Some(self.down.len());
        self.keep_conn = false;
        self.drop_program();
        self.pump_down();
    }

    /// Sends what the process may take.
    fn pump_up(&mut self) {
        let Some(fd) = self.program.as_ref().map(Conn::fd) else { return };
        loop {
            while self.up_at < self.up.len() {
                match crate::os::send(fd, &self.up[self.up_at..]) {
                    Ok(n) => self.up_at += n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        if let Some(p) = self.program.as_ref() {
                            let _ = p.want_write();
                        }
                        return;
                    }
                    // The process is gone; reading says so.
                    Err(_) => {
                        self.up.clear();
                        self.up_at = 0;
                        return;
                    }
                }
            }
            self.up.clear();
            self.up_at = 0;
            // More of the request that waited for room.
            if !self.move_records() {
                break;
            }
        }
        if self.input_done && self.deadline.is_none() && self.timeout_ms > 0 {
            let mut deadline = Timer::new(on_deadline, self as *mut Relay as *mut c_void, Log::cycle(), false);
            deadline.arm(self.timeout_ms as ngx_msec_t);
            self.deadline = Some(deadline);
        }
        self.resume_client();
    }

    /// Room again for the client's records: read on, if reading stopped at
    /// the window.
    fn resume_client(&mut self) {
        if self.client_paused && self.inbox.len() < WINDOW {
            self.client_paused = false;
            if let Some(c) = self.client.as_ref() {
                c.post_read();
            }
        }
    }

    /// Reads what the process answered, up to the window.
    fn program_readable(&mut self) {
        let Some(program) = self.program.as_ref() else { return };
        let (mut scan_at, mut end_at) = (self.scan_at, self.end_at);
        // Stop at END_REQUEST: nothing after it belongs to the client.
        let filled = fill(program, &mut self.down, self.down_at + WINDOW, |down| {
            (scan_at, end_at) = scan(down, scan_at);
            end_at.is_some()
        });
        (self.scan_at, self.end_at) = (scan_at, end_at);
        self.program_paused = filled == Filled::Full;
        if filled == Filled::End && self.end_at.is_none() {
            let pid = self.place.as_ref().map_or(0, |p| p.pid);
            if self.answered || self.down.len() > self.down_at {
                // Part of an answer went: all the client can learn is that
                // the connection broke.
                Log::cycle().write(Level::Error, &format!("rust_pool \"{}\": process {pid} closed the connection in the middle of its response", self.pool));
                return self.finish();
            }
            return self.refuse(502, &format!("process {pid} closed the connection before its response"));
        }
        self.pump_down();
    }

    /// Sends the client what it may take; after END_REQUEST, the request
    /// is over.
    fn pump_down(&mut self) {
        let Some(fd) = self.client.as_ref().map(Conn::fd) else { return };
        let until = self.end_at.unwrap_or(self.scan_at).min(self.down.len());
        while self.down_at < until {
            match crate::os::send(fd, &self.down[self.down_at..until]) {
                Ok(n) => {
                    self.down_at += n;
                    self.answered = true;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if let Some(c) = self.client.as_ref() {
                        let _ = c.want_write();
                    }
                    return;
                }
                Err(_) => return self.finish(),
            }
        }
        if self.end_at.is_some_and(|end| self.down_at >= end) {
            return self.request_done();
        }
        // Compact what went, and read the process again.
        self.down.drain(..self.down_at);
        self.scan_at -= self.down_at;
        self.down_at = 0;
        if self.program_paused && self.end_at.is_none() {
            self.program_paused = false;
            if let Some(p) = self.program.as_ref() {
                p.post_read();
            }
        }
    }

    /// The process's answer went out whole.
    fn request_done(&mut self) {
        let served = !self.stuck;
        if let (Some(table), Some(place)) = (slots::table(), self.place.take()) {
            if served && self.is_program {
                give_back(table, &place, true);
                self.place_free(table);
            }
        }
        self.drop_program();
        if let Some(mut deadline) = self.deadline.take() {
            deadline.disarm();
        }
        self.down.clear();
        self.down_at = 0;
        self.scan_at = 0;
        self.end_at = None;
        self.in_request = false;
        self.input_done = false;
        self.up.clear();
        self.up_at = 0;
        if !self.keep_conn {
            // FastCGI: without FCGI_KEEP_CONN the application closes.
            return self.finish();
        }
        // The next request may be waiting already.
        self.program_paused = false;
        self.take_records();
        self.resume_client();
    }

    /// Lets the process's connection go, and its place unless the request
    /// finished (then `request_done` gave it back).
    fn drop_program(&mut self) {
        if let Some(conn) = self.program.take() {
            conn.close();
        }
        if let (Some(table), Some(place)) = (slots::table(), self.place.take()) {
            if !self.stuck && self.is_program {
                give_back(table, &place, false);
                self.place_free(table);
            }
        }
    }

    /// The pool's `timeout=` passed for the running request.
    fn timed_out(&mut self) {
        self.deadline = None;
        let pid = self.place.as_ref().map_or(0, |p| p.pid);
        // A Python process replaces itself (its watchdog); a program is
        // killed by the supervisor.
        if let (Some(table), Some(place), true) = (slots::table(), self.place.as_ref(), self.is_program) {
            self.stuck = mark_stuck(table, place);
        }
        if self.answered {
            Log::cycle().write(Level::Error, &format!("rust_pool \"{}\": process {pid} passed timeout= in the middle of its response", self.pool));
            return self.finish();
        }
        self.refuse(504, &format!("process {pid} did not finish within timeout= ({} ms); it is killed and replaced", self.timeout_ms));
    }

    /// Closes everything; the relay is freed when the event that called
    /// this returns.
    fn finish(&mut self) {
        self.done = true;
        if let (Some(table), Some(pool)) = (slots::table(), self.pool_index) {
            self.leave_queue(table, pool);
        }
        self.drop_program();
        if let Some(mut timer) = self.timer.take() {
            timer.disarm();
        }
        if let Some(mut deadline) = self.deadline.take() {
            deadline.disarm();
        }
        if let Some(conn) = self.client.take() {
            conn.close();
        }
    }
}

/// How a [`fill`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Filled {
    /// Nothing more to read now (the read event is armed again).
    Again,
    /// `buf` reached its limit, or `enough` said so: read again later.
    Full,
    /// The peer closed (or the connection broke).
    End,
}

/// Reads from `conn` into `buf` until EAGAIN, the end, `limit` bytes, or
/// `enough(buf)`.
fn fill(conn: &Conn, buf: &mut Vec<u8>, limit: usize, mut enough: impl FnMut(&[u8]) -> bool) -> Filled {
    let mut chunk = [0u8; 16384];
    while buf.len() < limit {
        match crate::os::read(conn.fd(), &mut chunk) {
            Ok(0) => return Filled::End,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if enough(buf) {
                    return Filled::Full;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let _ = conn.want_read();
                return Filled::Again;
            }
            Err(_) => return Filled::End,
        }
    }
    Filled::Full
}

/// Finds where the records in `down` end, from `at` (a record's start):
/// the next record's start, and the end of END_REQUEST once it is whole.
fn scan(down: &[u8], mut at: usize) -> (usize, Option<usize>) {
    while let Some(header) = down.get(at..at + fcgi::HEADER_LEN) {
        let total = fcgi::HEADER_LEN + usize::from(u16::from_be_bytes([header[4], header[5]])) + usize::from(header[6]);
        if down.len() < at + total {
            break;
        }
        at += total;
        if header[1] == fcgi::END_REQUEST {
            return (at, Some(at));
        }
    }
    (at, None)
}

/// Runs `f` on the relay an event points at, and frees the relay if that
/// closed it (never earlier: `f` may go on using it after `finish`).
///
/// # Safety
/// `data` must be a live relay (its connections and timers carry it until
/// `finish` closes and disarms them).
unsafe fn with_relay(data: *mut c_void, what: &str, f: impl FnOnce(&mut Relay)) {
    let relay = data as *mut Relay;
    let ok = catch_panic(Log::cycle(), what, || {
        // SAFETY: see above.
        f(unsafe { &mut *relay })
    });
    // SAFETY: as above; a relay that panicked is closed too, so that it
    // does not hold a place or a connection forever.
    unsafe {
        if ok.is_none() && !(*relay).done {
            (*relay).finish();
        }
        if (*relay).done {
            free(relay);
        }
    }
}

thread_local! {
    /// The live relays, for the worker's exit.
    static RELAYS: RefCell<Vec<*mut Relay>> = const { RefCell::new(Vec::new()) };
}

/// Frees a finished relay.
fn free(relay: *mut Relay) {
    RELAYS.with_borrow_mut(|all| all.retain(|r| *r != relay));
    // SAFETY: it came from Box::into_raw in `start`, once; `finish` closed
    // its connections and disarmed its timers, so no event points at it.
    drop(unsafe { Box::from_raw(relay) });
}

/// The worker exits: every relay lets go of its place and its line now (a
/// relay waiting, or sending a body, has no timer that would keep the
/// worker until it is over; the counts in the shared table outlive it).
pub fn close_all() {
    let all: Vec<*mut Relay> = RELAYS.with_borrow_mut(std::mem::take);
    for relay in all {
        // SAFETY: a live relay (the list holds only those).
        unsafe { (*relay).finish() };
        // SAFETY: as in `free`; it is out of the list already.
        drop(unsafe { Box::from_raw(relay) });
    }
}

unsafe extern "C" fn on_client_read(ev: *mut ngx_event_t) {
    // SAFETY: the client connection's data is its relay.
    unsafe { with_relay(Conn::data_of(ev), "rust_pool listen read", Relay::client_readable) }
}

unsafe extern "C" fn on_client_write(ev: *mut ngx_event_t) {
    // SAFETY: as above.
    unsafe { with_relay(Conn::data_of(ev), "rust_pool listen write", Relay::pump_down) }
}

unsafe extern "C" fn on_program_read(ev: *mut ngx_event_t) {
    // SAFETY: the process connection's data is its relay while attached.
    unsafe { with_relay(Conn::data_of(ev), "rust_pool listen process read", Relay::program_readable) }
}

unsafe extern "C" fn on_program_write(ev: *mut ngx_event_t) {
    // SAFETY: as above.
    unsafe { with_relay(Conn::data_of(ev), "rust_pool listen process write", Relay::pump_up) }
}

unsafe extern "C" fn on_timer(ev: *mut ngx_event_t) {
    // SAFETY: the timer's data is its relay; `finish` disarms it.
    unsafe {
        with_relay(Timer::data_of(ev), "rust_pool listen timer", |r| {
            if r.in_request && !r.refused && r.program.is_none() && r.place.is_none() {
                r.dispatch();
                r.pump_up();
            }
        })
    }
}

/// A relay in the line looks again (see [`line::Waiter`]).
///
/// # Safety
/// `key` is a relay in the line (it leaves before it goes).
unsafe fn wake_relay(key: *const ()) {
    // SAFETY: see above; nginx's thread only.
    if let Some(timer) = unsafe { (*(key as *mut Relay)).timer.as_mut() } {
        timer.arm(0);
    }
}

unsafe extern "C" fn on_deadline(ev: *mut ngx_event_t) {
    // SAFETY: as above.
    unsafe { with_relay(Timer::data_of(ev), "rust_pool listen timeout", Relay::timed_out) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_finds_the_end_of_a_request_in_the_processs_output() {
        let mut out = Vec::new();
        fcgi::push_stream(&mut out, fcgi::STDOUT, 1, b"Status: 200 OK\r\n\r\nhello");
        let stdout_end = out.len();
        fcgi::push_end_request(&mut out, 1, 0, fcgi::REQUEST_COMPLETE);
        let end = out.len();
        out.extend_from_slice(b"\x01\x06"); // bytes after it, never the client's
        assert_eq!(scan(&out[..3], 0), (0, None), "half a header");
        assert_eq!(scan(&out[..stdout_end + 4], 0), (stdout_end, None), "a whole record, then part of one");
        assert_eq!(scan(&out, 0), (end, Some(end)));
        assert_eq!(scan(&out, stdout_end), (end, Some(end)), "from where the last scan stopped");
    }
}
