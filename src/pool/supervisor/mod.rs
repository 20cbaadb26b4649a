//! The pool supervisor: a single-threaded process forked from nginx's
//! master (see [`crate::pool::master`]) that starts, watches, recycles and stops
//! the pool processes.
//!
//! Runs in the supervisor.
//!
//! It is the only process that forks them, and it never runs Python, so a
//! pool process never starts as a copy of a process with Python threads.
//! It blocks in poll(2) on: the master's pipe (new plans; its end means
//! nginx is gone), nginx's channel (quit, stop), a signalfd (SIGTERM,
//! SIGQUIT), each process's pidfd (its exit), its stderr (log lines) and
//! its control pipe ("ready"). Its state is mirrored into the shared
//! [`slots`] table, which is how nginx workers find processes.
//!
//! Replacement is always rolling: a process is retired (new configuration,
//! recycling) only once a successor for it is ready, so a pool keeps at
//! least N-1 processes serving. A process that dies before it is ready, or
//! soon after, backs off exponentially; three in a row put the pool in a
//! crash loop, logged as such, and nginx answers 503 instead of waiting.

pub mod spawn;

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant, SystemTime};

use crate::pool::conf::PoolSpec;
use crate::pool::log::ErrorLog;
use crate::pool::master::Plan;
use crate::pool::slots::{self, describe, ExitCause, State, Table};
use crate::nginx::log::Level;
use crate::os;
use crate::python::apps::Reload;

/// A process that dies sooner than this after its start counts towards a
/// crash loop.
const QUICK: Duration = Duration::from_secs(5);
/// Quick deaths in a row that make a crash loop.
const CRASH_LOOP: u32 = 3;
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// How long a process told to stop may take before SIGKILL, beyond the
/// pool's request timeout while it drains.
const STOP_GRACE: Duration = Duration::from_secs(3);
/// RSS and lifetime checks.
const TICK: Duration = Duration::from_secs(1);
/// How long a new program process has to answer FCGI_GET_VALUES before it
/// is taken as ready for one request at a time (fcgiwrap, Perl's FCGI and
/// other libfcgi programs answer only within a request).
const PROBE_WAIT: Duration = Duration::from_millis(500);
/// How often a draining program process is looked at until its last
/// request is over (it is told to stop only then: a FastCGI program may
/// end a request it is serving when it gets SIGTERM).
const IDLE_CHECK: Duration = Duration::from_millis(20);
/// How often a pool whose size follows demand is looked at: whether
/// requests wait, and which processes are idle.
const SCALE_CHECK: Duration = Duration::from_millis(20);
/// New processes for waiting requests start one at a time (the next once
/// the last is ready) and at least this far apart, so that a burst does
/// not fork a pool's maximum at once.
const SCALE_UP_GAP: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Starting,
    Ready,
    /// Told to finish its requests and exit.
    Draining,
}

struct Proc {
    pid: libc::pid_t,
    slot: usize,
    pool: String,
    generation: u64,
    phase: Phase,
    started: Instant,
    /// Replace it (recycling) as soon as a successor is ready.
    retire: Option<String>,
    /// SIGKILL at this time, once told to stop.
    kill_at: Option<Instant>,
    /// The supervisor stopped it: its end is no failure.
    stopped: bool,
    /// Requests after which it is recycled (max_requests with jitter).
    request_limit: u64,
    pidfd: OwnedFd,
    output: Option<OwnedFd>,
    control: Option<OwnedFd>,
    partial: Vec<u8>,
    /// A program process: asked FCGI_GET_VALUES as it starts.
    probe: Option<Probe>,
    /// A program process told to drain: SIGTERM once its requests are over.
    term_when_idle: bool,
    /// Since when it has had no request (as last looked at), and its count
    /// of requests then: a pool that scales stops processes idle too long.
    idle_since: Option<Instant>,
    last_served: u64,
}

/// The question a new program process is asked: how many requests it
/// takes at once. Its answer (or its silence) makes it ready.
struct Probe {
    /// None once the program closed it without answering: it is then
    /// taken as ready at `until` if it still runs (a program that exits at
    /// once must not look ready: that would hide a crash loop).
    conn: Option<OwnedFd>,
    until: Instant,
    answer: crate::pool::fastcgi::Decoder,
}

impl Probe {
    /// Connects to the process's socket (it listens already: the
    /// supervisor made the socket) and asks.
    fn start(address: &[u8]) -> std::io::Result<Probe> {
        use crate::pool::fastcgi as fcgi;
        let conn = slots::connect(address)?;
        let mut question = Vec::new();
        fcgi::push_get_values(&mut question, &[fcgi::MAX_CONNS, fcgi::MAX_REQS, fcgi::MPXS_CONNS]);
        // A few dozen bytes into an empty socket buffer.
        os::send(conn.as_raw_fd(), &question)?;
        Ok(Probe { conn: Some(conn), until: Instant::now() + PROBE_WAIT, answer: crate::pool::fastcgi::Decoder::new() })
    }

