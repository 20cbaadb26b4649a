//! The queue between nginx's thread and a pool of threads that share one
//! lock (Python's GIL).
//!
//! A channel that wakes a sleeping thread for every job is wrong here: the
//! woken thread queues up for the GIL behind the thread that is already
//! running jobs, the two trade the GIL back and forth (futex calls and
//! context switches on a machine whose cores nginx needs), and the job it
//! took waits up to Python's 5 ms switch interval. So a job wakes a thread
//! only when no thread is working. While one is, the jobs wait for it: it
//! takes the next one as soon as it is done, without sleeping in between.
//!
//! Queueing a job must not cost nginx's thread a lock that the working
//! threads take for every job either (contended, it puts nginx's thread to
//! sleep): jobs go through a lock-free channel, the count of working
//! threads is an atomic, and the lock is taken only to wake a thread.
//!
//! A working thread can also block (an app waiting on a database releases
//! the GIL but keeps its thread). Then the queue would stall behind it, so
//! while threads are working one idle thread stands by: it wakes every
//! [`STALL`] and, if no job was taken since it last looked, takes one.
//!
//! Waking a sleeping thread costs tens of microseconds, as much as a small
//! request; a thread that runs out of jobs first looks for `spin` more
//! (yielding the CPU on every look, so nginx's thread goes first), and only
//! one thread at a time does. On a machine whose CPUs are all busy this
//! backfires: a thread that spun waits for its turn on a CPU, and the jobs
//! wait with it, while the scheduler runs a thread that slept as soon as it
//! is woken. So when one yield outlasts `CONTENDED`, spinning stops for
//! `SPIN_OFF`.

use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

/// How long working threads may go without taking a queued job before the
/// standby thread takes one.
pub const STALL: Duration = Duration::from_millis(1);

/// Rounds of [`STALL`] with no thread working before the standby stops
/// waking up (a second). Until then a thread that starts working needs no
/// second wake-up for the standby.
const PARK_AFTER: u32 = 1000;

/// A yield that takes this long means the CPUs are busy: stop spinning.
const CONTENDED: Duration = Duration::from_micros(200);

/// How long spinning stays off once the CPUs were found busy.
const SPIN_OFF: Duration = Duration::from_millis(50);

pub struct JobQueue<T> {
    tx: Sender<T>,
    rx: Receiver<T>,
    /// Threads between taking a job and running out of jobs (spinning
    /// included).
    working: AtomicUsize,
    /// Jobs taken so far: the standby's measure of progress.
    taken: AtomicUsize,
    /// A thread is looking for a job without sleeping.
    spinning: AtomicBool,
    /// A thread was woken for the queued jobs and has not looked yet:
    /// further jobs need not take the lock to wake another.
    waking: AtomicBool,
    closed: AtomicBool,
    idle: Mutex<Idle>,
    /// The standby thread sleeps here: with a timeout while threads work,
    /// without one while none does (an idle worker uses no CPU).
    standby: Condvar,
    /// The other idle threads sleep here.
    sleepers: Condvar,
    spin: Duration,
    /// When spinning may start again, in µs since `epoch`.
    spin_off_until: AtomicU64,
    epoch: Instant,
}

struct Idle {
    standing_by: bool,
    /// The standby sleeps without a timeout: nobody has worked for
    /// [`PARK_AFTER`] rounds, and an idle worker must use no CPU.
    standby_parked: bool,
    sleeping: usize,
}

/// Whether the thread holding it counts as working.
pub struct Taker {
    working: bool,
}

