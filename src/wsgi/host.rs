//! The WSGI app host: the threads that call one process's WSGI apps, and
//! the one way to hand them a request. An nginx worker builds one for its
//! `rust_wsgi` locations ([`super::start`]), a pool process one for the
//! pool's WSGI apps; both submit requests the same way and hear back
//! through the request's exchange.

use std::sync::Arc;
use std::time::Duration;

pub use super::serving::NotAfter;
use std::sync::atomic::Ordering::Relaxed;

use super::serving::{self, Job, Request};
use crate::core::bridge::Bridge;
use crate::core::metrics;
use crate::core::capture::{Body, RequestHead};
use crate::core::exchange::ResponseSink;
use crate::core::workers::Workers;
use crate::nginx::log::Level;
use crate::python::apps::App;

pub struct Host {
    threads: Workers<Job>,
    count: u32,
}

impl Host {
    /// `count` threads named `name`, which spin for `spin` before they
    /// sleep (Python is started already).
    pub fn start(name: &str, count: usize, spin: Duration) -> Result<Host, String> {
        let threads = Workers::start(name, count, spin, serving::run_thread).map_err(|e| format!("cannot start the {name} threads: {e}"))?;
        if let Some(worker) = metrics::mine() {
            worker.threads.fetch_add(count as u32, Relaxed);
        }
        Ok(Host { threads, count: count as u32 })
    }

    /// Imports `apps` now, one after the other on one thread, so the first
    /// request does not pay for it and a broken app is reported at once
    /// (through `bridge`).
    pub fn preload(&self, apps: Vec<Arc<App>>, bridge: Arc<Bridge>) {
        let _ = self.threads.submit(Job::Preload(apps, bridge));
    }

    /// A request for `app`, answered through `sink`; the app's `wsgi.errors`
    /// lines go to the log at `errors_level`. A request still waiting for a
    /// thread after `not_after` gets 503 instead of running.
    pub fn submit(&self, app: Arc<App>, head: RequestHead, body: Body, sink: ResponseSink, errors_level: Level, not_after: Option<NotAfter>) {
        let job = Job::Request(Request { app, head, body, sink, errors_level, not_after });
        let worker = metrics::mine();
        if let Some(worker) = worker {
            // nginx's cached clock: this runs on its thread. Counted before
            // a thread can take it.
            worker.enqueued(crate::core::served::now() as u64);
        }
        // A refused job (the host is stopping) drops its sink, which
        // answers 500; it left the queue at once.
        if self.threads.submit(job).is_err() {
            if let Some(worker) = worker {
                worker.dequeued();
            }
        }
    }

    /// Waits up to `grace` for threads inside app code; the rest are left
    /// to die with the process.
    pub fn stop(self, grace: Duration) {
        if let Some(worker) = metrics::mine() {
            worker.threads.fetch_sub(self.count, Relaxed);
        }
        self.threads.shutdown(grace);
    }
}
