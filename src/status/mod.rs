//! `rust_status [json|prometheus];`: what every part of the module is
//! doing, added up over nginx's workers, as JSON (the default) or in the
//! Prometheus text format (`rust_status prometheus;`, or
//! `?format=prometheus`). `rust_pool_status` is its older name.
//!
//! - per nginx worker: its Python threads (busy, idle, queued requests,
//!   the oldest one's wait) and its ASGI loop (tasks, open WebSockets,
//!   lag);
//! - per app: requests, responses by status class, timeouts, time in the
//!   app (a histogram), reloads and failed reloads;
//! - CGI: programs running, spawned, timed out, process groups killed;
//! - pools: their processes and scaling (see `pool::worker::status`).
//!
//! Everything comes from shared memory ([`crate::core::metrics`], the
//! pools' table), read on nginx's thread: the page answers at once, even
//! while every Python thread and pool process is busy.

mod page;

use std::ffi::c_void;

use nginx_sys::{ngx_command_t, ngx_conf_t, ngx_http_request_t, ngx_int_t};

use crate::core::catch_panic;
use crate::nginx::conf::{args, conf_error, field_of, set_content_handler, ConfResult};
use crate::nginx::output::send_small;
use crate::nginx::request::HttpRequest;
use crate::pool::conf::PoolLocConf;

/// `rust_status [json|prometheus];` (and `rust_pool_status`).
///
/// # Safety
/// Only nginx calls it, with the configuration being parsed, this module's
/// location conf and a command whose offset is that of its PoolLocConf
/// (which keeps the format).
pub(crate) unsafe extern "C" fn rust_status(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> ConfResult {
    // SAFETY: as promised by the caller.
    let (cf_ref, lcf) = unsafe { (&*cf, field_of::<PoolLocConf>(conf, cmd)) };
    let directive = args(cf_ref).first().map(|a| String::from_utf8_lossy(a.as_bytes()).into_owned()).unwrap_or_default();
    match args(cf_ref).get(1).map(|a| a.as_bytes()) {
        None | Some(b"json") => {}
        Some(b"prometheus") => lcf.status_prometheus = true,
        Some(other) => return conf_error(cf, &format!("\"{directive} {}\": give json or prometheus", String::from_utf8_lossy(other))),
    }
    set_content_handler(cf, Some(content_handler))
}

/// The content handler of `rust_status`.
///
/// # Safety
/// Only nginx calls it, with a live request.
unsafe extern "C" fn content_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx calls content handlers with the live request.
    let Some(req) = (unsafe { HttpRequest::from_raw(r) }) else {
        return nginx_sys::NGX_ERROR as ngx_int_t;
    };
    catch_panic(req.log(), "rust_status", || {
        let page = page::Page::now();
        let asked = req.args().split(|&c| c == b'&').any(|a| a == b"format=prometheus");
        let configured = crate::pool::conf::LOC.of(req).is_some_and(|c| c.status_prometheus);
        if asked || configured {
            send_small(req, 200, b"text/plain; version=0.0.4", page.prometheus().as_bytes())
        } else {
            send_small(req, 200, b"application/json", &page.json())
        }
    })
    .unwrap_or(nginx_sys::NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t)
}