    /// Reads what arrived: Some(capacity) once answered; a connection
    /// closed or broken without an answer is let go (see `conn`).
    fn read(&mut self) -> Option<u32> {
        use crate::pool::fastcgi as fcgi;
        let fd = self.conn.as_ref()?.as_raw_fd();
        match self.answer.read_from(fd) {
            Ok(1..) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return None,
            Ok(0) | Err(_) => {
                self.conn = None;
                return None;
            }
        }
        loop {
            match self.answer.next_record() {
                Ok(Some(record)) if record.kind == fcgi::GET_VALUES_RESULT => return Some(fcgi::capacity_of(&record.content)),
                Ok(Some(_)) => {}
                Ok(None) => return None,
                Err(_) => {
                    self.conn = None;
                    return None;
                }
            }
        }
    }
}

struct Pool {
    spec: PoolSpec,
    index: usize,
    /// Bumped by a new configuration or new code: processes of older
    /// generations are replaced, one by one.
    generation: u64,
    /// The newest mtime of the pool's code, as last seen.
    code: Option<SystemTime>,
    /// This generation failed to import while older processes still serve:
    /// they go on, and nothing new starts until the code changes again.
    broken: bool,
    /// Quick deaths in a row.
    failures: u32,
    /// No new process before this (backoff).
    next_start: Instant,
    /// The processes it runs now: `processes` for a static pool; between
    /// `min_processes` and `processes` for one that scales.
    wanted: usize,
    /// When it last grew for waiting requests.
    grown_at: Instant,
}

struct Supervisor {
    table: &'static Table,
    /// The master's plan pipe; None once the pools are stopping.
    channel: Option<OwnedFd>,
    /// nginx's own channel to this process, as to each of its processes.
    nginx: Option<OwnedFd>,
    /// SIGTERM to the supervisor itself: stop like when nginx is gone.
    signals: Option<OwnedFd>,
    inbox: Vec<u8>,
    log: ErrorLog,
    plan: Option<Plan>,
    pools: Vec<Pool>,
    procs: Vec<Proc>,
    next_tick: Instant,
    seed: u64,
}

/// The supervisor's life; never returns.
pub fn run(table: &'static Table, channel: OwnedFd, nginx: Option<OwnedFd>, plan: Option<Plan>) -> ! {
    let (channel, nginx, signals) = spawn::become_supervisor(channel, nginx);
    // The processes a dead supervisor left in the table died with it.
    table.forget_processes();
    // SAFETY: plain syscall.
    let me = unsafe { libc::getpid() } as u32;
    table.supervisor.store(me, std::sync::atomic::Ordering::Release);
    spawn::remove_program_dirs(me);
    table.program_token.store(0, std::sync::atomic::Ordering::Release);
    let mut sup = Supervisor {
        table,
        channel: Some(channel),
        nginx,
        signals,
        inbox: Vec::new(),
        log: ErrorLog::stderr(),
        plan: None,
        pools: Vec::new(),
        procs: Vec::new(),
        next_tick: Instant::now() + TICK,
        seed: slots::unix_ms(),
    };
    if let Some(plan) = plan {
        sup.apply(plan);
    }
    loop {
        sup.reconcile();
        if sup.channel.is_none() && sup.procs.is_empty() {
            spawn::remove_program_dirs(me);
            // SAFETY: nothing of ours is left to clean up.
            unsafe { libc::_exit(0) }
        }
        sup.wait();
    }
}

impl Supervisor {
    /// Blocks until something happens or the next deadline, and handles it.
    fn wait(&mut self) {
        let now = Instant::now();
        let mut deadline = self.next_tick;
        for pool in &self.pools {
            if pool.next_start > now {
                deadline = deadline.min(pool.next_start);
            }
        }
        for proc in &self.procs {
            if let Some(at) = proc.kill_at {
                deadline = deadline.min(at);
            }
            if let Some(probe) = &proc.probe {
                deadline = deadline.min(probe.until);
            }
            if proc.term_when_idle {
                deadline = deadline.min(now + IDLE_CHECK);
            }
        }
        if self.pools.iter().any(|p| p.spec.scales()) {
            deadline = deadline.min(now + SCALE_CHECK);
        }
        let timeout = deadline.saturating_duration_since(now).as_millis().min(i32::MAX as u128) as i32;

        let mut fds: Vec<libc::pollfd> = Vec::new();
        let poll = |fd: RawFd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        fds.push(poll(self.signals.as_ref().map_or(-1, |s| s.as_raw_fd())));
        if let Some(channel) = &self.channel {
            fds.push(poll(channel.as_raw_fd()));
        }
        let nginx_at = fds.len();
        fds.push(poll(self.nginx.as_ref().map_or(-1, |c| c.as_raw_fd())));
        for proc in &self.procs {
            fds.push(poll(proc.pidfd.as_raw_fd()));
            fds.push(poll(proc.output.as_ref().map_or(-1, |f| f.as_raw_fd())));
            fds.push(poll(proc.control.as_ref().map_or(-1, |f| f.as_raw_fd())));
            fds.push(poll(proc.probe.as_ref().and_then(|p| p.conn.as_ref()).map_or(-1, |c| c.as_raw_fd())));
        }
        // Negative fds are skipped.
        if crate::os::poll(&mut fds, timeout).is_err() {
            return;
        }
        let ready = |i: usize| fds.get(i).is_some_and(|p| p.revents != 0);
        let at = nginx_at + 1;
        if self.channel.is_some() && ready(1) {
            self.read_channel();
        }
        if ready(nginx_at) {
            self.read_nginx_channel();
        }
        if ready(0) {
            self.signals = None;
            self.stop("got SIGTERM or SIGQUIT");
        }
        // Handle by pid: handling one may remove others from the list.
        let pids: Vec<(libc::pid_t, [bool; 4])> =
            self.procs.iter().enumerate().map(|(i, p)| (p.pid, [0, 1, 2, 3].map(|k| ready(at + 4 * i + k)))).collect();
        for (pid, [exited, output, control, probe]) in pids {
            if output {
                self.read_output(pid, false);
            }
            if control {
                self.read_control(pid);
            }
            if probe {
                self.read_probe(pid);
            }
            if exited {
                self.reap(pid);
            }
        }
        let now = Instant::now();
        self.check_programs(now);
        self.scale(now);
        if now >= self.next_tick {
            self.next_tick = now + TICK;
            self.tick();
        }
        for proc in &mut self.procs {
            if proc.kill_at.is_some_and(|at| at <= now) {
                proc.kill_at = None;
                self.log.write(Level::Warn, &format!("rust_pool \"{}\": process {} did not stop in time; sending SIGKILL", proc.pool, proc.pid));
                // SAFETY: our own child's process group.
                unsafe { libc::kill(-proc.pid, libc::SIGKILL) };
            }
        }
    }

