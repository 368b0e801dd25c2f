//! Chunks: the header in front of every block (prev_size, size | flags), size arithmetic and
//! the free-list link fields, laid out as glibc lays them out on x86-64.
//!
//! ```text
//!  chunk -> +-----------------------------+
//!           | prev_size (if prev is free) |  8 bytes, part of the previous block when in use
//!           |F| tag | size    |N|M|P      |  8 bytes: P prev-in-use, M mmapped, N in a heap;
//!           |                             |  tag (bits 48-62) keyed hash of address and size,
//!           |                             |  F (bit 63) set while the chunk is free
//!    mem -> +-----------------------------+  (16-byte aligned)
//!           | user data ... / fd, bk      |  fd/bk only while free in a bin
//!           | ... (next chunk's prev_size)|  last 8 bytes usable while in use
//!           +-----------------------------+
//! ```

use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

pub const SIZE_SZ: usize = 8;
pub const ALIGN: usize = 16;
pub const ALIGN_MASK: usize = ALIGN - 1;
pub const HDR: usize = 2 * SIZE_SZ;
pub const MINSIZE: usize = 32;

pub const PREV_INUSE: usize = 1;
pub const IS_MMAPPED: usize = 2;
/// The chunk lies in an mmap'd heap whose header (found by masking) names its arena.
pub const IN_HEAP: usize = 4;
pub const FLAGS: usize = PREV_INUSE | IS_MMAPPED | IN_HEAP;

/// Set in the size word while the chunk is free (in a thread cache, a bin, or the top).
pub const FREE_BIT: usize = 1 << 63;
/// Bits 48..=62 of the size word: a 15-bit hash of the chunk's address and size, keyed with a
/// per-process secret. A header oxmalloc did not write (an interior, stack or wild pointer, or
/// one overwritten by an overflow) fails the check with probability 1 - 2^-15.
pub const TAG_MASK: usize = 0x7fff << 48;
/// The size itself: bits 4..=47.
pub const SIZE_BITS: usize = ((1 << 48) - 1) & !FLAGS;
/// What a valid in-use header must match exactly: its tag, a clear FREE_BIT and no IS_MMAPPED.
pub const CHECK_MASK: usize = TAG_MASK | FREE_BIT | IS_MMAPPED;

/// The per-process key of the header tags, set once before the first chunk exists.
pub static HEADER_KEY: AtomicUsize = AtomicUsize::new(0);

/// The tag bits (in place, bits 48..=62) for a chunk at `c` of size `sz`.
#[inline(always)]
pub fn tag(c: *mut u8, sz: usize) -> usize {
    let k = HEADER_KEY.load(Relaxed);
    let x = (c as usize) ^ k ^ sz.rotate_left(32);
    (x.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 49) << 48
}

/// Whether the size word `h` read at chunk `c` carries the right tag (free or not).
#[inline(always)]
pub fn tag_ok(c: *mut u8, h: usize) -> bool {
    h & TAG_MASK == tag(c, h & SIZE_BITS)
}

/// glibc's default M_MXFAST on 64-bit (64 * SIZE_SZ / 4), a request size.
pub const DEFAULT_MXFAST: usize = 128;
/// The largest M_MXFAST glibc accepts (MAX_FAST_SIZE = 80 * SIZE_SZ / 4).
pub const MAX_FAST_SIZE: usize = 160;
/// Fast bins for every chunk size M_MXFAST can reach: 32..=176 (glibc's NFASTBINS, 10).
pub const NFASTBINS: usize = fastbin_index(request2size(MAX_FAST_SIZE)) + 1;

/// The largest chunk size the fast bins take for M_MXFAST `s` (glibc's set_max_fast): 0 (or
/// anything below 8) turns them off; the default 128 gives 128, so requests up to 120 bytes.
pub const fn max_fast_chunk(s: usize) -> usize {
    if s <= ALIGN_MASK - SIZE_SZ {
        MINSIZE / 2
    } else {
        (s + SIZE_SZ) & !ALIGN_MASK
    }
}

/// tcache: 64 bins, 16 bytes apart, requests up to 1032 bytes (chunk sizes 32..=1040).
pub const TCACHE_BINS: usize = 64;
pub const TCACHE_MAX_REQUEST: usize = 1032;
pub const TCACHE_MAX_CHUNK: usize = 1040;

