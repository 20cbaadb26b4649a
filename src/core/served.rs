//! What a request's `$rust_*` variables report: which app served it, its
//! status, its headers, and where the time went. Filled on nginx's thread
//! as the producer's events arrive; read by [`super::vars`].
//!
//! Times are nginx's clock (`ngx_current_msec`, CLOCK_MONOTONIC in ms, the
//! clock `$upstream_response_time` uses too); a producer on another thread
//! or process stamps [`super::exchange::Event::Started`] with the same
//! system-wide clock.

use std::sync::Arc;

use nginx_sys::ngx_msec_t;

use super::head::ResponseHead;

/// A name that is either in the configuration or shared with the app.
#[derive(Clone, Debug)]
pub enum Text {
    Static(&'static str),
    Shared(Arc<str>),
}

impl Text {
    pub fn as_str(&self) -> &str {
        match self {
            Text::Static(s) => s,
            Text::Shared(s) => s,
        }
    }
}

/// Which app serves a request (`$rust_app`, `$rust_pool`).
#[derive(Clone, Debug, Default)]
pub struct Label {
    /// The app file (and callable), or the CGI program.
    pub app: Option<Text>,
    /// The pool, when one serves it.
    pub pool: Option<&'static str>,
}

/// Kept small: it lives in every request's context.
#[derive(Default)]
pub struct Served {
    pub label: Label,
    /// The request was handed to the app (its body read).
    started: ngx_msec_t,
    /// Milliseconds after `started` (NOT_YET until then): a thread or
    /// process began running it, the head arrived, the response ended.
    taken: Offset,
    header_at: Offset,
    ended_at: Offset,
    /// The app's status, or what its failure answered (502, 504, ...); 0
    /// until known.
    status: u16,
    /// The app's headers as it sent them, hidden ones too (`$rust_http_*`).
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// It ran past its read timeout or its total time.
    timed_out: bool,
}

/// A time after `started`, in ms.
#[derive(Clone, Copy)]
struct Offset(u32);

impl Default for Offset {
    fn default() -> Offset {
        Offset(u32::MAX)
    }
}

impl Offset {
    fn get(self) -> Option<ngx_msec_t> {
        (self.0 != u32::MAX).then_some(self.0 as ngx_msec_t)
    }

    /// Sets it once.
    fn set(&mut self, started: ngx_msec_t, at: ngx_msec_t) {
        if self.0 == u32::MAX {
            self.0 = at.saturating_sub(started).min(u32::MAX as ngx_msec_t - 1) as u32;
        }
    }
}

/// nginx's cached clock.
pub fn now() -> ngx_msec_t {
    // SAFETY: a plain global that nginx's thread updates between events;
    // this runs on that thread.
    unsafe { nginx_sys::ngx_current_msec }
}

impl Served {
    /// `queued`: the app waits for a thread or process to take it (not a
    /// CGI program, which starts at once).
    pub fn new(label: Label, queued: bool) -> Served {
        let started = now();
        let taken = if queued { Offset::default() } else { Offset(0) };
        Served { label, started, taken, ..Default::default() }
    }

    /// The producer began running the request at `at_ms` (its clock runs
    /// ahead of nginx's cached one by up to an event loop turn).
    pub fn taken(&mut self, at_ms: u64) {
        self.taken.set(self.started, at_ms as ngx_msec_t);
    }

    pub fn head(&mut self, status: u16) {
        self.status = status;
        self.header_at.set(self.started, now());
    }

    /// The app's headers stay for `$rust_http_*`.
    pub fn keep_head(&mut self, head: ResponseHead) {
        self.headers = head.into_headers();
    }

    /// A failure answered `status`, unless the app's own head went first.
    pub fn failed(&mut self, status: u16) {
        if self.status == 0 {
            self.status = status;
        }
    }

    /// It ran past its read timeout or its total time: 504, unless the
    /// app's own head went first.
    pub fn timed_out(&mut self) {
        self.timed_out = true;
        self.failed(504);
    }

    pub fn end(&mut self) {
        self.ended_at.set(self.started, now());
    }

    /// Counts the ended request in the status page's tables: under its
    /// app, served through `directive`. The time in the app leaves out the
    /// wait for a thread or process.
    pub fn count(&self, directive: &'static str) {
        let Some(app) = self.label.app.as_ref().map(Text::as_str).or(self.label.pool) else { return };
        let Some(entry) = super::metrics::app_of(app, directive, self.label.pool.unwrap_or("")) else { return };
        // None: it never left the queue (a timeout, a full queue, a client
        // that left), and has no time in the app.
        let in_app = self.queue_ms().map(|queued| self.app_ms().unwrap_or(queued).saturating_sub(queued) as u64);
        entry.served(self.status, in_app, self.timed_out);
    }

    pub fn status(&self) -> Option<u16> {
        (self.status != 0).then_some(self.status)
    }

    pub fn queue_ms(&self) -> Option<ngx_msec_t> {
        self.taken.get()
    }

    /// From the hand-over to the head (`$upstream_header_time`'s twin).
    pub fn header_ms(&self) -> Option<ngx_msec_t> {
        self.header_at.get()
    }

    /// From the hand-over to the end (`$upstream_response_time`'s twin).
    pub fn app_ms(&self) -> Option<ngx_msec_t> {
        self.ended_at.get()
    }

    /// The first value of the app's header `name` (`-` for `_`, any case).
    pub fn header(&self, name: &[u8]) -> Option<&[u8]> {
        self.headers.iter().find(|(n, _)| same_header(n, name)).map(|(_, v)| v.as_slice())
    }
}

/// `X-User` matches `x_user`, as `$upstream_http_x_user` does.
fn same_header(header: &[u8], var: &[u8]) -> bool {
    header.len() == var.len()
        && header.iter().zip(var).all(|(&h, &v)| {
            let h = if h == b'-' { b'_' } else { h.to_ascii_lowercase() };
            h == v.to_ascii_lowercase()
        })
}

/// nginx's format for times in variables: seconds with milliseconds.
pub fn seconds(ms: ngx_msec_t) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_like_nginx_times() {
        assert_eq!(seconds(0), "0.000");
        assert_eq!(seconds(1234), "1.234");
        assert_eq!(seconds(60_005), "60.005");
    }

    #[test]
    fn variable_names_match_headers() {
        assert!(same_header(b"X-Auth-User", b"x_auth_user"));
        assert!(!same_header(b"X-Auth-User", b"x_auth_use"));
        assert!(!same_header(b"X-Auth_User", b"x_auth_userx"));
    }
}
