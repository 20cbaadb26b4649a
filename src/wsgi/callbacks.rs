//! `start_response` and the `write` callable it returns (PEP 3333).
//!
//! [`StartResponse`] owns the request's [`ResponseSink`]: everything the app
//! sends (through `write()` or its iterable) goes through it, so the head is
//! sent exactly once, before the first non-empty body chunk or at the end.

use std::sync::Arc;

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};

use crate::core::exchange::{Exchange, ResponseSink, WINDOW};
use crate::core::head::ResponseHead;
use crate::nginx::log::Level;
use crate::python::lend;

#[pyclass(module = "rust_wsgi")]
pub struct StartResponse {
    /// Kept after the sink is gone, for log lines.
    exchange: Arc<Exchange>,
    sink: Option<ResponseSink>,
    /// Set by start_response(), sent with the first body bytes.
    pending: Option<ResponseHead>,
    /// Body bytes queued in the sink and not yet published.
    batched: usize,
}

/// Whether the client still wants the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Sent,
    Abandoned,
}

#[pymethods]
impl StartResponse {
    #[pyo3(signature = (status, headers, exc_info = None))]
    fn __call__(
        slf: Bound<'_, Self>,
        status: &Bound<'_, PyAny>,
        headers: &Bound<'_, PyAny>,
        exc_info: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Write> {
        {
            let mut this = slf.borrow_mut();
            let head_sent = this.sink.as_ref().is_none_or(ResponseSink::head_sent);
            match exc_info.filter(|e| !e.is_none()) {
                // Too late to replace anything: the PEP says to re-raise.
                Some(exc) if head_sent => return Err(PyErr::from_value(exc.get_item(1)?)),
                Some(_) => {}
                None if head_sent || this.pending.is_some() => {
                    return Err(PyRuntimeError::new_err(
                        "start_response() was already called; pass exc_info to replace the headers after an error",
                    ))
                }
                None => {}
            }
            this.pending = Some(parse_head(status, headers)?);
        }
        Ok(Write { responder: slf.unbind() })
    }
}

impl StartResponse {
    pub fn new(sink: ResponseSink) -> StartResponse {
        StartResponse { exchange: Arc::clone(sink.exchange()), sink: Some(sink), pending: None, batched: 0 }
    }

    fn sink(&mut self) -> PyResult<&mut ResponseSink> {
        self.sink.as_mut().ok_or_else(|| PyRuntimeError::new_err("the response is already complete"))
    }

    /// Sends the head set by start_response() if it has not gone yet.
    fn ensure_head(&mut self) -> PyResult<()> {
        if self.sink()?.head_sent() {
            return Ok(());
        }
        let head = self.pending.take().ok_or_else(|| {
            PyRuntimeError::new_err("the app produced body data before calling start_response()")
        })?;
        self.sink()?.send_head(head);
        Ok(())
    }

    /// The length of the whole body is known before anything was sent: tell
    /// the client (unless the app did), so the response needs no chunking.
    pub fn set_known_length(&mut self, length: u64) {
        if let Some(head) = self.pending.as_mut() {
            if !head.has_header("content-length") {
                head.push_header("Content-Length", length.to_string());
            }
        }
    }

    /// The Content-Length the app declared, while the head is not sent.
    pub fn pending_length(&self) -> Option<u64> {
        self.pending.as_ref().and_then(ResponseHead::content_length)
    }

    /// Queues bytes `start..end` of an open file for nginx to send, with the
    /// head if it is still pending, and publishes them.
    pub fn send_file(&mut self, file: std::fs::File, start: u64, end: u64, name: Vec<u8>) -> PyResult<Delivery> {
        self.ensure_head()?;
        let sink = self.sink()?;
        sink.send_file(file, start, end, name);
        self.batched = 0;
        Ok(if self.sink()?.flush().is_ok() { Delivery::Sent } else { Delivery::Abandoned })
    }

    /// Ends the response after the iterable is exhausted.
    pub fn finish(&mut self) -> Result<(), String> {
        if let Err(e) = self.ensure_head() {
            return Err(e.to_string());
        }
        match self.sink.take() {
            Some(sink) => {
                let _ = sink.finish();
                Ok(())
            }
            None => Err("the response was already complete".into()),
        }
    }

