//! The WSGI environ (PEP 3333).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString, PyTuple};
use pyo3::{ffi, intern};

use super::io::{FileWrapper, WsgiInput};
use crate::core::capture::{Body, RequestHead};
use crate::core::exchange::Exchange;
use crate::core::meta::{header, http_var_name, http_vars, split_script_name, SERVER_SOFTWARE};
use crate::nginx::log::Level;
use crate::python::stdio::LogStream;

/// Bytes as a PEP 3333 native string: each byte one latin-1 character
/// (CPython copies them straight in; no UTF-8 decoding).
pub fn latin1<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyString>> {
    // SAFETY: the pointer and length describe `bytes`; CPython returns a
    // new reference (a str) or NULL with an exception set.
    unsafe {
        Bound::from_owned_ptr_or_err(
            py,
            ffi::PyUnicode_DecodeLatin1(bytes.as_ptr().cast(), bytes.len() as ffi::Py_ssize_t, std::ptr::null()),
        )
        .map(|s| s.cast_into_unchecked())
    }
}

/// Values that recur in nearly every request, shared instead of rebuilt.
fn common<'py>(py: Python<'py>, value: &[u8]) -> PyResult<Bound<'py, PyString>> {
    Ok(match value {
        b"GET" => intern!(py, "GET").clone(),
        b"POST" => intern!(py, "POST").clone(),
        b"HEAD" => intern!(py, "HEAD").clone(),
        b"HTTP/1.1" => intern!(py, "HTTP/1.1").clone(),
        b"HTTP/1.0" => intern!(py, "HTTP/1.0").clone(),
        b"HTTP/2.0" => intern!(py, "HTTP/2.0").clone(),
        _ => latin1(py, value)?,
    })
}

/// Entries of the environ beyond the headers, to size it once.
const FIXED_ENTRIES: usize = 24;

pub fn environ<'py>(
    py: Python<'py>,
    head: &RequestHead,
    body: Body,
    exchange: &Arc<Exchange>,
    errors_level: Level,
) -> PyResult<Bound<'py, PyDict>> {
    let env = presized_dict(py, FIXED_ENTRIES + head.headers.len())?;
    // The keys are interned: made once, their hash computed once.
    let set = |key: &Bound<'py, PyString>, value: &[u8]| env.set_item(key, latin1(py, value)?);

    env.set_item(intern!(py, "REQUEST_METHOD"), common(py, &head.method)?)?;
    let (script_name, path_info) = split_script_name(head.location.as_deref(), &head.path);
    set(intern!(py, "SCRIPT_NAME"), script_name)?;
    set(intern!(py, "PATH_INFO"), path_info)?;
    set(intern!(py, "QUERY_STRING"), &head.query)?;
    let raw_uri = latin1(py, &head.raw_uri)?;
    env.set_item(intern!(py, "REQUEST_URI"), &raw_uri)?;
    env.set_item(intern!(py, "RAW_URI"), raw_uri)?;
    if let Some(content_type) = header(&head.headers, "content-type") {
        set(intern!(py, "CONTENT_TYPE"), content_type)?;
    }
    if head.has_body {
        // What nginx actually received; also right for chunked uploads.
        set(intern!(py, "CONTENT_LENGTH"), body.len().to_string().as_bytes())?;
    }
    let server_name: &[u8] = if head.server_name.is_empty() { b"localhost" } else { &head.server_name };
    set(intern!(py, "SERVER_NAME"), server_name)?;
    let port = head.server_port.unwrap_or(if head.https { 443 } else { 80 });
    set(intern!(py, "SERVER_PORT"), port.to_string().as_bytes())?;
    env.set_item(intern!(py, "SERVER_PROTOCOL"), common(py, &head.protocol)?)?;
    env.set_item(intern!(py, "SERVER_SOFTWARE"), intern!(py, SERVER_SOFTWARE))?;
    set(intern!(py, "REMOTE_ADDR"), &head.remote_addr)?;
    if let Some(port) = head.remote_port {
        set(intern!(py, "REMOTE_PORT"), port.to_string().as_bytes())?;
    }
    if head.https {
        env.set_item(intern!(py, "HTTPS"), intern!(py, "on"))?;
    }
    set_http_vars(py, &env, &head.headers)?;
    if let Some((user, scheme)) = &head.user {
        set(intern!(py, "REMOTE_USER"), user)?;
        if !scheme.is_empty() {
            set(intern!(py, "AUTH_TYPE"), scheme)?;
        }
    }
    // rust_param: last, so that it may replace any of the above.
    for (name, value) in &head.params {
        env.set_item(latin1(py, name)?, latin1(py, value)?)?;
    }

    env.set_item(intern!(py, "wsgi.version"), wsgi_version(py)?)?;
    let scheme = if head.https { intern!(py, "https") } else { intern!(py, "http") };
    env.set_item(intern!(py, "wsgi.url_scheme"), scheme)?;
    env.set_item(intern!(py, "wsgi.input"), Py::new(py, WsgiInput::new(body))?)?;
    env.set_item(intern!(py, "wsgi.errors"), Py::new(py, LogStream::for_request(Arc::clone(exchange), errors_level))?)?;
    env.set_item(intern!(py, "wsgi.file_wrapper"), py.get_type::<FileWrapper>())?;
    env.set_item(intern!(py, "wsgi.multithread"), true)?;
    env.set_item(intern!(py, "wsgi.multiprocess"), true)?;
    env.set_item(intern!(py, "wsgi.run_once"), false)?;
    // nginx has the whole body before the app starts.
    env.set_item(intern!(py, "wsgi.input_terminated"), true)?;
    Ok(env)
}

