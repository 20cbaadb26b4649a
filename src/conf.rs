//! Configuration: the module's structures, its merge, and the directive
//! table (the layout of nginx's own modules). Each room owns its part of
//! the structures and its directive handlers ([`crate::wsgi::conf`],
//! [`crate::asgi::conf`], [`crate::cgi::conf`], [`crate::pool::conf`],
//! [`crate::python::app_conf`] for what every Python app's location shares,
//! [`crate::python::config`] for `rust_python_*`, [`crate::core::conf`] for
//! what every location shares with nginx's upstreams), and finds it through
//! the slot [`register_slots`] sets; the handlers that choose which room
//! serves a location (`rust_wsgi`, `rust_asgi`, `rust_wsgi_pool`: embedded
//! or from a pool; `rust_cgi`, `rust_cgi_pass`) are here, above the rooms.
//!
//! Everything here also runs in the master, under `nginx -t` and under
//! `nginx -s`, so it only checks and records; starting Python, threads or
//! processes waits for `init_process` in the workers (the pool supervisor,
//! for `init_module` in the master).

use std::ffi::{c_char, c_void};
use std::mem::offset_of;
use std::ptr::addr_of_mut;

use nginx_sys::{
    ngx_command_t, ngx_conf_set_flag_slot, ngx_conf_set_msec_slot, ngx_conf_set_num_slot, ngx_conf_set_size_slot, ngx_conf_t,
    ngx_str_t, ngx_uint_t, NGX_CONF_1MORE, NGX_CONF_FLAG, NGX_CONF_NOARGS, NGX_CONF_TAKE1,
    NGX_CONF_TAKE12, NGX_CONF_TAKE2, NGX_CONF_TAKE23, NGX_HTTP_LOC_CONF, NGX_HTTP_LOC_CONF_OFFSET, NGX_HTTP_MAIN_CONF,
    NGX_HTTP_MAIN_CONF_OFFSET, NGX_HTTP_SRV_CONF,
};
use ngx::http::{Merge, MergeConfigError};
use ngx::ngx_string;

use crate::asgi::conf as asgi;
use crate::cgi::conf as cgi;
use crate::core::conf::{self as upstream, UpstreamConf};
use crate::pool::conf as pool;
use crate::nginx::conf::{args, conf_error, set_content_handler, ConfResult, MainSlot, CONF_OK};
use crate::python::app_conf::{self, AppLocConf};
use crate::python::apps::Interface;
use crate::python::config::{self as python, PythonSettings};
use crate::wsgi::conf as wsgi;

// ---- configuration structures ---------------------------------------------

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
    /// What every Python app's location shares, whichever interface and
    /// wherever it runs (read timeout, errors level, reload).
    pub app: AppLocConf,
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
        if let Some(target) = &self.pool.target {
            Some(if target.program {
                "rust_fastcgi_pass"
            } else if target.asgi {
                "rust_asgi"
            } else {
                "rust_wsgi"
            })
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
        // The app itself is not inherited: like fastcgi_pass, it belongs
        // to the location that names it.
        self.app.merge(&prev.app);
        self.asgi.merge(&prev.asgi);
        self.cgi.merge(&prev.cgi);
        self.pool.merge(&prev.pool);
        self.upstream.merge(&prev.upstream);
        Ok(())
    }
}

/// The module's `merge_loc_conf`: inherits values, then checks what only a
/// merged location can tell: that its pool exists, or that every location
/// serving its app agrees on how it reloads.
///
/// # Safety
/// Only nginx calls it, with this module's location confs.
pub unsafe extern "C" fn merge_loc_conf(cf: *mut ngx_conf_t, prev: *mut c_void, conf: *mut c_void) -> *mut c_char {
    // SAFETY: nginx passes this module's location confs at two levels.
    let (prev, lcf) = unsafe { (&*(prev as *const LocConf), &mut *(conf as *mut LocConf)) };
    let _ = lcf.merge(prev);
    // SAFETY: nginx passes the configuration being parsed.
    let Some(mcf) = MAIN.of_conf(unsafe { &*cf }) else { return CONF_OK };
    if let Some(target) = lcf.pool.target.as_mut() {
        return match mcf.pool.resolve(target) {
            Ok(()) => CONF_OK,
            Err(problem) => conf_error(cf, &problem),
        };
    }
    match (lcf.wsgi.app, lcf.asgi.app) {
        (Some(index), _) => app_conf::agree_reload(cf, &mut mcf.wsgi.apps[index], lcf.app.reload.clone(), "rust_wsgi_reload"),
        (None, Some(index)) => app_conf::agree_reload(cf, &mut mcf.asgi.apps[index], lcf.app.reload.clone(), "rust_asgi_reload"),
        (None, None) => CONF_OK,
    }
}

