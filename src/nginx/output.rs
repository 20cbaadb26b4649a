//! Response bodies through nginx's output filters without copying.
//!
//! The app's bytes arrive as [`Bytes`] (owned vectors, or Python bytes
//! objects lent until written), or as ranges of open files. Each becomes
//! an `ngx_buf_t` that points into that memory (or at the file,
//! so nginx can use sendfile), and the vector or file is kept here until
//! nginx has written the buffer. That is the bookkeeping of nginx's non-buffered
//! upstream path: after every `ngx_http_output_filter` call,
//! `ngx_chain_update_chains` moves written buffers from `busy` to `free`, and
//! the memory behind them can go. Counting what is still busy is what gives
//! the app backpressure.

use std::collections::VecDeque;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::ptr::{self, NonNull};

use bytes::Bytes;
use nginx_sys::{
    ngx_alloc_chain_link, ngx_buf_t, ngx_buf_tag_t, ngx_chain_t, ngx_chain_update_chains,
    ngx_file_t, ngx_http_output_filter, ngx_int_t, ngx_pcalloc,
};

use super::request::HttpRequest;
use super::{NgxError, NO_MEMORY};

pub struct OutputChain {
    tag: ngx_buf_tag_t,
    /// Buffers not yet given to nginx.
    out: *mut ngx_chain_t,
    out_tail: *mut ngx_chain_t,
    /// Given to nginx and not yet written.
    busy: *mut ngx_chain_t,
    /// Spent links and buffers, reused for the next chunks.
    free: *mut ngx_chain_t,
    /// What every buffer in `out` and `busy` points into, in order.
    held: VecDeque<(NonNull<ngx_buf_t>, Held)>,
    /// Memory bytes in `held`.
    held_bytes: usize,
}

/// What a buffer given to nginx points into.
enum Held {
    Memory(Bytes),
    /// Kept open until nginx has sent from it.
    File(#[allow(dead_code)] File),
}

/// What one [`OutputChain::send`] did.
pub struct Sent {
    pub rc: ngx_int_t,
    /// Memory bytes nginx finished with during this call...
    pub released: usize,
    /// ...in this many buffers.
    pub released_buffers: usize,
}

impl OutputChain {
    /// `tag` marks our buffers (nginx modules use their module's address).
    pub fn new(tag: ngx_buf_tag_t) -> OutputChain {
        OutputChain {
            tag,
            out: ptr::null_mut(),
            out_tail: ptr::null_mut(),
            busy: ptr::null_mut(),
            free: ptr::null_mut(),
            held: VecDeque::new(),
            held_bytes: 0,
        }
    }

    /// Bytes handed to us and not yet written to the client.
    pub fn pending_bytes(&self) -> usize {
        self.held_bytes
    }

    /// Queues a body chunk. Empty chunks are skipped.
    pub fn push(&mut self, r: HttpRequest, data: Bytes) -> Result<(), NgxError> {
        if data.is_empty() {
            return Ok(());
        }
        let link = self.link(r)?;
        // SAFETY: `link` and its buffer are ours (fresh or from `free`); the
        // buffer points into `data`, which `held` keeps alive until nginx
        // has written it (a Bytes' memory does not move with the handle).
        let buf = unsafe {
            let b = &mut *(*link).buf;
            let start = data.as_ptr() as *mut u8;
            b.start = start;
            b.pos = start;
            b.last = start.add(data.len());
            b.end = b.last;
            b.set_memory(1);
            NonNull::from(b)
        };
        self.held_bytes += data.len();
        self.held.push_back((buf, Held::Memory(data)));
        self.append(link);
        Ok(())
    }

    /// Queues bytes `start..end` of `file`; nginx sends them from the file
    /// (with sendfile where it uses it). `name` is for nginx's log lines.
    pub fn push_file(&mut self, r: HttpRequest, file: File, start: u64, end: u64, name: &[u8]) -> Result<(), NgxError> {
        if end <= start {
            return Ok(());
        }
        let link = self.link(r)?;
        let name = r.pool_str(name)?;
        // SAFETY: as in `push`; the ngx_file_t lives in the request pool and
        // the descriptor stays open in `held` until nginx is done with it.
        let buf = unsafe {
            let f = ngx_pcalloc(r.pool(), std::mem::size_of::<ngx_file_t>()) as *mut ngx_file_t;
            if f.is_null() {
                return Err(NO_MEMORY);
            }
            (*f).fd = file.as_raw_fd();
            (*f).name = name;
            (*f).log = r.log().as_ptr();
            let b = &mut *(*link).buf;
            b.file = f;
            b.file_pos = start as i64;
            b.file_last = end as i64;
            b.set_in_file(1);
            NonNull::from(b)
        };
        self.held.push_back((buf, Held::File(file)));
        self.append(link);
        Ok(())
    }

    /// Queues the end of the response. nginx's rule (`ngx_http_send_special`):
    /// only the client's own request ends with `last_buf`; a subrequest's
    /// output (SSI, `add_before_body`) ends with `last_in_chain`, and the
    /// page around it goes on. The flag goes on the last queued buffer when
    /// one is waiting, as nginx's static module marks its file buffer: a
    /// response that is one file is then one buffer, which the range filter
    /// needs to answer several ranges.
    pub fn push_last(&mut self, r: HttpRequest) -> Result<(), NgxError> {
        let link = match NonNull::new(self.out_tail) {
            Some(tail) => tail.as_ptr(),
            None => {
                let link = self.link(r)?;
                self.append(link);
                link
            }
        };
        // SAFETY: as in `push`; the link is ours and not yet given to nginx.
        unsafe {
            let b = &mut *(*link).buf;
            if r.is_main() {
                b.set_last_buf(1);
            }
            b.set_last_in_chain(1);
        }
        Ok(())
    }

