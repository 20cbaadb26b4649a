//! The counters and gauges behind `rust_status`: one table that every
//! nginx worker writes and any of them reads, so that the status page adds
//! up all workers (as nginx's `stub_status` does) and answers from memory,
//! never from an app's queue.
//!
//! Like the pools' table (`pool::slots`), it is one anonymous `MAP_SHARED`
//! mapping ([`crate::os::shared_zeroed`]) made in nginx's master before it
//! forks anything, so it outlives reloads: counters keep
//! counting across generations of workers, as Prometheus expects of them.
//! Every field is an atomic: the writers are other processes and threads.
//!
//! - [`Worker`]: one per live nginx worker, claimed at its start, given
//!   back at its exit: its Python threads and its ASGI loop (gauges).
//! - [`App`]: one per app label (an app file, a CGI program, a pool's app),
//!   found by name: requests, responses by status class, timeouts, time in
//!   the app as a histogram, reloads.
//! - [`Cgi`]: programs running, spawned, process groups killed.
//!
//! Only nginx workers write (a pool process inherits the mapping but
//! claims no worker, and [`mine`] is None there): what runs in a pool is
//! counted by the nginx worker that sent it the request.

use std::cell::RefCell;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, Ordering::*};

use rustc_hash::FxHashMap;

/// nginx workers at once (every generation still running, during
/// reloads); a worker beyond them still counts its requests, but is not
/// listed.
pub const MAX_WORKERS: usize = 256;
/// Distinct app labels; more share the last entry, labelled "(other)".
pub const MAX_APPS: usize = 128;
const LABEL_MAX: usize = 240;
const SHORT_MAX: usize = 64;
/// Enqueue times kept per worker, to tell the oldest queued job's wait.
const RING: usize = 256;
/// Upper bounds of the time-in-app histogram's buckets, in ms (Prometheus'
/// default buckets, and 30 s); a last one counts everything.
pub const BUCKETS_MS: [u64; 12] = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000];
const MAGIC: u64 = 0x7275_7374_6d65_7472;

#[repr(C)]
pub struct Table {
    magic: AtomicU64,
    /// Held (by a pid) while an app entry is being claimed.
    claiming: AtomicU32,
    pub workers: [Worker; MAX_WORKERS],
    pub apps: [App; MAX_APPS],
    pub cgi: Cgi,
}

#[repr(C)]
pub struct Worker {
    /// 0: free.
    pub pid: AtomicU32,
    /// When the process started (see [`crate::os::process_started`]): a
    /// later process with the same pid is not this worker.
    process_started: AtomicU64,
    pub started_ms: AtomicU64,
    /// WSGI's Python threads in this worker, and those running a request.
    pub threads: AtomicU32,
    pub busy: AtomicU32,
    /// Requests handed to the threads so far, and taken by one so far: the
    /// difference is the queue.
    pub queued: AtomicU64,
    pub taken: AtomicU64,
    /// When request number `n` was queued: `enqueued_ms[n % RING]`.
    enqueued_ms: [AtomicU64; RING],
    /// 1 while this worker's ASGI event loop runs.
    pub loop_running: AtomicU32,
    /// asyncio tasks on the loop, at its last tick.
    pub tasks: AtomicU32,
    /// WebSockets open through this worker (embedded or to a pool).
    pub websockets: AtomicU32,
    /// How late the loop's last tick ran, in µs; and when the next one is
    /// due (a loop that is stuck is late by at least now minus that).
    pub lag_us: AtomicU64,
    pub tick_due_ms: AtomicU64,
    /// Ticks so far: a reader can wait for a reading newer than an event.
    pub ticks: AtomicU64,
    /// CGI programs this worker runs (a gauge per worker, so that a worker
    /// that dies takes its count with it).
    pub cgi_running: AtomicU32,
}

#[repr(C)]
pub struct App {
    used: AtomicU32,
    label_len: AtomicU32,
    label: [AtomicU8; LABEL_MAX],
    interface_len: AtomicU32,
    interface: [AtomicU8; SHORT_MAX],
    pool_len: AtomicU32,
    pool: [AtomicU8; SHORT_MAX],
    pub requests: AtomicU64,
    /// Responses by status class: 1xx to 5xx.
    pub classes: [AtomicU64; 5],
    /// Requests the app took too long for (504, or a cut response).
    pub timeouts: AtomicU64,
    /// Time in the app, by bucket (not cumulative here), and its sum.
    pub buckets: [AtomicU64; BUCKETS_MS.len() + 1],
    pub sum_ms: AtomicU64,
    pub reloads: AtomicU64,
    pub reload_failures: AtomicU64,
}

