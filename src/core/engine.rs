//! The nginx-thread side of every request an adapter serves.
//!
//! 1. The content handler ([`handle`]) starts nginx's body reader and
//!    returns `NGX_DONE`.
//! 2. When the body is in (or, unbuffered, once nginx's first read is
//!    done), `body_ready` lets the adapter check the request (`prepare`),
//!    copies it into owned data, sets up the request's context and lets the
//!    adapter start producing the response (`start`): app threads for WSGI,
//!    the event loop for ASGI, a child process for CGI, a pool process. The
//!    request waits with a timer of its own (the app's read timeout) and
//!    with `ngx_http_test_reading` watching for a client that leaves.
//! 3. Whatever the producer has (head, body chunks, end, failure, log
//!    lines) reaches the request through [`deliver`], which pushes output
//!    through nginx's filters (see [`super::respond`]).
//! 4. When the client is slow, the request waits for the write event
//!    instead (send timeout), and the producer is told through
//!    [`Source::ack`] only as nginx writes, which holds it back.
//!
//! The request is finalized exactly once. When it ends, however it ends,
//! its [`Source`] is abandoned (stopping the producer) before nginx frees it.

use std::ffi::c_void;
use std::ptr::NonNull;

use nginx_sys::{ngx_event_t, ngx_http_request_t, ngx_int_t, ngx_msec_t, NGX_DONE, NGX_ERROR, NGX_HTTP_INTERNAL_SERVER_ERROR};

use super::capture::{Body, RequestHead};
use super::catch_panic;
use super::exchange::Event;
use super::respond::{Next, RequestCtx};
pub use super::source::{log_orphans, Ending, Source};
use super::served::{Label, Served};
use crate::nginx::event::Timer;
use crate::nginx::log::{Level, Log};
use crate::nginx::request::HttpRequest;

/// What an interface adapter (WSGI, CGI, ...) plugs into the engine. All
/// calls run on the nginx thread and must not block.
pub trait Adapter {
    /// The directive, for log lines.
    const NAME: &'static str;

    /// The directive that sets [`Adapter::read_timeout`], for log lines.
    const READ_TIMEOUT_DIRECTIVE: &'static str;

    /// What [`Adapter::prepare`] picked to serve a request.
    type Job;

    /// Whether a request waits for a thread or process to take it (what
    /// `$rust_queue_time` measures); a CGI program starts at once.
    const QUEUED: bool = true;

    /// How long the app may stay silent before the client gets 504.
    fn read_timeout(r: HttpRequest) -> ngx_msec_t;

    /// What `$rust_app` and `$rust_pool` say serves the job.
    fn label(job: &Self::Job) -> Label;

    /// The directive and its read timeout's directive, for the log lines
    /// of this job (one adapter may serve several interfaces).
    fn names(_job: &Self::Job) -> (&'static str, &'static str) {
        (Self::NAME, Self::READ_TIMEOUT_DIRECTIVE)
    }

    /// The longest a whole response may take, if limited.
    fn total_timeout(_r: HttpRequest) -> Option<ngx_msec_t> {
        None
    }

    /// Read the request body unbuffered (the app sees it as it arrives)?
    fn unbuffered_body(_r: HttpRequest) -> bool {
        false
    }

    /// Checks that the request can be served here and picks what serves it,
    /// before anything is captured. A refusal is logged and answered.
    fn prepare(r: HttpRequest) -> Result<Self::Job, Refusal>;

    /// Starts producing the response. Events reach the request through
    /// [`deliver`] (from any later event handler, never from within
    /// `start`).
    fn start(job: Self::Job, r: HttpRequest, head: RequestHead, body: Body) -> Result<Box<dyn Source>, Refusal>;
}

/// Why an adapter could not take a request.
pub struct Refusal {
    pub status: u16,
    pub message: String,
}

/// The content handler body for adapter `A`.
///
/// # Safety
/// `r` must be the live request nginx passed to the content handler.
pub unsafe fn handle<A: Adapter>(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx calls content handlers with a live request.
    let Some(req) = (unsafe { HttpRequest::from_raw(r) }) else {
        return NGX_ERROR as ngx_int_t;
    };
    catch_panic(req.log(), A::NAME, || {
        if A::unbuffered_body(req) {
            req.set_unbuffered_body();
        }
        req.read_body(body_ready::<A>)
    })
        .unwrap_or(NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t)
}

