//! Response bytes handed to nginx without copying them out of Python.
//!
//! A `bytes` object is immutable and CPython never moves it, so while we
//! hold a reference its buffer can back an nginx output buffer directly.
//! The reference is dropped on nginx's thread once the bytes are written;
//! pyo3 then defers the decref to the next thread that attaches to Python
//! (a serving thread, at its next batch), so nginx's thread never touches
//! the interpreter.

use bytes::Bytes;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// Below this, copying is cheaper than keeping the object alive and
/// deferring its decref.
const LEND_FROM: usize = 1024;

/// `bytes` as a body chunk: lent when large, copied when small.
pub fn body_chunk(bytes: &Bound<'_, PyBytes>) -> Bytes {
    let data = bytes.as_bytes();
    if data.len() < LEND_FROM {
        return Bytes::copy_from_slice(data);
    }
    Bytes::from_owner(Lent { ptr: data.as_ptr(), len: data.len(), _object: bytes.clone().unbind() })
}

struct Lent {
    ptr: *const u8,
    len: usize,
    /// Keeps `ptr..ptr+len` alive.
    _object: Py<PyBytes>,
}

// SAFETY: the memory is immutable and owned by `_object`, which is Send;
// the pointer is only read, from whichever thread holds the chunk.
unsafe impl Send for Lent {}

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `_object` keeps the bytes object, and so its buffer of
        // `len` bytes at `ptr`, alive and unchanged.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}
