//! The table every process of the pool machinery shares: which pool
//! processes exist, their state and their counters.
//!
//! Runs in every process of the pool machinery: the master maps it, the
//! others inherit it.
//!
//! It is one anonymous `MAP_SHARED` mapping made in nginx's master before it
//! forks anything, so the supervisor, the pool processes and every
//! generation of nginx workers see the same memory (nginx's own shared zones
//! are remade when a reload changes their size, which the long-lived
//! supervisor would not see). Every field is an atomic: the writers are
//! other processes.
//!
//! - The supervisor assigns slots (pool, pid, state) and samples RSS.
//! - A pool process counts its requests and marks itself ready.
//! - nginx workers read it to pick a process, and to report status.
//!
//! Beside it, what the processes must agree on to find and describe each
//! other: a process's socket name and address ([`socket_name`],
//! [`sockaddr`]) and how it ended ([`ExitCause`], [`describe`]).

use std::ptr::NonNull;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicU8, Ordering};

/// Pools one nginx can declare.
pub const MAX_POOLS: usize = 32;
/// Pool processes at once, over all pools (rolling restarts need a few
/// more than the configured total).
pub const MAX_SLOTS: usize = 512;
/// Longest pool name.
pub const NAME_MAX: usize = 64;
/// Bytes of the current request's URI kept for the status report.
pub const URI_MAX: usize = 120;
/// Recent exits remembered, for nginx workers to name why a connection
/// broke.
pub const EXITS: usize = 64;
/// nginx workers that can be woken when a place in a program process comes
/// free (see [`crate::pool::worker::wake`]); more than this fall back to
/// looking again every wait step.
pub const WAKERS: usize = 64;

/// A slot's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum State {
    Empty = 0,
    /// Forked; importing the app.
    Starting = 1,
    /// Takes requests.
    Ready = 2,
    /// Finishing its requests, then exiting; takes no new ones.
    Draining = 3,
    /// Told to stop, or exited and not yet reaped.
    Stopping = 4,
}

impl State {
    fn from_u32(v: u32) -> State {
        match v {
            1 => State::Starting,
            2 => State::Ready,
            3 => State::Draining,
            4 => State::Stopping,
            _ => State::Empty,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            State::Empty => "empty",
            State::Starting => "starting",
            State::Ready => "ready",
            State::Draining => "draining",
            State::Stopping => "stopping",
        }
    }
}

#[repr(C)]
pub struct PoolEntry {
    /// Non-zero once the name is written.
    used: AtomicU32,
    name_len: AtomicU32,
    name: [AtomicU8; NAME_MAX],
    /// Processes restarted after they died or were recycled.
    pub restarts: AtomicU64,
    /// Non-zero while the pool is in a crash loop: requests get 503.
    pub failing: AtomicU32,
    /// `threads=` of the current configuration.
    pub threads: AtomicU32,
    /// Requests waiting in nginx's workers for a process that can take
    /// them (each worker counts its own in and out).
    pub waiting: AtomicU32,
    /// Scaling, as the supervisor sees it: the processes it wants now,
    /// between `min_processes` and `processes` (both also here).
    pub wanted: AtomicU32,
    pub min: AtomicU32,
    pub max: AtomicU32,
    /// Processes started because requests waited, and stopped because
    /// they were idle.
    pub scale_ups: AtomicU64,
    pub idle_stops: AtomicU64,
}

#[repr(C)]
pub struct Slot {
    state: AtomicU32,
    pub pool: AtomicU32,
    pub pid: AtomicU32,
    /// Bumped each time the slot is given to a new process, so a reader can
    /// tell a reused slot from the process it knew.
    pub serial: AtomicU32,
    /// Requests received and not yet answered (including queued ones).
    pub active: AtomicU32,
    pub served: AtomicU64,
    /// Unix time in ms when the process was started.
    pub started_ms: AtomicU64,
    /// Unix time in ms when the oldest running request started; 0 if idle.
    pub busy_since_ms: AtomicU64,
    pub rss: AtomicU64,
    uri_len: AtomicU32,
    uri: [AtomicU8; URI_MAX],
    /// Requests the process takes at once; 0: no limit (a Python process
    /// queues what its threads cannot take yet). A FastCGI program's comes
    /// from its answer to FCGI_GET_VALUES. Where it is set, nginx's
    /// workers count `active` themselves and never send more than this
    /// ([`Slot::reserve`]).
    pub capacity: AtomicU32,
    /// A request to this process passed the pool's timeout: it takes no
    /// more, and the supervisor kills it (a program cannot report this
    /// itself, as a Python process does).
    pub stuck: AtomicU32,
}

