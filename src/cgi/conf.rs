//! `rust_cgi*` settings and their directive handlers.

use std::ffi::c_void;
use std::path::{Path, PathBuf};

use nginx_sys::{ngx_command_t, ngx_conf_t, ngx_flag_t, ngx_msec_t, ngx_parse_time, NGX_ERROR};

use crate::core::cgi_head::HEAD_LIMIT;
use crate::core::conf::{param_args, push_param, Param};
use crate::nginx::conf::{merge_flag, merge_msec, UNSET_FLAG, UNSET_MSEC, UNSET_SIZE};
use crate::nginx::conf::{args, conf_error, field_of, full_path, level_arg, set_content_handler, ConfResult, LocSlot, MainSlot, CONF_OK};
use crate::nginx::log::Level;

/// Per worker process.
#[derive(Default)]
pub struct CgiMainConf {
    /// Some location runs CGI programs.
    pub used: bool,
    /// `rust_cgi_pass_env`: variables passed on from nginx's environment.
    pub pass_env: Option<Vec<String>>,
}

impl CgiMainConf {
    pub fn pass_env(&self) -> Vec<String> {
        self.pass_env.clone().unwrap_or_else(|| vec!["PATH".to_string()])
    }
}

/// What a location runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `rust_cgi`: scripts under the location's root or alias.
    Directory,
    /// `rust_cgi_pass`: one program.
    Program(PathBuf),
}

pub struct CgiLocConf {
    pub target: Option<Target>,
    /// `rust_cgi_param`s; inherited only by levels that set none.
    pub params: Option<Vec<Param>>,
    pub param_drops: Option<Vec<String>>,
    pub interpreters: Option<Vec<(String, PathBuf)>>,
    pub pass_authorization: ngx_flag_t,
    pub allow_symlinks: ngx_flag_t,
    /// `rust_cgi_timeout`: silence, then total (0 = no limit).
    pub timeout: ngx_msec_t,
    pub total_timeout: ngx_msec_t,
    pub kill_grace: ngx_msec_t,
    pub stderr_level: Option<Level>,
    pub header_limit: usize,
}

impl Default for CgiLocConf {
    fn default() -> Self {
        CgiLocConf {
            target: None,
            params: None,
            param_drops: None,
            interpreters: None,
            pass_authorization: UNSET_FLAG,
            allow_symlinks: UNSET_FLAG,
            timeout: UNSET_MSEC,
            total_timeout: UNSET_MSEC,
            kill_grace: UNSET_MSEC,
            stderr_level: None,
            header_limit: UNSET_SIZE,
        }
    }
}

impl CgiLocConf {
    pub const DEFAULT_TIMEOUT: ngx_msec_t = 60_000;
    /// Apache's mod_cgid waits 3 s between SIGTERM and SIGKILL too.
    pub const DEFAULT_KILL_GRACE: ngx_msec_t = 3_000;

    pub fn merge(&mut self, prev: &Self) {
        if self.params.is_none() {
            self.params = prev.params.clone();
        }
        if self.param_drops.is_none() {
            self.param_drops = prev.param_drops.clone();
        }
        if self.interpreters.is_none() {
            self.interpreters = prev.interpreters.clone();
        }
        merge_flag(&mut self.pass_authorization, prev.pass_authorization, false);
        merge_flag(&mut self.allow_symlinks, prev.allow_symlinks, false);
        merge_msec(&mut self.timeout, prev.timeout, Self::DEFAULT_TIMEOUT);
        merge_msec(&mut self.total_timeout, prev.total_timeout, 0);
        merge_msec(&mut self.kill_grace, prev.kill_grace, Self::DEFAULT_KILL_GRACE);
        self.stderr_level = self.stderr_level.or(prev.stderr_level).or(Some(Level::Error));
        if self.header_limit == UNSET_SIZE {
            self.header_limit = if prev.header_limit == UNSET_SIZE { HEAD_LIMIT } else { prev.header_limit };
        }
    }
}

/// This room's settings, as a directive handler finds them.
pub static LOC: LocSlot<CgiLocConf> = LocSlot::new();
pub static MAIN: MainSlot<CgiMainConf> = MainSlot::new();

/// # Safety
/// `conf` and `cmd` are what nginx passes a handler of ours, with the
/// offset of the location's [`CgiLocConf`] in the command.
unsafe fn loc<'a>(conf: *mut c_void, cmd: *mut ngx_command_t) -> &'a mut CgiLocConf {
    // SAFETY: see above.
    unsafe { field_of::<CgiLocConf>(conf, cmd) }
}

fn arg_string(cf: &ngx_conf_t, i: usize) -> String {
    String::from_utf8_lossy(args(cf)[i].as_bytes()).into_owned()
}

/// Makes the location run CGI and records that workers start programs
/// (`conf.rs` checked that nothing else serves it).
fn set_target(cf: *mut ngx_conf_t, lcf: &mut CgiLocConf, target: Target, name: &str) -> ConfResult {
    // SAFETY: directive handlers get the configuration being parsed.
    let cf_ref = unsafe { &*cf };
    let Some(mcf) = MAIN.of_conf(cf_ref) else {
        return conf_error(cf, &format!("\"{name}\": no http configuration"));
    };
    mcf.used = true;
    lcf.target = Some(target);
    set_content_handler(cf, Some(super::content_handler))
}

