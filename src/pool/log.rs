//! Log lines from outside nginx's processes: the supervisor writes nginx's
//! error log itself, and pool processes mark their lines with a level.
//!
//! Runs in the supervisor and in pool processes, and in nginx's workers,
//! which read the level of each line a pool process sends in its STDERR
//! records ([`split_level`]) and name the level they ask for ([`name`]).
//!
//! The supervisor is no nginx process and has no nginx log, so it appends
//! to the error log file by name, in nginx's format, opening it for each
//! batch: that follows log rotation without a signal.
//!
//! Pool processes write one line per message on stderr and in FastCGI
//! STDERR records, prefixed with the level as in sd-daemon(3): `<3>` for
//! error, `<4>` warn, and so on (syslog numbering, nginx's minus one).

use std::io::Write;
use std::path::PathBuf;

use crate::nginx::log::Level;

pub struct ErrorLog {
    path: Option<PathBuf>,
    /// nginx's level numbering: lines above it are dropped.
    level: usize,
}

impl ErrorLog {
    pub fn new(path: Option<PathBuf>, level: usize) -> ErrorLog {
        ErrorLog { path, level }
    }

    /// Until the first plan names the log.
    pub fn stderr() -> ErrorLog {
        ErrorLog { path: None, level: Level::Notice as usize }
    }

    pub fn write(&self, level: Level, message: &str) {
        if level as usize > self.level {
            return;
        }
        let line = format!("{} [{}] {}#0: {message}\n", timestamp(), name(level), std::process::id());
        let written = self.path.as_ref().and_then(|path| {
            std::fs::OpenOptions::new().append(true).create(true).open(path).ok().map(|mut f| f.write_all(line.as_bytes()))
        });
        if written.is_none() {
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
    }
}

/// The level as `error_log` spells it.
pub fn name(level: Level) -> &'static str {
    match level {
        Level::Emerg => "emerg",
        Level::Alert => "alert",
        Level::Crit => "crit",
        Level::Error => "error",
        Level::Warn => "warn",
        Level::Notice => "notice",
        Level::Info => "info",
        Level::Debug => "debug",
    }
}

/// nginx's "2026/11/24 10:00:00", local time.
fn timestamp() -> String {
    // SAFETY: time and localtime_r write only into our struct.
    unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&now, &mut tm);
        format!(
            "{:04}/{:02}/{:02} {:02}:{:02}:{:02}",
            tm.tm_year + 1900,
            tm.tm_mon + 1,
            tm.tm_mday,
            tm.tm_hour,
            tm.tm_min,
            tm.tm_sec
        )
    }
}

/// A pool process's line for the supervisor to log: each line of
/// `message` marked with `level`, on stderr.
pub fn say(level: Level, message: &str) {
    for line in message.lines() {
        eprintln!("{}", mark(level, line));
    }
}

/// `<N>message` for a line at `level`.
pub fn mark(level: Level, message: &str) -> String {
    format!("<{}>{message}", level as usize - 1)
}

/// The level of a marked line and its text; unmarked lines (a program's
/// own stderr) are errors, as nginx logs FastCGI stderr.
pub fn split_level(line: &str) -> (Level, &str) {
    let bytes = line.as_bytes();
    if bytes.len() >= 3 && bytes[0] == b'<' && bytes[2] == b'>' && bytes[1].is_ascii_digit() {
        let level = match bytes[1] - b'0' + 1 {
            1 => Level::Emerg,
            2 => Level::Alert,
            3 => Level::Crit,
            4 => Level::Error,
            5 => Level::Warn,
            6 => Level::Notice,
            7 => Level::Info,
            _ => Level::Debug,
        };
        return (level, &line[3..]);
    }
    (Level::Error, line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_round_trip_through_the_mark() {
        for level in [Level::Alert, Level::Error, Level::Warn, Level::Info] {
            let line = mark(level, "hello");
            assert_eq!(split_level(&line), (level, "hello"));
        }
        assert_eq!(split_level("plain"), (Level::Error, "plain"));
        assert_eq!(split_level("<x>y"), (Level::Error, "<x>y"));
    }
}
