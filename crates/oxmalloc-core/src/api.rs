//! The allocation API with glibc's semantics, shared by the C ABI and the Rust front end:
//! malloc → tcache → arena (fast/small/unsorted/large bins → top → brk/heap) or mmap.

use crate::arena::round_up;
use crate::chunk::*;
use crate::global::{self, arena_for_chunk, lock_arena, thread_arena, unlock_arena};
use crate::tcache::{self, UNINIT};
use crate::{harden, hooks, large, os, registry, tls, tunables};
use core::ptr::null_mut;
use core::sync::atomic::Ordering::Relaxed;

// ------------------------------------------------------------------ malloc

#[inline(always)]
pub unsafe fn malloc(n: usize) -> *mut u8 {
    // SAFETY: forwarded.
    unsafe { malloc_filled(n, true) }
}

/// malloc, filling a block from the slow path with MALLOC_PERTURB_'s byte only when
/// `perturb` (calloc zeroes instead: it must not decide from a second, racing read of the
/// tunable whether a fresh mapping still needs zeroing).
#[inline(always)]
unsafe fn malloc_filled(n: usize, perturb: bool) -> *mut u8 {
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
    unsafe { malloc_slow(n, perturb) }
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
unsafe fn malloc_slow(n: usize, perturb: bool) -> *mut u8 {
    if harden::on() {
        // SAFETY: forwarded.
        return unsafe { harden::malloc(n) };
    }
    // SAFETY: forwarded.
    unsafe { malloc_with(n, n, perturb) }
}

/// malloc without the thread cache's fast path or the hardened mode's wrapping, reporting
/// `shown` bytes to the tracking hook (the hardened mode asks for more than its caller did).
pub(crate) unsafe fn malloc_sized(n: usize, shown: usize) -> *mut u8 {
    // SAFETY: forwarded.
    unsafe { malloc_with(n, shown, true) }
}

unsafe fn malloc_with(n: usize, shown: usize, perturb: bool) -> *mut u8 {
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
        finish_alloc(m, if perturb { n } else { 0 }, shown)
    }
}

/// This thread's cache, set up on the thread's first slow-path call (which also runs the
/// process's initialisation).
#[inline]
fn thread_cache() -> *mut tcache::ThreadCache {
    let tc = tls::current();
    // SAFETY: tc is this thread's cache.
    if unsafe { (*tc).state } == UNINIT {
        // SAFETY: tc is this thread's cache.
        unsafe { global::thread_init(tc) };
    }
    tc
}

/// Allocates a chunk of `nb` bytes whose user pointer is aligned to `align` (16 or a larger
/// power of two) and returns its user pointer, or null. glibc's order: the thread's arena
/// first (bins, then the top); a request of at least mmap_threshold that the arena cannot
/// serve without growing gets a mapping of its own, and only when mapping fails does the
/// arena grow for it. Any request the arena cannot serve at all is mapped as a last resort.
unsafe fn alloc_chunk(tc: *mut tcache::ThreadCache, nb: usize, align: usize) -> *mut u8 {
    let mapped = large::wants_mmap(nb);
    // SAFETY: the caller passes this thread's cache.
    let a = unsafe { thread_arena(tc) };
    let secret = global::SECRET.load(Relaxed);
    let from_arena = |may_grow: bool| {
        // SAFETY: a is a live arena; it is locked around int_malloc and released after.
        unsafe {
            lock_arena(a);
            let c = if align <= ALIGN {
                (*a).int_malloc_from(nb, secret, may_grow)
            } else {
                (*a).int_memalign(align, nb, secret, may_grow)
            };
            unlock_arena(a);
            c
        }
    };
    let mut c = from_arena(!mapped);
    if c.is_null() {
        // A large request the arena cannot serve as it is, or an arena out of memory. A
        // failed mmap followed by a successful fallback leaves errno as it was.
        let saved = os::errno();
        c = large::map_chunk(nb, align);
        if c.is_null() && mapped {
            c = from_arena(true);
        }
        if !c.is_null() {
            os::set_errno(saved);
        }
    }
    if c.is_null() {
        null_mut()
    } else {
        chunk2mem(c)
    }
}

