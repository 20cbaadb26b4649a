//! Building a response from a producer's events, on the nginx thread.
//!
//! [`RequestCtx`] lives in the request pool. It applies events (the head,
//! body chunks and file ranges, the end, failures, redirects), enforces
//! the app's own Content-Length, pushes output through nginx's filters, and
//! keeps the request's clocks: the app's read timeout (a timer of its own)
//! while the app works, nginx's send timeout (on the client connection's
//! write event, as for any upstream) while the client drains output.
//!
//! The head is applied the way nginx's upstream module applies an
//! upstream's: `X-Accel-*` instructions, hidden headers, and the typed
//! `headers_out` fields nginx's own filters read (see [`super::headers`]).

use nginx_sys::{
    ngx_http_test_reading, ngx_int_t, ngx_msec_t, NGX_ERROR, NGX_HTTP_CLIENT_CLOSED_REQUEST, NGX_HTTP_GATEWAY_TIME_OUT,
    NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_HTTP_NOT_FOUND, NGX_HTTP_REQUEST_TIME_OUT, NGX_HTTP_SPECIAL_RESPONSE, NGX_OK,
};

use super::conf::UpstreamConf;
use super::source::{log_orphans, Ending, Source};
use super::exchange::{Event, CHUNK_COST};
use super::head::ResponseHead;
use super::headers::{accel, accepts_ranges, survives_redirect};
use super::served::Served;
use crate::nginx::event::{InlineTimer, Timer};
use crate::nginx::log::Level;
use crate::nginx::output::{OutputChain, Sent};
use crate::nginx::request::HttpRequest;

/// What a handler does with the request next.
pub enum Next {
    Wait,
    Finalize(ngx_int_t),
    /// A CGI local redirect or `X-Accel-Redirect`: serve this URI (or,
    /// starting with `@`, this named location) instead.
    Redirect { uri: Vec<u8>, args: Vec<u8> },
}

/// Per-request state, in the request pool.
pub struct RequestCtx {
    pub source: Option<Box<dyn Source>>,
    name: &'static str,
    /// The directive that sets `read_timeout`, for the log line.
    timeout_directive: &'static str,
    read_timeout: ngx_msec_t,
    /// Fires when the app stays silent for `read_timeout`. Its own event,
    /// not the client connection's: subrequests share that connection.
    app_timer: Option<InlineTimer>,
    /// The total-time limit, if the adapter sets one.
    pub deadline: Option<(Timer, ngx_msec_t)>,
    /// `rust_hide_header`, `rust_ignore_headers`, ... of the location.
    conf: Option<&'static UpstreamConf>,
    /// Pass every chunk on at once (unless `X-Accel-Buffering: yes`).
    flush: bool,
    /// What the `$rust_*` variables report.
    pub served: Served,
    out: OutputChain,
    header_sent: bool,
    /// Body bytes still owed under the app's Content-Length, if it gave one.
    remaining: Option<u64>,
    /// The last buffer went to the output filters.
    ended: bool,
    /// Finalized or terminated; ignore everything but log lines.
    pub finished: bool,
    /// Waiting for the app, with `app_timer` armed (else for the client,
    /// with the send timeout on the write event).
    waiting_on_app: bool,
    /// An unbuffered request body is still being read (see
    /// `RequestCtx::stream_body`).
    pub body_streaming: bool,
    /// The app asked for more of it (Event::ResumeBody).
    body_resume: bool,
}

impl RequestCtx {
    pub fn new(
        name: &'static str,
        timeout_directive: &'static str,
        read_timeout: ngx_msec_t,
        conf: Option<&'static UpstreamConf>,
        served: Served,
    ) -> RequestCtx {
        RequestCtx {
            source: None,
            name,
            timeout_directive,
            read_timeout,
            app_timer: None,
            deadline: None,
            conf,
            flush: true,
            served,
            out: OutputChain::new(crate::nginx::this_module().map_or(std::ptr::null_mut(), |m| m as *const _ as *mut std::ffi::c_void)),
            header_sent: false,
            remaining: None,
            ended: false,
            finished: false,
            body_streaming: false,
            body_resume: false,
            waiting_on_app: true,
        }
    }

