//! The response head an app produces, checked before nginx sees it.
//!
//! Whatever an app returns, the bytes that reach nginx's header filter can
//! never split a response: status lines and header values with CR, LF or
//! other control characters are refused here, where the head is made (the
//! app's thread, or nginx's as it parses a CGI program's or a pool
//! process's head), so the error names the app's mistake and the client
//! gets a clean 500.

use std::fmt;

/// A validated status and header list. Only [`ResponseHead::new`] builds one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    status: u16,
    /// "200 OK" as the app spelled it, when it gave a reason phrase.
    status_line: Option<Vec<u8>>,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// Hop-by-hop headers the app sent; nginx owns the connection, so they
    /// are dropped (and reported).
    dropped: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadError {
    Status(String),
    HeaderName(String),
    HeaderValue { name: String, problem: &'static str },
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadError::Status(s) => write!(
                f,
                "invalid status {s:?}: expected three digits from 200 to 599, a space and a reason phrase"
            ),
            HeadError::HeaderName(n) => write!(f, "invalid header name {n:?}: must be an HTTP token"),
            HeadError::HeaderValue { name, problem } => {
                write!(f, "invalid value for header {name:?}: {problem}")
            }
        }
    }
}

impl std::error::Error for HeadError {}

/// Headers that describe one connection, not the response. nginx sets its
/// own; an app's would corrupt the framing (PEP 3333 forbids them too).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

impl ResponseHead {
    /// Validates a status line ("200 OK") and header list given as
    /// latin-1 bytes.
    pub fn new(status: &[u8], headers: Vec<(Vec<u8>, Vec<u8>)>) -> Result<ResponseHead, HeadError> {
        let (code, status_line) = parse_status(status)?;
        let mut kept = Vec::with_capacity(headers.len());
        let mut dropped = Vec::new();
        for (name, value) in headers {
            check_name(&name)?;
            check_value(&name, &value)?;
            if HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h.as_bytes())) {
                dropped.push(String::from_utf8_lossy(&name).into_owned());
                continue;
            }
            if name.eq_ignore_ascii_case(b"content-length") && parse_content_length(&value).is_none() {
                return Err(HeadError::HeaderValue {
                    name: String::from_utf8_lossy(&name).into_owned(),
                    problem: "must be a non-negative integer",
                });
            }
            kept.push((name, value));
        }
        Ok(ResponseHead { status: code, status_line, headers: kept, dropped })
    }

    /// Replaces the status line ("200 OK"), validated.
    pub fn set_status(&mut self, status: &[u8]) -> Result<(), HeadError> {
        (self.status, self.status_line) = parse_status(status)?;
        Ok(())
    }

    pub fn status(&self) -> u16 {
        self.status
    }

    pub fn status_line(&self) -> Option<&[u8]> {
        self.status_line.as_deref()
    }

    pub fn headers(&self) -> &[(Vec<u8>, Vec<u8>)] {
        &self.headers
    }

    pub fn into_headers(self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.headers
    }

    pub fn dropped(&self) -> &[String] {
        &self.dropped
    }

    /// The Content-Length the app declared (validated in `new`).
    pub fn content_length(&self) -> Option<u64> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(b"content-length"))
            .and_then(|(_, v)| parse_content_length(v))
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
    }

    /// Adds a header the server computed (a Content-Length it knows).
    pub fn push_header(&mut self, name: &str, value: String) {
        self.headers.push((name.as_bytes().to_vec(), value.into_bytes()));
    }
}

fn parse_status(status: &[u8]) -> Result<(u16, Option<Vec<u8>>), HeadError> {
    let bad = || HeadError::Status(String::from_utf8_lossy(status).into_owned());
    if status.len() < 3 || !status[..3].iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let code = (status[0] - b'0') as u16 * 100 + (status[1] - b'0') as u16 * 10 + (status[2] - b'0') as u16;
    if !(200..=599).contains(&code) {
        return Err(bad());
    }
    match &status[3..] {
        [] => Ok((code, None)),
        [b' ', reason @ ..] if !reason.is_empty() && reason.iter().all(|&c| is_field_char(c)) => {
            Ok((code, Some(status.to_vec())))
        }
        _ => Err(bad()),
    }
}

