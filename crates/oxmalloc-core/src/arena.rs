//! Arenas: one lock, the bins, the fast bins and the top chunk; the slow paths of malloc and
//! free (_int_malloc/_int_free), coalescing, growing the top by brk or a heap, and trimming.

use crate::bins::{self, *};
use crate::chunk::*;
use crate::heap::{self, HeapInfo, HEAP_HDR, HEAP_MAX};
use crate::os;
use crate::sync::Mutex;
use crate::tunables;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering::*};

/// Freeing a chunk of at least this size consolidates fast bins and considers trimming.
pub const CONSOLIDATION_THRESHOLD: usize = 64 * 1024;
/// How many unsorted chunks one malloc sorts at most.
const MAX_UNSORTED_ITERS: usize = 10000;

/// Batches flushed into an arena without its lock: one lock-free stack per cache bin (pushed
/// with compare-and-swap by any thread, emptied whole with one swap by a lock holder, so there
/// is no ABA). Kept outside the Arena itself, which its lock holder borrows exclusively.
#[repr(C, align(64))]
pub struct RemoteBatches {
    heads: [AtomicPtr<u8>; TCACHE_BINS],
    /// Single chunks too large for the caches, freed while the arena was locked: a lock-free
    /// stack linked through each block's first word; the next lock holder frees them.
    chunks: AtomicPtr<u8>,
    /// Set when a batch is pushed; cleared by whoever drains every stack.
    any: AtomicBool,
}

impl RemoteBatches {
    pub const fn new() -> Self {
        RemoteBatches {
            heads: [const { AtomicPtr::new(null_mut()) }; TCACHE_BINS],
            chunks: AtomicPtr::new(null_mut()),
            any: AtomicBool::new(false),
        }
    }

    /// Pushes a batch (`first` heads `count` blocks linked in thread-cache format) for bin
    /// `idx`. Lock-free; any thread.
    pub unsafe fn push(&self, idx: usize, first: *mut u8, count: usize, secret: usize) {
        let head = &self.heads[idx];
        let mut old = head.load(Relaxed);
        loop {
            // SAFETY: first heads a batch of in-use blocks with >= 24 usable bytes, owned by
            // the flushing thread until the exchange below publishes it.
            unsafe { *(first.add(16) as *mut usize) = ((count << 48) | old as usize) ^ secret };
            match head.compare_exchange_weak(old, first, Release, Relaxed) {
                Ok(_) => break,
                Err(now) => old = now,
            }
        }
        self.any.store(true, Release);
    }

    /// Leaves block `mem` (an in-use chunk of this arena, already marked with the cached-block
    /// key by the caller) to be freed by the next lock holder. Lock-free; any thread.
    pub unsafe fn push_chunk(&self, mem: *mut u8, secret: usize) {
        let mut old = self.chunks.load(Relaxed);
        loop {
            // SAFETY: mem is the caller's block until the exchange publishes it.
            unsafe { *(mem as *mut usize) = protect(mem, old, secret) };
            match self
                .chunks
                .compare_exchange_weak(old, mem, Release, Relaxed)
            {
                Ok(_) => break,
                Err(now) => old = now,
            }
        }
    }

    /// Takes every batch pushed for bin `idx` (a chain in transfer-list format).
    fn take(&self, idx: usize) -> *mut u8 {
        if self.heads[idx].load(Relaxed).is_null() {
            return null_mut();
        }
        self.heads[idx].swap(null_mut(), Acquire)
    }
}

impl Default for RemoteBatches {
    fn default() -> Self {
        Self::new()
    }
}

#[repr(C)]
pub struct Arena {
    pub lock: Mutex,
    pub bins: Bins,
    fastbins: [*mut u8; NFASTBINS],
    /// Batches of blocks flushed from thread caches, per cache bin, kept in the caches' own
    /// list format so a flush or a refill moves a whole batch under the lock in O(1). Like
    /// fast-bin chunks they stay in use until consolidation drains them into the bins.
    xfer: [*mut u8; TCACHE_BINS],
    /// Batches other threads (or this arena's own threads) flushed without the lock.
    pub remote: *const RemoteBatches,
    /// Fast bins or transfer batches may hold chunks (consolidation has work to do).
    have_fast: bool,
    /// Fast bins may hold chunks.
    have_fastbins: bool,
    /// The main arena grows by brk until that fails (then it uses heaps, like the others).
    brk_mode: bool,
    pub top: *mut u8,
    /// The remainder of the last chunk split for a small request (glibc's last_remainder):
    /// while it is the only chunk in the unsorted bin, the next small request is cut from it
    /// directly, so a run of small requests carves one free chunk front to back.
    last_remainder: *mut u8,
    /// End of the brk segment the top lies in (main arena, brk mode).
    brk_end: usize,
    /// The heap the top lies in (heap mode), newest of the arena's heaps.
    heap: *mut HeapInfo,
    pub system_mem: usize,
    pub max_system_mem: usize,
    /// The next arena in the global list.
    pub next: *mut Arena,
    /// Threads using this arena as their own.
    pub attached: AtomicUsize,
    pub index: usize,
    /// Set in a forked child when the fork interrupted an operation on this arena (a fork from
    /// a signal handler): its lists may be half-updated, so the child neither allocates from it
    /// nor frees into it (such blocks are leaked in the child).
    pub poisoned: bool,
}

/// Mangles a single-linked free-list pointer stored at `pos` (safe-linking plus a
/// per-process secret): a stray write or a leaked value does not give a usable pointer.
#[inline(always)]
pub fn protect(pos: *mut u8, p: *mut u8, secret: usize) -> usize {
    ((pos as usize) >> 12) ^ (p as usize) ^ secret
}
#[inline(always)]
pub fn reveal(pos: *mut u8, v: usize, secret: usize) -> *mut u8 {
    (((pos as usize) >> 12) ^ v ^ secret) as *mut u8
}

