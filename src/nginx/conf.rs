//! Helpers for directive handlers: arguments, errors that name the fix,
//! paths resolved the way nginx resolves `root`, nginx's unset values and
//! merges, and where a room finds its settings: through the command's
//! `offset` ([`field_of`]) or its place in the module's conf ([`Slot`],
//! [`LocSlot`], [`MainSlot`]), so no room needs the module's whole conf.
//!
//! Directive handlers also run under `nginx -t` and `nginx -s`, in the
//! master, so nothing here has side effects beyond the configuration.

use std::ffi::c_char;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::path::{Path, PathBuf};

use nginx_sys::{ngx_conf_t, ngx_flag_t, ngx_msec_t, ngx_str_t, NGX_LOG_EMERG};

use ngx::http::{HttpModuleConfExt, HttpModuleLocationConf, NgxHttpCoreModule};

use super::log::Level;
use super::request::{ComplexValue, HttpRequest};

/// What a directive handler returns to nginx.
pub type ConfResult = *mut c_char;

pub const CONF_OK: ConfResult = std::ptr::null_mut();

/// The field of a module's conf that a directive's `offset` points at, as
/// nginx's own `ngx_conf_set_*_slot` handlers find theirs: so a handler
/// needs to know its own settings only, not the module's whole conf.
///
/// # Safety
/// `conf` is the conf nginx passes a handler of `cmd`, and `cmd.offset` is
/// the offset of a `T` inside it.
pub unsafe fn field_of<'a, T>(conf: *mut std::ffi::c_void, cmd: *mut nginx_sys::ngx_command_t) -> &'a mut T {
    // SAFETY: see above.
    unsafe { &mut *(conf.cast::<u8>().add((*cmd).offset) as *mut T) }
}

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

/// Logs `message` at `emerg` and fails the configuration. nginx appends
/// " in FILE:LINE", so the user sees where, and the message says what to do.
pub fn conf_error(cf: *mut ngx_conf_t, message: &str) -> ConfResult {
    ngx::ngx_conf_log_error!(NGX_LOG_EMERG, cf, "{}", message);
    ngx::core::NGX_CONF_ERROR as ConfResult
}

/// Logs a configuration warning without failing.
pub fn conf_warn(cf: *mut ngx_conf_t, message: &str) {
    ngx::ngx_conf_log_error!(nginx_sys::NGX_LOG_WARN, cf, "{}", message);
}

/// Makes `handler` the content handler of the location being configured.
pub(crate) fn set_content_handler(cf: *mut ngx_conf_t, handler: nginx_sys::ngx_http_handler_pt) -> ConfResult {
    // SAFETY: called from a directive handler with its configuration.
    let Some(clcf) = NgxHttpCoreModule::location_conf_mut(unsafe { &*cf }) else {
        return conf_error(cf, "no location configuration");
    };
    clcf.handler = handler;
    CONF_OK
}

/// The directive's arguments, the directive's own name first.
pub fn args(cf: &ngx_conf_t) -> &[ngx_str_t] {
    // SAFETY: while a directive handler runs, `cf->args` is an array of
    // `ngx_str_t` owned by the configuration parser.
    unsafe { (*cf.args).as_slice() }
}

/// Resolves a relative path against nginx's prefix (`-p`), as nginx does for
/// `root` and `alias`.
pub fn full_path(cf: &ngx_conf_t, path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    // SAFETY: `cf->cycle` is the cycle being configured; its prefix is set
    // before any configuration is parsed.
    let prefix = unsafe { (*cf.cycle).prefix.as_bytes() };
    let prefix = Path::new(std::ffi::OsStr::new(
        std::str::from_utf8(prefix).unwrap_or("/"),
    ));
    prefix.join(path)
}

/// Compiles `value` (which may contain nginx variables) for evaluation per
/// request; the result lives in the configuration pool.
///
/// # Safety
/// `cf` must be the configuration being parsed (a directive handler's).
pub unsafe fn compile_complex_value(cf: *mut ngx_conf_t, value: &ngx_str_t) -> Option<ComplexValue> {
    // SAFETY: the structures are zeroed as nginx's own callers do, and
    // allocated from the configuration pool, which outlives every request.
    unsafe {
        let cv = nginx_sys::ngx_pcalloc((*cf).pool, std::mem::size_of::<nginx_sys::ngx_http_complex_value_t>())
            as *mut nginx_sys::ngx_http_complex_value_t;
        let copy = nginx_sys::ngx_pcalloc((*cf).pool, std::mem::size_of::<ngx_str_t>()) as *mut ngx_str_t;
        if cv.is_null() || copy.is_null() {
            return None;
        }
        *copy = *value;
        let mut ccv: nginx_sys::ngx_http_compile_complex_value_t = std::mem::zeroed();
        ccv.cf = cf;
        ccv.value = copy;
        ccv.complex_value = cv;
        (nginx_sys::ngx_http_compile_complex_value(&mut ccv) == nginx_sys::NGX_OK as isize).then_some(ComplexValue(cv))
    }
}

