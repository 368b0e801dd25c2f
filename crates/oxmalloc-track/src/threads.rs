//! Thread slots: each thread that allocates gets a slot number on its first recorded call,
//! with its kernel thread id, its name (read again at snapshot time while it lives) and its
//! exact per-size-class counters. A thread writes only its own slot's counters; the snapshot
//! sums them. Slots are never reused (a thread that exits keeps its figures).

use crate::mem;
use core::sync::atomic::{AtomicI32, AtomicPtr, AtomicU32, AtomicU64, Ordering::*};

pub const MAX_SLOTS: usize = 8192;
/// Size classes: class k holds requests of 2^(k-1)+1 ..= 2^k bytes (class 0: 0 and 1).
pub const CLASSES: usize = 64;

#[repr(C)]
pub struct Slot {
    pub tid: AtomicI32,
    pub name_len: AtomicU32,
    pub name: [AtomicU64; 2],
    /// Per class: allocations, requested bytes, frees, freed bytes (frees are charged to the
    /// thread that frees).
    pub classes: [[AtomicU64; 4]; CLASSES],
    /// Stack hash → site id of this thread's recent stacks (kept here, not in TLS: the
    /// library's static TLS must fit glibc's surplus for a late dlopen).
    pub cache_hash: [AtomicU64; SITE_CACHE],
    pub cache_site: [AtomicU32; SITE_CACHE],
}

/// Entries of the per-thread cache of sites (by stack hash).
pub const SITE_CACHE: usize = 64;
/// The slot all threads share once the others are taken (its site cache is not used).
pub const SHARED_SLOT: u32 = MAX_SLOTS as u32 - 1;

static SLOTS: AtomicPtr<Slot> = AtomicPtr::new(core::ptr::null_mut());
pub static NSLOTS: AtomicU32 = AtomicU32::new(1);

pub fn init() -> bool {
    match mem::reserve(MAX_SLOTS * core::mem::size_of::<Slot>()) {
        Some(p) => {
            SLOTS.store(p as *mut Slot, Release);
            true
        }
        None => false,
    }
}

#[inline]
pub fn slot(i: u32) -> &'static Slot {
    // SAFETY: init reserved MAX_SLOTS slots (zeroed); i is clamped below that.
    unsafe { &*SLOTS.load(Relaxed).add((i as usize).min(MAX_SLOTS - 1)) }
}

/// Adds to a counter only its own thread writes (a plain load and store, no locked
/// instruction; readers may see it a moment late).
#[inline(always)]
pub fn bump(c: &AtomicU64, v: u64) {
    c.store(c.load(Relaxed).wrapping_add(v), Relaxed);
}

#[inline]
pub fn class_of(n: usize) -> usize {
    if n <= 1 {
        0
    } else {
        ((usize::BITS - (n - 1).leading_zeros()) as usize).min(CLASSES - 1)
    }
}

pub fn gettid() -> i32 {
    // SAFETY: gettid has no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

/// A new slot for the calling thread. Once all are taken the last one is shared, and its
/// counters may then lose an update now and then (they are written without locked
/// instructions).
pub fn new_slot() -> u32 {
    let i = NSLOTS.fetch_add(1, Relaxed).min(MAX_SLOTS as u32 - 1);
    let s = slot(i);
    let tid = gettid();
    s.tid.store(tid, Relaxed);
    refresh_name(s, tid);
    i
}

/// Reads /proc/self/task/TID/comm into the slot (nothing if the thread is gone).
pub fn refresh_name(s: &Slot, tid: i32) {
    let mut path = [0u8; 48];
    let mut n = 0;
    for &c in b"/proc/self/task/" {
        path[n] = c;
        n += 1;
    }
    let mut digits = [0u8; 12];
    let mut d = 0;
    let mut t = tid.max(0) as u32;
    loop {
        digits[d] = b'0' + (t % 10) as u8;
        d += 1;
        t /= 10;
        if t == 0 {
            break;
        }
    }
    while d > 0 {
        d -= 1;
        path[n] = digits[d];
        n += 1;
    }
    for &c in b"/comm\0" {
        path[n] = c;
        n += 1;
    }
    let mut buf = [0u8; 16];
    let saved = oxmalloc_core::os::errno();
    // SAFETY: path is NUL-terminated; buf is a valid writable buffer.
    let got = unsafe {
        let fd = libc::open(
            path.as_ptr() as *const libc::c_char,
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        if fd < 0 {
            oxmalloc_core::os::set_errno(saved);
            return;
        }
        let r = libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len());
        libc::close(fd);
        r
    };
    oxmalloc_core::os::set_errno(saved);
    if got <= 0 {
        return;
    }
    let mut len = got as usize;
    while len > 0 && (buf[len - 1] == b'\n' || buf[len - 1] == 0) {
        len -= 1;
    }
    let w0 = u64::from_le_bytes(buf[0..8].try_into().unwrap_or([0; 8]));
    let w1 = u64::from_le_bytes(buf[8..16].try_into().unwrap_or([0; 8]));
    s.name[0].store(w0, Relaxed);
    s.name[1].store(w1, Relaxed);
    s.name_len.store(len as u32, Relaxed);
}

/// The slot's thread name as bytes.
pub fn name(s: &Slot, out: &mut [u8; 16]) -> usize {
    out[0..8].copy_from_slice(&s.name[0].load(Relaxed).to_le_bytes());
    out[8..16].copy_from_slice(&s.name[1].load(Relaxed).to_le_bytes());
    (s.name_len.load(Relaxed) as usize).min(16)
}
