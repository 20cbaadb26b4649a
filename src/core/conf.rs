//! Settings every `rust_*` location shares, the way every nginx upstream
//! module shares `*_hide_header`, `*_pass_header`, `*_ignore_headers` and
//! `*_param`: `rust_hide_header`, `rust_pass_header`, `rust_ignore_headers`
//! and `rust_param`.
//!
//! The directive handlers find their structure through the command's
//! `offset` into the location conf, as nginx's own slot functions do, so
//! this file knows nothing of the module's conf layout.

use std::ffi::c_void;

use nginx_sys::{ngx_command_t, ngx_conf_t};

use crate::nginx::conf::{args, compile_complex_value, conf_error, ConfResult, LocSlot, CONF_OK};
use crate::nginx::request::{ComplexValue, HttpRequest};

/// `rust_ignore_headers` flags (nginx's `NGX_HTTP_UPSTREAM_IGN_*`).
pub mod ignore {
    pub const XA_REDIRECT: u32 = 1 << 0;
    pub const XA_EXPIRES: u32 = 1 << 1;
    pub const XA_LIMIT_RATE: u32 = 1 << 2;
    pub const XA_BUFFERING: u32 = 1 << 3;
    pub const XA_CHARSET: u32 = 1 << 4;
    /// Only meaningful to a cache, which this module does not have; taken
    /// so that a config written for `*_ignore_headers` reads the same.
    pub const EXPIRES: u32 = 1 << 5;
    pub const CACHE_CONTROL: u32 = 1 << 6;
    pub const SET_COOKIE: u32 = 1 << 7;
    pub const VARY: u32 = 1 << 8;

    pub const NAMES: &[(&str, u32)] = &[
        ("X-Accel-Redirect", XA_REDIRECT),
        ("X-Accel-Expires", XA_EXPIRES),
        ("X-Accel-Limit-Rate", XA_LIMIT_RATE),
        ("X-Accel-Buffering", XA_BUFFERING),
        ("X-Accel-Charset", XA_CHARSET),
        ("Expires", EXPIRES),
        ("Cache-Control", CACHE_CONTROL),
        ("Set-Cookie", SET_COOKIE),
        ("Vary", VARY),
    ];
}

/// The headers no client sees unless `rust_pass_header` names them: the
/// instructions to nginx, as in `uwsgi_pass` and `fastcgi_pass`.
pub const HIDDEN_BY_DEFAULT: &[&str] =
    &["X-Accel-Expires", "X-Accel-Redirect", "X-Accel-Limit-Rate", "X-Accel-Buffering", "X-Accel-Charset"];

/// A `rust_param`: an environ entry from nginx variables.
#[derive(Clone)]
pub struct Param {
    pub name: Vec<u8>,
    pub value: ComplexValue,
    /// Left out when the value is empty (`if_not_empty`).
    pub if_not_empty: bool,
}

/// Every location's part, as the engine finds it.
pub static UPSTREAM: LocSlot<UpstreamConf> = LocSlot::new();

#[derive(Default)]
pub struct UpstreamConf {
    /// `rust_hide_header` names, lowercased; None until set here.
    hide: Option<Vec<Vec<u8>>>,
    /// `rust_pass_header` names, lowercased.
    pass: Option<Vec<Vec<u8>>>,
    /// `rust_ignore_headers`, as `ignore` flags.
    ignore: Option<u32>,
    /// After the merge: what this location hides, lowercased.
    hidden: Vec<Vec<u8>>,
    /// `rust_param`s; inherited only by levels that set none (like
    /// `uwsgi_param`).
    params: Option<Vec<Param>>,
}

impl UpstreamConf {
    /// Inherits each setting the level does not set, as nginx's upstream
    /// modules do, then works out what is hidden.
    pub fn merge(&mut self, prev: &UpstreamConf) {
        if self.hide.is_none() {
            self.hide = prev.hide.clone();
        }
        if self.pass.is_none() {
            self.pass = prev.pass.clone();
        }
        if self.ignore.is_none() {
            self.ignore = prev.ignore;
        }
        if self.params.is_none() {
            self.params = prev.params.clone();
        }
        let passed = self.pass.as_deref().unwrap_or_default();
        self.hidden = HIDDEN_BY_DEFAULT
            .iter()
            .map(|name| name.to_ascii_lowercase().into_bytes())
            .chain(self.hide.iter().flatten().cloned())
            .filter(|name| !passed.contains(name))
            .collect();
        self.hidden.dedup();
    }