/// The common end of every slow allocation: ENOMEM on failure, MALLOC_PERTURB_ filling of
/// the first `n` bytes and the tracking hook (told `shown` bytes) on success.
unsafe fn finish_alloc(m: *mut u8, n: usize, shown: usize) -> *mut u8 {
    if m.is_null() {
        os::set_errno(libc::ENOMEM);
        return m;
    }
    let p = tunables::PERTURB.load(Relaxed);
    if p != 0 && n != 0 {
        // SAFETY: m has at least n usable bytes.
        unsafe { core::ptr::write_bytes(m, (p ^ 0xff) as u8, n) };
    }
    hooks::on_alloc(m, shown);
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
    unsafe {
        if harden::on() {
            harden::free(p)
        } else {
            free_untracked(p)
        }
    }
}

#[inline(always)]
pub(crate) unsafe fn free_untracked(p: *mut u8) {
    let c = mem2chunk(p);
    if (c as usize) & ALIGN_MASK != 0 || !registry::in_arena_memory(c as usize) {
        // SAFETY: forwarded; that path reads no header before the registry vouches for it.
        return unsafe { free_outside(p) };
    }
    // SAFETY: c is aligned and lies in arena memory, so its header is readable. The hot path
    // (a cached size, room in the bin, the list's heap) checks only that the header is not
    // marked free or mmapped and that the block is not cached already; every other path goes
    // through free_slow, which checks the tag first.
    unsafe {
        let h = head(c);
        let sz = h & SIZE_BITS;
        if h & (FREE_BIT | IS_MMAPPED) != 0 {
            bad_header(p, h, Caller::Free);
        }
        let tc = tls::current();
        let off = sz.wrapping_sub(MINSIZE);
        if off <= (*tc).max_off {
            // max_off <= 1008, so idx < 64.
            let idx = (off >> 4) & (TCACHE_BINS - 1);
            let key = (*tc).keys[idx];
            if (*tc).counts[idx] < (*tc).limits[idx]
                && (key == tcache::heap_key(c) || key == tcache::MIXED)
            {
                if *(p.add(SIZE_SZ) as *const usize) == tcache::mark(p, (*tc).key) {
                    tcache::double_free(tc, idx, p);
                }
                tcache::push(tc, idx, p);
                return;
            }
        }
        free_slow(p, c, h);
    }
}

/// Who is validating a pointer: names the function in the abort message.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Caller {
    Free,
    Realloc,
    UsableSize,
}

/// Aborts for a header that fails its check at a user pointer inside arena memory: a block
/// freed already (valid tag, free mark), or not a block oxmalloc returned (interior, stack or
/// stray pointer), or one whose header was overwritten.
#[cold]
#[inline(never)]
fn bad_header(p: *mut u8, h: usize, who: Caller) -> ! {
    let c = p.wrapping_sub(HDR);
    let freed = h & FREE_BIT != 0 && tag_ok(c, h) && h & IS_MMAPPED == 0;
    let msg = match (who, freed) {
        (Caller::Free, true) => "free(): double free detected",
        (Caller::Realloc, true) => "realloc(): invalid pointer (block already freed)",
        (Caller::UsableSize, true) => "malloc_usable_size(): invalid pointer (block already freed)",
        (Caller::Free, false) => "free(): invalid pointer or corrupted chunk header",
        (Caller::Realloc, false) => "realloc(): invalid pointer or corrupted chunk header",
        (Caller::UsableSize, false) => {
            "malloc_usable_size(): invalid pointer or corrupted chunk header"
        }
    };
    os::fatal(msg, p as usize)
}

/// A pointer outside arena memory: an mmapped block (looked up in the registry) or misuse.
/// Returns the mapping's length; with `remove`, the block is also unregistered.
#[cold]
#[inline(never)]
fn outside(p: *mut u8, who: Caller, remove: bool) -> usize {
    let c = p.wrapping_sub(HDR);
    let known = if (p as usize) & ALIGN_MASK != 0 {
        registry::Mapped::Unknown
    } else if remove {
        registry::map_remove(c as usize)
    } else {
        registry::map_lookup(c as usize)
    };
    let msg = match (known, who) {
        (registry::Mapped::Live(len), _) => {
            // SAFETY: the registry vouches that c heads a live mapping.
            if unsafe { large::header_ok(c, len) } {
                return len;
            }
            match who {
                Caller::Free => "free(): corrupted chunk header (mmapped block)",
                Caller::Realloc => "realloc(): corrupted chunk header (mmapped block)",
                Caller::UsableSize => "malloc_usable_size(): corrupted chunk header",
            }
        }
        (registry::Mapped::Freed, Caller::Free) => "free(): double free detected (mmapped block)",
        (registry::Mapped::Freed, Caller::Realloc) => {
            "realloc(): invalid pointer (block already freed)"
        }
        (registry::Mapped::Freed, Caller::UsableSize) => {
            "malloc_usable_size(): invalid pointer (block already freed)"
        }
        (registry::Mapped::Unknown, Caller::Free) => "free(): invalid pointer",
        (registry::Mapped::Unknown, Caller::Realloc) => "realloc(): invalid pointer",
        (registry::Mapped::Unknown, Caller::UsableSize) => "malloc_usable_size(): invalid pointer",
    };
    os::fatal(msg, p as usize)
}

