//! `rust_pool`: persistent processes managed by the module, which serve a
//! location's requests outside nginx's workers (mod_wsgi's daemon mode,
//! php-fpm's pools).
//!
//! - [`conf`]: the `rust_pool` directive and a pool's settings.
//! - [`master`]: nginx's master hands each configuration to the supervisor.
//! - [`supervisor`]: starts, watches, recycles and stops pool processes.
//! - [`spawn`]: forking them cleanly.
//! - [`process`]: a pool process: Python and the apps.
//! - [`front`]: its FastCGI server side.
//! - [`client`]: the nginx side, an engine adapter speaking FastCGI.
//! - [`slots`]: the table all of them share; [`status`] reports it.
//! - [`fastcgi`], [`params`], [`log`]: the wire format and log lines.

pub mod client;
pub mod conf;
pub mod fastcgi;
pub mod front;
pub mod log;
pub mod master;
pub mod params;
pub mod process;
pub mod slots;
pub mod spawn;
pub mod status;
pub mod supervisor;