/// `rust_cgi;`
pub(crate) unsafe extern "C" fn rust_cgi(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> ConfResult {
    // SAFETY: nginx passes this module's location conf and our command.
    set_target(cf, unsafe { loc(conf, cmd) }, Target::Directory, "rust_cgi")
}

/// `rust_cgi_pass /path/to/program;`
pub(crate) unsafe extern "C" fn rust_cgi_pass(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> ConfResult {
    // SAFETY: as in `rust_cgi`.
    let (cf_ref, lcf) = unsafe { (&*cf, loc(conf, cmd)) };
    let program = full_path(cf_ref, Path::new(&arg_string(cf_ref, 1)));
    if let Err(problem) = crate::os::check_executable(&program) {
        return conf_error(cf, &format!("\"rust_cgi_pass\": \"{}\" {problem}", program.display()));
    }
    set_target(cf, lcf, Target::Program(program), "rust_cgi_pass")
}

/// `rust_cgi_param NAME value [if_not_empty];`
pub(crate) unsafe extern "C" fn rust_cgi_param(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> ConfResult {
    // SAFETY: as in `rust_cgi`.
    let lcf = unsafe { loc(conf, cmd) };
    match param_args(cf) {
        Ok(param) => {
            push_param(&mut lcf.params, param);
            CONF_OK
        }
        Err(e) => e,
    }
}

/// `rust_cgi_param_drop NAME ...;`
pub(crate) unsafe extern "C" fn rust_cgi_param_drop(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> ConfResult {
    // SAFETY: as in `rust_cgi`.
    let (cf_ref, lcf) = unsafe { (&*cf, loc(conf, cmd)) };
    let drops = lcf.param_drops.get_or_insert_with(Vec::new);
    for i in 1..args(cf_ref).len() {
        drops.push(arg_string(cf_ref, i));
    }
    CONF_OK
}

/// `rust_cgi_interpreter .ext /path/to/interpreter;`
pub(crate) unsafe extern "C" fn rust_cgi_interpreter(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> ConfResult {
    // SAFETY: as in `rust_cgi`.
    let (cf_ref, lcf) = unsafe { (&*cf, loc(conf, cmd)) };
    let ext = arg_string(cf_ref, 1);
    if !ext.starts_with('.') || ext.len() < 2 || ext.contains('/') {
        return conf_error(cf, &format!("\"rust_cgi_interpreter\": \"{ext}\" is not a file extension; write it like .py"));
    }
    let interpreter = full_path(cf_ref, Path::new(&arg_string(cf_ref, 2)));
    if let Err(problem) = crate::os::check_executable(&interpreter) {
        return conf_error(cf, &format!("\"rust_cgi_interpreter\": \"{}\" {problem}", interpreter.display()));
    }
    let map = lcf.interpreters.get_or_insert_with(Vec::new);
    map.retain(|(e, _)| *e != ext);
    map.push((ext, interpreter));
    CONF_OK
}

/// `rust_cgi_timeout time [total];`
pub(crate) unsafe extern "C" fn rust_cgi_timeout(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> ConfResult {
    // SAFETY: as in `rust_cgi`.
    let (cf_ref, lcf) = unsafe { (&*cf, loc(conf, cmd)) };
    if lcf.timeout != UNSET_MSEC {
        return conf_error(cf, "\"rust_cgi_timeout\" is duplicate");
    }
    let mut times = Vec::new();
    for i in 1..args(cf_ref).len() {
        let mut value = args(cf_ref)[i];
        // SAFETY: ngx_parse_time only reads the string.
        let ms = unsafe { ngx_parse_time(&mut value, 0) };
        if ms == NGX_ERROR as isize {
            return conf_error(cf, &format!("\"rust_cgi_timeout\": \"{}\" is not a time (write 30s, 2m, ...)", arg_string(cf_ref, i)));
        }
        times.push(ms as ngx_msec_t);
    }
    lcf.timeout = times[0];
    lcf.total_timeout = times.get(1).copied().unwrap_or(0);
    CONF_OK
}

/// `rust_cgi_stderr_level level;`
pub(crate) unsafe extern "C" fn rust_cgi_stderr_level(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> ConfResult {
    // SAFETY: as in `rust_cgi`.
    let lcf = unsafe { loc(conf, cmd) };
    match level_arg(cf, "rust_cgi_stderr_level") {
        Ok(level) => {
            lcf.stderr_level = Some(level);
            CONF_OK
        }
        Err(e) => e,
    }
}

/// `rust_cgi_pass_env NAME ...;`
pub(crate) unsafe extern "C" fn rust_cgi_pass_env(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> ConfResult {
    // SAFETY: nginx passes this module's main conf and our command, whose
    // offset is that of its CgiMainConf.
    let (cf_ref, mcf) = unsafe { (&*cf, field_of::<CgiMainConf>(conf, cmd)) };
    let names = mcf.pass_env.get_or_insert_with(Vec::new);
    for i in 1..args(cf_ref).len() {
        names.push(arg_string(cf_ref, i));
    }
    CONF_OK
}
