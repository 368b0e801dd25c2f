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
    /// Which heap the blocks of each list come from (`heap_key`), or MIXED once a block of
    /// another heap joined a non-empty list. A homogeneous list leaves the cache whole, in
    /// O(1); only a mixed one is walked and sorted by arena when it leaves.
    pub keys: [u32; TCACHE_BINS],
    /// Slow start: a refill that must find fresh chunks takes 2^fill[i] of them (at most
    /// half the limit) and doubles the next one, so a thread that uses a size a few times
    /// does not carve a whole batch of it.
    pub fill: [u8; TCACHE_BINS],
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
    /// The slow paths' part of the cache (spare lists, quarantine), or null.
    pub ext: *mut CacheExt,
}

/// The parts of a thread's cache that only slow paths touch, kept out of static TLS so the
/// library's TLS block stays small (glibc can then still dlopen it): allocated from the
/// thread's arena when its cache is set up, freed when the thread exits. Without it (arena
/// out of memory) the cache works without spare lists and the hardened mode without its
/// quarantine.
#[repr(C)]
pub struct CacheExt {
    /// A second, full list per bin (exactly `limits[i]` blocks, or null): when a bin fills,
    /// its list moves here and the bin starts empty; when it empties, the spare comes back.
    /// Only a third full list goes to the arena, so alternating frees and mallocs at the
    /// limit never thrash (the magazine pair of Bonwick's slab caches).
    pub spare: [*mut u8; TCACHE_BINS],
    /// Bit i: the spare list of bin i is mixed.
    pub spare_mixed: u64,
    /// Bit i: this thread has refilled bin i, i.e. it allocates that size. A bin it only
    /// frees into (a consumer thread) keeps no spare: a full list goes back at once.
    pub refilled: u64,
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

/// The heap key of chunk `c`: the number of the 64 MiB-aligned slot that holds it. A heap
/// fills its slot alone and brk memory is the main arena's, so blocks with equal keys belong
/// to one arena (a brk heap spanning several slots has several keys; lists mixing them are
/// sorted when they leave). Two instructions on the free path.
#[inline(always)]
pub fn heap_key(c: *mut u8) -> u32 {
    // Slot numbers are below 2^21 (47-bit addresses), so never MIXED.
    (c as usize >> crate::heap::HEAP_SHIFT) as u32
}

/// The key of a list whose blocks may come from several arenas.
pub const MIXED: u32 = u32::MAX;

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

/// The cached-block mark of block `mem`: the process-wide random key mixed with the block's
/// address. A block in a cache (or on an arena's deferred-free list) holds its mark in its
/// second word; a mark copied from one block into another (glibc's tst-tcfree3 copies a freed
/// block's key into live ones) is not that block's mark, so a valid program cannot make a live
/// block look cached; user data equals it by chance with probability 2^-64.
#[inline(always)]
pub fn mark(mem: *const u8, key: usize) -> usize {
    key ^ mem as usize
}

/// Puts block `mem` on bin `idx` (the caller checked the count and the header). The block's
/// second word gets its mark (see `mark`), which says it is cached: the header is not touched,
/// because other threads may update its PREV_INUSE bit under their arena lock.
#[inline(always)]
pub unsafe fn push(tc: *mut ThreadCache, idx: usize, mem: *mut u8) {
    // SAFETY: mem is a free block of this size class; it now belongs to the cache.
    unsafe {
        *(mem as *mut usize) = protect(mem, (*tc).entries[idx], (*tc).secret);
        *(mem.add(SIZE_SZ) as *mut usize) = mark(mem, (*tc).key);
        (*tc).entries[idx] = mem;
        (*tc).counts[idx] += 1;
    }
}

/// A block being freed carries its cached-block mark: it is in this thread's cache (found on
/// the walk) or in another thread's (or on an arena's deferred-free list). The mark is keyed by
/// a 64-bit secret and the block's own address, so neither chance nor copied bytes produce it:
/// both cases abort; the walk only makes the message precise.
#[cold]
#[inline(never)]
pub unsafe fn double_free(tc: *mut ThreadCache, idx: usize, mem: *mut u8) -> ! {
    // SAFETY: walks this thread's own list, bounded by its count.
    unsafe {
        let idx = idx & (TCACHE_BINS - 1);
        let ext = (*tc).ext;
        let spare = if ext.is_null() {
            null_mut()
        } else {
            (*ext).spare[idx]
        };
        for (mut e, max) in [
            ((*tc).entries[idx], (*tc).counts[idx]),
            (spare, (*tc).limits[idx]),
        ] {
            let mut n = 0u32;
            while !e.is_null() && n <= max as u32 {
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
    }
    crate::os::fatal(
        "free(): double free detected (block in another thread's cache)",
        mem as usize,
    )
}

/// Refills empty bin `idx` and returns one block (or null): the spare list if there is one
/// (no lock), else, under the arena's lock, a whole batch some thread flushed for this bin,
/// else freshly found chunks.
#[cold]
#[inline(never)]
pub unsafe fn refill(tc: *mut ThreadCache, idx: usize, nb: usize) -> *mut u8 {
    // SAFETY: tc is active and bin idx is empty; its arena is valid; lists, batches and
    // chunks handed over are in use, of size nb, each list owned by one arena.
    unsafe {
        let ext = (*tc).ext;
        if !ext.is_null() {
            (*ext).refilled |= 1 << idx;
        }
        if !ext.is_null() && !(*ext).spare[idx].is_null() {
            let spare = (*ext).spare[idx];
            (*ext).spare[idx] = null_mut();
            install(tc, idx, spare, (*tc).limits[idx] as usize);
            if (*ext).spare_mixed & (1 << idx) != 0 {
                (*ext).spare_mixed &= !(1 << idx);
                (*tc).keys[idx] = MIXED;
            }
            return pop(tc, idx);
        }
        let a = global::thread_arena(tc);
        let secret = (*tc).secret;
        let f = (*tc).fill[idx];
        let batch = (1usize << f)
            .min(((*tc).limits[idx] as usize).div_ceil(2))
            .max(1);
        global::lock_arena(a);
        if let Some((first, count)) = (*a).xfer_pop(idx, secret) {
            install(tc, idx, first, count);
        } else {
            (*a).int_malloc_batch(nb, batch, secret, |c| push(tc, idx, chunk2mem(c)));
            if f < 15 {
                (*tc).fill[idx] = f + 1;
            }
            let e = (*tc).entries[idx];
            if !e.is_null() {
                let c = mem2chunk(e);
                (*tc).keys[idx] = heap_key(c);
            }
        }
        global::unlock_arena(a);
        pop(tc, idx)
    }
}

/// Makes list `first` (`count` blocks of one arena) bin `idx`'s list, which is empty.
#[inline]
unsafe fn install(tc: *mut ThreadCache, idx: usize, first: *mut u8, count: usize) {
    // SAFETY: tc is this thread's cache and bin idx is empty; first heads a list of
    // in-use blocks of one arena (the key needs only its address).
    unsafe {
        (*tc).entries[idx] = first;
        (*tc).counts[idx] = count as u16;
        (*tc).keys[idx] = heap_key(mem2chunk(first));
    }
}

/// Caches block `p` (chunk `c`) in bin `idx` when the fast path could not: the
/// bin is full (its list becomes the spare; an older spare goes back to the arenas), or the
/// block comes from another heap than the list's blocks (the list becomes mixed), or the bin
/// is empty with a stale key.
#[cold]
#[inline(never)]
pub unsafe fn push_slow(tc: *mut ThreadCache, idx: usize, p: *mut u8, c: *mut u8) {
    // SAFETY: p is a validated in-use block of bin idx's size; the lists are this thread's.
    unsafe {
        if *(p.add(SIZE_SZ) as *const usize) == mark(p, (*tc).key) {
            double_free(tc, idx, p);
        }
        let key = heap_key(c);
        if (*tc).counts[idx] >= (*tc).limits[idx] {
            let ext = (*tc).ext;
            let list = (*tc).entries[idx];
            let mixed = (*tc).keys[idx] == MIXED;
            if ext.is_null() || (*ext).refilled & (1 << idx) == 0 {
                // No spare slot, or no use for one: the full list goes back at once.
                give_back(tc, idx, list, (*tc).counts[idx] as usize, mixed);
            } else {
                let old = (*ext).spare[idx];
                if !old.is_null() {
                    let old_mixed = (*ext).spare_mixed & (1 << idx) != 0;
                    give_back(tc, idx, old, (*tc).limits[idx] as usize, old_mixed);
                }
                (*ext).spare[idx] = list;
                if mixed {
                    (*ext).spare_mixed |= 1 << idx;
                } else {
                    (*ext).spare_mixed &= !(1 << idx);
                }
            }
            (*tc).entries[idx] = null_mut();
            (*tc).counts[idx] = 0;
        }
        if (*tc).counts[idx] == 0 {
            (*tc).keys[idx] = key;
        } else if (*tc).keys[idx] != key {
            (*tc).keys[idx] = MIXED;
        }
        push(tc, idx, p);
    }
}

#[cold]
#[inline(never)]
fn corrupted_batch(n: *mut u8) -> ! {
    crate::os::fatal("free(): corrupted free list (tcache)", n as usize)
}

/// Hands list `first` (`n` blocks of bin `idx`, the last link null) back to the arenas as
/// batches on their lock-free stacks, without a lock. A homogeneous list goes whole, without
/// a walk; a mixed one is sorted into one batch per arena (up to SORT_WAYS arenas at a time).
unsafe fn give_back(tc: *mut ThreadCache, idx: usize, first: *mut u8, n: usize, mixed: bool) {
    // SAFETY: the list's blocks are in-use chunks; a homogeneous list's all belong to the
    // first block's arena.
    unsafe {
        if first.is_null() || !crate::registry::valid_link(first) {
            corrupted_batch(first);
        }
        let secret = (*tc).secret;
        if !mixed {
            let owner = global::arena_for_chunk(mem2chunk(first));
            if !(*owner).poisoned {
                (*(*owner).remote).push(idx, first, n, secret);
            }
            // else: a forked child's half-updated arena: leak the blocks
            return;
        }
        // Sorted by heap key (blocks of one heap belong to one arena): comparing keys needs
        // only the block's own header, not the heap's.
        const SORT_WAYS: usize = 8;
        let mut key = [0u32; SORT_WAYS];
        let mut owner = [null_mut::<Arena>(); SORT_WAYS];
        let mut list = [null_mut::<u8>(); SORT_WAYS];
        let mut count = [0usize; SORT_WAYS];
        let mut used = 0;
        let mut m = first;
        for _ in 0..n {
            if m.is_null() {
                break;
            }
            let next = reveal(m, *(m as *const usize), secret);
            if !crate::registry::valid_link(next) {
                corrupted_link(next);
            }
            let c = mem2chunk(m);
            let k = heap_key(c);
            let mut w = 0;
            while w < used && key[w] != k {
                w += 1;
            }
            if w == SORT_WAYS {
                // More heaps than ways: hand the fullest sublist over and reuse its slot.
                w = 0;
                for v in 1..SORT_WAYS {
                    if count[v] > count[w] {
                        w = v;
                    }
                }
                if !(*owner[w]).poisoned {
                    (*(*owner[w]).remote).push(idx, list[w], count[w], secret);
                }
                list[w] = null_mut();
                count[w] = 0;
            }
            if w == used {
                used += 1;
            }
            if count[w] == 0 {
                key[w] = k;
                owner[w] = global::arena_for_chunk(c);
            }
            *(m as *mut usize) = protect(m, list[w], secret);
            list[w] = m;
            count[w] += 1;
            m = next;
        }
        for w in 0..used {
            if count[w] > 0 && !(*owner[w]).poisoned {
                (*(*owner[w]).remote).push(idx, list[w], count[w], secret);
            }
        }
    }
}

/// Empties every bin and its spare (thread exit, fork helpers, statistics precision).
pub unsafe fn flush_all(tc: *mut ThreadCache) {
    for i in 0..TCACHE_BINS {
        // SAFETY: as for give_back; each list is detached before it is handed over.
        unsafe {
            let n = (*tc).counts[i] as usize;
            let first = (*tc).entries[i];
            (*tc).entries[i] = null_mut();
            (*tc).counts[i] = 0;
            if n > 0 {
                give_back(tc, i, first, n, (*tc).keys[i] == MIXED);
            }
            let ext = (*tc).ext;
            if !ext.is_null() && !(*ext).spare[i].is_null() {
                let spare = (*ext).spare[i];
                (*ext).spare[i] = null_mut();
                let mixed = (*ext).spare_mixed & (1 << i) != 0;
                give_back(tc, i, spare, (*tc).limits[i] as usize, mixed);
            }
        }
    }
}