    /// Fails the request with a traceback.
    pub fn fail(&mut self, lines: Vec<String>) {
        match self.sink.take() {
            Some(sink) => sink.fail(500, lines),
            None => lines.into_iter().for_each(|l| self.exchange.log(Level::Error, l)),
        }
    }

    /// The client is gone: end quietly.
    pub fn cancel(&mut self) {
        if let Some(sink) = self.sink.take() {
            sink.cancel();
        }
    }
}

/// Queues `chunk`, sending the head first if needed. With `now`, publishes
/// at once (the app may take a while to produce the next chunk); otherwise
/// batches up to the window. Waits, without the GIL, while the client is
/// behind by a full window.
pub fn send_body(py: Python<'_>, responder: &Py<StartResponse>, chunk: &Bound<'_, PyBytes>, now: bool) -> PyResult<Delivery> {
    let waiting_on = {
        let mut this = responder.bind(py).try_borrow_mut()?;
        this.ensure_head()?;
        this.batched += chunk.as_bytes().len();
        let publish = now || this.batched >= WINDOW;
        let sink = this.sink()?;
        sink.send_body(lend::body_chunk(chunk));
        if !publish {
            return Ok(Delivery::Sent);
        }
        if sink.flush().is_err() {
            return Ok(Delivery::Abandoned);
        }
        let full = sink.window_full().then(|| Arc::clone(sink.exchange()));
        this.batched = 0;
        match full {
            Some(exchange) => exchange,
            None => return Ok(Delivery::Sent),
        }
    };
    Ok(match py.detach(move || waiting_on.wait_for_window()) {
        Ok(()) => Delivery::Sent,
        Err(_) => Delivery::Abandoned,
    })
}

/// The `write()` callable (PEP 3333's imperative API).
#[pyclass(module = "rust_wsgi")]
pub struct Write {
    responder: Py<StartResponse>,
}

#[pymethods]
impl Write {
    fn __call__(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let data = body_bytes(data)?;
        if data.as_bytes().is_empty() {
            return Ok(());
        }
        match send_body(py, &self.responder, data, true)? {
            Delivery::Sent => Ok(()),
            Delivery::Abandoned => Err(PyOSError::new_err("the client closed the connection")),
        }
    }
}

/// A body chunk must be bytes (PEP 3333); anything else is the app's bug.
pub fn body_bytes<'a, 'py>(item: &'a Bound<'py, PyAny>) -> PyResult<&'a Bound<'py, PyBytes>> {
    item.cast::<PyBytes>().map_err(|_| {
        let kind = item.get_type().name().map(|n| n.to_string()).unwrap_or_default();
        PyTypeError::new_err(format!("the app produced a body chunk of type {kind}; WSGI bodies must be bytes"))
    })
}

fn parse_head(status: &Bound<'_, PyAny>, headers: &Bound<'_, PyAny>) -> PyResult<ResponseHead> {
    let status = native_bytes(status, "status")?;
    let mut list = Vec::new();
    for item in headers.try_iter()? {
        let item = item?;
        let pair = item
            .cast::<PyTuple>()
            .ok()
            .filter(|t| t.len() == 2)
            .ok_or_else(|| PyTypeError::new_err("response headers must be (name, value) tuples"))?;
        let name = native_bytes(&pair.get_item(0)?, "header name")?;
        let value = native_bytes(&pair.get_item(1)?, "header value")?;
        list.push((name, value));
    }
    ResponseHead::new(&status, list).map_err(|e| PyValueError::new_err(e.to_string()))
}

/// A PEP 3333 "native string": a str whose characters are all latin-1.
fn native_bytes(value: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<u8>> {
    let text = value.cast::<PyString>().map_err(|_| PyTypeError::new_err(format!("{what} must be a str")))?;
    let ptr = text.as_ptr();
    // SAFETY: `text` is a str (PEP 393, always ready on 3.11+), alive for
    // this call. A one-byte-kind str stores exactly its latin-1 bytes.
    unsafe {
        if ffi::PyUnicode_KIND(ptr) == ffi::PyUnicode_1BYTE_KIND {
            let len = ffi::PyUnicode_GET_LENGTH(ptr) as usize;
            return Ok(std::slice::from_raw_parts(ffi::PyUnicode_1BYTE_DATA(ptr), len).to_vec());
        }
    }
    let shown = text.to_cow().map(|t| format!("{t:?}")).unwrap_or_else(|_| text.to_string());
    Err(PyValueError::new_err(format!("{what} {shown} is not latin-1 text")))
}
