//! Safe access to the parts of `ngx_http_request_t` the engine uses.
//!
//! An [`HttpRequest`] is a copyable handle to a request that nginx owns. It
//! is only ever used on the nginx thread, and only while the request is
//! alive: the engine drops every handle when nginx runs the request's
//! cleanup. Nothing obtained here crosses to another thread; the engine
//! copies what it needs into owned data first.

use std::ffi::c_void;
use std::os::fd::{BorrowedFd, RawFd};
use std::ptr::{self, NonNull};

use nginx_sys::{
    ngx_chain_t, ngx_connection_local_sockaddr, ngx_connection_t, ngx_event_t,
    ngx_http_cleanup_add, ngx_http_finalize_request, ngx_http_log_ctx_t,
    ngx_http_read_client_request_body, ngx_http_request_t, ngx_http_run_posted_requests,
    ngx_http_send_header, ngx_http_test_reading, ngx_inet_get_port, ngx_int_t, ngx_list_push,
    ngx_msec_t, ngx_parse_http_time, ngx_pool_t, ngx_str_t, ngx_table_elt_t, NGX_OK,
};
use ngx::http::{HttpModuleLocationConf, HttpModuleMainConf, HttpModuleServerConf, NgxHttpCoreModule};

use super::log::Log;
use super::pool::{pool_adopt_large, pool_box, SharedBlock};
use super::{NgxError, NO_MEMORY};

/// A request handler as nginx stores it in `r->read_event_handler` and
/// `r->write_event_handler`, and as the body reader's post handler.
pub type RequestHandler = unsafe extern "C" fn(*mut ngx_http_request_t);

