//! A pool process: Python and the pool's apps, serving FastCGI on fd 0.
//!
//! Runs in a pool process.
//!
//! It is built like an nginx worker running `rust_wsgi` and `rust_asgi`,
//! from the same parts: the interpreter keeper thread, the same app hosts
//! ([`crate::wsgi::host`] with `threads=` threads, [`crate::asgi::host`]
//! when the pool has ASGI apps), and responses coming back through
//! exchanges and a bridge eventfd. The difference is the front: instead of
//! nginx's event loop, [`front`] reads requests from FastCGI connections
//! ([`request`]), submits them to the hosts ([`dispatch`]), writes the
//! responses back ([`reply`]) and watches for stuck requests
//! ([`watchdog`]).
//!
//! Every app is imported before the process says it is ready, so a broken
//! new version never takes requests: the supervisor keeps the old
//! processes serving and logs the traceback (from this process's stderr).

pub mod dispatch;
pub mod front;
pub mod reply;
pub mod request;
pub mod watchdog;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use pyo3::Python;

use crate::pool::conf::PoolSpec;
use crate::pool::log::say;
use crate::pool::supervisor::spawn::CONTROL_FD;
use crate::pool::slots;
use crate::core::bridge::Bridge;
use crate::nginx::log::Level;
use crate::python::apps::{App, AppSpec, Interface, LoadError, Logger, Reload};
use crate::python::{interpreter, stdio};
use crate::asgi::host as asgi;
use crate::wsgi::host as wsgi;

/// Exit code for "the app failed to import".
pub const EXIT_IMPORT_FAILED: i32 = 3;
/// Exit code for "Python did not start".
pub const EXIT_NO_PYTHON: i32 = 4;

/// How long threads still in app code get when the process stops.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);

/// Runs the pool process; returns its exit code.
pub fn main(spec: &PoolSpec, slot: usize, nginx_uid: u32) -> i32 {
    serve(spec, slot, nginx_uid).unwrap_or_else(|code| code)
}

/// Imports an app before the process says it is ready. New code comes as
/// new processes (the supervisor's rolling restart), never as a re-import
/// inside a serving one. An app that fails is kept, broken: its requests
/// answer 500 (its traceback is logged here, once), and the process may
/// still serve the pool's other apps. Returns whether it imported.
fn import(app: &AppSpec, interface: Interface, logger: &Logger, apps: &mut Vec<Arc<App>>) -> bool {
    let loaded = Arc::new(App::new(app.clone(), interface, Reload::Off, Arc::clone(logger)));
    let imported = Python::attach(|py| loaded.callable(py).map(drop));
    apps.push(loaded);
    if let Err(LoadError::Failed(lines)) = imported {
        lines.iter().for_each(|l| say(Level::Error, l));
        say(Level::Error, &format!("\"{}\" failed to import; its locations answer 500", app.path.display()));
        return false;
    }
    true
}

fn serve(spec: &PoolSpec, slot: usize, nginx_uid: u32) -> Result<i32, i32> {
    let Some(table) = slots::table() else { return Err(1) };
    // A process an app forks keeps neither the listening socket nor the
    // control pipe (nor, see the front, nginx's connections).
    crate::os::watch_forks(crate::os::close_marked_fds);
    crate::os::close_in_forks(crate::pool::supervisor::spawn::LISTEN_FD, true);
    crate::os::close_in_forks(crate::pool::supervisor::spawn::CONTROL_FD, true);
    let interpreter = match interpreter::start(spec.python.clone(), |message| say(Level::Alert, &message)) {
        Ok(interpreter) => interpreter,
        Err(e) => {
            say(Level::Alert, &format!("cannot start Python: {e}"));
            return Err(EXIT_NO_PYTHON);
        }
    };
    if !interpreter::wait_ready() {
        return Err(EXIT_NO_PYTHON);
    }
    let logger: Logger = Arc::new(|level, message: String| say(level, &message));
    stdio::set_worker_log(Arc::clone(&logger));

    let mut apps: HashMap<String, Arc<App>> = HashMap::new();
    let (mut imported, mut failed) = (0, 0);
    let mut count = |ok: bool| if ok { imported += 1 } else { failed += 1 };
    for app in &spec.apps {
        let mut one = Vec::new();
        count(import(app, Interface::Wsgi, &logger, &mut one));
        apps.extend(one.into_iter().map(|a| (PoolSpec::app_key(app), a)));
    }
    let mut asgi_apps = Vec::new();
    let mut asgi_keys = HashMap::new();
    for app in &spec.asgi_apps {
        asgi_keys.insert(PoolSpec::asgi_key(app), asgi_apps.len());
        count(import(app, Interface::Asgi, &logger, &mut asgi_apps));
    }
    if imported == 0 && failed > 0 {
        say(Level::Error, "no app of the pool imported; this process does not serve");
        return Err(EXIT_IMPORT_FAILED);
    }
    let default_app = spec.has_own_app.then(|| spec.apps.first().map(PoolSpec::app_key)).flatten();

    let (bridge, efd) = match Bridge::new() {
        Ok(pair) => pair,
        Err(e) => {
            say(Level::Alert, &format!("eventfd() failed: {e}"));
            return Err(1);
        }
    };
    // The same hosts as an nginx worker's: ASGI apps on an event loop
    // thread (their lifespan startup before their first request), WSGI
    // apps on threads.
    let alert = |e: String| {
        say(Level::Alert, &e);
        1
    };
    let asgi = if asgi_apps.is_empty() { None } else { Some(asgi::Host::start(asgi_apps, Arc::clone(&logger)).map_err(alert)?) };
    let wsgi = wsgi::Host::start("rgw-pool", spec.threads as usize, Duration::from_micros(spec.spin_us)).map_err(alert)?;
    let signals = match front::termination_signals() {
        Ok(fd) => fd,
        Err(e) => {
            say(Level::Alert, &format!("signalfd() failed: {e}"));
            return Err(1);
        }
    };
    // Ready ("P": with some apps broken, which the supervisor takes only
    // when no older process of the pool serves them): the supervisor lets
    // nginx send requests from now on.
    let ready: &[u8] = if failed > 0 { b"P" } else { b"R" };
    let _ = crate::os::write(CONTROL_FD, ready);

    let front = front::Front::new(front::Setup {
        table,
        slot,
        bridge: Arc::clone(&bridge),
        efd,
        signals,
        apps: dispatch::Apps {
            wsgi: apps,
            default_app,
            wsgi_host: &wsgi,
            asgi: asgi.as_ref().map(|host| dispatch::AsgiApps { keys: asgi_keys, host }),
            queue_timeout_us: spec.queue_timeout_ms * 1000,
        },
        timeout_ms: spec.timeout_ms,
        nginx_uid,
    });
    front.run();
    wsgi.stop(SHUTDOWN_GRACE);
    if let Some(asgi) = asgi {
        asgi.stop();
    }
    interpreter.stop(SHUTDOWN_GRACE);
    Ok(0)
}
