//! File descriptors in nginx's event loop.
//!
//! nginx only watches fds that are wrapped in an `ngx_connection_t`. This is
//! the same shape as nginx's own channel between master and workers
//! (`ngx_add_channel_event`): take a connection slot, point its read event at
//! a handler, and let `ngx_handle_read_event` pick the flags for the event
//! method in use (edge-triggered on epoll).

use std::os::fd::{IntoRawFd, OwnedFd};
use std::ptr::NonNull;

use nginx_sys::{
    ngx_close_connection, ngx_connection_t, ngx_event_t, ngx_get_connection,
    ngx_handle_read_event, NGX_OK,
};

use super::log::Log;

/// Handler type for nginx events.
pub type EventHandler = unsafe extern "C" fn(*mut ngx_event_t);

/// An fd whose readability runs `handler` on the nginx thread.
pub struct ReadWatch {
    conn: NonNull<ngx_connection_t>,
}

impl ReadWatch {
    /// Registers `fd`. The watch owns the fd from here on and closes it in
    /// [`ReadWatch::close`].
    pub fn register(fd: OwnedFd, handler: EventHandler, log: Log) -> Result<ReadWatch, String> {
        let raw = fd.into_raw_fd();
        // SAFETY: called on the nginx thread of a worker, after the cycle's
        // connections exist; `ngx_get_connection` returns NULL when
        // `worker_connections` is exhausted.
        unsafe {
            let log_ptr = log.as_ptr();
            let c = ngx_get_connection(raw, log_ptr);
            let Some(conn) = NonNull::new(c) else {
                libc::close(raw);
                return Err("no free connection slot (raise worker_connections)".into());
            };
            let rev = (*c).read;
            (*rev).handler = Some(handler);
            (*rev).log = log_ptr;
            (*(*c).write).log = log_ptr;
            if ngx_handle_read_event(rev, 0) != NGX_OK as isize {
                ngx_close_connection(c);
                return Err("cannot add the fd to the event loop".into());
            }
            Ok(ReadWatch { conn })
        }
    }

    /// Re-arms the read event after the handler drained the fd to EAGAIN:
    /// with edge-triggered epoll the next write produces a new edge.
    pub fn rearm(&self) {
        // SAFETY: the connection is ours until `close`, and this runs on the
        // nginx thread.
        unsafe {
            let rev = (*self.conn.as_ptr()).read;
            (*rev).set_ready(0);
            ngx_handle_read_event(rev, 0);
        }
    }

    /// The fd nginx watches, for draining.
    pub fn fd(&self) -> i32 {
        // SAFETY: as above.
        unsafe { (*self.conn.as_ptr()).fd }
    }

    /// Removes the fd from the event loop and closes it.
    pub fn close(self) {
        // SAFETY: the connection came from `ngx_get_connection` and is closed
        // exactly once, here, on the nginx thread.
        unsafe { ngx_close_connection(self.conn.as_ptr()) }
    }
}