/// nginx's body reader calls this once the whole body is buffered.
unsafe extern "C" fn body_ready<A: Adapter>(r: *mut ngx_http_request_t) {
    // SAFETY: the body reader calls its post handler with a live request.
    let Some(req) = (unsafe { HttpRequest::from_raw(r) }) else { return };
    let rc = match catch_panic(req.log(), A::NAME, || start::<A>(req)) {
        Some(Ok(())) => {
            if req.reading_body() {
                // Unbuffered: the first read of nginx's body reader left
                // its buffer full more often than not, the rest waiting in
                // the socket with no event to come for it.
                read_body(req);
            }
            return;
        }
        Some(Err(rc)) => rc,
        None => NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t,
    };
    req.finalize(rc);
}

fn start<A: Adapter>(req: HttpRequest) -> Result<(), ngx_int_t> {
    let internal_error = NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;
    let refused = |refusal: Refusal| {
        req.log().write(Level::Error, &format!("{}: {}", A::NAME, refusal.message));
        refusal.status as ngx_int_t
    };
    let job = A::prepare(req).map_err(refused)?;
    let conf = super::conf::UPSTREAM.of(req);
    let mut head = RequestHead::capture(&req);
    if let Some(conf) = conf {
        head.params = conf.params(req);
    }
    // Unbuffered and not all read yet: all of it, what nginx has read
    // already too, goes through `stream_body` once the producer is there.
    let streaming = req.reading_body();
    let body = if streaming { Ok(Body::default().streaming()) } else { Body::capture(&req) };
    let body = body.map_err(|e| {
        req.log().write(Level::Error, &format!("{}: cannot read the request body: {e}", A::NAME));
        internal_error
    })?;

    let read_timeout = A::read_timeout(req);
    let served = Served::new(A::label(&job), A::QUEUED);
    let ctx = req
        .alloc({
            let (name, timeout_directive) = A::names(&job);
            RequestCtx::new(name, timeout_directive, read_timeout, conf, served)
        })
        .map_err(|_| internal_error)?;
    req.set_ctx(ctx.as_ptr());
    req.add_cleanup(on_request_cleanup, ctx.as_ptr().cast()).map_err(|_| internal_error)?;
    req.set_event_handlers(on_write_event);
    // SAFETY: the context was just allocated in the request pool.
    unsafe { (*ctx.as_ptr()).start_app_timer(req, on_app_timeout) };
    if let Some(total) = A::total_timeout(req) {
        let mut deadline = Timer::new(on_deadline, req.as_ptr().cast(), req.log(), true);
        deadline.arm(total);
        // SAFETY: the context was just allocated in the request pool.
        unsafe { (*ctx.as_ptr()).deadline = Some((deadline, total)) };
    }

    let source = A::start(job, req, head, body).map_err(|refusal| {
        // SAFETY: as above; the request's status, for rust_status.
        unsafe { (*ctx.as_ptr()).served.failed(refusal.status) };
        refused(refusal)
    })?;
    // SAFETY: as above; `start` does not call back into the engine.
    unsafe {
        (*ctx.as_ptr()).source = Some(source);
        (*ctx.as_ptr()).body_streaming = streaming;
    }
    if streaming {
        req.set_read_handler(on_body_event);
    }
    Ok(())
}

/// `r->read_event_handler` while an unbuffered body is being read.
unsafe extern "C" fn on_body_event(r: *mut ngx_http_request_t) {
    // SAFETY: nginx calls request handlers with a live request.
    let Some(req) = (unsafe { HttpRequest::from_raw(r) }) else { return };
    read_body(req);
}

fn read_body(req: HttpRequest) {
    step(req, "request body", |ctx| ctx.stream_body(req).unwrap_or(Next::Wait));
}

/// Applies a producer's events to its request (nginx thread). The request
/// must be live: producers only call this while they are attached, and
/// they are detached (abandoned) before nginx frees the request.
pub fn deliver(req: HttpRequest, events: Vec<Event>) {
    if req.ctx::<RequestCtx>().is_none() {
        // Internally redirected elsewhere: nothing here wants output.
        log_orphans(req.log(), events);
        return;
    }
    let runner = req.posted_runner();
    req.set_log_request();
    step(req, "deliver", |ctx| ctx.deliver(req, events));
    runner.run();
}

