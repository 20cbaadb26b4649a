//! The CGI programs this worker started, until they are reaped.
//!
//! nginx's own SIGCHLD handler reaps with `waitpid(-1)` and logs an
//! `[alert]` for every child that dies of a signal; workers that run this
//! module put SIGCHLD back to its default instead (see
//! [`crate::nginx::process::restore_default_sigchld`]). Each child is
//! watched through a pidfd in nginx's event loop, without a blocking wait.
//!
//! A child outlives its request here. Its stderr is read to the end (logged
//! in the request's context while the request lasts, in the worker's log
//! after). Once its request is over, or once the program itself exited
//! (what it started may still hold its stdout, and so the response), its
//! process group is given the grace period, then SIGTERM, then SIGKILL
//! after the grace again.
//!
//! # Signalling a group whose leader exited
//!
//! The program leads its own process group, whose id is its pid, so
//! `kill(-pgid)` also reaches what it started (a `sleep 1000 &`), after
//! the program itself exited too. Such an id is safe to signal only while
//! the group is known to exist: Linux frees a pid number once no process
//! uses it as pid, process group or session id, so while one member lives
//! the number names nothing else, but once the group is empty the number
//! comes round again (to a new process, which may lead a group of its own,
//! as every CGI program does) after the cyclic allocator went through
//! `pid_max` (32768 on many systems: seconds of a busy CGI server's
//! forks). A pidfd does not help, being one process, not its group; nor
//! would making the worker a child subreaper, which changes nginx; cgroups
//! are not available to it in general.
//!
//! So the leader is not reaped while the group may still need a signal: a
//! zombie is a member too, and keeps the number ours. Its exit status is
//! read at once with `waitid(WNOWAIT)`. Whether anyone else is left is
//! what a zombie hides (`kill(-pgid, 0)` succeeds for it), and what the
//! pipes tell instead: a background child inherits the program's stdout
//! and stderr, and while any process holds either, the zombie is kept and
//! the group signalled through it. Once no process holds them, the leader
//! is reaped and `kill(-pgid, 0)` says whether the group is empty: nearly
//! every program ends here, leaving no zombie. What is left then cut
//! itself off from the pipes (`cmd >/dev/null 2>&1 &`) and still gets the
//! grace, SIGTERM and SIGKILL, through an id nothing holds: a signal could
//! go astray only if that group emptied itself and the allocator came
//! round to its number within the grace. Processes that leave the group
//! (`setsid`, daemons) are out of reach, as for any supervisor short of
//! a cgroup.
//!
//! Zombies blur one more answer: a member that died waits as a zombie for
//! init to reap it (which some container inits take their time to do), and
//! `kill()` reaches it all the same. So when a grace runs out for a
//! program that exited, `/proc` is asked whether a member still runs (a
//! read of every process's stat, made only then): a group of zombies gets
//! neither a signal nor a line in the log.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::c_void;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::Ordering::Relaxed;

use nginx_sys::{ngx_event_t, ngx_msec_t};

use super::spawn::{self, Command};
use crate::core::{catch_panic, metrics};
use crate::nginx::event::{Conn, Timer};
use crate::nginx::log::{Level, Log};
use crate::nginx::request::HttpRequest;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Its request still wants it, and it runs.
    Attached,
    /// Its request is over or it exited; its group may finish on its own
    /// within the grace.
    Lingering,
    /// Its group was sent SIGTERM; SIGKILL follows after the grace.
    Terminating,
    /// Its group needs no more signals: sent SIGKILL, or found empty.
    Done,
}

/// How the program ended.
#[derive(Debug, Clone, Copy)]
enum Exit {
    Code(i32),
    Signal(i32),
    /// Reaped by someone else (an embedded app's `os.wait()`).
    Unknown,
}

/// Names a child here. Not its pid: a reaped child's request may still
/// hold this while its pid is already another child's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChildId(u64);

struct Child {
    id: ChildId,
    pid: libc::pid_t,
    script: String,
    level: Level,
    grace: ngx_msec_t,
    state: State,
    /// Once the program exited (read without reaping it).
    exit: Option<Exit>,
    /// Reaped: nothing keeps its process group's id ours any more.
    reaped: bool,
    request: Option<HttpRequest>,
    /// A copy of the read end of its stdout while the request reads it, to
    /// ask whether anyone holds the other end.
    stdout: Option<OwnedFd>,
    pidfd: Option<Conn>,
    stderr: Option<Conn>,
    partial: Vec<u8>,
    timer: Option<Timer>,
    /// Counted among this worker's running programs for `rust_status`,
    /// until its exit is seen (or it is forgotten).
    running: Option<metrics::Held>,
}

