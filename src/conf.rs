//! Configuration: the structures, the directive table and the directive
//! handlers, in that order (the layout of nginx's own modules).
//!
//! Everything here also runs in the master, under `nginx -t` and under
//! `nginx -s`, so it only checks and records; starting Python, threads or
//! processes waits for `init_process` in the workers.

use std::ffi::{c_char, c_void};
use std::path::Path;
use std::ptr::addr_of_mut;

use nginx_sys::{
    ngx_command_t, ngx_conf_check_num_bounds, ngx_conf_num_bounds_t, ngx_conf_set_msec_slot,
    ngx_conf_set_num_slot, ngx_conf_t, ngx_int_t, ngx_msec_t, ngx_str_t, ngx_uint_t,
    NGX_CONF_1MORE, NGX_CONF_TAKE1, NGX_CONF_TAKE2, NGX_HTTP_LOC_CONF, NGX_HTTP_LOC_CONF_OFFSET, NGX_HTTP_MAIN_CONF,
    NGX_HTTP_MAIN_CONF_OFFSET, NGX_HTTP_SRV_CONF,
};
use ngx::ngx_string;
use ngx::http::{HttpModuleLocationConf, HttpModuleMainConf, Merge, MergeConfigError, NgxHttpCoreModule};

use crate::module::Module;
use crate::nginx::log::Level;
use crate::nginx::conf::{args, conf_error, full_path, ConfResult, CONF_OK};
use crate::python::apps::{AppSpec, Reload};
use crate::python::config::{Home, PythonSettings};

// ---- configuration structures ---------------------------------------------

/// C's NGX_CONF_UNSET_MSEC, which bindgen cannot express.
const UNSET_MSEC: ngx_msec_t = ngx_msec_t::MAX;

/// `http {}` level: settings per worker process.
pub struct MainConf {
    /// `rust_wsgi_threads`, NGX_CONF_UNSET until set.
    pub wsgi_threads: ngx_int_t,
    /// Every app named by `rust_wsgi`, each once; locations refer to them by
    /// index, so a file used in several locations is imported once.
    pub apps: Vec<AppConf>,
    /// `rust_python_home`, `rust_python_path`, `rust_python_env`.
    pub python: PythonSettings,
}

impl Default for MainConf {
    fn default() -> Self {
        MainConf {
            wsgi_threads: nginx_sys::NGX_CONF_UNSET as ngx_int_t,
            apps: Vec::new(),
            python: PythonSettings::default(),
        }
    }
}

/// An app and how it reloads, as the locations that serve it agree.
pub struct AppConf {
    pub spec: AppSpec,
    /// Set when the first location serving the app is merged.
    pub reload: Option<Reload>,
}

impl MainConf {
    /// Threads per nginx worker. The GIL lets one thread run Python at a
    /// time, so threads only help while others wait (database, network,
    /// sleep); eight covers that for typical apps without the memory and
    /// GIL churn of mod_wsgi's fifteen.
    pub const DEFAULT_WSGI_THREADS: ngx_int_t = 8;

    pub fn wsgi_threads(&self) -> usize {
        if self.wsgi_threads == nginx_sys::NGX_CONF_UNSET as ngx_int_t {
            Self::DEFAULT_WSGI_THREADS as usize
        } else {
            self.wsgi_threads as usize
        }
    }

    /// Whether this worker needs the module's runtime at all.
    pub fn needs_runtime(&self) -> bool {
        !self.apps.is_empty()
    }

    fn app_index(&mut self, spec: AppSpec) -> usize {
        match self.apps.iter().position(|a| a.spec == spec) {
            Some(i) => i,
            None => {
                self.apps.push(AppConf { spec, reload: None });
                self.apps.len() - 1
            }
        }
    }
}

/// `location {}` level (also `http {}` and `server {}` for inherited values).
pub struct LocConf {
    /// Index into [`MainConf::apps`] when `rust_wsgi` is set here.
    pub wsgi_app: Option<usize>,
    /// `rust_wsgi_read_timeout`.
    pub wsgi_read_timeout: ngx_msec_t,
    /// `rust_wsgi_errors_level`; None until set.
    pub wsgi_errors_level: Option<Level>,
    /// `rust_wsgi_reload`; None until set (then `script`).
    pub wsgi_reload: Option<Reload>,
}

