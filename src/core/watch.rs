//! Watching source trees for changes, from the nginx event loop.
//!
//! inotify reports changes under the watched directories (new
//! subdirectories are watched as they appear). Its fd is registered in
//! nginx's event loop like the bridge's eventfd, so nothing polls. When a
//! `.py` file changes, the worker recycles itself gracefully: in-flight
//! requests finish, and the master starts a fresh worker with a fresh
//! interpreter. Reloading modules in place is not clean enough (old classes
//! and closures live on in caches), so the process goes instead.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nginx_sys::ngx_event_t;

use super::catch_panic;
use crate::nginx::event::ReadWatch;
use crate::nginx::log::{Level, Log};
use crate::nginx::process;

const MASK: u32 = libc::IN_CLOSE_WRITE
    | libc::IN_MOVED_TO
    | libc::IN_MOVED_FROM
    | libc::IN_CREATE
    | libc::IN_DELETE
    | libc::IN_DELETE_SELF;

struct TreeWatch {
    watch: ReadWatch,
    dirs: HashMap<i32, PathBuf>,
}

thread_local! {
    static WATCH: RefCell<Option<TreeWatch>> = const { RefCell::new(None) };
}

/// Starts watching `roots` (recursively).
pub fn start(roots: &[PathBuf], log: Log) -> Result<(), String> {
    if roots.is_empty() {
        return Ok(());
    }
    // SAFETY: plain syscall; the result is checked and owned.
    let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
    if fd < 0 {
        return Err(format!("inotify_init1() failed: {}", io::Error::last_os_error()));
    }
    // SAFETY: a fresh descriptor we own.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut dirs = HashMap::new();
    for root in roots {
        add_tree(owned.as_raw_fd(), root, &mut dirs).map_err(|e| format!("cannot watch \"{}\": {e}", root.display()))?;
    }
    let watch = ReadWatch::register(owned, on_change, log)?;
    WATCH.with(|w| *w.borrow_mut() = Some(TreeWatch { watch, dirs }));
    Ok(())
}

pub fn stop() {
    if let Some(tree) = WATCH.with(|w| w.borrow_mut().take()) {
        tree.watch.close();
    }
}

fn add_tree(fd: i32, dir: &Path, dirs: &mut HashMap<i32, PathBuf>) -> io::Result<()> {
    let name = CString::new(dir.as_os_str().as_bytes()).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: `fd` is our inotify instance; `name` is NUL-terminated.
    let wd = unsafe { libc::inotify_add_watch(fd, name.as_ptr(), MASK) };
    if wd < 0 {
        return Err(io::Error::last_os_error());
    }
    dirs.insert(wd, dir.to_path_buf());
    for entry in std::fs::read_dir(dir)?.flatten() {
        let skip = entry.file_name().as_bytes().starts_with(b".") || entry.file_name() == "__pycache__";
        if !skip && entry.file_type().is_ok_and(|t| t.is_dir()) {
            add_tree(fd, &entry.path(), dirs)?;
        }
    }
    Ok(())
}

/// Reads what inotify has; the first changed `.py` file recycles the worker.
unsafe extern "C" fn on_change(_ev: *mut ngx_event_t) {
    let log = Log::cycle();
    catch_panic(log, "file watch", || {
        let changed = WATCH.with(|w| {
            let mut w = w.borrow_mut();
            let tree = w.as_mut()?;
            tree.watch.rearm();
            drain(tree.watch.fd(), &mut tree.dirs)
        });
        if let Some(path) = changed {
            log.write(
                Level::Notice,
                &format!("rust_wsgi: \"{}\" changed; recycling this worker (running requests finish first)", path.display()),
            );
            stop();
            process::recycle_worker();
        }
    });
}

/// Reads every pending event; returns the first changed Python file.
fn drain(fd: i32, dirs: &mut HashMap<i32, PathBuf>) -> Option<PathBuf> {
    let mut changed = None;
    let mut buf = [0u8; 8192];
    loop {
        let n = match crate::os::read(fd, &mut buf) {
            Ok(n @ 1..) => n,
            _ => return changed,
        };
        let mut at = 0;
        while at + std::mem::size_of::<libc::inotify_event>() <= n {
            // SAFETY: the kernel writes whole inotify_event records, each
            // followed by `len` bytes of NUL-padded name.
            let event = unsafe { std::ptr::read_unaligned(buf.as_ptr().add(at) as *const libc::inotify_event) };
            let name_at = at + std::mem::size_of::<libc::inotify_event>();
            let name = &buf[name_at..name_at + event.len as usize];
            let name = OsStr::from_bytes(name.split(|&b| b == 0).next().unwrap_or_default());
            at = name_at + event.len as usize;
            let Some(dir) = dirs.get(&event.wd).cloned() else { continue };
            let path = dir.join(name);
            if event.mask & libc::IN_ISDIR != 0 && event.mask & (libc::IN_CREATE | libc::IN_MOVED_TO) != 0 {
                let _ = add_tree(fd, &path, dirs);
            } else if changed.is_none() && path.extension() == Some(OsStr::new("py")) {
                changed = Some(path);
            }
        }
    }
}
