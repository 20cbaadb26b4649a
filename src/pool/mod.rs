//! `rust_pool`: persistent processes managed by the module, which serve a
//! location's requests outside nginx's workers (mod_wsgi's daemon mode,
//! php-fpm's pools).
//!
//! Four kinds of process run this folder's code; each file says which in
//! its first lines:
//!
//! | process | files |
//! |---|---|
//! | nginx's master (and `nginx -t`) | [`conf`] (reading the configuration), [`master`] (handing it to the supervisor, which it starts with `ngx_spawn_process`) |
//! | the supervisor | [`supervisor`] (starts, watches, recycles and stops pool processes), [`supervisor::spawn`] (its own clean start, and forking pool processes cleanly), [`log`] |
//! | a pool process | [`process`] (Python and the apps, through the same hosts as a worker), [`process::front`] (its FastCGI server loop, with [`process::request`], [`process::dispatch`], [`process::reply`] and [`process::watchdog`]), [`log`] |
//! | an nginx worker | [`worker::client`] (the engine adapter speaking FastCGI), [`worker::listener`] (a program pool's `listen=`: FastCGI connections from another nginx, relayed to its processes), [`worker::line`] (this worker's line of requests waiting for a place in a program process), [`worker::wake`] (waking the other workers' lines), [`worker::status`] (the pools' part of `rust_status`), [`log`] (the levels of a pool process's STDERR lines and of `RUST_ERRORS_LEVEL`) |
//! | nginx workers and pool processes | [`fastcgi`], [`params`] and [`ws_wire`] (the wire format, both ends of it) |
//! | nginx's master and workers | [`listen`] (`listen=` and `allow=` as data) |
//! | all of them | [`slots`] (the table they share, and how a process ended) |
//!
//! The folders say the same: `worker/`, `supervisor/` and `process/` hold
//! what only that process runs; the files beside them are shared or the
//! master's.

pub mod conf;
pub mod fastcgi;
pub mod listen;
pub mod log;
pub mod master;
pub mod params;
pub mod process;
pub mod slots;
pub mod supervisor;
pub mod worker;
pub mod ws_wire;
