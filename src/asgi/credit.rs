//! The window handshake between the loop, which must not block, and
//! nginx's thread, which frees room as it writes: the loop raises a flag
//! before it looks at the window a second time and awaits credit only if
//! it is still full; nginx's thread looks at the flag after it freed room
//! and sends credit when it clears it. Either the loop sees the room or
//! nginx sees the flag, so no wakeup is lost ([`Credit`]).
//!
//! An unbuffered request body goes the other way under the same handshake
//! ([`BodyFlow`]): nginx's thread stops reading at [`INCOMING_LIMIT`] (the
//! limit WebSocket messages keep too, see [`super::upgrade`]), and the
//! loop says when the app took enough.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use super::serving::Inbound;
use crate::core::exchange::{Exchange, ResponseSink};
use crate::core::inbox::Inbox;

/// What `send` tells `protocol.py` (its SENT, WAIT, GONE): the message
/// went out; the window is full, await credit; nginx is done (the client
/// left).
pub const SENT: u8 = 0;
pub const WAIT: u8 = 1;
pub const GONE: u8 = 2;

#[derive(Clone, Default)]
pub struct Credit(Arc<AtomicBool>);

impl Credit {
    /// Loop side, after publishing: whether to await credit.
    pub fn must_wait(&self, sink: &ResponseSink) -> bool {
        if !sink.window_full() {
            return false;
        }
        self.0.store(true, Ordering::SeqCst);
        if sink.window_full() {
            return true;
        }
        self.0.store(false, Ordering::SeqCst);
        false
    }

    /// nginx side, after an ack: tells the loop if it waits and room is
    /// back.
    pub fn after_ack(&self, exchange: &Exchange, inbox: &Inbox<Inbound>) {
        if self.0.load(Ordering::SeqCst) && !exchange.window_full() && self.0.swap(false, Ordering::SeqCst) {
            inbox.push(Inbound::Credit(exchange.id()));
        }
    }
}

/// Bytes from the client handed to the loop and not yet taken by the app
/// (an unbuffered request body, WebSocket messages), above which nginx
/// stops reading from the client (TCP then pushes back on it).
pub const INCOMING_LIMIT: usize = 1 << 20;

/// The same handshake for an unbuffered request body, the other way round:
/// nginx's thread adds what it hands over and stops reading at the limit,
/// raising a flag; the loop subtracts what the app takes and, below the
/// limit with the flag raised, tells nginx to read again.
#[derive(Clone, Default)]
pub struct BodyFlow(Arc<(AtomicUsize, AtomicBool)>);

impl BodyFlow {
    /// nginx side: `n` more bytes went to the loop.
    pub fn add(&self, n: usize) {
        self.0 .0.fetch_add(n, Ordering::SeqCst);
    }

    /// nginx side: whether to read more now.
    pub fn room(&self) -> bool {
        let (held, paused) = &*self.0;
        if held.load(Ordering::SeqCst) < INCOMING_LIMIT {
            return true;
        }
        paused.store(true, Ordering::SeqCst);
        if held.load(Ordering::SeqCst) < INCOMING_LIMIT {
            paused.store(false, Ordering::SeqCst);
            return true;
        }
        false
    }

    /// Loop side: the app took `n` bytes; true when nginx must be told to
    /// read again.
    pub fn took(&self, n: usize) -> bool {
        let (held, paused) = &*self.0;
        let before = held.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |h| Some(h.saturating_sub(n))).unwrap_or(0);
        before.saturating_sub(n) < INCOMING_LIMIT && paused.load(Ordering::SeqCst) && paused.swap(false, Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::bridge::Bridge;
    use crate::core::exchange::{cost, WINDOW};

    #[test]
    fn a_full_window_waits_and_the_ack_sends_credit_once() {
        let (bridge, _efd) = Bridge::new().unwrap();
        let exchange = Exchange::new(bridge);
        let inbox = Inbox::new().unwrap();
        let credit = Credit::default();
        let mut sink = ResponseSink::new(Arc::clone(&exchange));
        sink.send_head(crate::core::head::ResponseHead::new(b"200", vec![]).unwrap());
        sink.send_body(bytes::Bytes::from(vec![0u8; 1000]));
        sink.flush().unwrap();
        assert!(!credit.must_wait(&sink), "room left: no wait");
        credit.after_ack(&exchange, &inbox);
        assert!(inbox.take().is_empty(), "nobody waits: no credit");

        sink.send_body(bytes::Bytes::from(vec![0u8; WINDOW]));
        sink.flush().unwrap();
        assert!(credit.must_wait(&sink), "full: wait");
        exchange.ack(cost(WINDOW));
        credit.after_ack(&exchange, &inbox);
        credit.after_ack(&exchange, &inbox);
        let sent = inbox.take();
        assert_eq!(sent.len(), 1, "one credit for one wait");
        assert!(matches!(sent[0], Inbound::Credit(id) if id == exchange.id()));
        sink.finish().unwrap();
    }

    #[test]
    fn body_reading_pauses_at_the_limit_and_resumes_once_taken() {
        let flow = BodyFlow::default();
        flow.add(INCOMING_LIMIT - 1);
        assert!(flow.room());
        assert!(!flow.took(10), "nginx never paused: nothing to tell");
        flow.add(100);
        assert!(!flow.room(), "at the limit: stop reading");
        assert!(!flow.took(10), "still at the limit");
        assert!(flow.took(1000), "below it: tell nginx, once");
        assert!(!flow.took(1000));
        assert!(flow.room());
    }
}