    /// Starts the app's clock; `on_timeout` runs when it expires, with
    /// the request as its data.
    ///
    /// # Safety
    /// The context must be in its final place (the request pool).
    pub unsafe fn start_app_timer(&mut self, req: HttpRequest, on_timeout: crate::nginx::event::EventHandler) {
        let timer = self.app_timer.insert(InlineTimer::new(on_timeout, req.as_ptr().cast(), req.log(), false));
        // SAFETY: as the caller promises; the context never moves again.
        unsafe { timer.arm(self.read_timeout) };
    }

    /// The request is over for the engine: stop the producer.
    pub fn finish(&mut self, ending: Ending) {
        self.finished = true;
        self.served.end();
        self.served.count(self.name);
        if let Some((timer, _)) = self.deadline.as_mut() {
            timer.disarm();
        }
        if let Some(timer) = self.app_timer.as_mut() {
            timer.disarm();
        }
        if let Some(source) = self.source.as_mut() {
            source.abandon(ending);
        }
    }

    /// The directive, for log lines.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// `$rust_pid`.
    pub fn pid(&self) -> Option<u32> {
        self.source.as_ref().and_then(|s| s.pid())
    }

    /// A failed app answers `status` until its head went out; after that
    /// only closing the connection tells the client the response is broken.
    pub fn failure_rc(&self, status: u16) -> ngx_int_t {
        if self.header_sent {
            NGX_ERROR as ngx_int_t
        } else {
            status as ngx_int_t
        }
    }

    /// Credits the producer with what nginx finished writing (see
    /// [`super::exchange::cost`]).
    fn ack(&mut self, sent: &Sent) {
        let credit = sent.released + sent.released_buffers * CHUNK_COST;
        if credit > 0 {
            if let Some(source) = self.source.as_mut() {
                source.ack(credit);
            }
        }
    }

    /// A producer's events arrived.
    pub fn deliver(&mut self, req: HttpRequest, events: Vec<Event>) -> Next {
        if self.finished {
            log_orphans(req.log(), events);
            return Next::Wait;
        }
        match self.apply(req, events) {
            Next::Wait if std::mem::take(&mut self.body_resume) => match self.stream_body(req) {
                Some(next) => next,
                None => self.pump(req, true),
            },
            Next::Wait => self.pump(req, true),
            next => next,
        }
    }

