//! The pool as nginx's workers see it: the engine adapter that sends a
//! location's requests to a pool process ([`client`]) and
//! the pools' part of `rust_status` ([`status`]).
//!
//! Runs in nginx's workers.

pub mod client;
pub mod line;
pub mod listener;
pub mod status;
pub mod wake;
pub mod websocket;
