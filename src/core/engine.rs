//! The nginx-thread side of every request an adapter serves.
//!
//! 1. The content handler ([`handle`]) starts nginx's body reader and
//!    returns `NGX_DONE`.
//! 2. When the body is in, [`body_ready`] copies the request into owned
//!    data, sets up the request's context, and lets the adapter hand the job
//!    to its threads. The request waits with a timer on the client
//!    connection's write event (the app's read timeout) and with
//!    `ngx_http_test_reading` watching for a client that leaves.
//! 3. Each time the exchange has news, the runtime's wakeup handler calls
//!    [`resume_exchange`], which applies the events (head, body chunks, end,
//!    failure, log lines) and pushes output through nginx's filters.
//! 4. When the client is slow, the request waits for the write event instead
//!    (send timeout) and the app waits for the exchange's window.
//!
//! The request is finalized exactly once. Requests are found by exchange id
//! in a table that the request's cleanup empties, so nothing touches a
//! request nginx has freed.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::c_void;
use std::ptr::NonNull;
use std::sync::Arc;

use nginx_sys::{
    ngx_http_request_t, ngx_int_t, ngx_msec_t, NGX_ERROR, NGX_HTTP_GATEWAY_TIME_OUT,
    NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_HTTP_REQUEST_TIME_OUT, NGX_OK,
};

use super::capture::{Body, RequestHead};
use super::catch_panic;
use super::exchange::{Event, Exchange, ResponseSink};
use super::head::ResponseHead;
use super::runtime;
use crate::module::module_ref;
use crate::nginx::log::{Level, Log};
use crate::nginx::output::OutputChain;
use crate::nginx::request::HttpRequest;

/// What an interface adapter (WSGI, CGI, ...) plugs into the engine. Both
/// calls run on the nginx thread and must not block.
pub trait Adapter {
    /// The directive, for log lines.
    const NAME: &'static str;

    /// What [`Adapter::prepare`] picked to serve a request.
    type Job;

    /// How long the app may stay silent before the client gets 504.
    fn read_timeout(r: HttpRequest) -> ngx_msec_t;

    /// Checks that the request can be served here and picks what serves it,
    /// before anything is captured. A refusal is logged and answered.
    fn prepare(r: HttpRequest) -> Result<Self::Job, Refusal>;

    /// Hands the captured request to the app. Every sink ends with an
    /// answer: a sink dropped unanswered answers 500 itself.
    fn dispatch(job: Self::Job, head: RequestHead, body: Body, sink: ResponseSink);
}

/// Why an adapter could not take a request.
pub struct Refusal {
    pub status: u16,
    pub message: String,
}

thread_local! {
    /// Requests waiting on an exchange, by exchange id. Only the nginx
    /// thread touches it.
    static LIVE: RefCell<HashMap<u64, HttpRequest>> = RefCell::new(HashMap::new());
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
    catch_panic(req.log(), A::NAME, || req.read_body(body_ready::<A>))
        .unwrap_or(NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t)
}

/// nginx's body reader calls this once the whole body is buffered.
unsafe extern "C" fn body_ready<A: Adapter>(r: *mut ngx_http_request_t) {
    // SAFETY: the body reader calls its post handler with a live request.
    let Some(req) = (unsafe { HttpRequest::from_raw(r) }) else { return };
    let rc = match catch_panic(req.log(), A::NAME, || start::<A>(req)) {
        Some(Ok(())) => return,
        Some(Err(rc)) => rc,
        None => NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t,
    };
    req.finalize(rc);
}

