//! `rust_wsgi*` settings and their directive handlers.

use std::ffi::c_void;
use std::path::Path;

use nginx_sys::{ngx_command_t, ngx_conf_check_num_bounds, ngx_conf_num_bounds_t, ngx_conf_t, ngx_int_t, ngx_msec_t};
use ngx::http::HttpModuleMainConf;

use crate::conf::{merge_msec, LocConf, UNSET_MSEC};
use crate::module::Module;
use crate::nginx::conf::{args, conf_error, full_path, level_arg, set_content_handler, ConfResult, CONF_OK};
use crate::nginx::log::Level;
use crate::pool::conf::PoolTarget;
use crate::python::apps::{AppSpec, Reload};

/// Per worker process.
pub struct WsgiMainConf {
    /// `rust_wsgi_threads`, NGX_CONF_UNSET until set.
    pub threads: ngx_int_t,
    /// `rust_wsgi_spin` in µs (nginx's time slots stop at milliseconds).
    pub spin_us: Option<u64>,
    /// Every app named by `rust_wsgi`, each once; locations refer to them by
    /// index, so a file used in several locations is imported once.
    pub apps: Vec<AppConf>,
}

impl Default for WsgiMainConf {
    fn default() -> Self {
        WsgiMainConf { threads: nginx_sys::NGX_CONF_UNSET as ngx_int_t, spin_us: None, apps: Vec::new() }
    }
}

/// An app and how it reloads, as the locations that serve it agree.
pub struct AppConf {
    pub spec: AppSpec,
    /// Set when the first location serving the app is merged.
    pub reload: Option<Reload>,
}

impl WsgiMainConf {
    /// Threads per nginx worker. The GIL lets one thread run Python at a
    /// time, so threads only help while others wait (database, network,
    /// sleep); eight covers that for typical apps without the memory and
    /// GIL churn of mod_wsgi's fifteen.
    pub const DEFAULT_THREADS: ngx_int_t = 8;

    pub fn threads(&self) -> usize {
        if self.threads == nginx_sys::NGX_CONF_UNSET as ngx_int_t {
            Self::DEFAULT_THREADS as usize
        } else {
            self.threads as usize
        }
    }

    /// A parked thread takes tens of µs to wake; a hello-world request at
    /// one connection takes about as long. 100 µs covers the gap between a
    /// response and the next request of the same client.
    pub const DEFAULT_SPIN_US: u64 = 100;

    pub fn spin_us(&self) -> u64 {
        self.spin_us.unwrap_or(Self::DEFAULT_SPIN_US)
    }

}

pub struct WsgiLocConf {
    /// Index into [`WsgiMainConf::apps`] when `rust_wsgi` is set here.
    pub app: Option<usize>,
    /// `rust_wsgi_read_timeout`.
    pub read_timeout: ngx_msec_t,
    /// `rust_wsgi_errors_level`; None until set.
    pub errors_level: Option<Level>,
    /// `rust_wsgi_reload`; None until set (then `script`).
    pub reload: Option<Reload>,
    /// `rust_wsgi ... pool=NAME` or `rust_wsgi_pool NAME`: served by a pool
    /// instead of embedded.
    pub pool: Option<PoolTarget>,
}

impl Default for WsgiLocConf {
    fn default() -> Self {
        WsgiLocConf { app: None, read_timeout: UNSET_MSEC, errors_level: None, reload: None, pool: None }
    }
}

impl WsgiLocConf {
    /// Like `uwsgi_read_timeout`: how long the app may stay silent.
    pub const DEFAULT_READ_TIMEOUT: ngx_msec_t = 60_000;

    /// mod_wsgi logs what apps write to wsgi.errors as errors too.
    pub const DEFAULT_ERRORS_LEVEL: Level = Level::Error;

    /// The app itself is not inherited: like fastcgi_pass, it belongs to the
    /// location that names it.
    pub fn merge(&mut self, prev: &Self) {
        merge_msec(&mut self.read_timeout, prev.read_timeout, Self::DEFAULT_READ_TIMEOUT);
        self.errors_level = self.errors_level.or(prev.errors_level).or(Some(Self::DEFAULT_ERRORS_LEVEL));
        if self.reload.is_none() {
            self.reload = prev.reload.clone();
        }
    }
}

