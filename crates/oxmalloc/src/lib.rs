//! oxmalloc for Rust programs: `#[global_allocator] static GLOBAL: OxMalloc = OxMalloc;`
//! Pure Rust (no C compiler needed); any alignment a `Layout` asks for is honoured.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(test)]
extern crate std;

use core::alloc::{GlobalAlloc, Layout};
use oxmalloc_core::api;
use oxmalloc_core::chunk::ALIGN;

pub use oxmalloc_core::stats::MallInfo2;

/// The oxmalloc allocator: a unit struct, configured by the environment (MALLOC_*_,
/// GLIBC_TUNABLES) like glibc's malloc.
#[derive(Clone, Copy, Default, Debug)]
pub struct OxMalloc;

// SAFETY: the engine returns blocks of at least the requested size and alignment, which stay
// valid until freed, and is safe to call from any thread.
unsafe impl GlobalAlloc for OxMalloc {
    #[inline]
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: any size is accepted; alignment handled by memalign.
        unsafe {
            if l.align() <= ALIGN {
                api::malloc(l.size())
            } else {
                api::memalign(l.align(), l.size())
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, p: *mut u8, _l: Layout) {
        // SAFETY: p came from alloc.
        unsafe { api::free(p) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        // SAFETY: as alloc.
        unsafe {
            if l.align() <= ALIGN {
                api::calloc(l.size(), 1)
            } else {
                let p = api::memalign(l.align(), l.size());
                if !p.is_null() {
                    core::ptr::write_bytes(p, 0, l.size());
                }
                p
            }
        }
    }

    #[inline]
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        // SAFETY: p came from alloc with layout l; new > 0 per the GlobalAlloc contract.
        unsafe {
            if l.align() <= ALIGN {
                return api::realloc(p, new);
            }
            let q = api::memalign(l.align(), new);
            if !q.is_null() {
                core::ptr::copy_nonoverlapping(p, q, l.size().min(new));
                api::free(p);
            }
            q
        }
    }
}

/// Statistics of the running process's oxmalloc heap (glibc's mallinfo2 figures).
pub fn stats() -> MallInfo2 {
    oxmalloc_core::stats::mallinfo2()
}

/// Returns free memory to the OS (malloc_trim); true if any was released.
pub fn trim() -> bool {
    api::trim(0) != 0
}

/// Bytes usable in a live block `p` (malloc_usable_size).
///
/// # Safety
/// `p` must be null or a live block from this allocator.
pub unsafe fn usable_size(p: *mut u8) -> usize {
    // SAFETY: per the contract.
    unsafe { api::usable_size(p) }
}
