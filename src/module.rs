//! The nginx module itself: `ngx_http_rust_gateway_module`.
//!
//! Hooks: `preconfiguration` hands the module's identity down, records
//! where each room's settings sit and declares the `$rust_*` variables;
//! `init_module`, in the master, hands the pools to their supervisor
//! (starting it, see [`crate::pool::master`]); `init_process` starts the
//! per-worker runtime (the eventfd bridge, CGI, Python, the WSGI threads,
//! the ASGI loop) in worker processes and in single-process mode only;
//! `exit_process` stops it. Beyond the pool supervisor, the master never
//! starts anything, and `nginx -t` and `nginx -s` nothing at all.

use std::ffi::c_void;
use std::ptr::addr_of;

use nginx_sys::{
    ngx_cycle_t, ngx_http_module_t, ngx_int_t, ngx_module_t, NGX_HTTP_MODULE, NGX_OK,
};
use ngx::http::{HttpModule, HttpModuleLocationConf, HttpModuleMainConf};

use crate::conf::{LocConf, MainConf};
use crate::core::{catch_panic, runtime};
use crate::nginx::log::{Level, Log};
use crate::nginx::process;

pub struct Module;

impl HttpModule for Module {
    fn module() -> &'static ngx_module_t {
        module_ref()
    }
}

// SAFETY: the main conf slot of this module holds a `MainConf`, created by
// `create_main_conf` below.
unsafe impl HttpModuleMainConf for Module {
    type MainConf = MainConf;
}

// SAFETY: likewise for the location conf.
unsafe impl HttpModuleLocationConf for Module {
    type LocationConf = LocConf;
}

static MODULE_CTX: ngx_http_module_t = ngx_http_module_t {
    preconfiguration: Some(preconfiguration),
    postconfiguration: None,
    create_main_conf: Some(Module::create_main_conf),
    init_main_conf: None,
    create_srv_conf: None,
    merge_srv_conf: None,
    create_loc_conf: Some(Module::create_loc_conf),
    merge_loc_conf: Some(crate::conf::merge_loc_conf),
};

#[cfg_attr(not(test), used)]
#[allow(non_upper_case_globals)]
#[cfg_attr(not(feature = "export-modules"), no_mangle)]
pub static mut ngx_http_rust_gateway_module: ngx_module_t = ngx_module_t {
    ctx: addr_of!(MODULE_CTX) as *mut c_void,
    // Only the address is taken; nginx reads the table.
    commands: addr_of!(crate::conf::COMMANDS) as *mut nginx_sys::ngx_command_t,
    type_: NGX_HTTP_MODULE as _,
    init_module: Some(init_module),
    init_process: Some(init_process),
    exit_process: Some(exit_process),
    ..ngx_module_t::default()
};

/// The module static, for nginx APIs that want it (ctx slots, buffer tags).
pub fn module_ref() -> &'static ngx_module_t {
    // SAFETY: nginx writes the static's indexes while loading the module,
    // before any request or hook runs; afterwards it is only read.
    unsafe { &*addr_of!(ngx_http_rust_gateway_module) }
}

/// The first hook nginx calls for this HTTP module, in every process that
/// reads a configuration: hands the module's identity down (see
/// [`crate::nginx::this_module`]) and declares the variables.
unsafe extern "C" fn preconfiguration(cf: *mut nginx_sys::ngx_conf_t) -> ngx_int_t {
    crate::nginx::set_this_module(module_ref());
    crate::conf::register_slots();
    // SAFETY: nginx passes the configuration being parsed.
    unsafe { crate::core::vars::add_variables(cf) }
}

/// In the process that read the configuration (the master, and also under
/// `nginx -t` and `nginx -s`, where it does nothing): hands the pools to
/// their supervisor.
unsafe extern "C" fn init_module(cycle: *mut ngx_cycle_t) -> ngx_int_t {
    // Before any worker is forked, and kept across reloads: the counters
    // of `rust_status` (see crate::core::metrics).
    if let Err(e) = crate::core::metrics::create() {
        Log::cycle().write(Level::Alert, &format!("rust_status: cannot map its shared counters: {e}"));
    }
    // SAFETY: nginx passes the cycle being initialised.
    let Some(mcf) = Module::main_conf(unsafe { &*cycle }) else {
        return NGX_OK as ngx_int_t;
    };
    catch_panic(Log::cycle(), "init_module", || {
        // SAFETY: as above.
        crate::pool::master::configure(unsafe { &*cycle }, &mcf.pool, &mcf.python)
    });
    NGX_OK as ngx_int_t
}

unsafe extern "C" fn init_process(cycle: *mut ngx_cycle_t) -> ngx_int_t {
    let log = Log::cycle();
    // Workers and helpers alike: only the master may keep the supervisor's
    // pipe open.
    crate::pool::master::forget_in_child();
    if !process::serves_requests() {
        return NGX_OK as ngx_int_t;
    }
    // SAFETY: nginx passes the worker's cycle.
    let Some(mcf) = Module::main_conf(unsafe { &*cycle }) else {
        return NGX_OK as ngx_int_t;
    };
    catch_panic(log, "init_process", || {
        if !crate::core::metrics::claim_worker() {
            log.write(Level::Warn, &format!("rust_status: more than {} workers at once; this one counts its requests but is not listed", crate::core::metrics::MAX_WORKERS));
        }
        if mcf.runs_python() || mcf.runs_programs() {
            process::restore_default_sigchld();
        }
        if mcf.runs_python() {
            // A process the app forks keeps none of nginx's sockets.
            crate::os::watch_forks(process::close_nginx_fds_in_child);
        }
        if mcf.runs_programs() {
            crate::cgi::start(&mcf.cgi);
        }
        if !mcf.runs_python() {
            return;
        }
        // A failure here must not take the worker down (the master would
        // respawn it in a loop): log it, and the affected locations answer
        // 500 while the rest of nginx keeps serving.
        if let Err(e) = runtime::start(log) {
            log.write(Level::Error, &format!("rust_gateway: cannot start in this worker: {e}"));
            return;
        }
        let Some(bridge) = runtime::bridge() else { return };
        if let Err(e) = crate::python::start(mcf.python.clone(), &bridge) {
            log.write(Level::Error, &format!("rust_gateway: cannot start Python in this worker: {e}"));
            return;
        }
        if !mcf.wsgi.apps.is_empty() {
            if let Err(e) = crate::wsgi::start(&mcf.wsgi) {
                log.write(Level::Error, &format!("rust_wsgi: cannot start in this worker: {e}"));
            }
        }
        if !mcf.asgi.apps.is_empty() {
            if let Err(e) = crate::asgi::start(&mcf.asgi) {
                log.write(Level::Error, &format!("rust_asgi: cannot start in this worker: {e}"));
            }
        }
        crate::python::watch_directories(mcf.wsgi.apps.iter().chain(&mcf.asgi.apps), &bridge);
    });
    NGX_OK as ngx_int_t
}

unsafe extern "C" fn exit_process(_cycle: *mut ngx_cycle_t) {
    if !process::serves_requests() {
        return;
    }
    catch_panic(Log::cycle(), "exit_process", || {
        crate::core::watch::stop();
        crate::cgi::stop();
        crate::pool::worker::client::close_idle();
        crate::pool::worker::listener::close_all();
        crate::pool::worker::wake::close();
        crate::wsgi::stop();
        crate::asgi::stop();
        crate::python::stop();
        runtime::stop();
        crate::core::metrics::release_worker();
    });
}
