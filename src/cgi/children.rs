//! The CGI programs this worker started, until they are reaped.
//!
//! nginx's own SIGCHLD handler reaps with `waitpid(-1)` and logs an
//! `[alert]` for every child that dies of a signal; workers that run this
//! module put SIGCHLD back to its default instead (see
//! [`crate::nginx::process::restore_default_sigchld`]). Each child is
//! watched through a pidfd in nginx's event loop and reaped with
//! `waitpid(pid)` as soon as it exits: no zombie, no blocking wait.
//!
//! A child outlives its request here. Its stderr is read to the end (logged
//! in the request's context while the request lasts, in the worker's log
//! after), and a child whose request is over is given a grace period, then
//! SIGTERM, then SIGKILL, for its whole process group.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::c_void;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use nginx_sys::{ngx_event_t, ngx_msec_t};

use super::spawn::{self, Command};
use crate::core::catch_panic;
use crate::nginx::event::{Conn, Timer};
use crate::nginx::log::{Level, Log};
use crate::nginx::request::HttpRequest;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Its request still wants it.
    Attached,
    /// Its request is over; it may finish on its own within the grace.
    Lingering,
    /// Sent SIGTERM; SIGKILL follows after the grace.
    Terminating,
}

struct Child {
    pid: libc::pid_t,
    script: String,
    level: Level,
    grace: ngx_msec_t,
    state: State,
    /// The wait status, once reaped.
    status: Option<i32>,
    request: Option<HttpRequest>,
    pidfd: Option<Conn>,
    stderr: Option<Conn>,
    partial: Vec<u8>,
    timer: Option<Timer>,
}

thread_local! {
    static CHILDREN: RefCell<HashMap<libc::pid_t, Box<Child>>> = RefCell::new(HashMap::new());
}

/// How the program should be logged and stopped.
pub struct Settings {
    pub script: String,
    pub stderr_level: Level,
    pub kill_grace: ngx_msec_t,
}

/// Starts `cmd`, with `stderr` (the read end of its stderr pipe) read into
/// the log, on behalf of `req`.
pub fn spawn(cmd: &Command, stderr: OwnedFd, settings: Settings, req: HttpRequest) -> io::Result<libc::pid_t> {
    let pid = spawn::spawn(cmd)?;
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
    let mut child = Box::new(Child {
        pid,
        script: settings.script,
        level: settings.stderr_level,
        grace: settings.kill_grace,
        state: State::Attached,
        status: None,
        request: Some(req),
        pidfd: None,
        stderr: None,
        partial: Vec::new(),
        timer: None,
    });
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
    CHILDREN.with(|c| c.borrow_mut().insert(pid, child));
    if let Err(e) = registered {
        // Without a pidfd watch it would never be reaped in time.
        detach(pid, true);
        return Err(io::Error::other(e));
    }
    Ok(pid)
}

/// "exit code 3", "killed by signal 9", or None while it runs.
pub fn describe_exit(pid: libc::pid_t) -> Option<String> {
    let status = with_child(pid, |c| c.status)??;
    Some(if libc::WIFSIGNALED(status) {
        format!("killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("exit code {}", libc::WEXITSTATUS(status))
    })
}

/// The request is over. Its stderr so far is logged in its context; after
/// that the child gets the grace period to finish (`failed`: SIGTERM now).
pub fn detach(pid: libc::pid_t, failed: bool) {
    let remove = with_child(pid, |child| {
        child.drain_stderr();
        child.request = None;
        if child.status.is_some() {
            return true;
        }
        if failed {
            child.terminate();
        } else {
            child.state = State::Lingering;
            child.arm(child.grace);
        }
        false
    });
    if remove == Some(true) {
        forget(pid);
    }
}

/// Worker exit: kill every program still running, with its group.
pub fn kill_all() {
    let all: Vec<Box<Child>> = CHILDREN.with(|c| c.borrow_mut().drain().map(|(_, child)| child).collect());
    for mut child in all {
        if child.status.is_none() {
            child.signal(libc::SIGKILL);
        }
        child.close();
    }
}

fn with_child<R>(pid: libc::pid_t, f: impl FnOnce(&mut Child) -> R) -> Option<R> {
    let ptr = CHILDREN.with(|c| c.borrow_mut().get_mut(&pid).map(|child| &mut **child as *mut Child))?;
    // SAFETY: the Box stays in the map while `f` runs (only `forget`
    // removes it, and callers do that after `f` returned); no RefCell
    // borrow is held, so `f` may log or detach other children.
    Some(f(unsafe { &mut *ptr }))
}

fn forget(pid: libc::pid_t) {
    if let Some(mut child) = CHILDREN.with(|c| c.borrow_mut().remove(&pid)) {
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

    /// Signals the whole process group (the program and what it started).
    fn signal(&self, signal: libc::c_int) {
        // SAFETY: plain syscall; ESRCH (already gone) is fine.
        unsafe { libc::kill(-self.pid, signal) };
    }

    fn terminate(&mut self) {
        self.signal(libc::SIGTERM);
        self.state = State::Terminating;
        self.arm(self.grace);
    }

    fn close(&mut self) {
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
            // SAFETY: reading into our buffer from our non-blocking pipe.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n > 0 {
                self.partial.extend_from_slice(&buf[..n as usize]);
                self.log_lines(false);
                continue;
            }
            let again = n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock;
            break !again;
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

    /// The pidfd is readable: the program exited.
    fn reap(&mut self) -> bool {
        let mut status = 0;
        // SAFETY: reaping our own child without blocking.
        let reaped = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
        if reaped != self.pid {
            return false;
        }
        self.status = Some(status);
        if let Some(conn) = self.pidfd.take() {
            conn.close();
        }
        if self.state == State::Terminating {
            // What it started dies with it.
            self.signal(libc::SIGKILL);
        }
        self.drain_stderr();
        self.request.is_none()
    }
}

unsafe extern "C" fn on_exit(ev: *mut ngx_event_t) {
    catch_panic(Log::cycle(), "rust_cgi reaper", || {
        // SAFETY: the pidfd connection's data is its Child, alive while the
        // connection is open.
        let child = unsafe { &mut *(Conn::data_of(ev) as *mut Child) };
        let pid = child.pid;
        if child.reap() {
            forget(pid);
        }
    });
}

unsafe extern "C" fn on_stderr(ev: *mut ngx_event_t) {
    catch_panic(Log::cycle(), "rust_cgi stderr", || {
        // SAFETY: as in `on_exit`.
        let child = unsafe { &mut *(Conn::data_of(ev) as *mut Child) };
        child.drain_stderr();
    });
}

unsafe extern "C" fn on_timer(ev: *mut ngx_event_t) {
    catch_panic(Log::cycle(), "rust_cgi kill timer", || {
        // SAFETY: the timer's data is its Child; the timer is disarmed
        // before the Child goes.
        let child = unsafe { &mut *(Timer::data_of(ev) as *mut Child) };
        match child.state {
            State::Attached => {}
            State::Lingering => {
                child.log().write(
                    Level::Info,
                    &format!("rust_cgi: \"{}\" still runs after its response ended; sending SIGTERM", child.script),
                );
                child.terminate();
            }
            State::Terminating => {
                child.log().write(Level::Warn, &format!("rust_cgi: \"{}\" ignored SIGTERM; sending SIGKILL", child.script));
                child.signal(libc::SIGKILL);
            }
        }
    });
}
