//! `rust_wsgi`: WSGI apps (PEP 3333) in nginx's worker processes.
//!
//! Each nginx worker runs a pool of `rust_wsgi_threads` threads that call
//! the apps; the engine in [`crate::core`] does everything on the nginx side.
//!
//! - [`host`]: the threads of a process and how a request is handed to
//!   them (an nginx worker's, and a pool process's).
//! - [`types`]: the environ.
//! - [`serving`]: calling the app and streaming its iterable.
//! - [`io`]: `wsgi.input` and `wsgi.file_wrapper`.
//! - [`callbacks`]: `start_response` and `write`.
//! - [`conf`]: `rust_wsgi`'s own settings (its threads and their spin).

pub mod callbacks;
pub mod conf;
pub mod host;
pub mod io;
pub mod serving;
pub mod types;

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use nginx_sys::{ngx_http_request_t, ngx_int_t, ngx_msec_t};

use crate::python::app_conf::{self, AppLocConf};
use crate::core::capture::{Body, RequestHead};
use crate::core::served::{Label, Text};
use crate::core::engine::{self, Adapter, Refusal, Source};
use crate::core::exchange::{Exchange, ResponseSink};
use crate::core::{runtime, threaded};
use crate::nginx::log::Level;
use crate::nginx::request::HttpRequest;
use self::host::Host;
use crate::python::apps::{App, Interface};

/// How long worker shutdown waits for threads still inside app code.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(200);

struct WsgiWorker {
    host: Host,
    apps: Vec<Arc<App>>,
}

thread_local! {
    static WORKER: RefCell<Option<WsgiWorker>> = const { RefCell::new(None) };
}

pub struct Wsgi;

impl Adapter for Wsgi {
    const NAME: &'static str = "rust_wsgi";
    const READ_TIMEOUT_DIRECTIVE: &'static str = "rust_wsgi_read_timeout";
    /// The app, and the level for its `wsgi.errors` lines.
    type Job = (Arc<App>, Level);

    fn read_timeout(r: HttpRequest) -> ngx_msec_t {
        app_conf::LOC.of(r).map_or(AppLocConf::DEFAULT_READ_TIMEOUT, |c| c.read_timeout)
    }


    fn label((app, _): &Self::Job) -> Label {
        Label { app: Some(Text::Shared(Arc::clone(&app.label))), pool: None }
    }

    fn prepare(r: HttpRequest) -> Result<Self::Job, Refusal> {
        let refuse = |message: &str| Refusal { status: 500, message: message.into() };
        let index = conf::LOC.of(r).and_then(|c| c.app).ok_or_else(|| refuse("no app is configured here"))?;
        let errors_level = app_conf::LOC.of(r).map_or(AppLocConf::DEFAULT_ERRORS_LEVEL, AppLocConf::errors_level);
        if runtime::bridge().is_none() {
            return Err(refuse("the module's runtime is not running in this worker (see the error logged at worker start)"));
        }
        WORKER.with(|worker| {
            let worker = worker.borrow();
            let worker = worker
                .as_ref()
                .ok_or_else(|| refuse("Python is not running in this worker (see the error logged at start-up)"))?;
            let app = worker.apps.get(index).cloned().ok_or_else(|| refuse("unknown app"))?;
            Ok((app, errors_level))
        })
    }

    fn start((app, errors_level): Self::Job, r: HttpRequest, head: RequestHead, body: Body) -> Result<Box<dyn Source>, Refusal> {
        let bridge = runtime::bridge().ok_or_else(|| Refusal { status: 500, message: "the module's runtime stopped".into() })?;
        let exchange = Exchange::new(bridge);
        let sink = ResponseSink::new(Arc::clone(&exchange));
        WORKER.with_borrow(|worker| {
            if let Some(worker) = worker {
                worker.host.submit(app, head, body, sink, errors_level, None);
            }
        });
        Ok(threaded::attach(r, exchange))
    }
}

/// The content handler `rust_wsgi` installs.
///
/// # Safety
/// Only nginx calls it, with a live request.
pub unsafe extern "C" fn content_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx calls content handlers with the live request.
    unsafe { engine::handle::<Wsgi>(r) }
}

/// Starts the thread pool in this worker (Python is started already, see
/// [`crate::python::start`]), and imports every app.
pub fn start(mcf: &conf::WsgiMainConf) -> Result<(), String> {
    let bridge = runtime::bridge().ok_or("the module's runtime did not start")?;
    let spin = std::time::Duration::from_micros(mcf.spin_us());
    let host = Host::start("rgw-wsgi", mcf.threads(), spin)?;
    let logger = crate::python::worker_logger(&bridge);
    let apps = crate::python::apps_of(&mcf.apps, Interface::Wsgi, &logger);
    host.preload(apps.clone(), Arc::clone(&bridge));
    WORKER.with(|w| *w.borrow_mut() = Some(WsgiWorker { host, apps }));
    Ok(())
}

/// Worker exit. nginx waited for running requests already (their timers
/// keep a shutting-down worker alive); threads stuck in app code past the
/// grace period are left to die with the process.
pub fn stop() {
    if let Some(worker) = WORKER.with(|w| w.borrow_mut().take()) {
        worker.host.stop(SHUTDOWN_GRACE);
    }
}
