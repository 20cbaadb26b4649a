//! File descriptors and timers in nginx's event loop.
//!
//! nginx only watches fds that are wrapped in an `ngx_connection_t`. This is
//! the same shape as nginx's own channel between master and workers
//! (`ngx_add_channel_event`): take a connection slot, point its events at
//! handlers, and let `ngx_handle_read_event`/`ngx_handle_write_event` pick
//! the flags for the event method in use (edge-triggered on epoll).

use std::ffi::c_void;
use std::os::fd::{IntoRawFd, OwnedFd};
use std::ptr::{self, NonNull};

use nginx_sys::{
    ngx_close_connection, ngx_connection_t, ngx_event_t, ngx_get_connection, ngx_handle_read_event,
    ngx_handle_write_event, ngx_msec_t, NGX_OK,
};

use super::log::Log;
use super::NgxError;

/// Handler type for nginx events.
pub type EventHandler = unsafe extern "C" fn(*mut ngx_event_t);

/// An fd in the event loop. `data` is handed back to the handlers through
/// [`Conn::data_of`].
pub struct Conn {
    conn: NonNull<ngx_connection_t>,
}

impl Conn {
    /// Takes a connection slot for `fd` (which the `Conn` then owns and
    /// closes) and, with a read handler, starts watching for input. Write
    /// readiness is asked for with [`Conn::want_write`].
    pub fn register(
        fd: OwnedFd,
        log: Log,
        data: *mut c_void,
        read: Option<EventHandler>,
        write: Option<EventHandler>,
    ) -> Result<Conn, String> {
        let raw = fd.into_raw_fd();
        // SAFETY: called on the nginx thread of a worker, after the cycle's
        // connections exist; `ngx_get_connection` returns NULL when
        // `worker_connections` is exhausted (and then `raw` is ours to
        // close).
        unsafe {
            let c = ngx_get_connection(raw, log.as_ptr());
            let Some(conn) = NonNull::new(c) else {
                libc::close(raw);
                return Err("no free connection slot (raise worker_connections)".into());
            };
            (*c).data = data;
            let (rev, wev) = ((*c).read, (*c).write);
            (*rev).handler = read;
            (*rev).log = log.as_ptr();
            (*wev).handler = write;
            (*wev).log = log.as_ptr();
            let conn = Conn { conn };
            if read.is_some() && conn.want_read().is_err() {
                conn.close();
                return Err("cannot add the fd to the event loop".into());
            }
            Ok(conn)
        }
    }

    /// The `data` of the connection an event belongs to.
    ///
    /// # Safety
    /// `ev` must be a read or write event of a connection made by
    /// [`Conn::register`] that is still open.
    pub unsafe fn data_of(ev: *mut ngx_event_t) -> *mut c_void {
        // SAFETY: connection events carry their connection in `data`.
        unsafe { (*((*ev).data as *mut ngx_connection_t)).data }
    }

    /// Points the connection at other handlers and data (a kept-alive
    /// connection changing hands).
    pub fn rebind(&self, data: *mut c_void, read: Option<EventHandler>, write: Option<EventHandler>) {
        let c = self.c();
        c.data = data;
        // SAFETY: the connection's events are valid while it is open.
        unsafe {
            (*c.read).handler = read;
            (*c.write).handler = write;
        }
    }

    /// Sets the log its events report to.
    pub fn set_log(&self, log: Log) {
        let c = self.c();
        c.log = log.as_ptr();
        // SAFETY: as above.
        unsafe {
            (*c.read).log = log.as_ptr();
            (*c.write).log = log.as_ptr();
        }
    }

    #[allow(clippy::mut_from_ref)]
    fn c(&self) -> &mut ngx_connection_t {
        // SAFETY: the connection is ours until `close`; nginx thread only.
        unsafe { &mut *self.conn.as_ptr() }
    }

    pub fn fd(&self) -> i32 {
        self.c().fd
    }

    /// (Re-)arms the read event after reading to EAGAIN: with edge-triggered
    /// epoll the next input produces a new edge.
    pub fn want_read(&self) -> Result<(), NgxError> {
        // SAFETY: the connection's read event is valid while it is open.
        unsafe {
            let rev = self.c().read;
            (*rev).set_ready(0);
            if ngx_handle_read_event(rev, 0) == NGX_OK as isize {
                Ok(())
            } else {
                Err(NgxError("cannot watch the fd for input"))
            }
        }
    }

    /// Asks for the write handler once the fd can take more.
    pub fn want_write(&self) -> Result<(), NgxError> {
        // SAFETY: as above.
        unsafe {
            let wev = self.c().write;
            (*wev).set_ready(0);
            if ngx_handle_write_event(wev, 0) == NGX_OK as isize {
                Ok(())
            } else {
                Err(NgxError("cannot watch the fd for output"))
            }
        }
    }

    /// Runs the read handler again soon (after the current event), for
    /// input that arrived while it was not being read.
    pub fn post_read(&self) {
        // SAFETY: posting a connection's read event to nginx's queue of
        // posted events; nginx runs it once and deletes it when the
        // connection closes.
        unsafe { nginx_sys::ngx_post_event(self.c().read, ptr::addr_of_mut!(nginx_sys::ngx_posted_events)) }
    }

