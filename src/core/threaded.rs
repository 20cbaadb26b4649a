//! Responses produced on module threads (WSGI's threads, ASGI's loop): the
//! exchange as a request's [`Source`], and finding the request again when
//! the bridge wakes nginx. An exchange whose connection an adapter took
//! over (an ASGI WebSocket) goes to that adapter's handler instead
//! ([`attach_handler`]).
//!
//! Requests are found by exchange id in a table that only the nginx thread
//! touches; abandoning the source takes the entry out, so a wakeup for a
//! request nginx has freed finds nothing and touches nothing.

use std::cell::RefCell;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::engine::{self, Ending, Source};
use super::exchange::Exchange;
use crate::nginx::log::Log;
use crate::nginx::request::HttpRequest;

/// Where an exchange's events go: the engine, for a response; an
/// adapter's own handler, for a connection it took over.
#[derive(Clone)]
enum Target {
    Request(HttpRequest),
    Handler(std::rc::Rc<dyn Fn(Vec<super::exchange::Event>)>),
}

thread_local! {
    /// Keyed by our own sequential ids: no hashing worth SipHash's cost.
    static LIVE: RefCell<FxHashMap<u64, Target>> = RefCell::new(FxHashMap::default());
}

/// Sends `exchange`'s events to `handler` until [`detach`].
pub fn attach_handler(exchange: &Exchange, handler: std::rc::Rc<dyn Fn(Vec<super::exchange::Event>)>) {
    LIVE.with(|live| live.borrow_mut().insert(exchange.id(), Target::Handler(handler)));
}

pub fn detach(id: u64) {
    LIVE.with(|live| live.borrow_mut().remove(&id));
}

/// The nginx side of an exchange.
struct ExchangeSource(Arc<Exchange>);

impl Source for ExchangeSource {
    fn ack(&mut self, bytes: usize) {
        self.0.ack(bytes);
    }

    fn abandon(&mut self, _ending: Ending) {
        self.0.abandon();
        LIVE.with(|live| live.borrow_mut().remove(&self.0.id()));
    }
}

/// Makes `exchange` the source of `req`'s response.
pub fn attach(req: HttpRequest, exchange: Arc<Exchange>) -> Box<dyn Source> {
    LIVE.with(|live| live.borrow_mut().insert(exchange.id(), Target::Request(req)));
    Box::new(ExchangeSource(exchange))
}

/// The bridge says `exchange` has news.
pub fn resume(exchange: &Exchange) {
    let live = LIVE.with(|live| live.borrow().get(&exchange.id()).cloned());
    match live {
        Some(Target::Request(req)) => engine::deliver(req, exchange.take_events()),
        Some(Target::Handler(handler)) => handler(exchange.take_events()),
        // The request is gone (client left, timeout). Keep what the app
        // wanted logged; drop the rest.
        None => engine::log_orphans(Log::cycle(), exchange.take_events()),
    }
}