impl Arena {
    pub const fn new() -> Self {
        Arena {
            lock: Mutex::new(),
            bins: Bins::new(),
            fastbins: [null_mut(); NFASTBINS],
            xfer: [null_mut(); TCACHE_BINS],
            remote: core::ptr::null(),
            have_fast: false,
            have_fastbins: false,
            brk_mode: false,
            top: null_mut(),
            last_remainder: null_mut(),
            brk_end: 0,
            heap: null_mut(),
            system_mem: 0,
            max_system_mem: 0,
            next: null_mut(),
            attached: AtomicUsize::new(0),
            index: 0,
            poisoned: false,
        }
    }

    /// Initialises an arena in place; `brk` selects the main arena's brk mode; `remote` is
    /// where other threads leave its blocks.
    pub fn init(&mut self, brk: bool, index: usize, remote: *const RemoteBatches) {
        self.remote = remote;
        self.bins.init();
        self.brk_mode = brk;
        self.index = index;
    }

    /// Creates a thread arena at the start of a fresh heap.
    pub fn create(index: usize) -> Option<*mut Arena> {
        let h = heap::new_heap(null_mut(), null_mut())?;
        let a_off = (HEAP_HDR + 63) & !63;
        let a = (h as usize + a_off) as *mut Arena;
        let r_off = (a_off + core::mem::size_of::<Arena>() + 63) & !63;
        let r = (h as usize + r_off) as *mut RemoteBatches;
        let top_off = (r_off + core::mem::size_of::<RemoteBatches>() + 15) & !15;
        // SAFETY: the heap is fresh writable memory, large enough for the header, the arena,
        // its remote stacks and an initial top; nothing else references it yet.
        unsafe {
            // Arena::new() and RemoteBatches::new() are all zero bytes (null pointers, zero
            // counters, unlocked mutex, false flags): zero in place rather than build the
            // 6 KiB value on the thread's stack and copy it.
            core::ptr::write_bytes(a, 0, 1);
            core::ptr::write_bytes(r, 0, 1);
            (*a).init(false, index, r);
            (*h).arena = a;
            let top = (h as *mut u8).add(top_off);
            let end = round_up(
                top_off + MINSIZE + tunables::TOP_PAD.load(Relaxed),
                os::page_size(),
            );
            let end = end.min(HEAP_MAX);
            (*h).size = end;
            (*a).heap = h;
            (*a).top = top;
            set_free_head(top, (end - top_off) | PREV_INUSE | IN_HEAP);
            (*a).system_mem = end;
            (*a).max_system_mem = end;
        }
        Some(a)
    }

    #[inline(always)]
    pub fn top_size(&self) -> usize {
        if self.top.is_null() {
            0
        } else {
            // SAFETY: top is a valid chunk header while non-null.
            unsafe { size(self.top) }
        }
    }

    pub fn has_fast(&self) -> bool {
        self.have_fast || self.has_remote()
    }

    /// Frees the chunks other threads left while the arena was locked. Lock held.
    #[inline]
    pub unsafe fn drain_remote_chunks(&mut self, secret: usize) {
        // SAFETY: remote lives as long as the arena.
        if self.remote.is_null() || unsafe { (*self.remote).chunks.load(Relaxed).is_null() } {
            return;
        }
        // SAFETY: as above; every block on the stack is an in-use chunk of this arena.
        unsafe {
            let mut m = (*self.remote).chunks.swap(null_mut(), Acquire);
            while !m.is_null() {
                let n = reveal(m, *(m as *const usize), secret);
                if !crate::registry::valid_link(n) {
                    os::fatal("free(): corrupted list of deferred frees", n as usize);
                }
                *(m.add(SIZE_SZ) as *mut usize) = 0;
                let c = mem2chunk(m);
                self.int_free(c, size(c), secret);
                m = n;
            }
        }
    }

    /// Whether other threads have left batches here since the last drain.
    #[inline]
    fn has_remote(&self) -> bool {
        // SAFETY: remote is set at init and points at memory that lives as long as the arena.
        !self.remote.is_null() && unsafe { (*self.remote).any.load(Relaxed) }
    }

    /// Takes the batches other threads left for bin `idx` into the transfer list. Lock held.
    fn adopt_remote(&mut self, idx: usize, secret: usize) {
        if self.remote.is_null() {
            return;
        }
        // SAFETY: as above.
        let chain = unsafe { (*self.remote).take(idx) };
        if chain.is_null() {
            return;
        }
        if self.xfer[idx].is_null() {
            self.xfer[idx] = chain;
        } else {
            // Rare (the list is only refilled when empty): keep both by pushing batch by batch.
            let mut b = chain;
            while !b.is_null() {
                // SAFETY: b heads a batch published by RemoteBatches::push.
                unsafe {
                    let w = *(b.add(16) as *const usize) ^ secret;
                    let next = (w & ((1 << 48) - 1)) as *mut u8;
                    self.xfer_push(idx, b, w >> 48, secret);
                    b = next;
                }
            }
        }
        self.have_fast = true;
    }

    // ---------------------------------------------------------------- allocation

    /// Allocates a chunk of size `nb` (a request2size value); null when memory runs out.
    /// The caller holds the lock.
    #[inline]
    pub unsafe fn int_malloc(&mut self, nb: usize, secret: usize) -> *mut u8 {
        // SAFETY: forwarded; the caller holds the lock.
        unsafe { self.int_malloc_from(nb, secret, true) }
    }

    /// int_malloc, which grows the top (brk, heap) only when `may_grow`: a request of at
    /// least mmap_threshold is served from free space the arena already has, else mapped on
    /// its own (glibc's rule), so the caller asks without growth first.
    pub unsafe fn int_malloc_from(&mut self, nb: usize, secret: usize, may_grow: bool) -> *mut u8 {
        // SAFETY: forwarded.
        unsafe { self.int_malloc_span(nb, nb, secret, may_grow) }
    }

