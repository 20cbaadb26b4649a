//! One HTTP request as the event loop sees it: the request body as
//! `http.request` events, and the app's `send` messages checked and turned
//! into the engine's events (see [`crate::core::exchange`]).
//!
//! Everything here runs on the loop thread with the GIL held and never
//! blocks: a full window is reported to `protocol.py`, which awaits credit
//! from nginx's thread instead of waiting here.

use std::fs::File;

use bytes::Bytes;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyMemoryView, PyString};
use pyo3::intern;

use super::credit::{BodyFlow, Credit, GONE, SENT, WAIT};
use crate::core::capture::BodyReader;
use crate::core::exchange::ResponseSink;
use crate::core::head::ResponseHead;
use crate::python::{errors, lend};

/// Request body bytes per `http.request` event.
const BODY_PIECE: usize = 64 * 1024;

/// The head is queued: publish it on the loop's next turn unless a body
/// message takes it along first.
const STARTED: u8 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No `http.response.start` yet.
    Head,
    Body,
    /// The last body message went out.
    Done,
}

#[pyclass(module = "rust_asgi")]
pub struct HttpConn {
    sink: Option<ResponseSink>,
    body: BodyReader,
    body_read: bool,
    /// An unbuffered body whose last piece the app has not taken yet.
    streaming: bool,
    flow: BodyFlow,
    phase: Phase,
    /// The head, held until the first body message: if that is the whole
    /// body, the head gets a Content-Length and the response is not
    /// chunked.
    head: Option<ResponseHead>,
    credit: Credit,
    /// For log lines.
    app: String,
}

impl HttpConn {
    pub fn new(sink: ResponseSink, body: BodyReader, credit: Credit, flow: BodyFlow, app: String) -> HttpConn {
        let streaming = body.more_to_come();
        HttpConn { sink: Some(sink), body, body_read: false, streaming, flow, phase: Phase::Head, head: None, credit, app }
    }

    fn fail(&mut self, line: String) {
        if let Some(sink) = self.sink.take() {
            sink.fail(500, vec![line]);
        }
    }

    fn start(&mut self, message: &Bound<'_, PyDict>) -> PyResult<()> {
        let py = message.py();
        if self.phase != Phase::Head {
            return Err(PyRuntimeError::new_err("http.response.start was already sent"));
        }
        let status: u16 = field(message, intern!(py, "status"))?
            .ok_or_else(|| PyValueError::new_err("http.response.start needs a status"))?
            .extract()
            .map_err(|_| PyTypeError::new_err("the status of http.response.start must be an int"))?;
        if !(200..=599).contains(&status) {
            return Err(PyValueError::new_err(format!("invalid status {status}: an HTTP response needs one from 200 to 599")));
        }
        let mut headers = Vec::new();
        if let Some(list) = field(message, intern!(py, "headers"))? {
            for pair in list.try_iter()? {
                let pair = pair?;
                let (name, value): (Bound<'_, PyAny>, Bound<'_, PyAny>) = pair
                    .extract()
                    .map_err(|_| PyTypeError::new_err("each response header must be a pair of byte strings"))?;
                headers.push((byte_string(&name, "header name")?, byte_string(&value, "header value")?));
            }
        }
        if field(message, intern!(py, "trailers"))?.is_some_and(|t| t.is_truthy().unwrap_or(true)) {
            return Err(PyRuntimeError::new_err(
                "response trailers are not supported here (scope[\"extensions\"] does not list http.response.trailers)",
            ));
        }
        let head = ResponseHead::new(status.to_string().as_bytes(), headers).map_err(|e| PyValueError::new_err(e.to_string()))?;
        self.phase = Phase::Body;
        self.head = Some(head);
        Ok(())
    }

    /// Queues the held head; with `whole_body`, the body's length first.
    fn release_head(&mut self, whole_body: Option<u64>) {
        let (Some(mut head), Some(sink)) = (self.head.take(), self.sink.as_mut()) else { return };
        if let Some(len) = whole_body {
            if !head.has_header("content-length") {
                head.push_header("Content-Length", len.to_string());
            }
        }
        sink.send_head(head);
    }