/// One piece of a request body as nginx buffered it.
pub enum BodyPart<'a> {
    Memory(&'a [u8]),
    /// A range of nginx's temp file (`client_body_temp_path`).
    File { fd: BorrowedFd<'a>, start: u64, end: u64 },
}

#[derive(Clone, Copy)]
pub struct HttpRequest(NonNull<ngx_http_request_t>);

impl HttpRequest {
    /// # Safety
    /// `r` must be a live request, and the handle must not outlive it.
    pub unsafe fn from_raw(r: *mut ngx_http_request_t) -> Option<HttpRequest> {
        NonNull::new(r).map(HttpRequest)
    }

    pub fn as_ptr(self) -> *mut ngx_http_request_t {
        self.0.as_ptr()
    }

    fn r(&self) -> &ngx_http_request_t {
        // SAFETY: the handle is only used while nginx keeps the request alive.
        unsafe { self.0.as_ref() }
    }

    #[allow(clippy::mut_from_ref)]
    fn r_mut(&self) -> &mut ngx_http_request_t {
        // SAFETY: as above; nginx is single-threaded and no other reference
        // to the request is held across calls into this module.
        unsafe { &mut *self.0.as_ptr() }
    }

    #[allow(clippy::mut_from_ref)]
    fn connection(&self) -> &mut ngx_connection_t {
        // SAFETY: a live request always has a live connection.
        unsafe { &mut *self.r().connection }
    }

    pub fn log(self) -> Log {
        // SAFETY: the connection's log lives as long as the connection.
        unsafe { Log::from_raw(self.connection().log) }.unwrap_or_else(Log::cycle)
    }

    pub fn pool(self) -> *mut ngx_pool_t {
        self.r().pool
    }

    /// Copies bytes into the request pool.
    pub fn pool_str(self, bytes: &[u8]) -> Result<ngx_str_t, NgxError> {
        pool_str(self.pool(), bytes)
    }

    /// Moves `value` into the request pool; it is dropped when nginx frees
    /// the request.
    pub fn alloc<T>(self, value: T) -> Result<NonNull<T>, NgxError> {
        // SAFETY: a live request's pool is live.
        unsafe { pool_box(self.pool(), value) }.ok_or(NO_MEMORY)
    }

    // ---- configuration ---------------------------------------------------

    pub fn loc_conf<M: HttpModuleLocationConf>(self) -> Option<&'static M::LocationConf> {
        M::location_conf(self.r())
    }

    pub fn main_conf<M: HttpModuleMainConf>(self) -> Option<&'static M::MainConf> {
        M::main_conf(self.r())
    }

    /// The prefix a plain prefix location matched (`location /app/`), or
    /// None for regex, exact, named and `if` locations.
    pub fn location_prefix(self) -> Option<&'static [u8]> {
        let clcf = NgxHttpCoreModule::location_conf(self.r())?;
        let plain = clcf.regex.is_null()
            && clcf.exact_match() == 0
            && clcf.named() == 0
            && clcf.noname() == 0;
        plain.then(|| clcf.name.as_bytes())
    }

    // ---- the request line and headers -----------------------------------

    pub fn method(&self) -> &[u8] {
        self.r().method_name.as_bytes()
    }

    /// The request target exactly as the client sent it, query included.
    pub fn unparsed_uri(&self) -> &[u8] {
        self.r().unparsed_uri.as_bytes()
    }

    /// The path after nginx's percent-decoding and normalisation.
    pub fn uri(&self) -> &[u8] {
        self.r().uri.as_bytes()
    }

    /// The query string, undecoded.
    pub fn args(&self) -> &[u8] {
        self.r().args.as_bytes()
    }

    pub fn protocol(&self) -> &[u8] {
        self.r().http_protocol.as_bytes()
    }

    pub fn headers_in(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        // SAFETY: headers_in.headers is an initialised ngx_list_t of
        // ngx_table_elt_t for every request that reached a content handler.
        unsafe { ngx::http::list_iterator(&self.r().headers_in.headers) }
            .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
    }

    /// The host part of the Host header (or request line), lowercased and
    /// validated by nginx; empty when the client sent none.
    pub fn host(&self) -> &[u8] {
        self.r().headers_in.server.as_bytes()
    }

    /// The first `server_name` of the server block that took the request.
    pub fn server_name(&self) -> &[u8] {
        NgxHttpCoreModule::server_conf(self.r())
            .map(|cscf| cscf.server_name.as_bytes())
            .unwrap_or_default()
    }

    pub fn client_addr(&self) -> &[u8] {
        self.connection().addr_text.as_bytes()
    }

    pub fn client_port(&self) -> Option<u16> {
        let c = self.connection();
        // SAFETY: c->sockaddr is the peer address nginx got from accept().
        let port = unsafe { ngx_inet_get_port(c.sockaddr) };
        (port != 0).then_some(port)
    }

    pub fn server_port(&self) -> Option<u16> {
        let c = self.connection();
        // SAFETY: fills c->local_sockaddr when the listener was a wildcard;
        // both calls only read the connection's own socket.
        let port = unsafe {
            if ngx_connection_local_sockaddr(c, ptr::null_mut(), 0) != NGX_OK as ngx_int_t {
                return None;
            }
            ngx_inet_get_port(c.local_sockaddr)
        };
        (port != 0).then_some(port)
    }

    pub fn is_https(&self) -> bool {
        #[cfg(any(ngx_feature = "ssl", ngx_feature = "compat"))]
        {
            !self.connection().ssl.is_null()
        }
        #[cfg(not(any(ngx_feature = "ssl", ngx_feature = "compat")))]
        {
            false
        }
    }

    /// The user an nginx auth module (auth_basic) authenticated. Empty
    /// unless one ran: nginx only parses the Authorization header when a
    /// module asks for the user.
    pub fn authenticated_user(&self) -> Option<&[u8]> {
        let user = self.r().headers_in.user.as_bytes();
        (!user.is_empty()).then_some(user)
    }

    /// The scheme of the request's credentials ("Basic"), for AUTH_TYPE.
    pub fn auth_scheme(&self) -> &[u8] {
        let h = &self.r().headers_in;
        // SAFETY: headers_in.authorization is NULL or a header of this
        // request, in its pool.
        let value = unsafe { h.authorization.as_ref() }.map_or(&b""[..], |a| a.value.as_bytes());
        match value.split(|&c| c == b' ').next() {
            Some(scheme) if !scheme.is_empty() => scheme,
            _ => b"Basic",
        }
    }

    /// The file path `root`/`alias` maps the URI to, and the length of its
    /// root part (what `$document_root` is).
    pub fn map_uri_to_path(&self) -> Option<(Vec<u8>, usize)> {
        let mut path = ngx_str_t { len: 0, data: ptr::null_mut() };
        let mut root = 0usize;
        // SAFETY: nginx allocates the path in the request pool and returns
        // a pointer to its end (NULL on failure).
        unsafe {
            let last = nginx_sys::ngx_http_map_uri_to_path(self.as_ptr(), &mut path, &mut root, 0);
            if last.is_null() {
                return None;
            }
            let len = last.offset_from(path.data) as usize;
            Some((std::slice::from_raw_parts(path.data, len).to_vec(), root))
        }
    }

    /// Evaluates a complex value (a string with nginx variables).
    pub fn complex_value(&self, cv: &ComplexValue) -> Option<Vec<u8>> {
        let mut value = ngx_str_t { len: 0, data: ptr::null_mut() };
        // SAFETY: the complex value was compiled at configuration time and
        // lives in the cycle pool; the result is in the request pool.
        let rc = unsafe { nginx_sys::ngx_http_complex_value(self.as_ptr(), cv.0, &mut value) };
        (rc == NGX_OK as ngx_int_t).then(|| value.as_bytes().to_vec())
    }

    /// True for requests over HTTP/2 or HTTP/3, where a response cannot be
    /// raw HTTP/1 bytes.
    pub fn is_multiplexed(&self) -> bool {
        self.r().http_version >= nginx_sys::NGX_HTTP_VERSION_20 as usize
    }

    /// Hands the request to another URI in this server, as a CGI local
    /// redirect or X-Accel-Redirect does. Anything but HEAD becomes GET:
    /// the body was meant for the first target. The caller then finalizes
    /// with `NGX_DONE`.
    pub fn internal_redirect(self, uri: &[u8], args: &[u8]) -> Result<(), NgxError> {
        let mut uri = self.pool_str(uri)?;
        let mut args = self.pool_str(args)?;
        let r = self.r_mut();
        if r.method != nginx_sys::NGX_HTTP_HEAD as usize {
            r.method = nginx_sys::NGX_HTTP_GET as usize;
            r.method_name = ngx_str_t { len: 3, data: c"GET".as_ptr() as *mut u8 };
        }
        // SAFETY: uri and args live in the request pool, as nginx needs.
        unsafe { nginx_sys::ngx_http_internal_redirect(self.as_ptr(), &mut uri, &mut args) };
        Ok(())
    }

    /// Hands the request to a named location (`@name`), as
    /// `X-Accel-Redirect: @name` does: the URI and arguments stay. The
    /// caller then finalizes with `NGX_DONE`.
    pub fn named_location(self, name: &[u8]) -> Result<(), NgxError> {
        let mut name = self.pool_str(name)?;
        // SAFETY: the name lives in the request pool; nginx logs and
        // finalizes the request itself when no such location exists.
        unsafe { nginx_sys::ngx_http_named_location(self.as_ptr(), &mut name) };
        Ok(())
    }

    /// Splits an `X-Accel-Redirect` target into its path and arguments and
    /// checks it as nginx does (`ngx_http_parse_unsafe_uri`): no `..`
    /// segments, no control characters. None for an unsafe target.
    pub fn parse_unsafe_uri(self, target: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
        let mut uri = self.pool_str(target).ok()?;
        let mut args = ngx_str_t { len: 0, data: ptr::null_mut() };
        let mut flags: nginx_sys::ngx_uint_t = nginx_sys::NGX_HTTP_LOG_UNSAFE as nginx_sys::ngx_uint_t;
        // SAFETY: uri is a pool copy nginx may point `args` into.
        let rc = unsafe { nginx_sys::ngx_http_parse_unsafe_uri(self.as_ptr(), &mut uri, &mut args, &mut flags) };
        (rc == NGX_OK as ngx_int_t).then(|| (uri.as_bytes().to_vec(), args.as_bytes().to_vec()))
    }

    /// True for the client's own request, false for a subrequest (SSI,
    /// `add_before_body`, `auth_request`, ...).
    pub fn is_main(&self) -> bool {
        ptr::eq(self.r().main, self.as_ptr())
    }

    /// Lets nginx's range filter answer Range requests from this response;
    /// with `single`, one range at most (the body is not one buffer).
    pub fn allow_ranges(self, single: bool) {
        let r = self.r_mut();
        r.set_allow_ranges(1);
        if single {
            r.set_single_range(1);
        }
    }

    /// `X-Accel-Limit-Rate`: bytes per second to the client from now on.
    pub fn set_limit_rate(self, rate: usize) {
        let r = self.r_mut();
        r.limit_rate = rate;
        r.set_limit_rate_set(1);
    }

    /// `X-Accel-Charset`: the charset nginx's charset filter recodes the
    /// response to.
    pub fn set_override_charset(self, charset: &[u8]) -> Result<(), NgxError> {
        let value = self.pool_str(charset)?;
        // SAFETY: pool memory of the right size, written before nginx reads
        // it; an ngx_str_t needs no drop.
        unsafe {
            let slot = nginx_sys::ngx_palloc(self.pool(), std::mem::size_of::<ngx_str_t>()) as *mut ngx_str_t;
            if slot.is_null() {
                return Err(NO_MEMORY);
            }
            slot.write(value);
            self.r_mut().headers_out.override_charset = slot;
        }
        Ok(())
    }

    /// For a program that writes its own status line and headers (CGI's
    /// non-parsed headers): nginx's header filters are skipped, and the
    /// connection closes after the response since its framing is unknown.
    pub fn mark_raw_response(self) {
        let r = self.r_mut();
        r.set_header_sent(1);
        r.set_keepalive(0);
    }

    /// True when the client announced a body (Content-Length or chunked).
    pub fn has_body(&self) -> bool {
        let h = &self.r().headers_in;
        h.content_length_n >= 0 || h.chunked() != 0
    }

    // ---- the request body -------------------------------------------------

    /// Starts nginx's body reader. `done` runs once the whole body is
    /// buffered (possibly before this returns). The return value is what the
    /// content handler returns: an HTTP error, or `NGX_DONE`.
    pub fn read_body(self, done: RequestHandler) -> ngx_int_t {
        // SAFETY: called from the content handler of a live request.
        let rc = unsafe { ngx_http_read_client_request_body(self.as_ptr(), Some(done)) };
        if rc >= nginx_sys::NGX_HTTP_SPECIAL_RESPONSE as ngx_int_t {
            return rc;
        }
        nginx_sys::NGX_DONE as ngx_int_t
    }

    /// Asks nginx's body reader not to buffer: the post handler runs after
    /// the first read, and the rest comes through [`Self::read_more_body`]
    /// (`proxy_request_buffering off`).
    pub fn set_unbuffered_body(self) {
        self.r_mut().set_request_body_no_buffering(1);
    }

    /// In unbuffered mode: nginx has not read the whole body yet.
    pub fn reading_body(&self) -> bool {
        self.r().reading_body() != 0
    }

    /// Reads more of an unbuffered body (the request's read handler calls
    /// it): NGX_OK when all is read, NGX_AGAIN for later, or an HTTP error.
    pub fn read_more_body(self) -> ngx_int_t {
        // SAFETY: a live request whose body is read unbuffered.
        unsafe { nginx_sys::ngx_http_read_unbuffered_request_body(self.as_ptr()) }
    }

    /// In unbuffered mode: copies out what nginx read since the last call
    /// and marks it consumed, so nginx reuses its buffer for the next read
    /// (what the upstream module does when it has sent them on).
    pub fn take_unbuffered_body(self) -> Vec<u8> {
        let mut out = Vec::new();
        let rb = self.r().request_body;
        if rb.is_null() {
            return out;
        }
        // SAFETY: rb->bufs is a chain in the request pool; unbuffered, its
        // buffers are in memory (nginx's body buffer), and marking them
        // consumed (pos = last) is how a consumer hands them back.
        unsafe {
            let mut cl: *mut ngx_chain_t = (*rb).bufs;
            while let Some(link) = cl.as_ref() {
                let b = &mut *link.buf;
                if !b.pos.is_null() && b.last > b.pos && b.in_file() == 0 {
                    let len = b.last.offset_from(b.pos) as usize;
                    out.extend_from_slice(std::slice::from_raw_parts(b.pos, len));
                    b.pos = b.last;
                }
                cl = link.next;
            }
            (*rb).bufs = ptr::null_mut();
        }
        out
    }

    /// After [`Self::read_more_body`] returned NGX_AGAIN with `got` bytes:
    /// whether nginx now waits for the client, so that the read event calls
    /// the request's read handler when more arrives.
    ///
    /// Over HTTP/1 that is so only when nginx's `recv()` found the socket
    /// empty and cleared `c->read->ready`: with edge-triggered epoll the
    /// next event comes with the next data. nginx also returns NGX_AGAIN
    /// when its body buffer filled up before the reader handed it back
    /// (`rb->busy`), with `ready` still set and more in the socket; no
    /// event comes for data already there, so the reader must call again.
    /// Over HTTP/2 the connection posts the stream's read event when a DATA
    /// frame arrives, so a read that got nothing means nothing is there.
    pub fn body_needs_client(self, got: usize) -> bool {
        if self.is_multiplexed() {
            return got == 0;
        }
        // SAFETY: a live connection's read event.
        unsafe { (*self.connection().read).ready() == 0 }
    }

    /// The reader of an unbuffered body stops for its own reasons (the app
    /// has not taken what it has): `client_body_timeout` is about a slow
    /// client, so its timer goes, as nginx's own reader drops it while its
    /// consumer holds the buffer. nginx arms it again when it next waits
    /// for the client.
    pub fn hold_body_reading(self) {
        let rev = self.connection().read;
        // SAFETY: the connection's read event; nginx thread.
        unsafe {
            if (*rev).timer_set() != 0 {
                nginx_sys::ngx_del_timer(rev);
            }
        }
    }

    /// While an unbuffered body is held back (see
    /// [`Self::hold_body_reading`]): whether the client is gone. A reset
    /// shows as the socket's pending error, which nginx would only meet
    /// after reading all that arrived before it; over HTTP/2 nginx marks
    /// the stream's connection failed (RST_STREAM, or the connection
    /// gone). If so, the connection is marked failed, as
    /// `ngx_http_test_reading` marks it, and the reason returned. A client
    /// that only closed its side (FIN) may have sent the whole body: that
    /// shows when the rest is read.
    pub fn body_abandoned(self) -> Option<std::io::Error> {
        let c = self.connection();
        if c.error() != 0 {
            return Some(std::io::Error::other("the connection failed"));
        }
        if self.is_multiplexed() {
            return None;
        }
        let gone = crate::os::socket_error(c.fd)?;
        c.set_error(1);
        // SAFETY: a live connection's read event.
        unsafe { (*c.read).set_eof(1) };
        Some(gone)
    }

    /// Sets `r->read_event_handler` alone.
    pub fn set_read_handler(self, read: RequestHandler) {
        self.r_mut().read_event_handler = Some(read);
    }

    /// The buffered body, in order. Valid once the body reader has finished.
    pub fn body_parts(&self) -> Vec<BodyPart<'_>> {
        let mut parts = Vec::new();
        let rb = self.r().request_body;
        if rb.is_null() {
            return parts;
        }
        // SAFETY: after the body reader finished, rb->bufs is a chain of
        // buffers that lives in the request pool; file buffers point at the
        // request's temp file, which stays open until the request ends.
        unsafe {
            let mut cl: *mut ngx_chain_t = (*rb).bufs;
            while let Some(link) = cl.as_ref() {
                let b = &*link.buf;
                if b.in_file() != 0 && !b.file.is_null() && b.file_last > b.file_pos {
                    parts.push(BodyPart::File {
                        fd: BorrowedFd::borrow_raw((*b.file).fd as RawFd),
                        start: b.file_pos as u64,
                        end: b.file_last as u64,
                    });
                } else if !b.pos.is_null() && b.last > b.pos {
                    let len = b.last.offset_from(b.pos) as usize;
                    parts.push(BodyPart::Memory(std::slice::from_raw_parts(b.pos, len)));
                }
                cl = link.next;
            }
        }
        parts
    }

    /// Takes over the buffer nginx read the finished body into
    /// (`request_body->buf`), from its start to the last byte written,
    /// without copying it, when it is a block of its own in the request
    /// pool (large bodies are). nginx's reads leave several parts of the
    /// body in it, so one adoption covers them all. Returns the block and
    /// its address; None otherwise.
    pub fn adopt_body_buffer(&self) -> Option<(SharedBlock, *const u8)> {
        let rb = self.r().request_body;
        // SAFETY: a finished body's buffer lives in the request pool and
        // is never written again; start..last is what nginx wrote into it.
        unsafe {
            let b = rb.as_ref()?.buf.as_ref()?;
            if b.start.is_null() || b.last <= b.start || b.in_file() != 0 {
                return None;
            }
            let len = b.last.offset_from(b.start) as usize;
            pool_adopt_large(self.pool(), b.start, len).map(|block| (block, b.start.cast_const()))
        }
    }

    /// Takes over a memory part of the finished body (from
    /// [`Self::body_parts`]) without copying it, when it is a block of its
    /// own in the request pool (large bodies are); None otherwise.
    pub fn adopt_body_memory(&self, part: &[u8]) -> Option<SharedBlock> {
        // SAFETY: the request pool is live on this (nginx's) thread, and a
        // finished body's buffers are never written again.
        unsafe { pool_adopt_large(self.pool(), part.as_ptr(), part.len()) }
    }

    // ---- the response head ----------------------------------------------

    pub fn header_only(&self) -> bool {
        self.r().header_only() != 0
    }

    /// Sets the status code and, when given, the exact status line
    /// ("200 OK") so an app's own reason phrase reaches the client.
    pub fn set_status(self, code: u16, line: Option<&[u8]>) -> Result<(), NgxError> {
        let pool = self.pool();
        let r = self.r_mut();
        r.headers_out.status = code as usize;
        if let Some(line) = line {
            r.headers_out.status_line = pool_str(pool, line)?;
        }
        Ok(())
    }

    /// Adds one response header the way nginx's upstream module copies an
    /// upstream's (`ngx_http_upstream_headers_in`): every header goes into
    /// the list, and the ones nginx's filters read also into their typed
    /// `headers_out` field, so the not-modified, range, charset, gzip,
    /// expires and auth_request machinery sees them. The two nginx
    /// generates itself from fields alone (Content-Type, Content-Length)
    /// only set the fields, so the client never gets them twice.
    pub fn add_response_header(self, name: &[u8], value: &[u8]) -> Result<(), NgxError> {
        let pool = self.pool();
        let out = &mut self.r_mut().headers_out;
        let field = TypedField::of(name);
        match field {
            TypedField::ContentType => {
                let v = pool_str(pool, value)?;
                let (type_len, charset) = split_charset(value);
                out.content_type = v;
                out.content_type_len = type_len;
                out.content_type_lowcase = ptr::null_mut();
                out.charset = match charset {
                    // SAFETY: the range lies inside the copy just made.
                    Some((at, len)) => ngx_str_t { len, data: unsafe { v.data.add(at) } },
                    None => ngx_str_t { len: 0, data: ptr::null_mut() },
                };
                return Ok(());
            }
            TypedField::ContentLength => {
                let n = std::str::from_utf8(value)
                    .ok()
                    .and_then(|s| s.trim().parse::<i64>().ok())
                    .ok_or(NgxError("Content-Length is not a number"))?;
                out.content_length_n = n;
                return Ok(());
            }
            _ => {}
        }
        // SAFETY: headers_out.headers is an initialised list of
        // ngx_table_elt_t in the request pool; the element is fully written
        // (zeroed first, which also clears `next` on nginx >= 1.23) before
        // nginx reads it.
        let elt = unsafe {
            let elt = ngx_list_push(&mut out.headers) as *mut ngx_table_elt_t;
            if elt.is_null() {
                return Err(NO_MEMORY);
            }
            ptr::write_bytes(elt, 0, 1);
            (*elt).key = pool_str(pool, name)?;
            (*elt).value = pool_str(pool, value)?;
            let lower = pool_str(pool, &name.to_ascii_lowercase())?;
            (*elt).lowcase_key = lower.data;
            (*elt).hash = 1;
            elt
        };
        match field {
            TypedField::Server => out.server = elt,
            TypedField::Date => out.date = elt,
            TypedField::ContentEncoding => out.content_encoding = elt,
            // A relative Location stays out of the field, as the upstream
            // module leaves it: nginx would make it absolute
            // (absolute_redirect), and the app chose a relative one.
            TypedField::Location if !value.starts_with(b"/") => out.location = elt,
            TypedField::Refresh => out.refresh = elt,
            TypedField::LastModified => {
                out.last_modified = elt;
                // SAFETY: nginx parses the bytes it is given, no more.
                out.last_modified_time = unsafe { ngx_parse_http_time(value.as_ptr() as *mut u8, value.len()) };
            }
            TypedField::ContentRange => out.content_range = elt,
            TypedField::AcceptRanges => out.accept_ranges = elt,
            TypedField::Expires => out.expires = elt,
            TypedField::Etag => out.etag = elt,
            #[cfg(nginx1_23_0)]
            TypedField::WwwAuthenticate => push_repeated(pool, &mut out.www_authenticate, elt)?,
            // Before 1.23 the field holds one header: the first, as the
            // upstream module keeps it.
            #[cfg(not(nginx1_23_0))]
            TypedField::WwwAuthenticate if out.www_authenticate.is_null() => out.www_authenticate = elt,
            #[cfg(nginx1_23_0)]
            TypedField::CacheControl => push_repeated(pool, &mut out.cache_control, elt)?,
            #[cfg(not(nginx1_23_0))]
            TypedField::CacheControl => push_repeated_array(pool, &mut out.cache_control, elt)?,
            #[cfg(nginx1_23_0)]
            TypedField::Link => push_repeated(pool, &mut out.link, elt)?,
            #[cfg(not(nginx1_23_0))]
            TypedField::Link => push_repeated_array(pool, &mut out.link, elt)?,
            _ => {}
        }
        Ok(())
    }

    /// Marks the response as streamed: no Content-Length unless the app set
    /// one, so nginx chunks it on HTTP/1.1 or closes after it on HTTP/1.0.
    pub fn clear_content_length(self) {
        self.r_mut().headers_out.content_length_n = -1;
    }

    /// Closes the client connection after this response instead of keeping
    /// it alive.
    pub fn disable_keepalive(self) {
        self.r_mut().set_keepalive(0);
    }

    pub fn send_header(self) -> ngx_int_t {
        // SAFETY: the request is live and its headers_out is filled in.
        unsafe { ngx_http_send_header(self.as_ptr()) }
    }

    // ---- lifecycle ----------------------------------------------------------

    /// Hands the request back to nginx with its final status. Must be called
    /// exactly once per `NGX_DONE` the content handler returned; the handle
    /// may be dangling afterwards.
    pub fn finalize(self, rc: ngx_int_t) {
        // SAFETY: the request is live; after this call it may be freed, and
        // callers drop the handle.
        unsafe { ngx_http_finalize_request(self.as_ptr(), rc) }
    }

    /// Runs `handler(data)` when nginx frees or terminates the request
    /// (normal end, client abort, error), before the pool goes away.
    pub fn add_cleanup(
        self,
        handler: unsafe extern "C" fn(*mut c_void),
        data: *mut c_void,
    ) -> Result<(), NgxError> {
        // SAFETY: ngx_http_cleanup_add allocates from the request pool.
        unsafe {
            let cln = ngx_http_cleanup_add(self.as_ptr(), 0);
            if cln.is_null() {
                return Err(NO_MEMORY);
            }
            (*cln).handler = Some(handler);
            (*cln).data = data;
        }
        Ok(())
    }

    /// While the app works, notice a client that goes away: nginx's
    /// `ngx_http_test_reading` finalizes the request with 499 on EOF, which
    /// runs the cleanups. `write` handles the connection's write events
    /// (timeouts and draining output).
    pub fn set_event_handlers(self, write: RequestHandler) {
        let r = self.r_mut();
        r.read_event_handler = Some(ngx_http_test_reading);
        r.write_event_handler = Some(write);
    }

    /// This module's context slot (see [`super::this_module`]).
    pub fn ctx<T>(self) -> Option<NonNull<T>> {
        let module = super::this_module()?;
        // SAFETY: r->ctx has one slot per HTTP module.
        NonNull::new(unsafe { *self.r().ctx.add(module.ctx_index) }.cast())
    }

    pub fn set_ctx<T>(self, value: *mut T) {
        let Some(module) = super::this_module() else { return };
        // SAFETY: as above.
        unsafe { *self.r().ctx.add(module.ctx_index) = value.cast() }
    }

    pub fn write_event(self) -> WriteEvent {
        WriteEvent(self.connection().write, self)
    }

    /// The client connection failed or went away (a write error, a reset).
    pub fn connection_failed(self) -> bool {
        self.connection().error() != 0
    }

    /// True while nginx still holds output it could not write yet.
    pub fn output_pending(self) -> bool {
        self.r().buffered() != 0 || self.connection().buffered() != 0
    }

    /// Makes log lines written while handling this request carry its
    /// "client: ..., request: ..." context, as nginx's own handlers do.
    pub fn set_log_request(self) {
        // SAFETY: for HTTP connections c->log->data is an ngx_http_log_ctx_t
        // (set up in ngx_http_init_connection).
        unsafe {
            let log = self.connection().log;
            let ctx = (*log).data as *mut ngx_http_log_ctx_t;
            if !ctx.is_null() {
                (*ctx).current_request = self.as_ptr();
            }
        }
    }

    /// Run from event handlers outside nginx's request handler, after the
    /// request may have been finalized: nginx defers some work (subrequests,
    /// termination) to posted requests.
    pub fn posted_runner(self) -> PostedRunner {
        PostedRunner(self.r().connection)
    }

    pub fn core_send_timeout(self) -> (ngx_msec_t, usize) {
        NgxHttpCoreModule::location_conf(self.r())
            .map(|clcf| (clcf.send_timeout, clcf.send_lowat))
            .unwrap_or((60_000, 0))
    }

    /// `lingering_timeout`: how long nginx gives a client to finish after
    /// nginx is done with it.
    pub fn core_lingering_timeout(self) -> ngx_msec_t {
        NgxHttpCoreModule::location_conf(self.r()).map_or(5_000, |clcf| clcf.lingering_timeout)
    }
}

