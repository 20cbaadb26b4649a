//! A WebSocket to an ASGI app in a pool, on the FastCGI connection that
//! started it: the channel beside FastCGI that FastCGI itself lacks (it
//! has no upgrade).
//!
//! Runs in nginx's workers and in pool processes (both ends).
//!
//! nginx's worker does the WebSocket protocol with the client, as in
//! embedded mode ([`crate::asgi::upgrade`]); what crosses to the pool
//! process are the ASGI messages, each `[kind][length, 4 bytes big-endian]
//! [payload]`, carried in records of our own type [`fcgi::RUST_WS`] (as
//! many as a message needs). Towards the app: text, bytes and the
//! disconnect; towards nginx: the accept, text, bytes, the close and how
//! much of the received messages the app took (which lets nginx read the
//! client again, as in embedded mode). The app's messages are
//! acknowledged when they are in the socket, and nginx reads the socket
//! only while the client takes what it sends: backpressure both ways.

use bytes::Bytes;

use crate::asgi::ws::Upgraded;
use crate::pool::fastcgi as fcgi;

const TEXT: u8 = 1;
const BYTES: u8 = 2;
const DISCONNECT: u8 = 3;
const ACCEPT: u8 = 10;
const CLOSE: u8 = 13;
const CONSUMED: u8 = 14;

/// What nginx's worker tells the app.
#[derive(Debug, PartialEq, Eq)]
pub enum ToApp {
    Text(String),
    Bytes(Vec<u8>),
    Disconnect(u16, String),
}

fn push(out: &mut Vec<u8>, id: u16, kind: u8, payload: &[u8]) {
    let mut message = Vec::with_capacity(5 + payload.len());
    message.push(kind);
    message.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    message.extend_from_slice(payload);
    fcgi::push_stream(out, fcgi::RUST_WS, id, &message);
}

fn code_and_reason(code: u16, reason: &str) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason.as_bytes());
    payload
}

pub fn push_to_app(out: &mut Vec<u8>, id: u16, message: &ToApp) {
    match message {
        ToApp::Text(text) => push(out, id, TEXT, text.as_bytes()),
        ToApp::Bytes(bytes) => push(out, id, BYTES, bytes),
        ToApp::Disconnect(code, reason) => push(out, id, DISCONNECT, &code_and_reason(*code, reason)),
    }
}

pub fn push_from_app(out: &mut Vec<u8>, id: u16, message: &Upgraded) {
    match message {
        Upgraded::Accept { subprotocol, headers } => {
            let mut payload = Vec::new();
            if let Some(protocol) = subprotocol {
                fcgi::encode_pair(&mut payload, b"", protocol.as_bytes());
            }
            for (name, value) in headers {
                fcgi::encode_pair(&mut payload, name, value);
            }
            push(out, id, ACCEPT, &payload);
        }
        Upgraded::Text(text) => push(out, id, TEXT, text.as_bytes()),
        Upgraded::Binary(bytes) => push(out, id, BYTES, bytes),
        Upgraded::Close { code, reason } => push(out, id, CLOSE, &code_and_reason(*code, reason)),
        Upgraded::Consumed(n) => push(out, id, CONSUMED, &(*n as u64).to_be_bytes()),
    }
}

/// Messages out of the RUST_WS records' contents, as they arrive.
#[derive(Default)]
pub struct Messages {
    buf: Vec<u8>,
    at: usize,
}

impl Messages {
    pub fn feed(&mut self, content: &[u8]) {
        if self.at == self.buf.len() {
            self.buf.clear();
            self.at = 0;
        }
        self.buf.extend_from_slice(content);
    }

    /// The next whole message: its kind and payload.
    fn next(&mut self) -> Option<(u8, Vec<u8>)> {
        let rest = &self.buf[self.at..];
        let len = u32::from_be_bytes(rest.get(1..5)?.try_into().ok()?) as usize;
        let payload = rest.get(5..5 + len)?.to_vec();
        let kind = rest[0];
        self.at += 5 + len;
        Some((kind, payload))
    }

    /// The next message for the app (pool process side); Err for one that
    /// does not decode.
    pub fn next_to_app(&mut self) -> Option<Result<ToApp, String>> {
        let (kind, payload) = self.next()?;
        Some(match kind {
            TEXT => String::from_utf8(payload).map(ToApp::Text).map_err(|_| "text that is not UTF-8".into()),
            BYTES => Ok(ToApp::Bytes(payload)),
            DISCONNECT => split_code(&payload).map(|(code, reason)| ToApp::Disconnect(code, reason)),
            other => Err(format!("unknown message kind {other}")),
        })
    }

