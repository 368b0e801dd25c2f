//! mmap'd heaps: 64 MiB regions aligned to their size, so any chunk inside finds the heap
//! header (and its arena) by masking its address. Thread arenas live in them; so does the main
//! arena once the program break cannot grow.

use crate::arena::Arena;
use crate::os;

/// Size and alignment of one heap (glibc's HEAP_MAX_SIZE on 64-bit).
pub const HEAP_MAX: usize = 1 << HEAP_SHIFT;
pub const HEAP_SHIFT: u32 = 26;

#[repr(C)]
pub struct HeapInfo {
    /// The arena whose chunks live here.
    pub arena: *mut Arena,
    /// The arena's previous heap (heaps of one arena form a list, newest first).
    pub prev: *mut HeapInfo,
    /// Bytes from the heap's start that the arena uses (top ends here); the rest is untouched.
    pub size: usize,
    pub _pad: usize,
}

pub const HEAP_HDR: usize = core::mem::size_of::<HeapInfo>();
const _: () = assert!(HEAP_HDR.is_multiple_of(16));

/// The heap that holds chunk address `p` (which must carry the IN_HEAP flag).
#[inline(always)]
pub fn heap_for_ptr(p: *mut u8) -> *mut HeapInfo {
    ((p as usize) & !(HEAP_MAX - 1)) as *mut HeapInfo
}

/// Maps a new heap for `arena`; its pages are committed only when touched.
pub fn new_heap(arena: *mut Arena, prev: *mut HeapInfo) -> Option<*mut HeapInfo> {
    let p = os::mmap_aligned(HEAP_MAX, HEAP_MAX)? as *mut HeapInfo;
    if !crate::registry::note_heap(p as usize) {
        os::munmap(p as *mut u8, HEAP_MAX);
        return None;
    }
    // SAFETY: p is a fresh, writable, suitably aligned mapping of HEAP_MAX bytes.
    unsafe {
        p.write(HeapInfo {
            arena,
            prev,
            size: HEAP_HDR,
            _pad: 0,
        });
    }
    Some(p)
}
