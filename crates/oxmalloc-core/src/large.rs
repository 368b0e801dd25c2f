//! The mmap path: requests of at least mmap_threshold get a mapping of their own, unmapped when
//! freed; freeing one raises the threshold dynamically (up to 32 MiB) unless fixed by hand.

use crate::chunk::*;
use crate::tunables::{self, MMAP_THRESHOLD_MAX};
use crate::{os, registry};
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

pub static N_MMAPS: AtomicUsize = AtomicUsize::new(0);
pub static MAX_N_MMAPS: AtomicUsize = AtomicUsize::new(0);
pub static MMAPPED_MEM: AtomicUsize = AtomicUsize::new(0);
pub static MAX_MMAPPED_MEM: AtomicUsize = AtomicUsize::new(0);

/// Whether a chunk of size `nb` should get its own mapping.
#[inline]
pub fn wants_mmap(nb: usize) -> bool {
    nb >= tunables::MMAP_THRESHOLD.load(Relaxed)
        && N_MMAPS.load(Relaxed) < tunables::MMAP_MAX.load(Relaxed)
}

fn account(len: usize) {
    let n = N_MMAPS.fetch_add(1, Relaxed) + 1;
    MAX_N_MMAPS.fetch_max(n, Relaxed);
    let m = MMAPPED_MEM.fetch_add(len, Relaxed) + len;
    MAX_MMAPPED_MEM.fetch_max(m, Relaxed);
}

/// Guard bytes at each end of a mapped chunk: a page in hardened mode, else none.
fn guard() -> usize {
    if crate::harden::on() {
        os::page_size()
    } else {
        0
    }
}

/// Maps a chunk for `nb` bytes whose user pointer is aligned to `align` (>= 16).
/// The chunk's prev_size holds its offset from the mapping's start. In hardened mode the
/// mapping has an inaccessible page at each end and the chunk ends right at the second one,
/// so a write past the block faults.
pub fn map_chunk(nb: usize, align: usize) -> *mut u8 {
    let page = os::page_size();
    let g = guard();
    let extra = if align > ALIGN { align } else { 0 };
    let Some(len) = nb
        .checked_add(SIZE_SZ + extra + page - 1 + 2 * g)
        .map(|v| v & !(page - 1))
    else {
        return core::ptr::null_mut();
    };
    let Some(base) = os::mmap_rw(len) else {
        return core::ptr::null_mut();
    };
    let c = if g == 0 {
        let mem = (base as usize + HDR + align - 1) & !(align - 1);
        (mem - HDR) as *mut u8
    } else {
        let end = base as usize + len - g;
        if !os::protect_none(base, g) || !os::protect_none(end as *mut u8, g) {
            os::munmap(base, len);
            return core::ptr::null_mut();
        }
        // The highest aligned position with nb + SIZE_SZ bytes before the guard.
        let mem = (end - nb - SIZE_SZ + HDR) & !(align - 1);
        (mem - HDR) as *mut u8
    };
    let off = c as usize - base as usize;
    if !registry::map_insert(c as usize, len) {
        os::munmap(base, len);
        return core::ptr::null_mut();
    }
    // SAFETY: c lies in the fresh mapping with at least nb + SIZE_SZ bytes after it.
    unsafe {
        set_prev_size(c, off);
        set_head(c, (len - g - off) | IS_MMAPPED);
    }
    account(len);
    c
}

/// Whether the header of mmapped chunk `c` is intact: its tag, and (when the registry knows
/// the mapping's length `len`) offset + size adding up to it.
pub unsafe fn header_ok(c: *mut u8, len: usize) -> bool {
    let page = os::page_size();
    // SAFETY: c is a registered mmapped chunk, so its header is mapped.
    let (h, off) = unsafe { (head(c), prev_size(c)) };
    let sz = h & SIZE_BITS;
    let base = (c as usize).wrapping_sub(off);
    let total = sz.wrapping_add(off).wrapping_add(guard());
    h & CHECK_MASK == (tag(c, sz) | IS_MMAPPED)
        && (base | total) & (page - 1) == 0
        && total != 0
        && (len == 0 || total == len)
}

/// Unmaps mmapped chunk `c` (already removed from the registry, which knew its mapping as
/// `len` bytes, or 0 if it could not tell) after checking its header; adjusts the dynamic
/// threshold like glibc.
pub unsafe fn unmap_chunk(c: *mut u8, len: usize) {
    // SAFETY: c was a registered mmapped chunk.
    if !unsafe { header_ok(c, len) } {
        os::fatal("munmap_chunk(): corrupted chunk header", c as usize + HDR);
    }
    // SAFETY: as above.
    let (off, sz) = unsafe { (prev_size(c), size(c)) };
    let base = (c as usize).wrapping_sub(off);
    let total = sz + off + guard();
    if !tunables::NO_DYN_THRESHOLD.load(Relaxed)
        && sz > tunables::MMAP_THRESHOLD.load(Relaxed)
        && sz <= MMAP_THRESHOLD_MAX
    {
        tunables::MMAP_THRESHOLD.store(sz, Relaxed);
        tunables::TRIM_THRESHOLD.store(2 * sz, Relaxed);
    }
    N_MMAPS.fetch_sub(1, Relaxed);
    MMAPPED_MEM.fetch_sub(total, Relaxed);
    os::munmap(base as *mut u8, total);
}

/// Resizes mmapped chunk `c` for `nb` bytes with mremap; null if the kernel refuses.
pub unsafe fn remap_chunk(c: *mut u8, nb: usize) -> *mut u8 {
    let page = os::page_size();
    // SAFETY: c is a valid mmapped chunk.
    let (off, sz) = unsafe { (prev_size(c), size(c)) };
    let base = (c as usize - off) as *mut u8;
    let total = sz + off;
    let Some(new_len) = (nb + off + SIZE_SZ)
        .checked_add(page - 1)
        .map(|v| v & !(page - 1))
    else {
        return core::ptr::null_mut();
    };
    if new_len == total {
        return c;
    }
    let moved = registry::map_remap(c as usize, || {
        let nbase = os::mremap(base, total, new_len)?;
        let nc = (nbase as usize + off) as *mut u8;
        // SAFETY: the mapping now spans new_len bytes with the old contents at the same
        // offsets.
        unsafe { set_head(nc, (new_len - off) | IS_MMAPPED) };
        Some((nc as usize, new_len))
    });
    let Some(nc) = moved else {
        return core::ptr::null_mut();
    };
    let nc = nc as *mut u8;
    if new_len > total {
        let m = MMAPPED_MEM.fetch_add(new_len - total, Relaxed) + new_len - total;
        MAX_MMAPPED_MEM.fetch_max(m, Relaxed);
    } else {
        MMAPPED_MEM.fetch_sub(total - new_len, Relaxed);
    }
    nc
}
