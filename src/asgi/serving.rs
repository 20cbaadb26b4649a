//! The loop thread: one asyncio event loop per process (an nginx worker,
//! or a pool process), which runs every ASGI app of the process.
//!
//! nginx's thread (in a pool process, its front) never touches it
//! directly. It pushes [`Inbound`] messages into an [`Inbox`] whose eventfd
//! the loop watches (`loop.add_reader`), so the loop sleeps in its own
//! epoll until there is work and nginx's thread never takes the GIL.
//! Responses go the other way through each request's exchange and the
//! bridge, like WSGI's.

use std::collections::HashMap;
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyModule};

use super::credit::{BodyFlow, Credit};
use super::io::HttpConn;
use super::types::{http_scope, websocket_scope};
use super::ws::WsConn;
use crate::core::capture::{Body, RequestHead};
use crate::core::exchange::ResponseSink;
use crate::core::inbox::Inbox;
use crate::nginx::log::Level;
use crate::python::apps::{App, LoadError, Logger};
use crate::python::interpreter;

/// What nginx's thread tells the loop.
pub enum Inbound {
    Http(Box<HttpStart>),
    /// The request's window has room again.
    Credit(u64),
    /// nginx is done with the request (complete, client gone, timeout).
    Gone(u64),
    /// More of an unbuffered request body; true with the last piece.
    Body(u64, Vec<u8>, bool),
    /// A WebSocket handshake for the app.
    WsStart(Box<WsStart>),
    /// Something for a WebSocket's receive().
    WsEvent(u64, WsEvent),
    /// Worker exit: lifespan shutdown, then stop the loop.
    Stop,
}

pub struct WsStart {
    pub id: u64,
    pub app: usize,
    pub head: RequestHead,
    pub sink: ResponseSink,
    pub credit: Credit,
}

pub enum WsEvent {
    /// As tungstenite decoded them: no copy until Python's.
    Text(tungstenite::Utf8Bytes),
    Bytes(bytes::Bytes),
    /// The close code and reason (ASGI spec 2.5).
    Disconnect(u16, String),
}

pub struct HttpStart {
    pub id: u64,
    pub app: usize,
    pub head: RequestHead,
    pub body: Body,
    pub sink: ResponseSink,
    pub credit: Credit,
    pub flow: BodyFlow,
}

/// How long worker exit lets lifespan shutdown handlers run.
pub const SHUTDOWN_TIMEOUT_S: f64 = 5.0;

/// Whether the loop runs; requests are refused once it has failed.
pub static FAILED: AtomicBool = AtomicBool::new(false);

/// The loop thread's body.
pub fn run(inbox: Arc<Inbox<Inbound>>, apps: Vec<Arc<App>>, logger: Logger) {
    if !interpreter::wait_ready() {
        FAILED.store(true, Ordering::SeqCst);
        return refuse_all(&inbox, "Python did not start in this worker (see the error log)");
    }
    interpreter::keep_thread_state();
    let outcome = Python::attach(|py| serve(py, Arc::clone(&inbox), apps, Arc::clone(&logger)).map_err(|e| {
        crate::python::errors::report(py, "rust_asgi: the event loop failed; traceback follows".into(), &e)
    }));
    if let Err(lines) = outcome {
        FAILED.store(true, Ordering::SeqCst);
        lines.into_iter().for_each(|line| logger(Level::Error, line));
        refuse_all(&inbox, "the event loop of this worker failed (see the error log)");
    }
}

