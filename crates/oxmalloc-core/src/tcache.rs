//! The per-thread cache (tcache): 64 singly-linked lists of freed blocks, one per 16-byte size
//! class up to 1032 bytes, used without locks or atomics; refilled and flushed in batches.

use crate::arena::{protect, reveal, Arena};
use crate::chunk::*;
use crate::global;
use core::ptr::null_mut;

pub const UNINIT: u8 = 0;
pub const ACTIVE: u8 = 1;
pub const INITIALIZING: u8 = 2;
pub const DEAD: u8 = 3;

#[repr(C, align(64))]
pub struct ThreadCache {
    /// List heads (user pointers); each block's first word holds the mangled next pointer.
    pub entries: [*mut u8; TCACHE_BINS],
    pub counts: [u16; TCACHE_BINS],
    /// Blocks each bin may hold; all 0 while the cache is not active (or disabled), which
    /// sends every free to the slow path.
    pub limits: [u16; TCACHE_BINS],
    pub state: u8,
    /// Largest chunk size minus MINSIZE that the cache holds.
    pub max_off: usize,
    /// Free-list pointer mangling secret and the cached-block key (copies of the globals).
    pub secret: usize,
    pub key: usize,
    /// The arena this thread allocates from.
    pub arena: *mut Arena,
    /// The arena whose lock this thread holds right now (null when none): lets a fork from a
    /// signal handler that interrupted the allocator know which lock it must not wait for.
    pub held: *mut Arena,
    /// Whether this thread holds the arena-list lock.
    pub holds_list: bool,
    /// Hardened mode: freed blocks waiting to be released, and the state of the generator
    /// that picks which one leaves.
    pub quarantine: [*mut u8; QUARANTINE],
    pub rng: u64,
}

/// Blocks a thread holds back in hardened mode.
pub const QUARANTINE: usize = 32;

/// Sets the bins' capacities and the largest cached size from the tunables (thread start).
/// By default a bin holds about 8 KiB, at least `tcache_count` and at most 4 × that many
/// blocks: many small blocks, few large ones. An explicit glibc.malloc.tcache_count sets every
/// bin to exactly that count; MALLOC_PERTURB_ turns the cache off so every block is filled,
/// and so does the hardened mode, whose quarantine takes the cache's place.
pub unsafe fn configure(tc: *mut ThreadCache) {
    use crate::tunables::{self, MAX_TCACHE_COUNT};
    use core::sync::atomic::Ordering::Relaxed;
    let count = tunables::TCACHE_COUNT.load(Relaxed).min(MAX_TCACHE_COUNT);
    let fixed = tunables::TCACHE_COUNT_SET.load(Relaxed);
    let off = tunables::PERTURB.load(Relaxed) != 0 || tunables::HARDEN.load(Relaxed);
    for i in 0..TCACHE_BINS {
        let csize = MINSIZE + 16 * i;
        let n = if off {
            0
        } else if fixed {
            count
        } else {
            (8192 / csize).clamp(count, 4 * count)
        };
        // SAFETY: tc is this thread's cache.
        unsafe { (*tc).limits[i] = n.min(MAX_TCACHE_COUNT) as u16 };
    }
    let maxreq = tunables::TCACHE_MAX.load(Relaxed).min(TCACHE_MAX_REQUEST);
    // SAFETY: as above.
    unsafe { (*tc).max_off = request2size(maxreq) - MINSIZE };
}

/// The bin that caches chunks of size `nb` for this thread, if the cache is on for that size.
#[inline]
pub unsafe fn bin_for(tc: *mut ThreadCache, nb: usize) -> Option<usize> {
    // SAFETY: tc is this thread's cache.
    unsafe {
        if (*tc).state != ACTIVE || nb - MINSIZE > (*tc).max_off {
            return None;
        }
        let idx = tcache_index(nb);
        ((*tc).limits[idx] > 0).then_some(idx)
    }
}

/// Takes a block from bin `idx`, or null. Each link is checked (alignment, and that it points
/// into arena memory) before it becomes the list head, so a corrupted link is caught here.
#[inline(always)]
pub unsafe fn pop(tc: *mut ThreadCache, idx: usize) -> *mut u8 {
    // SAFETY: tc is this thread's cache; entries hold valid blocks with mangled links.
    unsafe {
        let e = (*tc).entries[idx];
        if !e.is_null() {
            let n = reveal(e, *(e as *const usize), (*tc).secret);
            if !crate::registry::valid_link(n) {
                corrupted_link(n);
            }
            (*tc).entries[idx] = n;
            (*tc).counts[idx] -= 1;
            *(e.add(SIZE_SZ) as *mut usize) = 0;
        }
        e
    }
}

#[cold]
#[inline(never)]
fn corrupted_link(n: *mut u8) -> ! {
    crate::os::fatal("malloc(): corrupted free list (tcache)", n as usize)
}

