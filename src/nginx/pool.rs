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

/// A block nginx allocated outside a pool's own blocks (a "large"
/// allocation, from malloc), taken over from the pool: nginx no longer
/// frees it, the last holder does. The pool keeps one reference until it is
/// destroyed, so nginx may still read the block for as long as the pool
/// lives (a `$request_body` in the access log, say).
pub struct PoolBlock {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: nobody writes to the block once it is adopted (it holds a
// finished request body), and it is freed exactly once, by the last owner.
unsafe impl Send for PoolBlock {}
// SAFETY: as above; shared access only reads.
unsafe impl Sync for PoolBlock {}

impl AsRef<[u8]> for PoolBlock {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `len` bytes from `ptr` were initialised by nginx before
        // the adoption and stay allocated until Drop.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for PoolBlock {
    fn drop(&mut self) {
        // SAFETY: ngx_palloc_large allocates with malloc (ngx_alloc), and
        // the pool no longer lists the block, so nobody else frees it.
        unsafe { libc::free(self.ptr.as_ptr().cast()) }
    }
}

/// One holder of an adopted block.
pub struct SharedBlock(std::sync::Arc<PoolBlock>);

impl AsRef<[u8]> for SharedBlock {
    fn as_ref(&self) -> &[u8] {
        self.0.as_ref().as_ref()
    }
}

/// The `len` bytes at `data`, if they start a large allocation of `pool`:
/// then without a copy. Returns None otherwise (copy them instead).
///
/// # Safety
/// `pool` must be a live nginx pool, used on the nginx thread, and `len`
/// bytes at `data` must be initialised and never written again.
pub unsafe fn pool_adopt_large(pool: *mut ngx_pool_t, data: *const u8, len: usize) -> Option<SharedBlock> {
    // SAFETY: the caller vouches for the pool; its large list is a plain
    // linked list of live nodes, touched only on this thread.
    unsafe {
        let mut large = (*pool).large;
        while let Some(node) = large.as_mut() {
            if node.alloc.cast_const() == data.cast::<c_void>() {
                let block = std::sync::Arc::new(PoolBlock { ptr: NonNull::new(data.cast_mut())?, len });
                // The pool's reference: without it, leave the block to nginx.
                pool_box(pool, std::sync::Arc::clone(&block))?;
                // Unlisted, ngx_pfree and ngx_destroy_pool skip it.
                node.alloc = ptr::null_mut();
                return Some(SharedBlock(block));
            }
            large = node.next;
        }
        None
    }
}