impl LocConf {
    /// Like `uwsgi_read_timeout`: how long the app may stay silent.
    pub const DEFAULT_READ_TIMEOUT: ngx_msec_t = 60_000;

    /// mod_wsgi logs what apps write to wsgi.errors as errors too.
    pub const DEFAULT_ERRORS_LEVEL: Level = Level::Error;
}

impl Default for LocConf {
    fn default() -> Self {
        LocConf { wsgi_app: None, wsgi_read_timeout: UNSET_MSEC, wsgi_errors_level: None, wsgi_reload: None }
    }
}

impl Merge for LocConf {
    fn merge(&mut self, prev: &Self) -> Result<(), MergeConfigError> {
        // The app itself is not inherited: like fastcgi_pass, it belongs to
        // the location that names it.
        if self.wsgi_read_timeout == UNSET_MSEC {
            self.wsgi_read_timeout = if prev.wsgi_read_timeout == UNSET_MSEC {
                LocConf::DEFAULT_READ_TIMEOUT
            } else {
                prev.wsgi_read_timeout
            };
        }
        self.wsgi_errors_level = self
            .wsgi_errors_level
            .or(prev.wsgi_errors_level)
            .or(Some(LocConf::DEFAULT_ERRORS_LEVEL));
        if self.wsgi_reload.is_none() {
            self.wsgi_reload = prev.wsgi_reload.clone();
        }
        Ok(())
    }
}

/// The module's `merge_loc_conf`: inherits values, then records the reload
/// policy of the location's app. An app is imported once per worker, so
/// every location that serves it must agree on how it reloads.
///
/// # Safety
/// Only nginx calls it, with this module's location confs.
pub unsafe extern "C" fn merge_loc_conf(cf: *mut ngx_conf_t, prev: *mut c_void, conf: *mut c_void) -> *mut c_char {
    // SAFETY: nginx passes this module's location confs at two levels.
    let (cf_ref, prev, lcf) = unsafe { (&*cf, &*(prev as *const LocConf), &mut *(conf as *mut LocConf)) };
    if lcf.merge(prev).is_err() {
        return ngx::core::NGX_CONF_ERROR as ConfResult;
    }
    let Some(index) = lcf.wsgi_app else { return CONF_OK };
    let Some(mcf) = Module::main_conf_mut(cf_ref) else { return CONF_OK };
    let reload = lcf.wsgi_reload.clone().unwrap_or(Reload::Script);
    let app = &mut mcf.apps[index];
    match &app.reload {
        Some(agreed) if *agreed != reload => conf_error(
            cf,
            &format!(
                "\"{}\" is served by locations with different rust_wsgi_reload settings; an app is imported once per worker, so give them the same one",
                app.spec.path.display()
            ),
        ),
        _ => {
            app.reload = Some(reload);
            CONF_OK
        }
    }
}

// ---- directives ---------------------------------------------------------------

static mut THREADS_BOUNDS: ngx_conf_num_bounds_t = ngx_conf_num_bounds_t {
    post_handler: Some(ngx_conf_check_num_bounds),
    low: 1,
    high: 1024,
};

const fn directive(
    name: ngx_str_t,
    type_: u32,
    set: unsafe extern "C" fn(*mut ngx_conf_t, *mut ngx_command_t, *mut c_void) -> *mut c_char,
    conf: usize,
    offset: usize,
    post: *mut c_void,
) -> ngx_command_t {
    ngx_command_t {
        name,
        type_: type_ as ngx_uint_t,
        set: Some(set),
        conf: conf as ngx_uint_t,
        offset: offset as ngx_uint_t,
        post,
    }
}

