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