/// Remembers a request's connection so posted requests can run after the
/// request itself may be gone. Connections are recycled, never freed, and
/// nginx checks `c->destroyed` first.
pub struct PostedRunner(*mut ngx_connection_t);

impl PostedRunner {
    pub fn run(self) {
        // SAFETY: see the type's comment; this is how nginx's own upstream
        // event handlers end.
        unsafe { ngx_http_run_posted_requests(self.0) }
    }
}

/// The client connection's write event: its timer is the send timeout
/// while the client drains output. (The app's read timeout has a timer of
/// its own: subrequests share this event.)
pub struct WriteEvent(*mut ngx_event_t, HttpRequest);

impl WriteEvent {
    #[allow(clippy::mut_from_ref)]
    fn ev(&self) -> &mut ngx_event_t {
        // SAFETY: the write event lives as long as the connection.
        unsafe { &mut *self.0 }
    }

    pub fn timed_out(&self) -> bool {
        self.ev().timedout() != 0
    }

    /// `limit_rate` is holding output back on its own timer.
    pub fn delayed(&self) -> bool {
        self.ev().delayed() != 0
    }

    /// Arms the timer. nginx's own lazy rule applies: an armed timer whose
    /// deadline would move by less than 300 ms is left alone.
    pub fn set_timer(&self, ms: ngx_msec_t) {
        // SAFETY: nginx thread; the timer is removed by nginx when the
        // request is finalized or the connection closes.
        unsafe { nginx_sys::ngx_add_timer(self.0, ms) }
    }

