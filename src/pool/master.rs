//! nginx's master and the pool supervisor.
//!
//! Runs in nginx's master.
//!
//! The master parses the configuration; on every load (the first start and
//! each `nginx -s reload`) `init_module` runs there, and this hands the
//! supervisor the pools the new configuration declares.
//!
//! The supervisor is one of nginx's own processes: the master starts it
//! with `ngx_spawn_process`, as it starts its workers and cache manager, so
//! it is in nginx's process table. When it dies, the master logs it (at
//! `alert` for a signal) and starts a new one at once, which begins with the
//! latest plan (it is a copy of the master) and starts the pools afresh:
//! their processes died with the old supervisor (PDEATHSIG). It is kept
//! across reloads (the master would tell it to quit with the old workers;
//! it is marked "just spawned" so that it is passed over), which is what
//! lets a reload replace pool processes gracefully instead of all at once.
//! `nginx -s quit` and `nginx -s stop` reach it through nginx's channel
//! like any nginx process, and the master waits for it.
//!
//! Being the master's child means being forked after nginx daemonizes, so
//! on the first start with `daemon on` the module daemonizes nginx itself,
//! with nginx's own `ngx_daemon`, a few steps earlier than nginx would.
//!
//! New plans travel through a pipe whose both ends the master keeps (a new
//! supervisor inherits the read end); the supervisor closes its copy of the
//! write end, so when the master is gone, even killed with SIGKILL, the pipe
//! ends and the supervisor stops the pools. Workers and nginx's helper
//! processes close both ends at once ([`forget_in_child`]).

use std::cell::{Cell, RefCell};
use std::ffi::c_void;
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;

use nginx_sys::{ngx_core_conf_t, ngx_cycle_t};
use serde::{Deserialize, Serialize};

use super::conf::PoolSpec;
use super::{slots, supervisor};
use super::conf::PoolMainConf;
use crate::python::config::PythonSettings;
use crate::nginx::log::{Level, Log};

/// What the master tells the supervisor after each configuration load.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// Counts configuration loads: a supervisor started with plan N skips
    /// plans up to N still queued in the pipe.
    pub generation: u64,
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

/// The plan pipe, as the master keeps it.
struct Pipe {
    read: OwnedFd,
    write: std::fs::File,
}

thread_local! {
    /// Only ever set in the master (and in single-process mode).
    static PIPE: RefCell<Option<Pipe>> = const { RefCell::new(None) };
    /// The latest plan: what a supervisor the master (re)starts begins with.
    static PLAN: RefCell<Option<Plan>> = const { RefCell::new(None) };
    /// The supervisor's slot in nginx's process table.
    static SLOT: Cell<Option<usize>> = const { Cell::new(None) };
}

const TITLE: &std::ffi::CStr = c"rust pool supervisor";

/// `init_module`: hands the supervisor the new configuration's pools,
/// starting it first if needed. Nothing happens under `nginx -t` or
/// `nginx -s`, or when no pool was ever declared.
pub fn configure(cycle: &ngx_cycle_t, pools: &PoolMainConf, python: &PythonSettings) {
    // SAFETY: plain globals nginx sets before calling module hooks.
    let (testing, signaller) =
        unsafe { (nginx_sys::ngx_test_config != 0, nginx_sys::ngx_process as u32 == nginx_sys::NGX_PROCESS_SIGNALLER) };
    if testing || signaller {
        return;
    }
    let running = SLOT.get().is_some();
    if pools.pools.is_empty() && !running {
        return;
    }
    let log = Log::cycle();
    let generation = PLAN.with_borrow(|p| p.as_ref().map_or(0, |p| p.generation)) + 1;
    let plan = plan_of(cycle, pools, python, generation);
    let result = if running { send(&plan) } else { start(cycle, &plan) };
    PLAN.with_borrow_mut(|p| *p = Some(plan));
    if let Err(e) = result {
        log.write(Level::Alert, &format!("rust_pool: cannot reach the pool supervisor: {e}"));
    }
}

