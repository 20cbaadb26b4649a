//! Starting CPython inside an nginx worker or a pool process.
//!
//! A dedicated "keeper" thread initialises Python (without Python's signal
//! handlers, so nginx keeps its own) and then stays parked. That makes it
//! Python's main thread, and no app code ever runs on it: an app that calls
//! `signal.signal()` gets a ValueError instead of replacing nginx's SIGHUP or
//! SIGQUIT handler. The nginx thread itself never enters Python.
//!
//! This runs only in worker processes (or single-process mode), from
//! `init_process`, and in a pool process as it starts: never in the
//! master, the pool supervisor, under `nginx -t`, or before nginx forks.
//!
//! nginx clears the environment, so the locale is "C". Python runs in UTF-8
//! mode (PEP 540, what CPython itself does in a C locale) instead of with an
//! ASCII filesystem encoding, and without C-locale coercion, which would
//! call setenv() in a process that already has threads.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyList;

use super::config::{Home, PythonSettings, PYTHON_EXECUTABLE, PYTHON_VERSION};
use super::stdio::LogStream;
use crate::nginx::log::Level;
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
pub fn start(settings: PythonSettings, on_error: impl FnOnce(String) + Send + 'static) -> std::io::Result<Interpreter> {
    let (stop, stopped) = crossbeam_channel::bounded::<()>(1);
    let keeper = workers::spawn("rgw-python".into(), move || {
        // SAFETY: the first and only initialisation in this process, on
        // the thread that will stay Python's main thread.
        let outcome = unsafe { initialize(&settings) }
            .and_then(|()| Python::attach(|py| setup(py, &settings).map_err(|e| e.to_string())));
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

thread_local! {
    static HAS_THREAD_STATE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Gives the calling thread a Python thread state for good. Without it,
/// every `Python::attach` on a thread that has none creates one and the
/// release destroys it again, and with it the frame stack Python 3.11
/// maps per thread state: an mmap and munmap (and a TLB shootdown on the
/// other cores) per request. Call before attaching, on module threads.
pub fn keep_thread_state() {
    if HAS_THREAD_STATE.with(|h| h.replace(true)) {
        return;
    }
    // SAFETY: Python is initialised (callers waited for `wait_ready`). The
    // first PyGILState_Ensure creates this thread's state and takes the
    // GIL; PyEval_SaveThread releases the GIL but keeps the state, whose
    // counter stays at one, so later attach/release pairs reuse it. It is
    // never released: module threads live as long as the process.
    unsafe {
        ffi::PyGILState_Ensure();
        ffi::PyEval_SaveThread();
    }
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

/// Py_PreInitialize + Py_InitializeFromConfig, then releases the GIL.
unsafe fn initialize(settings: &PythonSettings) -> Result<(), String> {
    // SAFETY (whole function): the config structs are initialised by the
    // Init functions before use and cleared after; strings are copied by
    // PyConfig_SetBytesString.
    unsafe {
        let mut pre: ffi::PyPreConfig = std::mem::zeroed();
        ffi::PyPreConfig_InitPythonConfig(&mut pre);
        pre.parse_argv = 0;
        pre.utf8_mode = 1;
        pre.coerce_c_locale = 0;
        check("pre-initialisation", ffi::Py_PreInitialize(&pre))?;

        let mut config: ffi::PyConfig = std::mem::zeroed();
        ffi::PyConfig_InitPythonConfig(&mut config);
        config.install_signal_handlers = 0;
        config.parse_argv = 0;
        config.configure_c_stdio = 0;
        config.user_site_directory = 0;
        let executable = match &settings.home {
            Some(Home::Venv { executable, .. }) => executable.clone(),
            Some(Home::Prefix { root }) => {
                set_string(&mut config, std::ptr::addr_of_mut!(config.home), root)?;
                root.join(format!("bin/python{PYTHON_VERSION}"))
            }
            None => PathBuf::from(PYTHON_EXECUTABLE),
        };
        // Python finds its prefix (and a virtualenv's pyvenv.cfg) from here.
        set_string(&mut config, std::ptr::addr_of_mut!(config.program_name), &executable)?;
        set_string(&mut config, std::ptr::addr_of_mut!(config.executable), &executable)?;
        let status = ffi::Py_InitializeFromConfig(&config);
        ffi::PyConfig_Clear(&mut config);
        check("initialisation", status)?;
        ffi::PyEval_SaveThread();
    }
    Ok(())
}

unsafe fn set_string(config: *mut ffi::PyConfig, field: *mut *mut libc::wchar_t, value: &Path) -> Result<(), String> {
    let value = CString::new(value.as_os_str().as_bytes()).map_err(|_| "a path contains a NUL byte".to_string())?;
    // SAFETY: `field` points into `config`; Python copies the string.
    check("configuration", unsafe { ffi::PyConfig_SetBytesString(config, field, value.as_ptr()) })
}

fn check(stage: &str, status: ffi::PyStatus) -> Result<(), String> {
    // SAFETY: PyStatus_Exception only reads the struct; err_msg is NULL or
    // a static C string.
    unsafe {
        if ffi::PyStatus_Exception(status) == 0 {
            return Ok(());
        }
        let message = if status.err_msg.is_null() {
            "unknown error".into()
        } else {
            CStr::from_ptr(status.err_msg).to_string_lossy().into_owned()
        };
        Err(format!("Python {stage} failed: {message}"))
    }
}

fn setup(py: Python<'_>, settings: &PythonSettings) -> PyResult<()> {
    let sys = py.import("sys")?;
    // Many libraries read sys.argv[0]; an embedded interpreter has none.
    sys.setattr("argv", PyList::new(py, ["nginx"])?)?;
    // Binds threading.main_thread() to this thread, not to whichever app
    // thread happens to import threading first.
    py.import("threading")?;
    let sys_path = sys.getattr("path")?;
    for (i, dir) in settings.path.iter().enumerate() {
        sys_path.call_method1("insert", (i, dir.to_string_lossy()))?;
    }
    // print() and logging to stderr become nginx log lines, through real
    // text streams (see stdio.py).
    let code = std::ffi::CString::new(include_str!("stdio.py")).map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
    let stdio = PyModule::from_code(py, &code, c"rust_gateway/stdio.py", c"_rust_gateway_stdio")?;
    stdio.call_method1(
        "install",
        (Py::new(py, LogStream::for_threads(Level::Error))?, Py::new(py, LogStream::for_threads(Level::Error))?),
    )?;
    let environ = py.import("os")?.getattr("environ")?;
    for (name, value) in &settings.env {
        environ.set_item(name, value)?;
    }
    Ok(())
}
