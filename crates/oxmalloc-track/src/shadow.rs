//! The shadow map: one 32-bit word per 16-byte granule of the address space, found by a
//! two-level radix (1 GiB leaves, made on first use in the recorder's own mappings: pages
//! become resident only where blocks are). A block's word sits at its first granule:
//! bits 0–23 its site id, bits 24–31 its slack (usable − requested size), 255 meaning the
//! exact size is in the overflow table. 0 means "not recorded". Reads and writes are
//! lock-free: a block's word is written by the thread that got it and read by the one that
//! frees it, ordered by the program's own hand-over of the block.

use crate::mem;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicUsize, Ordering::*};
use oxmalloc_core::sync::Mutex;

const LEAF_SHIFT: u32 = 30;
const LEAVES: usize = 1 << (47 - LEAF_SHIFT);
const WORDS_PER_LEAF: usize = 1 << (LEAF_SHIFT - 4);
const LEAF_BYTES: usize = WORDS_PER_LEAF * 4;
pub const SITE_MASK: u32 = (1 << 24) - 1;
pub const SLACK_BIG: u32 = 255;

static TOP: AtomicPtr<AtomicPtr<AtomicU32>> = AtomicPtr::new(core::ptr::null_mut());

pub fn init() -> bool {
    match mem::reserve(LEAVES * 8) {
        Some(p) => {
            TOP.store(p as *mut AtomicPtr<AtomicU32>, Release);
            true
        }
        None => false,
    }
}

#[inline]
fn word(p: usize, make: bool) -> Option<&'static AtomicU32> {
    let i = p >> LEAF_SHIFT;
    if i >= LEAVES {
        return None;
    }
    let top = TOP.load(Acquire);
    if top.is_null() {
        return None;
    }
    // SAFETY: top has LEAVES entries; i < LEAVES.
    let slot = unsafe { &*top.add(i) };
    let mut leaf = slot.load(Acquire);
    if leaf.is_null() {
        if !make {
            return None;
        }
        let fresh = mem::reserve(LEAF_BYTES)? as *mut AtomicU32;
        match slot.compare_exchange(core::ptr::null_mut(), fresh, AcqRel, Acquire) {
            Ok(_) => leaf = fresh,
            Err(other) => {
                mem::release(fresh as *mut u8, LEAF_BYTES);
                leaf = other;
            }
        }
    }
    // SAFETY: leaf has WORDS_PER_LEAF words; the index is masked.
    Some(unsafe { &*leaf.add((p >> 4) & (WORDS_PER_LEAF - 1)) })
}

/// Records block `p`: site `site`, requested `n` of `usable` bytes.
pub fn set(p: usize, site: u32, n: usize, usable: usize) -> bool {
    let slack = usable.saturating_sub(n);
    let Some(w) = word(p, true) else {
        return false;
    };
    let s = if slack < SLACK_BIG as usize {
        slack as u32
    } else {
        big_insert(p, n);
        SLACK_BIG
    };
    w.store((site & SITE_MASK) | (s << 24), Relaxed);
    true
}

/// Takes block `p`'s word (0 if it was not recorded) and clears it.
#[inline]
pub fn take(p: usize) -> u32 {
    // The freeing thread owns the block: nobody else writes its word now (no swap needed).
    match word(p, false) {
        Some(w) => {
            let v = w.load(Relaxed);
            if v != 0 {
                w.store(0, Relaxed);
            }
            v
        }
        None => 0,
    }
}

/// Puts back a word taken by `take` (a realloc that failed).
pub fn put(p: usize, v: u32) {
    if let Some(w) = word(p, true) {
        w.store(v, Relaxed);
    }
}

/// The requested size of block `p` whose word was `v`, given its usable size now.
pub fn size_of(p: usize, v: u32, usable: usize) -> usize {
    let s = v >> 24;
    if s == SLACK_BIG {
        big_take(p).unwrap_or(usable)
    } else {
        usable.saturating_sub(s as usize)
    }
}

// ---- exact sizes of blocks with 255 or more bytes of slack (mmapped blocks, big alignments)

const BIG_CAP: usize = 1 << 16;
static BIG: AtomicPtr<(AtomicUsize, AtomicUsize)> = AtomicPtr::new(core::ptr::null_mut());
static BIG_LOCK: Mutex = Mutex::new();

fn big_table() -> Option<*mut (AtomicUsize, AtomicUsize)> {
    let t = BIG.load(Acquire);
    if !t.is_null() {
        return Some(t);
    }
    let fresh = mem::reserve(BIG_CAP * 16)? as *mut (AtomicUsize, AtomicUsize);
    match BIG.compare_exchange(core::ptr::null_mut(), fresh, AcqRel, Acquire) {
        Ok(_) => Some(fresh),
        Err(other) => {
            mem::release(fresh as *mut u8, BIG_CAP * 16);
            Some(other)
        }
    }
}

fn big_insert(p: usize, n: usize) {
    let Some(t) = big_table() else { return };
    BIG_LOCK.lock();
    let mut i = (p >> 4).wrapping_mul(0x9e37_79b9) & (BIG_CAP - 1);
    for _ in 0..BIG_CAP {
        // SAFETY: i < BIG_CAP; under the lock.
        let e = unsafe { &*t.add(i) };
        let k = e.0.load(Relaxed);
        if k == 0 || k == p || k == usize::MAX {
            e.0.store(p, Relaxed);
            e.1.store(n, Relaxed);
            break;
        }
        i = (i + 1) & (BIG_CAP - 1);
    }
    BIG_LOCK.unlock();
}

fn big_take(p: usize) -> Option<usize> {
    let t = BIG.load(Acquire);
    if t.is_null() {
        return None;
    }
    BIG_LOCK.lock();
    let mut i = (p >> 4).wrapping_mul(0x9e37_79b9) & (BIG_CAP - 1);
    let mut r = None;
    for _ in 0..BIG_CAP {
        // SAFETY: i < BIG_CAP; under the lock.
        let e = unsafe { &*t.add(i) };
        let k = e.0.load(Relaxed);
        if k == 0 {
            break;
        }
        if k == p {
            r = Some(e.1.load(Relaxed));
            e.0.store(usize::MAX, Relaxed); // tombstone
            break;
        }
        i = (i + 1) & (BIG_CAP - 1);
    }
    BIG_LOCK.unlock();
    r
}

/// The lock of the overflow table (taken around fork).
pub fn locks() -> &'static Mutex {
    &BIG_LOCK
}