    /// Stops the pools and, once they are gone, the supervisor.
    fn stop(&mut self, why: &str) {
        if self.channel.take().is_some() {
            self.log.write(Level::Notice, &format!("rust_pool: the supervisor {why}; stopping the pools"));
            self.shutdown();
        }
    }

    /// What nginx's master says to all its processes: quit and terminate
    /// stop the pools; descriptors of other processes' channels, which it
    /// passes along to everyone, are closed unread.
    fn read_nginx_channel(&mut self) {
        let Some(fd) = self.nginx.as_ref().map(AsRawFd::as_raw_fd) else { return };
        loop {
            match os::read_nginx_channel(fd) {
                Ok(Some(command)) => match command as u32 {
                    nginx_sys::NGX_CMD_QUIT => self.stop("was told to quit"),
                    nginx_sys::NGX_CMD_TERMINATE => self.stop("was told to stop"),
                    _ => {}
                },
                Ok(None) => return,
                Err(_) => {
                    // The master and every worker closed it; the plan
                    // pipe says what that means.
                    self.nginx = None;
                    return;
                }
            }
        }
    }

    fn read_channel(&mut self) {
        let Some(channel) = &self.channel else { return };
        let mut buf = [0u8; 65536];
        let Ok(n @ 1..) = crate::os::read(channel.as_raw_fd(), &mut buf) else {
            // nginx's master is gone: stop everything.
            self.channel = None;
            self.shutdown();
            return;
        };
        self.inbox.extend_from_slice(&buf[..n]);
        while self.inbox.len() >= 4 {
            let len = u32::from_le_bytes([self.inbox[0], self.inbox[1], self.inbox[2], self.inbox[3]]) as usize;
            if self.inbox.len() < 4 + len {
                break;
            }
            let message: Vec<u8> = self.inbox.drain(..4 + len).skip(4).collect();
            match serde_json::from_slice::<Plan>(&message) {
                // Queued while no supervisor ran; this one began with a
                // newer plan.
                Ok(plan) if self.plan.as_ref().is_some_and(|p| p.generation >= plan.generation) => {}
                Ok(plan) => self.apply(plan),
                Err(e) => self.log.write(Level::Alert, &format!("rust_pool: the supervisor got a plan it cannot read: {e}")),
            }
        }
    }

