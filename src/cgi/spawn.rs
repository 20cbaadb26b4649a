//! Starting a CGI program cheaply and cleanly.
//!
//! A plain fork() would copy the page tables of an nginx worker that may
//! hold a whole Python interpreter. This uses clone(CLONE_VM | CLONE_VFORK)
//! instead, the way glibc's posix_spawn does: the child borrows the
//! parent's memory, and the parent waits until the child has called execve.
//! posix_spawn itself cannot be used because it cannot set a parent-death
//! signal. In the child, before execve, only async-signal-safe system calls
//! run (no allocation, no locks):
//!
//! - every signal back to its default disposition, then an empty mask
//!   (nginx ignores SIGPIPE, and the parent blocks everything around the
//!   clone so no nginx handler runs in the child);
//! - its own process group, so timeouts kill the program and its children;
//! - SIGKILL when the nginx worker dies (PR_SET_PDEATHSIG);
//! - its stdin, stdout and stderr pipes as fds 0, 1 and 2, and every other
//!   descriptor closed (nginx's listening and client sockets are not
//!   close-on-exec);
//! - the script's directory as working directory.

use std::ffi::{c_void, CString};
use std::io;
use std::os::fd::RawFd;
use std::ptr;

pub struct Command {
    pub program: CString,
    /// argv, `argv[0]` included.
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    pub dir: CString,
    /// The child's ends of its stdin, stdout and stderr pipes.
    pub stdin: RawFd,
    pub stdout: RawFd,
    pub stderr: RawFd,
}

/// Everything the child needs, prepared by the parent (the child must not
/// allocate). With CLONE_VM the child writes `errno` here if exec fails.
struct ChildArgs {
    program: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    dir: *const libc::c_char,
    stdin: RawFd,
    stdout: RawFd,
    stderr: RawFd,
    parent: libc::pid_t,
    errno: libc::c_int,
}

/// Enough stack for the child's few system calls.
const CHILD_STACK: usize = 64 * 1024;

/// Starts the program: its pid, which is also its process group, and why
/// it could not exec, if it could not. That child has exited then, and
/// must still be reaped, like any other.
pub fn spawn(cmd: &Command) -> io::Result<(libc::pid_t, Option<io::Error>)> {
    let argv: Vec<*const libc::c_char> = cmd.argv.iter().map(|a| a.as_ptr()).chain([ptr::null()]).collect();
    let envp: Vec<*const libc::c_char> = cmd.envp.iter().map(|e| e.as_ptr()).chain([ptr::null()]).collect();
    let mut args = ChildArgs {
        program: cmd.program.as_ptr(),
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
        dir: cmd.dir.as_ptr(),
        stdin: cmd.stdin,
        stdout: cmd.stdout,
        stderr: cmd.stderr,
        // SAFETY: plain syscall.
        parent: unsafe { libc::getpid() },
        errno: 0,
    };
    // Not zeroed: a stack is written before it is read, and zeroing 64 KiB
    // on nginx's thread for every spawn is wasted.
    let mut stack: Vec<u8> = Vec::with_capacity(CHILD_STACK);
    // SAFETY: one past the end of the allocation (the stack grows down on
    // every Linux target we build for); aligned to 16 bytes as the ABI
    // requires. Only the child touches the memory, through raw pointers.
    let stack_top = unsafe { stack.as_mut_ptr().add(CHILD_STACK) } as usize & !15;

    // SAFETY: all signals are blocked around clone so that no handler of
    // nginx's can run in the child while it shares our memory; the mask is
    // restored before returning. With CLONE_VFORK, clone returns only after
    // the child has exec'd or exited, so `args`, `argv`, `envp` and `stack`
    // outlive its use of them.
    let pid = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let pid = libc::clone(
            child_main,
            stack_top as *mut c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            (&mut args as *mut ChildArgs).cast(),
        );
        let clone_errno = io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, ptr::null_mut());
        if pid < 0 {
            return Err(clone_errno);
        }
        pid
    };
    Ok((pid, (args.errno != 0).then(|| io::Error::from_raw_os_error(args.errno))))
}

/// The child, between clone and execve. Only async-signal-safe calls.
extern "C" fn child_main(arg: *mut c_void) -> libc::c_int {
    // SAFETY: `arg` is the parent's ChildArgs, alive until we exec or exit
    // (the parent is suspended by CLONE_VFORK). Everything below is a thin
    // wrapper around one system call.
    unsafe {
        let args = &mut *(arg as *mut ChildArgs);
        /// Reports errno to the parent (shared memory) and exits.
        unsafe fn fail(args: &mut ChildArgs) -> ! {
            // SAFETY: errno is readable; _exit never returns.
            unsafe {
                args.errno = *libc::__errno_location();
                if args.errno == 0 {
                    args.errno = libc::EINVAL;
                }
                libc::_exit(127)
            }
        }
        crate::os::default_signal_handlers();
        if libc::setpgid(0, 0) != 0 {
            fail(args);
        }
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 || libc::getppid() != args.parent {
            fail(args);
        }
        // A pipe end that is itself fd 0, 1 or 2 (nginx started with one of
        // them closed) is first copied above 2: dup2 onto it would clobber
        // it before its turn, and dup2 of an fd onto itself would leave it
        // close-on-exec.
        let mut stdio = [args.stdin, args.stdout, args.stderr];
        for fd in stdio.iter_mut() {
            if *fd < 3 {
                *fd = libc::fcntl(*fd, libc::F_DUPFD, 3);
                if *fd < 0 {
                    fail(args);
                }
            }
        }
        for (target, fd) in stdio.into_iter().enumerate() {
            if libc::dup2(fd, target as RawFd) < 0 {
                fail(args);
            }
        }
        crate::os::close_fds_from(3);
        if libc::chdir(args.dir) != 0 {
            fail(args);
        }
        crate::os::unblock_all_signals();
        libc::execve(args.program, args.argv, args.envp);
        fail(args)
    }
}