#[repr(C)]
pub struct Exit {
    pub pid: AtomicU32,
    /// The wait status; valid once `pid` is set.
    pub status: AtomicU32,
    /// What the supervisor knows beyond the status (see [`ExitCause`]).
    pub cause: AtomicU32,
}

/// Why a process ended, as far as the supervisor can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitCause {
    /// On its own (a crash, an exit call).
    Own = 0,
    /// The supervisor stopped it (recycling, timeout, shutdown).
    Stopped = 1,
    /// The kernel's OOM killer.
    OutOfMemory = 2,
}

#[repr(C)]
pub struct Table {
    magic: AtomicU64,
    /// The supervisor's pid, part of every socket name.
    pub supervisor: AtomicU32,
    next_exit: AtomicU32,
    pub pools: [PoolEntry; MAX_POOLS],
    pub slots: [Slot; MAX_SLOTS],
    pub exits: [Exit; EXITS],
    /// One past the highest slot ever claimed: the slots a reader looks
    /// at. Claims take the lowest free slot, so this stays near the number
    /// of processes, and a worker choosing a process reads a few slots
    /// instead of all 512 (each on its own cache lines). Last, so that
    /// the fields before it keep their places.
    in_use: AtomicU32,
    /// nginx workers with requests waiting for a place in a program
    /// process, to wake when one comes free.
    pub wakers: [Waker; WAKERS],
    /// The random part of the program sockets' directory's name (see
    /// [`program_dir`]); 0 until the supervisor made it.
    pub program_token: AtomicU64,
}

/// An nginx worker that has (or had) requests waiting in line.
#[repr(C)]
pub struct Waker {
    /// The worker's pid; 0: free.
    pub pid: AtomicU32,
    /// Bit i: it has requests of pool i waiting.
    pub pools: AtomicU32,
    /// Places this worker holds in each slot's process (see
    /// [`Table::reclaim_places`]): what to give back if it dies holding
    /// them. The slot's serial (high half) and the count (low half): a
    /// count for an earlier process of the slot is void.
    pub held: [AtomicU64; MAX_SLOTS],
}

impl Waker {
    /// One more place (`held`) or one fewer in the process with `serial`
    /// in slot `index`. A count for another serial is void: taking starts
    /// it over, giving back leaves it.
    pub fn hold(&self, index: usize, serial: u32, held: bool) {
        let _ = self.held[index].fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
            let (s, n) = split_held(v);
            match (held, s == serial) {
                (true, true) => Some(join_held(serial, n + 1)),
                (true, false) => Some(join_held(serial, 1)),
                (false, true) => Some(join_held(serial, n.saturating_sub(1))),
                (false, false) => None,
            }
        });
    }

    /// Whether it holds any place (in any process).
    pub fn holds_any(&self) -> bool {
        self.held.iter().any(|h| split_held(h.load(Ordering::Acquire)).1 > 0)
    }
}

fn split_held(v: u64) -> (u32, u32) {
    ((v >> 32) as u32, v as u32)
}

fn join_held(serial: u32, n: u32) -> u64 {
    (u64::from(serial) << 32) | u64::from(n)
}

/// Where a waker listens: an abstract datagram socket named by its pid.
pub fn wake_name(pid: u32) -> Vec<u8> {
    format!("\0ngx-rust-gateway/wake/{pid}").into_bytes()
}

const MAGIC: u64 = 0x7267_772d_706f_6f6c; // "rgw-pool"

static TABLE: AtomicPtr<Table> = AtomicPtr::new(std::ptr::null_mut());

/// The table, once [`create`] ran in this process or an ancestor.
pub fn table() -> Option<&'static Table> {
    // SAFETY: the pointer is either null or the mapping made by `create`,
    // which is never unmapped.
    NonNull::new(TABLE.load(Ordering::Acquire)).map(|p| unsafe { &*p.as_ptr() })
}

/// Maps the table (zeroed), once per process tree.
pub fn create() -> std::io::Result<&'static Table> {
    if let Some(table) = table() {
        return Ok(table);
    }
    // SAFETY: the Table is atomics only, and zeroed atomics are valid.
    let table: &'static Table = unsafe { crate::os::shared_zeroed()? };
    TABLE.store(table as *const Table as *mut Table, Ordering::Release);
    table.magic.store(MAGIC, Ordering::Release);
    Ok(table)
}

fn write_bytes(len: &AtomicU32, buf: &[AtomicU8], bytes: &[u8]) {
    let n = bytes.len().min(buf.len());
    for (cell, &b) in buf.iter().zip(&bytes[..n]) {
        cell.store(b, Ordering::Relaxed);
    }
    len.store(n as u32, Ordering::Release);
}

