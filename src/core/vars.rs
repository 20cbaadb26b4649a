//! The module's variables, for `log_format`, `add_header`, `map` and
//! `auth_request_set`, as `$upstream_*` are for nginx's upstreams:
//!
//! - `$rust_app`: the app (file and callable) or CGI program that served;
//! - `$rust_pool`: the pool it ran in, empty when embedded;
//! - `$rust_pid`: the process that ran it (the nginx worker when embedded,
//!   the pool process, the CGI program);
//! - `$rust_status`: the app's own status (before nginx's filters turn it
//!   into a 304 or 206), or 502/504 when it failed;
//! - `$rust_queue_time`, `$rust_header_time`, `$rust_app_time`: seconds
//!   (with ms) from handing the request over until a thread or process
//!   took it, until the head, and until the end;
//! - `$rust_http_NAME`: the app's response header NAME, hidden ones too.
//!
//! A variable reads the request's [`RequestCtx`]. An internal redirect
//! (`X-Accel-Redirect`, a CGI local redirect) clears nginx's module
//! contexts, so before one the engine leaves a marker in the request pool
//! ([`remember`]) through which the access log still finds what the app
//! did.

use std::ffi::c_void;
use std::ptr::{self, NonNull};

use nginx_sys::{
    ngx_conf_t, ngx_http_add_variable, ngx_http_request_t, ngx_http_variable_value_t, ngx_int_t, ngx_str_t,
    ngx_uint_t, NGX_ERROR, NGX_HTTP_VAR_NOCACHEABLE, NGX_HTTP_VAR_PREFIX, NGX_OK,
};

use super::catch_panic;
use super::respond::RequestCtx;
use super::served::{seconds, Served};
use crate::nginx::log::Log;
use crate::nginx::request::HttpRequest;

type Getter = fn(&RequestCtx, &[u8]) -> Option<Vec<u8>>;

const VARIABLES: &[(&str, Getter, u32)] = &[
    ("rust_app", |ctx, _| ctx.served.label.app.as_ref().map(|a| a.as_str().as_bytes().to_vec()), 0),
    ("rust_pool", |ctx, _| Some(ctx.served.label.pool.unwrap_or("").as_bytes().to_vec()), 0),
    ("rust_pid", |ctx, _| ctx.pid().map(|p| p.to_string().into_bytes()), 0),
    ("rust_status", |ctx, _| ctx.served.status().map(|s| s.to_string().into_bytes()), 0),
    ("rust_queue_time", |ctx, _| time(&ctx.served, Served::queue_ms), 0),
    ("rust_header_time", |ctx, _| time(&ctx.served, Served::header_ms), 0),
    ("rust_app_time", |ctx, _| time(&ctx.served, Served::app_ms), 0),
    ("rust_http_", |ctx, name| ctx.served.header(name.get(b"rust_http_".len()..)?).map(<[u8]>::to_vec), NGX_HTTP_VAR_PREFIX),
];

fn time(served: &Served, f: fn(&Served) -> Option<nginx_sys::ngx_msec_t>) -> Option<Vec<u8>> {
    f(served).map(|ms| seconds(ms).into_bytes())
}

/// `preconfiguration`: declares the variables.
///
/// # Safety
/// Only nginx calls it, with the configuration being parsed.
pub unsafe extern "C" fn add_variables(cf: *mut ngx_conf_t) -> ngx_int_t {
    for (index, (name, _, flags)) in VARIABLES.iter().enumerate() {
        let mut name = ngx_str_t { len: name.len(), data: name.as_ptr() as *mut u8 };
        // SAFETY: nginx copies the name into the configuration pool and
        // returns the variable, or NULL after logging why.
        unsafe {
            let var = ngx_http_add_variable(cf, &mut name, (NGX_HTTP_VAR_NOCACHEABLE | flags) as ngx_uint_t);
            let Some(var) = var.as_mut() else { return NGX_ERROR as ngx_int_t };
            var.get_handler = Some(get_variable);
            var.data = index;
        }
    }
    NGX_OK as ngx_int_t
}

/// Prefix variables get the full name instead of their index; the name
/// tells them apart.
unsafe extern "C" fn get_variable(r: *mut ngx_http_request_t, v: *mut ngx_http_variable_value_t, data: usize) -> ngx_int_t {
    let value = catch_panic(Log::cycle(), "variable", || {
        // SAFETY: nginx evaluates variables of a live request.
        let req = unsafe { HttpRequest::from_raw(r) }?;
        let (getter, name): (Getter, &[u8]) = match VARIABLES.get(data) {
            Some((_, getter, _)) => (*getter, b""),
            None => {
                // SAFETY: for a prefix variable nginx passes its full name.
                let name = unsafe { &*(data as *const ngx_str_t) };
                (VARIABLES[VARIABLES.len() - 1].1, name.as_bytes())
            }
        };
        // SAFETY: the context lives in the request pool until it goes.
        let ctx = unsafe { find(req)?.as_ref() };
        getter(ctx, name).map(|value| (req, value))
    })
    .flatten();
    // SAFETY: `v` is the value nginx asks us to fill; the bytes are copied
    // into the request pool.
    unsafe {
        let v = &mut *v;
        match value.and_then(|(req, value)| req.pool_str(&value).ok()) {
            Some(s) => {
                v.set_len(s.len as u32);
                v.data = s.data;
                v.set_valid(1);
                v.set_no_cacheable(0);
                v.set_not_found(0);
            }
            None => v.set_not_found(1),
        }
    }
    NGX_OK as ngx_int_t
}

/// What a pool cleanup marker holds. The tag makes it ours for certain:
/// two functions with the same (empty) body may share an address.
struct Marker {
    tag: u64,
    request: *mut ngx_http_request_t,
    ctx: NonNull<RequestCtx>,
}

const TAG: u64 = u64::from_be_bytes(*b"rgw-vars");

unsafe extern "C" fn marker(_data: *mut c_void) {}

/// Before an internal redirect: lets the variables find `ctx` once
/// nginx has cleared the context slot.
pub fn remember(req: HttpRequest, ctx: NonNull<RequestCtx>) {
    // SAFETY: a cleanup with room for a Marker, from the request pool that
    // also holds `ctx`; a no-op handler, so the pool only frees it.
    unsafe {
        let cln = nginx_sys::ngx_pool_cleanup_add(req.pool(), std::mem::size_of::<Marker>());
        if let Some(cln) = cln.as_mut() {
            ptr::write(cln.data as *mut Marker, Marker { tag: TAG, request: req.as_ptr(), ctx });
            cln.handler = Some(marker);
        }
    }
}

fn find(req: HttpRequest) -> Option<NonNull<RequestCtx>> {
    if let Some(ctx) = req.ctx::<RequestCtx>() {
        return Some(ctx);
    }
    // SAFETY: the pool's cleanup list is nginx's, walked on nginx's thread;
    // entries with our marker handler hold a Marker.
    unsafe {
        let mut cln = (*req.pool()).cleanup;
        while let Some(c) = cln.as_ref() {
            #[allow(unpredictable_function_pointer_comparisons)]
            let ours = c.handler == Some(marker as unsafe extern "C" fn(*mut c_void));
            if ours {
                let m = &*(c.data as *const Marker);
                if m.tag == TAG && m.request == req.as_ptr() {
                    return Some(m.ctx);
                }
            }
            cln = c.next;
        }
    }
    None
}