    pub fn ignored(&self, flag: u32) -> bool {
        self.ignore.unwrap_or(0) & flag != 0
    }

    /// Whether the client must not see the app's header `name`.
    pub fn hides(&self, name: &[u8]) -> bool {
        self.hidden.iter().any(|h| h.len() == name.len() && h.eq_ignore_ascii_case(name))
    }

    /// The `rust_param`s, evaluated for `r` (on nginx's thread), in order;
    /// an `if_not_empty` one with an empty value is left out.
    pub fn params(&self, r: HttpRequest) -> Vec<(Vec<u8>, Vec<u8>)> {
        evaluate(self.params.as_deref().unwrap_or_default(), r)
    }
}

/// `params` evaluated for `r` (on nginx's thread), in order; an
/// `if_not_empty` one with an empty value is left out.
pub fn evaluate(params: &[Param], r: HttpRequest) -> Vec<(Vec<u8>, Vec<u8>)> {
    params
        .iter()
        .filter_map(|p| {
            let value = r.complex_value(&p.value).unwrap_or_default();
            (!(p.if_not_empty && value.is_empty())).then(|| (p.name.clone(), value))
        })
        .collect()
}

/// The directive's structure, from the command's offset.
///
/// # Safety
/// `conf` must be this module's location conf and `cmd` an entry of its
/// directive table whose offset points at an [`UpstreamConf`].
unsafe fn this<'a>(conf: *mut c_void, cmd: *mut ngx_command_t) -> &'a mut UpstreamConf {
    // SAFETY: see above.
    unsafe { &mut *((conf as *mut u8).add((*cmd).offset) as *mut UpstreamConf) }
}

fn arg(cf: *mut ngx_conf_t, i: usize) -> Vec<u8> {
    // SAFETY: directive handlers get the configuration being parsed.
    args(unsafe { &*cf })[i].as_bytes().to_vec()
}

fn directive_name(cf: *mut ngx_conf_t) -> String {
    String::from_utf8_lossy(&arg(cf, 0)).into_owned()
}

/// A header name as an HTTP token (what a response header can be called).
fn header_name(cf: *mut ngx_conf_t) -> Result<Vec<u8>, ConfResult> {
    let name = arg(cf, 1);
    let token = !name.is_empty()
        && name.iter().all(|&c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c));
    if !token {
        return Err(conf_error(
            cf,
            &format!("\"{}\": \"{}\" is not a header name", directive_name(cf), String::from_utf8_lossy(&name)),
        ));
    }
    Ok(name.to_ascii_lowercase())
}

