//! The embedded CPython interpreter and the apps it runs.
//!
//! - [`interpreter`]: starts Python in a worker process, on a thread the
//!   module owns, never on nginx's event-loop thread.
//! - [`config`]: interpreter settings (`rust_python_*`) and their checks.
//! - [`apps`]: what `rust_wsgi` names, and loading it once per worker.
//! - [`errors`]: Python exceptions as log lines.
//! - [`lend`]: large response bytes go to nginx without a copy.
//! - [`stdio`]: `wsgi.errors`, `sys.stdout` and `sys.stderr` into nginx's
//!   error log.

pub mod apps;
pub mod config;
pub mod errors;
pub mod interpreter;
pub mod lend;
pub mod stdio;
