//! A thin, safe layer over the raw nginx FFI that the module needs (the
//! engine, the rooms' directive handlers, ASGI's taken-over connections).
//!
//! Everything here runs on the nginx event-loop thread. Types wrap raw nginx
//! pointers whose lifetime nginx controls; the `// SAFETY:` notes say which
//! nginx invariant each `unsafe` block relies on.

pub mod conf;
pub mod event;
pub mod log;
pub mod output;
pub mod pool;
pub mod process;
pub mod request;
pub mod stat;
pub mod takeover;

use std::sync::atomic::{AtomicPtr, Ordering};

/// This module's `ngx_module_t`, as nginx knows it: the identity behind a
/// request's context slot and the tag of our buffers. `module.rs` hands it
/// down once, before nginx reads the configuration, so that the layers
/// below never name the module itself.
static THIS_MODULE: AtomicPtr<nginx_sys::ngx_module_t> = AtomicPtr::new(std::ptr::null_mut());

pub fn set_this_module(module: &'static nginx_sys::ngx_module_t) {
    THIS_MODULE.store(module as *const _ as *mut _, Ordering::Release);
}

/// None only before `set_this_module` (nothing serves a request then).
pub fn this_module() -> Option<&'static nginx_sys::ngx_module_t> {
    // SAFETY: null or the address of the module's static, which lives as
    // long as the process and whose fields nginx only writes while loading.
    unsafe { THIS_MODULE.load(Ordering::Acquire).as_ref() }
}

/// Why an nginx call failed, for the log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NgxError(pub &'static str);

impl std::fmt::Display for NgxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for NgxError {}

/// The failure of every pool allocation.
pub const NO_MEMORY: NgxError = NgxError("out of memory in an nginx pool");