fn serve(py: Python<'_>, inbox: Arc<Inbox<Inbound>>, apps: Vec<Arc<App>>, logger: Logger) -> PyResult<()> {
    let code = CString::new(include_str!("protocol.py")).map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
    let protocol = PyModule::from_code(py, &code, c"rust_asgi/protocol.py", c"_rust_asgi_protocol")?;
    let event_loop = protocol.call_method0("new_loop")?;
    py.import("asyncio")?.call_method1("set_event_loop", (&event_loop,))?;
    let log = Py::new(py, LogFn { logger: Arc::clone(&logger) })?;
    let serving = protocol.getattr("Serving")?.call1((&event_loop, log))?;
    let fd = inbox.fd();
    let server = Py::new(
        py,
        Server { inbox, apps, live: HashMap::new(), serving: serving.clone().unbind(), event_loop: event_loop.clone().unbind(), logger },
    )?;
    event_loop.call_method1("add_reader", (fd, server.getattr(py, "drain")?))?;
    server.bind(py).borrow().preload(py);
    if crate::core::metrics::mine().is_some() {
        // In nginx's workers (a pool process reports through its own
        // table); after the imports, which are not the loop's lag.
        serving.call_method1("start_ticks", (Py::new(py, TickFn)?, crate::core::metrics::TICK_S))?;
    }
    event_loop.call_method0("run_forever")?;
    event_loop.call_method0("close")?;
    Ok(())
}

/// After a failure: answer every request that still arrives, until exit.
fn refuse_all(inbox: &Inbox<Inbound>, why: &str) {
    loop {
        // Blocking here is this thread's job.
        let _ = crate::os::poll(&mut [libc::pollfd { fd: inbox.fd(), events: libc::POLLIN, revents: 0 }], -1);
        for item in inbox.take() {
            match item {
                Inbound::Http(start) => start.sink.fail(500, vec![format!("rust_asgi: {why}")]),
                Inbound::WsStart(start) => start.sink.fail(500, vec![format!("rust_asgi: {why}")]),
                Inbound::Stop => return,
                _ => {}
            }
        }
    }
}

/// `report(tasks, late_s)` from protocol.py's tick.
#[pyclass(module = "rust_asgi")]
struct TickFn;

#[pymethods]
impl TickFn {
    fn __call__(&self, tasks: usize, late_s: f64) {
        crate::core::metrics::loop_tick(tasks, late_s);
    }
}

#[pyclass(module = "rust_asgi")]
struct LogFn {
    logger: Logger,
}

#[pymethods]
impl LogFn {
    /// `log(level, message)` from protocol.py; a multi-line message (a
    /// traceback) becomes one log line per line.
    fn __call__(&self, level: &str, message: &str) {
        let level = Level::from_name(level).unwrap_or(Level::Error);
        for line in message.lines().filter(|l| !l.trim().is_empty()) {
            (self.logger)(level, line.to_owned());
        }
    }
}

#[pyclass(module = "rust_asgi")]
struct Server {
    inbox: Arc<Inbox<Inbound>>,
    apps: Vec<Arc<App>>,
    /// protocol.Http objects of requests nginx still serves, by exchange id.
    live: HashMap<u64, Py<PyAny>>,
    serving: Py<PyAny>,
    event_loop: Py<PyAny>,
    logger: Logger,
}

impl Server {
    /// Imports every app and runs its lifespan startup at worker start,
    /// so the first request pays for neither and a failure shows at once.
    fn preload(&self, py: Python<'_>) {
        for (index, app) in self.apps.iter().enumerate() {
            match app.callable(py) {
                Ok(callable) => {
                    if let Err(e) = self.serving.call_method1(py, "lifespan", (index, callable)) {
                        e.print(py);
                    }
                }
                // Logged as the worker's error; requests answer 500.
                Err(LoadError::Failed(lines)) => lines.into_iter().for_each(|line| (self.logger)(Level::Error, line)),
                Err(LoadError::StillBroken) => {}
            }
        }
    }

