//! Threads owned by the module.
//!
//! They start with every signal blocked, as nginx's own thread pool does:
//! otherwise SIGHUP, SIGQUIT or SIGCHLD could be delivered to one of them,
//! and nginx's main thread would keep sleeping in epoll_wait instead of
//! reloading or exiting.

use std::io;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use std::sync::Arc;

use super::jobs::JobQueue;

/// Python wants deep C stacks (recursion, regex, parsers); match the 8 MiB
/// main-thread default instead of Rust's 2 MiB.
const STACK_SIZE: usize = 8 << 20;

/// Spawns a thread with all signals blocked.
pub fn spawn(name: String, body: impl FnOnce() + Send + 'static) -> io::Result<JoinHandle<()>> {
    // SAFETY: sigfillset/pthread_sigmask only touch the sigset values we
    // pass; the calling thread's mask is restored before returning.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let spawned = std::thread::Builder::new().name(name).stack_size(STACK_SIZE).spawn(body);
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        spawned
    }
}

/// A fixed-size pool of threads taking jobs of type `T` from one
/// [`JobQueue`]. Each thread runs `run` on the queue until it closes; the
/// adapter decides how a thread works through its jobs.
pub struct Workers<T: Send + 'static> {
    queue: Arc<JobQueue<T>>,
    threads: Vec<JoinHandle<()>>,
}

impl<T: Send + 'static> Workers<T> {
    pub fn start(name: &str, count: usize, spin: Duration, run: fn(&JobQueue<T>)) -> io::Result<Workers<T>> {
        let queue = Arc::new(JobQueue::new(spin));
        let mut threads = Vec::with_capacity(count);
        for i in 0..count {
            let queue = Arc::clone(&queue);
            threads.push(spawn(format!("{name}-{i}"), move || run(&queue))?);
        }
        Ok(Workers { queue, threads })
    }

    /// Queues a job; gives it back if the pool is shutting down.
    pub fn submit(&self, job: T) -> Result<(), T> {
        self.queue.push(job)
    }

    /// Closes the queue and waits up to `grace` for the threads to finish
    /// the queued jobs. Threads stuck in app code past that are left to
    /// die with the process; waiting longer would hold up nginx's shutdown.
    pub fn shutdown(mut self, grace: Duration) -> usize {
        self.queue.close();
        wait_all(std::mem::take(&mut self.threads), grace)
    }
}

/// Joins the threads that finish within `grace`; returns how many did not.
pub fn wait_all(threads: Vec<JoinHandle<()>>, grace: Duration) -> usize {
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && threads.iter().any(|t| !t.is_finished()) {
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut stuck = 0;
    for thread in threads {
        if thread.is_finished() {
            let _ = thread.join();
        } else {
            stuck += 1;
        }
    }
    stuck
}