/// `r->write_event_handler` while the engine owns the request.
unsafe extern "C" fn on_write_event(r: *mut ngx_http_request_t) {
    // SAFETY: nginx calls request handlers with a live request.
    let Some(req) = (unsafe { HttpRequest::from_raw(r) }) else { return };
    step(req, "write event", |ctx| ctx.on_write(req));
}

/// The app stayed silent for its read timeout.
unsafe extern "C" fn on_app_timeout(ev: *mut ngx_event_t) {
    // SAFETY: the timer lives in the request's context and is disarmed
    // when the request ends (and dropped with its pool), so the request is
    // live when it fires.
    let Some(req) = (unsafe { HttpRequest::from_raw(Timer::data_of(ev).cast()) }) else { return };
    let runner = req.posted_runner();
    req.set_log_request();
    step(req, "read timeout", |ctx| ctx.on_app_timeout(req));
    runner.run();
}

/// The total-time limit expired.
unsafe extern "C" fn on_deadline(ev: *mut ngx_event_t) {
    // SAFETY: the timer lives in the request's context and is disarmed
    // when the request pool goes, so the request is live when it fires.
    let Some(req) = (unsafe { HttpRequest::from_raw(Timer::data_of(ev).cast()) }) else { return };
    let runner = req.posted_runner();
    step(req, "deadline", |ctx| ctx.on_deadline(req));
    runner.run();
}

/// Runs one step of the request on its context, then concludes: the shape
/// of every entry point. A panic fails the request.
fn step(req: HttpRequest, what: &str, f: impl FnOnce(&mut RequestCtx) -> Next) {
    let Some(ctx) = req.ctx::<RequestCtx>() else { return };
    // SAFETY: the context lives in the request pool and the request is
    // live; no other reference to it exists while `f` runs.
    let next = catch_panic(req.log(), what, || f(unsafe { &mut *ctx.as_ptr() }));
    conclude(req, ctx, next);
}

/// nginx runs this when it frees or terminates the request.
unsafe extern "C" fn on_request_cleanup(data: *mut c_void) {
    catch_panic(Log::cycle(), "request cleanup", || {
        // SAFETY: registered in `start` with the request's context, which
        // lives in the request pool and is dropped only after request
        // cleanups ran.
        let ctx = unsafe { &mut *(data as *mut RequestCtx) };
        if !ctx.finished {
            // Ended from outside: the client left, or nginx gave up.
            ctx.finish(Ending::Failed);
        }
    });
}

/// Finalizes (or redirects) when asked to. A panic (`None`) fails the
/// request. After `finalize` the request and its context may be gone, so
/// this is always the last thing a handler does with them.
fn conclude(req: HttpRequest, ctx: NonNull<RequestCtx>, next: Option<Next>) {
    let next = {
        // SAFETY: the context is live until the finalize call below, and
        // this borrow ends before it (the request cleanup borrows it again).
        let ctx = unsafe { &mut *ctx.as_ptr() };
        if ctx.finished {
            // Already finalized or terminated (a panic can get here late).
            return;
        }
        let next = match next {
            Some(Next::Wait) => return,
            Some(next) => next,
            None => Next::Finalize(ctx.failure_rc(NGX_HTTP_INTERNAL_SERVER_ERROR as u16)),
        };
        let ending = match next {
            Next::Finalize(rc) if rc == NGX_ERROR as ngx_int_t || rc >= 400 => Ending::Failed,
            _ => Ending::Done,
        };
        ctx.finish(ending);
        next
    };
    match next {
        Next::Finalize(rc) => req.finalize(rc),
        Next::Redirect { uri, args } => {
            // nginx clears the context slot: the variables keep a way in.
            super::vars::remember(req, ctx);
            let redirected = if uri.starts_with(b"@") { req.named_location(&uri) } else { req.internal_redirect(&uri, &args) };
            match redirected {
                // nginx took another reference for the new location.
                Ok(()) => req.finalize(NGX_DONE as ngx_int_t),
                Err(_) => req.finalize(NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t),
            }
        }
        Next::Wait => {}
    }
}
