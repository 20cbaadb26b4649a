//! Python exceptions as nginx log lines.

use pyo3::prelude::*;

/// The formatted traceback of `err`, one entry per line, the way Python
/// prints it. nginx's error log is line-oriented, so every line is logged on
/// its own.
pub fn traceback_lines(py: Python<'_>, err: &PyErr) -> Vec<String> {
    let formatted = py
        .import("traceback")
        .and_then(|tb| tb.call_method1("format_exception", (err.get_type(py), err.value(py), err.traceback(py))))
        .and_then(|parts| parts.extract::<Vec<String>>());
    match formatted {
        Ok(parts) => parts
            .concat()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect(),
        Err(_) => vec![err.to_string()],
    }
}

/// `header` followed by the traceback.
pub fn report(py: Python<'_>, header: String, err: &PyErr) -> Vec<String> {
    let mut lines = vec![header];
    lines.extend(traceback_lines(py, err));
    lines
}
