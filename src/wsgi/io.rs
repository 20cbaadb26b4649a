//! `wsgi.input` and `wsgi.file_wrapper` (`wsgi.errors` is a
//! [`crate::python::stdio::LogStream`]).

use std::mem::MaybeUninit;

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::core::capture::{Body, BodyReader};

/// Reads larger than this release the GIL: they may hit nginx's temp file.
const DETACH_ABOVE: u64 = 64 * 1024;

/// The request body as a read-only binary file.
#[pyclass(module = "rust_wsgi")]
pub struct WsgiInput {
    reader: BodyReader,
}

impl WsgiInput {
    pub fn new(body: Body) -> WsgiInput {
        WsgiInput { reader: body.reader() }
    }
}

/// A bytes object of `len` bytes whose content is not written yet (no
/// zeroing: the caller fills it before anyone sees it).
fn unfilled_bytes(py: Python<'_>, len: usize) -> PyResult<Bound<'_, PyBytes>> {
    // SAFETY: a NULL source asks CPython for an unfilled object; the new
    // reference is owned by the Bound.
    unsafe {
        Bound::from_owned_ptr_or_err(py, pyo3::ffi::PyBytes_FromStringAndSize(std::ptr::null(), len as pyo3::ffi::Py_ssize_t))
            .map(|b| b.cast_into_unchecked())
    }
}

/// Python's convention: None or a negative size means "no limit".
fn limit(size: Option<isize>) -> Option<usize> {
    size.and_then(|s| usize::try_from(s).ok())
}

#[pymethods]
impl WsgiInput {
    #[pyo3(signature = (size = None))]
    fn read<'py>(&mut self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let reader = &mut self.reader;
        let len = reader.read_len(limit(size));
        let bytes = unfilled_bytes(py, len)?;
        // SAFETY: the object is new and ours alone; its buffer holds `len`
        // bytes and lives as long as `bytes`.
        let out = unsafe {
            std::slice::from_raw_parts_mut(pyo3::ffi::PyBytes_AsString(bytes.as_ptr()).cast::<MaybeUninit<u8>>(), len)
        };
        // One copy, from nginx's buffer or temp file into the bytes object.
        if len as u64 > DETACH_ABOVE {
            py.detach(|| reader.fill(out))
        } else {
            reader.fill(out)
        }
        .map_err(|e| PyOSError::new_err(e.to_string()))?;
        Ok(bytes)
    }

    #[pyo3(signature = (size = None))]
    fn readline<'py>(&mut self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let line = self.reader.read_line(limit(size)).map_err(|e| PyOSError::new_err(e.to_string()))?;
        Ok(PyBytes::new(py, &line))
    }

    /// Lines until the end, or until `hint` bytes have been read.
    #[pyo3(signature = (hint = None))]
    fn readlines<'py>(&mut self, py: Python<'py>, hint: Option<isize>) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let hint = limit(hint).filter(|&h| h > 0);
        let mut lines = Vec::new();
        let mut total = 0;
        loop {
            let line = self.readline(py, None)?;
            if line.as_bytes().is_empty() {
                break;
            }
            total += line.as_bytes().len();
            lines.push(line);
            if hint.is_some_and(|h| total >= h) {
                break;
            }
        }
        Ok(lines)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let line = self.readline(py, None)?;
        Ok((!line.as_bytes().is_empty()).then_some(line))
    }
}

/// `wsgi.file_wrapper`: wraps a file-like object. When an app returns one
/// around a real file, the serving loop lets nginx send the file itself;
/// otherwise it is an ordinary iterable of blocks.
#[pyclass(module = "rust_wsgi")]
pub struct FileWrapper {
    pub filelike: Py<PyAny>,
    block_size: usize,
}

#[pymethods]
impl FileWrapper {
    #[new]
    #[pyo3(signature = (filelike, block_size = 8192))]
    fn new(filelike: Py<PyAny>, block_size: usize) -> FileWrapper {
        FileWrapper { filelike, block_size: block_size.max(1) }
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let block = self.filelike.bind(py).call_method1("read", (self.block_size,))?;
        Ok(block.is_truthy()?.then_some(block))
    }

    /// PEP 3333: closing the wrapper closes the file.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        if let Some(close) = self.filelike.bind(py).getattr_opt("close")? {
            close.call0()?;
        }
        Ok(())
    }
}