#[repr(C)]
pub struct Cgi {
    /// Programs whose exec succeeded.
    pub spawned: AtomicU64,
    /// Process groups that outlived their grace and got SIGKILL.
    pub killed_groups: AtomicU64,
}

static TABLE: AtomicPtr<Table> = AtomicPtr::new(std::ptr::null_mut());
/// This process's worker entry (nginx workers only).
static MINE: AtomicPtr<Worker> = AtomicPtr::new(std::ptr::null_mut());
/// This process is an nginx worker: it counts requests (even without an
/// entry of its own, when every entry is taken).
static COUNTING: AtomicBool = AtomicBool::new(false);

/// The table, once [`create`] ran in this process or an ancestor.
pub fn table() -> Option<&'static Table> {
    // SAFETY: null, or the mapping `create` made, which is never unmapped.
    NonNull::new(TABLE.load(Acquire)).map(|p| unsafe { &*p.as_ptr() })
}

/// Maps the table (zeroed), once per process tree: in nginx's master,
/// before it forks.
pub fn create() -> std::io::Result<&'static Table> {
    if let Some(table) = table() {
        return Ok(table);
    }
    // SAFETY: the Table is atomics only, and zeroed atomics are valid.
    let table: &'static Table = unsafe { crate::os::shared_zeroed()? };
    TABLE.store(table as *const Table as *mut Table, Release);
    table.magic.store(MAGIC, Release);
    Ok(table)
}

/// This worker's entry, once [`claim_worker`] ran.
pub fn mine() -> Option<&'static Worker> {
    // SAFETY: null, or an entry of the table, which is never unmapped.
    NonNull::new(MINE.load(Acquire)).map(|p| unsafe { &*p.as_ptr() })
}

/// Takes a worker entry for this process (an nginx worker starting): a
/// free one, or one whose worker died without giving it back (kill -9),
/// found by its pid and start time. False if every entry is taken (the
/// worker still counts its requests; it is not listed).
pub fn claim_worker() -> bool {
    COUNTING.store(true, Release);
    let Some(table) = table() else { return true };
    let pid = std::process::id();
    let started = crate::os::process_started(pid).unwrap_or(0);
    for entry in &table.workers {
        let old = entry.pid.load(Acquire);
        // CLAIMING while the start time is written: a worker starting at
        // the same moment must not take the entry for a dead one meanwhile.
        if old != CLAIMING && (old == 0 || !entry.alive(old)) && entry.pid.compare_exchange(old, CLAIMING, AcqRel, Acquire).is_ok() {
            entry.reset();
            entry.process_started.store(started, Release);
            entry.pid.store(pid, Release);
            MINE.store(entry as *const Worker as *mut Worker, Release);
            return true;
        }
    }
    false
}

/// A worker entry's pid while it is being claimed.
const CLAIMING: u32 = u32::MAX;

/// Gives this worker's entry back (its exit).
pub fn release_worker() {
    if let Some(entry) = mine() {
        MINE.store(std::ptr::null_mut(), Release);
        entry.reset();
        entry.pid.store(0, Release);
    }
}

impl Worker {
    /// Whether the process holding it (`pid`) is the worker that claimed
    /// it, and runs.
    fn alive(&self, pid: u32) -> bool {
        pid != 0 && pid != CLAIMING && crate::os::process_started(pid).is_some_and(|s| s == self.process_started.load(Acquire))
    }

    fn reset(&self) {
        self.started_ms.store(crate::os::monotonic_ms(), Relaxed);
        for gauge in [&self.threads, &self.busy, &self.loop_running, &self.tasks, &self.websockets, &self.cgi_running] {
            gauge.store(0, Relaxed);
        }
        for counter in [&self.queued, &self.taken, &self.lag_us, &self.tick_due_ms, &self.ticks] {
            counter.store(0, Relaxed);
        }
    }

    /// A request joins the threads' queue (nginx thread).
    pub fn enqueued(&self, now_ms: u64) {
        let n = self.queued.load(Relaxed);
        self.enqueued_ms[n as usize % RING].store(now_ms, Relaxed);
        self.queued.store(n + 1, Release);
    }

