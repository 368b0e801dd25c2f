//! Interned stacks and sites. A stack is a list of return addresses, stored once (id ≥ 1;
//! id 0 is "no stack"). A site is a (stack, thread slot) pair with its counters: blocks and
//! requested bytes allocated and freed. Tables are reserved up front in the recorder's own
//! mappings (pages are touched as they fill) and only grow: ids stay valid, and a snapshot
//! reads entries below the published counts without a lock. Inserts take one lock; threads
//! keep a small cache of recent stacks, so a hot call site costs no lock.

use crate::mem;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::*};
use oxmalloc_core::sync::Mutex;

/// Most sites (the shadow word has 24 bits for the id; id 1 is the overflow site).
pub const MAX_SITES: usize = 1 << 22;
const MAX_STACKS: usize = 1 << 21;
const MAX_FRAMES_TOTAL: usize = 1 << 26;
const SITE_INDEX: usize = MAX_SITES * 2;
const STACK_INDEX: usize = MAX_STACKS * 2;

/// The site blocks are charged to when the tables are full.
pub const OVERFLOW_SITE: u32 = 1;

#[repr(C)]
pub struct Site {
    pub hash: u64,
    pub stack: u32,
    pub slot: u32,
    pub allocs: AtomicU64,
    pub alloc_bytes: AtomicU64,
    /// Frees made by the site's own thread (no locked instruction) ...
    pub frees: AtomicU64,
    pub free_bytes: AtomicU64,
    /// ... and by other threads.
    pub remote_frees: AtomicU64,
    pub remote_free_bytes: AtomicU64,
}

impl Site {
    /// (allocs, alloc_bytes, frees, free_bytes) as read now.
    pub fn figures(&self) -> [u64; 4] {
        [
            self.allocs.load(Relaxed),
            self.alloc_bytes.load(Relaxed),
            self.frees.load(Relaxed) + self.remote_frees.load(Relaxed),
            self.free_bytes.load(Relaxed) + self.remote_free_bytes.load(Relaxed),
        ]
    }
}

#[repr(C)]
pub struct Stack {
    pub hash: u64,
    pub start: u32,
    pub depth: u32,
}

struct Tables {
    sites: *mut Site,
    site_index: *mut u32,
    stacks: *mut Stack,
    stack_index: *mut u32,
    frames: *mut usize,
}

static mut T: Tables = Tables {
    sites: core::ptr::null_mut(),
    site_index: core::ptr::null_mut(),
    stacks: core::ptr::null_mut(),
    stack_index: core::ptr::null_mut(),
    frames: core::ptr::null_mut(),
};

/// Published counts (entries below them are complete).
pub static NSITES: AtomicU32 = AtomicU32::new(0);
pub static NSTACKS: AtomicU32 = AtomicU32::new(0);
static NFRAMES: AtomicUsize = AtomicUsize::new(0);
pub static LOCK: Mutex = Mutex::new();
/// The thread record of the thread inside the lock (a fork from a signal handler that
/// interrupted it must not wait for it), or 0.
pub static OWNER: AtomicUsize = AtomicUsize::new(0);

/// Reserves the tables; false if the memory cannot be had (tracking then stays off).
pub fn init() -> bool {
    let sz = |n: usize, each: usize| n * each;
    let (Some(s), Some(si), Some(st), Some(sti), Some(fr)) = (
        mem::reserve(sz(MAX_SITES, core::mem::size_of::<Site>())),
        mem::reserve(sz(SITE_INDEX, 4)),
        mem::reserve(sz(MAX_STACKS, core::mem::size_of::<Stack>())),
        mem::reserve(sz(STACK_INDEX, 4)),
        mem::reserve(sz(MAX_FRAMES_TOTAL, 8)),
    ) else {
        return false;
    };
    // SAFETY: start-up, before the hooks are installed: nobody else reads T yet.
    unsafe {
        T = Tables {
            sites: s as *mut Site,
            site_index: si as *mut u32,
            stacks: st as *mut Stack,
            stack_index: sti as *mut u32,
            frames: fr as *mut usize,
        };
        // id 0 of each table is unused ("none"); stack 0 is the empty stack; site 1 overflow.
        NSTACKS.store(1, Release);
        (*T.sites.add(1)).stack = 0;
        NSITES.store(2, Release);
    }
    true
}

pub fn hash_frames(f: &[usize]) -> u64 {
    let mut h: u64 = 0x9e37_79b9_7f4a_7c15 ^ f.len() as u64;
    for &ip in f {
        h = (h ^ ip as u64).wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 32;
    }
    h | 1
}

pub fn site_hash(stack_hash: u64, slot: u32) -> u64 {
    let h = (stack_hash ^ (slot as u64).wrapping_mul(0xc4ce_b9fe_1a85_ec53))
        .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (h ^ (h >> 29)) | 1
}