    fn apply(&mut self, req: HttpRequest, events: Vec<Event>) -> Next {
        let mut events = events.into_iter().peekable();
        while let Some(event) = events.next() {
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
                Event::Started { at_ms } => {
                    self.served.taken(at_ms);
                    Ok(())
                }
                Event::Head(head) => {
                    // A head followed by a file is a file response (a file
                    // wrapper, pathsend): ranges of it, like a static file.
                    let file = matches!(events.peek(), Some(Event::File { .. }));
                    match self.send_head(req, head, file) {
                        Next::Wait => Ok(()),
                        next => return next,
                    }
                }
                Event::RawHead => {
                    req.mark_raw_response();
                    self.header_sent = true;
                    Ok(())
                }
                Event::Redirect { uri, args } if !self.header_sent => return Next::Redirect { uri, args },
                Event::Body(_) | Event::File { .. } | Event::Redirect { .. } if !self.header_sent => Err(()),
                Event::Redirect { .. } | Event::Other { .. } => Err(()),
                Event::ResumeBody => {
                    self.body_resume = true;
                    Ok(())
                }
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
                    self.served.failed(status);
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
                self.end(req).ok();
            }
        }
        Next::Wait
    }

    /// Ends a response that cannot be completed: what the app already
    /// produced goes to nginx, then the connection is closed, which is how
    /// the client learns the response is incomplete.
    fn break_off(&mut self, req: HttpRequest) -> Next {
        let sent = self.out.send(req, true);
        self.ack(&sent);
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
        }
        take
    }

    /// Applies the app's head as nginx's upstream module applies an
    /// upstream's (`ngx_http_upstream_process_headers`): `X-Accel-Redirect`
    /// hands the request elsewhere; the other `X-Accel-*` set limits and
    /// charsets; hidden headers stay back; every other header reaches
    /// `headers_out`, typed where nginx's filters look for it.
    fn send_head(&mut self, req: HttpRequest, head: ResponseHead, file: bool) -> Next {
        self.served.head(head.status());
        let hidden = |name: &[u8]| self.conf.is_some_and(|c| c.hides(name));
        if let Some(conf) = self.conf {
            let accel = accel(&head, conf);
            if let Some(target) = accel.redirect.map(<[u8]>::to_vec) {
                let next = self.accel_redirect(req, &head, target);
                self.served.keep_head(head);
                return next;
            }
            if let Some(rate) = accel.limit_rate {
                req.set_limit_rate(rate);
            }
            if let Some(charset) = accel.charset {
                if req.set_override_charset(charset).is_err() {
                    return Next::Finalize(NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t);
                }
            }
            if let Some(buffering) = accel.buffering {
                self.flush = !buffering;
            }
        }
        let applied = req.set_status(head.status(), head.status_line()).and_then(|()| {
            head.headers().iter().filter(|(n, _)| !hidden(n)).try_for_each(|(n, v)| req.add_response_header(n, v))
        });
        if let Err(e) = applied {
            req.log().write(Level::Error, &format!("{}: cannot set the response headers: {e}", self.name));
            return Next::Finalize(NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t);
        }
        match head.content_length() {
            Some(length) => self.remaining = Some(length),
            None => req.clear_content_length(),
        }
        // Like a static file, a file response answers ranges, several at
        // once too (it is one buffer); another response does when the app
        // says it may, one range at a time (as proxy_force_ranges does).
        if file {
            req.allow_ranges(false);
        } else if accepts_ranges(&head) {
            req.allow_ranges(true);
        }
        self.served.keep_head(head);
        let rc = req.send_header();
        self.header_sent = true;
        if rc == NGX_ERROR as ngx_int_t || rc > NGX_OK as ngx_int_t || req.header_only() {
            // HEAD, 204, 304, or a filter that answered itself: the app's
            // body is not wanted.
            return Next::Finalize(rc);
        }
        Next::Wait
    }

    /// `X-Accel-Redirect`: the headers nginx keeps across it (Content-Type,
    /// Content-Disposition, cookies, caching) go to `headers_out`, then the
    /// request goes to the URI or named location. An unsafe URI (`..`)
    /// answers 404, as with an upstream.
    fn accel_redirect(&mut self, req: HttpRequest, head: &ResponseHead, target: Vec<u8>) -> Next {
        let kept = head
            .headers()
            .iter()
            .filter(|(n, _)| survives_redirect(n))
            .try_for_each(|(n, v)| req.add_response_header(n, v));
        if kept.is_err() {
            return Next::Finalize(NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t);
        }
        if target.starts_with(b"@") {
            return Next::Redirect { uri: target, args: Vec::new() };
        }
        match req.parse_unsafe_uri(&target) {
            Some((uri, args)) => Next::Redirect { uri, args },
            None => {
                req.log().write(
                    Level::Error,
                    &format!("{}: the app's X-Accel-Redirect \"{}\" is not a safe URI", self.name, String::from_utf8_lossy(&target)),
                );
                Next::Finalize(NGX_HTTP_NOT_FOUND as ngx_int_t)
            }
        }
    }

    /// Passes queued output on and decides what to wait for next.
    /// `progressed`: the app just produced something, so its read timeout
    /// starts over.
    fn pump(&mut self, req: HttpRequest, progressed: bool) -> Next {
        let wev = req.write_event();
        if self.header_sent {
            let sent = self.out.send(req, self.flush);
            self.ack(&sent);
            if sent.rc == NGX_ERROR as ngx_int_t || req.connection_failed() {
                return Next::Finalize(NGX_ERROR as ngx_int_t);
            }
            if self.ended {
                // nginx's own writer finishes whatever is still buffered.
                return Next::Finalize(NGX_OK as ngx_int_t);
            }
            // Without flushing, nginx's filters may hold our last chunks
            // until more come: that waits for the app, not the client.
            if req.output_pending() || (self.flush && self.out.busy()) {
                self.waiting_on_app = false;
                if let Some(timer) = self.app_timer.as_mut() {
                    timer.disarm();
                }
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
        if !self.waiting_on_app {
            // The client caught up: its send timeout is over.
            wev.clear_timer();
        }
        if progressed || !self.waiting_on_app {
            if let Some(timer) = self.app_timer.as_mut() {
                // SAFETY: the context lives in the request pool, where it
                // was when the timer was first armed.
                unsafe { timer.arm(self.read_timeout) };
            }
            self.waiting_on_app = true;
        }
        Next::Wait
    }

    pub fn on_write(&mut self, req: HttpRequest) -> Next {
        if self.finished {
            return Next::Wait;
        }
        let wev = req.write_event();
        if wev.timed_out() {
            if self.waiting_on_app {
                // Another request's send timeout on this connection (an
                // SSI page around this subrequest): not ours to act on.
                wev.clear_timed_out();
                return Next::Wait;
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

    /// The app stayed silent for `read_timeout`.
    pub fn on_app_timeout(&mut self, req: HttpRequest) -> Next {
        if self.finished || !self.waiting_on_app {
            return Next::Wait;
        }
        req.log().write(
            Level::Error,
            &format!(
                "{name}: the app sent nothing for {ms} ms; answering {status} (raise {directive} if it is meant to be slow)",
                name = self.name,
                directive = self.timeout_directive,
                ms = self.read_timeout,
                status = if self.header_sent { "by closing the connection" } else { "504" },
            ),
        );
        self.served.timed_out();
        Next::Finalize(self.failure_rc(NGX_HTTP_GATEWAY_TIME_OUT as u16))
    }

    pub fn on_deadline(&mut self, req: HttpRequest) -> Next {
        if self.finished {
            return Next::Wait;
        }
        let total = self.deadline.as_ref().map_or(0, |(_, ms)| *ms);
        req.log().write(
            Level::Error,
            &format!(
                "{}: the app did not finish within its total time of {total} ms; answering {}",
                self.name,
                if self.header_sent { "by closing the connection" } else { "504" },
            ),
        );
        self.served.timed_out();
        Next::Finalize(self.failure_rc(NGX_HTTP_GATEWAY_TIME_OUT as u16))
    }
}

impl RequestCtx {
    /// Reads an unbuffered request body while its producer has room, handing
    /// each piece over as it comes. Returns how to end the request when
    /// reading failed (client gone, `client_body_timeout`).
    ///
    /// The only reader of such a body, from its first byte: the engine's `body_ready`
    /// runs it once the producer is there, then the read event and
    /// `Event::ResumeBody` do. It stops only where something is sure to run
    /// it again:
    ///
    /// - the producer has no room: it publishes `Event::ResumeBody` once it
    ///   has taken enough (the ASGI room's `BodyFlow` makes sure that is not
    ///   lost), and a client that resets meanwhile is noticed on its read
    ///   event;
    /// - nginx waits for the client ([`HttpRequest::body_needs_client`]): the
    ///   read event comes with more.
    ///
    /// Never merely because nginx returned NGX_AGAIN: it does that too when
    /// its buffer filled up before we took it, with more in the socket, for
    /// which edge-triggered epoll reports nothing new.
    pub(crate) fn stream_body(&mut self, req: HttpRequest) -> Option<Next> {
        // Reads in a row that brought nothing while nginx does not wait for
        // the client: after one, nginx has its buffer back and reads.
        let mut idle = 0;
        while self.body_streaming {
            let source = self.source.as_mut()?;
            if !source.body_room() {
                if let Some(e) = req.body_abandoned() {
                    req.log().write(Level::Info, &format!("client prematurely closed connection while the app held its request body back: {e}"));
                    self.body_streaming = false;
                    return Some(Next::Finalize(NGX_HTTP_CLIENT_CLOSED_REQUEST as ngx_int_t));
                }
                req.hold_body_reading();
                return None;
            }
            let rc = req.read_more_body();
            if rc >= NGX_HTTP_SPECIAL_RESPONSE as ngx_int_t {
                self.body_streaming = false;
                return Some(Next::Finalize(rc));
            }
            let chunk = req.take_unbuffered_body();
            let got = chunk.len();
            let last = !req.reading_body();
            if got > 0 || last {
                source.more_body(chunk, last);
            }
            if last {
                self.body_streaming = false;
                // As for any request the app works on: notice a client that
                // leaves.
                req.set_read_handler(ngx_http_test_reading);
            } else if req.body_needs_client(got) {
                return None;
            } else if got == 0 {
                idle += 1;
                if idle > 1 {
                    // Cannot happen (see body_needs_client); never spin the
                    // event loop on it.
                    req.log().write(Level::Alert, &format!("{}: nginx read nothing of the request body twice with the socket readable", self.name()));
                    return None;
                }
            } else {
                idle = 0;
            }
        }
        None
    }
}