    /// The app's callable, or None after answering 500 (a failed import).
    fn callable<'py>(&self, py: Python<'py>, index: usize, sink: ResponseSink) -> Option<(Bound<'py, PyAny>, ResponseSink)> {
        let Some(app) = self.apps.get(index) else {
            sink.fail(500, vec!["rust_asgi: unknown app".into()]);
            return None;
        };
        match app.callable(py) {
            Ok(callable) => Some((callable, sink)),
            Err(LoadError::Failed(lines)) => {
                sink.fail(500, lines);
                None
            }
            Err(LoadError::StillBroken) => {
                sink.fail(
                    500,
                    vec![format!(
                        "rust_asgi: \"{}\" failed to load, and neither it nor a file in its traceback has changed since (the traceback was logged then)",
                        app.spec.path.display()
                    )],
                );
                None
            }
        }
    }

    fn app_name(&self, index: usize) -> String {
        self.apps.get(index).map(|a| a.spec.path.display().to_string()).unwrap_or_default()
    }

    fn start_http(&mut self, py: Python<'_>, start: HttpStart) -> PyResult<()> {
        let HttpStart { id, app: index, head, body, sink, credit, flow } = start;
        let Some((callable, mut sink)) = self.callable(py, index, sink) else { return Ok(()) };
        sink.started();
        let scope = http_scope(py, &head)?;
        let conn = Py::new(py, HttpConn::new(sink, body.reader(), credit, flow, self.app_name(index)))?;
        let http = self.serving.call_method1(py, "http", (index, callable, scope, conn))?;
        self.live.insert(id, http);
        Ok(())
    }

    fn start_websocket(&mut self, py: Python<'_>, start: WsStart) -> PyResult<()> {
        let WsStart { id, app: index, head, sink, credit } = start;
        let Some((callable, sink)) = self.callable(py, index, sink) else { return Ok(()) };
        let scope = websocket_scope(py, &head)?;
        let conn = Py::new(py, WsConn::new(sink, credit, self.app_name(index)))?;
        let ws = self.serving.call_method1(py, "websocket", (index, callable, scope, conn))?;
        self.live.insert(id, ws);
        Ok(())
    }

    fn websocket_event(&mut self, py: Python<'_>, id: u64, event: WsEvent) -> PyResult<()> {
        let Some(ws) = self.live.get(&id) else { return Ok(()) };
        let last = matches!(event, WsEvent::Disconnect(..));
        let message = PyDict::new(py);
        match event {
            WsEvent::Text(text) => {
                message.set_item("type", "websocket.receive")?;
                message.set_item("text", text.as_str())?;
            }
            WsEvent::Bytes(bytes) => {
                message.set_item("type", "websocket.receive")?;
                message.set_item("bytes", PyBytes::new(py, &bytes))?;
            }
            WsEvent::Disconnect(code, reason) => {
                message.set_item("type", "websocket.disconnect")?;
                message.set_item("code", code)?;
                message.set_item("reason", reason)?;
            }
        }
        ws.call_method1(py, "push", (message,))?;
        if last {
            self.live.remove(&id);
        }
        Ok(())
    }
}

#[pymethods]
impl Server {
    /// The inbox's reader callback: everything nginx's thread sent.
    fn drain(&mut self, py: Python<'_>) {
        // An app that forked: its child's loop must not serve.
        crate::os::exit_if_forked();
        for item in self.inbox.take() {
            let outcome = match item {
                Inbound::Http(start) => self.start_http(py, *start),
                Inbound::Credit(id) => match self.live.get(&id) {
                    Some(http) => http.call_method0(py, "credit").map(drop),
                    None => Ok(()),
                },
                Inbound::Body(id, chunk, last) => match self.live.get(&id) {
                    Some(http) => http.call_method1(py, "body", (PyBytes::new(py, &chunk), last)).map(drop),
                    None => Ok(()),
                },
                Inbound::Gone(id) => match self.live.remove(&id) {
                    Some(http) => http.call_method0(py, "disconnected").map(drop),
                    None => Ok(()),
                },
                Inbound::WsStart(start) => self.start_websocket(py, *start),
                Inbound::WsEvent(id, event) => self.websocket_event(py, id, event),
                Inbound::Stop => self.stop(py),
            };
            if let Err(e) = outcome {
                // A bug on our side, not the app's: keep the loop running.
                e.print(py);
            }
        }
    }
}

impl Server {
    /// Lifespan shutdown, then `loop.stop()` (protocol.py's `stop`).
    fn stop(&mut self, py: Python<'_>) -> PyResult<()> {
        let stopping = self.serving.call_method1(py, "stop", (SHUTDOWN_TIMEOUT_S,))?;
        self.event_loop.call_method1(py, "create_task", (stopping,))?;
        Ok(())
    }
}
