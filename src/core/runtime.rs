//! Per-worker-process state shared by all adapters: the bridge and the
//! eventfd nginx watches for it.
//!
//! Started in `init_process` (workers and single-process mode only) and
//! stopped in `exit_process`. It lives in a thread-local of the nginx thread;
//! other threads only ever hold the `Arc<Bridge>`.

use std::cell::RefCell;
use std::sync::Arc;

use nginx_sys::ngx_event_t;

use super::bridge::Bridge;
use super::{catch_panic, threaded};
use crate::nginx::event::ReadWatch;
use crate::nginx::log::Log;

struct Runtime {
    bridge: Arc<Bridge>,
    watch: ReadWatch,
}

thread_local! {
    static RUNTIME: RefCell<Option<Runtime>> = const { RefCell::new(None) };
}

pub fn start(log: Log) -> Result<(), String> {
    let (bridge, efd) = Bridge::new().map_err(|e| format!("eventfd() failed: {e}"))?;
    let watch = ReadWatch::register(efd, on_wakeup, log)?;
    RUNTIME.with(|rt| *rt.borrow_mut() = Some(Runtime { bridge, watch }));
    Ok(())
}

pub fn bridge() -> Option<Arc<Bridge>> {
    RUNTIME.with(|rt| rt.borrow().as_ref().map(|rt| Arc::clone(&rt.bridge)))
}

/// Closes the eventfd. Threads still running afterwards can publish, but
/// nothing wakes nginx any more.
pub fn stop() {
    let Some(rt) = RUNTIME.with(|rt| rt.borrow_mut().take()) else { return };
    let log = Log::cycle();
    for (level, message) in rt.bridge.drain().logs {
        log.write(level, &message);
    }
    let Runtime { bridge, watch } = rt;
    bridge.close_with(move || watch.close());
}

/// The eventfd's read handler.
unsafe extern "C" fn on_wakeup(_ev: *mut ngx_event_t) {
    let log = Log::cycle();
    catch_panic(log, "wakeup", || {
        let Some(bridge) = RUNTIME.with(|rt| {
            rt.borrow().as_ref().map(|rt| {
                rt.watch.rearm();
                Arc::clone(&rt.bridge)
            })
        }) else {
            return;
        };
        let drained = bridge.drain();
        for (level, message) in drained.logs {
            log.write(level, &message);
        }
        for exchange in drained.ready {
            threaded::resume(&exchange);
        }
    });
}
