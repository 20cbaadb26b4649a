//! Configuration: the module's structures, its merge, and the directive
//! table (the layout of nginx's own modules). Each interface owns its part
//! of the structures and its directive handlers: [`crate::wsgi::conf`],
//! [`crate::cgi::conf`], and [`crate::python::config`] for `rust_python_*`.
//!
//! Everything here also runs in the master, under `nginx -t` and under
//! `nginx -s`, so it only checks and records; starting Python, threads or
//! processes waits for `init_process` in the workers.

use std::ffi::{c_char, c_void};
use std::mem::offset_of;
use std::ptr::addr_of_mut;

use nginx_sys::{
    ngx_command_t, ngx_conf_set_flag_slot, ngx_conf_set_msec_slot, ngx_conf_set_num_slot, ngx_conf_set_size_slot, ngx_conf_t,
    ngx_flag_t, ngx_msec_t, ngx_str_t, ngx_uint_t, NGX_CONF_1MORE, NGX_CONF_FLAG, NGX_CONF_NOARGS, NGX_CONF_TAKE1,
    NGX_CONF_TAKE12, NGX_CONF_TAKE2, NGX_CONF_TAKE23, NGX_HTTP_LOC_CONF, NGX_HTTP_LOC_CONF_OFFSET, NGX_HTTP_MAIN_CONF,
    NGX_HTTP_MAIN_CONF_OFFSET, NGX_HTTP_SRV_CONF,
};
use ngx::http::{Merge, MergeConfigError};
use ngx::ngx_string;

use crate::asgi::conf as asgi;
use crate::cgi::conf as cgi;
use crate::core::conf::{self as upstream, UpstreamConf};
use crate::pool::conf as pool;
use crate::nginx::conf::ConfResult;
use crate::python::config::{self as python, PythonSettings};
use crate::wsgi::conf as wsgi;

// ---- configuration structures ---------------------------------------------

/// C's NGX_CONF_UNSET_MSEC, which bindgen cannot express.
pub const UNSET_MSEC: ngx_msec_t = ngx_msec_t::MAX;
/// C's NGX_CONF_UNSET for flags.
pub const UNSET_FLAG: ngx_flag_t = -1;
/// C's NGX_CONF_UNSET_SIZE.
pub const UNSET_SIZE: usize = usize::MAX;

/// nginx's `ngx_conf_merge_msec_value`.
pub fn merge_msec(value: &mut ngx_msec_t, prev: ngx_msec_t, default: ngx_msec_t) {
    if *value == UNSET_MSEC {
        *value = if prev == UNSET_MSEC { default } else { prev };
    }
}

/// nginx's `ngx_conf_merge_value` for flags.
pub fn merge_flag(value: &mut ngx_flag_t, prev: ngx_flag_t, default: bool) {
    if *value == UNSET_FLAG {
        *value = if prev == UNSET_FLAG { default as ngx_flag_t } else { prev };
    }
}

/// `http {}` level: settings per worker process.
#[derive(Default)]
pub struct MainConf {
    pub wsgi: wsgi::WsgiMainConf,
    pub asgi: asgi::AsgiMainConf,
    pub cgi: cgi::CgiMainConf,
    /// `rust_python_home`, `rust_python_path`, `rust_python_env`.
    pub python: PythonSettings,
    /// `rust_pool`.
    pub pool: pool::PoolMainConf,
}

impl MainConf {
    /// Whether this worker runs Python.
    pub fn runs_python(&self) -> bool {
        !self.wsgi.apps.is_empty() || !self.asgi.apps.is_empty()
    }

    /// Whether this worker starts child processes.
    pub fn runs_programs(&self) -> bool {
        self.cgi.used
    }
}

/// `location {}` level (also `http {}` and `server {}` for inherited values).
#[derive(Default)]
pub struct LocConf {
    /// Also the Python settings of `rust_asgi` locations (read timeout,
    /// reload), which both interfaces share.
    pub wsgi: wsgi::WsgiLocConf,
    pub asgi: asgi::AsgiLocConf,
    pub cgi: cgi::CgiLocConf,
    pub pool: pool::PoolLocConf,
    /// What every kind of location shares with nginx's upstreams
    /// (`rust_hide_header`, `rust_pass_header`, `rust_ignore_headers`,
    /// `rust_param`).
    pub upstream: UpstreamConf,
}

impl LocConf {
    /// The directive that already makes this location serve requests, if
    /// any: one location has one content handler.
    pub fn served_by(&self) -> Option<&'static str> {
        if let Some(target) = &self.wsgi.pool {
            Some(if target.asgi { "rust_asgi" } else { "rust_wsgi" })
        } else if self.wsgi.app.is_some() {
            Some("rust_wsgi")
        } else if self.asgi.app.is_some() {
            Some("rust_asgi")
        } else if self.cgi.target.is_some() {
            Some("rust_cgi")
        } else {
            None
        }
    }
}

impl Merge for LocConf {
    fn merge(&mut self, prev: &Self) -> Result<(), MergeConfigError> {
        self.wsgi.merge(&prev.wsgi);
        self.asgi.merge(&prev.asgi);
        self.cgi.merge(&prev.cgi);
        self.upstream.merge(&prev.upstream);
        Ok(())
    }
}