/// Requests at or above this are refused (ENOMEM) before any arithmetic can overflow.
pub const MAX_REQUEST: usize = (isize::MAX as usize) - 4 * 1024 * 1024;

/// Chunk size for a request of `n` bytes (n must be <= MAX_REQUEST).
#[inline(always)]
pub const fn request2size(n: usize) -> usize {
    let s = (n + SIZE_SZ + ALIGN_MASK) & !ALIGN_MASK;
    if s < MINSIZE {
        MINSIZE
    } else {
        s
    }
}

#[inline(always)]
pub const fn tcache_index(csize: usize) -> usize {
    (csize - MINSIZE) >> 4
}

#[inline(always)]
pub const fn fastbin_index(csize: usize) -> usize {
    (csize >> 4) - 2
}

// Raw field access. Every function takes a chunk address that the caller knows lies inside
// memory oxmalloc owns (a heap, a brk segment or a mapped block).

#[inline(always)]
pub fn mem2chunk(mem: *mut u8) -> *mut u8 {
    mem.wrapping_sub(HDR)
}
#[inline(always)]
pub fn chunk2mem(c: *mut u8) -> *mut u8 {
    c.wrapping_add(HDR)
}
#[inline(always)]
pub unsafe fn head(c: *mut u8) -> usize {
    // SAFETY: caller guarantees c is a chunk in owned memory.
    unsafe { *(c.add(SIZE_SZ) as *const usize) }
}
/// Writes the header of an in-use chunk: `v` is size | flags; the tag is added here.
#[inline(always)]
pub unsafe fn set_head(c: *mut u8, v: usize) {
    // SAFETY: as above.
    unsafe { *(c.add(SIZE_SZ) as *mut usize) = v | tag(c, v & SIZE_BITS) }
}
/// Writes the header of a free chunk (a bin's chunk or the top).
#[inline(always)]
pub unsafe fn set_free_head(c: *mut u8, v: usize) {
    // SAFETY: as above.
    unsafe { *(c.add(SIZE_SZ) as *mut usize) = v | tag(c, v & SIZE_BITS) | FREE_BIT }
}
/// Marks chunk `c` free or in use without touching its size, tag or flags.
#[inline(always)]
pub unsafe fn mark_free(c: *mut u8) {
    // SAFETY: as above.
    unsafe { *(c.add(SIZE_SZ) as *mut usize) |= FREE_BIT }
}
#[inline(always)]
pub unsafe fn mark_used(c: *mut u8) {
    // SAFETY: as above.
    unsafe { *(c.add(SIZE_SZ) as *mut usize) &= !FREE_BIT }
}
#[inline(always)]
pub unsafe fn size(c: *mut u8) -> usize {
    // SAFETY: as above.
    unsafe { head(c) & SIZE_BITS }
}
#[inline(always)]
pub unsafe fn prev_size(c: *mut u8) -> usize {
    // SAFETY: as above.
    unsafe { *(c as *const usize) }
}
#[inline(always)]
pub unsafe fn set_prev_size(c: *mut u8, v: usize) {
    // SAFETY: as above.
    unsafe { *(c as *mut usize) = v }
}
#[inline(always)]
pub unsafe fn next(c: *mut u8) -> *mut u8 {
    // SAFETY: as above.
    unsafe { c.add(size(c)) }
}
#[inline(always)]
pub unsafe fn prev_inuse(c: *mut u8) -> bool {
    // SAFETY: as above.
    unsafe { head(c) & PREV_INUSE != 0 }
}
#[inline(always)]
pub unsafe fn is_mmapped(c: *mut u8) -> bool {
    // SAFETY: as above.
    unsafe { head(c) & IS_MMAPPED != 0 }
}
/// Whether chunk `c` is in use, read from the next chunk's PREV_INUSE bit.
#[inline(always)]
pub unsafe fn inuse(c: *mut u8) -> bool {
    // SAFETY: as above; c is not the top chunk (which has no next).
    unsafe { prev_inuse(next(c)) }
}
#[inline(always)]
pub unsafe fn set_inuse_at(c: *mut u8, off: usize) {
    // SAFETY: as above; c+off is a chunk header in the same segment.
    unsafe { set_head(c.add(off), head(c.add(off)) | PREV_INUSE) }
}
#[inline(always)]
pub unsafe fn clear_inuse_at(c: *mut u8, off: usize) {
    // SAFETY: as above.
    unsafe { set_head(c.add(off), head(c.add(off)) & !PREV_INUSE) }
}
/// Writes the footer of a free chunk: the next chunk's prev_size.
#[inline(always)]
pub unsafe fn set_foot(c: *mut u8, s: usize) {
    // SAFETY: as above.
    unsafe { set_prev_size(c.add(s), s) }
}