/// An RFC 9110 token.
fn check_name(name: &[u8]) -> Result<(), HeadError> {
    let tchar = |&c: &u8| {
        matches!(c, b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z'
            | b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~')
    };
    if name.is_empty() || !name.iter().all(tchar) {
        return Err(HeadError::HeaderName(String::from_utf8_lossy(name).into_owned()));
    }
    Ok(())
}

fn check_value(name: &[u8], value: &[u8]) -> Result<(), HeadError> {
    let problem = if value.iter().all(|&c| is_field_char(c)) {
        None
    } else if value.iter().any(|&c| c == b'\r' || c == b'\n') {
        Some("contains CR or LF")
    } else {
        Some("contains a control character")
    };
    match problem {
        Some(problem) => Err(HeadError::HeaderValue {
            name: String::from_utf8_lossy(name).into_owned(),
            problem,
        }),
        None => Ok(()),
    }
}

/// Visible ASCII, space, tab and obs-text (0x80-0xFF).
fn is_field_char(c: u8) -> bool {
    c == b'\t' || (0x20..0x7f).contains(&c) || c >= 0x80
}

pub fn parse_content_length(value: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(value).ok()?.trim_matches([' ', '\t']);
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
        pairs.iter().map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec())).collect()
    }

    #[test]
    fn status_with_reason_is_kept_verbatim() {
        let head = ResponseHead::new(b"299 Custom Thing", vec![]).unwrap();
        assert_eq!(head.status(), 299);
        assert_eq!(head.status_line(), Some(&b"299 Custom Thing"[..]));
    }

    #[test]
    fn bare_code_is_accepted() {
        let head = ResponseHead::new(b"404", vec![]).unwrap();
        assert_eq!((head.status(), head.status_line()), (404, None));
    }

    #[test]
    fn bad_statuses_are_refused() {
        for bad in [&b"OK"[..], b"20 OK", b"2000 OK", b"100 Continue", b"600 Nope", b"200 ", b"200  OK\r\nX: y", b"200\tOK", b"abc"] {
            assert!(matches!(ResponseHead::new(bad, vec![]), Err(HeadError::Status(_))), "{bad:?}");
        }
    }

    #[test]
    fn crlf_in_value_is_refused() {
        let err = ResponseHead::new(b"200 OK", h(&[("X-A", "1\r\nSet-Cookie: evil=1")])).unwrap_err();
        assert_eq!(err, HeadError::HeaderValue { name: "X-A".into(), problem: "contains CR or LF" });
        assert!(ResponseHead::new(b"200 OK", h(&[("X-A", "a\nb")])).is_err());
        assert!(ResponseHead::new(b"200 OK", h(&[("X-A", "a\0b")])).is_err());
    }

    #[test]
    fn latin1_and_tabs_are_fine_in_values() {
        let head = ResponseHead::new(b"200 OK", vec![(b"X-L".to_vec(), vec![b'c', 0xe9, b'\t', b'!'])]).unwrap();
        assert_eq!(head.headers().len(), 1);
    }

    #[test]
    fn bad_names_are_refused() {
        for bad in ["", "X A", "X:A", "X\rA", "Ä"] {
            assert!(matches!(ResponseHead::new(b"200 OK", h(&[(bad, "v")])), Err(HeadError::HeaderName(_))), "{bad:?}");
        }
    }

    #[test]
    fn hop_by_hop_headers_are_dropped_and_reported() {
        let head = ResponseHead::new(b"200 OK", h(&[("Connection", "close"), ("X-Keep", "1"), ("Transfer-Encoding", "chunked")])).unwrap();
        assert_eq!(head.headers(), &h(&[("X-Keep", "1")])[..]);
        assert_eq!(head.dropped(), &["Connection".to_string(), "Transfer-Encoding".to_string()]);
    }

    #[test]
    fn content_length_must_be_a_number() {
        assert!(ResponseHead::new(b"200 OK", h(&[("Content-Length", "12")])).is_ok());
        assert!(ResponseHead::new(b"200 OK", h(&[("Content-Length", "-1")])).is_err());
        assert!(ResponseHead::new(b"200 OK", h(&[("Content-Length", "1e3")])).is_err());
        assert!(ResponseHead::new(b"200 OK", h(&[("content-length", "")])).is_err());
    }
}
