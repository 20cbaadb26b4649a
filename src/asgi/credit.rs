//! The window handshake between the loop, which must not block, and
//! nginx's thread, which frees room as it writes: the loop raises a flag
//! before it looks at the window a second time and awaits credit only if
//! it is still full; nginx's thread looks at the flag after it freed room
//! and sends credit when it clears it. Either the loop sees the room or
//! nginx sees the flag, so no wakeup is lost.

use std::sync::atomic::{AtomicBool, Ordering};
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
}
