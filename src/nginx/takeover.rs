//! A client connection taken over after an HTTP/1.1 upgrade (WebSocket):
//! the module reads and writes its bytes itself, through nginx's own
//! `c->recv` and `c->send` (so TLS works), as nginx's upstream module does
//! for a proxied upgrade.

use std::io;

use nginx_sys::{ngx_http_send_special, ngx_int_t, ngx_msec_t, NGX_AGAIN, NGX_ERROR, NGX_HTTP_FLUSH, NGX_OK};

use super::request::{HttpRequest, RequestHandler};

/// What makes a request a WebSocket handshake (RFC 6455, 4.2.1): a GET
/// over HTTP/1.1 with `Upgrade: websocket` and `Connection: upgrade`.
/// HTTP/2 cannot upgrade (nginx does not do RFC 8441).
pub fn is_websocket_request(req: &HttpRequest) -> bool {
    if req.method() != b"GET" || req.protocol() != b"HTTP/1.1" {
        return false;
    }
    let has = |name: &str, token: &str| {
        req.headers_in().any(|(n, v)| {
            n.eq_ignore_ascii_case(name.as_bytes())
                && v.split(|&c| c == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
        })
    };
    has("upgrade", "websocket") && has("connection", "upgrade")
}

#[derive(Clone, Copy)]
pub struct Takeover(HttpRequest);

impl Takeover {
    pub fn request(self) -> HttpRequest {
        self.0
    }

    pub fn of(req: HttpRequest) -> Takeover {
        Takeover(req)
    }

    /// Keeps the request alive past the content handler (which returns
    /// `NGX_DONE`), as the upstream module does; `finalize` ends it.
    pub fn hold(self) {
        let r = self.0.as_ptr();
        // SAFETY: the request is live and `main` points to itself or its
        // main request; nginx's own handlers do exactly this.
        unsafe { (*(*r).main).set_count((*(*r).main).count() + 1) };
    }

    /// After the 101 head went out: our handlers get the connection's
    /// events, keepalive is off, and the head is flushed.
    pub fn begin(self, read: RequestHandler, write: RequestHandler) -> io::Result<()> {
        let r = self.0.as_ptr();
        // SAFETY: the request is live; these are the fields the upstream
        // module sets for an upgraded connection.
        unsafe {
            (*r).set_keepalive(0);
            (*r).read_event_handler = Some(read);
            (*r).write_event_handler = Some(write);
            if ngx_http_send_special(r, NGX_HTTP_FLUSH as usize) == NGX_ERROR as ngx_int_t {
                return Err(io::Error::other("cannot flush the handshake response"));
            }
            nginx_sys::ngx_tcp_nodelay((*r).connection);
        }
        Ok(())
    }

    /// Pushes out what nginx's filters still hold of the response head;
    /// true once nothing is left.
    pub fn flush_head(self) -> io::Result<bool> {
        if !self.0.output_pending() {
            return Ok(true);
        }
        // SAFETY: the request is live; a flush only writes what the
        // filters buffered.
        if unsafe { ngx_http_send_special(self.0.as_ptr(), NGX_HTTP_FLUSH as usize) } == NGX_ERROR as ngx_int_t {
            return Err(io::Error::other("cannot write the handshake response"));
        }
        Ok(!self.0.output_pending())
    }

    /// Bytes the client sent after the request head (frames it pipelined),
    /// which nginx already read into its header buffer.
    pub fn take_pipelined(self) -> Vec<u8> {
        // SAFETY: header_in is the request's header buffer; pos..last is
        // what nginx has not parsed.
        unsafe {
            let b = (*self.0.as_ptr()).header_in;
            if b.is_null() || (*b).pos >= (*b).last {
                return Vec::new();
            }
            let len = (*b).last.offset_from((*b).pos) as usize;
            let bytes = std::slice::from_raw_parts((*b).pos, len).to_vec();
            (*b).pos = (*b).last;
            bytes
        }
    }

    fn c(self) -> *mut nginx_sys::ngx_connection_t {
        // SAFETY: a live request has a live connection.
        unsafe { (*self.0.as_ptr()).connection }
    }

    /// Some bytes, Ok(0) at EOF, or WouldBlock.
    pub fn recv(self, buf: &mut [u8]) -> io::Result<usize> {
        let c = self.c();
        // SAFETY: c->recv is nginx's receive function for this connection
        // (plain or TLS), given a buffer we own.
        let n = unsafe {
            let Some(recv) = (*c).recv else { return Err(io::Error::other("the connection cannot receive")) };
            recv(c, buf.as_mut_ptr(), buf.len())
        };
        match n {
            n if n >= 0 => Ok(n as usize),
            n if n == NGX_AGAIN as isize => Err(io::ErrorKind::WouldBlock.into()),
            _ => Err(io::Error::other("the client connection failed")),
        }
    }

    /// Appends up to `max` bytes to `buf` (read straight into its spare
    /// room); as [`Takeover::recv`] otherwise.
    pub fn recv_into(self, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        buf.reserve(max);
        let spare = buf.spare_capacity_mut();
        let c = self.c();
        // SAFETY: as in `recv`; nginx writes at most `max` bytes into the
        // spare room, which `reserve` made at least that large.
        let n = unsafe {
            let Some(recv) = (*c).recv else { return Err(io::Error::other("the connection cannot receive")) };
            recv(c, spare.as_mut_ptr().cast(), max.min(spare.len()))
        };
        match n {
            n if n >= 0 => {
                // SAFETY: recv initialised the first `n` spare bytes.
                unsafe { buf.set_len(buf.len() + n as usize) };
                Ok(n as usize)
            }
            n if n == NGX_AGAIN as isize => Err(io::ErrorKind::WouldBlock.into()),
            _ => Err(io::Error::other("the client connection failed")),
        }
    }

    /// Bytes written, or WouldBlock.
    pub fn send(self, buf: &[u8]) -> io::Result<usize> {
        let c = self.c();
        // SAFETY: as in `recv`; nginx only reads the buffer.
        let n = unsafe {
            let Some(send) = (*c).send else { return Err(io::Error::other("the connection cannot send")) };
            send(c, buf.as_ptr().cast_mut(), buf.len())
        };
        match n {
            n if n >= 0 => Ok(n as usize),
            n if n == NGX_AGAIN as isize => Err(io::ErrorKind::WouldBlock.into()),
            _ => Err(io::Error::other("the client connection failed")),
        }
    }

    pub fn readable(self) -> bool {
        // SAFETY: the connection's read event lives as long as it does.
        unsafe { (*(*self.c()).read).ready() != 0 }
    }

    /// Asks for the next read (and write) readiness.
    pub fn want_events(self, write: bool) -> io::Result<()> {
        let c = self.c();
        // SAFETY: nginx thread, live connection events.
        let ok = unsafe {
            nginx_sys::ngx_handle_read_event((*c).read, 0) == NGX_OK as ngx_int_t
                && (!write || nginx_sys::ngx_handle_write_event((*c).write, 0) == NGX_OK as ngx_int_t)
        };
        if ok {
            Ok(())
        } else {
            Err(io::Error::other("cannot watch the client connection"))
        }
    }

    /// The idle clock: restarted on activity, fires the read handler with
    /// [`Takeover::timed_out`] set.
    pub fn restart_idle_timer(self, ms: ngx_msec_t) {
        // SAFETY: as above; nginx removes the timer when the connection
        // closes.
        unsafe {
            let ev = (*self.c()).read;
            (*ev).set_timedout(0);
            if (*ev).timer_set() != 0 {
                nginx_sys::ngx_del_timer(ev);
            }
            nginx_sys::ngx_add_timer(ev, ms);
        }
    }

    /// How to finalize once the last bytes are in the socket: nginx's
    /// lingering close, which sends our FIN at once and reads and drops
    /// what the client still sends until it closes too (or for
    /// `lingering_timeout`), so that no reset destroys what we sent last
    /// before the client read it.
    pub fn linger(self) -> ngx_int_t {
        // SAFETY: the request is live; nginx reads the flag when it
        // finalizes the connection.
        unsafe { (*self.0.as_ptr()).set_lingering_close(1) };
        NGX_OK as ngx_int_t
    }

    pub fn timed_out(self) -> bool {
        // SAFETY: as above.
        unsafe { (*(*self.c()).read).timedout() != 0 }
    }
}
