//! One WebSocket as the event loop sees it: the app's `send` messages,
//! checked and passed to nginx's thread (see [`super::upgrade`]) as
//! [`Upgraded`] messages, the vocabulary both sides share, which core's
//! exchange only carries. `receive` lives in `protocol.py`: nginx's thread
//! pushes the events.

use bytes::Bytes;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};
use pyo3::intern;

use super::credit::{Credit, GONE, SENT, WAIT};
use crate::core::exchange::{cost, ResponseSink};
use crate::python::errors;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Handshake,
    Open,
    Closed,
}

/// What an app sends on a WebSocket, for nginx's side
/// ([`super::upgrade`]); the exchange carries it as `Event::Other`.
#[derive(Debug)]
pub enum Upgraded {
    /// Accept the handshake.
    Accept { subprotocol: Option<String>, headers: Vec<(Vec<u8>, Vec<u8>)> },
    Text(String),
    Binary(Bytes),
    /// Close (or, before the handshake was accepted, deny it: 403).
    Close { code: u16, reason: String },
    /// The app has taken this many bytes of received messages: nginx may
    /// read more from the client.
    Consumed(usize),
}

impl Upgraded {
    /// Messages charge the window as body chunks do.
    fn cost(&self) -> usize {
        match self {
            Upgraded::Text(t) => cost(t.len()),
            Upgraded::Binary(b) => cost(b.len()),
            _ => 0,
        }
    }

    fn send(self, sink: &mut ResponseSink) {
        sink.send_other(self.cost(), Box::new(self));
    }
}

#[pyclass(module = "rust_asgi")]
pub struct WsConn {
    sink: Option<ResponseSink>,
    phase: Phase,
    credit: Credit,
    app: String,
}

impl WsConn {
    pub fn new(sink: ResponseSink, credit: Credit, app: String) -> WsConn {
        WsConn { sink: Some(sink), phase: Phase::Handshake, credit, app }
    }

    fn publish(&mut self, message: Upgraded) -> u8 {
        let Some(sink) = self.sink.as_mut() else { return GONE };
        message.send(sink);
        if sink.flush().is_err() {
            return GONE;
        }
        if self.credit.must_wait(sink) {
            WAIT
        } else {
            SENT
        }
    }

    fn accept(&mut self, message: &Bound<'_, PyDict>) -> PyResult<u8> {
        let py = message.py();
        if self.phase != Phase::Handshake {
            return Err(PyRuntimeError::new_err("websocket.accept after the handshake"));
        }
        let subprotocol = match message.get_item(intern!(py, "subprotocol"))? {
            Some(p) if !p.is_none() => Some(p.extract::<String>().map_err(|_| PyTypeError::new_err("the subprotocol must be a str"))?),
            _ => None,
        };
        let mut headers = Vec::new();
        if let Some(list) = message.get_item(intern!(py, "headers"))? {
            for pair in list.try_iter()? {
                let (name, value): (Vec<u8>, Vec<u8>) =
                    pair?.extract().map_err(|_| PyTypeError::new_err("each accept header must be a pair of byte strings"))?;
                if name.eq_ignore_ascii_case(b"sec-websocket-protocol") {
                    return Err(PyValueError::new_err("give the subprotocol as \"subprotocol\", not as a header"));
                }
                crate::core::head::ResponseHead::new(b"200", vec![(name.clone(), value.clone())])
                    .map_err(|e| PyValueError::new_err(e.to_string()))?;
                headers.push((name, value));
            }
        }
        self.phase = Phase::Open;
        Ok(self.publish(Upgraded::Accept { subprotocol, headers }))
    }

