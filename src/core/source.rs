//! The producer contract on nginx's side: what the engine and the response
//! state machine ([`super::respond`]) ask of whatever produces a response
//! (a thread's exchange, a CGI program, a pool process), and what becomes
//! of the events of a producer whose request is gone.

use super::exchange::Event;
use crate::nginx::log::{Level, Log};

/// The nginx-thread end of whatever produces a response.
pub trait Source {
    /// nginx has written `bytes` more body bytes to the client: room for
    /// more. Must not call back into the engine (post an event instead).
    fn ack(&mut self, bytes: usize);

    /// The request is over: stop producing and let go of resources. With
    /// `Ending::Failed` (error, timeout, client gone) stop at once.
    fn abandon(&mut self, ending: Ending);

    /// More of an unbuffered request body; `last` once it is all read.
    fn more_body(&mut self, _chunk: Vec<u8>, _last: bool) {}

    /// Whether to read more of an unbuffered body now. When not, the
    /// producer publishes [`Event::ResumeBody`] once it has taken enough.
    fn body_room(&mut self) -> bool {
        true
    }

    /// The process that runs the request (`$rust_pid`): this one, unless
    /// the producer is another.
    fn pid(&self) -> Option<u32> {
        Some(std::process::id())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The response was complete, or nothing more of it is wanted (HEAD).
    Done,
    /// An error, a timeout or a client that left.
    Failed,
}

/// Log lines (and failure reports) of a producer whose request is gone.
pub fn log_orphans(log: Log, events: Vec<Event>) {
    for event in events {
        match event {
            Event::Log(level, message) => log.write(level, &message),
            Event::Fail { lines, .. } => lines.iter().for_each(|l| log.write(Level::Error, l)),
            _ => {}
        }
    }
}