    /// For a thread-cache refill: a chunk of `nb` bytes found as int_malloc finds one, of
    /// which up to `span` bytes (a multiple of `nb`) are taken when the free chunk it splits
    /// has room: a run of pieces out of one search, and out of the chunk that fits best.
    /// The result's size is a multiple of `nb`, or a single piece with less than MINSIZE of
    /// slack. Lock held.
    #[inline(never)]
    unsafe fn int_malloc_run(&mut self, nb: usize, span: usize, secret: usize) -> *mut u8 {
        // SAFETY: forwarded.
        unsafe { self.int_malloc_span(nb, span, secret, true) }
    }

    /// How much of free chunk size `sz` (>= nb) a request of `nb` with `span` takes: a
    /// multiple of nb, leaving either nothing or a remainder of at least MINSIZE (a single
    /// piece may leave less: split_and_use then hands out the whole chunk).
    #[inline(always)]
    fn take(nb: usize, span: usize, sz: usize) -> usize {
        if span <= nb {
            return nb;
        }
        let mut m = span.min(sz - sz % nb);
        if m > nb && sz - m != 0 && sz - m < MINSIZE {
            m -= nb;
        }
        m
    }

    /// The search behind int_malloc_from (span = nb: one piece) and int_malloc_run (a refill
    /// run). Inlined into both on purpose: in the first, span == nb lets take() fold to nb,
    /// so an ordinary request pays nothing for runs.
    #[inline(always)]
    unsafe fn int_malloc_span(
        &mut self,
        nb: usize,
        span: usize,
        secret: usize,
        may_grow: bool,
    ) -> *mut u8 {
        // SAFETY (whole function): every chunk touched lies in memory this arena owns and
        // the lists are consistent under the lock.
        unsafe {
            self.drain_remote_chunks(secret);
            if nb <= crate::tunables::max_fast() {
                let c = self.fastbin_pop(nb, secret);
                if !c.is_null() {
                    return c;
                }
            }
            if in_smallbin_range(nb) {
                let i = smallbin_index(nb);
                if !self.bins.is_empty(i) {
                    let c = self.bins.pop_back(i);
                    check_free(c, "malloc(): corrupted chunk header in a small bin");
                    set_inuse_at(c, nb);
                    mark_used(c);
                    return c;
                }
            } else if self.have_fastbins {
                // A large request merges the fast bins first (glibc). Transfer batches wait
                // until the top would have to grow: they are whole cache lists that the next
                // refill takes in O(1), and merging them costs ~110 instructions per block.
                self.consolidate_fastbins(secret);
            }

            loop {
                // Sort the unsorted bin, returning an exact fit at once.
                let mut iters = 0;
                while !self.bins.is_empty(UNSORTED) {
                    let c = self.bins.pop_back(UNSORTED);
                    check_free(c, "malloc(): corrupted chunk header in the unsorted bin");
                    let sz = size(c);
                    if sz == nb {
                        set_inuse_at(c, sz);
                        mark_used(c);
                        return c;
                    }
                    if c == self.last_remainder
                        && in_smallbin_range(nb)
                        && sz >= nb + MINSIZE
                        && self.bins.is_empty(UNSORTED)
                    {
                        // It was the only unsorted chunk: cut the request from its front.
                        let m = Self::take(nb, span, sz - MINSIZE);
                        self.split_and_use(c, sz, m);
                        self.last_remainder = c.add(m);
                        return c;
                    }
                    let i = bin_index(sz);
                    self.bins.push_front(i, c);
                    iters += 1;
                    if iters >= MAX_UNSORTED_ITERS {
                        break;
                    }
                }

                // A large request: best fit among the first chunks of its own bin.
                let own = bin_index(nb);
                if !in_smallbin_range(nb) && !self.bins.is_empty(own) {
                    let b = self.bins.bin(own);
                    let mut best: *mut u8 = null_mut();
                    let mut best_sz = usize::MAX;
                    let mut c = fd(b);
                    let mut n = 0;
                    while c != b && n < LARGE_SCAN {
                        let sz = size(c);
                        if sz >= nb && sz < best_sz {
                            best = c;
                            best_sz = sz;
                            if sz == nb {
                                break;
                            }
                        }
                        c = fd(c);
                        n += 1;
                    }
                    if !best.is_null() {
                        check_free(best, "malloc(): corrupted chunk header in a large bin");
                        bins::unlink(best);
                        self.split_and_use(best, best_sz, Self::take(nb, span, best_sz));
                        return best;
                    }
                }

                // The next non-empty bin: any chunk there is larger than nb.
                let mut from = own + 1;
                while let Some(j) = self.bins.next_nonempty(from) {
                    if self.bins.is_empty(j) {
                        self.bins.unmark_empty(j);
                        from = j + 1;
                        continue;
                    }
                    let c = self.bins.pop_back(j);
                    check_free(c, "malloc(): corrupted chunk header in a bin");
                    let sz = size(c);
                    let m = Self::take(nb, span, sz);
                    self.split_and_use(c, sz, m);
                    if in_smallbin_range(nb) && sz - m >= MINSIZE {
                        self.last_remainder = c.add(m);
                    }
                    return c;
                }

                // The top chunk.
                let ts = self.top_size();
                if ts >= nb + MINSIZE {
                    return self.split_top(Self::take(nb, span, ts - MINSIZE));
                }
                if !may_grow {
                    // The request will be mapped: cached batches stay cached (glibc leaves
                    // its thread caches alone for it too).
                    return null_mut();
                }
                if self.has_fast() {
                    self.consolidate(secret);
                    continue;
                }
                if !self.grow(nb) {
                    return null_mut();
                }
                return self.split_top(Self::take(nb, span, self.top_size() - MINSIZE));
            }
        }
    }

