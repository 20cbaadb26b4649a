//! Which kind of nginx process we are in.

use nginx_sys::{ngx_process, NGX_PROCESS_SINGLE, NGX_PROCESS_WORKER};

/// True in a worker process or in `master_process off` mode: the only
/// processes that serve requests, so the only ones that may start Python,
/// threads or children. The master, `nginx -t`, `nginx -s` and the cache
/// helpers must stay free of them.
pub fn serves_requests() -> bool {
    // SAFETY: `ngx_process` is a plain integer that nginx sets before it
    // calls any module hook; we only read it on the nginx thread.
    let kind = unsafe { ngx_process } as u32;
    kind == NGX_PROCESS_WORKER || kind == NGX_PROCESS_SINGLE
}
