//! A response's events, written as FastCGI records for nginx.
//!
//! Runs in a pool process, on its main thread (the front's).
//!
//! The head goes as a CGI head on STDOUT, which nginx's worker parses as
//! it parses any FastCGI responder's; body bytes follow on STDOUT, log
//! lines on STDERR (marked with their level), and the end as
//! END_REQUEST, whose app status carries a status for nginx to answer
//! when the app failed before its head. A file response is read in as the
//! connection's output drains, so a large file never sits in memory.

use std::os::fd::AsRawFd;

use crate::core::exchange::{cost, Event};
use crate::core::head::ResponseHead;
use crate::nginx::log::Level;
use crate::pool::fastcgi as fcgi;
use crate::pool::log::mark;

use super::front::Conn;

/// Output buffered per connection before file ranges stop being read in.
const OUT_HIGH: usize = 256 * 1024;
/// File bytes read per step.
const FILE_STEP: u64 = 64 * 1024;

/// Appends the records of `events` to the connection's output.
pub fn write_events(conn: &mut Conn, events: Vec<Event>) {
    let Some(active) = conn.request.as_mut() else { return };
    let id = active.id;
    let mut events = events.into_iter().peekable();
    while let Some(event) = events.next() {
        if active.ended {
            break;
        }
        match event {
            // Another web server knows no record of ours.
            Event::Started { .. } if active.plain => {}
            Event::Started { at_ms } => fcgi::push_stream(&mut conn.out, fcgi::RUST_STARTED, id, &at_ms.to_le_bytes()),
            Event::Head(mut head) => {
                // A file response (file wrapper, pathsend) reaches nginx
                // as plain bytes: saying it may be ranged lets nginx
                // answer a Range request from it, as embedded mode does.
                if matches!(events.peek(), Some(Event::File { .. })) && !head.has_header("accept-ranges") {
                    head.push_header("Accept-Ranges", "bytes".into());
                }
                active.head_sent = true;
                fcgi::push_stream(&mut conn.out, fcgi::STDOUT, id, &cgi_head(&head))
            }
            Event::Body(bytes) => {
                conn.unacked += cost(bytes.len());
                fcgi::push_stream(&mut conn.out, fcgi::STDOUT, id, &bytes);
            }
            Event::File { file, start, end, .. } => active.file = Some((file, start, end)),
            Event::End => {
                if active.file.is_some() {
                    // After the file's bytes (see `pump_file`).
                    active.end_after_file = true;
                } else {
                    end_request(&mut conn.out, id, 0);
                    active.ended = true;
                }
            }
            Event::Fail { status, lines } => {
                for line in lines {
                    push_log(&mut conn.out, id, Level::Error, &line);
                }
                if active.plain && !active.head_sent {
                    // Another web server takes its status from a head, not
                    // from appStatus.
                    let head = format!("Status: {status}\r\nContent-Type: text/plain\r\n\r\n{status}\n");
                    fcgi::push_stream(&mut conn.out, fcgi::STDOUT, id, head.as_bytes());
                }
                end_request(&mut conn.out, id, u32::from(status.max(1)));
                active.ended = true;
            }
            Event::Log(level, message) => push_log(&mut conn.out, id, level, &message),
            // The pool process buffers request bodies.
            Event::ResumeBody => {}
            Event::Other { cost, message } => match message.downcast::<crate::asgi::ws::Upgraded>() {
                Ok(message) => {
                    conn.unacked += cost;
                    crate::pool::ws_wire::push_from_app(&mut conn.out, id, &message);
                }
                Err(_) => push_log(&mut conn.out, id, Level::Error, "rust_pool: unsupported response event"),
            },
            Event::RawHead | Event::Redirect { .. } => {
                push_log(&mut conn.out, id, Level::Error, "rust_pool: unsupported response event");
                end_request(&mut conn.out, id, 502);
                active.ended = true;
            }
        }
    }
}

/// Feeds a file range into the output as room allows; ends the
/// response after it when the app had finished.
pub fn pump_file(conn: &mut Conn) {
    let Some(active) = conn.request.as_mut() else { return };
    while conn.out.len() - conn.out_at < OUT_HIGH {
        let Some((file, at, end)) = active.file.as_mut() else { return };
        let step = (*end - *at).min(FILE_STEP) as usize;
        let (fd, mut offset) = (file.as_raw_fd(), *at);
        // Read straight into the output: a short read ends this step, 0
        // (or an error) the file.
        // SAFETY: pread_uninit initialized the bytes it counts.
        let read = unsafe {
            fcgi::push_stream_with(&mut conn.out, fcgi::STDOUT, active.id, step, |buf| {
                let n = crate::os::pread_uninit(fd, buf, offset).unwrap_or(0);
                offset += n as u64;
                Ok(n)
            })
        }
        .unwrap_or(0);
        if read == 0 {
            active.file = None;
        } else {
            *at += read as u64;
            if *at >= *end {
                active.file = None;
            }
        }
        if active.file.is_none() && active.end_after_file {
            active.end_after_file = false;
            end_request(&mut conn.out, active.id, 0);
            active.ended = true;
        }
    }
}

/// The response head as a CGI head, for nginx to parse as it parses any
/// FastCGI responder's.
fn cgi_head(head: &ResponseHead) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + head.headers().len() * 32);
    out.extend_from_slice(b"Status: ");
    match head.status_line() {
        Some(line) => out.extend_from_slice(line),
        None => out.extend_from_slice(head.status().to_string().as_bytes()),
    }
    out.extend_from_slice(b"\r\n");
    for (name, value) in head.headers() {
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The end of STDOUT and END_REQUEST. A non-zero `app_status` is an HTTP
/// status for nginx to answer (no head sent yet) or, after a head, a
/// response that broke off.
fn end_request(out: &mut Vec<u8>, id: u16, app_status: u32) {
    fcgi::push_stream_end(out, fcgi::STDOUT, id);
    fcgi::push_end_request(out, id, app_status, fcgi::REQUEST_COMPLETE);
}

fn push_log(out: &mut Vec<u8>, id: u16, level: Level, message: &str) {
    for line in message.lines() {
        let mut text = mark(level, line).into_bytes();
        text.push(b'\n');
        fcgi::push_stream(out, fcgi::STDERR, id, &text);
    }
}