    /// Takes a chunk of size `nb` (a fast-bin size) from its fast bin, or null, checking the
    /// link it follows and the chunk's header first. Lock held.
    #[inline]
    unsafe fn fastbin_pop(&mut self, nb: usize, secret: usize) -> *mut u8 {
        let i = fastbin_index(nb);
        let c = self.fastbins[i];
        if c.is_null() {
            return c;
        }
        // SAFETY: c heads this fast bin; its link is mangled at mem.
        unsafe {
            let m = chunk2mem(c);
            let n = reveal(m, *(m as *const usize), secret);
            if !crate::registry::valid_link(n) {
                os::fatal("malloc(): corrupted free list (fast bin)", n as usize);
            }
            if size(c) != nb {
                os::fatal("malloc(): memory corruption (fast)", c as usize);
            }
            check_free(c, "malloc(): corrupted chunk header in a fast bin");
            self.fastbins[i] = n;
            mark_used(c);
        }
        c
    }

    /// Allocates up to `want` chunks of size `nb` (a small size) for a thread-cache refill and
    /// hands each to `put`; returns how many. Chunks of exactly that size come first (its
    /// fast bin, then its small bin); the rest are carved side by side in runs, each run
    /// out of the free chunk (or the top) that int_malloc's search picks for one piece, so a
    /// refill costs one search per run, not one per chunk, and still fills the best hole.
    pub unsafe fn int_malloc_batch(
        &mut self,
        nb: usize,
        want: usize,
        secret: usize,
        mut put: impl FnMut(*mut u8),
    ) -> usize {
        // SAFETY (whole function): the lock is held; every chunk comes off this arena's lists
        // or out of one in-use chunk int_malloc just returned.
        unsafe {
            let mut got = 0;
            if nb <= crate::tunables::max_fast() {
                while got < want {
                    let c = self.fastbin_pop(nb, secret);
                    if c.is_null() {
                        break;
                    }
                    put(c);
                    got += 1;
                }
            }
            if in_smallbin_range(nb) {
                let i = smallbin_index(nb);
                while got < want && !self.bins.is_empty(i) {
                    let c = self.bins.pop_back(i);
                    check_free(c, "malloc(): corrupted chunk header in a small bin");
                    set_inuse_at(c, nb);
                    mark_used(c);
                    put(c);
                    got += 1;
                }
            }
            // The rest in runs: each search finds the chunk that fits one piece best and
            // takes as many pieces from it as it has room for.
            while got < want {
                let big = self.int_malloc_run(nb, (want - got) * nb, secret);
                if big.is_null() {
                    return got;
                }
                let h = head(big);
                let total = h & SIZE_BITS;
                if total < 2 * nb {
                    // One piece (perhaps with less than MINSIZE of slack).
                    put(big);
                    got += 1;
                    continue;
                }
                // take() cuts a run of several pieces to an exact multiple of nb.
                debug_assert!(total.is_multiple_of(nb));
                let k = total / nb;
                let bit = h & IN_HEAP;
                let pbit = |j: usize| if j == 0 { h & PREV_INUSE } else { PREV_INUSE };
                // Handed out from the top address down, so the cache gives them back ascending.
                for j in (0..k).rev() {
                    let c = big.add(j * nb);
                    set_head(c, nb | pbit(j) | bit);
                    put(c);
                }
                got += k;
            }
            got
        }
    }

    #[inline]
    unsafe fn split_top(&mut self, nb: usize) -> *mut u8 {
        // SAFETY: caller checked top_size >= nb + MINSIZE.
        unsafe {
            let t = self.top;
            let h = head(t);
            let bit = h & IN_HEAP;
            let ts = h & SIZE_BITS;
            if ts > self.system_mem || !tag_ok(t, h) {
                os::fatal("malloc(): corrupted top size", t as usize);
            }
            set_head(t, nb | PREV_INUSE | bit);
            let r = t.add(nb);
            set_free_head(r, (ts - nb) | PREV_INUSE | bit);
            self.top = r;
            t
        }
    }

    /// Uses `nb` bytes of free chunk `c` (already unlinked, size `sz` >= nb); a remainder of
    /// at least MINSIZE goes to the unsorted bin.
    #[inline]
    unsafe fn split_and_use(&mut self, c: *mut u8, sz: usize, nb: usize) {
        // SAFETY: c is a free chunk of size sz owned by this arena, not the top.
        unsafe {
            let bit = head(c) & IN_HEAP;
            let rem = sz - nb;
            if rem >= MINSIZE {
                set_head(c, nb | PREV_INUSE | bit);
                let r = c.add(nb);
                set_free_head(r, rem | PREV_INUSE | bit);
                set_foot(r, rem);
                self.bins.push_front(UNSORTED, r);
            } else {
                set_inuse_at(c, sz);
                mark_used(c);
            }
        }
    }

    // ---------------------------------------------------------------- freeing

    /// Frees in-use chunk `c` of size `sz` into this arena. The caller holds the lock.
    pub unsafe fn int_free(&mut self, c: *mut u8, sz: usize, secret: usize) {
        // SAFETY: c is an in-use, non-mmapped chunk of this arena.
        unsafe {
            if sz <= crate::tunables::max_fast() {
                let i = fastbin_index(sz);
                let old = self.fastbins[i];
                if old == c {
                    os::fatal("double free or corruption (fasttop)", chunk2mem(c) as usize);
                }
                let m = chunk2mem(c);
                *(m as *mut usize) = protect(m, old, secret);
                mark_free(c);
                self.fastbins[i] = c;
                self.have_fast = true;
                self.have_fastbins = true;
                return;
            }
            let merged = self.free_to_bins(c, sz);
            if merged >= CONSOLIDATION_THRESHOLD {
                if self.has_fast() {
                    self.consolidate(secret);
                }
                if self.top_size() >= tunables::TRIM_THRESHOLD.load(Relaxed) {
                    self.trim_top(tunables::TOP_PAD.load(Relaxed));
                }
            }
        }
    }

