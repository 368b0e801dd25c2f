//! Which addresses are oxmalloc's: the brk range and a bitmap of 64 MiB heap slots (read
//! without locks on every free), and a table of the live mmapped chunks (under a lock).
//!
//! free() asks here before it reads a header, so a wild, stack or already-unmapped pointer is
//! reported instead of faulting, and a second free of an mmapped block is told from a first.

use crate::global::Global;
use crate::heap::HEAP_MAX;
use crate::os;
use crate::sync::Mutex;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

// ------------------------------------------------------------------ arena memory

/// The span of the main arena's brk segments: [BRK_LO, BRK_HI).
static BRK_LO: AtomicUsize = AtomicUsize::new(0);
static BRK_HI: AtomicUsize = AtomicUsize::new(0);

/// One bit per 64 MiB slot of the 48-bit user address space: set where a heap is mapped.
/// 512 KiB of .bss; only the pages covering slots in use are ever touched.
const SLOT_SHIFT: u32 = HEAP_MAX.trailing_zeros();
const NSLOTS: usize = 1 << (48 - SLOT_SHIFT);
static HEAP_BITS: [AtomicU64; NSLOTS / 64] = [const { AtomicU64::new(0) }; NSLOTS / 64];

/// Records a brk segment [start, end) of the main arena (arena lock held).
pub fn note_brk(start: usize, end: usize) {
    let lo = BRK_LO.load(Relaxed);
    if lo == 0 || start < lo {
        BRK_LO.store(start, Relaxed);
    }
    if end > BRK_HI.load(Relaxed) {
        BRK_HI.store(end, Relaxed);
    }
}

/// The break moved down from `old_end` to `new_end` (trimming the top segment).
pub fn note_brk_trim(old_end: usize, new_end: usize) {
    if BRK_HI.load(Relaxed) == old_end {
        BRK_HI.store(new_end, Relaxed);
    }
}

/// Records a new heap at `h` (aligned to HEAP_MAX). Returns false if it lies outside the
/// 48-bit space the bitmap covers (the caller then does not use it).
pub fn note_heap(h: usize) -> bool {
    let s = h >> SLOT_SHIFT;
    if s >= NSLOTS {
        return false;
    }
    HEAP_BITS[s / 64].fetch_or(1 << (s % 64), Relaxed);
    true
}

/// Whether `a` lies in memory of an arena (a brk segment or a heap): there a chunk header can
/// be read without faulting.
#[inline(always)]
pub fn in_arena_memory(a: usize) -> bool {
    let lo = BRK_LO.load(Relaxed);
    if a.wrapping_sub(lo) < BRK_HI.load(Relaxed).wrapping_sub(lo) {
        return true;
    }
    in_heap(a)
}

/// Whether `p`, read from a free-list link, may be followed: null (end of list), or an aligned
/// address in arena memory.
#[inline(always)]
pub fn valid_link(p: *mut u8) -> bool {
    p.is_null() || ((p as usize) & crate::chunk::ALIGN_MASK == 0 && in_arena_memory(p as usize))
}

#[inline]
fn in_heap(a: usize) -> bool {
    let s = a >> SLOT_SHIFT;
    s < NSLOTS && HEAP_BITS[s / 64].load(Relaxed) & (1 << (s % 64)) != 0
}

// ------------------------------------------------------------------ mmapped chunks

/// An open-addressing table (linear probing, backward-shift deletion) of live mmapped chunks,
/// keyed by chunk address, with the mapping's total length; plus a ring of recently unmapped
/// chunk addresses so a second free can be named a double free.
struct Maps {
    slots: *mut [usize; 2],
    cap: usize,
    len: usize,
    recent: [usize; RECENT],
    recent_pos: usize,
    /// Set in a forked child whose fork interrupted an update of this table: from then on
    /// unknown mmapped chunks are trusted by their headers, as before the table existed.
    lenient: bool,
}

const RECENT: usize = 64;
const MIN_CAP: usize = 512;

static MAPS_LOCK: Mutex = Mutex::new();
/// The thread cache address of the thread holding MAPS_LOCK (for fork from a signal handler).
static MAPS_OWNER: AtomicUsize = AtomicUsize::new(0);
static MAPS: Global<Maps> = Global::new(Maps {
    slots: core::ptr::null_mut(),
    cap: 0,
    len: 0,
    recent: [0; RECENT],
    recent_pos: 0,
    lenient: false,
});

/// What the table knows about a chunk address.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mapped {
    /// A live mmapped chunk; its mapping spans this many bytes.
    Live(usize),
    /// Unmapped recently: freeing it again is a double free.
    Freed,
    Unknown,
}

