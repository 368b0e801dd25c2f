//! The allocation API with glibc's semantics, shared by the C ABI and the Rust front end:
//! malloc → tcache → arena (fast/small/unsorted/large bins → top → brk/heap) or mmap.

use crate::arena::round_up;
use crate::chunk::*;
use crate::global::{self, arena_for_chunk, lock_arena, thread_arena, unlock_arena};
use crate::tcache::{self, UNINIT};
use crate::{hooks, large, os, tls, tunables};
use core::ptr::null_mut;
use core::sync::atomic::Ordering::Relaxed;

// ------------------------------------------------------------------ malloc

#[inline(always)]
pub unsafe fn malloc(n: usize) -> *mut u8 {
    if n <= TCACHE_MAX_REQUEST {
        let idx = tcache_index(request2size(n)) & (TCACHE_BINS - 1);
        let tc = tls::current();
        // SAFETY: tc is this thread's cache; idx < 64.
        let m = unsafe { tcache::pop(tc, idx) };
        if !m.is_null() {
            if hooks::active() {
                return tracked(m, n);
            }
            return m;
        }
    }
    // SAFETY: the slow path handles every request size and state.
    unsafe { malloc_slow(n) }
}

/// Reports a fast-path allocation to the tracking hook (kept out of line so the fast path
/// needs no stack frame).
#[cold]
#[inline(never)]
fn tracked(m: *mut u8, n: usize) -> *mut u8 {
    hooks::on_alloc(m, n);
    m
}

#[cold]
#[inline(never)]
unsafe fn malloc_slow(n: usize) -> *mut u8 {
    if n > MAX_REQUEST {
        os::set_errno(libc::ENOMEM);
        return null_mut();
    }
    let nb = request2size(n);
    // SAFETY: tc is this thread's cache.
    unsafe {
        let tc = thread_cache();
        let mut m = null_mut();
        if let Some(idx) = tcache::bin_for(tc, nb) {
            m = tcache::refill(tc, idx, nb);
        }
        if m.is_null() {
            // No cache, or the arena is out of memory: the other path may still succeed.
            m = alloc_chunk(tc, nb, ALIGN);
        }
        finish_alloc(m, n)
    }
}

/// This thread's cache, set up on the thread's first slow-path call (which also runs the
/// process's initialisation).
#[inline]
fn thread_cache() -> *mut tcache::ThreadCache {
    let tc = tls::current();
    // SAFETY: tc is this thread's cache.
    if unsafe { (*tc).state } == UNINIT {
        global::thread_init(tc);
    }
    tc
}

/// Allocates a chunk of `nb` bytes whose user pointer is aligned to `align` (16 or a larger
/// power of two) from the mmap path or the thread's arena, falling back to the other when one
/// fails. Returns the user pointer or null.
unsafe fn alloc_chunk(tc: *mut tcache::ThreadCache, nb: usize, align: usize) -> *mut u8 {
    let mapped = large::wants_mmap(nb);
    if mapped {
        let c = large::map_chunk(nb, align);
        if !c.is_null() {
            // SAFETY: c is a fresh mmapped chunk.
            return unsafe { chunk2mem(c) };
        }
    }
    let a = thread_arena(tc);
    let secret = global::SECRET.load(Relaxed);
    lock_arena(a);
    // SAFETY: the arena is locked.
    let c = unsafe {
        if align <= ALIGN {
            (*a).int_malloc(nb, secret)
        } else {
            (*a).int_memalign(align, nb, secret)
        }
    };
    unlock_arena(a);
    let c = if c.is_null() && !mapped {
        large::map_chunk(nb, align)
    } else {
        c
    };
    if c.is_null() {
        null_mut()
    } else {
        // SAFETY: c is an in-use chunk.
        unsafe { chunk2mem(c) }
    }
}

/// The common end of every slow allocation: ENOMEM on failure, MALLOC_PERTURB_ filling and
/// the tracking hook on success.
unsafe fn finish_alloc(m: *mut u8, n: usize) -> *mut u8 {
    if m.is_null() {
        os::set_errno(libc::ENOMEM);
        return m;
    }
    let p = tunables::PERTURB.load(Relaxed);
    if p != 0 {
        // SAFETY: m has at least n usable bytes.
        unsafe { core::ptr::write_bytes(m, (p ^ 0xff) as u8, n) };
    }
    hooks::on_alloc(m, n);
    m
}

