//! `rust_asgi`: ASGI 3 apps in nginx's worker processes.
//!
//! Each nginx worker runs one asyncio event loop on a thread of its own
//! (uvloop when it is installed). The engine in [`crate::core`] does the
//! nginx side as for WSGI; requests reach the loop through an inbox with
//! an eventfd the loop watches, and responses come back through the
//! request's exchange and the bridge.
//!
//! - [`host`]: the loop thread of a process and how a request is handed
//!   to it (an nginx worker's, and a pool process's).
//! - [`types`]: the scope.
//! - [`serving`]: the loop itself and what it is sent.
//! - [`io`]: receive and send for one HTTP request.
//! - [`upgrade`], [`ws`]: WebSockets, nginx's side and the loop's;
//!   [`deflate`]: their permessage-deflate.
//! - [`credit`]: the windows between the loop and nginx's thread.
//! - `protocol.py`: the asyncio side (awaitables, tasks, lifespan).
//! - [`conf`]: `rust_asgi`'s own settings.

pub mod conf;
pub mod credit;
pub mod deflate;
pub mod host;
pub mod io;
pub mod serving;
pub mod types;
pub mod upgrade;
pub mod ws;

use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use nginx_sys::{ngx_http_request_t, ngx_int_t, ngx_msec_t, NGX_ERROR, NGX_HTTP_INTERNAL_SERVER_ERROR};

use self::host::Host;
use self::serving::Inbound;
use crate::core::capture::{Body, RequestHead};
use crate::core::served::{Label, Text};
use crate::core::engine::{self, Adapter, Ending, Refusal, Source};
use crate::core::exchange::{Exchange, ResponseSink};
use crate::core::inbox::Inbox;
use crate::core::{runtime, threaded};
use crate::core::catch_panic;
use crate::nginx::event::ExitWatch;
use crate::nginx::log::{Level, Log};
use crate::nginx::request::HttpRequest;
use crate::nginx::takeover::is_websocket_request;
use crate::python::apps::Interface;
use crate::python::app_conf::{self, AppLocConf};

struct AsgiWorker {
    host: Host,
    /// Each app's `$rust_app`, by index.
    labels: Vec<Arc<str>>,
    /// Closes WebSockets when a graceful shutdown starts.
    exit_watch: Option<ExitWatch>,
}

thread_local! {
    static WORKER: RefCell<Option<AsgiWorker>> = const { RefCell::new(None) };
}

pub struct Asgi;

impl Adapter for Asgi {
    const NAME: &'static str = "rust_asgi";
    const READ_TIMEOUT_DIRECTIVE: &'static str = "rust_asgi_read_timeout";
    /// The app's index, the loop's inbox, and the app's `$rust_app`.
    type Job = (usize, Arc<Inbox<Inbound>>, Option<Arc<str>>);

    fn read_timeout(r: HttpRequest) -> ngx_msec_t {
        app_conf::LOC.of(r).map_or(AppLocConf::DEFAULT_READ_TIMEOUT, |c| c.read_timeout)
    }


    fn label((_, _, label): &Self::Job) -> Label {
        Label { app: label.clone().map(Text::Shared), pool: None }
    }

    /// `rust_asgi_request_buffering off`.
    fn unbuffered_body(r: HttpRequest) -> bool {
        conf::LOC.of(r).is_some_and(|c| c.request_buffering == 0)
    }

    fn prepare(r: HttpRequest) -> Result<Self::Job, Refusal> {
        let refuse = |message: &str| Refusal { status: 500, message: message.into() };
        let index = conf::LOC.of(r).and_then(|c| c.app).ok_or_else(|| refuse("no app is configured here"))?;
        if runtime::bridge().is_none() {
            return Err(refuse("the module's runtime is not running in this worker (see the error logged at worker start)"));
        }
        if serving::FAILED.load(Ordering::Relaxed) {
            return Err(refuse("the event loop of this worker is not running (see the error logged at worker start)"));
        }
        let (inbox, label) = WORKER
            .with_borrow(|w| w.as_ref().map(|w| (Arc::clone(w.host.inbox()), w.labels.get(index).cloned())))
            .ok_or_else(|| refuse("the event loop did not start in this worker (see the error logged at start-up)"))?;
        Ok((index, inbox, label))
    }