    fn body(&mut self, message: &Bound<'_, PyDict>) -> PyResult<u8> {
        let py = message.py();
        self.expect_body("http.response.body")?;
        let chunk = match field(message, intern!(py, "body"))? {
            None => Bytes::new(),
            Some(body) => match body.cast::<PyBytes>() {
                Ok(bytes) => lend::body_chunk(bytes),
                Err(_) => Bytes::from(byte_string(&body, "body")?),
            },
        };
        let more = field(message, intern!(py, "more_body"))?.map_or(Ok(false), |m| m.is_truthy())?;
        self.release_head((!more).then_some(chunk.len() as u64));
        let Some(sink) = self.sink.as_mut() else { return Ok(GONE) };
        sink.send_body(chunk);
        if !more {
            return Ok(self.finish());
        }
        if sink.flush().is_err() {
            return Ok(GONE);
        }
        Ok(self.window())
    }

    fn pathsend(&mut self, message: &Bound<'_, PyDict>) -> PyResult<u8> {
        let py = message.py();
        self.expect_body("http.response.pathsend")?;
        let path: String = field(message, intern!(py, "path"))?
            .ok_or_else(|| PyValueError::new_err("http.response.pathsend needs a path"))?
            .extract()?;
        let file = File::open(&path)?;
        let len = file.metadata()?.len();
        self.release_head(Some(len));
        let Some(sink) = self.sink.as_mut() else { return Ok(GONE) };
        sink.send_file(file, 0, len, path.into_bytes());
        Ok(self.finish())
    }

    fn expect_body(&self, what: &str) -> PyResult<()> {
        match self.phase {
            Phase::Head => Err(PyRuntimeError::new_err(format!("{what} before http.response.start"))),
            Phase::Done => Err(PyRuntimeError::new_err(format!("{what} after the response was complete"))),
            Phase::Body => Ok(()),
        }
    }

    fn finish(&mut self) -> u8 {
        self.phase = Phase::Done;
        match self.sink.take().map(ResponseSink::finish) {
            Some(Ok(())) => SENT,
            _ => GONE,
        }
    }

    /// WAIT when the loop must await credit (see [`Credit`]).
    fn window(&self) -> u8 {
        match self.sink.as_ref() {
            None => GONE,
            Some(sink) if self.credit.must_wait(sink) => WAIT,
            Some(_) => SENT,
        }
    }
}

