//! Making the supervisor and pool processes out of forks, cleanly.
//!
//! Runs in the supervisor: first as it starts, in the process nginx's
//! master forked for it (`ngx_spawn_process`, see [`crate::pool::master`]),
//! then as it forks pool processes; and in each pool process until it
//! serves.
//!
//! Both are forks of single-threaded processes (the master, then the
//! supervisor), so Rust code may run in the child. What each child inherits
//! from nginx is cut off before anything else happens: every signal back to
//! its default and unblocked (the master blocks most of them), every fd
//! closed but its own (nginx's listening sockets are not close-on-exec), and
//! a pool process gets SIGKILL when the supervisor dies (PR_SET_PDEATHSIG).
//!
//! A pool process gets what FastCGI gives a responder: its listening socket
//! on fd 0. Its stdout and stderr are a pipe to the supervisor, which logs
//! the lines; fd 3 is a control pipe ("R" when ready, "T" after a timeout).
//! A program pool's process then executes its program, with fds 0, 1 and 2
//! only, as mod_fcgid and spawn-fcgi start FastCGI programs.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

use crate::pool::conf::PoolSpec;
use crate::os;

/// Where a pool process finds its listening socket (FastCGI's convention).
pub const LISTEN_FD: RawFd = 0;
/// The pool process's control pipe to the supervisor.
pub const CONTROL_FD: RawFd = 3;

/// Resets what the supervisor inherited from nginx's master: the plan
/// pipe ends up as fd 3 and nginx's channel as fd 4, returned with a
/// signalfd for SIGTERM and SIGQUIT (nginx's stop and quit when its channel
/// cannot carry them, or a whole process group or cgroup being stopped:
/// stop the pools).
pub fn become_supervisor(plans: OwnedFd, nginx: Option<OwnedFd>) -> (OwnedFd, Option<OwnedFd>, Option<OwnedFd>) {
    let plans = plans.into_raw_fd();
    let nginx = nginx.map(IntoRawFd::into_raw_fd);
    // SAFETY: plain syscalls in a fresh single-threaded child, on
    // descriptors it owns: the two are moved to fds 3 and 4 through
    // copies (either may be at 3 or 4 now), and everything above closed.
    unsafe {
        reset_signals();
        // Signals meant for nginx's workers (a `pkill -HUP nginx` too) are
        // not for us: nginx's channel says what the master wants.
        for signal in [libc::SIGHUP, libc::SIGINT, libc::SIGUSR1, libc::SIGUSR2, libc::SIGWINCH, libc::SIGPIPE] {
            libc::signal(signal, libc::SIG_IGN);
        }
        // Out of the way first (3 and 4 may be either of them), then in
        // place; closing from 5 also closes these copies.
        let plans = libc::fcntl(plans, libc::F_DUPFD, 100);
        let nginx = nginx.map(|fd| libc::fcntl(fd, libc::F_DUPFD, 100));
        libc::dup2(plans, 3);
        let nginx = nginx.filter(|&fd| fd >= 0 && libc::dup2(fd, 4) == 4).map(|_| 4);
        os::close_fds_from(5);
        set_title("rust pool supervisor");
        let mut stop: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut stop);
        libc::sigaddset(&mut stop, libc::SIGTERM);
        libc::sigaddset(&mut stop, libc::SIGQUIT);
        libc::sigprocmask(libc::SIG_BLOCK, &stop, std::ptr::null_mut());
        let signals = libc::signalfd(-1, &stop, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC);
        (
            OwnedFd::from_raw_fd(3),
            nginx.map(|fd| OwnedFd::from_raw_fd(fd)),
            (signals >= 0).then(|| OwnedFd::from_raw_fd(signals)),
        )
    }
}

/// Points the supervisor's stderr at nginx's error log file, as nginx's
/// `ngx_log_redirect_stderr` does for its own processes; with `error_log
/// stderr`, it stays where nginx's is.
pub fn redirect_stderr(error_log: Option<&std::path::Path>) {
    let Some(path) = error_log else { return };
    let Ok(file) = std::fs::OpenOptions::new().append(true).create(true).open(path) else { return };
    // SAFETY: plain syscall; fd 2 is replaced, `file` closes its own copy.
    unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&file), 2) };
}