    /// A thread took a request from the queue.
    pub fn dequeued(&self) {
        self.taken.fetch_add(1, Relaxed);
    }

    /// Requests waiting for a thread, and how long the first of them has
    /// (ms; 0 when none waits).
    pub fn queue(&self, now_ms: u64) -> (u64, u64) {
        let queued = self.queued.load(Acquire);
        let taken = self.taken.load(Relaxed).min(queued);
        let waiting = queued - taken;
        if waiting == 0 {
            return (0, 0);
        }
        // Beyond the ring, the oldest kept time is a lower bound.
        let oldest = taken.max(queued.saturating_sub(RING as u64));
        let at = self.enqueued_ms[oldest as usize % RING].load(Relaxed);
        (waiting, now_ms.saturating_sub(at))
    }

    /// The loop's lag: its last tick's, or more while its next is overdue.
    pub fn loop_lag_ms(&self, now_ms: u64) -> f64 {
        let measured = self.lag_us.load(Relaxed) as f64 / 1000.0;
        let due = self.tick_due_ms.load(Relaxed);
        if due == 0 {
            return measured;
        }
        measured.max(now_ms.saturating_sub(due) as f64)
    }
}

/// One unit of a gauge of this worker's entry, held until dropped. If the
/// worker gave its entry back meanwhile (a thread still in app code at
/// exit), the entry may be another worker's: the drop leaves it alone.
pub struct Held {
    worker: &'static Worker,
    pid: u32,
    gauge: fn(&Worker) -> &AtomicU32,
}

impl Held {
    fn take(gauge: fn(&Worker) -> &AtomicU32) -> Option<Held> {
        let worker = mine()?;
        gauge(worker).fetch_add(1, Relaxed);
        Some(Held { worker, pid: std::process::id(), gauge })
    }

    /// A Python thread runs a request (WSGI), from taking it off the
    /// queue to its end.
    pub fn busy_thread() -> Option<Held> {
        if let Some(worker) = mine() {
            worker.dequeued();
        }
        Held::take(|w| &w.busy)
    }

    /// An open WebSocket, from its 101 on.
    pub fn websocket() -> Option<Held> {
        Held::take(|w| &w.websockets)
    }

    /// A CGI program, until its exit is seen.
    pub fn cgi_program() -> Option<Held> {
        Held::take(|w| &w.cgi_running)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.worker.pid.load(Acquire) == self.pid {
            (self.gauge)(self.worker).fetch_sub(1, Relaxed);
        }
    }
}

/// The ASGI loop's tick (at its start, then every [`TICK_S`]): its
/// tasks, and how late the tick ran.
pub const TICK_S: f64 = 1.0;

pub fn loop_tick(tasks: usize, late_s: f64) {
    if let Some(worker) = mine() {
        worker.tasks.store(tasks as u32, Relaxed);
        worker.lag_us.store((late_s.max(0.0) * 1e6) as u64, Relaxed);
        worker.tick_due_ms.store(crate::os::monotonic_ms() + (TICK_S * 1000.0) as u64, Relaxed);
        worker.loop_running.store(1, Relaxed);
        worker.ticks.fetch_add(1, Release);
    }
}

/// The live workers' entries.
pub fn workers(table: &Table) -> impl Iterator<Item = &Worker> {
    table.workers.iter().filter(|w| w.alive(w.pid.load(Acquire)))
}

fn write_bytes(len: &AtomicU32, buf: &[AtomicU8], bytes: &[u8]) {
    let n = bytes.len().min(buf.len());
    for (cell, &b) in buf.iter().zip(&bytes[..n]) {
        cell.store(b, Relaxed);
    }
    len.store(n as u32, Release);
}

fn read_text(len: &AtomicU32, buf: &[AtomicU8]) -> String {
    let n = (len.load(Acquire) as usize).min(buf.len());
    let bytes: Vec<u8> = buf[..n].iter().map(|c| c.load(Relaxed)).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn same(len: &AtomicU32, buf: &[AtomicU8], text: &str) -> bool {
    let bytes = text.as_bytes();
    len.load(Acquire) as usize == bytes.len() && buf.iter().zip(bytes).all(|(c, &b)| c.load(Relaxed) == b)
}

/// What names an app entry: its label (`$rust_app`), the interface that
/// serves it (wsgi, asgi, cgi, fastcgi) and its pool, if any.
#[derive(Clone, Copy, Hash, Debug)]
pub struct AppKey<'a> {
    pub label: &'a str,
    pub interface: &'static str,
    pub pool: &'static str,
}

