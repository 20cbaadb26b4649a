//! One request's channel from the thread that runs the app to the nginx
//! thread.
//!
//! The app side holds a [`ResponseSink`]; it batches events and publishes
//! them under one lock, and the first publish after the nginx thread last
//! looked schedules the exchange on the [`Bridge`]. Body bytes count against
//! a window until nginx has written them, so a slow client makes the app
//! thread wait instead of buffering without limit. When nginx is done with
//! the request (normal end, client abort, timeout) it abandons the exchange:
//! further output is dropped and a waiting app thread is released.

use std::any::Any;
use std::fs::File;

use bytes::Bytes;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use super::bridge::Bridge;
use super::head::ResponseHead;
use crate::nginx::log::Level;

/// Body bytes an app may have in flight (queued or not yet written by
/// nginx) before its thread waits. Large enough that ordinary responses
/// never wait, small enough that a thousand slow clients stay cheap.
pub const WINDOW: usize = 256 * 1024;

/// What a body chunk costs against the window beyond its bytes: the nginx
/// buffer, chain link and bookkeeping that carry it. Without it, an app
/// yielding one byte at a time would hold a quarter of a million chunks.
pub const CHUNK_COST: usize = 256;

/// A chunk's charge against the window.
pub fn cost(len: usize) -> usize {
    len + CHUNK_COST
}

/// What a producer tells the nginx side of a request.
#[derive(Debug)]
pub enum Event {
    /// A thread or process began running the request, at this
    /// CLOCK_MONOTONIC millisecond (`$rust_queue_time`).
    Started { at_ms: u64 },
    Head(ResponseHead),
    /// The producer writes its own status line and headers into the body
    /// (CGI non-parsed headers): no head from nginx.
    RawHead,
    /// Serve another URI of this server instead (a CGI local redirect).
    Redirect { uri: Vec<u8>, args: Vec<u8> },
    /// Bytes of the body: an owned vector, or memory the app lends until
    /// nginx has written it (a Python bytes object).
    Body(Bytes),
    /// Bytes `start..end` of an open file, for nginx to send from the file
    /// itself. `name` is for log lines.
    File { file: File, start: u64, end: u64, name: Vec<u8> },
    End,
    /// The app failed. `status` is answered if the head was not sent yet;
    /// otherwise the connection is closed, since a half-sent response
    /// cannot be repaired.
    Fail { status: u16, lines: Vec<String> },
    Log(Level, String),
    /// For a connection the app took over (a WebSocket: see the ASGI room),
    /// not a response: a message that core only carries to the adapter
    /// that owns the exchange, charged `cost` against the window.
    Other { cost: usize, message: Box<dyn Any + Send + Sync> },
    /// The app took enough of an unbuffered request body: nginx may read
    /// more from the client.
    ResumeBody,
}


/// The request is over on the nginx side; nobody will read more output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Abandoned;

pub struct Exchange {
    id: u64,
    bridge: Arc<Bridge>,
    state: Mutex<State>,
    credit: Condvar,
}