fn read_bytes(len: &AtomicU32, buf: &[AtomicU8]) -> Vec<u8> {
    let n = (len.load(Ordering::Acquire) as usize).min(buf.len());
    buf[..n].iter().map(|c| c.load(Ordering::Relaxed)).collect()
}

impl PoolEntry {
    fn is_named(&self, name: &[u8]) -> bool {
        self.used.load(Ordering::Acquire) != 0
            && self.name_len.load(Ordering::Acquire) as usize == name.len()
            && self.name.iter().zip(name).all(|(cell, &b)| cell.load(Ordering::Relaxed) == b)
    }

    pub fn name(&self) -> Option<Vec<u8>> {
        (self.used.load(Ordering::Acquire) != 0).then(|| read_bytes(&self.name_len, &self.name))
    }
}

impl Table {
    /// The entry for pool `name`, made if new (supervisor only).
    pub fn pool_index_or_add(&self, name: &str) -> Option<usize> {
        if let Some(i) = self.pool_index(name.as_bytes()) {
            return Some(i);
        }
        let i = self.pools.iter().position(|p| p.used.load(Ordering::Acquire) == 0)?;
        let entry = &self.pools[i];
        write_bytes(&entry.name_len, &entry.name, name.as_bytes());
        entry.used.store(1, Ordering::Release);
        Some(i)
    }

    /// Compares in place: a worker looks its pool up on every request.
    pub fn pool_index(&self, name: &[u8]) -> Option<usize> {
        self.pools.iter().position(|p| p.is_named(name))
    }

    /// A free slot, claimed for `pool` (supervisor only).
    pub fn claim(&self, pool: usize, pid: u32) -> Option<usize> {
        let i = self.slots.iter().position(|s| s.state() == State::Empty)?;
        let slot = &self.slots[i];
        slot.pool.store(pool as u32, Ordering::Relaxed);
        slot.pid.store(pid, Ordering::Relaxed);
        slot.active.store(0, Ordering::Relaxed);
        slot.served.store(0, Ordering::Relaxed);
        slot.busy_since_ms.store(0, Ordering::Relaxed);
        slot.rss.store(0, Ordering::Relaxed);
        slot.uri_len.store(0, Ordering::Relaxed);
        slot.capacity.store(0, Ordering::Relaxed);
        slot.stuck.store(0, Ordering::Relaxed);
        slot.started_ms.store(unix_ms(), Ordering::Relaxed);
        slot.serial.fetch_add(1, Ordering::Relaxed);
        // Before the slot can turn Ready: a reader that sees it Ready has
        // looked this far.
        self.in_use.fetch_max(i as u32 + 1, Ordering::Release);
        slot.set_state(State::Starting);
        Some(i)
    }

    /// The slots that have ever held a process, with their indices.
    pub fn claimed(&self) -> impl Iterator<Item = (usize, &Slot)> {
        let n = (self.in_use.load(Ordering::Acquire) as usize).min(MAX_SLOTS);
        self.slots[..n].iter().enumerate()
    }

    /// Gives back the places that nginx workers which died (kill -9, a
    /// crash, a fast shutdown with requests running) held: nobody else
    /// will, and a process whose places are all held takes no more
    /// requests. Only counts for a slot's current process are given back
    /// (its serial), and only the supervisor runs this, which is also the
    /// one that gives a slot to a new process: the two cannot cross. Frees
    /// the dead workers' entries. Returns each dead worker's pid and how
    /// many places it held.
    pub fn reclaim_places(&self) -> Vec<(u32, u32)> {
        let mut reclaimed = Vec::new();
        for waker in &self.wakers {
            let pid = waker.pid.load(Ordering::Acquire);
            if pid == 0 || !crate::os::pid_gone(pid) {
                continue;
            }
            let mut places = 0;
            for (held, slot) in waker.held.iter().zip(&self.slots) {
                let (serial, n) = split_held(held.swap(0, Ordering::AcqRel));
                if n > 0 && serial == slot.serial.load(Ordering::Acquire) {
                    let _ = slot.active.fetch_update(Ordering::SeqCst, Ordering::Relaxed, |a| Some(a.saturating_sub(n)));
                    places += n;
                }
            }
            waker.pools.store(0, Ordering::SeqCst);
            waker.pid.store(0, Ordering::Release);
            reclaimed.push((pid, places));
        }
        reclaimed
    }

    /// A new supervisor starts: the processes an earlier one had died with
    /// it (the parent-death signal), so every slot is free again.
    pub fn forget_processes(&self) {
        for slot in &self.slots {
            slot.active.store(0, Ordering::Relaxed);
            slot.serial.fetch_add(1, Ordering::Relaxed);
            slot.set_state(State::Empty);
        }
    }

