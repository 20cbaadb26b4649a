//! nginx's master and the pool supervisor.
//!
//! The master parses the configuration; on every load (the first start and
//! each `nginx -s reload`) `init_module` runs there, and this sends the
//! supervisor the pools the new configuration declares. The supervisor is
//! forked from the master the first time, while the master is still a
//! single thread that never ran Python, and lives as long as the master:
//! it reads its plans from a pipe whose only writer is the master, so when
//! the master exits or is killed (even by SIGKILL) the pipe ends and the
//! supervisor stops the pools. Keeping one supervisor across reloads is
//! what lets a reload replace pool processes gracefully instead of all at
//! once, with both generations of nginx workers reaching the same pools.
//!
//! Workers and nginx's helper processes inherit the pipe's write end with
//! the fork; they close it at once ([`forget_in_child`]), or the pipe would
//! outlive the master.

use std::cell::RefCell;
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;

use nginx_sys::{ngx_core_conf_t, ngx_cycle_t};
use serde::{Deserialize, Serialize};

use super::conf::PoolSpec;
use super::{slots, supervisor};
use crate::conf::MainConf;
use crate::nginx::log::{Level, Log};

/// What the master tells the supervisor after each configuration load.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub pools: Vec<PoolSpec>,
    /// nginx's error log, None for stderr.
    pub error_log: Option<PathBuf>,
    /// Lines below this level are not written (nginx's numbering: 1 emerg
    /// .. 8 debug).
    pub log_level: usize,
    /// The user nginx's workers run as: pool processes accept connections
    /// from it (and from root) only.
    pub nginx_uid: u32,
    /// And its group: pool processes run as this user and group unless
    /// `user=` says otherwise (when the master is root).
    pub nginx_gid: u32,
    /// The variables nginx gives its workers (TZ and `env` directives), for
    /// the pool processes' environment.
    pub env: Vec<(String, String)>,
}

thread_local! {
    /// The write end of the supervisor's pipe. Only ever set in the master
    /// (and in single-process mode).
    static SUPERVISOR: RefCell<Option<std::fs::File>> = const { RefCell::new(None) };
}

/// `init_module`: hands the supervisor the new configuration's pools,
/// forking it first if needed. Nothing happens under `nginx -t` or
/// `nginx -s`, or when no pool was ever declared.
pub fn configure(cycle: &ngx_cycle_t, mcf: &MainConf) {
    // SAFETY: plain globals nginx sets before calling module hooks.
    let (testing, signaller) =
        unsafe { (nginx_sys::ngx_test_config != 0, nginx_sys::ngx_process as u32 == nginx_sys::NGX_PROCESS_SIGNALLER) };
    if testing || signaller {
        return;
    }
    let running = SUPERVISOR.with_borrow(|s| s.is_some());
    if mcf.pool.pools.is_empty() && !running {
        return;
    }
    let log = Log::cycle();
    let plan = plan_of(cycle, mcf);
    if let Err(e) = send(&plan) {
        log.write(Level::Alert, &format!("rust_pool: cannot reach the pool supervisor: {e}"));
    }
}

fn send(plan: &Plan) -> std::io::Result<()> {
    let message = serde_json::to_vec(plan).map_err(std::io::Error::other)?;
    let mut frame = (message.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(&message);
    // A supervisor that died (it should not) is replaced: its pool
    // processes died with it.
    for _ in 0..2 {
        if SUPERVISOR.with_borrow(|s| s.is_none()) {
            start()?;
        }
        let written = SUPERVISOR.with_borrow_mut(|s| match s.as_mut() {
            Some(pipe) => pipe.write_all(&frame),
            None => Err(std::io::ErrorKind::NotConnected.into()),
        });
        match written {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                SUPERVISOR.with_borrow_mut(|s| s.take());
            }
            Err(e) => return Err(e),
        }
    }
    Err(std::io::ErrorKind::BrokenPipe.into())
}

fn start() -> std::io::Result<()> {
    let table = slots::create()?;
    let mut fds = [0; 2];
    // SAFETY: plain syscall; the fds are checked and owned below. The
    // write end is close-on-exec so a binary upgrade (USR2) does not keep
    // it.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fresh descriptors we own.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: the master is single-threaded here (nginx's master never
    // starts threads, and this module starts none in it), so the child may
    // go on running Rust code; it never returns.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if pid == 0 {
        drop(write);
        supervisor::run(table, read);
    }
    drop(read);
    SUPERVISOR.with_borrow_mut(|s| *s = Some(std::fs::File::from(write)));
    Ok(())
}

/// In every process nginx forks from the master (workers, cache helpers):
/// drop the pipe, so that only the master keeps the supervisor alive.
pub fn forget_in_child() {
    drop(SUPERVISOR.with_borrow_mut(|s| s.take()));
}

fn plan_of(cycle: &ngx_cycle_t, mcf: &MainConf) -> Plan {
    // SAFETY: `new_log.file` is set by nginx before modules are
    // initialised (ngx_log_open_default); its name is empty for stderr.
    let (error_log, log_level) = unsafe {
        let file = cycle.new_log.file;
        let name = if file.is_null() { &[][..] } else { (*file).name.as_bytes() };
        let path = (!name.is_empty()).then(|| PathBuf::from(String::from_utf8_lossy(name).into_owned()));
        (path, cycle.new_log.log_level)
    };
    Plan { pools: mcf.pool.with_python(&mcf.python), error_log, log_level, nginx_uid: worker_uid(cycle), nginx_gid: worker_gid(cycle), env: worker_env(cycle) }
}

/// `ngx_core_conf_t` of the cycle.
fn core_conf(cycle: &ngx_cycle_t) -> Option<&ngx_core_conf_t> {
    // SAFETY: conf_ctx is indexed by module index; the core module's slot
    // holds its ngx_core_conf_t once the configuration is parsed.
    unsafe {
        let ctx = cycle.conf_ctx;
        if ctx.is_null() {
            return None;
        }
        let conf = *ctx.add(nginx_sys::ngx_core_module.index);
        (conf as *const ngx_core_conf_t).as_ref()
    }
}

fn worker_uid(cycle: &ngx_cycle_t) -> u32 {
    match core_conf(cycle) {
        // NGX_CONF_UNSET_UINT: not root, so workers keep the master's user.
        Some(ccf) if ccf.user != u32::MAX => ccf.user,
        // SAFETY: plain syscall.
        _ => unsafe { libc::geteuid() },
    }
}

fn worker_gid(cycle: &ngx_cycle_t) -> u32 {
    match core_conf(cycle) {
        Some(ccf) if ccf.user != u32::MAX => ccf.group,
        // SAFETY: plain syscall.
        _ => unsafe { libc::getegid() },
    }
}

/// What nginx puts in its workers' environment: TZ, and each `env NAME`
/// (inherited) or `env NAME=value`.
fn worker_env(cycle: &ngx_cycle_t) -> Vec<(String, String)> {
    let mut env = Vec::new();
    if let Ok(tz) = std::env::var("TZ") {
        env.push(("TZ".to_string(), tz));
    }
    let Some(ccf) = core_conf(cycle) else { return env };
    // SAFETY: `env` is an array of ngx_str_t owned by the cycle.
    let entries = unsafe { ccf.env.as_slice::<nginx_sys::ngx_str_t>() };
    for entry in entries {
        let text = String::from_utf8_lossy(entry.as_bytes()).into_owned();
        match text.split_once('=') {
            Some((name, value)) => env.push((name.to_string(), value.to_string())),
            None => {
                if let Ok(value) = std::env::var(&text) {
                    env.push((text, value));
                }
            }
        }
    }
    env
}
