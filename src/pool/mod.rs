//! `rust_pool`: persistent processes managed by the module, which serve a
//! location's requests outside nginx's workers (mod_wsgi's daemon mode,
//! php-fpm's pools).
//!
//! Four kinds of process run this folder's code; each file says which in
//! its first lines:
//!
//! | process | files |
//! |---|---|
//! | nginx's master (and `nginx -t`) | [`conf`] (reading the configuration), [`master`] (handing it to the supervisor), [`spawn`] (forking the supervisor) |
//! | the supervisor | [`supervisor`] (starts, watches, recycles and stops pool processes), [`spawn`] (forking them cleanly), [`log`] |
//! | a pool process | [`process`] (Python and the apps, through the same hosts as a worker), [`front`] (its FastCGI server side), [`log`] |
//! | an nginx worker | [`client`] (the engine adapter speaking FastCGI), [`status`] (`rust_pool_status`) |
//! | all of them | [`slots`] (the table they share, and how a process ended), [`fastcgi`] and [`params`] (the wire format) |

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
