//! The shared engine every interface adapter uses.
//!
//! - [`capture`]: copies a request out of nginx into owned data.
//! - [`meta`]: CGI-style meta-variables (SCRIPT_NAME, HTTP_*).
//! - [`head`]: response status and headers, validated before they reach
//!   nginx.
//! - [`cgi_head`]: a CGI-style response head (RFC 3875, 6), as CGI programs
//!   and FastCGI responders write it.
//! - [`exchange`]: the per-request channel from a worker thread back to the
//!   nginx thread, with a byte window for backpressure.
//! - [`bridge`]: the eventfd that wakes the nginx event loop.
//! - [`workers`]: threads owned by the module; [`jobs`]: the queue that
//!   hands them work; [`inbox`]: a queue with an eventfd, for a thread
//!   that sleeps in its own poll (the ASGI loop).
//! - [`engine`]: the nginx-thread side of a request's life: content
//!   handler, delivering a producer's events, timeouts and client aborts.
//! - [`respond`]: building the response from those events and streaming it
//!   through nginx's output filters (and the request body to the producer,
//!   when unbuffered).
//! - [`source`]: what the engine asks of a producer ([`source::Source`]).
//! - [`threaded`]: producers on module threads (an exchange per request).
//! - [`upstream`]: what producers on nginx's own thread share (a CGI
//!   program, a pool process): the window, the head reader, the handler
//!   shape.
//! - [`conf`], [`headers`]: what every location shares with nginx's
//!   upstreams: hidden and passed headers, `X-Accel-*`, `rust_param`.
//! - [`served`], [`vars`]: what the `$rust_*` variables report.
//! - [`metrics`]: the shared counters and gauges `rust_status` reports.
//! - [`runtime`]: the per-worker-process state that ties these together.
//! - [`watch`]: source trees watched with inotify, to recycle the worker.

pub mod bridge;
pub mod capture;
pub mod cgi_head;
pub mod conf;
pub mod engine;
pub mod exchange;
pub mod head;
pub mod headers;
pub mod inbox;
pub mod jobs;
pub mod metrics;
pub mod meta;
pub mod respond;
pub mod runtime;
pub mod served;
pub mod source;
pub mod threaded;
pub mod upstream;
pub mod vars;
pub mod watch;
pub mod workers;

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::nginx::log::{Level, Log};

/// Runs `f`, turning a panic into a log line and `None`. Every function nginx
/// calls goes through this: a panic must never unwind into C.
pub fn catch_panic<R>(log: Log, what: &str, f: impl FnOnce() -> R) -> Option<R> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(value) => Some(value),
        Err(payload) => {
            let reason = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            log.write(Level::Alert, &format!("rust_gateway: internal error in {what}: {reason}"));
            None
        }
    }
}
