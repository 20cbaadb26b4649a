//! A pool process's watch over its own requests.
//!
//! Runs in a pool process, on its main thread (the front's).
//!
//! A request past the pool's timeout has been answered 504 by nginx, but
//! its thread is still in app code and cannot be stopped from outside:
//! the supervisor is told to replace the process, and every Python stack
//! goes to the log first, so the operator sees where it hung. The oldest
//! running request is published in the process's slot for the status
//! page.

use std::sync::atomic::Ordering;

use crate::nginx::log::Level;
use crate::pool::log::say;
use crate::pool::slots::{unix_ms, Slot};
use crate::pool::supervisor::spawn::CONTROL_FD;

/// A running request: when it started (unix ms, 0 before it starts) and
/// its URI.
pub type Running<'a> = (u64, &'a [u8]);

/// The first of `running` older than `timeout_ms`, if any.
pub fn stuck<'a>(mut running: impl Iterator<Item = Running<'a>>, timeout_ms: u64) -> Option<Running<'a>> {
    let now = unix_ms();
    running.find(|(started, _)| *started > 0 && now.saturating_sub(*started) > timeout_ms)
}

/// Logs the stuck request, asks the supervisor for a replacement and
/// dumps every thread's Python stack.
pub fn replace_me((started_ms, uri): Running, timeout_ms: u64) {
    say(
        Level::Error,
        &format!(
            "request \"{}\" has run for {} ms, past the pool's timeout of {} ms; this process will be replaced. Its Python threads:",
            String::from_utf8_lossy(uri),
            unix_ms().saturating_sub(started_ms),
            timeout_ms
        ),
    );
    let _ = crate::os::write(CONTROL_FD, b"T");
    // faulthandler writes straight to fd 2 (the supervisor's pipe),
    // from C, whatever state the stuck thread is in.
    pyo3::Python::attach(|py| {
        use pyo3::types::{PyAnyMethods, PyDictMethods};
        let _ = py.import("faulthandler").and_then(|f| {
            let kwargs = pyo3::types::PyDict::new(py);
            kwargs.set_item("file", 2)?;
            kwargs.set_item("all_threads", true)?;
            f.call_method("dump_traceback", (), Some(&kwargs))
        });
    });
}

/// Publishes the oldest of `running` in the slot, for the status report.
pub fn publish_oldest<'a>(slot: &Slot, running: impl Iterator<Item = Running<'a>>) {
    let oldest = running.min_by_key(|(started, _)| *started);
    slot.busy_since_ms.store(oldest.map_or(0, |(t, _)| t), Ordering::Relaxed);
    if let Some((_, uri)) = oldest {
        slot.set_uri(uri);
    }
}
