//! A CGI-style response head (RFC 3875 §6): a CGI program's, and a FastCGI
//! responder's (the pool's), which is the same format on FCGI_STDOUT.
//!
//! Header lines end with LF or CRLF; an empty line ends the head. `Status`
//! sets the status; a `Location` that is a local path (with no Status) is a
//! local redirect, served by nginx as if the client had asked for it; an
//! absolute `Location` without a Status is a 302 redirect. Everything else
//! is a response header, checked like any app's.

use std::fmt;

use super::head::{HeadError, ResponseHead};

/// How much head a program may send before it counts as broken, unless
/// `rust_cgi_header_limit` says otherwise.
pub const HEAD_LIMIT: usize = 32 * 1024;

#[derive(Debug, PartialEq, Eq)]
pub enum CgiHead {
    Response(ResponseHead),
    LocalRedirect { uri: Vec<u8>, args: Vec<u8> },
}

#[derive(Debug, PartialEq, Eq)]
pub enum HeadProblem {
    /// A line that is not `Name: value`.
    Malformed(String),
    /// No end of the head within the limit (in bytes).
    TooLarge(usize),
    Invalid(HeadError),
}

impl fmt::Display for HeadProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadProblem::Malformed(line) => write!(f, "sent a malformed header line {line:?}"),
            HeadProblem::TooLarge(limit) => write!(f, "sent more than {limit} bytes of headers (rust_cgi_header_limit)"),
            HeadProblem::Invalid(e) => write!(f, "sent an {e}"),
        }
    }
}

/// Parses the head at the start of `buf`. Returns None until the blank
/// line has arrived, else the head and how many bytes it took.
pub fn parse(buf: &[u8], limit: usize) -> Result<Option<(CgiHead, usize)>, HeadProblem> {
    parse_head(buf, limit, true)
}

