//! Waking the nginx workers whose requests wait for a place in a program
//! process, when a place comes free.
//!
//! Runs in nginx's workers.
//!
//! A program process takes a fixed number of requests at once, and the
//! places are shared by all of nginx's workers. A request that finds none
//! free waits in its worker's line; the worker that gives a place back
//! wakes its own line at once, and, through this, every other worker that
//! has requests of that pool waiting: each announces itself in the shared
//! table ([`slots::Waker`]: its pid and a bit per pool) and listens on an
//! abstract datagram socket named by its pid, registered in nginx's event
//! loop. A wake is one datagram, sent without waiting; one that is lost (a
//! full socket) costs at most a wait step, after which every waiting
//! request looks again anyway. Without this, a request waiting in one
//! worker for a place another worker keeps giving back and taking again
//! waited for its next wait step each time (measured: p99 of 234 ms
//! against php-fpm's 3 ms with two workers).

use std::cell::RefCell;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::Ordering;

use nginx_sys::ngx_event_t;

use crate::core::catch_panic;
use crate::nginx::event::ReadWatch;
use crate::nginx::log::{Level, Log};
use crate::pool::slots::{self, Table};

struct Wake {
    watch: ReadWatch,
    /// Our entry in the table's wakers.
    slot: usize,
    pid: u32,
}

thread_local! {
    static WAKE: RefCell<Option<Wake>> = const { RefCell::new(None) };
    /// This worker's pid (getpid is a system call each time).
    static PID: u32 = std::process::id();
    /// When making this worker's entry last failed (0: it did not).
    static FAILED_AT: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Says whether this worker has requests of pool `pool` waiting (setting
/// up its socket and entry the first time).
pub fn set_waiting(table: &Table, pool: usize, waiting: bool) {
    let Some(slot) = ensure(table) else { return };
    let bit = 1u32 << (pool % 32);
    let pools = &table.wakers[slot].pools;
    if waiting {
        pools.fetch_or(bit, Ordering::SeqCst);
    } else {
        pools.fetch_and(!bit, Ordering::SeqCst);
    }
}

/// A place in pool `pool` came free: wakes every other worker with
/// requests of it waiting.
pub fn wake_others(table: &Table, pool: usize) {
    let bit = 1u32 << (pool % 32);
    let me = PID.with(|p| *p);
    let targets: Vec<u32> = table
        .wakers
        .iter()
        .filter(|w| w.pools.load(Ordering::SeqCst) & bit != 0)
        .map(|w| w.pid.load(Ordering::Relaxed))
        .filter(|&pid| pid != 0 && pid != me)
        .collect();
    if targets.is_empty() {
        return;
    }
    let Some(fd) = ensure(table).and_then(|_| WAKE.with_borrow(|w| w.as_ref().map(|w| w.watch.fd()))) else { return };
    for pid in targets {
        let Ok((addr, len)) = slots::sockaddr(&slots::wake_name(pid)) else { continue };
        // SAFETY: a datagram to a valid address from our own socket; never
        // blocks (the socket is non-blocking), and a failure only costs
        // the woken worker a wait step.
        unsafe { libc::sendto(fd, b"w".as_ptr().cast(), 1, libc::MSG_DONTWAIT, (&addr as *const libc::sockaddr_un).cast(), len) };
    }
}

/// This worker's entry and socket, made the first time.
fn ensure(table: &Table) -> Option<usize> {
    if let Some(slot) = WAKE.with_borrow(|w| w.as_ref().map(|w| w.slot)) {
        return Some(slot);
    }
    // Every program request asks: after a failure, try again a second
    // later, not on each.
    let now = crate::os::monotonic_ms();
    if FAILED_AT.get() != 0 && now.saturating_sub(FAILED_AT.get()) < 1000 {
        return None;
    }
    FAILED_AT.set(now);
    let pid = std::process::id();
    let fd = socket(pid).map_err(|e| Log::cycle().write(Level::Warn, &format!("rust_pool: cannot make this worker's wake-up socket ({e}); its waiting requests look again every wait step"))).ok()?;
    let slot = claim(table, pid)?;
    let watch = match ReadWatch::register(fd, on_wake, Log::cycle()) {
        Ok(watch) => watch,
        Err(e) => {
            table.wakers[slot].pid.store(0, Ordering::Release);
            Log::cycle().write(Level::Warn, &format!("rust_pool: cannot watch this worker's wake-up socket ({e})"));
            return None;
        }
    };
    WAKE.with_borrow_mut(|w| *w = Some(Wake { watch, slot, pid }));
    FAILED_AT.set(0);
    Some(slot)
}

/// A free entry. One whose worker died is freed by the supervisor, which
/// first gives back the places it held (`Table::reclaim_places`).
fn claim(table: &Table, pid: u32) -> Option<usize> {
    for (i, waker) in table.wakers.iter().enumerate() {
        if waker.pid.compare_exchange(0, pid, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
            waker.pools.store(0, Ordering::SeqCst);
            return Some(i);
        }
    }
    None
}

fn socket(pid: u32) -> std::io::Result<OwnedFd> {
    let (addr, len) = slots::sockaddr(&slots::wake_name(pid))?;
    // SAFETY: plain syscalls on a socket we own; the address is valid.
    unsafe {
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let sock = OwnedFd::from_raw_fd(fd);
        if libc::bind(fd, (&addr as *const libc::sockaddr_un).cast(), len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(sock)
    }
}

/// Another worker gave a place back: our first waiting requests look again.
unsafe extern "C" fn on_wake(_ev: *mut ngx_event_t) {
    catch_panic(Log::cycle(), "rust_pool wake", || {
        let Some(fd) = WAKE.with_borrow(|w| w.as_ref().map(|w| w.watch.fd())) else { return };
        let mut buf = [0u8; 64];
        // SAFETY: reading datagrams into our buffer from our own socket.
        while unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) } > 0 {}
        WAKE.with_borrow(|w| {
            if let Some(w) = w {
                w.watch.rearm();
            }
        });
        super::line::wake_all_first();
    });
}

/// This worker took (`held`) or gave back a place in slot `index`'s
/// process `serial`: recorded in its entry, so that the supervisor can
/// give back what it holds if it dies. Without an entry (more workers than
/// entries, or no wake-up socket), nothing is recorded.
pub fn held(table: &Table, index: usize, serial: u32, held: bool) {
    let Some(entry) = ensure(table) else { return };
    table.wakers[entry].hold(index, serial, held);
}

/// Worker exit: the entry is free again.
pub fn close() {
    if let Some(wake) = WAKE.with_borrow_mut(Option::take) {
        if let Some(table) = slots::table() {
            let waker = &table.wakers[wake.slot];
            waker.pools.store(0, Ordering::SeqCst);
            // Places still held (a fast shutdown does not end running
            // requests) stay recorded under this pid, and the supervisor
            // gives them back once this process is gone.
            if !waker.holds_any() {
                let _ = waker.pid.compare_exchange(wake.pid, 0, Ordering::AcqRel, Ordering::Relaxed);
            }
        }
        wake.watch.close();
    }
}