fn hash(c: usize, cap: usize) -> usize {
    ((c >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20) & (cap - 1)
}

fn lock() {
    MAPS_LOCK.lock();
    MAPS_OWNER.store(crate::tls::current() as usize, Relaxed);
}

fn unlock() {
    MAPS_OWNER.store(0, Relaxed);
    MAPS_LOCK.unlock();
}

impl Maps {
    /// Slot index holding `c`, if present.
    unsafe fn find(&self, c: usize) -> Option<usize> {
        if self.cap == 0 {
            return None;
        }
        let mut i = hash(c, self.cap);
        loop {
            // SAFETY: i < cap; slots holds cap entries.
            let k = unsafe { (*self.slots.add(i))[0] };
            if k == c {
                return Some(i);
            }
            if k == 0 {
                return None;
            }
            i = (i + 1) & (self.cap - 1);
        }
    }

    /// Inserts without growing (there is room).
    unsafe fn put(&mut self, c: usize, len: usize) {
        let mut i = hash(c, self.cap);
        // SAFETY: the table is less than full, so an empty slot exists.
        unsafe {
            while (*self.slots.add(i))[0] != 0 {
                i = (i + 1) & (self.cap - 1);
            }
            *self.slots.add(i) = [c, len];
        }
        self.len += 1;
    }

    /// Makes room for one more entry (load at most one half). False if memory ran out.
    unsafe fn reserve(&mut self) -> bool {
        if (self.len + 1) * 2 <= self.cap {
            return true;
        }
        let cap = (self.cap * 2).max(MIN_CAP);
        let Some(mem) = os::mmap_rw(cap * 16) else {
            return false;
        };
        let (old, old_cap) = (self.slots, self.cap);
        self.slots = mem as *mut [usize; 2];
        self.cap = cap;
        self.len = 0;
        for i in 0..old_cap {
            // SAFETY: i < old_cap; old holds old_cap entries; the new table has room.
            unsafe {
                let [c, len] = *old.add(i);
                if c != 0 {
                    self.put(c, len);
                }
            }
        }
        if !old.is_null() {
            os::munmap(old as *mut u8, old_cap * 16);
        }
        true
    }

    /// Removes the entry in slot `i`, shifting later entries of its probe run back.
    unsafe fn remove_at(&mut self, mut i: usize) {
        let m = self.cap - 1;
        // SAFETY: all indices are masked to the table.
        unsafe {
            let mut j = i;
            loop {
                j = (j + 1) & m;
                let e = *self.slots.add(j);
                if e[0] == 0 {
                    break;
                }
                let home = hash(e[0], self.cap);
                // Move e into the hole at i unless its home lies cyclically in (i, j].
                let stays = if i <= j {
                    i < home && home <= j
                } else {
                    i < home || home <= j
                };
                if !stays {
                    *self.slots.add(i) = e;
                    i = j;
                }
            }
            *self.slots.add(i) = [0, 0];
        }
        self.len -= 1;
    }

    fn forget_recent(&mut self, c: usize) {
        for r in self.recent.iter_mut() {
            if *r == c {
                *r = 0;
            }
        }
    }
}

/// Registers mmapped chunk `c` whose mapping spans `len` bytes. False if the table could not
/// grow (the caller unmaps the chunk and reports ENOMEM).
pub fn map_insert(c: usize, len: usize) -> bool {
    lock();
    let m = MAPS.get();
    // SAFETY: the table is only touched under MAPS_LOCK.
    let ok = unsafe {
        let ok = (*m).reserve();
        if ok {
            (*m).put(c, len);
            (*m).forget_recent(c);
        }
        ok
    };
    unlock();
    ok
}

/// Looks `c` up without changing anything.
pub fn map_lookup(c: usize) -> Mapped {
    lock();
    let m = MAPS.get();
    // SAFETY: under MAPS_LOCK.
    let r = unsafe { classify(&*m, c) };
    unlock();
    r
}

unsafe fn classify(m: &Maps, c: usize) -> Mapped {
    // SAFETY: caller holds MAPS_LOCK.
    match unsafe { m.find(c) } {
        // SAFETY: i indexes the table.
        Some(i) => Mapped::Live(unsafe { (*m.slots.add(i))[1] }),
        None if c != 0 && m.recent.contains(&c) => Mapped::Freed,
        None => Mapped::Unknown,
    }
}

/// Unregisters `c` on its way to munmap; returns what the table knew about it (only `Live`
/// entries are removed, and then remembered as recently freed).
pub fn map_remove(c: usize) -> Mapped {
    lock();
    let m = MAPS.get();
    // SAFETY: under MAPS_LOCK.
    let r = unsafe {
        let r = classify(&*m, c);
        if let Mapped::Live(_) = r {
            let i = (*m).find(c).unwrap_or(0);
            (*m).remove_at(i);
            let pos = (*m).recent_pos;
            (*m).recent[pos] = c;
            (*m).recent_pos = (pos + 1) % RECENT;
        } else if (*m).lenient {
            // A forked child's table may have missed this chunk: trust the header.
            unlock();
            return Mapped::Live(0);
        }
        r
    };
    unlock();
    r
}

/// Resizes registered mapping `old` with `remap` (which calls mremap and returns the new chunk
/// address and mapping length, or None) while holding the table's lock, so no other thread
/// can see the range mremap freed still registered as a live block (a fresh mmap may be
/// given that range at once). Never needs to grow the table.
pub fn map_remap(old: usize, remap: impl FnOnce() -> Option<(usize, usize)>) -> Option<usize> {
    lock();
    let m = MAPS.get();
    let r = remap();
    if let Some((new, len)) = r {
        // SAFETY: under MAPS_LOCK; removing first leaves room for the insert.
        unsafe {
            if let Some(i) = (*m).find(old) {
                (*m).remove_at(i);
            }
            if (*m).reserve() {
                (*m).put(new, len);
                (*m).forget_recent(new);
            }
        }
    }
    unlock();
    r.map(|(new, _)| new)
}

/// Whether the table trusts headers (a forked child that interrupted an update).
pub fn lenient() -> bool {
    // SAFETY: a plain flag read; it only ever goes from false to true in a single-threaded child.
    unsafe { (*MAPS.get()).lenient }
}

// ------------------------------------------------------------------ fork

/// Before fork: take the table's lock unless this very thread holds it (fork from a signal
/// handler that interrupted an update). Returns whether it was taken.
pub fn fork_prepare(me: usize) -> bool {
    if owned_by(me) {
        return false;
    }
    lock();
    true
}

/// Whether thread `me` holds the table's lock (a fork from a signal handler that interrupted
/// an update).
pub fn owned_by(me: usize) -> bool {
    me != 0 && MAPS_OWNER.load(Relaxed) == me
}

pub fn fork_parent(taken: bool) {
    if taken {
        unlock();
    }
}

/// In the child: the lock's holder is gone; if the fork interrupted an update, the table may
/// be inconsistent, so it stops being authoritative.
pub fn fork_child(taken: bool) {
    MAPS_OWNER.store(0, Relaxed);
    MAPS_LOCK.reset();
    if !taken {
        // SAFETY: the child is single-threaded here.
        unsafe { (*MAPS.get()).lenient = true };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_inserts_finds_and_removes_many() {
        let base = 0x7000_0000_0000usize;
        for i in 0..5000 {
            assert!(map_insert(base + i * 4096 + 16, 8192));
        }
        for i in (0..5000).step_by(3) {
            assert_eq!(map_remove(base + i * 4096 + 16), Mapped::Live(8192));
        }
        for i in 0..5000 {
            let r = map_lookup(base + i * 4096 + 16);
            if i % 3 == 0 {
                assert_ne!(r, Mapped::Live(8192), "entry {i} still present");
            } else {
                assert_eq!(r, Mapped::Live(8192), "entry {i} lost");
            }
        }
        // The most recent removals are remembered as freed.
        assert_eq!(map_lookup(base + 4998 * 4096 + 16), Mapped::Freed);
        assert_eq!(map_lookup(base + 1), Mapped::Unknown);
        assert_eq!(
            map_remap(base + 4096 + 16, || Some((base + 16, 4096))),
            Some(base + 16)
        );
        assert_eq!(map_remap(base + 2 * 4096 + 16, || None), None);
        assert_eq!(map_lookup(base + 2 * 4096 + 16), Mapped::Live(8192));
        assert_eq!(map_lookup(base + 16), Mapped::Live(4096));
        assert_eq!(map_lookup(base + 4096 + 16), Mapped::Unknown);
    }

    #[test]
    fn heap_slots_and_brk_range() {
        let h = 0x5500_0000_0000usize & !(HEAP_MAX - 1);
        assert!(!in_heap(h + 100));
        assert!(note_heap(h));
        assert!(in_heap(h + 100) && in_heap(h + HEAP_MAX - 1));
        assert!(!in_heap(h + HEAP_MAX));
        assert!(!note_heap(1 << 50));
        assert!(!in_arena_memory(1 << 50));
    }
}
