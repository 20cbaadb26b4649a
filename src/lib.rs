//! ngx-rust-gateway: an nginx dynamic module that hosts application code.
//!
//! The layers, from nginx inwards:
//! - [`module`] and [`conf`]: the module registration, configuration
//!   structures and directive table.
//! - [`nginx`]: the thin safe layer over the raw nginx FFI this module needs
//!   (request body, response head and output chains, fds in the event loop,
//!   logging). The raw `unsafe` lives here.
//! - [`core`]: the shared engine. It captures a request into owned data,
//!   hands it to threads the module owns, and streams what they produce back
//!   through nginx's output filters. Threads wake the nginx event loop through
//!   an eventfd registered as an nginx connection; the event-loop thread
//!   itself never runs application code.
//! - One folder per interface: [`wsgi`] and [`cgi`], with [`python`] for
//!   the interpreter and app loading.

pub mod asgi;
pub mod cgi;
pub mod conf;
pub mod core;
pub mod module;
pub mod nginx;
pub mod os;
pub mod pool;
pub mod python;
pub mod wsgi;

// Unit tests link as an executable, where nginx's symbols do not exist;
// without the exported module tables nothing pulls the nginx-facing code in.
#[cfg(all(feature = "export-modules", not(test)))]
ngx::ngx_modules!(ngx_http_rust_gateway_module);

pub use module::ngx_http_rust_gateway_module;