/// Puts block `mem` on bin `idx` (the caller checked the count and the header). The block's
/// second word gets the process-wide key, which marks it as cached: the header is not touched,
/// because other threads may update its PREV_INUSE bit under their arena lock.
#[inline(always)]
pub unsafe fn push(tc: *mut ThreadCache, idx: usize, mem: *mut u8) {
    // SAFETY: mem is a free block of this size class; it now belongs to the cache.
    unsafe {
        *(mem as *mut usize) = protect(mem, (*tc).entries[idx], (*tc).secret);
        *(mem.add(SIZE_SZ) as *mut usize) = (*tc).key;
        (*tc).entries[idx] = mem;
        (*tc).counts[idx] += 1;
    }
}

/// A block being freed carries the cached-block key: it is in this thread's cache (found on
/// the walk) or in another thread's. A 64-bit random key makes chance equality negligible, so
/// both abort; the walk only makes the message precise.
#[cold]
#[inline(never)]
pub unsafe fn double_free(tc: *mut ThreadCache, idx: usize, mem: *mut u8) -> ! {
    // SAFETY: walks this thread's own list, bounded by its count.
    unsafe {
        let idx = idx & (TCACHE_BINS - 1);
        let mut e = (*tc).entries[idx];
        let mut n = 0u32;
        while !e.is_null() && n <= (*tc).counts[idx] as u32 {
            if e == mem {
                crate::os::fatal(
                    "free(): double free detected (block in the thread cache)",
                    mem as usize,
                );
            }
            e = reveal(e, *(e as *const usize), (*tc).secret);
            if !crate::registry::valid_link(e) {
                break;
            }
            n += 1;
        }
    }
    crate::os::fatal(
        "free(): double free detected (block in another thread's cache)",
        mem as usize,
    )
}

/// Refills bin `idx` from the thread's arena under one lock and returns one block (or null):
/// a whole flushed batch if the arena has one for this bin, else freshly found chunks.
#[cold]
#[inline(never)]
pub unsafe fn refill(tc: *mut ThreadCache, idx: usize, nb: usize) -> *mut u8 {
    // SAFETY: tc is active and bin idx is empty; its arena is valid; batches and chunks
    // handed over are in use, of size nb, owned by this arena.
    unsafe {
        let a = global::thread_arena(tc);
        let secret = (*tc).secret;
        let batch = ((*tc).limits[idx] as usize).div_ceil(2).max(1);
        global::lock_arena(a);
        if let Some((first, count)) = (*a).xfer_pop(idx, secret) {
            (*tc).entries[idx] = first;
            (*tc).counts[idx] = count as u16;
        } else {
            (*a).int_malloc_batch(nb, batch, secret, |c| push(tc, idx, chunk2mem(c)));
        }
        global::unlock_arena(a);
        pop(tc, idx)
    }
}

/// Returns up to `n` blocks of bin `idx` to their arenas. When they all belong to one arena
/// (the usual case) they go as one batch, cut off the list without touching each block;
/// otherwise one by one, locking each arena once per run of its blocks.
#[cold]
#[inline(never)]
pub unsafe fn flush(tc: *mut ThreadCache, idx: usize, n: usize) {
    // SAFETY: blocks on the list are in-use chunks of some arena; each arena is locked
    // while its chunks are handed to it.
    unsafe {
        let secret = (*tc).secret;
        let first = (*tc).entries[idx];
        if first.is_null() || n == 0 {
            return;
        }
        let owner = global::arena_for_chunk(mem2chunk(first));
        let mut last = first;
        let mut count = 1;
        let mut one_arena = !(*owner).poisoned;
        while count < n && one_arena {
            let m = reveal(last, *(last as *const usize), secret);
            if !crate::registry::valid_link(m) {
                corrupted_link(m);
            }
            if m.is_null() {
                break;
            }
            one_arena = global::arena_for_chunk(mem2chunk(m)) == owner;
            if one_arena {
                last = m;
                count += 1;
            }
        }
        if one_arena {
            let rest = reveal(last, *(last as *const usize), secret);
            if !crate::registry::valid_link(rest) {
                corrupted_link(rest);
            }
            *(last as *mut usize) = protect(last, null_mut(), secret);
            (*tc).entries[idx] = rest;
            (*tc).counts[idx] -= count as u16;
            // No lock: the batch goes on the owner's lock-free stack for this bin.
            (*(*owner).remote).push(idx, first, count, secret);
            return;
        }
        let mut held: *mut Arena = null_mut();
        for _ in 0..n {
            let m = pop(tc, idx);
            if m.is_null() {
                break;
            }
            let c = mem2chunk(m);
            let a = global::arena_for_chunk(c);
            if (*a).poisoned {
                continue; // a forked child's half-updated arena: leak the block
            }
            if a != held {
                if !held.is_null() {
                    global::unlock_arena(held);
                }
                global::lock_arena(a);
                held = a;
            }
            (*a).int_free(c, size(c), secret);
        }
        if !held.is_null() {
            global::unlock_arena(held);
        }
    }
}

/// Empties every bin (thread exit, fork helpers, statistics precision).
pub unsafe fn flush_all(tc: *mut ThreadCache) {
    for i in 0..TCACHE_BINS {
        // SAFETY: as for flush.
        unsafe {
            let n = (*tc).counts[i] as usize;
            if n > 0 {
                flush(tc, i, n);
            }
        }
    }
}