    /// Coalesces chunk `c` with free neighbours and files it in the unsorted bin (or the top).
    /// Returns the size of the merged chunk.
    unsafe fn free_to_bins(&mut self, mut c: *mut u8, mut sz: usize) -> usize {
        // SAFETY: c is an in-use chunk of this arena being released; neighbours are valid.
        unsafe {
            if c == self.top {
                os::fatal("double free or corruption (top)", chunk2mem(c) as usize);
            }
            let h = head(c);
            if !tag_ok(c, h) || h & SIZE_BITS != sz {
                os::fatal("free(): corrupted chunk header", chunk2mem(c) as usize);
            }
            let bit = h & IN_HEAP;
            let nx = c.add(sz);
            if !tag_ok(nx, head(nx)) {
                os::fatal(
                    "free(): corrupted chunk header after the block",
                    chunk2mem(c) as usize,
                );
            }
            if !prev_inuse(nx) {
                os::fatal("double free or corruption (!prev)", chunk2mem(c) as usize);
            }
            // The freed header stays marked free even when it merges into a neighbour, so a
            // second free of the same pointer is still recognised.
            mark_free(c);
            if !prev_inuse(c) {
                let ps = prev_size(c);
                c = c.sub(ps);
                if size(c) != ps || head(c) & FREE_BIT == 0 || !tag_ok(c, head(c)) {
                    os::fatal(
                        "corrupted size vs. prev_size while consolidating",
                        c as usize,
                    );
                }
                bins::unlink(c);
                sz += ps;
            }
            if nx != self.top {
                let nsz = size(nx);
                if !prev_inuse(nx.add(nsz)) {
                    bins::unlink(nx);
                    sz += nsz;
                } else {
                    clear_inuse_at(nx, 0);
                }
                set_free_head(c, sz | PREV_INUSE | bit);
                set_foot(c, sz);
                self.bins.push_front(UNSORTED, c);
            } else {
                sz += size(nx);
                set_free_head(c, sz | PREV_INUSE | bit);
                self.top = c;
            }
            sz
        }
    }

    /// Files a batch of `count` blocks (user pointers, linked in thread-cache format, the
    /// last link null) for cache bin `idx`. The batch's first block carries the link to the
    /// next batch and the count in its third word. Lock held.
    pub unsafe fn xfer_push(&mut self, idx: usize, first: *mut u8, count: usize, secret: usize) {
        // SAFETY: first heads a batch of in-use blocks of this arena with >= 24 usable bytes.
        unsafe {
            let w = ((count << 48) | self.xfer[idx] as usize) ^ secret;
            *(first.add(16) as *mut usize) = w;
        }
        self.xfer[idx] = first;
        self.have_fast = true;
    }

    /// Takes the newest batch for cache bin `idx`: its first block and its count. Lock held.
    pub unsafe fn xfer_pop(&mut self, idx: usize, secret: usize) -> Option<(*mut u8, usize)> {
        if self.xfer[idx].is_null() {
            self.adopt_remote(idx, secret);
        }
        let first = self.xfer[idx];
        if first.is_null() {
            return None;
        }
        // SAFETY: first heads a batch filed by xfer_push.
        let w = unsafe { *(first.add(16) as *const usize) } ^ secret;
        let next = (w & ((1 << 48) - 1)) as *mut u8;
        let count = w >> 48;
        if count == 0 || !crate::registry::valid_link(next) {
            os::fatal("malloc(): corrupted transfer batch", first as usize);
        }
        self.xfer[idx] = next;
        Some((first, count))
    }

    /// Moves every fast-bin chunk and every transfer batch into the regular bins, merging
    /// neighbours.
    pub unsafe fn consolidate(&mut self, secret: usize) {
        self.have_fast = false;
        if !self.remote.is_null() {
            // Cleared before the stacks are emptied: a push racing with this sets it again.
            // SAFETY: remote lives as long as the arena.
            unsafe { (*self.remote).any.store(false, Relaxed) };
        }
        for idx in 0..TCACHE_BINS {
            // SAFETY: each batch holds `count` in-use blocks of this arena, linked in
            // thread-cache format; the lock is held.
            while let Some((first, count)) = unsafe { self.xfer_pop(idx, secret) } {
                let mut m = first;
                for _ in 0..count {
                    if m.is_null() {
                        break;
                    }
                    unsafe {
                        let n = reveal(m, *(m as *const usize), secret);
                        if !crate::registry::valid_link(n) {
                            os::fatal("malloc_consolidate(): corrupted transfer batch", n as usize);
                        }
                        *(m.add(SIZE_SZ) as *mut usize) = 0;
                        let c = mem2chunk(m);
                        self.free_to_bins(c, size(c));
                        m = n;
                    }
                }
            }
        }
        // SAFETY: the lock is held.
        unsafe { self.consolidate_fastbins(secret) };
    }

    /// Moves every fast-bin chunk into the regular bins, merging neighbours.
    unsafe fn consolidate_fastbins(&mut self, secret: usize) {
        self.have_fastbins = false;
        for i in 0..NFASTBINS {
            let mut c = self.fastbins[i];
            self.fastbins[i] = null_mut();
            while !c.is_null() {
                // SAFETY: c is a chunk on this fast bin; its link is mangled at mem.
                unsafe {
                    let m = chunk2mem(c);
                    let n = reveal(m, *(m as *const usize), secret);
                    if !crate::registry::valid_link(n) {
                        os::fatal(
                            "malloc_consolidate(): corrupted free list (fast bin)",
                            n as usize,
                        );
                    }
                    self.free_to_bins(c, size(c));
                    c = n;
                }
            }
        }
    }

    // ---------------------------------------------------------------- in-place resizing

