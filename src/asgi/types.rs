//! ASGI connection scopes of HTTP requests and WebSocket handshakes (the
//! ASGI HTTP and WebSocket spec, version 2.5).

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use pyo3::intern;

use crate::core::capture::RequestHead;
use crate::core::meta::split_script_name;

/// The HTTP and WebSocket spec version whose messages the module speaks:
/// 2.5 has the `reason` of `websocket.disconnect` (2.4: `send()` raises
/// once the client is gone; 2.3: `websocket.close` has a reason).
pub const SPEC_VERSION: &str = "2.5";

pub fn http_scope<'py>(py: Python<'py>, head: &RequestHead) -> PyResult<Bound<'py, PyDict>> {
    let scope = common_scope(py, head, intern!(py, "http"))?;
    scope.set_item(intern!(py, "http_version"), http_version(py, &head.protocol))?;
    scope.set_item(intern!(py, "method"), method(py, &head.method))?;
    let scheme = if head.https { intern!(py, "https") } else { intern!(py, "http") };
    scope.set_item(intern!(py, "scheme"), scheme)?;
    let extensions = PyDict::new(py);
    extensions.set_item(intern!(py, "http.response.pathsend"), PyDict::new(py))?;
    extensions.set_item(intern!(py, "environ"), environ(py, head)?)?;
    scope.set_item(intern!(py, "extensions"), extensions)?;
    Ok(scope)
}

/// The scope of a WebSocket handshake; `subprotocols` from
/// Sec-WebSocket-Protocol, in the client's order.
pub fn websocket_scope<'py>(py: Python<'py>, head: &RequestHead) -> PyResult<Bound<'py, PyDict>> {
    let scope = common_scope(py, head, intern!(py, "websocket"))?;
    scope.set_item(intern!(py, "http_version"), intern!(py, "1.1"))?;
    let scheme = if head.https { intern!(py, "wss") } else { intern!(py, "ws") };
    scope.set_item(intern!(py, "scheme"), scheme)?;
    let subprotocols = PyList::empty(py);
    for (name, value) in &head.headers {
        if name.eq_ignore_ascii_case(b"sec-websocket-protocol") {
            for protocol in value.split(|&c| c == b',').map(<[u8]>::trim_ascii).filter(|p| !p.is_empty()) {
                subprotocols.append(String::from_utf8_lossy(protocol))?;
            }
        }
    }
    scope.set_item(intern!(py, "subprotocols"), subprotocols)?;
    let extensions = PyDict::new(py);
    extensions.set_item(intern!(py, "environ"), environ(py, head)?)?;
    scope.set_item(intern!(py, "extensions"), extensions)?;
    Ok(scope)
}

/// What HTTP and WebSocket scopes share.
fn common_scope<'py>(py: Python<'py>, head: &RequestHead, kind: &Bound<'py, PyString>) -> PyResult<Bound<'py, PyDict>> {
    let scope = PyDict::new(py);
    scope.set_item(intern!(py, "type"), kind)?;
    let asgi = PyDict::new(py);
    asgi.set_item(intern!(py, "version"), intern!(py, "3.0"))?;
    asgi.set_item(intern!(py, "spec_version"), intern!(py, SPEC_VERSION))?;
    scope.set_item(intern!(py, "asgi"), asgi)?;
    // `path` is the whole decoded path, root_path included (the spec, and
    // what Starlette's routing expects); root_path is the location prefix.
    let (root_path, _) = split_script_name(head.location.as_deref(), &head.path);
    scope.set_item(intern!(py, "path"), String::from_utf8_lossy(&head.path))?;
    let raw_path = head.raw_uri.split(|&c| c == b'?').next().unwrap_or_default();
    scope.set_item(intern!(py, "raw_path"), PyBytes::new(py, raw_path))?;
    scope.set_item(intern!(py, "query_string"), PyBytes::new(py, &head.query))?;
    scope.set_item(intern!(py, "root_path"), String::from_utf8_lossy(root_path))?;
    scope.set_item(intern!(py, "headers"), headers(py, &head.headers)?)?;
    let client = match head.remote_port {
        Some(port) => PyTuple::new(py, [String::from_utf8_lossy(&head.remote_addr).into_pyobject(py)?.into_any(), port.into_pyobject(py)?.into_any()])?.into_any(),
        // A unix-socket client has no address and port.
        None => py.None().into_bound(py),
    };
    scope.set_item(intern!(py, "client"), client)?;
    let server_name: &[u8] = if head.server_name.is_empty() { b"localhost" } else { &head.server_name };
    let port = head.server_port.unwrap_or(if head.https { 443 } else { 80 });
    scope.set_item(intern!(py, "server"), (String::from_utf8_lossy(server_name), port))?;
    Ok(scope)
}

/// What a WSGI app would find in its environ beyond the request itself:
/// REMOTE_USER and AUTH_TYPE after an nginx auth module, and every
/// `rust_param`. ASGI has no environ, so they go to
/// `scope["extensions"]["environ"]` (str to str, latin-1 like an environ).
fn environ<'py>(py: Python<'py>, head: &RequestHead) -> PyResult<Bound<'py, PyDict>> {
    let environ = PyDict::new(py);
    let latin1 = |b: &[u8]| b.iter().map(|&c| c as char).collect::<String>();
    if let Some((user, scheme)) = &head.user {
        environ.set_item(intern!(py, "REMOTE_USER"), latin1(user))?;
        environ.set_item(intern!(py, "AUTH_TYPE"), latin1(scheme))?;
    }
    for (name, value) in &head.params {
        environ.set_item(latin1(name), latin1(value))?;
    }
    Ok(environ)
}

fn http_version<'py>(py: Python<'py>, protocol: &[u8]) -> Bound<'py, PyString> {
    match protocol {
        b"HTTP/1.0" => intern!(py, "1.0").clone(),
        b"HTTP/2.0" => intern!(py, "2").clone(),
        b"HTTP/3.0" => intern!(py, "3").clone(),
        _ => intern!(py, "1.1").clone(),
    }
}

fn method<'py>(py: Python<'py>, method: &[u8]) -> Bound<'py, PyString> {
    match method {
        b"GET" => intern!(py, "GET").clone(),
        b"POST" => intern!(py, "POST").clone(),
        b"HEAD" => intern!(py, "HEAD").clone(),
        _ => PyString::new(py, &String::from_utf8_lossy(method)),
    }
}

/// `[(name, value), ...]` as byte strings, names lowercased (the spec
/// requires it; nginx keeps the client's case), in the client's order.
fn headers<'py>(py: Python<'py>, headers: &[(Vec<u8>, Vec<u8>)]) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for (name, value) in headers {
        let name = PyBytes::new(py, &name.to_ascii_lowercase());
        list.append((name, PyBytes::new(py, value)))?;
    }
    Ok(list)
}