    /// The next message from the app (nginx side).
    pub fn next_from_app(&mut self) -> Option<Result<Upgraded, String>> {
        let (kind, payload) = self.next()?;
        Some(match kind {
            ACCEPT => accept(&payload),
            TEXT => String::from_utf8(payload).map(Upgraded::Text).map_err(|_| "text that is not UTF-8".into()),
            BYTES => Ok(Upgraded::Binary(Bytes::from(payload))),
            CLOSE => split_code(&payload).map(|(code, reason)| Upgraded::Close { code, reason }),
            CONSUMED => payload
                .try_into()
                .map(|n: [u8; 8]| Upgraded::Consumed(u64::from_be_bytes(n) as usize))
                .map_err(|_| "a bad consumed count".into()),
            other => Err(format!("unknown message kind {other}")),
        })
    }
}

fn split_code(payload: &[u8]) -> Result<(u16, String), String> {
    let code = payload.get(..2).ok_or("a close without a code")?;
    let reason = String::from_utf8_lossy(&payload[2..]).into_owned();
    Ok((u16::from_be_bytes([code[0], code[1]]), reason))
}

fn accept(payload: &[u8]) -> Result<Upgraded, String> {
    let pairs = fcgi::decode_pairs(payload).map_err(|e| e.to_string())?;
    let mut subprotocol = None;
    let mut headers = Vec::new();
    for (name, value) in pairs {
        if name.is_empty() {
            subprotocol = Some(String::from_utf8_lossy(value).into_owned());
        } else {
            headers.push((name.to_vec(), value.to_vec()));
        }
    }
    Ok(Upgraded::Accept { subprotocol, headers })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The RUST_WS records' contents of `out`, as the other end reads them.
    fn contents(out: &[u8]) -> Messages {
        let mut decoder = fcgi::Decoder::new();
        decoder.feed(out);
        let mut messages = Messages::default();
        while let Ok(Some(record)) = decoder.next_record() {
            assert_eq!(record.kind, fcgi::RUST_WS);
            messages.feed(&record.content);
        }
        messages
    }

    #[test]
    fn messages_to_the_app_survive_the_trip_big_ones_too() {
        let big = "é".repeat(100_000);
        let mut out = Vec::new();
        for message in [ToApp::Text(big.clone()), ToApp::Bytes(vec![0, 1, 2]), ToApp::Disconnect(1001, "going away".into())] {
            push_to_app(&mut out, 1, &message);
        }
        let mut messages = contents(&out);
        assert_eq!(messages.next_to_app(), Some(Ok(ToApp::Text(big))));
        assert_eq!(messages.next_to_app(), Some(Ok(ToApp::Bytes(vec![0, 1, 2]))));
        assert_eq!(messages.next_to_app(), Some(Ok(ToApp::Disconnect(1001, "going away".into()))));
        assert_eq!(messages.next_to_app(), None);
    }

    #[test]
    fn messages_from_the_app_survive_the_trip() {
        let mut out = Vec::new();
        let headers = vec![(b"x-a".to_vec(), b"1".to_vec())];
        push_from_app(&mut out, 1, &Upgraded::Accept { subprotocol: Some("chat".into()), headers: headers.clone() });
        push_from_app(&mut out, 1, &Upgraded::Binary(Bytes::from_static(b"\xff")));
        push_from_app(&mut out, 1, &Upgraded::Consumed(70_000));
        push_from_app(&mut out, 1, &Upgraded::Close { code: 1000, reason: String::new() });
        let mut messages = contents(&out);
        match messages.next_from_app() {
            Some(Ok(Upgraded::Accept { subprotocol, headers: h })) => assert_eq!((subprotocol.as_deref(), h), (Some("chat"), headers)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(messages.next_from_app(), Some(Ok(Upgraded::Binary(b))) if &b[..] == b"\xff"));
        assert!(matches!(messages.next_from_app(), Some(Ok(Upgraded::Consumed(70_000)))));
        assert!(matches!(messages.next_from_app(), Some(Ok(Upgraded::Close { code: 1000, .. }))));
        assert!(messages.next_from_app().is_none());
    }

    #[test]
    fn a_message_split_across_feeds_waits_for_its_end() {
        let mut out = Vec::new();
        push_to_app(&mut out, 1, &ToApp::Text("hello".into()));
        let content = &out[fcgi::HEADER_LEN..fcgi::HEADER_LEN + 10];
        let mut messages = Messages::default();
        messages.feed(&content[..4]);
        assert!(messages.next_to_app().is_none());
        messages.feed(&content[4..]);
        assert_eq!(messages.next_to_app(), Some(Ok(ToApp::Text("hello".into()))));
    }
}