pub static mut COMMANDS: [ngx_command_t; 9] = [
    directive(
        ngx_string!("rust_wsgi"),
        NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
        rust_wsgi,
        NGX_HTTP_LOC_CONF_OFFSET,
        0,
        std::ptr::null_mut(),
    ),
    directive(
        ngx_string!("rust_wsgi_threads"),
        NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1,
        ngx_conf_set_num_slot,
        NGX_HTTP_MAIN_CONF_OFFSET,
        std::mem::offset_of!(MainConf, wsgi_threads),
        // nginx only reads the bounds through this pointer.
        addr_of_mut!(THREADS_BOUNDS) as *mut c_void,
    ),
    directive(
        ngx_string!("rust_wsgi_read_timeout"),
        NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
        ngx_conf_set_msec_slot,
        NGX_HTTP_LOC_CONF_OFFSET,
        std::mem::offset_of!(LocConf, wsgi_read_timeout),
        std::ptr::null_mut(),
    ),
    directive(
        ngx_string!("rust_wsgi_errors_level"),
        NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
        rust_wsgi_errors_level,
        NGX_HTTP_LOC_CONF_OFFSET,
        0,
        std::ptr::null_mut(),
    ),
    directive(
        ngx_string!("rust_wsgi_reload"),
        NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
        rust_wsgi_reload,
        NGX_HTTP_LOC_CONF_OFFSET,
        0,
        std::ptr::null_mut(),
    ),
    directive(
        ngx_string!("rust_python_home"),
        NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1,
        rust_python_home,
        NGX_HTTP_MAIN_CONF_OFFSET,
        0,
        std::ptr::null_mut(),
    ),
    directive(
        ngx_string!("rust_python_path"),
        NGX_HTTP_MAIN_CONF | NGX_CONF_1MORE,
        rust_python_path,
        NGX_HTTP_MAIN_CONF_OFFSET,
        0,
        std::ptr::null_mut(),
    ),
    directive(
        ngx_string!("rust_python_env"),
        NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE2,
        rust_python_env,
        NGX_HTTP_MAIN_CONF_OFFSET,
        0,
        std::ptr::null_mut(),
    ),
    ngx_command_t::empty(),
];

// ---- directive handlers ---------------------------------------------------------