    /// Arms the timer to fire exactly `ms` from now, for timeouts shorter
    /// than nginx's 300 ms laziness.
    pub fn restart_timer(&self, ms: ngx_msec_t) {
        // SAFETY: as above.
        unsafe {
            if self.ev().timer_set() != 0 {
                nginx_sys::ngx_del_timer(self.0);
            }
            nginx_sys::ngx_add_timer(self.0, ms);
        }
    }

    /// Removes the timer if it is armed.
    pub fn clear_timer(&self) {
        if self.ev().timer_set() != 0 {
            // SAFETY: as above.
            unsafe { nginx_sys::ngx_del_timer(self.0) }
        }
    }

    pub fn clear_timed_out(&self) {
        self.ev().set_timedout(0);
    }

    pub fn mark_connection_timed_out(&self) {
        // SAFETY: as above; this is what ngx_http_writer does on timeout.
        unsafe { (*self.1.r().connection).set_timedout(1) }
    }

    /// Asks to be called again when the socket can take more output.
    pub fn want_write(&self, lowat: usize) -> Result<(), NgxError> {
        // SAFETY: as above.
        let rc = unsafe { nginx_sys::ngx_handle_write_event(self.0, lowat) };
        if rc == NGX_OK as ngx_int_t {
            Ok(())
        } else {
            Err(NgxError("cannot wait for the client connection to become writable"))
        }
    }
}

