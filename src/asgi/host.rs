//! The ASGI app host: the event loop thread that runs one process's ASGI
//! apps, and the one way to hand it a request. An nginx worker builds one
//! for its `rust_asgi` locations ([`super::start`]), a pool process one for
//! the pool's ASGI apps; both submit requests the same way and hear back
//! through the request's exchange.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::credit::{BodyFlow, Credit};
use super::serving::{self, HttpStart, Inbound};
use crate::core::capture::{Body, RequestHead};
use crate::core::exchange::{Exchange, ResponseSink};
use crate::core::inbox::Inbox;
use crate::core::workers;
use crate::python::apps::{App, Logger};

pub struct Host {
    inbox: Arc<Inbox<Inbound>>,
    thread: JoinHandle<()>,
}

impl Host {
    /// Starts the loop thread (Python is started already); it imports every
    /// app and runs their lifespan startup before their first request.
    pub fn start(apps: Vec<Arc<App>>, logger: Logger) -> Result<Host, String> {
        let inbox = Arc::new(Inbox::new().map_err(|e| format!("eventfd() failed: {e}"))?);
        let thread = {
            let inbox = Arc::clone(&inbox);
            workers::spawn("rgw-asgi".into(), move || serving::run(inbox, apps, logger))
                .map_err(|e| format!("cannot start the event loop thread: {e}"))?
        };
        Ok(Host { inbox, thread })
    }

    /// An HTTP request for the app at `app` (its index among the apps the
    /// host started with), answered through `sink`'s exchange.
    pub fn submit(&self, app: usize, head: RequestHead, body: Body, sink: ResponseSink) -> Request {
        let id = sink.exchange().id();
        let (credit, flow) = (Credit::default(), BodyFlow::default());
        let start = HttpStart { id, app, head, body, sink, credit: credit.clone(), flow: flow.clone() };
        self.inbox.push(Inbound::Http(Box::new(start)));
        Request { id, inbox: Arc::clone(&self.inbox), credit, flow }
    }

    /// A WebSocket for the app at `app` whose client nginx's worker holds
    /// in another process (a pool's): the app's messages come back through
    /// `sink`'s exchange, the client's go through the handle.
    pub fn submit_websocket(&self, app: usize, head: RequestHead, sink: ResponseSink) -> RemoteWebSocket {
        let id = sink.exchange().id();
        let credit = Credit::default();
        self.inbox.push(Inbound::WsStart(Box::new(serving::WsStart { id, app, head, sink, credit: credit.clone() })));
        RemoteWebSocket { id, inbox: Arc::clone(&self.inbox), credit }
    }

    /// For the WebSocket side of this room, which speaks to the loop
    /// directly.
    pub(super) fn inbox(&self) -> &Arc<Inbox<Inbound>> {
        &self.inbox
    }

    /// Lifespan shutdown, then the loop stops (for at most its shutdown
    /// timeout).
    pub fn stop(self) {
        self.inbox.push(Inbound::Stop);
        let grace = Duration::from_secs_f64(serving::SHUTDOWN_TIMEOUT_S + 0.5);
        workers::wait_all(vec![self.thread], grace);
    }
}

/// What the submitter of a request tells the loop about it.
pub struct Request {
    id: u64,
    inbox: Arc<Inbox<Inbound>>,
    credit: Credit,
    flow: BodyFlow,
}

/// A WebSocket of [`Host::submit_websocket`]: what its client sends, and
/// room in its window.
pub struct RemoteWebSocket {
    id: u64,
    inbox: Arc<Inbox<Inbound>>,
    credit: Credit,
}

impl RemoteWebSocket {
    pub fn text(&self, text: String) {
        self.inbox.push(Inbound::WsEvent(self.id, serving::WsEvent::Text(text.into())));
    }

    pub fn bytes(&self, bytes: Vec<u8>) {
        self.inbox.push(Inbound::WsEvent(self.id, serving::WsEvent::Bytes(bytes.into())));
    }

    pub fn disconnect(&self, code: u16, reason: String) {
        self.inbox.push(Inbound::WsEvent(self.id, serving::WsEvent::Disconnect(code, reason)));
    }

    /// The app's messages are written (call after [`Exchange::ack`]): a
    /// send() waiting for room may go on.
    pub fn acked(&self, exchange: &Exchange) {
        self.credit.after_ack(exchange, &self.inbox);
    }
}

impl Request {
    /// The client took `exchange`'s bytes: a send() waiting for room may go
    /// on (call after [`Exchange::ack`]).
    pub fn acked(&self, exchange: &Exchange) {
        self.credit.after_ack(exchange, &self.inbox);
    }

    /// The request is over on the submitter's side (complete, client gone,
    /// timeout): a receive() waiting hears `http.disconnect`.
    pub fn gone(&self) {
        self.inbox.push(Inbound::Gone(self.id));
    }

    /// More of an unbuffered request body; `last` with its end.
    pub fn more_body(&self, chunk: Vec<u8>, last: bool) {
        self.flow.add(chunk.len());
        self.inbox.push(Inbound::Body(self.id, chunk, last));
    }

    /// Whether the app has room for more body (see [`BodyFlow`]).
    pub fn body_room(&self) -> bool {
        self.flow.room()
    }
}