impl App {
    fn is(&self, key: &AppKey<'_>) -> bool {
        self.used.load(Acquire) != 0
            && same(&self.label_len, &self.label, key.label)
            && same(&self.interface_len, &self.interface, key.interface)
            && same(&self.pool_len, &self.pool, key.pool)
    }

    pub fn key(&self) -> Option<(String, String, String)> {
        (self.used.load(Acquire) != 0).then(|| {
            (read_text(&self.label_len, &self.label), read_text(&self.interface_len, &self.interface), read_text(&self.pool_len, &self.pool))
        })
    }

    /// A response with `status`, after `app_ms` in the app (None: it
    /// never reached the app, and the histogram leaves it out).
    pub fn served(&self, status: u16, app_ms: Option<u64>, timed_out: bool) {
        self.requests.fetch_add(1, Relaxed);
        if let Some(class) = self.classes.get((status / 100).wrapping_sub(1) as usize) {
            class.fetch_add(1, Relaxed);
        }
        if timed_out {
            self.timeouts.fetch_add(1, Relaxed);
        }
        if let Some(ms) = app_ms {
            let bucket = BUCKETS_MS.iter().position(|&le| ms <= le).unwrap_or(BUCKETS_MS.len());
            self.buckets[bucket].fetch_add(1, Relaxed);
            self.sum_ms.fetch_add(ms, Relaxed);
        }
    }
}

impl Table {
    /// The entry for `key`, made if new. Makers take turns (a brief lock,
    /// held by pid, broken if its holder is gone), so two workers cannot
    /// make two entries for one app. None if the lock stays taken (its
    /// holder stopped): nginx's thread does not wait for it, and that
    /// request goes uncounted.
    fn app_index(&self, key: &AppKey<'_>) -> Option<usize> {
        if let Some(i) = self.apps.iter().position(|a| a.is(key)) {
            return Some(i);
        }
        let pid = std::process::id();
        let mut tries = 0;
        loop {
            let holder = self.claiming.load(Acquire);
            if (holder == 0 || (holder != pid && crate::os::pid_gone(holder))) && self.claiming.compare_exchange(holder, pid, AcqRel, Acquire).is_ok() {
                break;
            }
            tries += 1;
            if tries > 1000 {
                return None;
            }
            std::thread::yield_now();
        }
        let index = match self.apps.iter().position(|a| a.is(key)) {
            Some(i) => i,
            None => match self.apps[..MAX_APPS - 1].iter().position(|a| a.used.load(Acquire) == 0) {
                Some(i) => {
                    let app = &self.apps[i];
                    write_bytes(&app.label_len, &app.label, key.label.as_bytes());
                    write_bytes(&app.interface_len, &app.interface, key.interface.as_bytes());
                    write_bytes(&app.pool_len, &app.pool, key.pool.as_bytes());
                    app.used.store(1, Release);
                    i
                }
                None => {
                    let last = &self.apps[MAX_APPS - 1];
                    if last.used.load(Acquire) == 0 {
                        write_bytes(&last.label_len, &last.label, b"(other)");
                        last.used.store(1, Release);
                    }
                    MAX_APPS - 1
                }
            },
        };
        self.claiming.store(0, Release);
        Some(index)
    }
}

thread_local! {
    /// Entries this thread found already, by their key's hash: a request
    /// finds its app without allocating, scanning the table or comparing
    /// its label byte by byte in shared memory. An entry once made is never
    /// reused for another app, so what was found stays right; only two
    /// labels with one 64-bit hash would share an entry (and its counts).
    static FOUND: RefCell<FxHashMap<u64, usize>> = RefCell::new(FxHashMap::default());
}