/// Copies bytes into the pool as an `ngx_str_t`.
fn pool_str(pool: *mut ngx_pool_t, bytes: &[u8]) -> Result<ngx_str_t, NgxError> {
    if bytes.is_empty() {
        return Ok(ngx_str_t { len: 0, data: ptr::null_mut() });
    }
    // SAFETY: ngx_pnalloc returns pool memory of the requested size or NULL.
    unsafe {
        let data = nginx_sys::ngx_pnalloc(pool, bytes.len()) as *mut u8;
        if data.is_null() {
            return Err(NO_MEMORY);
        }
        ptr::copy_nonoverlapping(bytes.as_ptr(), data, bytes.len());
        Ok(ngx_str_t { len: bytes.len(), data })
    }
}

/// A compiled nginx complex value (a string with `$variables`), made at
/// configuration time with [`crate::nginx::conf::compile_complex_value`].
#[derive(Clone, Copy)]
pub struct ComplexValue(pub(crate) *mut nginx_sys::ngx_http_complex_value_t);

/// The `headers_out` fields an app's header also goes into (besides the
/// list), as `ngx_http_upstream_headers_in` maps an upstream's.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum TypedField {
    ContentType,
    ContentLength,
    Server,
    Date,
    ContentEncoding,
    Location,
    Refresh,
    LastModified,
    ContentRange,
    AcceptRanges,
    Expires,
    Etag,
    WwwAuthenticate,
    CacheControl,
    Link,
    Other,
}