#[derive(Default)]
struct State {
    events: Vec<Event>,
    /// Scheduled on the bridge and not yet taken by the nginx thread.
    queued: bool,
    abandoned: bool,
    /// Window charge (see [`cost`]) published and not yet written by
    /// nginx.
    unacked: usize,
    /// The app thread waits on `credit`. A notify is a syscall even with
    /// nobody waiting; most requests never wait, so nginx's thread only
    /// notifies when this is set.
    waiting: bool,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Exchange {
    pub fn new(bridge: Arc<Bridge>) -> Arc<Exchange> {
        Arc::new(Exchange {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            bridge,
            state: Mutex::default(),
            credit: Condvar::new(),
        })
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    // ---- nginx side ------------------------------------------------------

    /// Takes everything published so far.
    pub fn take_events(&self) -> Vec<Event> {
        let mut state = self.lock();
        state.queued = false;
        std::mem::take(&mut state.events)
    }

    /// nginx finished with `bytes` of the window (see [`cost`]).
    pub fn ack(&self, bytes: usize) {
        let mut state = self.lock();
        let was_full = state.unacked >= WINDOW;
        state.unacked = state.unacked.saturating_sub(bytes);
        if was_full && state.unacked < WINDOW && state.waiting {
            self.credit.notify_all();
        }
    }

    /// The request is over; drop further output and release the app thread.
    /// Log lines already published stay, for the nginx thread to log.
    pub fn abandon(&self) {
        let mut state = self.lock();
        state.abandoned = true;
        state.events.retain(|e| matches!(e, Event::Log(..) | Event::Fail { .. }));
        if state.waiting {
            self.credit.notify_all();
        }
    }

    // ---- app side --------------------------------------------------------

    fn publish(self: &Arc<Self>, batch: &mut Vec<Event>) -> Result<(), Abandoned> {
        let bytes: usize = batch
            .iter()
            .map(|e| match e {
                Event::Body(b) => cost(b.len()),
                Event::Other { cost, .. } => *cost,
                _ => 0,
            })
            .sum();
        let wake = {
            let mut state = self.lock();
            if state.abandoned {
                return Err(Abandoned);
            }
            state.unacked += bytes;
            state.events.append(batch);
            !std::mem::replace(&mut state.queued, true)
        };
        if wake {
            self.bridge.ready(Arc::clone(self));
        }
        Ok(())
    }

    pub fn is_abandoned(&self) -> bool {
        self.lock().abandoned
    }

    /// Writes a line to nginx's error log: in the request's context while
    /// the request is alive, else in the worker's log. Any thread may call
    /// this, for as long as it holds the exchange.
    pub fn log(self: &Arc<Self>, level: Level, message: String) {
        let mut batch = vec![Event::Log(level, message)];
        if self.publish(&mut batch).is_err() {
            if let Some(Event::Log(level, message)) = batch.pop() {
                self.bridge.log(level, message);
            }
        }
    }

    /// The app has a window's worth in flight: it should wait.
    pub fn window_full(&self) -> bool {
        let state = self.lock();
        state.unacked >= WINDOW && !state.abandoned
    }

    /// Blocks until the window has room (or the request is over). Python
    /// callers release the GIL around this.
    pub fn wait_for_window(&self) -> Result<(), Abandoned> {
        let mut state = self.lock();
        while state.unacked >= WINDOW && !state.abandoned {
            state.waiting = true;
            state = self.credit.wait(state).unwrap_or_else(PoisonError::into_inner);
            state.waiting = false;
        }
        if state.abandoned {
            Err(Abandoned)
        } else {
            Ok(())
        }
    }
}

/// The app side of an exchange. Every sink ends in exactly one of
/// [`ResponseSink::finish`] or [`ResponseSink::fail`]; dropping it
/// otherwise (a bug or a panic) answers 500.
pub struct ResponseSink {
    exchange: Arc<Exchange>,
    batch: Vec<Event>,
    head_sent: bool,
    done: bool,
}

impl ResponseSink {
    pub fn new(exchange: Arc<Exchange>) -> ResponseSink {
        ResponseSink { exchange, batch: Vec::with_capacity(4), head_sent: false, done: false }
    }

    pub fn exchange(&self) -> &Arc<Exchange> {
        &self.exchange
    }

    pub fn head_sent(&self) -> bool {
        self.head_sent
    }

    pub fn is_abandoned(&self) -> bool {
        self.exchange.is_abandoned()
    }

    /// The app begins: stamps the time for `$rust_queue_time` (published
    /// with what comes next).
    pub fn started(&mut self) {
        self.batch.push(Event::Started { at_ms: crate::os::monotonic_ms() });
    }

    /// Queues the head; it is published with the next [`flush`](Self::flush).
    pub fn send_head(&mut self, head: ResponseHead) {
        debug_assert!(!self.head_sent);
        if !head.dropped().is_empty() {
            let names = head.dropped().join(", ");
            self.batch.push(Event::Log(
                Level::Warn,
                format!("rust_gateway: dropped hop-by-hop response header(s) from the app: {names}"),
            ));
        }
        self.batch.push(Event::Head(head));
        self.head_sent = true;
    }

    /// Queues a body chunk; the head must have been queued first.
    pub fn send_body(&mut self, chunk: Bytes) {
        debug_assert!(self.head_sent);
        if !chunk.is_empty() {
            self.batch.push(Event::Body(chunk));
        }
    }

    /// Queues a range of an open file; the head must have been queued
    /// first. File bytes do not count against the window: they are not in
    /// memory.
    pub fn send_file(&mut self, file: File, start: u64, end: u64, name: Vec<u8>) {
        debug_assert!(self.head_sent);
        if end > start {
            self.batch.push(Event::File { file, start, end, name });
        }
    }

    /// Tells nginx to read more of an unbuffered request body.
    pub fn resume_body(&mut self) {
        self.batch.push(Event::ResumeBody);
        let _ = self.flush();
    }

    /// Queues a message for an upgraded connection, charged `cost`.
    pub fn send_other(&mut self, cost: usize, message: Box<dyn Any + Send + Sync>) {
        self.batch.push(Event::Other { cost, message });
    }

    /// Publishes what is queued.
    pub fn flush(&mut self) -> Result<(), Abandoned> {
        if self.batch.is_empty() {
            return if self.exchange.is_abandoned() { Err(Abandoned) } else { Ok(()) };
        }
        self.exchange.publish(&mut self.batch)
    }

    /// True when the app thread should wait for the client before producing
    /// more (see [`Exchange::wait_for_window`]).
    pub fn window_full(&self) -> bool {
        self.exchange.window_full()
    }

    pub fn log(&self, level: Level, message: String) {
        self.exchange.log(level, message);
    }

    /// Ends the response.
    pub fn finish(mut self) -> Result<(), Abandoned> {
        self.done = true;
        if !self.head_sent {
            self.batch.push(Event::Fail {
                status: 500,
                lines: vec!["rust_gateway: the app finished without a response head".into()],
            });
        } else {
            self.batch.push(Event::End);
        }
        self.flush()
    }

    /// Ends an upgraded connection's exchange: the app returned.
    pub fn finish_upgraded(mut self) {
        self.done = true;
        self.batch.push(Event::End);
        let _ = self.flush();
    }

    /// Ends an exchange nobody waits for any more (the client left) without
    /// a word: there is nothing to report. If nginx is in fact still
    /// waiting, it gets a 500 rather than hanging until its timeout.
    pub fn cancel(mut self) {
        if self.exchange.is_abandoned() {
            self.done = true;
        }
    }

    /// Fails the request, logging `lines` (a traceback) in its context.
    pub fn fail(mut self, status: u16, lines: Vec<String>) {
        self.done = true;
        self.batch.push(Event::Fail { status, lines });
        if self.flush().is_err() {
            // Nobody is waiting for the response, but the error log still
            // gets the traceback.
            for event in self.batch.drain(..) {
                if let Event::Fail { lines, .. } = event {
                    for line in lines {
                        self.exchange.bridge.log(Level::Error, line);
                    }
                }
            }
        }
    }
}

impl Drop for ResponseSink {
    fn drop(&mut self) {
        if !self.done {
            self.batch.push(Event::Fail {
                status: 500,
                lines: vec!["rust_gateway: the request's worker stopped before it answered".into()],
            });
            let _ = self.flush();
        }
    }
}