thread_local! {
    static CHILDREN: RefCell<HashMap<ChildId, Box<Child>>> = RefCell::new(HashMap::new());
    static NEXT_ID: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How the program should be logged and stopped.
pub struct Settings {
    pub script: String,
    pub stderr_level: Level,
    pub kill_grace: ngx_msec_t,
    /// A copy of the read end of its stdout, to ask whether anyone still
    /// holds the other end (kept until the request ends).
    pub stdout: OwnedFd,
}

/// Starts `cmd`, with `stderr` (the read end of its stderr pipe) read into
/// the log, on behalf of `req`. Returns its id here and its pid.
pub fn spawn(cmd: &Command, stderr: OwnedFd, settings: Settings, req: HttpRequest) -> io::Result<(ChildId, libc::pid_t)> {
    let (pid, exec_failed) = spawn::spawn(cmd)?;
    // SAFETY: plain syscall; the fd is checked and owned. A pidfd refers to
    // this exact process even after its pid is reused.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
    if pidfd < 0 {
        let err = io::Error::last_os_error();
        // SAFETY: plain syscalls on our own child.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
        return Err(err);
    }
    // SAFETY: a fresh descriptor we own.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    let id = ChildId(NEXT_ID.with(|n| n.replace(n.get() + 1)));
    let mut child = Box::new(Child {
        id,
        pid,
        script: settings.script,
        level: settings.stderr_level,
        grace: settings.kill_grace,
        state: State::Attached,
        exit: None,
        reaped: false,
        request: Some(req),
        stdout: Some(settings.stdout),
        pidfd: None,
        stderr: None,
        partial: Vec::new(),
        timer: None,
        running: metrics::Held::cgi_program(),
    });
    if exec_failed.is_none() {
        if let Some(cgi) = metrics::cgi() {
            cgi.spawned.fetch_add(1, Relaxed);
        }
    }
    // The Box does not move once made, so its address can be the events'
    // data.
    let data = &mut *child as *mut Child as *mut c_void;
    let log = Log::cycle();
    child.timer = Some(Timer::new(on_timer, data, log, true));
    let registered = Conn::register(pidfd, log, data, Some(on_exit), None)
        .and_then(|pidfd| {
            child.pidfd = Some(pidfd);
            Conn::register(stderr, log, data, Some(on_stderr), None)
        })
        .map(|stderr| child.stderr = Some(stderr));
    CHILDREN.with(|c| c.borrow_mut().insert(id, child));
    if let Err(e) = registered {
        // Without a pidfd watch it would never be reaped in time.
        detach(id, true);
        return Err(io::Error::other(e));
    }
    if let Some(e) = exec_failed {
        // It has exited: reaped through its pidfd, like any other.
        detach(id, true);
        return Err(e);
    }
    Ok((id, pid))
}

/// "exit code 3", "killed by signal 9", or None while it runs.
pub fn describe_exit(id: ChildId) -> Option<String> {
    match with_child(id, |c| c.exit)?? {
        Exit::Code(code) => Some(format!("exit code {code}")),
        Exit::Signal(signal) => Some(format!("killed by signal {signal}")),
        Exit::Unknown => None,
    }
}

/// The request is over. Its stderr so far is logged in its context; after
/// that the program's group gets the grace period to finish (`failed`:
/// SIGTERM now).
pub fn detach(id: ChildId, failed: bool) {
    let done = with_child(id, |child| {
        child.drain_stderr();
        child.request = None;
        // The copy goes with the request's end: it must not keep the pipe
        // open, which would block a writer instead of letting it fail
        // (EPIPE). Whoever still holds stdout then is of the group too, or
        // gone soon.
        child.stdout = None;
        match child.state {
            State::Attached | State::Lingering if failed => child.terminate(),
            State::Attached => child.linger(),
            _ => {}
        }
        child.settle()
    });
    if done == Some(true) {
        forget(id);
    }
}

/// Worker exit: kill every program still running, with its group.
pub fn kill_all() {
    let all: Vec<Box<Child>> = CHILDREN.with(|c| c.borrow_mut().drain().map(|(_, child)| child).collect());
    for mut child in all {
        if child.state != State::Done {
            child.signal(libc::SIGKILL);
        }
        if child.exit.is_some() && !child.reaped {
            child.reap();
        }
        child.close();
    }
}

fn with_child<R>(id: ChildId, f: impl FnOnce(&mut Child) -> R) -> Option<R> {
    let ptr = CHILDREN.with(|c| c.borrow_mut().get_mut(&id).map(|child| &mut **child as *mut Child))?;
    // SAFETY: the Box stays in the map while `f` runs (only `forget`
    // removes it, and callers do that after `f` returned); no RefCell
    // borrow is held, so `f` may log or detach other children.
    Some(f(unsafe { &mut *ptr }))
}

fn forget(id: ChildId) {
    if let Some(mut child) = CHILDREN.with(|c| c.borrow_mut().remove(&id)) {
        child.close();
    }
}

impl Child {
    fn log(&self) -> Log {
        self.request.map_or_else(Log::cycle, HttpRequest::log)
    }

    fn arm(&mut self, ms: ngx_msec_t) {
        if let Some(timer) = self.timer.as_mut() {
            timer.arm(ms);
        }
    }

    /// Signals the whole process group (the program and what it started);
    /// false if nobody was left to get it. Safe while the leader is not
    /// reaped (see the module's doc).
    fn signal(&mut self, signal: libc::c_int) -> bool {
        // SAFETY: plain syscall; ESRCH (nobody left) is an answer.
        let sent = unsafe { libc::kill(-self.pid, signal) } == 0;
        if !sent {
            self.state = State::Done;
        }
        sent
    }

    /// The grace starts: its group may finish on its own meanwhile.
    fn linger(&mut self) {
        self.state = State::Lingering;
        self.arm(self.grace);
    }

    fn terminate(&mut self) {
        if self.signal(libc::SIGTERM) {
            self.state = State::Terminating;
            self.arm(self.grace);
        }
    }

    /// The grace is over: the next signal, to whatever of the group still
    /// runs, and a line that says why.
    fn grace_over(&mut self) {
        let (next, why) = match (self.state, self.exit.is_some()) {
            (State::Lingering, false) => (libc::SIGTERM, "still runs after its response ended; sending SIGTERM to its process group"),
            (State::Lingering, true) => (libc::SIGTERM, "exited, but its process group still runs; sending SIGTERM"),
            (State::Terminating, false) => (libc::SIGKILL, "ignored SIGTERM; sending SIGKILL to its process group"),
            (State::Terminating, true) => (libc::SIGKILL, "exited, but its process group ignored SIGTERM; sending SIGKILL"),
            (State::Attached | State::Done, _) => return,
        };
        // Zombies answer kill() too (see the module's doc): only a member
        // that still runs is worth a signal and a line. While the program
        // itself has not been seen to exit, it is one.
        let runs = self.exit.is_none() || crate::os::process_group_runs(self.pid);
        if !runs || !self.signal(next) {
            self.state = State::Done;
            return;
        }
        let level = if next == libc::SIGKILL { Level::Warn } else { Level::Info };
        self.log().write(level, &format!("rust_cgi: \"{}\" {why} (rust_cgi_kill_grace {} ms)", self.script, self.grace));
        if next == libc::SIGKILL {
            self.state = State::Done;
            if let Some(cgi) = metrics::cgi() {
                cgi.killed_groups.fetch_add(1, Relaxed);
            }
        } else {
            self.state = State::Terminating;
            self.arm(self.grace);
        }
    }

    fn close(&mut self) {
        self.running = None;
        for conn in [self.pidfd.take(), self.stderr.take()].into_iter().flatten() {
            conn.close();
        }
        if let Some(mut timer) = self.timer.take() {
            timer.disarm();
        }
    }

    /// Logs every complete stderr line that can be read now; at EOF also
    /// the last partial one, and stops watching.
    fn drain_stderr(&mut self) {
        let Some(fd) = self.stderr.as_ref().map(Conn::fd) else { return };
        let mut buf = [0u8; 8192];
        let eof = loop {
            let read = crate::os::read(fd, &mut buf);
            if let Ok(n @ 1..) = read {
                self.partial.extend_from_slice(&buf[..n]);
                self.log_lines(false);
                continue;
            }
            break !read.is_err_and(|e| e.kind() == io::ErrorKind::WouldBlock);
        };
        if eof {
            self.log_lines(true);
            if let Some(conn) = self.stderr.take() {
                conn.close();
            }
        } else if let Some(conn) = self.stderr.as_ref() {
            let _ = conn.want_read();
        }
    }

    fn log_lines(&mut self, all: bool) {
        let log = self.log();
        // Keep lines to what nginx's log can hold.
        for line in crate::os::take_lines(&mut self.partial, all, 1800) {
            log.write(self.level, &format!("rust_cgi: \"{}\": {line}", self.script));
        }
    }

    /// The pidfd is readable: the program exited. Its status is read, the
    /// zombie kept (see the module's doc).
    fn exited(&mut self) {
        let Some(exit) = peek_exit(self.pid) else { return };
        self.exit = Some(exit);
        self.running = None;
        // Someone else reaped it: it anchors nothing.
        self.reaped = matches!(exit, Exit::Unknown);
        if let Some(conn) = self.pidfd.take() {
            conn.close();
        }
        self.drain_stderr();
        if self.state == State::Attached {
            // It is done; whatever it started gets the grace from now.
            self.linger();
        }
    }

    /// Whether a process (of its group, as a rule) may still hold the
    /// program's stdout or stderr.
    fn pipes_held(&self) -> bool {
        let stdout = self.stdout.as_ref().map(AsRawFd::as_raw_fd);
        stdout.into_iter().chain(self.stderr.as_ref().map(Conn::fd)).any(crate::os::pipe_has_writer)
    }

    /// After anything happened: reaps an exited program once its zombie
    /// need not anchor its group any more, and then asks whether the group
    /// is empty. True once nothing is left to do for it.
    fn settle(&mut self) -> bool {
        if self.exit.is_some() && !self.reaped && (self.state == State::Done || !self.pipes_held()) {
            self.reap();
            // SAFETY: plain syscall; checked the moment the id was given up,
            // so it can only name what is left of this group.
            if self.state != State::Done && unsafe { libc::kill(-self.pid, 0) } != 0 {
                self.state = State::Done;
            }
        }
        if self.state == State::Done {
            if let Some(timer) = self.timer.as_mut() {
                timer.disarm();
            }
        }
        self.reaped && self.state == State::Done && self.request.is_none()
    }

    fn reap(&mut self) {
        // SAFETY: reaping our own child, which has exited (peek_exit said
        // so), so this does not wait.
        unsafe { libc::waitpid(self.pid, std::ptr::null_mut(), libc::WNOHANG) };
        self.reaped = true;
    }
}

/// How `pid`, our child, exited, leaving it a zombie; None while it runs.
fn peek_exit(pid: libc::pid_t) -> Option<Exit> {
    // SAFETY: a zeroed siginfo_t is valid storage for waitid to fill.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: plain syscall on our own child, not waiting (WNOHANG), not
    // reaping (WNOWAIT).
    let rc = unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT) };
    if rc != 0 {
        return (io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD)).then_some(Exit::Unknown);
    }
    // SAFETY: waitid filled `info` for a child (si_pid is 0 if none has
    // exited yet).
    let (who, status) = unsafe { (info.si_pid(), info.si_status()) };
    if who != pid {
        return None;
    }
    Some(if info.si_code == libc::CLD_EXITED { Exit::Code(status) } else { Exit::Signal(status) })
}