impl TypedField {
    fn of(name: &[u8]) -> TypedField {
        let is = |known: &str| name.eq_ignore_ascii_case(known.as_bytes());
        // By length first: most names are ruled out by one comparison.
        match name.len() {
            4 if is("date") => TypedField::Date,
            4 if is("etag") => TypedField::Etag,
            4 if is("link") => TypedField::Link,
            6 if is("server") => TypedField::Server,
            7 if is("refresh") => TypedField::Refresh,
            7 if is("expires") => TypedField::Expires,
            8 if is("location") => TypedField::Location,
            12 if is("content-type") => TypedField::ContentType,
            13 if is("last-modified") => TypedField::LastModified,
            13 if is("content-range") => TypedField::ContentRange,
            13 if is("accept-ranges") => TypedField::AcceptRanges,
            13 if is("cache-control") => TypedField::CacheControl,
            14 if is("content-length") => TypedField::ContentLength,
            16 if is("content-encoding") => TypedField::ContentEncoding,
            16 if is("www-authenticate") => TypedField::WwwAuthenticate,
            _ => TypedField::Other,
        }
    }
}

/// Where a Content-Type's `charset=` parameter is, as nginx's
/// `ngx_http_upstream_copy_content_type` finds it: the length of the type
/// before the `;` that starts the parameter, and the charset's offset and
/// length in `value` (quotes stripped). nginx then writes the type and
/// its own `; charset=...`, which its charset filter may change.
pub fn split_charset(value: &[u8]) -> (usize, Option<(usize, usize)>) {
    if !value.contains(&b';') {
        return (value.len(), None);
    }
    let mut at = 0;
    while let Some(semi) = value[at..].iter().position(|&c| c == b';').map(|i| at + i) {
        let mut p = semi + 1;
        while value.get(p) == Some(&b' ') {
            p += 1;
        }
        if p >= value.len() {
            break;
        }
        if value.len() - p >= 8 && value[p..p + 8].eq_ignore_ascii_case(b"charset=") {
            let mut start = p + 8;
            let mut end = value.len();
            if value.get(start) == Some(&b'"') {
                start += 1;
            }
            if end > start && value[end - 1] == b'"' {
                end -= 1;
            }
            return (semi, Some((start, end.saturating_sub(start))));
        }
        at = p;
    }
    (value.len(), None)
}