    /// Passes queued buffers (or, with none, whatever nginx still holds) to
    /// the output filters, then releases what was written.
    /// With `flush`, every chunk carries on promptly (WSGI forbids holding
    /// back a block the app produced); without it (`X-Accel-Buffering:
    /// yes`), nginx's filters may gather chunks until the end.
    pub fn send(&mut self, r: HttpRequest, flush: bool) -> Sent {
        // SAFETY: the chain links and buffers are valid (see `push`), and the
        // request is live.
        let rc = unsafe {
            if let Some(tail) = self.out_tail.as_mut() {
                let b = &mut *tail.buf;
                if flush && b.last_buf() == 0 {
                    b.set_flush(1);
                }
            }
            ngx_http_output_filter(r.as_ptr(), self.out)
        };
        // SAFETY: all three chains hold links made by `link` from this pool.
        unsafe {
            ngx_chain_update_chains(r.pool(), &mut self.free, &mut self.busy, &mut self.out, self.tag);
        }
        self.out_tail = ptr::null_mut();
        let (released, released_buffers) = self.release();
        Sent { rc, released, released_buffers }
    }

    /// True while nginx has not finished writing some of our buffers.
    pub fn busy(&self) -> bool {
        !self.busy.is_null()
    }

    /// Drops what backs every buffer nginx no longer references, and
    /// returns how many memory bytes (in how many buffers) that freed.
    /// Buffers are written in order, so everything before the first busy
    /// buffer is done.
    fn release(&mut self) -> (usize, usize) {
        // SAFETY: `busy` links are ours; update_chains stops at the first
        // one nginx has not finished, which is still in `held`.
        let first_busy = unsafe { self.busy.as_ref().and_then(|cl| NonNull::new(cl.buf)) };
        let (mut released, mut buffers) = (0, 0);
        while let Some((buf, _)) = self.held.front() {
            if Some(*buf) == first_busy {
                break;
            }
            if let Some((_, Held::Memory(data))) = self.held.pop_front() {
                released += data.len();
                buffers += 1;
            }
        }
        self.held_bytes -= released;
        (released, buffers)
    }

    fn append(&mut self, link: *mut ngx_chain_t) {
        // SAFETY: `out_tail` is null or the last link of `out`, both ours.
        unsafe {
            match self.out_tail.as_mut() {
                Some(tail) => tail.next = link,
                None => self.out = link,
            }
        }
        self.out_tail = link;
    }

    /// A clean link with a zeroed buffer tagged as ours.
    fn link(&mut self, r: HttpRequest) -> Result<*mut ngx_chain_t, NgxError> {
        let pool = r.pool();
        // SAFETY: links in `free` came from this request's pool through
        // update_chains; new ones come from the pool allocators, which
        // return NULL on failure.
        unsafe {
            let link = if let Some(cl) = self.free.as_mut() {
                self.free = cl.next;
                cl as *mut ngx_chain_t
            } else {
                let cl = ngx_alloc_chain_link(pool);
                if cl.is_null() {
                    return Err(NO_MEMORY);
                }
                let b = ngx_pcalloc(pool, std::mem::size_of::<ngx_buf_t>()) as *mut ngx_buf_t;
                if b.is_null() {
                    return Err(NO_MEMORY);
                }
                (*cl).buf = b;
                cl
            };
            ptr::write_bytes((*link).buf, 0, 1);
            (*(*link).buf).tag = self.tag;
            (*link).next = ptr::null_mut();
            Ok(link)
        }
    }
}

/// Answers `r` with a small body made here (a status page), the way
/// nginx's stub_status does; returns what the content handler returns.
pub fn send_small(r: HttpRequest, status: u16, content_type: &[u8], body: &[u8]) -> nginx_sys::ngx_int_t {
    let error = nginx_sys::NGX_HTTP_INTERNAL_SERVER_ERROR as nginx_sys::ngx_int_t;
    // SAFETY: the request is live (a content handler's); the buffer and
    // chain link come from its pool and are fully set before nginx reads
    // them.
    unsafe {
        let rc = nginx_sys::ngx_http_discard_request_body(r.as_ptr());
        if rc != nginx_sys::NGX_OK as nginx_sys::ngx_int_t {
            return rc;
        }
        if r.set_status(status, None).is_err()
            || r.add_response_header(b"Content-Type", content_type).is_err()
            || r.add_response_header(b"Content-Length", body.len().to_string().as_bytes()).is_err()
        {
            return error;
        }
        let rc = r.send_header();
        if rc == nginx_sys::NGX_ERROR as nginx_sys::ngx_int_t || rc > nginx_sys::NGX_OK as nginx_sys::ngx_int_t || r.header_only() {
            return rc;
        }
        let b = nginx_sys::ngx_create_temp_buf(r.pool(), body.len().max(1));
        let cl = ngx_alloc_chain_link(r.pool());
        if b.is_null() || cl.is_null() {
            return error;
        }
        ptr::copy_nonoverlapping(body.as_ptr(), (*b).last, body.len());
        (*b).last = (*b).last.add(body.len());
        (*b).set_last_buf(r.is_main() as u32);
        (*b).set_last_in_chain(1);
        (*cl).buf = b;
        (*cl).next = ptr::null_mut();
        nginx_sys::ngx_http_output_filter(r.as_ptr(), cl)
    }
}