fn start<A: Adapter>(req: HttpRequest) -> Result<(), ngx_int_t> {
    let internal_error = NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;
    let Some(bridge) = runtime::bridge() else {
        req.log().write(
            Level::Error,
            &format!("{}: the module's runtime is not running in this worker (see the error logged at worker start)", A::NAME),
        );
        return Err(internal_error);
    };
    let job = A::prepare(req).map_err(|refusal| {
        req.log().write(Level::Error, &format!("{}: {}", A::NAME, refusal.message));
        refusal.status as ngx_int_t
    })?;
    let head = RequestHead::capture(&req);
    let body = Body::capture(&req).map_err(|e| {
        req.log().write(Level::Error, &format!("{}: cannot read the request body: {e}", A::NAME));
        internal_error
    })?;

    let exchange = Exchange::new(bridge);
    let read_timeout = A::read_timeout(req);
    let ctx = RequestCtx {
        exchange: Arc::clone(&exchange),
        name: A::NAME,
        read_timeout,
        out: OutputChain::new(module_ref() as *const _ as *mut c_void),
        header_sent: false,
        remaining: None,
        ended: false,
        finished: false,
        waiting_on_app: true,
    };
    let ctx = req.alloc(ctx).map_err(|_| internal_error)?;
    req.set_ctx(module_ref(), ctx.as_ptr());
    req.add_cleanup(on_request_cleanup, ctx.as_ptr().cast()).map_err(|_| internal_error)?;
    LIVE.with(|live| live.borrow_mut().insert(exchange.id(), req));
    req.set_event_handlers(on_write_event);
    req.write_event().restart_timer(read_timeout);

    A::dispatch(job, head, body, ResponseSink::new(exchange));
    Ok(())
}

/// Nginx thread: the exchange has news.
pub fn resume_exchange(exchange: &Exchange) {
    let live = LIVE.with(|live| live.borrow().get(&exchange.id()).copied());
    let Some(req) = live else {
        // The request is gone (client left, timeout). Keep what the app
        // wanted logged; drop the rest.
        log_orphans(Log::cycle(), exchange.take_events());
        return;
    };
    let Some(ctx) = req.ctx::<RequestCtx>(module_ref()) else { return };
    let runner = req.posted_runner();
    req.set_log_request();
    let next = catch_panic(req.log(), "resume", || {
        // SAFETY: the context lives in the request pool, and the request is
        // live (it is in LIVE). No other reference to it exists right now.
        let ctx = unsafe { &mut *ctx.as_ptr() };
        let events = ctx.exchange.take_events();
        if ctx.finished {
            log_orphans(req.log(), events);
            return Next::Wait;
        }
        match ctx.apply(req, events) {
            Next::Wait => ctx.pump(req, true),
            finalize => finalize,
        }
    });
    conclude(req, ctx, next);
    runner.run();
}

/// `r->write_event_handler` while the engine owns the request.
unsafe extern "C" fn on_write_event(r: *mut ngx_http_request_t) {
    // SAFETY: nginx calls request handlers with a live request.
    let Some(req) = (unsafe { HttpRequest::from_raw(r) }) else { return };
    let Some(ctx) = req.ctx::<RequestCtx>(module_ref()) else { return };
    let next = catch_panic(req.log(), "write event", || {
        // SAFETY: as in resume_exchange.
        let ctx = unsafe { &mut *ctx.as_ptr() };
        if ctx.finished {
            return Next::Wait;
        }
        ctx.on_write(req)
    });
    conclude(req, ctx, next);
}

/// nginx runs this when it frees or terminates the request.
unsafe extern "C" fn on_request_cleanup(data: *mut c_void) {
    catch_panic(Log::cycle(), "request cleanup", || {
        // SAFETY: registered in `start` with the request's context, which
        // lives in the request pool and is dropped only after request
        // cleanups ran.
        let ctx = unsafe { &mut *(data as *mut RequestCtx) };
        ctx.finished = true;
        ctx.exchange.abandon();
        LIVE.with(|live| live.borrow_mut().remove(&ctx.exchange.id()));
    });
}

enum Next {
    Wait,
    Finalize(ngx_int_t),
}