// ------------------------------------------------------------------ free

#[inline(always)]
pub unsafe fn free(p: *mut u8) {
    if p.is_null() {
        return;
    }
    if hooks::active() {
        // SAFETY: forwarded.
        return unsafe { free_tracked(p) };
    }
    // SAFETY: forwarded.
    unsafe { free_untracked(p) }
}

#[cold]
#[inline(never)]
unsafe fn free_tracked(p: *mut u8) {
    hooks::on_free(p);
    // SAFETY: forwarded.
    unsafe { free_untracked(p) }
}

#[inline(always)]
unsafe fn free_untracked(p: *mut u8) {
    // SAFETY: p was returned by this allocator (checked cheaply below and on the slow path).
    unsafe {
        let c = mem2chunk(p);
        let h = head(c);
        let sz = h & !FLAGS;
        let tc = tls::current();
        let off = sz.wrapping_sub(MINSIZE);
        if h & IS_MMAPPED == 0 && off <= (*tc).max_off {
            // max_off <= 1008, so idx < 64.
            let idx = (off >> 4) & (TCACHE_BINS - 1);
            if (*tc).counts[idx] < (*tc).limits[idx] && ((p as usize) | sz) & ALIGN_MASK == 0 {
                if *(p.add(SIZE_SZ) as *const usize) == (*tc).key {
                    tcache::check_double_free(tc, idx, p);
                }
                tcache::push(tc, idx, p);
                return;
            }
        }
        free_slow(p, c, h);
    }
}

#[cold]
#[inline(never)]
unsafe fn free_slow(p: *mut u8, c: *mut u8, h: usize) {
    let saved = os::errno();
    if (p as usize) & ALIGN_MASK != 0 {
        os::fatal("free(): invalid pointer", p as usize);
    }
    // SAFETY: p passed the alignment check; the header was read by the caller.
    unsafe {
        if h & IS_MMAPPED != 0 {
            large::unmap_chunk(c);
            os::set_errno(saved);
            return;
        }
        let sz = h & !FLAGS;
        if sz < MINSIZE || sz & ALIGN_MASK != 0 {
            os::fatal("free(): invalid size", p as usize);
        }
        let tc = tls::current();
        if let Some(idx) = tcache::bin_for(tc, sz) {
            // The bin is full: return half of it to the arenas in one batch.
            if *(p.add(SIZE_SZ) as *const usize) == (*tc).key {
                tcache::check_double_free(tc, idx, p);
            }
            tcache::flush(tc, idx, ((*tc).limits[idx] as usize).div_ceil(2));
            tcache::push(tc, idx, p);
        } else {
            let perturb = tunables::PERTURB.load(Relaxed);
            if perturb != 0 {
                core::ptr::write_bytes(p, perturb as u8, sz - SIZE_SZ);
            }
            let a = arena_for_chunk(c);
            if !(*a).poisoned {
                lock_arena(a);
                (*a).int_free(c, sz, global::SECRET.load(Relaxed));
                unlock_arena(a);
            }
        }
    }
    os::set_errno(saved);
}

// ------------------------------------------------------------------ calloc / realloc

pub unsafe fn calloc(n: usize, m: usize) -> *mut u8 {
    let Some(total) = n.checked_mul(m) else {
        os::set_errno(libc::ENOMEM);
        return null_mut();
    };
    // SAFETY: malloc returns null or a block of at least `total` usable bytes.
    unsafe {
        let p = malloc(total);
        if p.is_null() {
            return p;
        }
        let c = mem2chunk(p);
        // A fresh mapping is already zero.
        if !is_mmapped(c) {
            core::ptr::write_bytes(p, 0, crate::chunk::usable_size(c));
        }
        p
    }
}