    /// A new configuration: new pools start, changed pools roll over to a
    /// new generation, removed pools drain.
    fn apply(&mut self, plan: Plan) {
        self.log = ErrorLog::new(plan.error_log.clone(), plan.log_level);
        spawn::redirect_stderr(plan.error_log.as_deref());
        for spec in &plan.pools {
            match self.pools.iter_mut().find(|p| p.spec.name == spec.name) {
                Some(pool) if pool.spec == *spec => {}
                Some(pool) => {
                    let rolling = same_except_count(&pool.spec, spec);
                    pool.wanted = if spec.scales() { pool.wanted.clamp(spec.min_processes as usize, spec.processes as usize) } else { spec.processes as usize };
                    pool.spec = spec.clone();
                    pool.failures = 0;
                    if !rolling {
                        pool.generation += 1;
                        pool.broken = false;
                        pool.code = code_mtime(spec);
                        self.log.write(Level::Notice, &format!("rust_pool \"{}\": configuration changed; replacing its processes one by one", spec.name));
                    }
                }
                None => {
                    let Some(index) = self.table.pool_index_or_add(&spec.name) else {
                        self.log.write(Level::Alert, &format!("rust_pool \"{}\": no room in the pool table", spec.name));
                        continue;
                    };
                    let code = code_mtime(spec);
                    self.pools.push(Pool {
                        spec: spec.clone(),
                        index,
                        generation: 1,
                        code,
                        broken: false,
                        failures: 0,
                        next_start: Instant::now(),
                        wanted: spec.min_processes as usize,
                        grown_at: Instant::now(),
                    });
                }
            }
            if let Some(pool) = self.pools.iter().find(|p| p.spec.name == spec.name) {
                let entry = &self.table.pools[pool.index];
                // A program has no threads of ours (its capacity is per process).
                let threads = if spec.program.is_some() { 0 } else { spec.threads };
                entry.threads.store(threads, std::sync::atomic::Ordering::Relaxed);
                entry.failing.store(0, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let removed: Vec<String> =
            self.pools.iter().filter(|p| !plan.pools.iter().any(|s| s.name == p.spec.name)).map(|p| p.spec.name.clone()).collect();
        for name in removed {
            self.log.write(Level::Notice, &format!("rust_pool \"{name}\": no longer configured; its processes finish their requests and exit"));
            self.pools.retain(|p| p.spec.name != name);
        }
        self.plan = Some(plan);
    }

    /// Brings every pool towards its plan: start what is missing, retire
    /// what a ready successor replaces, drain what no pool wants.
    fn reconcile(&mut self) {
        if self.channel.is_none() {
            return;
        }
        let now = Instant::now();
        // Processes of pools that are gone.
        let orphans: Vec<libc::pid_t> = self
            .procs
            .iter()
            .filter(|p| p.phase != Phase::Draining && !self.pools.iter().any(|pool| pool.spec.name == p.pool))
            .map(|p| p.pid)
            .collect();
        for pid in orphans {
            self.drain(pid, None);
        }
        for i in 0..self.pools.len() {
            let (name, generation, want) = {
                let pool = &self.pools[i];
                (pool.spec.name.clone(), pool.generation, pool.wanted)
            };
            let current = |p: &Proc| p.pool == name && p.generation == generation && p.retire.is_none() && p.phase != Phase::Draining;
            let live: Vec<&Proc> = self.procs.iter().filter(|p| current(p)).collect();
            let ready = live.iter().filter(|p| p.phase == Phase::Ready).count();
            let starting = live.iter().filter(|p| p.phase == Phase::Starting).count();
            let outgoing: Vec<libc::pid_t> = self
                .procs
                .iter()
                .filter(|p| p.pool == name && !current(p) && p.phase != Phase::Draining)
                .map(|p| p.pid)
                .collect();

            // Retire old processes as successors become ready, keeping
            // `want` serving.
            let keep_old = want.saturating_sub(ready);
            for &pid in outgoing.iter().skip(keep_old) {
                let why = self.procs.iter().find(|p| p.pid == pid).and_then(|p| p.retire.clone());
                self.drain(pid, why);
            }
            // More than wanted (the count went down): the newest go.
            if ready + starting > want {
                let extra: Vec<libc::pid_t> = self.procs.iter().filter(|p| current(p)).map(|p| p.pid).rev().take(ready + starting - want).collect();
                for pid in extra {
                    self.drain(pid, Some("the pool's process count went down".into()));
                }
            }
            // Start what is missing: one at a time while replacing (memory),
            // or while backing off after failures.
            let missing = if self.pools[i].broken && !outgoing.is_empty() { 0 } else { want.saturating_sub(ready + starting) };
            let careful = !outgoing.is_empty() || self.pools[i].failures > 0;
            let allowed = if careful { usize::from(starting == 0).min(missing) } else { missing };
            if allowed > 0 && self.pools[i].next_start <= now {
                for _ in 0..allowed {
                    self.start(i);
                }
            }
        }
    }

    fn start(&mut self, pool_at: usize) {
        let Some(plan) = &self.plan else { return };
        let pool = &self.pools[pool_at];
        // SAFETY: plain syscall.
        let me = unsafe { libc::getpid() } as u32;
        let Some(slot) = self.table.claim(pool.index, 0) else {
            self.log.write(Level::Alert, &format!("rust_pool \"{}\": no free process slot", pool.spec.name));
            return;
        };
        let serial = self.table.slots[slot].serial.load(std::sync::atomic::Ordering::Relaxed);
        let program = pool.spec.program.is_some();
        if program {
            if let Err(e) = spawn::make_program_dir(self.table, me, plan.nginx_gid) {
                self.log.write(Level::Alert, &format!("rust_pool \"{}\": cannot make {}: {e}", pool.spec.name, slots::program_dir(me).display()));
            }
        }
        let name = slots::address(me, slot, serial, program);
        let launch = spawn::Launch { spec: &pool.spec, slot, socket: &name, nginx_uid: plan.nginx_uid, nginx_gid: plan.nginx_gid, env: &plan.env };
        match spawn::spawn(&launch) {
            Ok(child) => {
                self.table.slots[slot].pid.store(child.pid as u32, std::sync::atomic::Ordering::Release);
                let limit = request_limit(&pool.spec, &mut self.seed);
                self.log.write(Level::Info, &format!("rust_pool \"{}\": started process {}", pool.spec.name, child.pid));
                let probe = match program.then(|| Probe::start(&name)) {
                    Some(Ok(probe)) => Some(probe),
                    Some(Err(e)) => {
                        self.log.write(Level::Warn, &format!("rust_pool \"{}\": cannot ask process {} what it takes: {e}", pool.spec.name, child.pid));
                        None
                    }
                    None => None,
                };
                self.procs.push(Proc {
                    pid: child.pid,
                    slot,
                    pool: pool.spec.name.clone(),
                    generation: pool.generation,
                    phase: Phase::Starting,
                    started: Instant::now(),
                    retire: None,
                    kill_at: None,
                    stopped: false,
                    request_limit: limit,
                    pidfd: child.pidfd,
                    output: Some(child.output),
                    control: child.control,
                    partial: Vec::new(),
                    probe,
                    term_when_idle: false,
                    idle_since: None,
                    last_served: 0,
                });
                if program && self.procs.last().is_some_and(|p| p.probe.is_none()) {
                    self.program_ready(child.pid, 1);
                }
            }
            Err(e) => {
                self.table.slots[slot].set_state(State::Empty);
                self.log.write(Level::Alert, &format!("rust_pool \"{}\": cannot start a process: {e}", pool.spec.name));
                let pool = &mut self.pools[pool_at];
                pool.next_start = Instant::now() + BACKOFF_MAX;
            }
        }
    }

    /// Tells a process to finish its requests and exit (SIGTERM), with
    /// SIGKILL after the pool's request timeout and a grace period.
    fn drain(&mut self, pid: libc::pid_t, why: Option<String>) {
        let timeout = |name: &str| {
            self.pools.iter().find(|p| p.spec.name == name).map_or(Duration::ZERO, |p| Duration::from_millis(p.spec.timeout_ms))
        };
        let Some(at) = self.procs.iter().position(|p| p.pid == pid) else { return };
        let grace = timeout(&self.procs[at].pool) + STOP_GRACE;
        let proc = &mut self.procs[at];
        if proc.phase == Phase::Draining {
            return;
        }
        if let Some(why) = why {
            self.log.write(Level::Notice, &format!("rust_pool \"{}\": recycling process {}: {why}", proc.pool, proc.pid));
        }
        proc.phase = Phase::Draining;
        proc.stopped = true;
        proc.kill_at = Some(Instant::now() + grace);
        let program = self.pools.iter().any(|p| p.spec.name == proc.pool && p.spec.program.is_some());
        let slot = &self.table.slots[proc.slot];
        if program && slot.capacity.load(std::sync::atomic::Ordering::Relaxed) > 0 && slot.drain_and_count() > 0 {
            proc.term_when_idle = true;
            return;
        }
        slot.set_state(State::Draining);
        // SAFETY: our own child.
        unsafe { libc::kill(proc.pid, libc::SIGTERM) };
    }

    /// What program processes cannot say themselves: a draining one whose
    /// last request is over is told to stop, and one that a request timed
    /// out on (nginx's worker marked it stuck) is killed and replaced.
    fn check_programs(&mut self, now: Instant) {
        let silent: Vec<libc::pid_t> = self.procs.iter().filter(|p| p.probe.as_ref().is_some_and(|probe| probe.until <= now)).map(|p| p.pid).collect();
        for pid in silent {
            self.program_ready(pid, 1);
        }
        let mut stuck = Vec::new();
        for proc in &mut self.procs {
            let slot = &self.table.slots[proc.slot];
            if proc.term_when_idle && slot.active.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                proc.term_when_idle = false;
                // SAFETY: our own child.
                unsafe { libc::kill(proc.pid, libc::SIGTERM) };
            }
            if slot.stuck.load(std::sync::atomic::Ordering::Relaxed) != 0 && proc.retire.as_deref() != Some("stuck") {
                stuck.push(proc.pid);
            }
        }
        for pid in stuck {
            self.drain(pid, None);
            let Some(proc) = self.procs.iter_mut().find(|p| p.pid == pid) else { continue };
            self.log.write(Level::Warn, &format!("rust_pool \"{}\": process {pid} is stuck in a request past the pool's timeout; killing it", proc.pool));
            proc.term_when_idle = false;
            proc.kill_at = None;
            proc.retire = Some("stuck".into());
            // SAFETY: our own child's process group.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
    }

    /// Pools whose size follows demand: one more process while requests
    /// wait (one at a time, [`SCALE_UP_GAP`] apart), and one fewer when a
    /// process beyond `min_processes` has been idle for `idle_timeout`.
    /// A request waits in nginx's worker for a program (whose processes
    /// take a fixed number) or for a pool with no ready process, and in the
    /// process for a Python thread: both count.
    fn scale(&mut self, now: Instant) {
        use std::sync::atomic::Ordering::Relaxed;
        for proc in &mut self.procs {
            let slot = &self.table.slots[proc.slot];
            let (active, served) = (slot.active.load(Relaxed), slot.served.load(Relaxed));
            if active > 0 {
                proc.idle_since = None;
            } else if served != proc.last_served || proc.idle_since.is_none() {
                proc.idle_since = Some(now);
            }
            proc.last_served = served;
        }
        for i in 0..self.pools.len() {
            let pool = &self.pools[i];
            let spec = &pool.spec;
            let entry = &self.table.pools[pool.index];
            entry.min.store(spec.min_processes, Relaxed);
            entry.max.store(spec.processes, Relaxed);
            entry.wanted.store(pool.wanted as u32, Relaxed);
            if !spec.scales() || self.channel.is_none() {
                continue;
            }
            let mine = |p: &&Proc| p.pool == spec.name && p.phase != Phase::Draining && p.retire.is_none();
            let starting = self.procs.iter().filter(mine).any(|p| p.phase == Phase::Starting);
            let in_processes: usize = if spec.program.is_some() {
                0
            } else {
                self.procs
                    .iter()
                    .filter(mine)
                    .map(|p| (self.table.slots[p.slot].active.load(Relaxed) as usize).saturating_sub(spec.threads as usize))
                    .sum()
            };
            let waiting = entry.waiting.load(Relaxed) as usize + in_processes;
            if waiting > 0 && pool.wanted < spec.processes as usize && !starting && pool.failures == 0 && now >= pool.grown_at + SCALE_UP_GAP {
                let pool = &mut self.pools[i];
                pool.wanted += 1;
                pool.grown_at = now;
                entry.scale_ups.fetch_add(1, Relaxed);
                self.log.write(
                    Level::Info,
                    &format!("rust_pool \"{}\": {waiting} request(s) waiting; growing to {} of {} processes", pool.spec.name, pool.wanted, pool.spec.processes),
                );
                continue;
            }
            if pool.wanted <= spec.min_processes as usize || waiting > 0 {
                continue;
            }
            let idle_for = Duration::from_millis(spec.idle_timeout_ms);
            let longest = self
                .procs
                .iter()
                .filter(mine)
                .filter(|p| p.phase == Phase::Ready)
                .filter_map(|p| Some((p.idle_since?, p.pid)))
                .filter(|(since, _)| now.saturating_duration_since(*since) >= idle_for)
                .min();
            if let Some((_, pid)) = longest {
                let pool = &mut self.pools[i];
                pool.wanted -= 1;
                entry.idle_stops.fetch_add(1, Relaxed);
                self.log.write(
                    Level::Info,
                    &format!("rust_pool \"{}\": process {pid} was idle for {} ms; shrinking to {} processes", pool.spec.name, pool.spec.idle_timeout_ms, pool.wanted),
                );
                self.drain(pid, None);
            }
        }
    }

    fn read_probe(&mut self, pid: libc::pid_t) {
        let Some(proc) = self.procs.iter_mut().find(|p| p.pid == pid) else { return };
        if let Some(capacity) = proc.probe.as_mut().and_then(Probe::read) {
            self.program_ready(pid, capacity);
        }
    }

    /// A program process answered how many requests it takes (or stayed
    /// silent past [`PROBE_WAIT`]): it is ready for that many.
    fn program_ready(&mut self, pid: libc::pid_t, capacity: u32) {
        let Some(at) = self.procs.iter().position(|p| p.pid == pid) else { return };
        self.procs[at].probe = None;
        self.table.slots[self.procs[at].slot].capacity.store(capacity, std::sync::atomic::Ordering::Relaxed);
        self.log.write(Level::Info, &format!("rust_pool \"{}\": process {pid} takes {capacity} request(s) at a time", self.procs[at].pool));
        self.mark_ready(at);
    }

    /// A process took its place in the pool.
    fn mark_ready(&mut self, at: usize) {
        let proc = &mut self.procs[at];
        if proc.phase != Phase::Starting {
            return;
        }
        proc.phase = Phase::Ready;
        self.table.slots[proc.slot].transition(State::Starting, State::Ready);
        if let Some(pool) = self.pools.iter_mut().find(|p| p.spec.name == proc.pool) {
            if pool.failures >= CRASH_LOOP {
                self.log.write(Level::Notice, &format!("rust_pool \"{}\": out of its crash loop; serving again", pool.spec.name));
            }
            pool.failures = 0;
            self.table.pools[pool.index].failing.store(0, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// nginx is gone: every process stops now (SIGTERM, SIGKILL soon).
    fn shutdown(&mut self) {
        for proc in &mut self.procs {
            proc.stopped = true;
            proc.phase = Phase::Draining;
            proc.kill_at = Some(Instant::now() + STOP_GRACE);
            self.table.slots[proc.slot].set_state(State::Stopping);
            // SAFETY: our own child.
            unsafe { libc::kill(proc.pid, libc::SIGTERM) };
        }
    }

    fn read_output(&mut self, pid: libc::pid_t, to_end: bool) {
        let Some(at) = self.procs.iter().position(|p| p.pid == pid) else { return };
        let proc = &mut self.procs[at];
        let Some(fd) = proc.output.as_ref().map(AsRawFd::as_raw_fd) else { return };
        let mut buf = [0u8; 16384];
        let mut eof = false;
        loop {
            let read = crate::os::read(fd, &mut buf);
            if let Ok(n @ 1..) = read {
                proc.partial.extend_from_slice(&buf[..n]);
                if !to_end {
                    break;
                }
                continue;
            }
            eof = matches!(read, Ok(0));
            break;
        }
        let prefix = format!("rust_pool \"{}\" process {}: ", proc.pool, proc.pid);
        let lines = os::take_lines(&mut proc.partial, eof || to_end, 2000);
        if eof {
            proc.output = None;
        }
        for line in lines {
            let (level, text) = crate::pool::log::split_level(&line);
            self.log.write(level, &format!("{prefix}{text}"));
        }
    }

    fn read_control(&mut self, pid: libc::pid_t) {
        let Some(at) = self.procs.iter().position(|p| p.pid == pid) else { return };
        let (pool, generation) = (&self.procs[at].pool, self.procs[at].generation);
        let older_serving = self.procs.iter().any(|p| p.pool == *pool && p.generation < generation && p.phase == Phase::Ready);
        let proc = &mut self.procs[at];
        let Some(control) = proc.control.as_ref() else { return };
        let mut buf = [0u8; 64];
        let n = match crate::os::read(control.as_raw_fd(), &mut buf) {
            Ok(0) => {
                proc.control = None;
                return;
            }
            Ok(n) => n,
            Err(_) => return,
        };
        let mut timed_out = false;
        let mut broken_new_code = false;
        let mut ready = false;
        for &byte in &buf[..n] {
            match byte {
                // Some of its apps failed to import: taken at a first start
                // (the broken apps answer 500, the others serve), not over
                // an older process that serves them all.
                b'P' if proc.phase == Phase::Starting && older_serving => broken_new_code = true,
                b'R' | b'P' if proc.phase == Phase::Starting => ready = true,
                b'T' => {
                    // A request passed the timeout (the process logged its
                    // stack): it is stuck, so it stops now and is replaced.
                    proc.retire = Some("a request passed the pool's timeout".into());
                    timed_out = true;
                }
                _ => {}
            }
        }
        if ready && !broken_new_code {
            self.mark_ready(at);
        }
        if broken_new_code {
            let name = self.procs[at].pool.clone();
            if let Some(pool) = self.pools.iter_mut().find(|p| p.spec.name == name) {
                pool.broken = true;
            }
            self.log.write(
                Level::Error,
                &format!("rust_pool \"{name}\": an app of the new code failed to import (traceback above); the previous version keeps serving until the code changes again"),
            );
            self.procs[at].stopped = true;
            self.drain(pid, None);
            return;
        }
        if timed_out {
            self.drain(pid, Some("a request passed the pool's timeout".into()));
            // Its thread is stuck: no waiting for the request to finish.
            if let Some(proc) = self.procs.iter_mut().find(|p| p.pid == pid) {
                proc.kill_at = Some(Instant::now() + STOP_GRACE);
            }
        }
    }

    /// The pidfd says the process exited: reap it, log how, and let the
    /// pool replace it (with backoff when it died young).
    fn reap(&mut self, pid: libc::pid_t) {
        let mut status = 0;
        // SAFETY: reaping our own child without blocking.
        if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } != pid {
            return;
        }
        self.read_output(pid, true);
        let Some(at) = self.procs.iter().position(|p| p.pid == pid) else { return };
        let proc = self.procs.remove(at);
        // What the process started dies with it.
        // SAFETY: signalling our child's process group.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        let oom = !proc.stopped && libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL && oom_killed();
        let cause = if proc.stopped { ExitCause::Stopped } else if oom { ExitCause::OutOfMemory } else { ExitCause::Own };
        self.table.record_exit(pid as u32, status, cause);
        let slot = &self.table.slots[proc.slot];
        let active = slot.active.load(std::sync::atomic::Ordering::Relaxed);
        // A program's socket is a file (nothing is there for a Python
        // process).
        let address = slots::program_socket(self.table.supervisor.load(std::sync::atomic::Ordering::Relaxed), proc.slot, slot.serial.load(std::sync::atomic::Ordering::Relaxed));
        let _ = std::fs::remove_file(std::ffi::OsStr::from_bytes(&address));
        slot.set_state(State::Empty);
        let how = describe(status, cause);
        let Some(pool) = self.pools.iter_mut().find(|p| p.spec.name == proc.pool) else { return };
        let entry = &self.table.pools[pool.index];
        if proc.stopped {
            self.log.write(Level::Info, &format!("rust_pool \"{}\": process {pid} {how}", proc.pool));
            if proc.generation == pool.generation && proc.retire.is_some() {
                entry.restarts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            return;
        }
        entry.restarts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let import_failed = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == crate::pool::process::EXIT_IMPORT_FAILED;
        let older_serving = self.procs.iter().any(|p| p.pool == proc.pool && p.generation < proc.generation && p.phase == Phase::Ready);
        if proc.phase == Phase::Starting && import_failed && older_serving {
            pool.broken = true;
            self.log.write(
                Level::Error,
                &format!(
                    "rust_pool \"{}\": the new code failed to import (traceback above); the previous version keeps serving until the code changes again",
                    proc.pool
                ),
            );
            return;
        }
        let young = proc.phase == Phase::Starting || proc.started.elapsed() < QUICK;
        pool.failures = if young { pool.failures + 1 } else { 1 };
        let backoff = (BACKOFF_MIN * 2u32.saturating_pow(pool.failures.saturating_sub(1))).min(BACKOFF_MAX);
        pool.next_start = Instant::now() + if young { backoff } else { Duration::ZERO };
        let when = if proc.phase == Phase::Starting { "before it was ready".to_string() } else { format!("while serving {active} request(s)") };
        if young && pool.failures >= CRASH_LOOP {
            entry.failing.store(1, std::sync::atomic::Ordering::Relaxed);
            self.log.write(
                Level::Error,
                &format!(
                    "rust_pool \"{}\": crash loop: process {pid} {how} {when}, {} times in a row; next try in {} ms, and requests get 503 until a process is ready",
                    proc.pool,
                    pool.failures,
                    backoff.as_millis()
                ),
            );
        } else {
            self.log.write(Level::Error, &format!("rust_pool \"{}\": process {pid} {how} {when}; starting another", proc.pool));
        }
    }

    /// Changed code, RSS, lifetime and request-count limits; places that
    /// dead nginx workers held.
    fn tick(&mut self) {
        for (pid, places) in self.table.reclaim_places() {
            if places > 0 {
                self.log.write(
                    Level::Warn,
                    &format!("rust_pool: nginx worker {pid} died holding {places} place(s) in program processes; they are free again"),
                );
            }
        }
        for pool in &mut self.pools {
            let code = code_mtime(&pool.spec);
            if code.is_some() && code != pool.code {
                pool.code = code;
                pool.generation += 1;
                pool.broken = false;
                pool.failures = 0;
                self.log.write(Level::Notice, &format!("rust_pool \"{}\": its code changed; replacing its processes one by one", pool.spec.name));
            }
        }
        let mut retire = Vec::new();
        for proc in &self.procs {
            let slot = &self.table.slots[proc.slot];
            let rss = rss_of(proc.pid);
            slot.rss.store(rss, std::sync::atomic::Ordering::Relaxed);
            if proc.phase != Phase::Ready || proc.retire.is_some() {
                continue;
            }
            let Some(pool) = self.pools.iter().find(|p| p.spec.name == proc.pool) else { continue };
            let spec = &pool.spec;
            let served = slot.served.load(std::sync::atomic::Ordering::Relaxed);
            if spec.max_rss > 0 && rss > spec.max_rss {
                retire.push((proc.pid, format!("its RSS of {} MiB is above max_rss", rss >> 20)));
            } else if proc.request_limit > 0 && served >= proc.request_limit {
                retire.push((proc.pid, format!("it served {served} requests (max_requests)")));
            } else if spec.max_lifetime_ms > 0 && proc.started.elapsed() > Duration::from_millis(spec.max_lifetime_ms) {
                retire.push((proc.pid, "it reached max_lifetime".to_string()));
            }
        }
        // One at a time per pool, so the pool never has fewer than N-1
        // processes serving.
        for (pid, why) in retire {
            let pool = self.procs.iter().find(|p| p.pid == pid).map(|p| p.pool.clone()).unwrap_or_default();
            if self.procs.iter().any(|p| p.pool == pool && p.retire.is_some() && p.phase != Phase::Draining) {
                continue;
            }
            if let Some(proc) = self.procs.iter_mut().find(|p| p.pid == pid) {
                proc.retire = Some(why);
            }
        }
    }
}

/// The newest modification time of the pool's code: its app files
/// (`reload=script`) or the `.py` files under a directory; None with
/// `reload=off`. One stat per file per second.
fn code_mtime(spec: &PoolSpec) -> Option<SystemTime> {
    let mtime = |path: &std::path::Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    // A program pool watches its program's file, or every file under the
    // directory (PHP code needs no restart: php-cgi reads it per request).
    let program = spec.program.as_ref();
    match &spec.reload {
        Reload::Off => None,
        Reload::Script if program.is_some() => program.and_then(|p| mtime(&p.path)),
        Reload::Script => spec.all_apps().filter_map(|a| mtime(&a.path)).max(),
        Reload::Directory(dir) => {
            let mut newest = None;
            let mut dirs = vec![dir.clone()];
            while let Some(dir) = dirs.pop() {
                let Ok(entries) = std::fs::read_dir(&dir) else { continue };
                for entry in entries.flatten() {
                    let path = entry.path();
                    match entry.file_type() {
                        Ok(t) if t.is_dir() => dirs.push(path),
                        Ok(_) if program.is_some() || path.extension().is_some_and(|e| e == "py") => newest = newest.max(mtime(&path)),
                        _ => {}
                    }
                }
            }
            newest
        }
    }
}

/// Whether only the pool's size changed (which starts or stops processes,
/// and replaces none).
fn same_except_count(a: &PoolSpec, b: &PoolSpec) -> bool {
    let mut a = a.clone();
    a.processes = b.processes;
    a.min_processes = b.min_processes;
    a.idle_timeout_ms = b.idle_timeout_ms;
    a == *b
}

/// max_requests, spread by up to max_requests_jitter so processes started
/// together are not recycled together.
fn request_limit(spec: &PoolSpec, seed: &mut u64) -> u64 {
    if spec.max_requests == 0 {
        return 0;
    }
    // xorshift: enough to spread restarts.
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    spec.max_requests + if spec.max_requests_jitter > 0 { *seed % (spec.max_requests_jitter + 1) } else { 0 }
}

/// Whether the kernel's OOM killer has struck in our cgroup (cgroup v2
/// counts it in memory.events).
fn oom_killed() -> bool {
    let Ok(cgroup) = std::fs::read_to_string("/proc/self/cgroup") else { return false };
    let Some(path) = cgroup.lines().find_map(|l| l.strip_prefix("0::")) else { return false };
    let events = std::fs::read_to_string(format!("/sys/fs/cgroup{path}/memory.events")).unwrap_or_default();
    static SEEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let count = events.lines().find_map(|l| l.strip_prefix("oom_kill ")).and_then(|n| n.trim().parse::<u64>().ok()).unwrap_or(0);
    count > SEEN.swap(count, std::sync::atomic::Ordering::Relaxed)
}

/// Resident memory of `pid` in bytes.
fn rss_of(pid: libc::pid_t) -> u64 {
    let Ok(statm) = std::fs::read_to_string(format!("/proc/{pid}/statm")) else { return 0 };
    // SAFETY: plain sysconf.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    statm.split_whitespace().nth(1).and_then(|n| n.parse::<u64>().ok()).map_or(0, |pages| pages * page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_are_described() {
        assert_eq!(describe(3 << 8, ExitCause::Own), "exited with code 3");
        assert!(describe(libc::SIGSEGV, ExitCause::Own).starts_with("was killed by signal 11 ("));
        assert!(describe(libc::SIGKILL, ExitCause::OutOfMemory).contains("OOM killer"));
    }
}