/// `rust_hide_header name;` and `rust_pass_header name;` (each may
/// repeat).
pub(crate) unsafe extern "C" fn rust_hide_or_pass_header(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> ConfResult {
    // SAFETY: the table gives this handler the offset of an UpstreamConf.
    let ucf = unsafe { this(conf, cmd) };
    let list = if directive_name(cf) == "rust_pass_header" { &mut ucf.pass } else { &mut ucf.hide };
    match header_name(cf) {
        Ok(name) => {
            list.get_or_insert_with(Vec::new).push(name);
            CONF_OK
        }
        Err(e) => e,
    }
}

/// `rust_ignore_headers field ...;`
pub(crate) unsafe extern "C" fn rust_ignore_headers(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> ConfResult {
    // SAFETY: as above.
    let ucf = unsafe { this(conf, cmd) };
    if ucf.ignore.is_some() {
        return conf_error(cf, "\"rust_ignore_headers\" is duplicate");
    }
    let mut flags = 0;
    // SAFETY: directive handlers get the configuration being parsed.
    let count = args(unsafe { &*cf }).len();
    for i in 1..count {
        let name = arg(cf, i);
        match ignore::NAMES.iter().find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(&name)) {
            Some((_, flag)) => flags |= flag,
            None => {
                let known: Vec<&str> = ignore::NAMES.iter().map(|(n, _)| *n).collect();
                return conf_error(
                    cf,
                    &format!(
                        "\"rust_ignore_headers\": unknown header \"{}\"; use any of {}",
                        String::from_utf8_lossy(&name),
                        known.join(", ")
                    ),
                );
            }
        }
    }
    ucf.ignore = Some(flags);
    CONF_OK
}

/// The arguments of `rust_param` and `rust_cgi_param`: `NAME value
/// [if_not_empty]`, the value compiled for nginx variables.
pub(crate) fn param_args(cf: *mut ngx_conf_t) -> Result<Param, ConfResult> {
    let directive = directive_name(cf);
    let name = arg(cf, 1);
    if name.is_empty() || name.contains(&b'=') || name.iter().any(|c| c.is_ascii_control() || *c == b' ') {
        return Err(conf_error(
            cf,
            &format!("\"{directive}\": \"{}\" is not a valid variable name", String::from_utf8_lossy(&name)),
        ));
    }
    // SAFETY: directive handlers get the configuration being parsed.
    let a = args(unsafe { &*cf });
    let if_not_empty = match a.get(3).map(|s| s.as_bytes()) {
        None => false,
        Some(b"if_not_empty") => true,
        Some(other) => {
            return Err(conf_error(
                cf,
                &format!("\"{directive}\": unknown flag \"{}\"; the only one is if_not_empty", String::from_utf8_lossy(other)),
            ))
        }
    };
    // SAFETY: `cf` is the configuration being parsed.
    let value = unsafe { compile_complex_value(cf, &a[2]) }.ok_or(ngx::core::NGX_CONF_ERROR as ConfResult)?;
    Ok(Param { name, value, if_not_empty })
}

/// Adds `param` to `params`, replacing one of the same name.
pub(crate) fn push_param(params: &mut Option<Vec<Param>>, param: Param) {
    let params = params.get_or_insert_with(Vec::new);
    params.retain(|p| p.name != param.name);
    params.push(param);
}

/// `rust_param NAME value [if_not_empty];`
pub(crate) unsafe extern "C" fn rust_param(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> ConfResult {
    // SAFETY: as above.
    let ucf = unsafe { this(conf, cmd) };
    match param_args(cf) {
        Ok(param) => {
            push_param(&mut ucf.params, param);
            CONF_OK
        }
        Err(e) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Option<Vec<Vec<u8>>> {
        Some(list.iter().map(|n| n.to_ascii_lowercase().into_bytes()).collect())
    }

    #[test]
    fn x_accel_headers_are_hidden_by_default() {
        let mut conf = UpstreamConf::default();
        conf.merge(&UpstreamConf::default());
        assert!(conf.hides(b"X-Accel-Redirect"));
        assert!(conf.hides(b"x-accel-buffering"));
        assert!(!conf.hides(b"X-Accel"));
        assert!(!conf.hides(b"Server"));
    }

    #[test]
    fn hide_and_pass_change_the_defaults() {
        let mut conf = UpstreamConf { hide: names(&["X-Powered-By"]), pass: names(&["X-Accel-Buffering"]), ..Default::default() };
        conf.merge(&UpstreamConf::default());
        assert!(conf.hides(b"X-Powered-By"));
        assert!(!conf.hides(b"X-Accel-Buffering"));
        assert!(conf.hides(b"X-Accel-Redirect"));
    }

    #[test]
    fn each_setting_is_inherited_alone() {
        let mut parent = UpstreamConf { hide: names(&["X-A"]), ignore: Some(ignore::XA_REDIRECT), ..Default::default() };
        parent.merge(&UpstreamConf::default());
        let mut child = UpstreamConf { pass: names(&["X-Accel-Charset"]), ..Default::default() };
        child.merge(&parent);
        assert!(child.hides(b"x-a"));
        assert!(!child.hides(b"X-Accel-Charset"));
        assert!(child.ignored(ignore::XA_REDIRECT));
        assert!(!child.ignored(ignore::XA_BUFFERING));
    }
}