/// Chains `elt` behind the other headers of a field that may repeat
/// (nginx >= 1.23 links them through `next`).
#[cfg(nginx1_23_0)]
fn push_repeated(_pool: *mut ngx_pool_t, field: &mut *mut ngx_table_elt_t, elt: *mut ngx_table_elt_t) -> Result<(), NgxError> {
    let mut at = field as *mut *mut ngx_table_elt_t;
    // SAFETY: every element on the chain is a header of this request,
    // in its pool; `elt` was zeroed, so its own `next` is NULL.
    unsafe {
        while !(*at).is_null() {
            at = &mut (**at).next;
        }
        *at = elt;
    }
    Ok(())
}

/// Before nginx 1.23, Cache-Control and Link are arrays of pointers.
#[cfg(not(nginx1_23_0))]
fn push_repeated_array(pool: *mut ngx_pool_t, array: &mut nginx_sys::ngx_array_t, elt: *mut ngx_table_elt_t) -> Result<(), NgxError> {
    // SAFETY: an array nginx zeroed with headers_out (elts NULL) is set
    // up here as ngx_array_init does; pushing allocates from `pool`.
    unsafe {
        if array.elts.is_null() {
            let elts = nginx_sys::ngx_palloc(pool, 2 * std::mem::size_of::<*mut ngx_table_elt_t>());
            if elts.is_null() {
                return Err(NO_MEMORY);
            }
            *array = nginx_sys::ngx_array_t { elts, nelts: 0, size: std::mem::size_of::<*mut ngx_table_elt_t>(), nalloc: 2, pool };
        }
        let slot = nginx_sys::ngx_array_push(array) as *mut *mut ngx_table_elt_t;
        if slot.is_null() {
            return Err(NO_MEMORY);
        }
        *slot = elt;
    }
    Ok(())
}