/// The chunk header of live block `p` (validated; aborts on misuse) and, for an mmapped
/// block, the length of its mapping.
#[inline]
pub(crate) unsafe fn checked_head(p: *mut u8, who: Caller) -> (usize, Option<usize>) {
    let c = mem2chunk(p);
    if (c as usize) & ALIGN_MASK == 0 && registry::in_arena_memory(c as usize) {
        // SAFETY: aligned and inside arena memory: readable.
        let h = unsafe { head(c) };
        if h & CHECK_MASK != tag(c, h & SIZE_BITS) {
            bad_header(p, h, who);
        }
        // A block in some thread's cache carries the cached-block key in its second word.
        // SAFETY: a valid in-use header: the block has at least 16 usable bytes.
        if unsafe { *(p.add(SIZE_SZ) as *const usize) }
            == tcache::mark(p, global::TCACHE_KEY.load(Relaxed))
        {
            bad_header(p, h | FREE_BIT, who);
        }
        (h, None)
    } else {
        let len = outside(p, who, false);
        // SAFETY: the registry vouched for the mapping.
        (unsafe { head(c) }, Some(len))
    }
}

#[cold]
#[inline(never)]
unsafe fn free_outside(p: *mut u8) {
    let saved = os::errno();
    let len = outside(p, Caller::Free, true);
    // SAFETY: a live mmapped block, now unregistered.
    unsafe { large::unmap_chunk(mem2chunk(p), len) };
    os::set_errno(saved);
}