// Free-list links live in the user area: fd at mem+0, bk at mem+8. A bin's header is a fake
// chunk inside its Arena, so list operations write the arena's memory through pointers loaded
// from other chunks while the arena is borrowed `&mut`; every link access is volatile so the
// compiler neither caches nor reorders them across those writes.
#[inline(always)]
pub unsafe fn fd(c: *mut u8) -> *mut u8 {
    // SAFETY: c is a free chunk or a bin header.
    unsafe { core::ptr::read_volatile(c.add(HDR) as *const *mut u8) }
}
#[inline(always)]
pub unsafe fn bk(c: *mut u8) -> *mut u8 {
    // SAFETY: as above.
    unsafe { core::ptr::read_volatile(c.add(HDR + 8) as *const *mut u8) }
}
#[inline(always)]
pub unsafe fn set_fd(c: *mut u8, v: *mut u8) {
    // SAFETY: as above.
    unsafe { core::ptr::write_volatile(c.add(HDR) as *mut *mut u8, v) }
}
#[inline(always)]
pub unsafe fn set_bk(c: *mut u8, v: *mut u8) {
    // SAFETY: as above.
    unsafe { core::ptr::write_volatile(c.add(HDR + 8) as *mut *mut u8, v) }
}

/// Usable bytes of an in-use chunk, as malloc_usable_size reports them.
#[inline]
pub unsafe fn usable_size(c: *mut u8) -> usize {
    // SAFETY: c is an in-use chunk.
    unsafe {
        if is_mmapped(c) {
            size(c) - HDR
        } else {
            size(c) - SIZE_SZ
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_sizes_match_glibc() {
        assert_eq!(request2size(0), 32);
        assert_eq!(request2size(24), 32);
        assert_eq!(request2size(25), 48);
        assert_eq!(request2size(128), 144);
        assert_eq!(request2size(1032), 1040);
        assert_eq!(tcache_index(request2size(1032)), 63);
        assert_eq!(NFASTBINS, 10);
        assert_eq!(max_fast_chunk(DEFAULT_MXFAST), 128);
        assert_eq!(max_fast_chunk(0), 16);
        assert_eq!(max_fast_chunk(MAX_FAST_SIZE), 160);
        assert!(fastbin_index(max_fast_chunk(MAX_FAST_SIZE)) < NFASTBINS);
    }

    #[test]
    fn header_fields_round_trip() {
        let mut buf = [0usize; 16];
        let c = buf.as_mut_ptr() as *mut u8;
        unsafe {
            set_head(c, 64 | PREV_INUSE | IN_HEAP);
            assert_eq!(size(c), 64);
            assert!(tag_ok(c, head(c)) && head(c) & FREE_BIT == 0);
            mark_free(c);
            assert!(tag_ok(c, head(c)) && head(c) & FREE_BIT != 0 && size(c) == 64);
            mark_used(c);
            // A header that claims another size, or sits elsewhere, fails its tag check.
            let forged = (head(c) & !SIZE_BITS) | 80;
            assert!(!tag_ok(c, forged) || !tag_ok(c.add(16), head(c)));
            assert!(prev_inuse(c));
            assert!(!is_mmapped(c));
            set_head(c.add(64), 32 | PREV_INUSE);
            assert!(inuse(c));
            clear_inuse_at(c, 64);
            assert!(!inuse(c));
            set_foot(c, 64);
            assert_eq!(prev_size(c.add(64)), 64);
            assert_eq!(usable_size(c), 56);
        }
    }
}