/// Every signal to its default disposition, none blocked.
///
/// # Safety
/// Only for a process that owns its signal handling (a fresh child).
unsafe fn reset_signals() {
    // SAFETY: as the caller promises.
    unsafe {
        os::default_signal_handlers();
        os::unblock_all_signals();
    }
}

/// "nginx: TITLE" in ps, as nginx names its own processes.
fn set_title(title: &str) {
    if let Ok(title) = CString::new(title) {
        // SAFETY: nginx's own proctitle code, set up in main() before any
        // configuration was read; it copies the string.
        unsafe { nginx_sys::ngx_setproctitle(title.as_ptr().cast_mut()) };
        let short = CString::new(title.as_bytes().iter().take(15).copied().collect::<Vec<u8>>()).unwrap_or_default();
        // SAFETY: plain prctl with a NUL-terminated name.
        unsafe { libc::prctl(libc::PR_SET_NAME, short.as_ptr()) };
    }
}

pub struct Launch<'a> {
    pub spec: &'a PoolSpec,
    pub slot: usize,
    /// The abstract socket name (leading NUL included).
    pub socket: &'a [u8],
    pub nginx_uid: u32,
    pub nginx_gid: u32,
    pub env: &'a [(String, String)],
}

/// Makes the directory of the supervisor's program sockets (see
/// [`crate::pool::slots::program_dir`]), once: a new directory under a
/// random name (mkdir fails on anything already there, a link too), 0710
/// root:nginx-group when we are root, else 0700.
pub fn make_program_dir(table: &crate::pool::slots::Table, supervisor: u32, nginx_gid: u32) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    use std::sync::atomic::Ordering;
    if table.program_token.load(Ordering::Acquire) != 0 {
        return Ok(());
    }
    // SAFETY: plain syscall.
    let root = unsafe { libc::geteuid() } == 0;
    let mut last = io::Error::from(io::ErrorKind::AlreadyExists);
    for _ in 0..16 {
        let mut token = [0u8; 8];
        // SAFETY: getrandom writes at most the buffer's length.
        if unsafe { libc::getrandom(token.as_mut_ptr().cast(), token.len(), 0) } != token.len() as isize {
            return Err(io::Error::last_os_error());
        }
        let token = u64::from_ne_bytes(token) | 1;
        let dir = std::path::PathBuf::from(format!("/tmp/ngx-rust-gateway.{supervisor}.{token:016x}"));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {
                if root {
                    // Ours alone (in sticky /tmp nobody can swap it): the
                    // group may enter, nobody else may write.
                    std::os::unix::fs::lchown(&dir, Some(0), Some(nginx_gid))?;
                    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o710))?;
                }
                table.program_token.store(token, Ordering::Release);
                return Ok(());
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Removes the program sockets' directories of supervisors that no longer
/// run (one killed with SIGKILL cannot clean up after itself), and ours:
/// only directories we own.
pub fn remove_program_dirs(supervisor: u32) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir("/tmp") else { return };
    // SAFETY: plain syscall.
    let me = unsafe { libc::geteuid() };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("ngx-rust-gateway."))
            .and_then(|rest| rest.split('.').next())
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        let gone = pid as u32 == supervisor || crate::os::pid_gone(pid as u32);
        let ours = std::fs::symlink_metadata(entry.path()).is_ok_and(|m| m.is_dir() && m.uid() == me);
        if gone && ours {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

pub struct Child {
    pub pid: libc::pid_t,
    pub pidfd: OwnedFd,
    /// Its stdout and stderr.
    pub output: OwnedFd,
    /// None for a program (it is probed instead).
    pub control: Option<OwnedFd>,
}

/// Starts a pool process (supervisor only).
pub fn spawn(launch: &Launch) -> io::Result<Child> {
    let listener = listen(launch.socket, launch.nginx_uid, launch.nginx_gid)?;
    let program = launch.spec.program.as_ref().map(exec_args).transpose()?;
    let (output_read, output_write) = os::pipe()?;
    let (control_read, control_write) = os::pipe()?;
    // SAFETY: plain syscall.
    let supervisor = unsafe { libc::getpid() };
    // SAFETY: the supervisor is single-threaded; the child never returns.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: a fresh single-threaded child arranging its own fds.
        unsafe {
            libc::setpgid(0, 0);
            die_with(supervisor);
            reset_signals();
            // A client that goes away must not kill the process mid-write.
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
            libc::dup2(listener.as_raw_fd(), LISTEN_FD);
            libc::dup2(output_write.as_raw_fd(), 1);
            libc::dup2(output_write.as_raw_fd(), 2);
            if let Some(program) = &program {
                // fds 0, 1 and 2 only; signals as a fresh process has them.
                os::close_fds_from(3);
                libc::signal(libc::SIGPIPE, libc::SIG_DFL);
                std::mem::forget((listener, output_read, output_write, control_read, control_write));
                exec_program(launch, program, supervisor);
            }
            libc::dup2(control_write.as_raw_fd(), CONTROL_FD);
            os::close_fds_from(4);
        }
        std::mem::forget((listener, output_read, output_write, control_read, control_write));
        set_title(&format!("rust pool {}", launch.spec.name));
        let code = match drop_privileges(launch) {
            Ok(()) => {
                // Changing credentials clears the parent-death signal:
                // set it again, as the user the process now runs as.
                // SAFETY: plain syscalls in our own single-threaded child.
                unsafe { die_with(supervisor) };
                set_environment(launch.env, &launch.spec.python.env);
                crate::pool::process::main(launch.spec, launch.slot, launch.nginx_uid)
            }
            Err(e) => {
                crate::pool::log::say(crate::nginx::log::Level::Alert, &format!("cannot switch to user {e}"));
                1
            }
        };
        // SAFETY: leaving without running destructors or atexit handlers
        // of a process that may have Python threads.
        unsafe { libc::_exit(code) }
    }
    drop((listener, output_write, control_write));
    // SAFETY: plain syscall; checked below.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as RawFd;
    if pidfd < 0 {
        let err = io::Error::last_os_error();
        // SAFETY: our own child.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
        return Err(err);
    }
    // SAFETY: a fresh descriptor we own.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    let control = if program.is_some() { None } else { Some(control_read) };
    Ok(Child { pid, pidfd, output: output_read, control })
}