    /// Tries to resize in-use chunk `c` (size `old`) to `nb` without moving it.
    /// Growing, it takes `want` (>= nb) bytes when the neighbour has them, else `nb`.
    pub unsafe fn try_resize(
        &mut self,
        c: *mut u8,
        old: usize,
        nb: usize,
        want: usize,
        secret: usize,
    ) -> bool {
        // SAFETY: c is an in-use chunk of this arena; the lock is held.
        unsafe {
            let bit = head(c) & IN_HEAP;
            let pbit = head(c) & PREV_INUSE;
            if old >= nb {
                let rem = old - nb;
                if rem >= MINSIZE {
                    set_head(c, nb | pbit | bit);
                    let r = c.add(nb);
                    set_head(r, rem | PREV_INUSE | bit);
                    self.int_free(r, rem, secret);
                }
                return true;
            }
            let nx = c.add(old);
            if nx == self.top && old + self.top_size() < nb + MINSIZE {
                // Grow the top first; it may move to a new segment, then we cannot extend.
                if !self.grow(nb - old) {
                    return false;
                }
            }
            if nx == self.top {
                let total = old + self.top_size();
                let nb = if total >= want + MINSIZE { want } else { nb };
                if total >= nb + MINSIZE {
                    set_head(c, nb | pbit | bit);
                    let r = c.add(nb);
                    set_free_head(r, (total - nb) | PREV_INUSE | bit);
                    self.top = r;
                    return true;
                }
                return false;
            }
            let nsz = size(nx);
            if !prev_inuse(nx.add(nsz)) && old + nsz >= nb {
                check_free(nx, "realloc(): corrupted chunk header after the block");
                bins::unlink(nx);
                let total = old + nsz;
                let nb = if total >= want { want } else { nb };
                let rem = total - nb;
                if rem >= MINSIZE {
                    set_head(c, nb | pbit | bit);
                    let r = c.add(nb);
                    set_free_head(r, rem | PREV_INUSE | bit);
                    set_foot(r, rem);
                    clear_inuse_at(r, rem);
                    self.bins.push_front(UNSORTED, r);
                } else {
                    set_head(c, total | pbit | bit);
                    set_inuse_at(c, total);
                }
                return true;
            }
            false
        }
    }

    /// Allocates `nb` bytes aligned to `align` (a power of two above 16). Lock held.
    /// Grows the top only when `may_grow` (see int_malloc_from).
    pub unsafe fn int_memalign(
        &mut self,
        align: usize,
        nb: usize,
        secret: usize,
        may_grow: bool,
    ) -> *mut u8 {
        // SAFETY: all chunks handled are this arena's; the lock is held.
        unsafe {
            let m = self.int_malloc_from(nb + align + MINSIZE, secret, may_grow);
            if m.is_null() {
                return m;
            }
            let mut c = m;
            let mem = chunk2mem(m) as usize;
            if mem & (align - 1) != 0 {
                let mut am = (mem + align - 1) & !(align - 1);
                if am - mem < MINSIZE {
                    am += align;
                }
                let nc = (am - HDR) as *mut u8;
                let lead = nc as usize - m as usize;
                let bit = head(m) & IN_HEAP;
                let total = size(m);
                set_head(nc, (total - lead) | PREV_INUSE | bit);
                set_head(m, lead | (head(m) & PREV_INUSE) | bit);
                self.free_to_bins(m, lead);
                c = nc;
            }
            let sz = size(c);
            if sz >= nb + MINSIZE {
                let bit = head(c) & IN_HEAP;
                set_head(c, nb | (head(c) & PREV_INUSE) | bit);
                let r = c.add(nb);
                set_head(r, (sz - nb) | PREV_INUSE | bit);
                self.free_to_bins(r, sz - nb);
            }
            c
        }
    }

    // ---------------------------------------------------------------- the system

    /// Makes the top at least `nb + MINSIZE` bytes, by brk or in a heap. Lock held. When it
    /// succeeds errno is as it was, even if a first attempt failed (a break that cannot move,
    /// then a heap): a successful malloc leaves errno alone.
    unsafe fn grow(&mut self, nb: usize) -> bool {
        let saved = os::errno();
        // SAFETY: forwarded.
        let ok = unsafe { self.grow_top(nb) };
        if ok {
            os::set_errno(saved);
        }
        ok
    }

    unsafe fn grow_top(&mut self, nb: usize) -> bool {
        let pad = tunables::TOP_PAD.load(Relaxed);
        let page = os::page_size();
        if self.brk_mode {
            let have = self.top_size();
            let Some(want) = (nb + MINSIZE + pad)
                .checked_sub(have)
                .map(|w| round_up(w, page))
            else {
                return true;
            };
            if want > isize::MAX as usize / 2 {
                return false;
            }
            match os::sbrk(want as isize) {
                Some(old) if !self.top.is_null() && old == self.brk_end => {
                    // Contiguous: the top simply grows.
                    // SAFETY: [old, old+want) is ours now and adjoins the top.
                    unsafe { set_free_head(self.top, (have + want) | PREV_INUSE) };
                    self.brk_end = old + want;
                    crate::registry::note_brk(old, self.brk_end);
                    self.add_system(want);
                    return true;
                }
                Some(old) => {
                    // First segment, or someone else moved the break: start a new segment.
                    let start = (old + ALIGN_MASK) & !ALIGN_MASK;
                    let len = (old + want - start) & !ALIGN_MASK;
                    if len < nb + MINSIZE {
                        // Too small after alignment (only with a tiny pad): give it back.
                        os::sbrk(-(want as isize));
                        return false;
                    }
                    // SAFETY: the old top (if any) is retired with fenceposts; the new range
                    // is fresh memory owned by this arena.
                    unsafe {
                        self.retire_top();
                        self.top = start as *mut u8;
                        set_free_head(self.top, len | PREV_INUSE);
                    }
                    self.brk_end = old + want;
                    crate::registry::note_brk(start, self.brk_end);
                    self.add_system(want);
                    return true;
                }
                None => {
                    // The break cannot move (RLIMIT_DATA, a mapping in the way): use heaps.
                    self.brk_mode = false;
                    // SAFETY: retires the brk top; new_heap_top sets a fresh one.
                    return unsafe { self.new_heap_top(nb) };
                }
            }
        }
        // Heap mode.
        let h = self.heap;
        if !h.is_null() && !self.top.is_null() {
            let top_end = self.top as usize + self.top_size();
            let hend = h as usize + HEAP_MAX;
            let need = self.top as usize + nb + MINSIZE;
            if need <= hend {
                let new_end = round_up(need + pad, page).min(hend);
                let delta = new_end - top_end;
                // SAFETY: the heap's pages up to HEAP_MAX are mapped read-write.
                unsafe {
                    set_free_head(self.top, (self.top_size() + delta) | PREV_INUSE | IN_HEAP);
                    (*h).size = new_end - h as usize;
                }
                self.add_system(delta);
                return true;
            }
        }
        // SAFETY: as above.
        unsafe { self.new_heap_top(nb) }
    }