/// Parses a directive's level argument (`error`, `warn`, ...).
pub(crate) fn level_arg(cf: *mut ngx_conf_t, directive: &str) -> Result<Level, ConfResult> {
    // SAFETY: called from a directive handler with its configuration.
    let name = String::from_utf8_lossy(args(unsafe { &*cf })[1].as_bytes()).into_owned();
    Level::from_name(&name).ok_or_else(|| {
        conf_error(
            cf,
            &format!("\"{directive} {name}\": unknown level; use one of debug, info, notice, warn, error, crit, alert, emerg"),
        )
    })
}

/// Where one room's settings sit inside this module's conf structures.
/// `conf.rs`, which composes the structures, records each room's offset
/// once, before nginx reads the configuration (as nginx's modules put
/// `offsetof` in their command tables); the room then finds its settings
/// in a request's or a configuration's conf without knowing the whole
/// structure, so the rooms need not import the module above them.
pub struct Slot<T> {
    offset: AtomicUsize,
    _of: PhantomData<fn() -> T>,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Slot<T> {
    pub const fn new() -> Self {
        Slot { offset: AtomicUsize::new(usize::MAX), _of: PhantomData }
    }

    /// `offset` is that of a `T` in the conf structure the slot is read
    /// from (the location conf for [`LocSlot`], the main conf for
    /// [`MainSlot`]).
    pub fn set(&self, offset: usize) {
        self.offset.store(offset, Ordering::Relaxed);
    }

    fn at(&self, base: Option<NonNull<u8>>) -> Option<NonNull<T>> {
        let offset = self.offset.load(Ordering::Relaxed);
        if offset == usize::MAX {
            return None;
        }
        // SAFETY: `set` was given the offset of a T inside the structure
        // `base` points at (see the slot types).
        base.map(|b| unsafe { b.add(offset).cast() })
    }
}

/// A room's part of this module's location conf.
pub struct LocSlot<T>(pub Slot<T>);

impl<T> Default for LocSlot<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> LocSlot<T> {
    pub const fn new() -> Self {
        LocSlot(Slot::new())
    }

    /// The settings of the request's location.
    pub fn of(&self, r: HttpRequest) -> Option<&'static T> {
        let module = super::this_module()?;
        // SAFETY: a live request's loc_conf array has this module's slot,
        // a conf nginx keeps for the cycle; the offset is a T's in it.
        unsafe {
            let base = (*r.as_ptr()).http_location_conf_unchecked::<u8>(module);
            self.0.at(base).map(|p| p.as_ref())
        }
    }
}

/// A room's part of this module's main conf.
pub struct MainSlot<T>(pub Slot<T>);

impl<T> Default for MainSlot<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> MainSlot<T> {
    pub const fn new() -> Self {
        MainSlot(Slot::new())
    }

    /// During configuration (directive handlers, merges): the http block's
    /// settings, to record into.
    pub fn of_conf(&self, cf: &ngx_conf_t) -> Option<&'static mut T> {
        let module = super::this_module()?;
        // SAFETY: inside the http block cf->ctx has this module's main
        // conf, which lives as long as the cycle; the offset is a T's in it.
        unsafe {
            let base = cf.http_main_conf_unchecked::<u8>(module);
            self.0.at(base).map(|mut p| p.as_mut())
        }
    }

    /// After configuration: the cycle's settings.
    pub fn of_cycle(&self, cycle: &nginx_sys::ngx_cycle_t) -> Option<&'static T> {
        let module = super::this_module()?;
        // SAFETY: as in `of_conf`, for a cycle whose configuration is read.
        unsafe {
            let base = cycle.http_main_conf_unchecked::<u8>(module);
            self.0.at(base).map(|p| p.as_ref())
        }
    }
}