/// The entry of `key`, in an nginx worker (None elsewhere: see the
/// module's doc).
pub fn app(key: &AppKey<'_>) -> Option<&'static App> {
    if !COUNTING.load(Relaxed) {
        return None;
    }
    let table = table()?;
    let key = &AppKey { label: cut(key.label, LABEL_MAX), interface: cut(key.interface, SHORT_MAX), pool: cut(key.pool, SHORT_MAX) };
    let hash = {
        use std::hash::{Hash, Hasher};
        let mut hasher = rustc_hash::FxHasher::default();
        key.hash(&mut hasher);
        hasher.finish()
    };
    let found = FOUND.with(|f| f.borrow().get(&hash).copied());
    let i = match found {
        Some(i) => i,
        None => {
            let i = table.app_index(key)?;
            FOUND.with(|f| f.borrow_mut().insert(hash, i));
            i
        }
    };
    Some(&table.apps[i])
}

/// The app entry of a label, with the interface named by its directive
/// (`rust_wsgi` is "wsgi").
pub fn app_of(label: &str, directive: &'static str, pool: &'static str) -> Option<&'static App> {
    app(&AppKey { label, interface: interface_of(directive), pool })
}

pub fn interface_of(directive: &'static str) -> &'static str {
    match directive {
        "rust_wsgi" => "wsgi",
        "rust_asgi" => "asgi",
        "rust_cgi" => "cgi",
        "rust_fastcgi_pass" => "fastcgi",
        other => other.strip_prefix("rust_").unwrap_or(other),
    }
}

/// An app reloaded after its file changed (`ok`), or failed to.
pub fn reloaded(label: &str, directive: &'static str, ok: bool) {
    if let Some(app) = app_of(label, directive, "") {
        if ok { &app.reloads } else { &app.reload_failures }.fetch_add(1, Relaxed);
    }
}

/// A label value in the Prometheus text format.
pub fn escape_label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// One metric family in the Prometheus text format, appended to `out`:
/// its HELP and TYPE lines, then a sample per (labels, value), the labels
/// written out already (`pool="a",pid="1"`) or empty.
pub fn prometheus_family(out: &mut String, name: &str, kind: &str, help: &str, samples: impl IntoIterator<Item = (String, f64)>) {
    use std::fmt::Write;
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, value) in samples {
        let _ = if labels.is_empty() { writeln!(out, "{name} {value}") } else { writeln!(out, "{name}{{{labels}}} {value}") };
    }
}

/// CGI's counters, in an nginx worker.
pub fn cgi() -> Option<&'static Cgi> {
    COUNTING.load(Relaxed).then(table).flatten().map(|t| &t.cgi)
}

/// `text`, cut to at most `max` bytes at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_cut_between_characters() {
        assert_eq!(cut("abc", 2), "ab");
        assert_eq!(cut("aé", 2), "a");
        assert_eq!(cut("aé", 3), "aé");
    }

    #[test]
    fn the_queue_and_its_oldest_wait() {
        let table = create().expect("mmap");
        let w = &table.workers[MAX_WORKERS - 1];
        w.reset();
        assert_eq!(w.queue(1000), (0, 0));
        w.enqueued(100);
        w.enqueued(150);
        assert_eq!(w.queue(1000), (2, 900));
        w.dequeued();
        assert_eq!(w.queue(1000), (1, 850));
        w.dequeued();
        assert_eq!(w.queue(1000), (0, 0));
    }

    #[test]
    fn apps_are_found_by_name_and_bucketed() {
        let table = create().expect("mmap");
        let key = AppKey { label: "/srv/a.py", interface: "wsgi", pool: "" };
        let i = table.app_index(&key).expect("made");
        assert_eq!(table.app_index(&key), Some(i));
        let other = AppKey { label: "/srv/a.py", interface: "asgi", pool: "" };
        assert_ne!(table.app_index(&other), Some(i));
        let app = &table.apps[i];
        app.served(200, Some(3), false);
        app.served(503, Some(7000), true);
        app.served(404, Some(100_000), false);
        app.served(504, None, true);
        assert_eq!(app.requests.load(Relaxed), 4);
        assert_eq!(app.classes[1].load(Relaxed), 1);
        assert_eq!(app.classes[3].load(Relaxed), 1);
        assert_eq!(app.classes[4].load(Relaxed), 2);
        assert_eq!(app.timeouts.load(Relaxed), 2);
        assert_eq!(app.buckets[0].load(Relaxed), 1);
        assert_eq!(app.buckets[10].load(Relaxed), 1);
        assert_eq!(app.buckets[12].load(Relaxed), 1);
        assert_eq!(app.sum_ms.load(Relaxed), 107_003);
        assert_eq!(app.key(), Some(("/srv/a.py".into(), "wsgi".into(), "".into())));
    }
}
