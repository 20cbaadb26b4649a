//! This worker's line of requests waiting for a place in a program
//! process: requests of this nginx ([`super::client`]) and of another
//! nginx through `listen=` ([`super::listener`]) alike.
//!
//! Runs in nginx's workers.
//!
//! A waiter joins at the back and looks for a place only at the front of
//! its pool's line (and, as a newcomer, only when no request of the pool
//! waits in any worker: those go first). It looks again when a place comes
//! free, in this worker ([`place_free`]) or another ([`super::wake`]), and
//! at each wait step of its own timer anyway. It leaves when it gets a
//! place, gives up, or goes.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use crate::pool::slots::Table;

/// A waiter, type-erased: its address (its identity in the line) and how
/// to make it look again (arm its timer at 0).
#[derive(Clone, Copy)]
pub struct Waiter {
    pub key: *const (),
    pub wake: unsafe fn(*const ()),
}

thread_local! {
    /// (pool index, waiter), oldest first.
    static LINE: RefCell<VecDeque<(usize, Waiter)>> = const { RefCell::new(VecDeque::new()) };
}

/// Whether `key` may look for a place of `pool` now: it is first in this
/// worker's line (or not in it), and, if it is not in the line yet, no
/// request of the pool waits in any worker.
pub fn may_try(table: &Table, pool: usize, key: *const (), in_line: bool) -> bool {
    let first = LINE.with_borrow(|l| l.iter().find(|(p, _)| *p == pool).is_none_or(|(_, w)| w.key == key));
    first && (in_line || table.pools[pool].waiting.load(Ordering::Relaxed) == 0)
}

/// Joins the back of `pool`'s line (counted in the pool's `waiting`).
pub fn join(table: &Table, pool: usize, waiter: Waiter) {
    let first = LINE.with_borrow_mut(|l| {
        let first = !l.iter().any(|(p, _)| *p == pool);
        l.push_back((pool, waiter));
        first
    });
    table.pools[pool].waiting.fetch_add(1, Ordering::Relaxed);
    if first {
        super::wake::set_waiting(table, pool, true);
    }
}

/// Leaves the line (once it got a place, gave up or goes).
pub fn leave(table: &Table, pool: usize, key: *const ()) {
    let (was_in_line, none_left) = LINE.with_borrow_mut(|l| {
        let before = l.len();
        l.retain(|(_, w)| w.key != key);
        (l.len() < before, !l.iter().any(|(p, _)| *p == pool))
    });
    if !was_in_line {
        return;
    }
    let _ = table.pools[pool].waiting.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    if none_left {
        super::wake::set_waiting(table, pool, false);
    }
}

/// The first waiter of `pool` in this worker looks again.
pub fn wake_first(pool: usize) {
    let first = LINE.with_borrow(|l| l.iter().find(|(p, _)| *p == pool).map(|(_, w)| *w));
    if let Some(waiter) = first {
        // SAFETY: a waiter leaves the line before it goes, so its key is
        // live while it is here.
        unsafe { (waiter.wake)(waiter.key) };
    }
}

/// Another worker gave a place back: the first waiter of each pool looks
/// again.
pub fn wake_all_first() {
    let mut pools: Vec<usize> = LINE.with_borrow(|l| l.iter().map(|(p, _)| *p).collect());
    pools.sort_unstable();
    pools.dedup();
    pools.into_iter().for_each(wake_first);
}

/// A place in `pool` came free: the first waiter here looks again now,
/// and so does that of every other worker with waiters of the pool.
pub fn place_free(table: &Table, pool: usize) {
    wake_first(pool);
    super::wake::wake_others(table, pool);
}