/// What a program process executes: its path and argv, and the
/// environment (nginx's, the pool's `env=`, and FastCGI's
/// `FCGI_WEB_SERVER_ADDRS`), made before the fork so that the child only
/// makes syscalls.
struct Exec {
    path: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    cwd: CString,
}

fn exec_args(program: &crate::pool::conf::Program) -> io::Result<Exec> {
    use std::os::unix::ffi::OsStrExt;
    let c = |bytes: &[u8]| CString::new(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in the program's settings"));
    let path = c(program.path.as_os_str().as_bytes())?;
    let mut argv = vec![path.clone()];
    for arg in &program.args {
        argv.push(c(arg.as_bytes())?);
    }
    Ok(Exec { path, argv, envp: Vec::new(), cwd: c(program.cwd.as_os_str().as_bytes())? })
}

/// The child's last steps into its program: directory, user, the
/// parent-death signal again, then exec. Never returns.
///
/// # Safety
/// Only in a fresh child of the supervisor, with its fds in place.
unsafe fn exec_program(launch: &Launch, exec: &Exec, supervisor: libc::pid_t) -> ! {
    let fail = |what: &str| {
        let line = format!("<3>cannot {what}: {}\n", io::Error::last_os_error());
        // SAFETY: writing to our own stderr (the supervisor's pipe).
        unsafe {
            libc::write(2, line.as_ptr().cast(), line.len());
            libc::_exit(127)
        }
    };
    if let Err(e) = drop_privileges(launch) {
        fail(&format!("switch to user {e}"));
    }
    // SAFETY: plain syscalls on NUL-terminated strings that outlive them;
    // the arrays end with a null pointer.
    unsafe {
        die_with(supervisor);
        if libc::chdir(exec.cwd.as_ptr()) != 0 {
            fail(&format!("enter cwd={}", exec.cwd.to_string_lossy()));
        }
        let mut envp: Vec<CString> = exec.envp.clone();
        envp.push(CString::from(c"PATH=/usr/local/bin:/usr/bin:/bin"));
        for (name, value) in launch.env.iter().chain(&launch.spec.python.env) {
            if let Ok(var) = CString::new(format!("{name}={value}")) {
                envp.push(var);
            }
        }
        // FastCGI's list of the web servers a program may take connections
        // from: read only for TCP sockets (this one is a unix socket that
        // only nginx's worker user can open), and set because programs
        // expect it.
        envp.push(CString::from(c"FCGI_WEB_SERVER_ADDRS=127.0.0.1"));
        let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|v| v.as_ptr()).collect();
        envp_ptrs.push(std::ptr::null());
        let mut argv_ptrs: Vec<*const libc::c_char> = exec.argv.iter().map(|v| v.as_ptr()).collect();
        argv_ptrs.push(std::ptr::null());
        libc::execve(exec.path.as_ptr(), argv_ptrs.as_ptr(), envp_ptrs.as_ptr());
    }
    fail(&format!("run {}", exec.path.to_string_lossy()))
}