/// Finalizes when asked to. A panic (`None`) fails the request. After
/// `finalize` the request and its context may be gone, so this is always
/// the last thing a handler does with them.
fn conclude(req: HttpRequest, ctx: NonNull<RequestCtx>, next: Option<Next>) {
    let rc = {
        // SAFETY: the context is live until the finalize call below, and
        // this borrow ends before it (the request cleanup borrows it again).
        let ctx = unsafe { &mut *ctx.as_ptr() };
        if ctx.finished {
            // Already finalized or terminated (a panic can get here late).
            return;
        }
        let rc = match next {
            Some(Next::Wait) => return,
            Some(Next::Finalize(rc)) => rc,
            None => ctx.failure_rc(NGX_HTTP_INTERNAL_SERVER_ERROR as u16),
        };
        ctx.finished = true;
        ctx.exchange.abandon();
        rc
    };
    req.finalize(rc);
}

fn log_orphans(log: Log, events: Vec<Event>) {
    for event in events {
        match event {
            Event::Log(level, message) => log.write(level, &message),
            Event::Fail { lines, .. } => lines.iter().for_each(|l| log.write(Level::Error, l)),
            _ => {}
        }
    }
}

/// Per-request state, in the request pool.
struct RequestCtx {
    exchange: Arc<Exchange>,
    name: &'static str,
    read_timeout: ngx_msec_t,
    out: OutputChain,
    header_sent: bool,
    /// Body bytes still owed under the app's Content-Length, if it gave one.
    remaining: Option<u64>,
    /// The last buffer went to the output filters.
    ended: bool,
    /// Finalized or terminated; ignore everything but log lines.
    finished: bool,
    /// The write event's timer is the app's read timeout (else the send
    /// timeout).
    waiting_on_app: bool,
}

impl RequestCtx {
    /// A failed app answers `status` until its head went out; after that
    /// only closing the connection tells the client the response is broken.
    fn failure_rc(&self, status: u16) -> ngx_int_t {
        if self.header_sent {
            NGX_ERROR as ngx_int_t
        } else {
            status as ngx_int_t
        }
    }

    fn apply(&mut self, req: HttpRequest, events: Vec<Event>) -> Next {
        for event in events {
            if self.ended {
                // Past the end (or past the Content-Length): only log lines
                // still matter.
                if let Event::Log(level, message) = event {
                    req.log().write(level, &message);
                }
                continue;
            }
            let applied = match event {
                Event::Log(level, message) => {
                    req.log().write(level, &message);
                    Ok(())
                }
                Event::Head(head) => match self.send_head(req, &head) {
                    Next::Wait => Ok(()),
                    finalize => return finalize,
                },
                Event::Body(_) | Event::File { .. } if !self.header_sent => Err(()),
                Event::Body(mut chunk) => {
                    let take = self.admit(req, chunk.len() as u64);
                    chunk.truncate(take as usize);
                    self.out.push(req, chunk).map_err(drop)
                }
                Event::File { file, start, end, name } => {
                    let end = start + self.admit(req, end - start);
                    self.out.push_file(req, file, start, end, &name).map_err(drop)
                }
                Event::End => {
                    if let Some(missing) = self.remaining.filter(|&m| m > 0) {
                        req.log().write(
                            Level::Error,
                            &format!(
                                "{}: the app's response ended {missing} bytes short of its Content-Length; closing the connection",
                                self.name
                            ),
                        );
                        return self.break_off(req);
                    }
                    self.end(req)
                }
                Event::Fail { status, lines } => {
                    for line in &lines {
                        req.log().write(Level::Error, line);
                    }
                    if self.header_sent {
                        return self.break_off(req);
                    }
                    return Next::Finalize(status as ngx_int_t);
                }
            };
            if applied.is_err() {
                return Next::Finalize(self.failure_rc(500));
            }
            if self.remaining == Some(0) && !self.ended {
                // The whole declared body is here; anything more the app
                // sends is dropped by `admit`.
                self.end(req).map_err(drop).ok();
            }
        }
        Next::Wait
    }

    /// Ends a response that cannot be completed: what the app already
    /// produced goes to nginx, then the connection is closed, which is how
    /// the client learns the response is incomplete.
    fn break_off(&mut self, req: HttpRequest) -> Next {
        let sent = self.out.send(req);
        self.exchange.ack(sent.released);
        Next::Finalize(NGX_ERROR as ngx_int_t)
    }

