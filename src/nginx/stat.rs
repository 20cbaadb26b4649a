//! nginx's `stub_status` counters, for connections the module takes over
//! from nginx's accept handler.
//!
//! nginx counts a connection as active when it accepts it, and the module
//! that serves it (http, stream) takes it off when it closes it. A
//! connection that a `listen=` relay takes over is closed by the relay, so
//! the relay takes it off: [`Active`]. The counter exists only when nginx
//! was built with the stub_status module, so it is looked up at run time;
//! naming it would make the module fail to load into an nginx without it.

use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::OnceLock;

/// `ngx_stat_active`, if this nginx has it.
fn active_counter() -> Option<&'static AtomicUsize> {
    static COUNTER: OnceLock<usize> = OnceLock::new();
    let addr = *COUNTER.get_or_init(|| {
        // SAFETY: dlsym with a NUL-terminated name; nginx exports its
        // symbols to modules (it links with -E), so a found address is
        // that of `ngx_atomic_t *ngx_stat_active`, set before any worker
        // starts and never changed.
        unsafe {
            let sym = libc::dlsym(libc::RTLD_DEFAULT, c"ngx_stat_active".as_ptr());
            if sym.is_null() {
                0
            } else {
                *(sym as *const usize)
            }
        }
    });
    // SAFETY: the address of nginx's `ngx_atomic_t` counter in its shared
    // memory (an atomic word), which lives as long as the process.
    (addr != 0).then(|| unsafe { &*(addr as *const AtomicUsize) })
}

/// A connection nginx accepted and counted as active, until dropped.
pub struct Active(());

impl Active {
    /// Takes over the count nginx made when it accepted the connection.
    pub fn adopt() -> Active {
        Active(())
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        if let Some(counter) = active_counter() {
            counter.fetch_sub(1, Relaxed);
        }
    }
}