    fn start((app, _, _): Self::Job, r: HttpRequest, head: RequestHead, body: Body) -> Result<Box<dyn Source>, Refusal> {
        let bridge = runtime::bridge().ok_or_else(|| Refusal { status: 500, message: "the module's runtime stopped".into() })?;
        let exchange = Exchange::new(bridge);
        let sink = ResponseSink::new(Arc::clone(&exchange));
        let request = WORKER
            .with_borrow(|w| w.as_ref().map(|w| w.host.submit(app, head, body, sink)))
            .ok_or_else(|| Refusal { status: 500, message: "the event loop stopped in this worker".into() })?;
        let inner = threaded::attach(r, Arc::clone(&exchange));
        Ok(Box::new(AsgiSource { inner, exchange, request }))
    }
}

/// The nginx side of an ASGI request: the exchange's source, which also
/// tells the loop when the window has room and when the request is over.
struct AsgiSource {
    inner: Box<dyn Source>,
    exchange: Arc<Exchange>,
    request: host::Request,
}

impl Source for AsgiSource {
    fn ack(&mut self, bytes: usize) {
        self.inner.ack(bytes);
        self.request.acked(&self.exchange);
    }

    fn abandon(&mut self, ending: Ending) {
        self.inner.abandon(ending);
        self.request.gone();
    }

    fn more_body(&mut self, chunk: Vec<u8>, last: bool) {
        self.request.more_body(chunk, last);
    }

    fn body_room(&mut self) -> bool {
        self.request.body_room()
    }
}

/// The content handler `rust_asgi` installs.
///
/// # Safety
/// Only nginx calls it, with a live request.
pub unsafe extern "C" fn content_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx calls content handlers with the live request.
    let Some(req) = (unsafe { HttpRequest::from_raw(r) }) else { return NGX_ERROR as ngx_int_t };
    if !is_websocket_request(&req) {
        // SAFETY: as above.
        return unsafe { engine::handle::<Asgi>(r) };
    }
    catch_panic(req.log(), "rust_asgi websocket", || match Asgi::prepare(req) {
        Ok((app, inbox, _)) => {
            let idle = Asgi::read_timeout(req);
            let compression = conf::LOC.of(req).is_none_or(|c| c.websocket_compression != 0);
            upgrade::start(req, app, inbox, idle, MAX_MESSAGE, compression)
        }
        Err(refusal) => {
            req.log().write(Level::Error, &format!("rust_asgi: {}", refusal.message));
            refusal.status as ngx_int_t
        }
    })
    .unwrap_or(NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t)
}

/// The largest WebSocket message (and frame) accepted, as uvicorn's
/// default: a bigger one closes the connection with 1009.
pub const MAX_MESSAGE: usize = 16 << 20;

/// Starts the event loop thread in this worker (Python is started
/// already); it imports every app and runs their lifespan startup.
pub fn start(mcf: &conf::AsgiMainConf) -> Result<(), String> {
    let bridge = runtime::bridge().ok_or("the module's runtime did not start")?;
    let logger = crate::python::worker_logger(&bridge);
    let apps = crate::python::apps_of(&mcf.apps, Interface::Asgi, &logger);
    let labels = apps.iter().map(|a| Arc::clone(&a.label)).collect();
    let host = Host::start(apps, logger)?;
    let exit_watch = ExitWatch::register(on_shutdown, Log::cycle())
        .map_err(|e| bridge.log(Level::Warn, format!("rust_asgi: WebSockets will not be closed on a graceful shutdown: {e}")))
        .ok();
    WORKER.with(|w| *w.borrow_mut() = Some(AsgiWorker { host, labels, exit_watch }));
    Ok(())
}

/// nginx's graceful shutdown notice (see [`ExitWatch`]).
unsafe extern "C" fn on_shutdown(ev: *mut nginx_sys::ngx_event_t) {
    catch_panic(Log::cycle(), "rust_asgi shutdown", || {
        // SAFETY: nginx calls this with our watch's read event.
        if !unsafe { ExitWatch::shutting_down(ev) } {
            return;
        }
        if let Some(watch) = WORKER.with_borrow_mut(|w| w.as_mut().and_then(|w| w.exit_watch.take())) {
            watch.close();
        }
        upgrade::close_all_for_exit();
    });
}

/// Worker exit: lifespan shutdown, then the loop stops. nginx waited for
/// running requests already.
pub fn stop() {
    let Some(worker) = WORKER.with(|w| w.borrow_mut().take()) else { return };
    if let Some(watch) = worker.exit_watch {
        watch.close();
    }
    worker.host.stop();
}
