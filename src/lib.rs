//! ngx-rust-gateway: an nginx dynamic module that hosts application code.
//!
//! The rooms, from the ground up; each imports only those before it
//! (`ci/imports.sh` prints the picture and any cycle):
//! - [`os`]: process and fd helpers (a child's pipes and clean slate, an
//!   app's forks, clocks, plain fd I/O).
//! - [`nginx`]: the thin safe layer over the raw nginx FFI this module needs
//!   (request body, response head and output chains, fds in the event loop,
//!   a taken-over connection, logging, conf slots). Raw `unsafe` gathers
//!   here and in `os`; what remains elsewhere says why next to it.
//! - [`core`]: the shared engine. It captures a request into owned data,
//!   hands it to a producer (threads the module owns, a program, a pool
//!   process), and streams what comes back through nginx's output filters.
//!   Threads wake the nginx event loop through an eventfd registered as an
//!   nginx connection; the event-loop thread itself never runs application
//!   code.
//! - [`python`]: the interpreter, app loading, and what every Python app's
//!   location shares.
//! - One folder per interface, none importing another: [`cgi`], [`wsgi`]
//!   and [`asgi`] (each Python one with its app host, which a pool process
//!   runs too).
//! - [`pool`]: the worker pool (supervisor, pool processes, FastCGI).
//! - [`status`]: `rust_status`, the status page of all of them.
//! - [`conf`] and [`module`]: the configuration structures and directive
//!   table, and the module registration and worker lifecycle.

pub mod asgi;
pub mod cgi;
pub mod conf;
pub mod core;
pub mod module;
pub mod nginx;
pub mod os;
pub mod pool;
pub mod python;
pub mod status;
pub mod wsgi;

// Unit tests link as an executable, where nginx's symbols do not exist;
// without the exported module tables nothing pulls the nginx-facing code in.
#[cfg(all(feature = "export-modules", not(test)))]
ngx::ngx_modules!(ngx_http_rust_gateway_module);

pub use module::ngx_http_rust_gateway_module;