impl<T> JobQueue<T> {
    pub fn new(spin: Duration) -> JobQueue<T> {
        let (tx, rx) = crossbeam_channel::unbounded();
        JobQueue {
            tx,
            rx,
            working: AtomicUsize::new(0),
            taken: AtomicUsize::new(0),
            spinning: AtomicBool::new(false),
            waking: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            idle: Mutex::new(Idle { standing_by: false, standby_parked: false, sleeping: 0 }),
            standby: Condvar::new(),
            sleepers: Condvar::new(),
            spin,
            spin_off_until: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Idle> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a job; gives it back once the queue is closed.
    pub fn push(&self, job: T) -> Result<(), T> {
        if self.closed.load(Ordering::Acquire) {
            return Err(job);
        }
        // Unbounded, and the queue holds a receiver: it cannot fail.
        self.tx.send(job).map_err(|e| e.into_inner())?;
        // Pairs with the fence in `next`: either this thread sees that no
        // thread works, or the thread that stopped working sees the job.
        fence(Ordering::SeqCst);
        if self.working.load(Ordering::SeqCst) == 0 && !self.waking.swap(true, Ordering::SeqCst) {
            let idle = self.lock();
            // A sleeper, so the standby stays on watch: one wake-up.
            if idle.sleeping > 0 {
                self.sleepers.notify_one();
            } else if idle.standing_by {
                self.standby.notify_one();
            } else {
                // Every thread is on its way to look at the queue anyway.
                self.waking.store(false, Ordering::SeqCst);
            }
        }
        Ok(())
    }

    /// No more jobs; threads finish what is queued, then `next` gives None.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let _idle = self.lock();
        self.standby.notify_all();
        self.sleepers.notify_all();
    }

    pub fn taker(&self) -> Taker {
        Taker { working: false }
    }

    /// The next job for a thread that is working already, if one is queued.
    pub fn try_next(&self, taker: &mut Taker) -> Option<T> {
        if !taker.working {
            // Counted before it takes the job, so that a standby that finds
            // the job gone also finds a thread working, and watches it.
            self.working.fetch_add(1, Ordering::SeqCst);
        }
        let Ok(job) = self.rx.try_recv() else {
            if !taker.working {
                self.working.fetch_sub(1, Ordering::SeqCst);
            }
            return None;
        };
        taker.working = true;
        self.taken.fetch_add(1, Ordering::Relaxed);
        Some(job)
    }

    /// The next job, waiting for one as long as it takes; None once the
    /// queue is closed and empty.
    pub fn next(&self, taker: &mut Taker) -> Option<T> {
        if taker.working {
            if let Some(job) = self.try_next(taker).or_else(|| self.spin_for_job(taker)) {
                return Some(job);
            }
            taker.working = false;
            self.working.fetch_sub(1, Ordering::SeqCst);
        }
        // Pairs with the fence in `push`.
        fence(Ordering::SeqCst);
        // Starting to work always goes through the lock, so that a parked
        // standby hears of it.
        let mut idle = self.lock();
        let mut is_standby = false;
        let mut stalled = false;
        let mut idle_rounds = 0;
        loop {
            // Whoever looks at the queue next answers for the jobs that
            // found `waking` set.
            self.waking.store(false, Ordering::SeqCst);
            let working = self.working.load(Ordering::SeqCst);
            if !self.rx.is_empty() && (stalled || working == 0) {
                if let Some(job) = self.try_next(taker) {
                    if is_standby {
                        idle.standing_by = false;
                        // Hand the watch on: this thread may block too.
                        if idle.sleeping > 0 {
                            self.sleepers.notify_one();
                        }
                    } else if idle.standby_parked {
                        self.standby.notify_one();
                    }
                    return Some(job);
                }
                // Another thread took it; look again before sleeping, as a
                // job queued meanwhile may not have woken anyone.
                continue;
            }
            if self.closed.load(Ordering::Acquire) && self.rx.is_empty() {
                if is_standby {
                    idle.standing_by = false;
                }
                // Threads that woke for `close` while jobs were left went
                // back to sleep.
                self.standby.notify_all();
                self.sleepers.notify_all();
                return None;
            }
            if is_standby || !idle.standing_by {
                idle.standing_by = true;
                is_standby = true;
                idle_rounds = if working > 0 { 0 } else { idle_rounds + 1 };
                if idle_rounds <= PARK_AFTER {
                    let seen = self.taken.load(Ordering::Relaxed);
                    let (guard, waited) =
                        self.standby.wait_timeout(idle, STALL).unwrap_or_else(PoisonError::into_inner);
                    idle = guard;
                    stalled = waited.timed_out() && self.taken.load(Ordering::Relaxed) == seen;
                } else {
                    idle.standby_parked = true;
                    idle = self.standby.wait(idle).unwrap_or_else(PoisonError::into_inner);
                    idle.standby_parked = false;
                    idle_rounds = 0;
                    stalled = false;
                }
            } else {
                idle.sleeping += 1;
                idle = self.sleepers.wait(idle).unwrap_or_else(PoisonError::into_inner);
                idle.sleeping -= 1;
            }
        }
    }

    /// Looks for a job for up to `spin`, if no other thread is looking. The
    /// thread still counts as working, so nobody is woken for a job it will
    /// take.
    fn spin_for_job(&self, taker: &mut Taker) -> Option<T> {
        if self.spin.is_zero() || !taker.working {
            return None;
        }
        if (self.epoch.elapsed().as_micros() as u64) < self.spin_off_until.load(Ordering::Relaxed) {
            return None;
        }
        if self.spinning.swap(true, Ordering::Acquire) {
            return None;
        }
        let start = Instant::now();
        let mut found = None;
        let mut last = start;
        while found.is_none() && !self.closed.load(Ordering::Relaxed) {
            std::thread::yield_now();
            found = self.try_next(taker);
            let now = Instant::now();
            if now - last >= CONTENDED {
                // Other threads want the CPUs. A spinning thread then only
                // delays the jobs it is meant to catch (it waits for its
                // turn, while one that sleeps is run as soon as it is
                // woken): stop spinning for a while.
                let off = (now - self.epoch + SPIN_OFF).as_micros() as u64;
                self.spin_off_until.store(off, Ordering::Relaxed);
                break;
            }
            if now - start >= self.spin {
                break;
            }
            last = now;
        }
        self.spinning.store(false, Ordering::Release);
        found
    }
}

#[cfg(test)]
impl<T> JobQueue<T> {
    fn state(&self) -> String {
        let idle = self.lock();
        format!(
            "queued {} working {} taken {} standing_by {} sleeping {}",
            self.rx.len(),
            self.working.load(Ordering::SeqCst),
            self.taken.load(Ordering::SeqCst),
            idle.standing_by,
            idle.sleeping
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    fn pool(threads: usize, spin: Duration, work: impl Fn(u64) + Send + Sync + 'static) -> (Arc<JobQueue<u64>>, Vec<std::thread::JoinHandle<()>>) {
        let queue = Arc::new(JobQueue::new(spin));
        let work = Arc::new(work);
        let handles = (0..threads)
            .map(|_| {
                let (queue, work) = (Arc::clone(&queue), Arc::clone(&work));
                std::thread::spawn(move || {
                    let mut taker = queue.taker();
                    while let Some(job) = queue.next(&mut taker) {
                        work(job);
                    }
                })
            })
            .collect();
        (queue, handles)
    }

    #[test]
    fn every_job_runs_once_then_threads_end() {
        let done = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&done);
        let (queue, handles) = pool(4, Duration::from_micros(50), move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        for i in 0..10_000 {
            queue.push(i).unwrap();
        }
        queue.close();
        assert_eq!(queue.push(1), Err(1));
        handles.into_iter().for_each(|h| h.join().unwrap());
        assert_eq!(done.load(Ordering::SeqCst), 10_000);
    }

    /// Job 0 blocks for 2 s; job 1, queued behind it while it works, must
    /// still finish quickly (taken by the standby).
    fn blocked_thread_case(idle_first: Duration) {
        let finished = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&finished);
        let (queue, handles) = pool(3, Duration::ZERO, move |job| {
            if job == 0 {
                std::thread::sleep(Duration::from_secs(2));
            }
            log.lock().unwrap().push(job);
        });
        std::thread::sleep(idle_first);
        queue.push(0).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        queue.push(1).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let quick = finished.lock().unwrap().clone();
        assert_eq!(quick, vec![1], "job 1 waited behind the blocked job; {}", queue.state());
        queue.close();
        handles.into_iter().for_each(|h| h.join().unwrap());
    }

    #[test]
    fn a_blocked_thread_does_not_stall_the_queue() {
        blocked_thread_case(Duration::ZERO);
    }

    #[test]
    fn a_blocked_thread_does_not_stall_the_queue_after_idling() {
        // Long enough for the standby to park.
        blocked_thread_case(STALL * PARK_AFTER * 2);
    }

    #[test]
    fn an_idle_pool_wakes_for_a_job() {
        let (tx, rx) = std::sync::mpsc::channel();
        let tx = Mutex::new(tx);
        let (queue, handles) = pool(2, Duration::ZERO, move |job| tx.lock().unwrap().send(job).unwrap());
        std::thread::sleep(Duration::from_millis(20));
        queue.push(7).unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(2)), Ok(7));
        queue.close();
        handles.into_iter().for_each(|h| h.join().unwrap());
    }
}
