//! The WSGI environ (PEP 3333).

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use super::io::{FileWrapper, WsgiInput};
use crate::core::capture::{Body, RequestHead};
use crate::core::exchange::Exchange;
use crate::core::meta::{header, http_vars, split_script_name, SERVER_SOFTWARE};
use crate::nginx::log::Level;
use crate::python::stdio::LogStream;

/// Bytes as a PEP 3333 native string: each byte one latin-1 character.
pub fn latin1<'py>(py: Python<'py>, bytes: &[u8]) -> Bound<'py, PyString> {
    match std::str::from_utf8(bytes) {
        Ok(text) if bytes.is_ascii() => PyString::new(py, text),
        _ => PyString::new(py, &bytes.iter().map(|&b| b as char).collect::<String>()),
    }
}

pub fn environ<'py>(
    py: Python<'py>,
    head: &RequestHead,
    body: Body,
    exchange: &Arc<Exchange>,
    errors_level: Level,
) -> PyResult<Bound<'py, PyDict>> {
    let env = PyDict::new(py);
    let set = |key: &str, value: &[u8]| env.set_item(key, latin1(py, value));

    set("REQUEST_METHOD", &head.method)?;
    let (script_name, path_info) = split_script_name(head.location.as_deref(), &head.path);
    set("SCRIPT_NAME", script_name)?;
    set("PATH_INFO", path_info)?;
    set("QUERY_STRING", &head.query)?;
    set("REQUEST_URI", &head.raw_uri)?;
    set("RAW_URI", &head.raw_uri)?;
    if let Some(content_type) = header(&head.headers, "content-type") {
        set("CONTENT_TYPE", content_type)?;
    }
    if head.has_body {
        // What nginx actually received; also right for chunked uploads.
        env.set_item("CONTENT_LENGTH", body.len().to_string())?;
    }
    let server_name: &[u8] = if head.server_name.is_empty() { b"localhost" } else { &head.server_name };
    set("SERVER_NAME", server_name)?;
    let port = head.server_port.unwrap_or(if head.https { 443 } else { 80 });
    env.set_item("SERVER_PORT", port.to_string())?;
    set("SERVER_PROTOCOL", &head.protocol)?;
    env.set_item("SERVER_SOFTWARE", SERVER_SOFTWARE)?;
    set("REMOTE_ADDR", &head.remote_addr)?;
    if let Some(port) = head.remote_port {
        env.set_item("REMOTE_PORT", port.to_string())?;
    }
    if head.https {
        env.set_item("HTTPS", "on")?;
    }
    for (name, value) in http_vars(&head.headers) {
        set(&name, &value)?;
    }

    env.set_item("wsgi.version", (1, 0))?;
    env.set_item("wsgi.url_scheme", if head.https { "https" } else { "http" })?;
    env.set_item("wsgi.input", Py::new(py, WsgiInput::new(body))?)?;
    env.set_item("wsgi.errors", Py::new(py, LogStream::for_request(Arc::clone(exchange), errors_level))?)?;
    env.set_item("wsgi.file_wrapper", py.get_type::<FileWrapper>())?;
    env.set_item("wsgi.multithread", true)?;
    env.set_item("wsgi.multiprocess", true)?;
    env.set_item("wsgi.run_once", false)?;
    // nginx has the whole body before the app starts.
    env.set_item("wsgi.input_terminated", true)?;
    Ok(env)
}