/// As [`parse`]; without `local_redirects` (a FastCGI responder's head, as
/// nginx's fastcgi module reads it), a local `Location` without a Status
/// is a 302 like any other.
pub fn parse_head(buf: &[u8], limit: usize, local_redirects: bool) -> Result<Option<(CgiHead, usize)>, HeadProblem> {
    let mut lines = Vec::new();
    let mut at = 0;
    let consumed = loop {
        let Some(end) = buf[at..].iter().position(|&c| c == b'\n') else {
            if buf.len() > limit {
                return Err(HeadProblem::TooLarge(limit));
            }
            return Ok(None);
        };
        let line = &buf[at..at + end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        at += end + 1;
        if at > limit {
            return Err(HeadProblem::TooLarge(limit));
        }
        if line.is_empty() {
            break at;
        }
        lines.push(line);
    };

    let mut status = None;
    let mut location = None;
    let mut headers = Vec::with_capacity(lines.len());
    for line in lines {
        let malformed = || HeadProblem::Malformed(String::from_utf8_lossy(line).into_owned());
        let colon = line.iter().position(|&c| c == b':').ok_or_else(malformed)?;
        let name = &line[..colon];
        let value = trim(&line[colon + 1..]);
        if name.is_empty() || name.iter().any(|c| c.is_ascii_whitespace()) {
            return Err(malformed());
        }
        if name.eq_ignore_ascii_case(b"status") {
            status = Some(value.to_vec());
        } else {
            if name.eq_ignore_ascii_case(b"location") {
                location = Some(value.to_vec());
            }
            headers.push((name.to_vec(), value.to_vec()));
        }
    }

    if let (Some(target), None, true) = (&location, &status, local_redirects) {
        if target.starts_with(b"/") {
            let (uri, args) = match target.iter().position(|&c| c == b'?') {
                Some(q) => (target[..q].to_vec(), target[q + 1..].to_vec()),
                None => (target.clone(), Vec::new()),
            };
            return Ok(Some((CgiHead::LocalRedirect { uri, args }, consumed)));
        }
    }
    let status = match (status, location) {
        (Some(status), _) => status,
        (None, Some(_)) => b"302 Found".to_vec(),
        (None, None) => b"200 OK".to_vec(),
    };
    let head = ResponseHead::new(&status, headers).map_err(HeadProblem::Invalid)?;
    Ok(Some((CgiHead::Response(head), consumed)))
}

/// A non-parsed-headers program's status line ("HTTP/1.1 200 OK"), for
/// protocols where its raw output cannot be passed on: the rest of its head
/// is then parsed like any CGI head.
pub fn nph_status_line(buf: &[u8]) -> Option<(Vec<u8>, usize)> {
    let end = buf.iter().position(|&c| c == b'\n')?;
    let line = buf[..end].strip_suffix(b"\r").unwrap_or(&buf[..end]);
    let rest = line.strip_prefix(b"HTTP/")?;
    let space = rest.iter().position(|&c| c == b' ')?;
    Some((rest[space + 1..].to_vec(), end + 1))
}

fn trim(value: &[u8]) -> &[u8] {
    let start = value.iter().position(|c| !matches!(c, b' ' | b'\t')).unwrap_or(value.len());
    let end = value.iter().rposition(|c| !matches!(c, b' ' | b'\t')).map_or(start, |i| i + 1);
    &value[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(buf: &[u8]) -> (ResponseHead, usize) {
        match parse(buf, HEAD_LIMIT).unwrap().unwrap() {
            (CgiHead::Response(head), used) => (head, used),
            other => panic!("not a response: {other:?}"),
        }
    }

    #[test]
    fn a_fastcgi_head_has_no_local_redirects() {
        let Some((CgiHead::Response(head), _)) = parse_head(b"Location: /login\r\nSet-Cookie: a=1\r\n\r\n", HEAD_LIMIT, false).unwrap() else {
            panic!("not a response")
        };
        assert_eq!(head.status(), 302);
        assert_eq!(head.headers().len(), 2);
    }

    #[test]
    fn content_type_only_is_200() {
        let (head, used) = response(b"Content-Type: text/plain\n\nbody");
        assert_eq!(head.status(), 200);
        assert_eq!(head.headers(), &[(b"Content-Type".to_vec(), b"text/plain".to_vec())]);
        assert_eq!(used, 26);
    }

    #[test]
    fn crlf_lines_and_status() {
        let (head, used) = response(b"Status: 404 Not Here\r\nContent-Type: text/html\r\nX-A:  spaced  \r\n\r\nrest");
        assert_eq!(head.status(), 404);
        assert_eq!(head.status_line(), Some(&b"404 Not Here"[..]));
        assert_eq!(head.headers()[1], (b"X-A".to_vec(), b"spaced".to_vec()));
        assert_eq!(used, b"Status: 404 Not Here\r\nContent-Type: text/html\r\nX-A:  spaced  \r\n\r\n".len());
    }

    #[test]
    fn incomplete_heads_wait_for_more() {
        assert_eq!(parse(b"Content-Type: text/plain\n", HEAD_LIMIT).unwrap(), None);
        assert_eq!(parse(b"Content-Ty", HEAD_LIMIT).unwrap(), None);
        assert_eq!(parse(b"", HEAD_LIMIT).unwrap(), None);
    }

    #[test]
    fn local_and_client_redirects() {
        assert_eq!(
            parse(b"Location: /other/page?x=1\n\n", HEAD_LIMIT).unwrap().unwrap().0,
            CgiHead::LocalRedirect { uri: b"/other/page".to_vec(), args: b"x=1".to_vec() }
        );
        let (head, _) = response(b"Location: http://example.test/\n\n");
        assert_eq!(head.status(), 302);
        let (head, _) = response(b"Status: 301 Moved\nLocation: /moved\n\n");
        assert_eq!(head.status(), 301);
    }

    #[test]
    fn broken_heads() {
        assert_eq!(parse(b"this is not a header\n\n", HEAD_LIMIT), Err(HeadProblem::Malformed("this is not a header".into())));
        assert!(matches!(parse(b"Status: abc\n\n", HEAD_LIMIT), Err(HeadProblem::Invalid(HeadError::Status(_)))));
        assert!(matches!(parse(b"X-Bad: a\x01b\n\n", HEAD_LIMIT), Err(HeadProblem::Invalid(_))));
        assert_eq!(parse(&vec![b'x'; HEAD_LIMIT + 1], HEAD_LIMIT), Err(HeadProblem::TooLarge(HEAD_LIMIT)));
        let mut many = b"X: y\n".repeat(HEAD_LIMIT / 5 + 1);
        many.extend_from_slice(b"\n");
        assert_eq!(parse(&many, HEAD_LIMIT), Err(HeadProblem::TooLarge(HEAD_LIMIT)));
    }

    #[test]
    fn nph_status_lines() {
        assert_eq!(nph_status_line(b"HTTP/1.1 200 OK\r\nX: y\r\n"), Some((b"200 OK".to_vec(), 17)));
        assert_eq!(nph_status_line(b"Content-Type: x\n"), None);
    }
}