/// A reload: the plan goes to the running supervisor (or, if it is dead
/// and not restarted yet, waits in the pipe for the next one), and the
/// supervisor is passed over when the master tells the old workers to
/// quit.
fn send(plan: &Plan) -> std::io::Result<()> {
    if let Some(slot) = SLOT.get() {
        // SAFETY: the master's own process table, on its only thread; the
        // slot is the one ngx_spawn_process gave the supervisor, checked
        // (by the name we gave it) to still hold it.
        unsafe {
            let entry = &mut *std::ptr::addr_of_mut!(nginx_sys::ngx_processes[slot]);
            if std::ptr::eq(entry.name, TITLE.as_ptr()) && entry.pid != -1 {
                entry.set_just_spawn(1);
            }
        }
    }
    let message = serde_json::to_vec(plan).map_err(std::io::Error::other)?;
    let mut frame = (message.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(&message);
    PIPE.with_borrow_mut(|pipe| match pipe.as_mut() {
        Some(pipe) => pipe.write.write_all(&frame),
        None => Err(std::io::ErrorKind::NotConnected.into()),
    })
}

/// The first plan: the table, the pipe, and the supervisor as an nginx
/// process.
fn start(cycle: &ngx_cycle_t, plan: &Plan) -> std::io::Result<()> {
    daemonize_first(cycle)?;
    slots::create()?;
    // Close-on-exec: a binary upgrade's new master (USR2) keeps neither.
    let fds = crate::os::pipe()?;
    PIPE.with_borrow_mut(|p| *p = Some(Pipe { read: fds.0, write: std::fs::File::from(fds.1) }));
    // The plan the process starts with (set by `configure` after this
    // returns, too late for the first fork).
    PLAN.with_borrow_mut(|p| *p = Some(plan.clone()));
    // SAFETY: the master is single-threaded here (nginx's master never
    // starts threads, and this module starts none in it); the name is a
    // static string; ngx_spawn_process forks and runs the process function
    // in the child, and records the child in nginx's process table.
    let pid = unsafe {
        nginx_sys::ngx_spawn_process(
            cycle as *const ngx_cycle_t as *mut ngx_cycle_t,
            Some(supervisor_process),
            std::ptr::null_mut(),
            TITLE.as_ptr() as *mut _,
            nginx_sys::NGX_PROCESS_RESPAWN as nginx_sys::ngx_int_t,
        )
    };
    if pid == -1 {
        return Err(std::io::Error::other("ngx_spawn_process failed (see the error log)"));
    }
    // SAFETY: set by the ngx_spawn_process call just made.
    SLOT.set(Some(unsafe { nginx_sys::ngx_process_slot } as usize));
    Ok(())
}

/// On the first start with `daemon on`, nginx daemonizes only after the
/// configuration is loaded, so a process forked now would be the child of
/// the launcher that is about to exit, out of the master's reach. The
/// module takes that step first, with nginx's own `ngx_daemon`, and tells
/// nginx it is done.
fn daemonize_first(cycle: &ngx_cycle_t) -> std::io::Result<()> {
    let Some(ccf) = core_conf_mut(cycle) else { return Ok(()) };
    // SAFETY: plain globals of nginx, read on its only thread.
    let (inherited, daemonized) = unsafe { (nginx_sys::ngx_inherited != 0, nginx_sys::ngx_daemonized != 0) };
    if inherited || daemonized || ccf.daemon != 1 || ccf.master != 1 {
        return Ok(());
    }
    // SAFETY: what nginx's main() does a few lines later: the parent exits,
    // the child goes on in a new session with /dev/null as stdin and
    // stdout; clearing `daemon` makes main() skip its own call.
    unsafe {
        match nginx_sys::ngx_daemon(cycle.log) {
            0 => {}
            // Debian's nginx returns the child's pid to the parent, whose
            // main() writes the pid file with it before exiting, so that the
            // file is there when the launcher returns: do the same.
            child if child > 0 => {
                nginx_sys::ngx_pid = child as nginx_sys::ngx_pid_t;
                nginx_sys::ngx_create_pidfile(&mut ccf.pid, cycle.log);
                libc::exit(0);
            }
            _ => return Err(std::io::Error::other("ngx_daemon() failed")),
        }
        nginx_sys::ngx_daemonized = 1;
        ccf.daemon = 0;
    }
    Ok(())
}

/// What nginx runs in the process it forks for the supervisor (first, and
/// after every death).
unsafe extern "C" fn supervisor_process(_cycle: *mut ngx_cycle_t, _data: *mut c_void) {
    let Some(table) = slots::table() else {
        // SAFETY: nothing of ours to clean up.
        unsafe { libc::_exit(1) }
    };
    let read = PIPE.with_borrow_mut(|p| p.take()).map(|p| p.read);
    let plan = PLAN.with_borrow_mut(|p| p.take());
    // SAFETY: nginx's channel to this process (ngx_spawn_process set it
    // before forking); the supervisor owns it from here on.
    let channel = unsafe { nginx_sys::ngx_channel };
    // SAFETY: a valid descriptor of ours (see above).
    let channel = (channel >= 0).then(|| unsafe { OwnedFd::from_raw_fd(channel) });
    match read {
        Some(read) => supervisor::run(table, read, channel, plan),
        // SAFETY: as above.
        None => unsafe { libc::_exit(1) },
    }
}

/// In every process nginx forks from the master (workers, cache helpers):
/// drop the pipe, so that only the master keeps the supervisor going.
pub fn forget_in_child() {
    drop(PIPE.with_borrow_mut(|p| p.take()));
    PLAN.with_borrow_mut(|p| p.take());
}

fn plan_of(cycle: &ngx_cycle_t, pools: &PoolMainConf, python: &PythonSettings, generation: u64) -> Plan {
    // SAFETY: `new_log.file` is set by nginx before modules are
    // initialised (ngx_log_open_default); its name is empty for stderr.
    let (error_log, log_level) = unsafe {
        let file = cycle.new_log.file;
        let name = if file.is_null() { &[][..] } else { (*file).name.as_bytes() };
        let path = (!name.is_empty()).then(|| PathBuf::from(String::from_utf8_lossy(name).into_owned()));
        (path, cycle.new_log.log_level)
    };
    Plan {
        generation,
        pools: pools.with_python(python),
        error_log,
        log_level,
        nginx_uid: worker_uid(cycle),
        nginx_gid: worker_gid(cycle),
        env: worker_env(cycle),
    }
}

/// `ngx_core_conf_t` of the cycle.
fn core_conf(cycle: &ngx_cycle_t) -> Option<&ngx_core_conf_t> {
    core_conf_mut(cycle).map(|c| &*c)
}

#[allow(clippy::mut_from_ref)]
fn core_conf_mut(cycle: &ngx_cycle_t) -> Option<&mut ngx_core_conf_t> {
    // SAFETY: conf_ctx is indexed by module index; the core module's slot
    // holds its ngx_core_conf_t once the configuration is parsed.
    unsafe {
        let ctx = cycle.conf_ctx;
        if ctx.is_null() {
            return None;
        }
        let conf = *ctx.add(nginx_sys::ngx_core_module.index);
        (conf as *mut ngx_core_conf_t).as_mut()
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