unsafe extern "C" fn on_exit(ev: *mut ngx_event_t) {
    catch_panic(Log::cycle(), "rust_cgi reaper", || {
        // SAFETY: the pidfd connection's data is its Child, alive while the
        // connection is open.
        let child = unsafe { &mut *(Conn::data_of(ev) as *mut Child) };
        let id = child.id;
        child.exited();
        if child.settle() {
            forget(id);
        }
    });
}

unsafe extern "C" fn on_stderr(ev: *mut ngx_event_t) {
    catch_panic(Log::cycle(), "rust_cgi stderr", || {
        // SAFETY: as in `on_exit`.
        let child = unsafe { &mut *(Conn::data_of(ev) as *mut Child) };
        let id = child.id;
        child.drain_stderr();
        // At EOF, an exited program's zombie may be reaped.
        if child.settle() {
            forget(id);
        }
    });
}

unsafe extern "C" fn on_timer(ev: *mut ngx_event_t) {
    catch_panic(Log::cycle(), "rust_cgi kill timer", || {
        // SAFETY: the timer's data is its Child; the timer is disarmed
        // before the Child goes.
        let child = unsafe { &mut *(Timer::data_of(ev) as *mut Child) };
        let id = child.id;
        // The group may have let go of its pipes, and be found empty.
        if !child.settle() {
            child.grace_over();
        }
        if child.settle() {
            forget(id);
        }
    });
}