    /// Starts a new heap for this arena and moves the top there.
    unsafe fn new_heap_top(&mut self, nb: usize) -> bool {
        let first = HEAP_HDR;
        if nb + MINSIZE + first > HEAP_MAX {
            return false;
        }
        let Some(h) = heap::new_heap(self, self.heap) else {
            return false;
        };
        let page = os::page_size();
        let pad = tunables::TOP_PAD.load(Relaxed);
        let end = round_up(first + nb + MINSIZE + pad, page).min(HEAP_MAX);
        // SAFETY: the old top is retired behind fenceposts; h is fresh and writable.
        unsafe {
            self.retire_top();
            (*h).size = end;
            self.heap = h;
            self.top = (h as *mut u8).add(first);
            set_free_head(self.top, (end - first) | PREV_INUSE | IN_HEAP);
        }
        self.add_system(end);
        true
    }

    /// Ends the current top's segment: two fencepost chunks mark the end, and the rest of
    /// the old top is freed into the bins.
    unsafe fn retire_top(&mut self) {
        let t = self.top;
        if t.is_null() {
            return;
        }
        // SAFETY: t is the top chunk (size >= MINSIZE); its whole extent is ours.
        unsafe {
            let h = head(t);
            let bit = h & IN_HEAP;
            let s = h & SIZE_BITS;
            self.top = null_mut();
            if s >= MINSIZE + 2 * HDR {
                let fsz = s - 2 * HDR;
                set_head(t, fsz | (h & PREV_INUSE) | bit);
                set_head(t.add(fsz), HDR | PREV_INUSE | bit);
                set_head(t.add(fsz + HDR), HDR | PREV_INUSE | bit);
                self.free_to_bins(t, fsz);
            } else {
                set_head(t, (s - HDR) | (h & PREV_INUSE) | bit);
                set_head(t.add(s - HDR), HDR | PREV_INUSE | bit);
            }
        }
    }

    fn add_system(&mut self, n: usize) {
        self.system_mem += n;
        if self.system_mem > self.max_system_mem {
            self.max_system_mem = self.system_mem;
        }
    }

    /// Returns top memory beyond `pad` bytes to the OS. Lock held. True if anything went back.
    pub unsafe fn trim_top(&mut self, pad: usize) -> bool {
        let page = os::page_size();
        let t = self.top;
        if t.is_null() {
            return false;
        }
        let ts = self.top_size();
        if ts > self.system_mem {
            os::fatal("malloc(): corrupted top size", t as usize);
        }
        let top_end = t as usize + ts;
        let keep_end = round_up(t as usize + MINSIZE + pad, page);
        if keep_end >= top_end || top_end - keep_end < page {
            return false;
        }
        if self.brk_mode {
            // Only shrink if the break is still where we left it.
            if self.brk_end - top_end >= ALIGN || os::sbrk_current() != self.brk_end {
                return false;
            }
            let extra = (top_end - keep_end) & !(page - 1);
            if extra == 0 || os::sbrk(-(extra as isize)).is_none() {
                return false;
            }
            crate::registry::note_brk_trim(self.brk_end, self.brk_end - extra);
            self.brk_end -= extra;
            // SAFETY: the top shrinks by exactly the bytes given back.
            unsafe { set_free_head(t, (ts - extra) | PREV_INUSE) };
            self.system_mem -= extra;
            true
        } else {
            let extra = top_end - keep_end;
            os::discard(keep_end as *mut u8, extra);
            // SAFETY: as above; the heap header is valid in heap mode.
            unsafe {
                set_free_head(t, (ts - extra) | PREV_INUSE | (head(t) & IN_HEAP));
                let h = self.heap;
                if !h.is_null() && keep_end > h as usize && keep_end <= h as usize + HEAP_MAX {
                    (*h).size = keep_end - h as usize;
                }
            }
            self.system_mem -= extra;
            true
        }
    }

    /// malloc_trim for this arena: merge fast bins, trim the top, and give back the whole
    /// pages inside every free chunk. Lock held.
    pub unsafe fn trim(&mut self, pad: usize, secret: usize) -> bool {
        // SAFETY: lock held; free chunks' interiors (past their links) hold no data.
        unsafe {
            self.drain_remote_chunks(secret);
            self.consolidate(secret);
            let mut released = self.trim_top(pad);
            let page = os::page_size();
            // Sort the unsorted bin first so every free chunk is visited once.
            while !self.bins.is_empty(UNSORTED) {
                let c = self.bins.pop_back(UNSORTED);
                let i = bin_index(size(c));
                self.bins.push_front(i, c);
            }
            for i in 2..NBINS {
                self.bins.for_each(i, |c| {
                    let sz = size(c);
                    let start = round_up(c as usize + HDR + 2 * SIZE_SZ, page);
                    let end = (c as usize + sz) & !(page - 1);
                    if end > start {
                        os::discard(start as *mut u8, end - start);
                        released = true;
                    }
                });
            }
            released
        }
    }

