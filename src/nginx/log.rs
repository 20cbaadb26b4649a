//! Writing to nginx's error log.
//!
//! Only the nginx thread writes to the log: worker threads send their lines
//! through their request's exchange or the bridge, so the
//! connection-specific log handlers (which read request data) never run
//! concurrently with nginx.

use std::ptr::NonNull;

use nginx_sys::{ngx_log_t, ngx_uint_t};

/// nginx's error log levels, most severe first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Emerg = 1,
    Alert = 2,
    Crit = 3,
    Error = 4,
    Warn = 5,
    Notice = 6,
    Info = 7,
    Debug = 8,
}

impl Level {
    /// Parses a level as the `error_log` directive spells it.
    pub fn from_name(name: &str) -> Option<Level> {
        Some(match name {
            "emerg" => Level::Emerg,
            "alert" => Level::Alert,
            "crit" => Level::Crit,
            "error" => Level::Error,
            "warn" => Level::Warn,
            "notice" => Level::Notice,
            "info" => Level::Info,
            "debug" => Level::Debug,
            _ => return None,
        })
    }
}

/// A log that is valid for as long as the object it came from (the cycle or
/// a connection).
#[derive(Clone, Copy)]
pub struct Log(NonNull<ngx_log_t>);

impl Log {
    /// # Safety
    /// `log` must stay valid while the returned value is used.
    pub unsafe fn from_raw(log: *mut ngx_log_t) -> Option<Log> {
        NonNull::new(log).map(Log)
    }

    /// The current cycle's log.
    pub fn cycle() -> Log {
        Log(ngx::log::ngx_cycle_log())
    }

    pub fn write(self, level: Level, message: &str) {
        let log = self.0.as_ptr();
        // SAFETY: the pointer is valid by construction; nginx's own
        // `ngx_log_error` macro does the same level check before the call.
        unsafe {
            if level as ngx_uint_t <= (*log).log_level {
                ngx::log::log_error(level as ngx_uint_t, log, 0, message.as_bytes());
            }
        }
    }
}

impl Log {
    pub(crate) fn as_ptr(self) -> *mut ngx_log_t {
        self.0.as_ptr()
    }
}
