//! Rust values that live exactly as long as an nginx pool.

use std::ffi::c_void;
use std::ptr::{self, NonNull};

use nginx_sys::{ngx_palloc, ngx_pool_cleanup_add, ngx_pool_t};

/// Moves `value` into `pool`; its `Drop` runs when nginx destroys the pool.
/// Returns None when the pool is out of memory (the value is dropped).
///
/// # Safety
/// `pool` must be a live nginx pool, used on the nginx thread.
pub unsafe fn pool_box<T>(pool: *mut ngx_pool_t, value: T) -> Option<NonNull<T>> {
    // ngx_palloc aligns to the machine word.
    const { assert!(std::mem::align_of::<T>() <= std::mem::size_of::<usize>()) };
    // SAFETY: the memory comes from the pool with T's size and a suitable
    // alignment; it is initialised before the cleanup that drops it is
    // registered, and the cleanup runs once, when the pool is destroyed.
    unsafe {
        let p = ngx_palloc(pool, std::mem::size_of::<T>()) as *mut T;
        let p = NonNull::new(p)?;
        ptr::write(p.as_ptr(), value);
        let cln = ngx_pool_cleanup_add(pool, 0);
        if cln.is_null() {
            ptr::drop_in_place(p.as_ptr());
            return None;
        }
        (*cln).handler = Some(drop_value::<T>);
        (*cln).data = p.as_ptr().cast();
        Some(p)
    }
}

unsafe extern "C" fn drop_value<T>(data: *mut c_void) {
    // SAFETY: registered by `pool_box` for exactly this pointer and type.
    unsafe { ptr::drop_in_place(data as *mut T) }
}
