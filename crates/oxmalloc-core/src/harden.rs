//! The hardened mode (OXMALLOC_HARDEN=1): a canary after every block, checked when it is freed
//! or reallocated; a per-thread quarantine that releases freed blocks late and in random order;
//! guard pages after mmapped blocks (large.rs). Set once at start-up; off, it costs nothing.
//!
//! ```text
//!   mem -> | user data (n bytes) | canary bytes ... | n ^ pattern |   (usable size U)
//!                                n                  U-8           U
//! ```
//! Every canary byte has its top bit set (never NUL, never ASCII), so the common off-by-one
//! writes are caught; the pattern is keyed per block, so it cannot be guessed from another.

use crate::api::{self, Caller};
use crate::chunk::*;
use crate::tcache::{ACTIVE, QUARANTINE};
use crate::{global, os, tls, tunables};
use core::ptr::null_mut;
use core::sync::atomic::Ordering::Relaxed;

/// Bytes each block is enlarged by: at least 8 canary bytes and the size word.
pub const TRAILER: usize = 16;

/// Whether the hardened mode is on. Initialises first: the mode is read from the
/// environment then, and the very first call must already be armed.
#[inline]
pub fn on() -> bool {
    global::ensure_init();
    tunables::HARDEN.load(Relaxed)
}

fn pattern(m: *mut u8) -> usize {
    let x = (m as usize) ^ global::SECRET.load(Relaxed).rotate_left(17);
    x.wrapping_mul(0xD6E8_FEB8_6659_FD93) | 0x8080_8080_8080_8080
}

#[inline]
fn canary_byte(w: usize, off: usize) -> u8 {
    (w >> (8 * (off & 7))) as u8
}

/// Writes the canary and the trailer of a fresh block `m` whose caller asked for `n` bytes.
unsafe fn arm(m: *mut u8, n: usize) -> *mut u8 {
    if m.is_null() {
        return m;
    }
    // SAFETY: m is a fresh block with at least n + TRAILER usable bytes.
    unsafe {
        let u = usable_size(mem2chunk(m));
        let w = pattern(m);
        for i in n..u - SIZE_SZ {
            *m.add(i) = canary_byte(w, i);
        }
        (m.add(u - SIZE_SZ) as *mut usize).write_unaligned(n ^ w);
    }
    m
}

/// Checks the canary of live block `m` (its header already validated) and returns the size
/// its caller asked for; aborts if anything past that size was written.
unsafe fn check(m: *mut u8, who: Caller) -> usize {
    // SAFETY: m is a validated live block; U - 8 >= n + 8 for blocks armed above.
    unsafe {
        let u = usable_size(mem2chunk(m));
        let w = pattern(m);
        let n = (m.add(u - SIZE_SZ) as *const usize).read_unaligned() ^ w;
        let msg = match who {
            Caller::Realloc => "realloc(): heap overflow detected (canary overwritten)",
            Caller::UsableSize => {
                "malloc_usable_size(): heap overflow detected (canary overwritten)"
            }
            Caller::Free => "free(): heap overflow detected (canary overwritten)",
        };
        if u < TRAILER || n > u - TRAILER {
            os::fatal(msg, m as usize);
        }
        for i in n..u - SIZE_SZ {
            if *m.add(i) != canary_byte(w, i) {
                os::fatal(msg, m.add(i) as usize);
            }
        }
        n
    }
}

pub unsafe fn malloc(n: usize) -> *mut u8 {
    if n > MAX_REQUEST - TRAILER {
        os::set_errno(libc::ENOMEM);
        return null_mut();
    }
    // SAFETY: malloc_sized returns null or a block of at least n + TRAILER bytes.
    unsafe { arm(api::malloc_sized(n + TRAILER, n), n) }
}

pub unsafe fn memalign(align: usize, n: usize) -> *mut u8 {
    if n > MAX_REQUEST - TRAILER - 2 * align {
        os::set_errno(libc::ENOMEM);
        return null_mut();
    }
    // SAFETY: as above (align > 16, a power of two: checked by api::memalign).
    unsafe { arm(api::memalign_raw(align, n + TRAILER, n), n) }
}

pub unsafe fn calloc(total: usize) -> *mut u8 {
    // SAFETY: malloc returns null or n usable bytes, which are cleared.
    unsafe {
        let m = malloc(total);
        if !m.is_null() {
            core::ptr::write_bytes(m, 0, total);
        }
        m
    }
}

/// The bytes the caller asked for (malloc_usable_size in hardened mode).
pub unsafe fn usable(m: *mut u8) -> usize {
    // SAFETY: validated first.
    unsafe {
        api::checked_head(m, Caller::UsableSize);
        check(m, Caller::UsableSize)
    }
}

pub unsafe fn free(m: *mut u8) {
    // SAFETY: m is validated (aborting on misuse) before anything else touches it.
    unsafe {
        let (_, mapped) = api::checked_head(m, Caller::Free);
        check(m, Caller::Free);
        let tc = tls::current();
        let q = (*tc).ext;
        // An mmapped block skips the quarantine: it is unmapped, so a late access faults.
        if (*tc).state != ACTIVE || mapped.is_some() || q.is_null() {
            return api::free_untracked(m);
        }
        // Quarantined blocks carry the cached-block key, so freeing one again is caught.
        *(m.add(SIZE_SZ) as *mut usize) = crate::tcache::mark(m, global::TCACHE_KEY.load(Relaxed));
        let mut r = (*q).rng;
        if r == 0 {
            r = (tc as u64) ^ global::SECRET.load(Relaxed) as u64 | 1;
        }
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        (*q).rng = r;
        let slot = (r % QUARANTINE as u64) as usize;
        let out = (*q).quarantine[slot];
        (*q).quarantine[slot] = m;
        if !out.is_null() {
            release(out);
        }
    }
}

/// Frees a block leaving the quarantine.
unsafe fn release(m: *mut u8) {
    // SAFETY: m was validated when it entered the quarantine; the key is cleared so the
    // ordinary free does not take it for a double free.
    unsafe {
        *(m.add(SIZE_SZ) as *mut usize) = 0;
        api::free_untracked(m);
    }
}

/// Empties this thread's quarantine (thread exit).
pub unsafe fn drain(tc: *mut crate::tcache::ThreadCache) {
    // SAFETY: tc is the exiting thread's cache.
    let q = unsafe { (*tc).ext };
    if q.is_null() {
        return;
    }
    for i in 0..QUARANTINE {
        // SAFETY: q is the exiting thread's cache extension.
        unsafe {
            let m = (*q).quarantine[i];
            (*q).quarantine[i] = null_mut();
            if !m.is_null() {
                release(m);
            }
        }
    }
}

pub unsafe fn realloc(p: *mut u8, n: usize) -> *mut u8 {
    // SAFETY: p is null or validated before use; the old block is freed only after the copy.
    unsafe {
        if p.is_null() {
            return malloc(n);
        }
        api::checked_head(p, Caller::Realloc);
        let old = check(p, Caller::Realloc);
        if n == 0 {
            free(p);
            return null_mut();
        }
        let q = malloc(n);
        if q.is_null() {
            return q;
        }
        core::ptr::copy_nonoverlapping(p, q, old.min(n));
        free(p);
        q
    }
}
