//! The embedded CPython interpreter and the apps it runs.
//!
//! - [`interpreter`]: starts Python in a worker or pool process, on a
//!   thread the module owns, never on nginx's event-loop thread.
//! - [`config`]: interpreter settings (`rust_python_*`) and their checks.
//! - [`apps`]: what `rust_wsgi`, `rust_asgi` and a pool name, and loading
//!   it once per process.
//! - [`app_conf`]: what every Python app's location shares (the app file,
//!   read timeout, errors level, reload), whichever interface serves it.
//! - [`errors`]: Python exceptions as log lines.
//! - [`lend`]: large response bytes go to nginx without a copy.
//! - [`stdio`]: `wsgi.errors`, `sys.stdout` and `sys.stderr` into nginx's
//!   error log.

pub mod app_conf;
pub mod apps;
pub mod config;
pub mod errors;
pub mod interpreter;
pub mod lend;
pub mod stdio;

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use self::apps::Logger;
use self::interpreter::Interpreter;
use crate::core::bridge::Bridge;
use crate::nginx::log::Level;

thread_local! {
    /// This worker's interpreter, shared by `rust_wsgi` and `rust_asgi`.
    static INTERPRETER: RefCell<Option<Interpreter>> = const { RefCell::new(None) };
}

/// How long worker exit waits for Python's own thread.
const STOP_GRACE: Duration = Duration::from_millis(200);

/// Starts Python in this worker, with print() and logging going to
/// nginx's error log.
pub fn start(settings: config::PythonSettings, bridge: &Arc<Bridge>) -> Result<(), String> {
    let on_error = {
        let bridge = Arc::clone(bridge);
        move |message| bridge.log(Level::Error, message)
    };
    let interpreter = interpreter::start(settings, on_error).map_err(|e| format!("cannot start the Python thread: {e}"))?;
    stdio::set_worker_log(worker_logger(bridge));
    INTERPRETER.with(|i| *i.borrow_mut() = Some(interpreter));
    Ok(())
}

/// The configured apps of one interface, not yet imported.
pub fn apps_of(confs: &[app_conf::AppConf], interface: apps::Interface, logger: &Logger) -> Vec<Arc<apps::App>> {
    confs
        .iter()
        .map(|app| {
            let reload = app.reload.clone().unwrap_or(apps::Reload::Script);
            Arc::new(apps::App::new(app.spec.clone(), interface, reload, Arc::clone(logger)))
        })
        .collect()
}

/// Log lines that belong to no request, into the worker's error log.
pub fn worker_logger(bridge: &Arc<Bridge>) -> Logger {
    let bridge = Arc::clone(bridge);
    Arc::new(move |level, message| bridge.log(level, message))
}

/// `rust_wsgi_reload directory=` / `rust_asgi_reload directory=`: one
/// inotify watch over every such directory of either interface.
pub fn watch_directories<'a>(apps: impl IntoIterator<Item = &'a app_conf::AppConf>, bridge: &Arc<Bridge>) {
    let watched: Vec<std::path::PathBuf> = apps
        .into_iter()
        .filter_map(|app| match &app.reload {
            Some(apps::Reload::Directory(dir)) => Some(dir.clone()),
            _ => None,
        })
        .collect();
    if watched.is_empty() {
        return;
    }
    if !crate::nginx::process::recycle_possible() {
        bridge.log(Level::Warn, "reload directory=... needs master_process on; not watching".into());
    } else if let Err(e) = crate::core::watch::start(&watched, crate::nginx::log::Log::cycle()) {
        bridge.log(Level::Error, format!("reload directory=: {e}"));
    }
}

/// Worker exit, after the interfaces stopped their threads.
pub fn stop() {
    if let Some(interpreter) = INTERPRETER.with(|i| i.borrow_mut().take()) {
        interpreter.stop(STOP_GRACE);
    }
}