    /// Removes the fd from the event loop and closes it.
    pub fn close(self) {
        // SAFETY: the connection came from `ngx_get_connection` and is closed
        // exactly once, here, on the nginx thread. ngx_close_connection also
        // deletes its timers and posted events.
        unsafe { ngx_close_connection(self.conn.as_ptr()) }
    }
}

/// A timer on its own event (not tied to a connection).
pub struct Timer {
    ev: Box<ngx_event_t>,
}

impl Timer {
    /// `handler` runs with the event; [`Timer::data_of`] gives `data`
    /// back. A cancelable timer does not hold up a worker's graceful exit.
    pub fn new(handler: EventHandler, data: *mut c_void, log: Log, cancelable: bool) -> Timer {
        // SAFETY: an all-zero ngx_event_t is its initial state (nginx
        // allocates them with ngx_pcalloc).
        let mut ev: Box<ngx_event_t> = Box::new(unsafe { std::mem::zeroed() });
        ev.handler = Some(handler);
        ev.data = data;
        ev.log = log.as_ptr();
        ev.set_cancelable(cancelable as u32);
        Timer { ev }
    }

    /// # Safety
    /// `ev` must be the event of a live [`Timer`].
    pub unsafe fn data_of(ev: *mut ngx_event_t) -> *mut c_void {
        // SAFETY: see above.
        unsafe { (*ev).data }
    }

    /// Fires `ms` from now (replacing an earlier arming).
    pub fn arm(&mut self, ms: ngx_msec_t) {
        self.disarm();
        // SAFETY: the event lives in our Box, which does not move.
        unsafe { nginx_sys::ngx_add_timer(&mut *self.ev, ms) }
    }

    pub fn disarm(&mut self) {
        if self.ev.timer_set() != 0 {
            // SAFETY: as above.
            unsafe { nginx_sys::ngx_del_timer(&mut *self.ev) }
        }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.disarm();
    }
}

/// A timer whose event lives inline, for an owner that never moves once
/// the timer is armed (a request context in the request pool): no
/// allocation of its own.
pub struct InlineTimer {
    ev: ngx_event_t,
}

impl InlineTimer {
    /// See [`Timer::new`].
    pub fn new(handler: EventHandler, data: *mut c_void, log: Log, cancelable: bool) -> InlineTimer {
        // SAFETY: an all-zero ngx_event_t is its initial state (nginx
        // allocates them with ngx_pcalloc).
        let mut ev: ngx_event_t = unsafe { std::mem::zeroed() };
        ev.handler = Some(handler);
        ev.data = data;
        ev.log = log.as_ptr();
        ev.set_cancelable(cancelable as u32);
        InlineTimer { ev }
    }

    /// Fires `ms` from now (replacing an earlier arming).
    ///
    /// # Safety
    /// The timer must stay where it is until it is disarmed or dropped:
    /// nginx's timer tree points at the event.
    pub unsafe fn arm(&mut self, ms: ngx_msec_t) {
        self.disarm();
        // SAFETY: the caller keeps the event in place while it is armed.
        unsafe { nginx_sys::ngx_add_timer(&mut self.ev, ms) }
    }

    pub fn disarm(&mut self) {
        if self.ev.timer_set() != 0 {
            // SAFETY: armed, so in nginx's tree, at this address.
            unsafe { nginx_sys::ngx_del_timer(&mut self.ev) }
        }
    }
}

impl Drop for InlineTimer {
    fn drop(&mut self) {
        self.disarm();
    }
}

/// A read-only watch: the bridge's eventfd and the source-tree watch.
pub struct ReadWatch(Conn);

impl ReadWatch {
    pub fn register(fd: OwnedFd, handler: EventHandler, log: Log) -> Result<ReadWatch, String> {
        Conn::register(fd, log, ptr::null_mut(), Some(handler), None).map(ReadWatch)
    }

    pub fn rearm(&self) {
        let _ = self.0.want_read();
    }

    pub fn fd(&self) -> i32 {
        self.0.fd()
    }

    pub fn close(self) {
        self.0.close()
    }
}

/// Notice that the worker starts a graceful shutdown (`nginx -s quit`, a
/// reload): nginx's only notice is to close its idle (kept-alive)
/// connections, calling each one's read handler with `c->close` set. An
/// eventfd that nobody writes, registered as idle, gets that call.
pub struct ExitWatch(Conn);

impl ExitWatch {
    pub fn register(handler: EventHandler, log: Log) -> Result<ExitWatch, String> {
        // SAFETY: plain syscall; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(format!("eventfd() failed: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: a fresh descriptor we own.
        let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        let conn = Conn::register(fd, log, ptr::null_mut(), Some(handler), None)?;
        conn.c().set_idle(1);
        Ok(ExitWatch(conn))
    }

    /// In the handler: the call is nginx's shutdown notice.
    ///
    /// # Safety
    /// `ev` must be the read event of an open `ExitWatch`.
    pub unsafe fn shutting_down(ev: *mut ngx_event_t) -> bool {
        // SAFETY: connection events carry their connection in `data`.
        unsafe { (*((*ev).data as *mut ngx_connection_t)).close() != 0 }
    }

    pub fn close(self) {
        self.0.close();
    }
}