/// After merging a location: record how its app reloads. An app is imported
/// once per worker, so every location that serves it must agree.
pub(crate) fn merged(cf: *mut ngx_conf_t, lcf: &mut LocConf) -> ConfResult {
    // SAFETY: nginx passes the configuration being parsed.
    let Some(mcf) = Module::main_conf_mut(unsafe { &*cf }) else { return CONF_OK };
    if let Some(target) = lcf.wsgi.pool.as_mut() {
        return match mcf.pool.resolve(target) {
            Ok(()) => CONF_OK,
            Err(problem) => conf_error(cf, &problem),
        };
    }
    let (apps, index, directive) = match (lcf.wsgi.app, lcf.asgi.app) {
        (Some(index), _) => (&mut mcf.wsgi.apps, index, "rust_wsgi_reload"),
        (None, Some(index)) => (&mut mcf.asgi.apps, index, "rust_asgi_reload"),
        (None, None) => return CONF_OK,
    };
    let reload = lcf.wsgi.reload.clone().unwrap_or(Reload::Script);
    let app = &mut apps[index];
    match &app.reload {
        Some(agreed) if *agreed != reload => conf_error(
            cf,
            &format!(
                "\"{}\" is served by locations with different {directive} settings; an app is imported once per worker, so give them the same one",
                app.spec.path.display()
            ),
        ),
        _ => {
            app.reload = Some(reload);
            CONF_OK
        }
    }
}

pub static mut THREADS_BOUNDS: ngx_conf_num_bounds_t =
    ngx_conf_num_bounds_t { post_handler: Some(ngx_conf_check_num_bounds), low: 1, high: 1024 };

/// The location's `rust_wsgi` settings, from a directive handler's `conf`.
///
/// # Safety
/// `conf` must be this module's location conf (the command's offset).
unsafe fn loc<'a>(conf: *mut c_void) -> &'a mut WsgiLocConf {
    // SAFETY: see above.
    unsafe { &mut (*(conf as *mut LocConf)).wsgi }
}