/// The whole main conf, for the handlers here.
static MAIN: MainSlot<MainConf> = MainSlot::new();

/// Tells each room where its settings sit in [`LocConf`] and [`MainConf`]
/// (see [`crate::nginx::conf::Slot`]), before nginx reads the
/// configuration.
pub fn register_slots() {
    MAIN.0.set(0);
    crate::core::conf::UPSTREAM.0.set(offset_of!(LocConf, upstream));
    crate::python::app_conf::LOC.0.set(offset_of!(LocConf, app));
    wsgi::LOC.0.set(offset_of!(LocConf, wsgi));
    asgi::LOC.0.set(offset_of!(LocConf, asgi));
    cgi::LOC.0.set(offset_of!(LocConf, cgi));
    cgi::MAIN.0.set(offset_of!(MainConf, cgi));
    pool::LOC.0.set(offset_of!(LocConf, pool));
}

// ---- the directives that choose where an app runs -----------------------------

/// `rust_wsgi /path/to/app.py[:callable] [pool=NAME];`
unsafe extern "C" fn rust_wsgi(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> ConfResult {
    // SAFETY: nginx passes the configuration being parsed and this module's
    // location conf.
    unsafe { serve_app(cf, conf, Interface::Wsgi) }
}

/// `rust_asgi /path/to/app.py[:callable] [pool=NAME];`
unsafe extern "C" fn rust_asgi(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> ConfResult {
    // SAFETY: as in `rust_wsgi`.
    unsafe { serve_app(cf, conf, Interface::Asgi) }
}

/// A location served by a Python app: embedded in the worker (the app
/// joins the interface's list, imported once per worker) or from a pool.
///
/// # Safety
/// `cf` is the configuration being parsed and `conf` this module's
/// location conf.
unsafe fn serve_app(cf: *mut ngx_conf_t, conf: *mut c_void, interface: Interface) -> ConfResult {
    // SAFETY: see above.
    let (cf_ref, lcf) = unsafe { (&*cf, &mut *(conf as *mut LocConf)) };
    let (directive, name) = match interface {
        Interface::Wsgi => ("rust_wsgi", "WSGI"),
        Interface::Asgi => ("rust_asgi", "ASGI"),
    };
    let (spec, pool) = match app_conf::app_directive(cf, lcf.served_by(), directive, name) {
        Ok(parsed) => parsed,
        Err(e) => return e,
    };
    if let Some(name) = pool {
        let asgi = interface == Interface::Asgi;
        lcf.pool.target = Some(pool::PoolTarget { name, app: Some(spec), asgi, ..Default::default() });
        return set_content_handler(cf, Some(crate::pool::worker::client::content_handler));
    }
    let Some(mcf) = MAIN.of_conf(cf_ref) else {
        return conf_error(cf, &format!("\"{directive}\": no http configuration"));
    };
    match interface {
        Interface::Wsgi => {
            lcf.wsgi.app = Some(app_conf::app_index(&mut mcf.wsgi.apps, spec));
            set_content_handler(cf, Some(crate::wsgi::content_handler))
        }
        Interface::Asgi => {
            lcf.asgi.app = Some(app_conf::app_index(&mut mcf.asgi.apps, spec));
            set_content_handler(cf, Some(crate::asgi::content_handler))
        }
    }
}

/// `rust_cgi;` and `rust_cgi_pass`: CGI's own handlers, once nothing else
/// serves the location.
unsafe extern "C" fn rust_cgi(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> ConfResult {
    // SAFETY: nginx passes this module's location conf and our command.
    unsafe { only_cgi(cf, cmd, conf, cgi::rust_cgi) }
}

unsafe extern "C" fn rust_cgi_pass(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> ConfResult {
    // SAFETY: as in `rust_cgi`.
    unsafe { only_cgi(cf, cmd, conf, cgi::rust_cgi_pass) }
}

/// # Safety
/// As for any directive handler of this module.
unsafe fn only_cgi(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
    handler: unsafe extern "C" fn(*mut ngx_conf_t, *mut ngx_command_t, *mut c_void) -> ConfResult,
) -> ConfResult {
    // SAFETY: see above.
    let (lcf, name) = unsafe { (&*(conf as *const LocConf), String::from_utf8_lossy((*cmd).name.as_bytes()).into_owned()) };
    match lcf.served_by() {
        Some("rust_cgi") => conf_error(cf, &format!("\"{name}\": this location already runs CGI; use rust_cgi or rust_cgi_pass once")),
        Some(other) => conf_error(cf, &format!("\"{name}\" and \"{other}\" cannot serve the same location")),
        // SAFETY: the command's offset is that of the CGI settings.
        None => unsafe { handler(cf, cmd, conf) },
    }
}

/// `rust_wsgi_pool NAME;`: the pool's own `app=`, served from the pool.
unsafe extern "C" fn rust_wsgi_pool(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> ConfResult {
    // SAFETY: as in `rust_wsgi`.
    let (cf_ref, lcf) = unsafe { (&*cf, &mut *(conf as *mut LocConf)) };
    match lcf.served_by() {
        Some("rust_wsgi") => return conf_error(cf, "\"rust_wsgi_pool\": this location already serves an app"),
        Some(other) => return conf_error(cf, &format!("\"rust_wsgi_pool\" and \"{other}\" cannot serve the same location")),
        None => {}
    }
    let name = String::from_utf8_lossy(args(cf_ref)[1].as_bytes()).into_owned();
    lcf.pool.target = Some(pool::PoolTarget { name, app: None, ..Default::default() });
    set_content_handler(cf, Some(crate::pool::worker::client::content_handler))
}

/// `rust_fastcgi_pass NAME;`: the location's requests go to a program
/// pool, as `fastcgi_pass` sends them to a FastCGI server.
unsafe extern "C" fn rust_fastcgi_pass(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> ConfResult {
    // SAFETY: as in `rust_wsgi`.
    let (cf_ref, lcf) = unsafe { (&*cf, &mut *(conf as *mut LocConf)) };
    match lcf.served_by() {
        Some("rust_fastcgi_pass") => return conf_error(cf, "\"rust_fastcgi_pass\" is duplicate"),
        Some(other) => return conf_error(cf, &format!("\"rust_fastcgi_pass\" and \"{other}\" cannot serve the same location")),
        None => {}
    }
    let name = String::from_utf8_lossy(args(cf_ref)[1].as_bytes()).into_owned();
    lcf.pool.target = Some(pool::PoolTarget { name, app: None, program: true, ..Default::default() });
    set_content_handler(cf, Some(crate::pool::worker::client::content_handler))
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

pub static mut COMMANDS: [ngx_command_t; 38] = [
    // rust_wsgi*
    directive(ngx_string!("rust_wsgi"), NGX_HTTP_LOC_CONF | NGX_CONF_TAKE12, rust_wsgi, NGX_HTTP_LOC_CONF_OFFSET, 0, NO_POST),
    directive(ngx_string!("rust_wsgi_pool"), NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1, rust_wsgi_pool, NGX_HTTP_LOC_CONF_OFFSET, 0, NO_POST),
    directive(
        ngx_string!("rust_wsgi_threads"),
        NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1,
        ngx_conf_set_num_slot,
        NGX_HTTP_MAIN_CONF_OFFSET,
        offset_of!(MainConf, wsgi.threads),
        // nginx only reads the bounds through this pointer.
        addr_of_mut!(wsgi::THREADS_BOUNDS) as *mut c_void,
    ),
    directive(
        ngx_string!("rust_wsgi_spin"),
        NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1,
        wsgi::rust_wsgi_spin,
        NGX_HTTP_MAIN_CONF_OFFSET,
        offset_of!(MainConf, wsgi),
        NO_POST,
    ),
    directive(
        ngx_string!("rust_wsgi_read_timeout"),
        ANY_LEVEL | NGX_CONF_TAKE1,
        ngx_conf_set_msec_slot,
        NGX_HTTP_LOC_CONF_OFFSET,
        offset_of!(LocConf, app.read_timeout),
        NO_POST,
    ),
    directive(
        ngx_string!("rust_wsgi_errors_level"),
        ANY_LEVEL | NGX_CONF_TAKE1,
        app_conf::rust_wsgi_errors_level,
        NGX_HTTP_LOC_CONF_OFFSET,
        offset_of!(LocConf, app),
        NO_POST,
    ),
    directive(ngx_string!("rust_wsgi_reload"), ANY_LEVEL | NGX_CONF_TAKE1, app_conf::rust_app_reload, NGX_HTTP_LOC_CONF_OFFSET, offset_of!(LocConf, app), NO_POST),
    // rust_asgi* (the read timeout and reload are the same settings as
    // rust_wsgi's, under the name an ASGI user looks for)
    directive(ngx_string!("rust_asgi"), NGX_HTTP_LOC_CONF | NGX_CONF_TAKE12, rust_asgi, NGX_HTTP_LOC_CONF_OFFSET, 0, NO_POST),
    directive(
        ngx_string!("rust_asgi_read_timeout"),
        ANY_LEVEL | NGX_CONF_TAKE1,
        ngx_conf_set_msec_slot,
        NGX_HTTP_LOC_CONF_OFFSET,
        offset_of!(LocConf, app.read_timeout),
        NO_POST,
    ),
    // The same setting again, under the name nginx's fastcgi_read_timeout
    // suggests, for a program pool's locations.
    directive(
        ngx_string!("rust_fastcgi_read_timeout"),
        ANY_LEVEL | NGX_CONF_TAKE1,
        ngx_conf_set_msec_slot,
        NGX_HTTP_LOC_CONF_OFFSET,
        offset_of!(LocConf, app.read_timeout),
        NO_POST,
    ),
    directive(ngx_string!("rust_asgi_reload"), ANY_LEVEL | NGX_CONF_TAKE1, app_conf::rust_app_reload, NGX_HTTP_LOC_CONF_OFFSET, offset_of!(LocConf, app), NO_POST),
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
    directive(ngx_string!("rust_python_home"), NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1, python::rust_python_home, NGX_HTTP_MAIN_CONF_OFFSET, offset_of!(MainConf, python), NO_POST),
    directive(ngx_string!("rust_python_path"), NGX_HTTP_MAIN_CONF | NGX_CONF_1MORE, python::rust_python_path, NGX_HTTP_MAIN_CONF_OFFSET, offset_of!(MainConf, python), NO_POST),
    directive(ngx_string!("rust_python_env"), NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE2, python::rust_python_env, NGX_HTTP_MAIN_CONF_OFFSET, offset_of!(MainConf, python), NO_POST),
    // rust_pool
    directive(ngx_string!("rust_pool"), NGX_HTTP_MAIN_CONF | NGX_CONF_1MORE, pool::rust_pool, NGX_HTTP_MAIN_CONF_OFFSET, offset_of!(MainConf, pool), NO_POST),
    directive(ngx_string!("rust_fastcgi_pass"), NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1, rust_fastcgi_pass, NGX_HTTP_LOC_CONF_OFFSET, 0, NO_POST),
    directive(ngx_string!("rust_fastcgi_param"), ANY_LEVEL | NGX_CONF_TAKE23, pool::rust_fastcgi_param, NGX_HTTP_LOC_CONF_OFFSET, offset_of!(LocConf, pool), NO_POST),
    directive(ngx_string!("rust_status"), NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS | NGX_CONF_TAKE1, crate::status::rust_status, NGX_HTTP_LOC_CONF_OFFSET, offset_of!(LocConf, pool), NO_POST),
    directive(ngx_string!("rust_pool_status"), NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS | NGX_CONF_TAKE1, crate::status::rust_status, NGX_HTTP_LOC_CONF_OFFSET, offset_of!(LocConf, pool), NO_POST),
    // rust_cgi*
    directive(ngx_string!("rust_cgi"), NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS, rust_cgi, NGX_HTTP_LOC_CONF_OFFSET, offset_of!(LocConf, cgi), NO_POST),
    directive(ngx_string!("rust_cgi_pass"), NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1, rust_cgi_pass, NGX_HTTP_LOC_CONF_OFFSET, offset_of!(LocConf, cgi), NO_POST),
    directive(ngx_string!("rust_cgi_param"), ANY_LEVEL | NGX_CONF_TAKE23, cgi::rust_cgi_param, NGX_HTTP_LOC_CONF_OFFSET, offset_of!(LocConf, cgi), NO_POST),
    directive(ngx_string!("rust_cgi_param_drop"), ANY_LEVEL | NGX_CONF_1MORE, cgi::rust_cgi_param_drop, NGX_HTTP_LOC_CONF_OFFSET, offset_of!(LocConf, cgi), NO_POST),
    directive(ngx_string!("rust_cgi_interpreter"), ANY_LEVEL | NGX_CONF_TAKE2, cgi::rust_cgi_interpreter, NGX_HTTP_LOC_CONF_OFFSET, offset_of!(LocConf, cgi), NO_POST),
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
    directive(ngx_string!("rust_cgi_timeout"), ANY_LEVEL | NGX_CONF_TAKE12, cgi::rust_cgi_timeout, NGX_HTTP_LOC_CONF_OFFSET, offset_of!(LocConf, cgi), NO_POST),
    directive(
        ngx_string!("rust_cgi_kill_grace"),
        ANY_LEVEL | NGX_CONF_TAKE1,
        ngx_conf_set_msec_slot,
        NGX_HTTP_LOC_CONF_OFFSET,
        offset_of!(LocConf, cgi.kill_grace),
        NO_POST,
    ),
    directive(ngx_string!("rust_cgi_stderr_level"), ANY_LEVEL | NGX_CONF_TAKE1, cgi::rust_cgi_stderr_level, NGX_HTTP_LOC_CONF_OFFSET, offset_of!(LocConf, cgi), NO_POST),
    directive(ngx_string!("rust_cgi_pass_env"), NGX_HTTP_MAIN_CONF | NGX_CONF_1MORE, cgi::rust_cgi_pass_env, NGX_HTTP_MAIN_CONF_OFFSET, offset_of!(MainConf, cgi), NO_POST),
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