/// `rust_wsgi /path/to/app.py[:callable];`
unsafe extern "C" fn rust_wsgi(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> ConfResult {
    // SAFETY: nginx passes the configuration being parsed and this module's
    // location conf (the command's `conf` offset).
    let (cf_ref, lcf) = unsafe { (&*cf, &mut *(conf as *mut LocConf)) };
    if lcf.wsgi_app.is_some() {
        return conf_error(cf, "\"rust_wsgi\" is duplicate; a location serves one app");
    }
    let arg = args(cf_ref)[1].as_bytes();
    let Ok(arg) = std::str::from_utf8(arg) else {
        return conf_error(cf, "\"rust_wsgi\": the app path must be valid UTF-8");
    };
    let mut spec = match AppSpec::parse(arg) {
        Ok(spec) => spec,
        Err(problem) => {
            return conf_error(
                cf,
                &format!("\"rust_wsgi {arg}\": {problem}; write rust_wsgi /path/to/app.py or /path/to/app.py:callable"),
            )
        }
    };
    spec.path = full_path(cf_ref, &spec.path);
    if let Err(problem) = check_app_file(&spec.path) {
        return conf_error(
            cf,
            &format!(
                "\"rust_wsgi\": app file \"{}\" {problem}; give the path of the Python file that defines the WSGI callable",
                spec.path.display()
            ),
        );
    }
    let Some(mcf) = Module::main_conf_mut(cf_ref) else {
        return conf_error(cf, "\"rust_wsgi\": no http configuration");
    };
    lcf.wsgi_app = Some(mcf.app_index(spec));
    let Some(clcf) = NgxHttpCoreModule::location_conf_mut(cf_ref) else {
        return conf_error(cf, "\"rust_wsgi\": no location configuration");
    };
    clcf.handler = Some(crate::wsgi::content_handler);
    CONF_OK
}

fn check_app_file(path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(_) => Err("is not a regular file".into()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err("does not exist".into()),
        Err(e) => Err(format!("cannot be read ({e})")),
    }
}

/// `rust_wsgi_errors_level level;`
unsafe extern "C" fn rust_wsgi_errors_level(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> ConfResult {
    // SAFETY: as in `rust_wsgi`.
    let (cf_ref, lcf) = unsafe { (&*cf, &mut *(conf as *mut LocConf)) };
    if lcf.wsgi_errors_level.is_some() {
        return conf_error(cf, "\"rust_wsgi_errors_level\" is duplicate");
    }
    let name = String::from_utf8_lossy(args(cf_ref)[1].as_bytes()).into_owned();
    match Level::from_name(&name) {
        Some(level) => {
            lcf.wsgi_errors_level = Some(level);
            CONF_OK
        }
        None => conf_error(
            cf,
            &format!(
                "\"rust_wsgi_errors_level {name}\": unknown level; use one of debug, info, notice, warn, error, crit, alert, emerg"
            ),
        ),
    }
}

/// `rust_wsgi_reload script | off | directory=path;`
unsafe extern "C" fn rust_wsgi_reload(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> ConfResult {
    // SAFETY: as in `rust_wsgi`.
    let (cf_ref, lcf) = unsafe { (&*cf, &mut *(conf as *mut LocConf)) };
    if lcf.wsgi_reload.is_some() {
        return conf_error(cf, "\"rust_wsgi_reload\" is duplicate");
    }
    let arg = String::from_utf8_lossy(args(cf_ref)[1].as_bytes()).into_owned();
    let reload = match arg.as_str() {
        "off" => Reload::Off,
        "script" => Reload::Script,
        _ => match arg.strip_prefix("directory=") {
            Some(dir) if !dir.is_empty() => {
                let dir = full_path(cf_ref, Path::new(dir));
                if !dir.is_dir() {
                    return conf_error(cf, &format!("\"rust_wsgi_reload\": \"{}\" is not a directory", dir.display()));
                }
                Reload::Directory(dir)
            }
            _ => {
                return conf_error(
                    cf,
                    &format!("\"rust_wsgi_reload {arg}\": use script, off or directory=/path/to/code"),
                )
            }
        },
    };
    lcf.wsgi_reload = Some(reload);
    CONF_OK
}

/// `rust_python_home /path/to/venv;`
unsafe extern "C" fn rust_python_home(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> ConfResult {
    // SAFETY: nginx passes the configuration being parsed and this module's
    // main conf (the command's `conf` offset).
    let (cf_ref, mcf) = unsafe { (&*cf, &mut *(conf as *mut MainConf)) };
    if mcf.python.home.is_some() {
        return conf_error(cf, "\"rust_python_home\" is duplicate");
    }
    let path = full_path(cf_ref, Path::new(&*String::from_utf8_lossy(args(cf_ref)[1].as_bytes())));
    match Home::inspect(&path) {
        Ok(home) => {
            mcf.python.home = Some(home);
            CONF_OK
        }
        Err(problem) => conf_error(cf, &format!("\"rust_python_home\": {problem}")),
    }
}

/// `rust_python_path dir ...;`
unsafe extern "C" fn rust_python_path(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> ConfResult {
    // SAFETY: as in `rust_python_home`.
    let (cf_ref, mcf) = unsafe { (&*cf, &mut *(conf as *mut MainConf)) };
    for arg in &args(cf_ref)[1..] {
        let dir = full_path(cf_ref, Path::new(&*String::from_utf8_lossy(arg.as_bytes())));
        if !dir.is_dir() {
            return conf_error(
                cf,
                &format!("\"rust_python_path\": \"{}\" is not a directory; give directories to put on sys.path", dir.display()),
            );
        }
        mcf.python.path.push(dir);
    }
    CONF_OK
}

/// `rust_python_env NAME value;`
unsafe extern "C" fn rust_python_env(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> ConfResult {
    // SAFETY: as in `rust_python_home`.
    let (cf_ref, mcf) = unsafe { (&*cf, &mut *(conf as *mut MainConf)) };
    let name = String::from_utf8_lossy(args(cf_ref)[1].as_bytes()).into_owned();
    let value = String::from_utf8_lossy(args(cf_ref)[2].as_bytes()).into_owned();
    if name.is_empty() || name.contains('=') {
        return conf_error(cf, &format!("\"rust_python_env\": \"{name}\" is not a valid environment variable name"));
    }
    mcf.python.env.retain(|(n, _)| *n != name);
    mcf.python.env.push((name, value));
    CONF_OK
}
