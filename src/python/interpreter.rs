//! Starting CPython inside an nginx worker.
//!
//! A dedicated "keeper" thread calls `Py_InitializeEx(0)` (no Python signal
//! handlers, so nginx keeps its own) and then stays parked. That makes it
//! Python's main thread, and no app code ever runs on it: an app that calls
//! `signal.signal()` gets a ValueError instead of replacing nginx's SIGHUP or
//! SIGQUIT handler. The nginx thread itself never enters Python.
//!
//! This runs in `init_process`, so only in worker processes (or
//! single-process mode): never in the master, under `nginx -t`, or before
//! nginx forks.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::core::workers;

const STARTING: u8 = 0;
const READY: u8 = 1;
const FAILED: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(STARTING);
static CHANGED: (Mutex<()>, Condvar) = (Mutex::new(()), Condvar::new());

pub struct Interpreter {
    keeper: JoinHandle<()>,
    stop: crossbeam_channel::Sender<()>,
}

/// Starts the keeper thread; Python becomes usable shortly after (see
/// [`wait_ready`]). `on_error` receives a message if set-up fails.
pub fn start(on_error: impl FnOnce(String) + Send + 'static) -> std::io::Result<Interpreter> {
    let (stop, stopped) = crossbeam_channel::bounded::<()>(1);
    let keeper = workers::spawn("rgw-python".into(), move || {
        Python::initialize();
        let outcome = Python::attach(|py| setup(py).map_err(|e| e.to_string()));
        set_state(if outcome.is_ok() { READY } else { FAILED });
        if let Err(message) = outcome {
            on_error(format!("rust_wsgi: Python set-up failed: {message}"));
        }
        // Park until the worker exits; see the module comment.
        let _ = stopped.recv();
    })?;
    Ok(Interpreter { keeper, stop })
}

impl Interpreter {
    pub fn stop(self, grace: Duration) {
        let _ = self.stop.send(());
        workers::wait_all(vec![self.keeper], grace);
    }
}

fn set_state(state: u8) {
    let _guard = CHANGED.0.lock().unwrap_or_else(PoisonError::into_inner);
    STATE.store(state, Ordering::Release);
    CHANGED.1.notify_all();
}

/// Blocks until Python is initialised; false if set-up failed.
pub fn wait_ready() -> bool {
    let mut state = STATE.load(Ordering::Acquire);
    if state == STARTING {
        let mut guard = CHANGED.0.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            state = STATE.load(Ordering::Acquire);
            if state != STARTING {
                break;
            }
            guard = CHANGED.1.wait(guard).unwrap_or_else(PoisonError::into_inner);
        }
    }
    state == READY
}

fn setup(py: Python<'_>) -> PyResult<()> {
    let sys = py.import("sys")?;
    // Many libraries read sys.argv[0]; an embedded interpreter has none.
    sys.setattr("argv", PyList::new(py, ["nginx"])?)?;
    // Binds threading.main_thread() to this thread, not to whichever app
    // thread happens to import threading first.
    py.import("threading")?;
    Ok(())
}