    /// Queues the last buffer.
    fn end(&mut self, req: HttpRequest) -> Result<(), ()> {
        self.ended = true;
        self.out.push_last(req).map_err(drop)
    }

    /// How many of the next `len` body bytes may go to the client under the
    /// app's Content-Length. Like nginx with an upstream that sends too
    /// much: the excess is dropped and logged, and the connection is closed
    /// after the response rather than reused.
    fn admit(&mut self, req: HttpRequest, len: u64) -> u64 {
        let Some(remaining) = self.remaining else { return len };
        let take = len.min(remaining);
        self.remaining = Some(remaining - take);
        if take < len {
            req.log().write(
                Level::Error,
                &format!("{}: the app sent more than its Content-Length; the excess is dropped and the connection closed", self.name),
            );
            req.disable_keepalive();
            self.exchange.abandon();
        }
        take
    }

    fn send_head(&mut self, req: HttpRequest, head: &ResponseHead) -> Next {
        let applied = req
            .set_status(head.status(), head.status_line())
            .and_then(|()| head.headers().iter().try_for_each(|(n, v)| req.add_response_header(n, v)));
        if let Err(e) = applied {
            req.log().write(Level::Error, &format!("{}: cannot set the response headers: {e}", self.name));
            return Next::Finalize(NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t);
        }
        match head.content_length() {
            Some(length) => self.remaining = Some(length),
            None => req.clear_content_length(),
        }
        let rc = req.send_header();
        self.header_sent = true;
        if rc == NGX_ERROR as ngx_int_t || rc > NGX_OK as ngx_int_t || req.header_only() {
            // HEAD, 204, 304, or a filter that answered itself: the app's
            // body is not wanted.
            return Next::Finalize(rc);
        }
        Next::Wait
    }

    /// Passes queued output on and decides what to wait for next.
    /// `progressed`: the app just produced something, so its read timeout
    /// starts over.
    fn pump(&mut self, req: HttpRequest, progressed: bool) -> Next {
        let wev = req.write_event();
        if self.header_sent {
            let sent = self.out.send(req);
            if sent.released > 0 {
                self.exchange.ack(sent.released);
            }
            if sent.rc == NGX_ERROR as ngx_int_t || req.connection_failed() {
                return Next::Finalize(NGX_ERROR as ngx_int_t);
            }
            if self.ended {
                // nginx's own writer finishes whatever is still buffered.
                return Next::Finalize(NGX_OK as ngx_int_t);
            }
            if req.output_pending() || self.out.busy() {
                self.waiting_on_app = false;
                let (send_timeout, lowat) = req.core_send_timeout();
                if !wev.delayed() {
                    wev.set_timer(send_timeout);
                }
                if wev.want_write(lowat).is_err() {
                    return Next::Finalize(NGX_ERROR as ngx_int_t);
                }
                return Next::Wait;
            }
        }
        if progressed || !self.waiting_on_app {
            wev.restart_timer(self.read_timeout);
            self.waiting_on_app = true;
        }
        Next::Wait
    }

    fn on_write(&mut self, req: HttpRequest) -> Next {
        let wev = req.write_event();
        if wev.timed_out() {
            if self.waiting_on_app {
                req.log().write(
                    Level::Error,
                    &format!(
                        "{name}: the app sent nothing for {ms} ms; answering {status} (raise {name}_read_timeout if it is meant to be slow)",
                        name = self.name,
                        ms = self.read_timeout,
                        status = if self.header_sent { "by closing the connection" } else { "504" },
                    ),
                );
                return Next::Finalize(self.failure_rc(NGX_HTTP_GATEWAY_TIME_OUT as u16));
            }
            req.log().write(Level::Info, "client timed out");
            wev.mark_connection_timed_out();
            return Next::Finalize(NGX_HTTP_REQUEST_TIME_OUT as ngx_int_t);
        }
        if wev.delayed() || (self.waiting_on_app && !req.output_pending() && !self.out.busy()) {
            // limit_rate holds the output, or the socket became writable
            // while the app is still working: nothing to do yet.
            return Next::Wait;
        }
        self.pump(req, false)
    }
}
