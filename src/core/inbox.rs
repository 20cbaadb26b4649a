//! Messages from nginx's thread to a thread that waits on an fd (ASGI's
//! event loop), without a lock the receiver could hold for long.
//!
//! The sender pushes under a mutex and writes the eventfd only when the
//! receiver has not yet been told since it last took the list, so a burst
//! of messages costs one wakeup; this is the mirror of
//! [`super::bridge::Bridge`], which wakes nginx. The receiver watches the
//! fd (asyncio's `add_reader`) and takes everything at once. Sending never
//! blocks beyond the short critical section, so nginx's thread can send.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, MutexGuard, PoisonError};

pub struct Inbox<T> {
    /// Owned here: closed only when the last holder drops the inbox, so
    /// no sender can write to a reused fd number.
    efd: OwnedFd,
    shared: Mutex<Shared<T>>,
}

struct Shared<T> {
    items: Vec<T>,
    /// The eventfd was written and the receiver has not taken since.
    signaled: bool,
}

impl<T> Inbox<T> {
    pub fn new() -> io::Result<Inbox<T>> {
        // SAFETY: plain syscall; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor we own.
        let efd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Inbox { efd, shared: Mutex::new(Shared { items: Vec::new(), signaled: false }) })
    }

    fn lock(&self) -> MutexGuard<'_, Shared<T>> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The fd the receiver watches for readability.
    pub fn fd(&self) -> RawFd {
        self.efd.as_raw_fd()
    }

    pub fn push(&self, item: T) {
        let mut shared = self.lock();
        shared.items.push(item);
        if !std::mem::replace(&mut shared.signaled, true) {
            let one: u64 = 1;
            // Our own open eventfd; an 8-byte write only fails on counter
            // overflow, impossible with one write per take.
            let _ = crate::os::write(self.efd.as_raw_fd(), &one.to_ne_bytes());
        }
    }

    /// Receiver: clears the eventfd and takes everything sent so far.
    pub fn take(&self) -> Vec<T> {
        // A non-blocking 8-byte read from our own eventfd resets it (EAGAIN
        // when it was zero already).
        let _ = crate::os::read(self.efd.as_raw_fd(), &mut [0u8; 8]);
        let mut shared = self.lock();
        shared.signaled = false;
        std::mem::take(&mut shared.items)
    }
}

#[cfg(test)]
mod tests {
    use super::Inbox;

    fn readable(fd: i32) -> bool {
        let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd, no wait.
        unsafe { libc::poll(&mut p, 1, 0) == 1 }
    }

    #[test]
    fn one_wakeup_per_burst_and_nothing_lost() {
        let inbox = Inbox::new().unwrap();
        assert!(!readable(inbox.fd()));
        inbox.push(1);
        inbox.push(2);
        assert!(readable(inbox.fd()));
        assert_eq!(inbox.take(), vec![1, 2]);
        assert!(!readable(inbox.fd()));
        inbox.push(3);
        assert!(readable(inbox.fd()), "a push after a take signals again");
        assert_eq!(inbox.take(), vec![3]);
        assert!(inbox.take().is_empty());
    }
}