    /// Remembers how `pid` ended.
    pub fn record_exit(&self, pid: u32, status: i32, cause: ExitCause) {
        let i = self.next_exit.fetch_add(1, Ordering::Relaxed) as usize % EXITS;
        let exit = &self.exits[i];
        exit.status.store(status as u32, Ordering::Relaxed);
        exit.cause.store(cause as u32, Ordering::Relaxed);
        exit.pid.store(pid, Ordering::Release);
    }

    /// How `pid` ended, if it is among the recent exits.
    pub fn exit_of(&self, pid: u32) -> Option<(i32, ExitCause)> {
        self.exits.iter().find(|e| e.pid.load(Ordering::Acquire) == pid).map(|e| {
            let cause = match e.cause.load(Ordering::Relaxed) {
                1 => ExitCause::Stopped,
                2 => ExitCause::OutOfMemory,
                _ => ExitCause::Own,
            };
            (e.status.load(Ordering::Relaxed) as i32, cause)
        })
    }
}

impl Slot {
    pub fn state(&self) -> State {
        State::from_u32(self.state.load(Ordering::Acquire))
    }

    pub fn set_state(&self, state: State) {
        self.state.store(state as u32, Ordering::Release);
    }

    /// Moves from `from` to `to` unless someone else changed it first.
    pub fn transition(&self, from: State, to: State) -> bool {
        self.state.compare_exchange(from as u32, to as u32, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// Takes one of the process's places (a slot with a `capacity`):
    /// false when it is full, or no longer takes requests. The state is
    /// read again after the place is taken, and the supervisor reads
    /// `active` after it marks a process draining (both sequentially
    /// consistent), so it never stops a process a request was just given
    /// to.
    pub fn reserve(&self) -> bool {
        let capacity = self.capacity.load(Ordering::Relaxed);
        let mut active = self.active.load(Ordering::Relaxed);
        loop {
            if active >= capacity {
                return false;
            }
            match self.active.compare_exchange_weak(active, active + 1, Ordering::SeqCst, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => active = now,
            }
        }
        if self.state.load(Ordering::SeqCst) == State::Ready as u32 && self.stuck.load(Ordering::Relaxed) == 0 {
            return true;
        }
        self.release();
        false
    }

    /// Gives back a place [`Slot::reserve`] took.
    pub fn release(&self) {
        let _ = self.active.fetch_update(Ordering::SeqCst, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// Marks the process draining and tells whether a request still holds
    /// one of its places (see [`Slot::reserve`]).
    pub fn drain_and_count(&self) -> u32 {
        self.state.store(State::Draining as u32, Ordering::SeqCst);
        self.active.load(Ordering::SeqCst)
    }

    pub fn set_uri(&self, uri: &[u8]) {
        write_bytes(&self.uri_len, &self.uri, uri);
    }

    pub fn uri(&self) -> Vec<u8> {
        read_bytes(&self.uri_len, &self.uri)
    }
}

/// The abstract unix socket a pool process listens on. Abstract names need
/// no directory and vanish with their socket; the pool process accepts
/// only nginx's own user (see SO_PEERCRED in the pool process).
pub fn socket_name(supervisor: u32, slot: usize, pid: u32) -> Vec<u8> {
    format!("\0ngx-rust-gateway/{supervisor}/{slot}/{pid}").into_bytes()
}

/// The directory of a supervisor's program sockets: a FastCGI program
/// cannot check who connects (SO_PEERCRED is ours), so its socket is a
/// file that only nginx's workers may open. The supervisor makes the
/// directory under a name nobody can guess (so nobody can make it first)
/// and, as root, owns it and its sockets itself (so that nobody, not even
/// a program running as nginx's worker user, can put anything in it): the
/// workers' group may enter it and open the sockets, no more.
pub fn program_dir(supervisor: u32) -> std::path::PathBuf {
    let token = table().map_or(0, |t| t.program_token.load(Ordering::Acquire));
    std::path::PathBuf::from(format!("/tmp/ngx-rust-gateway.{supervisor}.{token:016x}"))
}

/// The socket a program process listens on, as bytes for [`sockaddr`].
pub fn program_socket(supervisor: u32, slot: usize, serial: u32) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    program_dir(supervisor).join(format!("{slot}.{serial}")).as_os_str().as_bytes().to_vec()
}

/// A slot's address: an abstract name for a Python process, a file for a
/// program.
pub fn address(supervisor: u32, slot: usize, serial: u32, program: bool) -> Vec<u8> {
    if program {
        program_socket(supervisor, slot, serial)
    } else {
        socket_name(supervisor, slot, serial)
    }
}

pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// "exited with code 3", "was killed by signal 11 (SIGSEGV)", ...
pub fn describe(status: i32, cause: ExitCause) -> String {
    if libc::WIFSIGNALED(status) {
        let signal = libc::WTERMSIG(status);
        // SAFETY: strsignal returns a static or thread-local string.
        let name = unsafe { std::ffi::CStr::from_ptr(libc::strsignal(signal)) }.to_string_lossy().into_owned();
        let oom = if cause == ExitCause::OutOfMemory { ", by the kernel's OOM killer" } else { "" };
        format!("was killed by signal {signal} ({name}{oom})")
    } else {
        format!("exited with code {}", libc::WEXITSTATUS(status))
    }
}

/// A unix socket address for `name`: abstract when it starts with NUL, else
/// a path.
pub fn sockaddr(name: &[u8]) -> std::io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: zeroed is a valid sockaddr_un.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if name.len() > addr.sun_path.len() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "socket name too long"));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (dst, &src) in addr.sun_path.iter_mut().zip(name) {
        *dst = src as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + name.len();
    Ok((addr, len as libc::socklen_t))
}

/// A non-blocking stream connection to the unix socket `name` (see
/// [`sockaddr`]): a unix socket connects at once or fails (EAGAIN: its
/// backlog is full).
pub fn connect(name: &[u8]) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let (addr, len) = sockaddr(name)?;
    // SAFETY: plain syscalls on a socket we own; the address is valid.
    unsafe {
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let owned = std::os::fd::OwnedFd::from_raw_fd(fd);
        if libc::connect(fd, (&addr as *const libc::sockaddr_un).cast(), len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_workers_places_are_given_back() {
        let table = create().expect("mmap");
        let (dead, live) = (&table.wakers[WAKERS - 1], &table.wakers[WAKERS - 2]);
        let slot = &table.slots[MAX_SLOTS - 1];
        // Above any pid_max: no such process.
        dead.pid.store(0x7fff_fff0, Ordering::Relaxed);
        live.pid.store(std::process::id(), Ordering::Relaxed);
        let serial = slot.serial.load(Ordering::Relaxed);
        dead.hold(MAX_SLOTS - 1, serial, true);
        dead.hold(MAX_SLOTS - 1, serial, true);
        // A place in the slot's earlier process: void now.
        dead.hold(MAX_SLOTS - 2, table.slots[MAX_SLOTS - 2].serial.load(Ordering::Relaxed).wrapping_sub(1), true);
        live.hold(MAX_SLOTS - 1, serial, true);
        slot.active.store(3, Ordering::Relaxed);
        table.slots[MAX_SLOTS - 2].active.store(1, Ordering::Relaxed);
        assert_eq!(table.reclaim_places(), vec![(0x7fff_fff0, 2)]);
        assert_eq!(slot.active.load(Ordering::Relaxed), 1, "the live worker's place stays");
        assert_eq!(table.slots[MAX_SLOTS - 2].active.load(Ordering::Relaxed), 1, "an earlier process's count is void");
        assert_eq!(dead.pid.load(Ordering::Relaxed), 0, "the entry is free");
        assert!(!dead.holds_any());
        assert!(live.holds_any());
        live.hold(MAX_SLOTS - 1, serial, false);
        assert!(!live.holds_any());
        live.hold(MAX_SLOTS - 1, serial.wrapping_add(1), false);
        assert!(!live.holds_any(), "giving back for another serial leaves it");
        live.pid.store(0, Ordering::Relaxed);
    }

    #[test]
    fn pools_slots_and_exits() {
        let table = create().expect("mmap");
        let pool = table.pool_index_or_add("app").expect("pool");
        assert_eq!(table.pool_index_or_add("app"), Some(pool));
        assert_eq!(table.pool_index(b"app"), Some(pool));
        assert_eq!(table.pool_index(b"other"), None);

        let slot = table.claim(pool, 1234).expect("slot");
        let s = &table.slots[slot];
        assert_eq!(s.state(), State::Starting);
        assert!(s.transition(State::Starting, State::Ready));
        assert!(!s.transition(State::Starting, State::Ready));
        s.set_uri(&[b'x'; 500]);
        assert_eq!(s.uri().len(), URI_MAX);
        assert_ne!(table.claim(pool, 99), Some(slot));

        table.record_exit(1234, 9, ExitCause::OutOfMemory);
        assert_eq!(table.exit_of(1234), Some((9, ExitCause::OutOfMemory)));
        assert_eq!(table.exit_of(4321), None);
    }
}