pub unsafe fn realloc(p: *mut u8, n: usize) -> *mut u8 {
    // SAFETY: p is null or a live block of this allocator.
    unsafe {
        if p.is_null() {
            return malloc(n);
        }
        if n == 0 {
            free(p);
            return null_mut();
        }
        if n > MAX_REQUEST {
            os::set_errno(libc::ENOMEM);
            return null_mut();
        }
        let c = mem2chunk(p);
        let h = head(c);
        if (p as usize) & ALIGN_MASK != 0 || (h & !FLAGS) < MINSIZE {
            os::fatal("realloc(): invalid pointer", p as usize);
        }
        let nb = request2size(n);
        let old_usable = crate::chunk::usable_size(c);
        if h & IS_MMAPPED != 0 {
            let saved = os::errno();
            let nc = large::remap_chunk(c, nb);
            os::set_errno(saved);
            if !nc.is_null() {
                let np = chunk2mem(nc);
                if np != p {
                    hooks::on_free(p);
                    hooks::on_alloc(np, n);
                }
                return np;
            }
            if old_usable >= n {
                return p;
            }
        } else {
            let old = h & !FLAGS;
            if old >= nb && old - nb < MINSIZE {
                return p;
            }
            let a = arena_for_chunk(c);
            if !(*a).poisoned {
                lock_arena(a);
                let ok = (*a).try_resize(c, old, nb, global::SECRET.load(Relaxed));
                unlock_arena(a);
                if ok {
                    return p;
                }
            }
        }
        let np = malloc(n);
        if np.is_null() {
            return np;
        }
        core::ptr::copy_nonoverlapping(p, np, old_usable.min(n));
        free(p);
        np
    }
}

pub unsafe fn reallocarray(p: *mut u8, n: usize, m: usize) -> *mut u8 {
    match n.checked_mul(m) {
        // SAFETY: forwarded.
        Some(t) => unsafe { realloc(p, t) },
        None => {
            os::set_errno(libc::ENOMEM);
            null_mut()
        }
    }
}

// ------------------------------------------------------------------ aligned

/// memalign: `align` is rounded up to a power of two; alignments above 2^62 give EINVAL.
pub unsafe fn memalign(align: usize, n: usize) -> *mut u8 {
    // SAFETY: forwarded.
    unsafe {
        if align <= ALIGN {
            return malloc(n);
        }
        if align > (1usize << 62) {
            os::set_errno(libc::EINVAL);
            return null_mut();
        }
        let align = align.next_power_of_two();
        if n > MAX_REQUEST - align - MINSIZE {
            os::set_errno(libc::ENOMEM);
            return null_mut();
        }
        let nb = request2size(n);
        let tc = thread_cache();
        finish_alloc(alloc_chunk(tc, nb, align), n)
    }
}

pub unsafe fn posix_memalign(out: *mut *mut u8, align: usize, n: usize) -> i32 {
    if align % core::mem::size_of::<usize>() != 0 || !align.is_power_of_two() {
        return libc::EINVAL;
    }
    let saved = os::errno();
    // SAFETY: forwarded; out is the caller's valid pointer.
    unsafe {
        let p = memalign(align, n);
        if p.is_null() {
            os::set_errno(saved);
            return libc::ENOMEM;
        }
        *out = p;
    }
    0
}

/// aligned_alloc (glibc 2.38+): the alignment must be a power of two, else EINVAL.
pub unsafe fn aligned_alloc(align: usize, n: usize) -> *mut u8 {
    if !align.is_power_of_two() {
        os::set_errno(libc::EINVAL);
        return null_mut();
    }
    // SAFETY: forwarded.
    unsafe { memalign(align, n) }
}

pub unsafe fn valloc(n: usize) -> *mut u8 {
    global::ensure_init();
    // SAFETY: forwarded.
    unsafe { memalign(os::page_size(), n) }
}

pub unsafe fn pvalloc(n: usize) -> *mut u8 {
    global::ensure_init();
    let page = os::page_size();
    if n > MAX_REQUEST - page {
        os::set_errno(libc::ENOMEM);
        return null_mut();
    }
    // SAFETY: forwarded.
    unsafe { memalign(page, round_up(n.max(1), page)) }
}

// ------------------------------------------------------------------ introspection

pub unsafe fn usable_size(p: *mut u8) -> usize {
    if p.is_null() {
        return 0;
    }
    // SAFETY: p is a live block.
    unsafe { crate::chunk::usable_size(mem2chunk(p)) }
}

/// malloc_trim: returns free memory to the OS in every arena; 1 if any was released.
pub fn trim(pad: usize) -> i32 {
    global::ensure_init();
    let secret = global::SECRET.load(Relaxed);
    let mut released = false;
    global::for_each_arena(|a| {
        lock_arena(a);
        // SAFETY: the arena is locked.
        released |= unsafe { (*a).trim(pad, secret) };
        unlock_arena(a);
    });
    released as i32
}

pub fn mallopt(param: i32, value: i32) -> i32 {
    global::ensure_init();
    tunables::mallopt(param, value)
}