/// The site for `frames` (hash `sh`) on thread `slot`, made if new. Lock held inside.
pub fn site_for(frames: &[usize], sh: u64, slot: u32, me: usize) -> u32 {
    let key = site_hash(sh, slot);
    LOCK.lock();
    OWNER.store(me, Relaxed);
    // SAFETY: the tables were reserved by init (the hooks are installed only after it
    // succeeded); the lock serialises every writer; indices are bounded by the capacities.
    let id = unsafe {
        let mut i = (key as usize) & (SITE_INDEX - 1);
        loop {
            let e = *T.site_index.add(i);
            if e == 0 {
                break make_site(i, key, frames, sh, slot);
            }
            let s = &*T.sites.add(e as usize);
            if s.hash == key && s.slot == slot && stack_matches(s.stack, frames) {
                break e;
            }
            i = (i + 1) & (SITE_INDEX - 1);
        }
    };
    OWNER.store(0, Relaxed);
    LOCK.unlock();
    id
}

unsafe fn stack_matches(id: u32, frames: &[usize]) -> bool {
    // SAFETY: id < NSTACKS (made under the lock the caller holds).
    unsafe {
        let st = &*T.stacks.add(id as usize);
        st.depth as usize == frames.len()
            && (0..frames.len()).all(|k| *T.frames.add(st.start as usize + k) == frames[k])
    }
}

unsafe fn make_site(slot_i: usize, key: u64, frames: &[usize], sh: u64, slot: u32) -> u32 {
    // SAFETY: under the lock (caller); bounds checked against the capacities.
    unsafe {
        let n = NSITES.load(Relaxed) as usize;
        if n >= MAX_SITES - 1 {
            return OVERFLOW_SITE;
        }
        let Some(stack) = intern_stack(frames, sh) else {
            return OVERFLOW_SITE;
        };
        let s = &mut *T.sites.add(n);
        s.hash = key;
        s.stack = stack;
        s.slot = slot;
        *T.site_index.add(slot_i) = n as u32;
        NSITES.store(n as u32 + 1, Release);
        n as u32
    }
}

unsafe fn intern_stack(frames: &[usize], sh: u64) -> Option<u32> {
    if frames.is_empty() {
        return Some(0);
    }
    // SAFETY: under the lock (caller's caller); bounds checked.
    unsafe {
        let mut i = (sh as usize) & (STACK_INDEX - 1);
        loop {
            let e = *T.stack_index.add(i);
            if e == 0 {
                break;
            }
            if (*T.stacks.add(e as usize)).hash == sh && stack_matches(e, frames) {
                return Some(e);
            }
            i = (i + 1) & (STACK_INDEX - 1);
        }
        let n = NSTACKS.load(Relaxed) as usize;
        let f = NFRAMES.load(Relaxed);
        if n >= MAX_STACKS - 1 || f + frames.len() > MAX_FRAMES_TOTAL {
            return None;
        }
        core::ptr::copy_nonoverlapping(frames.as_ptr(), T.frames.add(f), frames.len());
        NFRAMES.store(f + frames.len(), Relaxed);
        let st = &mut *T.stacks.add(n);
        st.hash = sh;
        st.start = f as u32;
        st.depth = frames.len() as u32;
        *T.stack_index.add(i) = n as u32;
        NSTACKS.store(n as u32 + 1, Release);
        Some(n as u32)
    }
}

/// Site `id` (a value from site_for, below NSITES).
#[inline]
pub fn site(id: u32) -> &'static Site {
    // SAFETY: ids handed out are below the published count; sites are never removed.
    unsafe { &*T.sites.add(id as usize) }
}

/// The frames of stack `id` (below NSTACKS).
pub fn stack_frames(id: u32) -> &'static [usize] {
    // SAFETY: as for site; a stack's frames are written before its count is published.
    unsafe {
        let st = &*T.stacks.add(id as usize);
        core::slice::from_raw_parts(T.frames.add(st.start as usize), st.depth as usize)
    }
}

/// Charges an allocation of `n` bytes to site `id`.
#[inline]
pub fn charge_alloc(id: u32, n: usize) {
    // A site belongs to one thread slot, and only that thread allocates through it (the
    // overflow site and the shared last slot excepted): no locked instruction needed.
    let s = site(id);
    if id == OVERFLOW_SITE || s.slot as usize >= crate::threads::MAX_SLOTS - 1 {
        s.allocs.fetch_add(1, Relaxed);
        s.alloc_bytes.fetch_add(n as u64, Relaxed);
    } else {
        crate::threads::bump(&s.allocs, 1);
        crate::threads::bump(&s.alloc_bytes, n as u64);
    }
}

/// Charges a free of `n` bytes to site `id`, made by thread `slot`.
#[inline]
pub fn charge_free(id: u32, n: usize, slot: u32) {
    let s = site(id);
    if s.slot == slot && id != OVERFLOW_SITE && (slot as usize) < crate::threads::MAX_SLOTS - 1 {
        crate::threads::bump(&s.frees, 1);
        crate::threads::bump(&s.free_bytes, n as u64);
    } else {
        s.remote_frees.fetch_add(1, Relaxed);
        s.remote_free_bytes.fetch_add(n as u64, Relaxed);
    }
}
