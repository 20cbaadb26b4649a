//! A thin, safe layer over the raw nginx FFI that the engine needs.
//!
//! Everything here runs on the nginx event-loop thread. Types wrap raw nginx
//! pointers whose lifetime nginx controls; the `// SAFETY:` notes say which
//! nginx invariant each `unsafe` block relies on.

pub mod conf;
pub mod event;
pub mod log;
pub mod output;
pub mod pool;
pub mod process;
pub mod request;
pub mod takeover;

/// Why an nginx call failed, for the log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NgxError(pub &'static str);

impl std::fmt::Display for NgxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for NgxError {}

/// The failure of every pool allocation.
pub const NO_MEMORY: NgxError = NgxError("out of memory in an nginx pool");
