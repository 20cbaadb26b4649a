//! Running a WSGI app for one request, on one of the module's threads.

use std::fs::File;
use std::io::Seek;
use std::os::fd::BorrowedFd;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use pyo3::intern;

use super::callbacks::{body_bytes, send_body, Delivery, StartResponse};
use super::io::FileWrapper;
use super::types::environ;
use crate::core::bridge::Bridge;
use crate::core::capture::{Body, RequestHead};
use crate::core::exchange::ResponseSink;
use crate::core::jobs::JobQueue;
use crate::core::metrics;
use crate::nginx::log::Level;
use crate::python::apps::{App, LoadError};
use crate::python::{errors, interpreter, stdio};

/// What the nginx thread hands a Python thread. Requests are the common
/// case, so they travel unboxed (boxing would cost an allocation each).
#[allow(clippy::large_enum_variant)]
pub enum Job {
    /// Import `app` at worker start, so the first request does not pay for
    /// it and a broken app is reported at once.
    /// Imports the apps, one after the other on one thread: imports that
    /// run side by side can see each other's half-initialised modules.
    Preload(Vec<Arc<App>>, Arc<Bridge>),
    Request(Request),
}

pub struct Request {
    pub app: Arc<App>,
    pub head: RequestHead,
    pub body: Body,
    pub sink: ResponseSink,
    pub errors_level: Level,
    pub not_after: Option<NotAfter>,
}

/// When a request still waiting for a thread gets 503 instead of running
/// (a pool's `queue_timeout`), and the line that says why.
pub struct NotAfter {
    /// CLOCK_MONOTONIC µs.
    pub at_us: u64,
    pub why: &'static str,
}

/// How many queued jobs a thread takes while it holds the GIL, before it
/// lets other threads have it.
const BATCH: usize = 16;

/// A Python thread's life: wait for a job without the GIL, then run it, and
/// any jobs already queued, in one go. The queue hands a job to a sleeping
/// thread only when no thread is working (see [`JobQueue`]), so under load
/// one thread keeps the GIL and works through the queue instead of trading
/// the GIL with the others for every request.
pub fn run_thread(jobs: &JobQueue<Job>) {
    let mut taker = jobs.taker();
    while let Some(job) = jobs.next(&mut taker) {
        if !interpreter::wait_ready() {
            fail_unstarted(job);
            continue;
        }
        interpreter::keep_thread_state();
        Python::attach(|py| {
            let mut next = Some(job);
            let mut ran = 0;
            while let Some(job) = next.take() {
                // Counted busy until the job is over, and let go only once a
                // process the app forked has exited here: the child must
                // not give back its parent's count.
                let busy = matches!(job, Job::Request(_)).then(metrics::Held::busy_thread).flatten();
                // A panic in one job must not take the others with it; the
                // job's sink answers 500 from its Drop.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_job(py, job)));
                crate::os::exit_if_forked();
                drop(busy);
                ran += 1;
                if ran < BATCH {
                    next = jobs.try_next(&mut taker);
                }
            }
        });
    }
}

fn fail_unstarted(job: Job) {
    if let Job::Request(request) = job {
        let _busy = metrics::Held::busy_thread();
        request
            .sink
            .fail(500, vec!["rust_wsgi: Python failed to start in this worker (see the error logged at start-up)".into()]);
    }
}

fn run_job(py: Python<'_>, job: Job) {
    match job {
        Job::Preload(apps, bridge) => {
            for app in apps {
                if let Err(LoadError::Failed(lines)) = app.callable(py) {
                    lines.into_iter().for_each(|line| bridge.log(Level::Error, line));
                }
            }
        }
        Job::Request(request) => {
            if request.sink.is_abandoned() {
                // The client left while the request waited for a thread.
                return request.sink.cancel();
            }
            if let Some(NotAfter { at_us, why }) = request.not_after {
                if crate::os::monotonic_us() > at_us {
                    return request.sink.fail(503, vec![why.into()]);
                }
            }
            let Request { app, head, body, sink, errors_level, .. } = request;
            run(py, &app, &head, body, sink, errors_level);
        }
    }
}