    /// Free-memory figures for mallinfo: (free chunks, free bytes, fast chunks, fast bytes).
    pub unsafe fn free_stats(&mut self, secret: usize) -> (usize, usize, usize, usize) {
        // SAFETY: lock held.
        unsafe { self.drain_remote_chunks(secret) };
        let (mut nfree, mut free) = (1usize, self.top_size());
        let (mut nfast, mut fast) = (0usize, 0usize);
        for i in 0..NFASTBINS {
            let mut c = self.fastbins[i];
            while !c.is_null() {
                // SAFETY: c is on a fast bin under the lock.
                unsafe {
                    nfast += 1;
                    fast += size(c);
                    let m = chunk2mem(c);
                    c = reveal(m, *(m as *const usize), secret);
                }
            }
        }
        for idx in 0..TCACHE_BINS {
            self.adopt_remote(idx, secret);
            let mut b = self.xfer[idx];
            while !b.is_null() {
                // SAFETY: b heads a batch (lock held); its blocks all have the bin's size.
                unsafe {
                    let w = *(b.add(16) as *const usize) ^ secret;
                    nfast += w >> 48;
                    fast += (w >> 48) * size(mem2chunk(b));
                    b = (w & ((1 << 48) - 1)) as *mut u8;
                }
            }
        }
        for i in 1..NBINS {
            self.bins.for_each(i, |c| {
                nfree += 1;
                // SAFETY: c is a free chunk in a bin.
                free += unsafe { size(c) };
            });
        }
        (nfree, free, nfast, fast)
    }

    /// The free chunks by bin, for malloc_info: calls `f(bin, count, bytes)` for non-empty bins.
    pub fn bin_summary(&mut self, mut f: impl FnMut(usize, usize, usize, usize, usize)) {
        for i in 1..NBINS {
            let (mut n, mut total, mut lo, mut hi) = (0usize, 0usize, usize::MAX, 0usize);
            self.bins.for_each(i, |c| {
                // SAFETY: c is a free chunk in a bin.
                let s = unsafe { size(c) };
                n += 1;
                total += s;
                lo = lo.min(s);
                hi = hi.max(s);
            });
            if n > 0 {
                f(i, n, total, lo, hi);
            }
        }
    }
}

impl Default for Arena {
    fn default() -> Self {
        Self::new()
    }
}

/// Aborts unless `c` (taken from a bin) carries a valid tag and the free mark.
#[inline]
unsafe fn check_free(c: *mut u8, what: &str) {
    // SAFETY: c is a chunk on one of the arena's lists.
    let h = unsafe { head(c) };
    if h & FREE_BIT == 0 || !tag_ok(c, h) {
        os::fatal(what, chunk2mem(c) as usize);
    }
}

#[inline(always)]
pub const fn round_up(v: usize, a: usize) -> usize {
    (v + a - 1) & !(a - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Arena::create zeroes fresh memory in place instead of writing Arena::new() and
    /// RemoteBatches::new(): all-zero bytes must read as exactly those values.
    #[test]
    fn zeroed_memory_reads_as_new_values() {
        let z = core::mem::MaybeUninit::<Arena>::zeroed();
        // SAFETY: every field of Arena is valid as zero bytes (pointers, integers, bools,
        // atomics); the assertions below check each against Arena::new().
        let z = unsafe { z.assume_init() };
        let n = Arena::new();
        assert_eq!(z.lock.is_locked(), n.lock.is_locked());
        assert_eq!(z.fastbins, n.fastbins);
        assert_eq!(z.xfer, n.xfer);
        assert_eq!(z.remote, n.remote);
        assert_eq!(
            (z.have_fast, z.have_fastbins, z.brk_mode, z.poisoned),
            (n.have_fast, n.have_fastbins, n.brk_mode, n.poisoned)
        );
        assert_eq!(
            (z.top, z.last_remainder, z.brk_end, z.heap, z.next),
            (n.top, n.last_remainder, n.brk_end, n.heap, n.next)
        );
        assert_eq!(
            (z.system_mem, z.max_system_mem, z.index),
            (n.system_mem, n.max_system_mem, n.index)
        );
        assert_eq!(z.attached.load(Relaxed), n.attached.load(Relaxed));
        assert!(z.bins.is_zeroed() && n.bins.is_zeroed());
        let r = core::mem::MaybeUninit::<RemoteBatches>::zeroed();
        // SAFETY: atomics of pointers and a bool are valid as zero bytes.
        let r = unsafe { r.assume_init() };
        assert!(r.heads.iter().all(|h| h.load(Relaxed).is_null()));
        assert!(r.chunks.load(Relaxed).is_null() && !r.any.load(Relaxed));
    }

    /// A refill run takes whole pieces, as many as the free chunk and the span allow, and
    /// leaves nothing or a remainder that can stand alone as a free chunk; only a single
    /// piece may keep less than MINSIZE of slack (it is then handed out whole). An ordinary
    /// request (span = nb) takes exactly one piece.
    #[test]
    fn refill_runs_take_whole_pieces() {
        let ok = |m: usize, sz: usize, nb: usize| {
            let rest = sz - m;
            rest == 0 || rest >= MINSIZE || m == nb
        };
        for nb in (MINSIZE..=TCACHE_MAX_CHUNK).step_by(48) {
            for pieces in 1..=16 {
                let span = pieces * nb;
                for sz in (nb..nb * 20 + 96).step_by(16) {
                    let m = Arena::take(nb, span, sz);
                    assert!(
                        m >= nb && m.is_multiple_of(nb) && m <= span && m <= sz,
                        "{nb} {span} {sz}"
                    );
                    assert!(ok(m, sz, nb), "remainder {nb} {span} {sz} -> {m}");
                    let more = m + nb;
                    assert!(
                        more > span || more > sz || !ok(more, sz, nb),
                        "not maximal {nb} {span} {sz} -> {m}"
                    );
                }
            }
            assert_eq!(Arena::take(nb, nb, 1 << 20), nb);
        }
    }
}