/// An empty dict with room for `entries` without growing.
fn presized_dict(py: Python<'_>, entries: usize) -> PyResult<Bound<'_, PyDict>> {
    // SAFETY: returns a new reference to an empty dict, or NULL with an
    // exception set.
    unsafe {
        Bound::from_owned_ptr_or_err(py, ffi::_PyDict_NewPresized(entries as ffi::Py_ssize_t)).map(|d| d.cast_into_unchecked())
    }
}

fn wsgi_version(py: Python<'_>) -> PyResult<&Bound<'_, PyTuple>> {
    static VERSION: PyOnceLock<Py<PyTuple>> = PyOnceLock::new();
    Ok(VERSION.get_or_try_init(py, || PyTuple::new(py, [1, 0]).map(Bound::unbind))?.bind(py))
}

/// HTTP_* entries. Their keys come from a per-thread cache of header
/// names, so a header seen before costs no string building or hashing.
fn set_http_vars(py: Python<'_>, env: &Bound<'_, PyDict>, headers: &[(Vec<u8>, Vec<u8>)]) -> PyResult<()> {
    let repeated = headers.iter().enumerate().any(|(i, (a, _))| headers[..i].iter().any(|(b, _)| a.eq_ignore_ascii_case(b)));
    if repeated {
        // Rare: join the values first.
        for (name, value) in http_vars(headers) {
            env.set_item(name, latin1(py, &value)?)?;
        }
        return Ok(());
    }
    for (name, value) in headers {
        if let Some(key) = http_key(py, name) {
            env.set_item(key, latin1(py, value)?)?;
        }
    }
    Ok(())
}

/// Header names remembered per thread; beyond this many, keys are built
/// each time (a client inventing names cannot grow memory).
const HTTP_KEYS_MAX: usize = 256;

thread_local! {
    static HTTP_KEYS: RefCell<HashMap<Vec<u8>, Py<PyString>>> = RefCell::new(HashMap::new());
}

fn http_key<'py>(py: Python<'py>, name: &[u8]) -> Option<Bound<'py, PyString>> {
    HTTP_KEYS.with_borrow_mut(|keys| {
        if let Some(key) = keys.get(name) {
            return Some(key.bind(py).clone());
        }
        let key = PyString::intern(py, &http_var_name(name)?);
        if keys.len() < HTTP_KEYS_MAX {
            keys.insert(name.to_vec(), key.clone().unbind());
        }
        Some(key)
    })
}
