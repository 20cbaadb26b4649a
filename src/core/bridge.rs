//! Waking the nginx event loop from other threads.
//!
//! Worker threads never touch nginx. They put work for the nginx thread into
//! a mutex-protected list and write to an eventfd that nginx watches as a
//! connection (see [`crate::nginx::event::ReadWatch`]). One write covers any
//! number of items: `signaled` stays set until the nginx thread drains the
//! list, so a burst of completions costs one wakeup.
//!
//! This is deliberately not `ngx_notify`: that is nginx's private hook with a
//! single handler slot, shared with its own thread pool.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::exchange::Exchange;
use crate::nginx::log::Level;

pub struct Bridge {
    /// The eventfd. The nginx connection that watches it owns and closes it;
    /// writers check `closed` under the lock, so nobody writes to a closed
    /// (and possibly reused) fd number.
    efd: RawFd,
    shared: Mutex<Shared>,
}

#[derive(Default)]
struct Shared {
    ready: Vec<Arc<Exchange>>,
    logs: Vec<(Level, String)>,
    signaled: bool,
    closed: bool,
}

/// What the nginx thread picks up in one wakeup.
pub struct Drained {
    pub ready: Vec<Arc<Exchange>>,
    pub logs: Vec<(Level, String)>,
}

impl Bridge {
    /// Creates the bridge and the eventfd for nginx to watch.
    pub fn new() -> io::Result<(Arc<Bridge>, OwnedFd)> {
        // SAFETY: plain syscall; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor we own.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let bridge = Bridge { efd: owned.as_raw_fd(), shared: Mutex::default() };
        Ok((Arc::new(bridge), owned))
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Schedules `exchange` for the nginx thread.
    pub fn ready(&self, exchange: Arc<Exchange>) {
        let mut shared = self.lock();
        shared.ready.push(exchange);
        self.signal(&mut shared);
    }

    /// Queues a line for nginx's error log (the cycle's log: for messages
    /// that belong to no live request).
    pub fn log(&self, level: Level, message: String) {
        let mut shared = self.lock();
        shared.logs.push((level, message));
        self.signal(&mut shared);
    }

    fn signal(&self, shared: &mut Shared) {
        if shared.signaled || shared.closed {
            return;
        }
        shared.signaled = true;
        let one: u64 = 1;
        // `efd` is open while `closed` is false, and we hold the lock that
        // `close_with` takes. An 8-byte write to an eventfd only fails when
        // the counter would overflow, which cannot happen with one write
        // per drain.
        let _ = crate::os::write(self.efd, &one.to_ne_bytes());
    }

    /// Nginx thread: clears the eventfd and takes everything queued.
    pub fn drain(&self) -> Drained {
        // As in `signal`; a non-blocking read of 8 bytes resets the eventfd
        // counter (EAGAIN when it was already zero).
        let _ = crate::os::read(self.efd, &mut [0u8; 8]);
        let mut shared = self.lock();
        shared.signaled = false;
        Drained {
            ready: std::mem::take(&mut shared.ready),
            logs: std::mem::take(&mut shared.logs),
        }
    }

    /// Stops all further wakeups, then runs `close` (which closes the fd)
    /// while holding the lock.
    pub fn close_with(&self, close: impl FnOnce()) {
        let mut shared = self.lock();
        shared.closed = true;
        shared.ready.clear();
        close();
    }
}