fn run(py: Python<'_>, app: &App, head: &RequestHead, body: Body, mut sink: ResponseSink, errors_level: Level) {
    sink.started();
    let callable = match app.callable(py) {
        Ok(callable) => callable,
        Err(LoadError::Failed(lines)) => return sink.fail(500, lines),
        Err(LoadError::StillBroken) => {
            return sink.fail(500, vec![format!(
                "rust_wsgi: \"{}\" failed to load, and neither it nor a file in its traceback has changed since (the traceback was logged then)",
                app.spec.path.display()
            )])
        }
    };
    let exchange = Arc::clone(sink.exchange());
    let _serving = stdio::serving(Arc::clone(&exchange));
    let responder = match Py::new(py, StartResponse::new(sink)) {
        Ok(responder) => responder,
        // The sink went down with the value and answers 500 from its Drop.
        Err(_) => return,
    };
    let failed = |header: String, err: &PyErr| responder.borrow_mut(py).fail(errors::report(py, header, err));

    let env = match environ(py, head, body, &exchange, errors_level) {
        Ok(env) => env,
        Err(err) => return failed("rust_wsgi: cannot build the WSGI environ (traceback follows)".into(), &err),
    };
    let first = app.first_call(py);
    let called = callable.call1((env, responder.clone_ref(py)));
    drop(first);
    crate::os::exit_if_forked();
    let iterable = match called {
        Ok(iterable) => iterable,
        Err(err) => return failed(format!("rust_wsgi: the app \"{}\" raised an exception (traceback follows)", app.spec.path.display()), &err),
    };
    let streamed = stream(py, &iterable, &responder);
    // PEP 3333: close() is called whatever happened, exactly once. Plain
    // lists and tuples have none (looking it up would raise and format an
    // AttributeError per request).
    let plain = iterable.is_exact_instance_of::<PyList>() || iterable.is_exact_instance_of::<PyTuple>();
    let closed = match if plain { Ok(None) } else { iterable.getattr_opt(intern!(py, "close")) } {
        Ok(Some(close)) => close.call0().map(drop),
        Ok(None) => Ok(()),
        Err(err) => Err(err),
    };
    match (streamed, closed) {
        (Err(err), closed) => {
            if let Err(close_err) = closed {
                let lines = errors::report(py, "rust_wsgi: the iterable's close() raised too (traceback follows)".into(), &close_err);
                lines.into_iter().for_each(|l| exchange.log(Level::Error, l));
            }
            failed(format!("rust_wsgi: the app \"{}\" failed while producing its response (traceback follows)", app.spec.path.display()), &err)
        }
        (Ok(Delivery::Abandoned), Err(err)) | (Ok(Delivery::Sent), Err(err)) => {
            failed("rust_wsgi: the response iterable's close() raised an exception (traceback follows)".into(), &err)
        }
        (Ok(Delivery::Abandoned), Ok(())) => responder.borrow_mut(py).cancel(),
        (Ok(Delivery::Sent), Ok(())) => {
            let finished = responder.borrow_mut(py).finish();
            if let Err(message) = finished {
                responder.borrow_mut(py).fail(vec![format!("rust_wsgi: the app \"{}\": {message}", app.spec.path.display())]);
            }
        }
    }
}

/// Sends the iterable's chunks. Lists and tuples (`return [body]`) are
/// already complete, so they go out in one batch with a Content-Length;
/// anything else is streamed chunk by chunk.
fn stream(py: Python<'_>, iterable: &Bound<'_, PyAny>, responder: &Py<StartResponse>) -> PyResult<Delivery> {
    if let Ok(wrapper) = iterable.cast::<FileWrapper>() {
        if let Some(delivery) = send_file(py, wrapper, responder)? {
            return Ok(delivery);
        }
    }
    let items = if let Ok(list) = iterable.cast::<PyList>() {
        Some(list.iter().collect::<Vec<_>>())
    } else {
        iterable.cast::<PyTuple>().ok().map(|t| t.iter().collect::<Vec<_>>())
    };
    if let Some(items) = items {
        let mut total = 0u64;
        for item in &items {
            total += body_bytes(item)?.as_bytes().len() as u64;
        }
        responder.bind(py).try_borrow_mut()?.set_known_length(total);
        for item in &items {
            let bytes = body_bytes(item)?;
            if !bytes.as_bytes().is_empty() && send_body(py, responder, bytes, false)? == Delivery::Abandoned {
                return Ok(Delivery::Abandoned);
            }
        }
        return Ok(Delivery::Sent);
    }
    for item in iterable.try_iter()? {
        let item = item?;
        let bytes = body_bytes(&item)?;
        if !bytes.as_bytes().is_empty() && send_body(py, responder, bytes, true)? == Delivery::Abandoned {
            return Ok(Delivery::Abandoned);
        }
    }
    Ok(Delivery::Sent)
}

/// `wsgi.file_wrapper` around a real file: nginx sends it from the file
/// (with sendfile where it uses it) instead of Python copying it through.
/// Transmission starts at the file's current position (PEP 3333) and stops
/// at the app's Content-Length, if it set one. Returns None when the object
/// is not backed by a regular file, for the caller to iterate it instead.
fn send_file(py: Python<'_>, wrapper: &Bound<'_, FileWrapper>, responder: &Py<StartResponse>) -> PyResult<Option<Delivery>> {
    let filelike = wrapper.borrow().filelike.bind(py).clone();
    let Ok(fd) = filelike.call_method0("fileno").and_then(|n| n.extract::<i32>()) else {
        return Ok(None);
    };
    // SAFETY: the file object owns `fd` and keeps it open while we hold a
    // reference to it; we only duplicate it.
    let Ok(owned) = unsafe { BorrowedFd::borrow_raw(fd) }.try_clone_to_owned() else {
        return Ok(None);
    };
    let file = File::from(owned);
    let size = match file.metadata() {
        Ok(meta) if meta.is_file() => meta.len(),
        _ => return Ok(None),
    };
    // tell() knows what a buffered reader has already consumed; the fd's
    // own offset may be ahead of it.
    let start = match filelike.call_method0("tell").and_then(|p| p.extract::<u64>()) {
        Ok(position) => position,
        Err(_) => (&file).stream_position().unwrap_or(0),
    }
    .min(size);
    let mut responder = responder.bind(py).try_borrow_mut()?;
    let end = match responder.pending_length() {
        Some(length) => size.min(start + length),
        None => {
            responder.set_known_length(size - start);
            size
        }
    };
    let name = filelike
        .getattr("name")
        .and_then(|n| n.extract::<String>())
        .unwrap_or_else(|_| "wsgi.file_wrapper".into());
    responder.send_file(file, start, end, name.into_bytes()).map(Some)
}