#[pymethods]
impl HttpConn {
    /// The next `http.request` event, or None once the body is all read
    /// (the app's next receive waits for the disconnect).
    fn receive<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        crate::os::exit_if_forked();
        if self.body_read {
            return Ok(None);
        }
        let len = self.body.read_len(Some(BODY_PIECE));
        if len == 0 && self.streaming {
            // Nothing in yet: the pieces come through protocol.py's body().
            self.body_read = true;
            return Ok(None);
        }
        let body = PyBytes::new_with(py, len, |buf| {
            // SAFETY: `buf` is the new bytes object's zeroed buffer of
            // `len` bytes, exactly what fill() writes.
            let out = unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast(), len) };
            self.body.fill(out).map_err(PyErr::from)
        })?;
        let more = self.body.remaining() > 0 || self.streaming;
        self.body_read = self.body.remaining() == 0;
        let event = PyDict::new(py);
        event.set_item(intern!(py, "type"), intern!(py, "http.request"))?;
        event.set_item(intern!(py, "body"), body)?;
        event.set_item(intern!(py, "more_body"), more)?;
        Ok(Some(event))
    }

    /// One message from the app's `send`: SENT, WAIT, GONE or STARTED. A bad message
    /// raises in the app, which answers 500 with the traceback (or closes
    /// the connection once the head went out).
    fn send(&mut self, message: &Bound<'_, PyAny>) -> PyResult<u8> {
        crate::os::exit_if_forked();
        let py = message.py();
        let message = message.cast::<PyDict>().map_err(|_| PyTypeError::new_err("an ASGI message must be a dict"))?;
        let kind = field(message, intern!(py, "type"))?.ok_or_else(|| PyValueError::new_err("an ASGI message needs a \"type\""))?;
        let kind = kind.cast::<PyString>().map_err(|_| PyTypeError::new_err("an ASGI message's type must be a str"))?;
        match kind.to_str()? {
            "http.response.start" => self.start(message).map(|()| STARTED),
            "http.response.body" => self.body(message),
            "http.response.pathsend" => self.pathsend(message),
            other => Err(PyRuntimeError::new_err(format!("unexpected ASGI message \"{other}\" for an HTTP request"))),
        }
    }

    /// Publishes a head that no body followed in the same step of the
    /// app, so a client of a slow stream sees it at once.
    fn flush(&mut self) {
        self.release_head(None);
        if let Some(sink) = self.sink.as_mut() {
            let _ = sink.flush();
        }
    }

    /// Pieces of an unbuffered body are still to come.
    fn more_body(&self) -> bool {
        self.streaming
    }

    /// The app took a piece of an unbuffered body (the last one with
    /// `last`); nginx reads on if it had stopped for the app.
    fn took(&mut self, n: usize, last: bool) {
        if last {
            self.streaming = false;
        }
        if self.flow.took(n) {
            if let Some(sink) = self.sink.as_mut() {
                sink.resume_body();
            }
        }
    }

    /// The whole response went out.
    fn complete(&self) -> bool {
        self.phase == Phase::Done
    }

    fn startup_failed(&mut self) {
        let line = format!("rust_asgi: \"{}\": the app's lifespan startup failed (logged at start); answering 500", self.app);
        self.fail(line);
    }

    /// The task was cancelled, or sent after the client left.
    fn cancelled(&mut self) {
        if let Some(sink) = self.sink.take() {
            sink.cancel();
        }
    }

    fn raised(&mut self, exc: &Bound<'_, pyo3::exceptions::PyBaseException>) {
        let py = exc.py();
        let sent = self.sink.as_ref().is_some_and(ResponseSink::head_sent);
        let when = if sent { " after the response started (the connection is closed)" } else { "" };
        let header = format!("rust_asgi: \"{}\" raised an exception{when}; traceback follows", self.app);
        let lines = errors::report(py, header, &PyErr::from_value(exc.clone().into_any()));
        if let Some(sink) = self.sink.take() {
            sink.fail(500, lines);
        }
    }

    fn returned(&mut self) {
        match self.phase {
            Phase::Head => self.fail(format!("rust_asgi: \"{}\" returned without sending a response", self.app)),
            Phase::Body => self.fail(format!(
                "rust_asgi: \"{}\" returned before finishing its response (its last http.response.body had more_body set); the connection is closed",
                self.app
            )),
            Phase::Done => {}
        }
    }
}

fn field<'py>(message: &Bound<'py, PyDict>, key: &Bound<'py, PyString>) -> PyResult<Option<Bound<'py, PyAny>>> {
    message.get_item(key)
}

/// bytes, bytearray or memoryview as owned bytes; anything else (a str,
/// the usual mistake) is refused by name.
fn byte_string(value: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<u8>> {
    if let Ok(bytes) = value.cast::<PyBytes>() {
        return Ok(bytes.as_bytes().to_vec());
    }
    if let Ok(array) = value.cast::<PyByteArray>() {
        return Ok(array.to_vec());
    }
    if value.is_instance_of::<PyMemoryView>() {
        let py = value.py();
        return Ok(py.get_type::<PyBytes>().call1((value,))?.cast::<PyBytes>()?.as_bytes().to_vec());
    }
    let type_name = value.get_type().name().map(|n| n.to_string()).unwrap_or_default();
    Err(PyTypeError::new_err(format!("the {what} must be a byte string, not {type_name}")))
}
