//! Python's text streams into nginx's error log.
//!
//! [`LogStream`] is a line-buffered text stream whose lines become nginx
//! log lines. `wsgi.errors` is one bound to its request. `sys.stdout` and
//! `sys.stderr` are ones that follow the thread: a line written while the
//! thread serves a request is logged in that request's context (with its
//! "client: ..., request: ..."), any other line in the worker's log. That
//! is where mod_wsgi sends them too; without it, print() and the default
//! logging of Django or Flask would write raw lines into error.log through
//! file descriptor 2.

use std::cell::RefCell;
use std::sync::{Arc, OnceLock};

use pyo3::prelude::*;

use crate::core::exchange::Exchange;
use crate::nginx::log::Level;
use crate::python::apps::Logger;

thread_local! {
    /// The request this thread is serving, for sys.stdout/sys.stderr.
    static SERVING: RefCell<Option<Arc<Exchange>>> = const { RefCell::new(None) };
}

/// Where lines go when no request is being served (set at worker start).
static WORKER_LOG: OnceLock<Logger> = OnceLock::new();

pub fn set_worker_log(log: Logger) {
    let _ = WORKER_LOG.set(log);
}

/// Marks the calling thread as serving `exchange` until the guard drops.
pub fn serving(exchange: Arc<Exchange>) -> ServingGuard {
    SERVING.with(|s| *s.borrow_mut() = Some(exchange));
    ServingGuard(())
}

pub struct ServingGuard(());

impl Drop for ServingGuard {
    fn drop(&mut self) {
        SERVING.with(|s| *s.borrow_mut() = None);
    }
}

enum Target {
    Request(Arc<Exchange>),
    Thread,
}

#[pyclass(module = "rust_wsgi")]
pub struct LogStream {
    target: Target,
    level: Level,
    partial: String,
}

impl LogStream {
    /// A stream for one request (`wsgi.errors`).
    pub fn for_request(exchange: Arc<Exchange>, level: Level) -> LogStream {
        LogStream { target: Target::Request(exchange), level, partial: String::new() }
    }

    /// A stream that follows the writing thread (`sys.stdout`, `sys.stderr`).
    pub fn for_threads(level: Level) -> LogStream {
        LogStream { target: Target::Thread, level, partial: String::new() }
    }

    fn emit(&self, line: String) {
        match &self.target {
            Target::Request(exchange) => exchange.log(self.level, line),
            Target::Thread => match SERVING.with(|s| s.borrow().clone()) {
                Some(exchange) => exchange.log(self.level, line),
                None => {
                    if let Some(log) = WORKER_LOG.get() {
                        log(self.level, line);
                    }
                }
            },
        }
    }

    fn emit_lines(&mut self) {
        while let Some(end) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=end).collect();
            self.emit(line.trim_end_matches(['\r', '\n']).to_owned());
        }
    }
}

#[pymethods]
impl LogStream {
    fn write(&mut self, text: &str) -> usize {
        self.partial.push_str(text);
        self.emit_lines();
        text.chars().count()
    }

    fn writelines(&mut self, lines: &Bound<'_, PyAny>) -> PyResult<()> {
        for line in lines.try_iter()? {
            self.write(&line?.extract::<String>()?);
        }
        Ok(())
    }

    fn flush(&mut self) {
        if !self.partial.is_empty() {
            let rest = std::mem::take(&mut self.partial);
            self.emit(rest);
        }
    }

    fn isatty(&self) -> bool {
        false
    }

    fn writable(&self) -> bool {
        true
    }

    fn readable(&self) -> bool {
        false
    }

    #[getter]
    fn encoding(&self) -> &'static str {
        "utf-8"
    }
}

impl Drop for LogStream {
    fn drop(&mut self) {
        self.flush();
    }
}