/// The module's `merge_loc_conf`: inherits values, then lets the
/// interfaces check what only a merged location can tell.
///
/// # Safety
/// Only nginx calls it, with this module's location confs.
pub unsafe extern "C" fn merge_loc_conf(cf: *mut ngx_conf_t, prev: *mut c_void, conf: *mut c_void) -> *mut c_char {
    // SAFETY: nginx passes this module's location confs at two levels.
    let (prev, lcf) = unsafe { (&*(prev as *const LocConf), &mut *(conf as *mut LocConf)) };
    let _ = lcf.merge(prev);
    wsgi::merged(cf, lcf)
}

// ---- directives ---------------------------------------------------------------

const fn directive(
    name: ngx_str_t,
    type_: u32,
    set: unsafe extern "C" fn(*mut ngx_conf_t, *mut ngx_command_t, *mut c_void) -> ConfResult,
    conf: usize,
    offset: usize,
    post: *mut c_void,
) -> ngx_command_t {
    ngx_command_t { name, type_: type_ as ngx_uint_t, set: Some(set), conf: conf as ngx_uint_t, offset: offset as ngx_uint_t, post }
}

const ANY_LEVEL: u32 = NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF;
const NO_POST: *mut c_void = std::ptr::null_mut();

pub static mut COMMANDS: [ngx_command_t; 34] = [
    // rust_wsgi*
    directive(ngx_string!("rust_wsgi"), NGX_HTTP_LOC_CONF | NGX_CONF_TAKE12, wsgi::rust_wsgi, NGX_HTTP_LOC_CONF_OFFSET, 0, NO_POST),
    directive(ngx_string!("rust_wsgi_pool"), NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1, wsgi::rust_wsgi_pool, NGX_HTTP_LOC_CONF_OFFSET, 0, NO_POST),
    directive(
        ngx_string!("rust_wsgi_threads"),
        NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1,
        ngx_conf_set_num_slot,
        NGX_HTTP_MAIN_CONF_OFFSET,
        offset_of!(MainConf, wsgi.threads),
        // nginx only reads the bounds through this pointer.
        addr_of_mut!(wsgi::THREADS_BOUNDS) as *mut c_void,
    ),
    directive(ngx_string!("rust_wsgi_spin"), NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1, wsgi::rust_wsgi_spin, NGX_HTTP_MAIN_CONF_OFFSET, 0, NO_POST),
    directive(
        ngx_string!("rust_wsgi_read_timeout"),
        ANY_LEVEL | NGX_CONF_TAKE1,
        ngx_conf_set_msec_slot,
        NGX_HTTP_LOC_CONF_OFFSET,
        offset_of!(LocConf, wsgi.read_timeout),
        NO_POST,
    ),
    directive(ngx_string!("rust_wsgi_errors_level"), ANY_LEVEL | NGX_CONF_TAKE1, wsgi::rust_wsgi_errors_level, NGX_HTTP_LOC_CONF_OFFSET, 0, NO_POST),
    directive(ngx_string!("rust_wsgi_reload"), ANY_LEVEL | NGX_CONF_TAKE1, wsgi::rust_wsgi_reload, NGX_HTTP_LOC_CONF_OFFSET, 0, NO_POST),
    // rust_asgi* (the read timeout and reload are the same settings as
    // rust_wsgi's, under the name an ASGI user looks for)
    directive(ngx_string!("rust_asgi"), NGX_HTTP_LOC_CONF | NGX_CONF_TAKE12, asgi::rust_asgi, NGX_HTTP_LOC_CONF_OFFSET, 0, NO_POST),
    directive(
        ngx_string!("rust_asgi_read_timeout"),
        ANY_LEVEL | NGX_CONF_TAKE1,
        ngx_conf_set_msec_slot,
        NGX_HTTP_LOC_CONF_OFFSET,
        offset_of!(LocConf, wsgi.read_timeout),
        NO_POST,
    ),
    directive(ngx_string!("rust_asgi_reload"), ANY_LEVEL | NGX_CONF_TAKE1, wsgi::rust_wsgi_reload, NGX_HTTP_LOC_CONF_OFFSET, 0, NO_POST),
    directive(
        ngx_string!("rust_asgi_request_buffering"),
        ANY_LEVEL | NGX_CONF_FLAG,
        ngx_conf_set_flag_slot,
        NGX_HTTP_LOC_CONF_OFFSET,
        offset_of!(LocConf, asgi.request_buffering),
        NO_POST,
    ),
    directive(
        ngx_string!("rust_asgi_websocket_compression"),
        ANY_LEVEL | NGX_CONF_FLAG,
        ngx_conf_set_flag_slot,
        NGX_HTTP_LOC_CONF_OFFSET,
        offset_of!(LocConf, asgi.websocket_compression),
        NO_POST,
    ),
    // rust_python_*
    directive(ngx_string!("rust_python_home"), NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1, python::rust_python_home, NGX_HTTP_MAIN_CONF_OFFSET, 0, NO_POST),
    directive(ngx_string!("rust_python_path"), NGX_HTTP_MAIN_CONF | NGX_CONF_1MORE, python::rust_python_path, NGX_HTTP_MAIN_CONF_OFFSET, 0, NO_POST),
    directive(ngx_string!("rust_python_env"), NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE2, python::rust_python_env, NGX_HTTP_MAIN_CONF_OFFSET, 0, NO_POST),
    // rust_pool
    directive(ngx_string!("rust_pool"), NGX_HTTP_MAIN_CONF | NGX_CONF_1MORE, pool::rust_pool, NGX_HTTP_MAIN_CONF_OFFSET, 0, NO_POST),
    directive(ngx_string!("rust_pool_status"), NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS | NGX_CONF_TAKE1, pool::rust_pool_status, NGX_HTTP_LOC_CONF_OFFSET, 0, NO_POST),
    // rust_cgi*
    directive(ngx_string!("rust_cgi"), NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS, cgi::rust_cgi, NGX_HTTP_LOC_CONF_OFFSET, 0, NO_POST),
    directive(ngx_string!("rust_cgi_pass"), NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1, cgi::rust_cgi_pass, NGX_HTTP_LOC_CONF_OFFSET, 0, NO_POST),
    directive(ngx_string!("rust_cgi_param"), ANY_LEVEL | NGX_CONF_TAKE23, cgi::rust_cgi_param, NGX_HTTP_LOC_CONF_OFFSET, 0, NO_POST),
    directive(ngx_string!("rust_cgi_param_drop"), ANY_LEVEL | NGX_CONF_1MORE, cgi::rust_cgi_param_drop, NGX_HTTP_LOC_CONF_OFFSET, 0, NO_POST),
    directive(ngx_string!("rust_cgi_interpreter"), ANY_LEVEL | NGX_CONF_TAKE2, cgi::rust_cgi_interpreter, NGX_HTTP_LOC_CONF_OFFSET, 0, NO_POST),
    directive(
        ngx_string!("rust_cgi_pass_authorization"),
        ANY_LEVEL | NGX_CONF_FLAG,
        ngx_conf_set_flag_slot,
        NGX_HTTP_LOC_CONF_OFFSET,
        offset_of!(LocConf, cgi.pass_authorization),
        NO_POST,
    ),
    directive(
        ngx_string!("rust_cgi_allow_symlinks"),
        ANY_LEVEL | NGX_CONF_FLAG,
        ngx_conf_set_flag_slot,
        NGX_HTTP_LOC_CONF_OFFSET,
        offset_of!(LocConf, cgi.allow_symlinks),
        NO_POST,
    ),
    directive(ngx_string!("rust_cgi_timeout"), ANY_LEVEL | NGX_CONF_TAKE12, cgi::rust_cgi_timeout, NGX_HTTP_LOC_CONF_OFFSET, 0, NO_POST),
    directive(
        ngx_string!("rust_cgi_kill_grace"),
        ANY_LEVEL | NGX_CONF_TAKE1,
        ngx_conf_set_msec_slot,
        NGX_HTTP_LOC_CONF_OFFSET,
        offset_of!(LocConf, cgi.kill_grace),
        NO_POST,
    ),
    directive(ngx_string!("rust_cgi_stderr_level"), ANY_LEVEL | NGX_CONF_TAKE1, cgi::rust_cgi_stderr_level, NGX_HTTP_LOC_CONF_OFFSET, 0, NO_POST),
    directive(ngx_string!("rust_cgi_pass_env"), NGX_HTTP_MAIN_CONF | NGX_CONF_1MORE, cgi::rust_cgi_pass_env, NGX_HTTP_MAIN_CONF_OFFSET, 0, NO_POST),
    directive(
        ngx_string!("rust_cgi_header_limit"),
        ANY_LEVEL | NGX_CONF_TAKE1,
        ngx_conf_set_size_slot,
        NGX_HTTP_LOC_CONF_OFFSET,
        offset_of!(LocConf, cgi.header_limit),
        NO_POST,
    ),
    // what every rust_* location shares with nginx's upstreams
    directive(ngx_string!("rust_hide_header"), ANY_LEVEL | NGX_CONF_TAKE1, upstream::rust_hide_or_pass_header, NGX_HTTP_LOC_CONF_OFFSET, offset_of!(LocConf, upstream), NO_POST),
    directive(ngx_string!("rust_pass_header"), ANY_LEVEL | NGX_CONF_TAKE1, upstream::rust_hide_or_pass_header, NGX_HTTP_LOC_CONF_OFFSET, offset_of!(LocConf, upstream), NO_POST),
    directive(ngx_string!("rust_ignore_headers"), ANY_LEVEL | NGX_CONF_1MORE, upstream::rust_ignore_headers, NGX_HTTP_LOC_CONF_OFFSET, offset_of!(LocConf, upstream), NO_POST),
    directive(ngx_string!("rust_param"), ANY_LEVEL | NGX_CONF_TAKE23, upstream::rust_param, NGX_HTTP_LOC_CONF_OFFSET, offset_of!(LocConf, upstream), NO_POST),
    ngx_command_t::empty(),
];
