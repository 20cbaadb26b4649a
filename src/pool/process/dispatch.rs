//! Which of a pool process's app hosts runs a request, and the queue
//! deadline it carries there.
//!
//! Runs in a pool process, on its main thread (the front's).
//!
//! nginx names the app in the request's params (a pool serves every
//! location that points at it); a pool of its own serves its first app
//! when the name is empty. ASGI apps go to the event loop thread, WSGI
//! apps to the thread pool, with a deadline: a request still queued past
//! the pool's `queue_timeout` answers 503 instead of running late.

use std::collections::HashMap;
use std::sync::Arc;

use crate::asgi::host as asgi;
use crate::core::capture::{Body, RequestHead};
use crate::core::exchange::ResponseSink;
use crate::nginx::log::Level;
use crate::os::monotonic_us;
use crate::pool::params::Extras;
use crate::python::apps::App;
use crate::wsgi::host as wsgi;

/// The apps of a pool process and the hosts that run them.
pub struct Apps<'a> {
    /// The WSGI apps, by key.
    pub wsgi: HashMap<String, Arc<App>>,
    /// The app a request that names none goes to.
    pub default_app: Option<String>,
    pub wsgi_host: &'a wsgi::Host,
    pub asgi: Option<AsgiApps<'a>>,
    pub queue_timeout_us: u64,
}

/// The pool's ASGI apps: by key, their index in the host.
pub struct AsgiApps<'a> {
    pub keys: HashMap<String, usize>,
    pub host: &'a asgi::Host,
}

impl Apps<'_> {
    /// Hands a WebSocket handshake to the ASGI app it names; anything else
    /// answers 500.
    pub fn submit_websocket(&self, head: RequestHead, extras: &Extras, sink: ResponseSink) -> Option<asgi::RemoteWebSocket> {
        let name = if extras.app.is_empty() { self.default_app.as_deref().unwrap_or_default() } else { extras.app.as_str() };
        match &self.asgi {
            Some(AsgiApps { keys, host }) if keys.contains_key(name) => Some(host.submit_websocket(keys[name], head, sink)),
            _ => {
                sink.fail(500, vec![format!("rust_pool: this pool has no ASGI app \"{name}\" for a WebSocket; reload nginx")]);
                None
            }
        }
    }

    /// Hands the request to the host of its app. An ASGI request comes
    /// back as the handle the front tells the loop about (window
    /// acknowledged, request gone); an unknown app answers 500.
    pub fn submit(&self, head: RequestHead, extras: &Extras, body: Body, sink: ResponseSink) -> Option<asgi::Request> {
        let name = if extras.app.is_empty() { self.default_app.as_deref().unwrap_or_default() } else { extras.app.as_str() };
        if let Some(AsgiApps { keys, host }) = &self.asgi {
            if let Some(&app) = keys.get(name) {
                return Some(host.submit(app, head, body, sink));
            }
        }
        let Some(app) = self.wsgi.get(name).cloned() else {
            sink.fail(500, vec![format!("rust_pool: this pool does not serve the app \"{name}\"; reload nginx")]);
            return None;
        };
        let errors_level = Level::from_name(&extras.errors_level).unwrap_or(Level::Error);
        // The wait counts from when nginx's worker queued the request (the
        // same monotonic clock), but from no more than a second back, so a
        // stamp that is off cannot fail every request.
        let not_after = wsgi::NotAfter {
            at_us: extras.queued_at_us.max(monotonic_us().saturating_sub(1_000_000)) + self.queue_timeout_us,
            why: "rust_pool: the request waited longer than the pool's queue_timeout for a free thread",
        };
        self.wsgi_host.submit(app, head, body, sink, errors_level, Some(not_after));
        None
    }
}
