//! What every Python app's location shares, whether `rust_wsgi` or
//! `rust_asgi` serves it, embedded or from a pool: the app file, how long
//! it may stay silent, where `wsgi.errors` goes, and how it reloads.
//!
//! The directive handlers here find their settings through the command's
//! `offset` (as nginx's own `ngx_conf_set_*_slot` handlers do), so they do
//! not need to know the module's whole location conf.

use std::ffi::c_void;
use std::path::Path;

use nginx_sys::{ngx_command_t, ngx_conf_t, ngx_msec_t};

use super::apps::{AppSpec, Reload};
use crate::nginx::conf::{args, conf_error, field_of, full_path, level_arg, merge_msec, ConfResult, LocSlot, CONF_OK, UNSET_MSEC};
use crate::nginx::log::Level;

/// An app and how it reloads, as the locations that serve it agree.
pub struct AppConf {
    pub spec: AppSpec,
    /// Set when the first location serving the app is merged.
    pub reload: Option<Reload>,
}

/// Where a request's location keeps them.
pub static LOC: LocSlot<AppLocConf> = LocSlot::new();

/// A location's Python-app settings (`LocConf.app`).
pub struct AppLocConf {
    /// `rust_wsgi_read_timeout` / `rust_asgi_read_timeout` /
    /// `rust_fastcgi_read_timeout`.
    pub read_timeout: ngx_msec_t,
    /// `rust_wsgi_errors_level`; None until set.
    pub errors_level: Option<Level>,
    /// `rust_wsgi_reload` / `rust_asgi_reload`; None until set (then
    /// `script`).
    pub reload: Option<Reload>,
}

impl Default for AppLocConf {
    fn default() -> Self {
        AppLocConf { read_timeout: UNSET_MSEC, errors_level: None, reload: None }
    }
}

impl AppLocConf {
    /// Like `uwsgi_read_timeout`: how long the app may stay silent.
    pub const DEFAULT_READ_TIMEOUT: ngx_msec_t = 60_000;

    /// mod_wsgi logs what apps write to wsgi.errors as errors too.
    pub const DEFAULT_ERRORS_LEVEL: Level = Level::Error;

    pub fn merge(&mut self, prev: &Self) {
        merge_msec(&mut self.read_timeout, prev.read_timeout, Self::DEFAULT_READ_TIMEOUT);
        self.errors_level = self.errors_level.or(prev.errors_level).or(Some(Self::DEFAULT_ERRORS_LEVEL));
        if self.reload.is_none() {
            self.reload = prev.reload.clone();
        }
    }

    pub fn errors_level(&self) -> Level {
        self.errors_level.unwrap_or(Self::DEFAULT_ERRORS_LEVEL)
    }
}

/// After merging a location that serves `app`: an app is imported once per
/// worker, so every location that serves it must agree on how it reloads.
pub fn agree_reload(cf: *mut ngx_conf_t, app: &mut AppConf, reload: Option<Reload>, directive: &str) -> ConfResult {
    let reload = reload.unwrap_or(Reload::Script);
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

/// The arguments of `rust_wsgi` and `rust_asgi`: the app file (checked
/// now, so a typo fails `nginx -t`) and an optional `pool=NAME`.
/// `served_by` is the directive that already serves the location, if any.
pub(crate) fn app_directive(
    cf: *mut ngx_conf_t,
    served_by: Option<&str>,
    directive: &str,
    interface: &str,
) -> Result<(AppSpec, Option<String>), ConfResult> {
    // SAFETY: directive handlers get the configuration being parsed.
    let cf_ref = unsafe { &*cf };
    match served_by {
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
pub fn app_index(apps: &mut Vec<AppConf>, spec: AppSpec) -> usize {
    match apps.iter().position(|a| a.spec == spec) {
        Some(i) => i,
        None => {
            apps.push(AppConf { spec, reload: None });
            apps.len() - 1
        }
    }
}

fn check_app_file(path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(_) => Err("is not a regular file".into()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err("does not exist".into()),
        Err(e) => Err(format!("cannot be read ({e})")),
    }
}

/// The directive's name, for messages.
///
/// # Safety
/// `cmd` is an entry of this module's directive table.
unsafe fn name_of(cmd: *mut ngx_command_t) -> String {
    // SAFETY: see above.
    String::from_utf8_lossy(unsafe { (*cmd).name.as_bytes() }).into_owned()
}

/// `rust_wsgi_errors_level level;`
pub(crate) unsafe extern "C" fn rust_wsgi_errors_level(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> ConfResult {
    // SAFETY: nginx passes our location conf and our command, whose offset
    // is that of the location's AppLocConf.
    let lcf = unsafe { field_of::<AppLocConf>(conf, cmd) };
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

/// `rust_wsgi_reload script | off | directory=path;` and `rust_asgi_reload`
/// (the same setting).
pub(crate) unsafe extern "C" fn rust_app_reload(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> ConfResult {
    // SAFETY: nginx passes the configuration being parsed, our location
    // conf and our command, whose offset is that of its AppLocConf.
    let (cf_ref, lcf, name) = unsafe { (&*cf, field_of::<AppLocConf>(conf, cmd), name_of(cmd)) };
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