    fn message(&mut self, message: &Bound<'_, PyDict>) -> PyResult<u8> {
        let py = message.py();
        match self.phase {
            Phase::Handshake => return Err(PyRuntimeError::new_err("websocket.send before websocket.accept")),
            Phase::Closed => return Ok(GONE),
            Phase::Open => {}
        }
        let bytes = message.get_item(intern!(py, "bytes"))?.filter(|b| !b.is_none());
        let text = message.get_item(intern!(py, "text"))?.filter(|t| !t.is_none());
        let out = match (bytes, text) {
            (Some(b), None) => {
                let b = b.cast::<PyBytes>().map_err(|_| PyTypeError::new_err("\"bytes\" must be a byte string"))?;
                Upgraded::Binary(Bytes::copy_from_slice(b.as_bytes()))
            }
            (None, Some(t)) => {
                let t = t.cast::<PyString>().map_err(|_| PyTypeError::new_err("\"text\" must be a str"))?;
                Upgraded::Text(t.to_str()?.to_owned())
            }
            _ => return Err(PyValueError::new_err("websocket.send needs exactly one of \"bytes\" and \"text\"")),
        };
        Ok(self.publish(out))
    }

    fn close(&mut self, message: &Bound<'_, PyDict>) -> PyResult<u8> {
        let py = message.py();
        let code: u16 = match message.get_item(intern!(py, "code"))? {
            Some(c) if !c.is_none() => c.extract().map_err(|_| PyTypeError::new_err("the close code must be an int"))?,
            _ => 1000,
        };
        if !(code == 1000 || (1001..=1014).contains(&code) && code != 1004 && code != 1005 && code != 1006 || (3000..=4999).contains(&code)) {
            return Err(PyValueError::new_err(format!("{code} is not a close code an endpoint may send (RFC 6455, 7.4)")));
        }
        let reason: String = match message.get_item(intern!(py, "reason"))? {
            Some(r) if !r.is_none() => r.extract().map_err(|_| PyTypeError::new_err("the close reason must be a str"))?,
            _ => String::new(),
        };
        if reason.len() > 123 {
            return Err(PyValueError::new_err("a close reason is at most 123 bytes of UTF-8"));
        }
        if self.phase == Phase::Closed {
            return Ok(GONE);
        }
        self.phase = Phase::Closed;
        Ok(self.publish(Upgraded::Close { code, reason }))
    }
}

#[pymethods]
impl WsConn {
    fn send(&mut self, message: &Bound<'_, PyAny>) -> PyResult<u8> {
        crate::os::exit_if_forked();
        let py = message.py();
        let message = message.cast::<PyDict>().map_err(|_| PyTypeError::new_err("an ASGI message must be a dict"))?;
        let kind: String = message
            .get_item(intern!(py, "type"))?
            .ok_or_else(|| PyValueError::new_err("an ASGI message needs a \"type\""))?
            .extract()?;
        match kind.as_str() {
            "websocket.accept" => self.accept(message),
            "websocket.send" => self.message(message),
            "websocket.close" => self.close(message),
            other => Err(PyRuntimeError::new_err(format!("unexpected ASGI message \"{other}\" for a WebSocket"))),
        }
    }

    /// The app took a received message of `n` bytes.
    fn consumed(&mut self, n: usize) {
        if let Some(sink) = self.sink.as_mut() {
            Upgraded::Consumed(n).send(sink);
            let _ = sink.flush();
        }
    }

    fn startup_failed(&mut self) {
        let line = format!("rust_asgi: \"{}\": the app's lifespan startup failed (logged at start); refusing the WebSocket", self.app);
        if let Some(sink) = self.sink.take() {
            sink.fail(500, vec![line]);
        }
    }

    fn cancelled(&mut self) {
        if let Some(sink) = self.sink.take() {
            sink.finish_upgraded();
        }
    }

    fn raised(&mut self, exc: &Bound<'_, pyo3::exceptions::PyBaseException>) {
        let py = exc.py();
        let header = format!("rust_asgi: \"{}\" raised an exception in a WebSocket; traceback follows", self.app);
        let lines = errors::report(py, header, &PyErr::from_value(exc.clone().into_any()));
        if let Some(sink) = self.sink.take() {
            sink.fail(500, lines);
        }
    }

    fn returned(&mut self) {
        if let Some(sink) = self.sink.take() {
            sink.finish_upgraded();
        }
    }
}