/// `rust_wsgi /path/to/app.py[:callable] [pool=NAME];`
pub(crate) unsafe extern "C" fn rust_wsgi(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> ConfResult {
    // SAFETY: nginx passes the configuration being parsed and this module's
    // location conf.
    let (cf_ref, lcf) = unsafe { (&*cf, &mut *(conf as *mut LocConf)) };
    let (spec, pool) = match app_directive(cf, lcf, "rust_wsgi", "WSGI") {
        Ok(parsed) => parsed,
        Err(e) => return e,
    };
    if let Some(name) = pool {
        lcf.wsgi.pool = Some(PoolTarget { name, app: Some(spec), ..Default::default() });
        return set_content_handler(cf, Some(crate::pool::client::content_handler));
    }
    let Some(mcf) = Module::main_conf_mut(cf_ref) else {
        return conf_error(cf, "\"rust_wsgi\": no http configuration");
    };
    lcf.wsgi.app = Some(app_index(&mut mcf.wsgi.apps, spec));
    set_content_handler(cf, Some(crate::wsgi::content_handler))
}

/// The arguments of `rust_wsgi` and `rust_asgi`: the app file (checked
/// now, so a typo fails `nginx -t`) and an optional `pool=NAME`.
pub(crate) fn app_directive(
    cf: *mut ngx_conf_t,
    lcf: &LocConf,
    directive: &str,
    interface: &str,
) -> Result<(AppSpec, Option<String>), ConfResult> {
    // SAFETY: directive handlers get the configuration being parsed.
    let cf_ref = unsafe { &*cf };
    match lcf.served_by() {
        Some(other) if other == directive => {
            return Err(conf_error(cf, &format!("\"{directive}\" is duplicate; a location serves one app")))
        }
        Some(other) => return Err(conf_error(cf, &format!("\"{directive}\" and \"{other}\" cannot serve the same location"))),
        None => {}
    }
    let arg = args(cf_ref)[1].as_bytes();
    let Ok(arg) = std::str::from_utf8(arg) else {
        return Err(conf_error(cf, &format!("\"{directive}\": the app path must be valid UTF-8")));
    };
    let mut spec = AppSpec::parse(arg).map_err(|problem| {
        conf_error(
            cf,
            &format!("\"{directive} {arg}\": {problem}; write {directive} /path/to/app.py or /path/to/app.py:callable"),
        )
    })?;
    spec.path = full_path(cf_ref, &spec.path);
    if let Err(problem) = check_app_file(&spec.path) {
        return Err(conf_error(
            cf,
            &format!(
                "\"{directive}\": app file \"{}\" {problem}; give the path of the Python file that defines the {interface} callable",
                spec.path.display()
            ),
        ));
    }
    let Some(option) = args(cf_ref).get(2) else { return Ok((spec, None)) };
    let option = String::from_utf8_lossy(option.as_bytes()).into_owned();
    match option.strip_prefix("pool=").filter(|n| !n.is_empty()) {
        Some(name) => Ok((spec, Some(name.to_owned()))),
        None => Err(conf_error(cf, &format!("\"{directive}\": unknown option \"{option}\"; the only option is pool=NAME"))),
    }
}

/// The index of `spec` in `apps`, added if new: a file that several
/// locations serve is imported once.
pub(crate) fn app_index(apps: &mut Vec<AppConf>, spec: AppSpec) -> usize {
    match apps.iter().position(|a| a.spec == spec) {
        Some(i) => i,
        None => {
            apps.push(AppConf { spec, reload: None });
            apps.len() - 1
        }
    }
}

/// `rust_wsgi_pool NAME;`: the pool's own `app=`, served from the pool.
pub(crate) unsafe extern "C" fn rust_wsgi_pool(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> ConfResult {
    // SAFETY: as in `rust_wsgi`.
    let (cf_ref, lcf) = unsafe { (&*cf, &mut *(conf as *mut LocConf)) };
    match lcf.served_by() {
        Some("rust_wsgi") => return conf_error(cf, "\"rust_wsgi_pool\": this location already serves an app"),
        Some(other) => return conf_error(cf, &format!("\"rust_wsgi_pool\" and \"{other}\" cannot serve the same location")),
        None => {}
    }
    let name = String::from_utf8_lossy(args(cf_ref)[1].as_bytes()).into_owned();
    lcf.wsgi.pool = Some(PoolTarget { name, app: None, ..Default::default() });
    set_content_handler(cf, Some(crate::pool::client::content_handler))
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
pub(crate) unsafe extern "C" fn rust_wsgi_errors_level(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> ConfResult {
    // SAFETY: as in `rust_wsgi`.
    let lcf = unsafe { loc(conf) };
    if lcf.errors_level.is_some() {
        return conf_error(cf, "\"rust_wsgi_errors_level\" is duplicate");
    }
    match level_arg(cf, "rust_wsgi_errors_level") {
        Ok(level) => {
            lcf.errors_level = Some(level);
            CONF_OK
        }
        Err(e) => e,
    }
}

/// `rust_wsgi_reload script | off | directory=path;`
/// (also `rust_asgi_reload`: the same setting)
pub(crate) unsafe extern "C" fn rust_wsgi_reload(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> ConfResult {
    // SAFETY: as in `rust_wsgi`; `cmd` is the entry of our directive table.
    let (cf_ref, lcf, name) = unsafe { (&*cf, loc(conf), String::from_utf8_lossy((*cmd).name.as_bytes()).into_owned()) };
    if lcf.reload.is_some() {
        return conf_error(cf, &format!("\"{name}\" is duplicate"));
    }
    let arg = String::from_utf8_lossy(args(cf_ref)[1].as_bytes()).into_owned();
    let reload = match arg.as_str() {
        "off" => Reload::Off,
        "script" => Reload::Script,
        _ => match arg.strip_prefix("directory=") {
            Some(dir) if !dir.is_empty() => {
                let dir = full_path(cf_ref, Path::new(dir));
                if !dir.is_dir() {
                    return conf_error(cf, &format!("\"{name}\": \"{}\" is not a directory", dir.display()));
                }
                Reload::Directory(dir)
            }
            _ => return conf_error(cf, &format!("\"{name} {arg}\": use script, off or directory=/path/to/code")),
        },
    };
    lcf.reload = Some(reload);
    CONF_OK
}

/// `rust_wsgi_spin time;` (down to microseconds: 100us, 0 for never)
pub(crate) unsafe extern "C" fn rust_wsgi_spin(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> ConfResult {
    // SAFETY: nginx passes the configuration being parsed and this module's
    // main conf.
    let (cf_ref, mcf) = unsafe { (&*cf, &mut (*(conf as *mut crate::conf::MainConf)).wsgi) };
    if mcf.spin_us.is_some() {
        return conf_error(cf, "\"rust_wsgi_spin\" is duplicate");
    }
    let arg = String::from_utf8_lossy(args(cf_ref)[1].as_bytes()).into_owned();
    match parse_micros(&arg) {
        Some(us) if us <= 10_000 => {
            mcf.spin_us = Some(us);
            CONF_OK
        }
        _ => conf_error(cf, &format!("\"rust_wsgi_spin {arg}\": give a time of at most 10ms, such as 100us, or 0 to turn it off")),
    }
}

/// "100us", "1ms", "0" into microseconds.
fn parse_micros(text: &str) -> Option<u64> {
    let (number, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 1)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1000)
    } else {
        (text, if text == "0" { 1 } else { return None })
    };
    number.parse::<u64>().ok().map(|n| n * scale)
}

#[cfg(test)]
mod tests {
    use super::parse_micros;

    #[test]
    fn spin_times() {
        assert_eq!(parse_micros("100us"), Some(100));
        assert_eq!(parse_micros("2ms"), Some(2000));
        assert_eq!(parse_micros("0"), Some(0));
        assert_eq!(parse_micros("5"), None);
        assert_eq!(parse_micros("fast"), None);
    }
}
