//! Which kind of nginx process we are in, and what the module changes about
//! a worker: recycling it, SIGCHLD, and what a process the app forks
//! closes.

use nginx_sys::{ngx_process, NGX_PROCESS_SINGLE, NGX_PROCESS_WORKER};

/// True in a worker process or in `master_process off` mode: the only
/// processes that serve requests, so the only ones that may start Python,
/// threads or children. The master, `nginx -t`, `nginx -s` and the cache
/// helpers must stay free of them.
pub fn serves_requests() -> bool {
    // SAFETY: `ngx_process` is a plain integer that nginx sets before it
    // calls any module hook; we only read it on the nginx thread.
    let kind = unsafe { ngx_process } as u32;
    kind == NGX_PROCESS_WORKER || kind == NGX_PROCESS_SINGLE
}

/// Whether [`recycle_worker`] can work here: only a worker process has a
/// master to replace it.
pub fn recycle_possible() -> bool {
    // SAFETY: as in `serves_requests`.
    unsafe { ngx_process as u32 == NGX_PROCESS_WORKER }
}

/// Shuts this worker down gracefully, as SIGQUIT would: it stops
/// accepting, finishes its requests and exits, and the master starts a
/// fresh worker in its place. Only for worker processes: in single-process
/// mode it would stop nginx.
pub fn recycle_worker() -> bool {
    if !recycle_possible() {
        return false;
    }
    // SAFETY: `ngx_quit` is the flag nginx's own signal handler sets; the
    // worker loop checks it after the current events, on this thread.
    unsafe { nginx_sys::ngx_quit = 1 };
    true
}

/// Gives SIGCHLD its default disposition in this worker. nginx's handler
/// reaps any child with waitpid(-1) and logs an alert for one that died of
/// a signal; the module reaps its own children (and Python's subprocess
/// module its own) instead. Stock nginx workers have no children of theirs.
pub fn restore_default_sigchld() {
    // SAFETY: sigaction with a zeroed struct and SIG_DFL; nothing else is
    // touched.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGCHLD, &action, std::ptr::null_mut());
    }
}

/// The fork handler of a worker that runs Python (see
/// [`crate::os::watch_forks`]): a process the app forks closes every
/// descriptor nginx has a connection for (listening sockets, clients, the
/// module's eventfds, the channel to the master), every listening socket
/// and the channels to nginx's other processes, so it holds none of the
/// server's.
///
/// # Safety
/// Only as a fork child handler (it closes descriptors the process uses).
pub unsafe extern "C" fn close_nginx_fds_in_child() {
    // SAFETY: reads of nginx's cycle arrays (the forking thread may have
    // raced the nginx thread's updates: a stale entry costs at most a wrong
    // close in this child) and close() calls; nothing here locks or
    // allocates.
    unsafe {
        let cycle = nginx_sys::ngx_cycle;
        if cycle.is_null() {
            return;
        }
        let connections = (*cycle).connections;
        if !connections.is_null() {
            for i in 0..(*cycle).connection_n {
                let fd = (*connections.add(i)).fd;
                if fd >= 0 {
                    libc::close(fd);
                }
            }
        }
        let processes = std::ptr::addr_of!(nginx_sys::ngx_processes) as *const nginx_sys::ngx_process_t;
        for i in 0..(nginx_sys::ngx_last_process.max(0) as usize).min(nginx_sys::NGX_MAX_PROCESSES as usize) {
            for fd in (*processes.add(i)).channel {
                if fd >= 0 {
                    libc::close(fd);
                }
            }
        }
        let listening = &(*cycle).listening;
        let ls = listening.elts as *const nginx_sys::ngx_listening_t;
        if !ls.is_null() {
            for i in 0..listening.nelts {
                let fd = (*ls.add(i)).fd;
                if fd >= 0 {
                    libc::close(fd);
                }
            }
        }
    }
}
