//! `rust_wsgi`'s own settings (its threads and their spin) and their
//! directive handlers; what it shares with `rust_asgi` is
//! [`crate::python::app_conf`]'s.

use std::ffi::c_void;

use nginx_sys::{ngx_command_t, ngx_conf_check_num_bounds, ngx_conf_num_bounds_t, ngx_conf_t, ngx_int_t};

use crate::nginx::conf::{args, conf_error, field_of, ConfResult, LocSlot, CONF_OK};
use crate::python::app_conf::AppConf;
#[cfg(doc)]
use crate::python::app_conf::AppLocConf;

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

/// Where a request's location keeps `rust_wsgi`'s settings.
pub static LOC: LocSlot<WsgiLocConf> = LocSlot::new();

#[derive(Default)]
pub struct WsgiLocConf {
    /// Index into [`WsgiMainConf::apps`] when `rust_wsgi` serves the
    /// location embedded (its other settings are [`AppLocConf`]'s).
    pub app: Option<usize>,
}

pub static mut THREADS_BOUNDS: ngx_conf_num_bounds_t =
    ngx_conf_num_bounds_t { post_handler: Some(ngx_conf_check_num_bounds), low: 1, high: 1024 };

/// `rust_wsgi_spin time;` (down to microseconds: 100us, 0 for never)
pub(crate) unsafe extern "C" fn rust_wsgi_spin(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> ConfResult {
    // SAFETY: nginx passes the configuration being parsed, this module's
    // main conf and the command, whose offset is the WSGI main conf's.
    let (cf_ref, mcf) = unsafe { (&*cf, field_of::<WsgiMainConf>(conf, cmd)) };
    if mcf.spin_us.is_some() {
        return conf_error(cf, "\"rust_wsgi_spin\" is duplicate");
    }
    let arg = String::from_utf8_lossy(args(cf_ref)[1].as_bytes()).into_owned();
    match parse_spin(&arg) {
        Some(us) => {
            mcf.spin_us = Some(us);
            CONF_OK
        }
        None => conf_error(cf, &format!("\"rust_wsgi_spin {arg}\": give a time of at most 10ms, such as 100us, or 0 to turn it off")),
    }
}

/// A spin time (`rust_wsgi_spin`, `rust_pool ... spin=`) in microseconds:
/// "100us", "1ms" or "0", at most 10ms.
pub(crate) fn parse_spin(text: &str) -> Option<u64> {
    parse_micros(text).filter(|&us| us <= 10_000)
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
