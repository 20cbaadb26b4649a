//! A captured request as FastCGI params, and back.
//!
//! Runs in nginx's workers (encoding) and in pool processes (decoding).
//!
//! nginx workers send the CGI meta-variables any FastCGI responder
//! understands. A pool process rebuilds the [`RequestHead`] from them and
//! makes the environ with the same code as embedded mode, so an app sees the
//! same environ either way. Headers travel as their HTTP_* variables
//! (repeats already joined), which is all an environ is made of.
//!
//! Three params of our own, which other responders ignore: `RUST_APP` (which
//! of the pool's apps), `RUST_QUEUED_AT` (CLOCK_MONOTONIC µs when nginx
//! sent the request, for the queue timeout; the clock is system-wide) and
//! `RUST_ERRORS_LEVEL` (the location's `rust_wsgi_errors_level`).

use crate::core::capture::RequestHead;
use crate::core::meta::{header, http_vars, split_script_name};

pub const APP: &[u8] = b"RUST_APP";
pub const QUEUED_AT: &[u8] = b"RUST_QUEUED_AT";
pub const ERRORS_LEVEL: &[u8] = b"RUST_ERRORS_LEVEL";
/// The body comes as STDIN records after the request starts
/// (`rust_asgi_request_buffering off`): the app gets it as it arrives.
pub const STREAMING: &[u8] = b"RUST_BODY_STREAMING";
/// The request is a WebSocket handshake: the connection then carries its
/// messages (see [`crate::pool::ws_wire`]).
pub const WEBSOCKET: &[u8] = b"RUST_WEBSOCKET";

/// What a request carries beyond its head.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extras {
    pub app: String,
    pub queued_at_us: u64,
    pub errors_level: String,
    /// The body's length (CONTENT_LENGTH when the request has a body): how
    /// much room the pool process makes for it.
    pub content_length: u64,
    /// See [`STREAMING`]; then `content_length` is only the client's
    /// Content-Length, if it sent one.
    pub streaming: bool,
    /// See [`WEBSOCKET`].
    pub websocket: bool,
    /// Sent by another web server (a stock nginx through `listen=`), not
    /// by this module's workers (their requests carry `RUST_QUEUED_AT`):
    /// the answer must be plain FastCGI, none of our own records.
    pub plain: bool,
}

/// Hands `put` each param for `head`, whose body is
/// `extras.content_length` bytes. Borrowed, not collected: nginx's thread
/// encodes them straight into the request's records.
pub fn write_params(head: &RequestHead, extras: &Extras, mut put: impl FnMut(&[u8], &[u8])) {
    let (script_name, path_info) = split_script_name(head.location.as_deref(), &head.path);
    put(b"REQUEST_METHOD", &head.method);
    put(b"REQUEST_URI", &head.raw_uri);
    put(b"SCRIPT_NAME", script_name);
    put(b"PATH_INFO", path_info);
    put(b"QUERY_STRING", &head.query);
    put(b"SERVER_PROTOCOL", &head.protocol);
    put(b"SERVER_NAME", &head.server_name);
    if let Some(port) = head.server_port {
        put(b"SERVER_PORT", port.to_string().as_bytes());
    }
    put(b"REMOTE_ADDR", &head.remote_addr);
    if let Some(port) = head.remote_port {
        put(b"REMOTE_PORT", port.to_string().as_bytes());
    }
    if head.https {
        put(b"HTTPS", b"on");
    }
    if let Some(content_type) = header(&head.headers, "content-type") {
        put(b"CONTENT_TYPE", content_type);
    }
    if extras.websocket {
        put(WEBSOCKET, b"1");
    }
    if extras.streaming {
        put(STREAMING, b"1");
        if let Some(length) = header(&head.headers, "content-length") {
            put(b"CONTENT_LENGTH", length);
        }
    } else if head.has_body {
        put(b"CONTENT_LENGTH", extras.content_length.to_string().as_bytes());
    }
    if let Some((user, scheme)) = &head.user {
        put(b"REMOTE_USER", user);
        put(b"AUTH_TYPE", scheme);
    }
    put(APP, extras.app.as_bytes());
    put(QUEUED_AT, extras.queued_at_us.to_string().as_bytes());
    put(ERRORS_LEVEL, extras.errors_level.as_bytes());
    for (name, value) in http_vars(&head.headers) {
        // The name is latin-1 text, one char per byte of the header's name.
        let name: Vec<u8> = name.chars().map(|c| c as u8).collect();
        put(&name, &value);
    }
    // rust_param: last, so that it may replace any of the above.
    for (name, value) in &head.params {
        put(name, value);
    }
}