/// Frees arena block `p` (chunk `c`, header `h`, free and mmapped bits clear) when the hot path
/// cannot: its tcache bin is full or holds another heap's blocks (the list becomes mixed), the
/// size is not cached, or the thread has no cache yet. First the full header check the hot
/// path leaves out: the tag proves oxmalloc wrote this header, for this address and size (an
/// interior, stray or forged pointer, or a header an overflow rewrote, fails it; 1 in 32768
/// passes by chance).
#[cold]
#[inline(never)]
unsafe fn free_slow(p: *mut u8, c: *mut u8, h: usize) {
    let sz = h & SIZE_BITS;
    if h & CHECK_MASK != tag(c, sz) {
        bad_header(p, h, Caller::Free);
    }
    let saved = os::errno();
    if sz < MINSIZE {
        os::fatal("free(): invalid size", p as usize);
    }
    // SAFETY: p is a validated in-use block of size sz.
    unsafe {
        // A thread that only frees gets its cache here, so it returns blocks in batches.
        let tc = thread_cache();
        // Checked here against the global key too: this thread's cache may not be set up.
        if *(p.add(SIZE_SZ) as *const usize) == tcache::mark(p, global::TCACHE_KEY.load(Relaxed)) {
            tcache::double_free(tc, tcache_index(sz.min(TCACHE_MAX_CHUNK)), p);
        }
        if let Some(idx) = tcache::bin_for(tc, sz) {
            // A full bin, a mixed list, or a cache just set up (a thread that only frees).
            tcache::push_slow(tc, idx, p, c);
        } else {
            let perturb = tunables::PERTURB.load(Relaxed);
            if perturb != 0 {
                core::ptr::write_bytes(p, perturb as u8, sz - SIZE_SZ);
            }
            let a = arena_for_chunk(c);
            if !(*a).poisoned {
                let secret = global::SECRET.load(Relaxed);
                if global::try_lock_arena(a) {
                    (*a).drain_remote_chunks(secret);
                    (*a).int_free(c, sz, secret);
                    unlock_arena(a);
                } else {
                    // Busy: leave it to the lock holder instead of waiting. The key marks it
                    // freed, so a second free of it is caught meanwhile.
                    *(p.add(SIZE_SZ) as *mut usize) =
                        tcache::mark(p, global::TCACHE_KEY.load(Relaxed));
                    (*(*a).remote).push_chunk(p, secret);
                }
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
    if harden::on() {
        // SAFETY: forwarded.
        return unsafe { harden::calloc(total) };
    }
    // SAFETY: malloc_filled returns null or a block of at least `total` usable bytes.
    unsafe {
        let p = malloc_filled(total, false);
        if p.is_null() {
            return p;
        }
        let c = mem2chunk(p);
        // A fresh mapping is already zero (nothing filled it: perturb is off for calloc).
        if !is_mmapped(c) {
            core::ptr::write_bytes(p, 0, crate::chunk::usable_size(c));
        }
        p
    }
}

pub unsafe fn realloc(p: *mut u8, n: usize) -> *mut u8 {
    if hooks::active() {
        // SAFETY: forwarded.
        return unsafe { realloc_hooked(p, n) };
    }
    // SAFETY: forwarded (not hardened either: that sets the same byte).
    unsafe { realloc_core(p, n) }
}

/// realloc with the tracker told once (see hooks::Hooks), or with the hardened mode.
#[cold]
#[inline(never)]
unsafe fn realloc_hooked(p: *mut u8, n: usize) -> *mut u8 {
    let Some(h) = hooks::realloc_hooks().filter(|_| !p.is_null()) else {
        // SAFETY: forwarded.
        return unsafe { realloc_plain(p, n) };
    };
    // SAFETY: the hooks are valid functions; p is the caller's block.
    unsafe {
        if let Some(begin) = h.on_realloc_begin {
            begin(p);
        }
        let r = realloc_plain(p, n);
        if let Some(done) = h.on_realloc {
            // realloc(p, 0) frees p and returns null: told as a free (size 0, new null).
            let o = hooks::origin();
            done(p, r, n, &o);
        }
        r
    }
}

unsafe fn realloc_plain(p: *mut u8, n: usize) -> *mut u8 {
    if harden::on() {
        // SAFETY: forwarded.
        return unsafe { harden::realloc(p, n) };
    }
    // SAFETY: forwarded.
    unsafe { realloc_core(p, n) }
}

/// realloc in the arenas or the mmap path (no hooks, not hardened).
#[inline(always)]
unsafe fn realloc_core(p: *mut u8, n: usize) -> *mut u8 {
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
        let (h, mapped) = checked_head(p, Caller::Realloc);
        if (h & SIZE_BITS) < MINSIZE {
            os::fatal("realloc(): invalid size", p as usize);
        }
        let nb = request2size(n);
        let old_usable = crate::chunk::usable_size(c);
        if mapped.is_some() {
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
            let old = h & SIZE_BITS;
            // Shrinking by no more than the headroom below keeps the block as it is: a block
            // given headroom is not cut back at the next small step.
            if old >= nb && old - nb <= headroom(old) + MINSIZE / 2 {
                return p;
            }
            // Growing in place needs a free neighbour (a binned chunk or the top, both marked
            // free); when the next chunk is in use, skip the lock. The unlocked read is only a
            // hint: the header is always mapped, and try_resize decides under the lock.
            let next_free =
                core::ptr::read_volatile(c.add(old + SIZE_SZ) as *const usize) & FREE_BIT != 0;
            let a = arena_for_chunk(c);
            if (old >= nb || next_free) && !(*a).poisoned {
                // Small-step growth takes headroom in place too (see below).
                let want = if small_step(old_usable, n) {
                    request2size(old_usable + headroom(old_usable)).max(nb)
                } else {
                    nb
                };
                lock_arena(a);
                let ok = (*a).try_resize(c, old, nb, want, global::SECRET.load(Relaxed));
                unlock_arena(a);
                if ok {
                    return p;
                }
            }
        }
        // A block growing by small steps (a string appended to) that must move gets
        // headroom, so the next few steps fit in place instead of copying it each time.
        // Blocks growing geometrically, or shrinking, get exactly what they ask for.
        let mut np = null_mut();
        if small_step(old_usable, n) && mapped.is_none() {
            np = malloc(old_usable + headroom(old_usable));
        }
        if np.is_null() {
            np = malloc(n);
        }
        if np.is_null() {
            return np;
        }
        core::ptr::copy_nonoverlapping(p, np, old_usable.min(n));
        free(p);
        np
    }
}

/// Whether realloc from `usable` bytes to `n` is a small step of growth (at most 1/16 of the
/// block, or 32 bytes): a string appended to, not a vector growing by a factor (those bring
/// their own headroom and get exactly what they ask for).
#[inline]
fn small_step(usable: usize, n: usize) -> bool {
    n > usable && n - usable <= (usable / 16).max(32)
}

/// The headroom a block of `usable` bytes gets when it grows by a small step: 1/8 of it, at
/// least 64 bytes, so the next few steps fit without copying it each time.
#[inline]
fn headroom(usable: usize) -> usize {
    (usable / 8).max(64)
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

/// memalign: `align` is rounded up to a power of two; alignments above 2^63 give EINVAL (as
/// glibc 2.36: 2^63 itself is accepted and fails with ENOMEM).
pub unsafe fn memalign(align: usize, n: usize) -> *mut u8 {
    // SAFETY: forwarded.
    unsafe {
        if align <= ALIGN {
            return malloc(n);
        }
        if align > (1usize << 63) {
            os::set_errno(libc::EINVAL);
            return null_mut();
        }
        let align = align.next_power_of_two();
        if align > MAX_REQUEST - MINSIZE || n > MAX_REQUEST - align - MINSIZE {
            os::set_errno(libc::ENOMEM);
            return null_mut();
        }
        if harden::on() {
            return harden::memalign(align, n);
        }
        memalign_raw(align, n, n)
    }
}

/// memalign for a power-of-two `align` above 16 and a size known not to overflow, without the
/// hardened mode's wrapping.
pub(crate) unsafe fn memalign_raw(align: usize, n: usize, shown: usize) -> *mut u8 {
    let nb = request2size(n);
    let tc = thread_cache();
    // SAFETY: forwarded.
    unsafe { finish_alloc(alloc_chunk(tc, nb, align), n, shown) }
}

pub unsafe fn posix_memalign(out: *mut *mut u8, align: usize, n: usize) -> i32 {
    if !align.is_multiple_of(core::mem::size_of::<usize>()) || !align.is_power_of_two() {
        return libc::EINVAL;
    }
    // SAFETY: forwarded; out is the caller's valid pointer.
    unsafe {
        let p = memalign(align, n);
        if p.is_null() {
            // errno stays ENOMEM, as glibc leaves it.
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
    // SAFETY: p is validated before its header is used.
    unsafe {
        if harden::on() {
            return harden::usable(p);
        }
        checked_head(p, Caller::UsableSize);
        crate::chunk::usable_size(mem2chunk(p))
    }
}

/// The usable size of live block `p` from its chunk header alone, unvalidated (no header
/// check, no hardened-mode canary): what the tracker reads for blocks it knows are live, also
/// from inside the allocation before the canary is armed.
///
/// # Safety
/// `p` is a block this allocator handed out and that is not yet freed.
pub unsafe fn chunk_usable_size(p: *mut u8) -> usize {
    // SAFETY: the caller guarantees a live block, whose header is intact.
    unsafe { crate::chunk::usable_size(mem2chunk(p)) }
}

/// malloc_trim: returns free memory to the OS in every arena; 1 if any was released.
pub fn trim(pad: usize) -> i32 {
    global::ensure_init();
    let secret = global::SECRET.load(Relaxed);
    let mut released = false;
    global::for_each_arena(|a| {
        // SAFETY: a is a live arena from the list; it is locked while it is trimmed.
        released |= unsafe {
            lock_arena(a);
            let r = (*a).trim(pad, secret);
            unlock_arena(a);
            r
        };
    });
    released as i32
}

pub fn mallopt(param: i32, value: i32) -> i32 {
    global::ensure_init();
    if param == tunables::M_MXFAST {
        // As glibc's mallopt: empty the fast bins before their limit changes, so none holds
        // a chunk the new limit no longer serves (every arena here; glibc does the main one).
        let secret = global::SECRET.load(Relaxed);
        global::for_each_arena(|a| {
            // SAFETY: a is a live arena from the list, locked while it is consolidated.
            unsafe {
                lock_arena(a);
                (*a).consolidate(secret);
                unlock_arena(a);
            }
        });
    }
    tunables::mallopt(param, value)
}