/// SIGKILL when the supervisor goes; already gone (the signal would never
/// come): exit now.
///
/// # Safety
/// Only in a pool process, before it starts threads.
unsafe fn die_with(supervisor: libc::pid_t) {
    // SAFETY: plain syscalls.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 || libc::getppid() != supervisor {
            libc::_exit(1);
        }
    }
}

/// When we are root: the user and group of `user=`, else those of nginx's
/// workers (as mod_wsgi's daemons take Apache's user by default).
fn drop_privileges(launch: &Launch) -> Result<(), String> {
    // SAFETY: plain syscalls.
    unsafe {
        if libc::geteuid() != 0 {
            return Ok(());
        }
        let failed = |who: &str| format!("{who}: {}", io::Error::last_os_error());
        match &launch.spec.user {
            Some(user) => {
                let name = CString::new(user.name.as_str()).map_err(|_| user.name.clone())?;
                if libc::setgid(user.gid) != 0 || libc::initgroups(name.as_ptr(), user.gid) != 0 || libc::setuid(user.uid) != 0 {
                    return Err(failed(&format!("\"{}\"", user.name)));
                }
            }
            // nginx's workers run as root too: nothing to drop.
            None if launch.nginx_uid == 0 => {}
            None => {
                if libc::setgid(launch.nginx_gid) != 0 || libc::setgroups(0, std::ptr::null()) != 0 || libc::setuid(launch.nginx_uid) != 0 {
                    return Err(failed(&format!("uid {}", launch.nginx_uid)));
                }
            }
        }
    }
    Ok(())
}

/// The environment nginx gives its workers, the pool's env=, and a PATH.
fn set_environment(nginx: &[(String, String)], pool: &[(String, String)]) {
    let vars: Vec<(String, String)> = std::env::vars().collect();
    for (name, _) in vars {
        std::env::remove_var(name);
    }
    std::env::set_var("PATH", "/usr/local/bin:/usr/bin:/bin");
    for (name, value) in nginx.iter().chain(pool) {
        std::env::set_var(name, value);
    }
}

/// A listening socket at `name`; a program's (a file, in the directory
/// only we may write in) is for nginx's workers alone: made 0660 (the
/// umask applies to bind), then given to their group when we are root.
fn listen(name: &[u8], _nginx_uid: u32, nginx_gid: u32) -> io::Result<OwnedFd> {
    let path = (name.first() != Some(&0)).then(|| std::path::PathBuf::from(std::ffi::OsStr::from_bytes(name)));
    if let Some(path) = &path {
        let _ = std::fs::remove_file(path);
    }
    // SAFETY: plain syscalls; the supervisor is single-threaded, so the
    // umask changes for this bind alone.
    let old = path.as_ref().map(|_| unsafe { libc::umask(0o117) });
    let sock = bind_and_listen(name);
    if let Some(old) = old {
        // SAFETY: as above.
        unsafe { libc::umask(old) };
    }
    let sock = sock?;
    if let Some(path) = &path {
        // SAFETY: plain syscall.
        if unsafe { libc::geteuid() } == 0 {
            std::os::unix::fs::lchown(path, Some(0), Some(nginx_gid))?;
        }
    }
    Ok(sock)
}

fn bind_and_listen(name: &[u8]) -> io::Result<OwnedFd> {
    // SAFETY: plain syscalls on a socket we own; the address is built in a
    // zeroed sockaddr_un with the name's length checked.
    unsafe {
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let sock = OwnedFd::from_raw_fd(fd);
        let (addr, len) = crate::pool::slots::sockaddr(name)?;
        if libc::bind(fd, (&addr as *const libc::sockaddr_un).cast(), len) != 0 || libc::listen(fd, 1024) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(sock)
    }
}