/// The params of a request to a FastCGI program, as nginx's fastcgi module
/// sends them: the location's `rust_fastcgi_param`s (evaluated, in order),
/// then every request header as its HTTP_* variable (repeats joined, as
/// nginx does since 1.23) unless a param of that name was given, then the
/// `rust_param`s.
pub fn write_program_params(fastcgi: &[(Vec<u8>, Vec<u8>)], head: &RequestHead, mut put: impl FnMut(&[u8], &[u8])) {
    for (name, value) in fastcgi {
        put(name, value);
    }
    for (name, value) in http_vars(&head.headers) {
        let name: Vec<u8> = name.chars().map(|c| c as u8).collect();
        if !fastcgi.iter().any(|(n, _)| *n == name) {
            put(&name, &value);
        }
    }
    for (name, value) in &head.params {
        put(name, value);
    }
}

/// Rebuilds the head (and our extras) from params.
pub fn from_params(params: Vec<(&[u8], &[u8])>) -> Result<(RequestHead, Extras), String> {
    let mut head = RequestHead::default();
    let mut extras = Extras::default();
    let (mut script_name, mut path_info) = (Vec::new(), Vec::new());
    let number = |name: &str, v: &[u8]| -> Result<u64, String> {
        std::str::from_utf8(v).ok().and_then(|s| s.parse().ok()).ok_or_else(|| format!("{name} is not a number"))
    };
    for (name, value) in params {
        match name {
            b"REQUEST_METHOD" => head.method = value.to_vec(),
            b"REQUEST_URI" => head.raw_uri = value.to_vec(),
            b"SCRIPT_NAME" => script_name = value.to_vec(),
            b"PATH_INFO" => path_info = value.to_vec(),
            b"QUERY_STRING" => head.query = value.to_vec(),
            b"SERVER_PROTOCOL" => head.protocol = value.to_vec(),
            b"SERVER_NAME" => head.server_name = value.to_vec(),
            b"SERVER_PORT" => head.server_port = Some(number("SERVER_PORT", value)? as u16),
            b"REMOTE_ADDR" => head.remote_addr = value.to_vec(),
            b"REMOTE_PORT" => head.remote_port = Some(number("REMOTE_PORT", value)? as u16),
            b"HTTPS" => head.https = value.eq_ignore_ascii_case(b"on"),
            b"CONTENT_TYPE" => head.headers.push((b"content-type".to_vec(), value.to_vec())),
            b"CONTENT_LENGTH" => {
                head.has_body = true;
                extras.content_length = number("CONTENT_LENGTH", value)?;
            }
            APP => extras.app = String::from_utf8_lossy(value).into_owned(),
            QUEUED_AT => extras.queued_at_us = number("RUST_QUEUED_AT", value)?,
            ERRORS_LEVEL => extras.errors_level = String::from_utf8_lossy(value).into_owned(),
            WEBSOCKET => extras.websocket = true,
            STREAMING => {
                extras.streaming = true;
                head.has_body = true;
            }
            b"REMOTE_USER" => head.user.get_or_insert_with(Default::default).0 = value.to_vec(),
            b"AUTH_TYPE" => head.user.get_or_insert_with(Default::default).1 = value.to_vec(),
            _ => {
                if let Some(header) = name.strip_prefix(b"HTTP_") {
                    let header = header.iter().map(|&c| if c == b'_' { b'-' } else { c.to_ascii_lowercase() }).collect();
                    head.headers.push((header, value.to_vec()));
                } else {
                    // A rust_param (or another responder's variable): the
                    // environ gets it as it is.
                    head.params.push((name.to_vec(), value.to_vec()));
                }
            }
        }
    }
    if head.method.is_empty() {
        return Err("no REQUEST_METHOD".into());
    }
    extras.plain = extras.queued_at_us == 0;
    head.location = (!script_name.is_empty()).then(|| script_name.clone());
    script_name.extend_from_slice(&path_info);
    head.path = script_name;
    Ok((head, extras))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to_params(head: &RequestHead, content_length: u64, extras: &Extras) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut params = Vec::new();
        let extras = Extras { content_length, ..extras.clone() };
        write_params(head, &extras, |n, v| params.push((n.to_vec(), v.to_vec())));
        params
    }

    fn borrow(params: &[(Vec<u8>, Vec<u8>)]) -> Vec<(&[u8], &[u8])> {
        params.iter().map(|(n, v)| (n.as_slice(), v.as_slice())).collect()
    }

    fn h(n: &str, v: &str) -> (Vec<u8>, Vec<u8>) {
        (n.as_bytes().to_vec(), v.as_bytes().to_vec())
    }

    #[test]
    fn a_head_survives_the_trip() {
        let head = RequestHead {
            method: b"POST".to_vec(),
            raw_uri: b"/app/x%20y?a=1".to_vec(),
            path: b"/app/x y".to_vec(),
            query: b"a=1".to_vec(),
            protocol: b"HTTP/1.1".to_vec(),
            headers: vec![h("Host", "h"), h("Content-Type", "text/plain"), h("Cookie", "a=1"), h("cookie", "b=2"), h("X-Caf\u{e9}", "\u{e9}")],
            remote_addr: b"127.0.0.1".to_vec(),
            remote_port: Some(5555),
            server_name: b"h".to_vec(),
            server_port: Some(8080),
            https: true,
            location: Some(b"/app/".to_vec()),
            has_body: true,
            user: Some((b"alice".to_vec(), b"Basic".to_vec())),
            params: vec![h("SSL_CLIENT_S_DN", "CN=alice"), h("SERVER_NAME", "public.example")],
        };
        let extras = Extras { app: "/a.py:application".into(), queued_at_us: 42, errors_level: "warn".into(), content_length: 3, streaming: false, websocket: false, plain: false };
        let params = to_params(&head, 3, &extras);
        assert!(params.contains(&h("CONTENT_LENGTH", "3")));
        assert!(params.contains(&h("HTTP_COOKIE", "a=1; b=2")));
        let (back, extras_back) = from_params(borrow(&params)).unwrap();
        assert_eq!(extras_back, extras);
        assert_eq!((back.method, back.raw_uri, back.query, back.protocol), (head.method, head.raw_uri, head.query, head.protocol));
        assert_eq!(split_script_name(back.location.as_deref(), &back.path), (&b"/app"[..], &b"/x y"[..]));
        assert_eq!((back.remote_port, back.server_port, back.https, back.has_body), (Some(5555), Some(8080), true, true));
        // The same HTTP_* variables come out of the rebuilt headers.
        assert_eq!(http_vars(&back.headers), http_vars(&head.headers));
        assert_eq!(header(&back.headers, "content-type"), Some(&b"text/plain"[..]));
        assert_eq!(back.user, head.user);
        // rust_param: a new entry arrives as a param; one that names a
        // meta-variable replaces it.
        assert_eq!(back.params, vec![h("SSL_CLIENT_S_DN", "CN=alice")]);
        assert_eq!(back.server_name, b"public.example");
    }

    #[test]
    fn no_body_no_length_and_root_mount() {
        let head = RequestHead { method: b"GET".to_vec(), path: b"/x".to_vec(), location: Some(b"/".to_vec()), ..Default::default() };
        let params = to_params(&head, 0, &Extras::default());
        assert!(!params.iter().any(|(n, _)| n == b"CONTENT_LENGTH"));
        let (back, _) = from_params(borrow(&params)).unwrap();
        assert!(!back.has_body);
        assert_eq!(split_script_name(back.location.as_deref(), &back.path), (&b""[..], &b"/x"[..]));
    }

    #[test]
    fn program_params_are_the_locations_then_the_headers() {
        let head = RequestHead {
            headers: vec![h("Host", "h"), h("X-Forwarded-For", "1.2.3.4"), h("Cookie", "a=1"), h("cookie", "b=2")],
            params: vec![h("FROM_RUST_PARAM", "1")],
            ..Default::default()
        };
        let fastcgi = vec![h("SCRIPT_FILENAME", "/srv/index.php"), h("HTTP_X_FORWARDED_FOR", "replaced")];
        let mut params = Vec::new();
        write_program_params(&fastcgi, &head, |n, v| params.push((n.to_vec(), v.to_vec())));
        assert_eq!(
            params,
            vec![
                h("SCRIPT_FILENAME", "/srv/index.php"),
                h("HTTP_X_FORWARDED_FOR", "replaced"),
                h("HTTP_HOST", "h"),
                h("HTTP_COOKIE", "a=1; b=2"),
                h("FROM_RUST_PARAM", "1"),
            ]
        );
    }

    #[test]
    fn a_streamed_body_says_so_and_keeps_the_clients_length() {
        let head = RequestHead { method: b"POST".to_vec(), has_body: true, headers: vec![h("Content-Length", "20")], ..Default::default() };
        let extras = Extras { streaming: true, ..Default::default() };
        let params = to_params(&head, 0, &extras);
        assert!(params.contains(&h("RUST_BODY_STREAMING", "1")));
        assert!(params.contains(&h("CONTENT_LENGTH", "20")), "the client's length, not the 0 bytes nginx has read");
        let (back, extras_back) = from_params(borrow(&params)).unwrap();
        assert!(extras_back.streaming && back.has_body);
        let chunked = RequestHead { method: b"POST".to_vec(), has_body: true, ..Default::default() };
        assert!(!to_params(&chunked, 0, &extras).iter().any(|(n, _)| n == b"CONTENT_LENGTH"), "none for a chunked body");
    }

    #[test]
    fn a_request_without_a_method_is_refused() {
        assert!(from_params(vec![(&b"REQUEST_URI"[..], &b"/"[..])]).is_err());
    }
}
