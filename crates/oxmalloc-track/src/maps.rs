//! The program's own mappings: liboxmalloc exports mmap, mmap64, munmap and mremap, forwards
//! each to the kernel and, when tracking is on, keeps a table of the live mappings the program
//! made (start, length, protection, flags, and the site — stack and thread — that made it).
//! The table is updated under its lock around the system call itself, so another thread's
//! mapping at a just-freed address cannot be confused with the old one. Mappings made inside
//! glibc (thread stacks, the loader's) do not come through here; the snapshot's `region`
//! records (from /proc/self/smaps) show them.

use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering::*};
use oxmalloc_core::sync::Mutex;

const CAP: usize = 1 << 16;

#[derive(Clone, Copy)]
#[repr(C)]
pub struct Map {
    pub start: usize,
    pub len: usize,
    pub prot: i32,
    pub flags: i32,
    pub site: u32,
}

static TABLE: AtomicPtr<Map> = AtomicPtr::new(core::ptr::null_mut());
static COUNT: AtomicUsize = AtomicUsize::new(0);
pub static LOCK: Mutex = Mutex::new();
/// Mappings not recorded because the table was full.
pub static DROPPED: AtomicUsize = AtomicUsize::new(0);

pub fn init() -> bool {
    match crate::mem::reserve(CAP * core::mem::size_of::<Map>()) {
        Some(p) => {
            TABLE.store(p as *mut Map, Release);
            true
        }
        None => false,
    }
}

fn table() -> &'static mut [Map] {
    let t = TABLE.load(Acquire);
    if t.is_null() {
        return &mut [];
    }
    // SAFETY: CAP entries reserved by init; callers hold LOCK (or are single-threaded).
    unsafe { core::slice::from_raw_parts_mut(t, CAP) }
}

/// Removes [start, start+len) from the table, splitting entries that straddle it. Lock held.
pub fn remove(start: usize, len: usize) {
    let end = start.saturating_add(len);
    let t = table();
    let mut n = COUNT.load(Relaxed);
    let mut i = 0;
    while i < n {
        let m = t[i];
        let (ms, me) = (m.start, m.start + m.len);
        if me <= start || ms >= end {
            i += 1;
            continue;
        }
        // the part before and the part after survive
        let before = (ms < start).then(|| Map {
            len: start - ms,
            ..m
        });
        let after = (me > end).then(|| Map {
            start: end,
            len: me - end,
            ..m
        });
        match (before, after) {
            (Some(b), Some(a)) => {
                t[i] = b;
                if n < CAP {
                    t[n] = a;
                    n += 1;
                } else {
                    DROPPED.fetch_add(1, Relaxed);
                }
                i += 1;
            }
            (Some(x), None) | (None, Some(x)) => {
                t[i] = x;
                i += 1;
            }
            (None, None) => {
                n -= 1;
                t[i] = t[n];
            }
        }
    }
    COUNT.store(n, Relaxed);
}

/// Adds a mapping. Lock held.
pub fn insert(m: Map) {
    remove(m.start, m.len); // MAP_FIXED replaces what was there
    let n = COUNT.load(Relaxed);
    if n < CAP && !TABLE.load(Relaxed).is_null() {
        table()[n] = m;
        COUNT.store(n + 1, Relaxed);
    } else {
        DROPPED.fetch_add(1, Relaxed);
    }
}

/// Moves or resizes a mapping (mremap). Lock held.
pub fn moved(old: usize, old_len: usize, new: usize, new_len: usize) {
    let t = table();
    let n = COUNT.load(Relaxed);
    let mut meta = None;
    for m in t[..n].iter() {
        if m.start <= old && old < m.start + m.len {
            meta = Some(*m);
            break;
        }
    }
    remove(old, old_len);
    if let Some(m) = meta {
        insert(Map {
            start: new,
            len: new_len,
            ..m
        });
    }
}

/// Calls `f` for each live mapping (snapshot; lock taken inside).
pub fn for_each(mut f: impl FnMut(&Map)) {
    LOCK.lock();
    let n = COUNT.load(Relaxed);
    for m in table()[..n].iter() {
        f(m);
    }
    LOCK.unlock();
}

/// Whether `addr` lies in a mapping the program made (lock taken inside).
pub fn contains(addr: usize) -> bool {
    let mut hit = false;
    for_each(|m| hit |= m.start <= addr && addr < m.start + m.len);
    hit
}
