//! Tunables: glibc's parameters (mmap/trim thresholds, top pad, arena and tcache limits), read
//! from the environment at start-up without allocating and changed later by mallopt.

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};

pub const DEFAULT_MMAP_THRESHOLD: usize = 128 * 1024;
/// Upper bound of the dynamic mmap threshold on 64-bit (glibc: 4 * 1024 * 1024 * sizeof(long)).
pub const MMAP_THRESHOLD_MAX: usize = 32 * 1024 * 1024;
pub const DEFAULT_TRIM_THRESHOLD: usize = 128 * 1024;
pub const DEFAULT_TOP_PAD: usize = 128 * 1024;
pub const DEFAULT_MMAP_MAX: usize = 65536;
pub const DEFAULT_ARENA_TEST: usize = 8;
/// Blocks per tcache bin (glibc 2.43's default).
pub const DEFAULT_TCACHE_COUNT: usize = 16;
pub const MAX_TCACHE_COUNT: usize = 65535;
/// Largest request the tcache holds by default (glibc: 1032 bytes, 64 bins).
pub const DEFAULT_TCACHE_MAX: usize = 1032;

/// The largest chunk size the fast bins take (M_MXFAST, glibc.malloc.mxfast), as glibc's
/// global_max_fast: read on the arena's slow paths only.
pub static MAX_FAST: AtomicUsize =
    AtomicUsize::new(crate::chunk::max_fast_chunk(crate::chunk::DEFAULT_MXFAST));

/// The fast-bin limit now (a chunk size).
#[inline(always)]
pub fn max_fast() -> usize {
    MAX_FAST.load(Relaxed)
}

pub static MMAP_THRESHOLD: AtomicUsize = AtomicUsize::new(DEFAULT_MMAP_THRESHOLD);
pub static TRIM_THRESHOLD: AtomicUsize = AtomicUsize::new(DEFAULT_TRIM_THRESHOLD);
pub static TOP_PAD: AtomicUsize = AtomicUsize::new(DEFAULT_TOP_PAD);
pub static MMAP_MAX: AtomicUsize = AtomicUsize::new(DEFAULT_MMAP_MAX);
/// 0 means "8 × usable CPUs", resolved at init.
pub static ARENA_MAX: AtomicUsize = AtomicUsize::new(0);
pub static ARENA_TEST: AtomicUsize = AtomicUsize::new(DEFAULT_ARENA_TEST);
pub static TCACHE_COUNT: AtomicUsize = AtomicUsize::new(DEFAULT_TCACHE_COUNT);
pub static TCACHE_MAX: AtomicUsize = AtomicUsize::new(DEFAULT_TCACHE_MAX);
/// Set when glibc.malloc.tcache_count was given: every bin then holds exactly that many.
pub static TCACHE_COUNT_SET: AtomicBool = AtomicBool::new(false);
/// Set once the user fixes a threshold/pad by hand: the dynamic threshold stops moving.
pub static NO_DYN_THRESHOLD: AtomicBool = AtomicBool::new(false);
/// Byte written over freed blocks and (inverted) over new ones; 0 = off (MALLOC_PERTURB_).
pub static PERTURB: AtomicUsize = AtomicUsize::new(0);
/// OXMALLOC_HARDEN=1: canaries, a random-order quarantine and guard pages (see harden.rs).
pub static HARDEN: AtomicBool = AtomicBool::new(false);

// mallopt parameter numbers (glibc's malloc.h).
pub const M_MXFAST: i32 = 1;
pub const M_TRIM_THRESHOLD: i32 = -1;
pub const M_TOP_PAD: i32 = -2;
pub const M_MMAP_THRESHOLD: i32 = -3;
pub const M_MMAP_MAX: i32 = -4;
pub const M_CHECK_ACTION: i32 = -5;
pub const M_PERTURB: i32 = -6;
pub const M_ARENA_TEST: i32 = -7;
pub const M_ARENA_MAX: i32 = -8;

/// Applies one mallopt with glibc 2.36's results: 1 for every parameter and value except an
/// M_MXFAST outside 0..=160 (programs that treat anything but 1 as an error must keep running).
/// Values glibc would store as they are, sign-extended to size_t, are stored the same way: an
/// mmap threshold above 32 MiB (or -1, "never") is honoured; a negative M_MMAP_MAX means no
/// mapped blocks; M_ARENA_TEST and M_ARENA_MAX ignore values below 1; unknown parameters are
/// ignored. A negative M_TOP_PAD is taken as 0 (glibc would pad every brk by ~2^64 bytes and
/// fail it).
pub fn mallopt(param: i32, value: i32) -> i32 {
    // C converts the int to size_t by sign extension.
    let as_size = value as isize as usize;
    match param {
        M_MXFAST => {
            // glibc compares the value as a size_t: a negative one is refused. The caller
            // (api::mallopt) consolidates the fast bins first, as glibc's mallopt does.
            if as_size <= crate::chunk::MAX_FAST_SIZE {
                MAX_FAST.store(crate::chunk::max_fast_chunk(as_size), Relaxed);
                1
            } else {
                0
            }
        }
        M_TRIM_THRESHOLD => {
            TRIM_THRESHOLD.store(as_size, Relaxed);
            NO_DYN_THRESHOLD.store(true, Relaxed);
            1
        }
        M_TOP_PAD => {
            TOP_PAD.store(value.max(0) as usize, Relaxed);
            NO_DYN_THRESHOLD.store(true, Relaxed);
            1
        }
        M_MMAP_THRESHOLD => {
            MMAP_THRESHOLD.store(as_size, Relaxed);
            NO_DYN_THRESHOLD.store(true, Relaxed);
            1
        }
        M_MMAP_MAX => {
            MMAP_MAX.store(value.max(0) as usize, Relaxed);
            NO_DYN_THRESHOLD.store(true, Relaxed);
            1
        }
        M_PERTURB => {
            PERTURB.store((value & 0xff) as usize, Relaxed);
            1
        }
        M_ARENA_TEST => {
            if value > 0 {
                ARENA_TEST.store(value as usize, Relaxed);
            }
            1
        }
        M_ARENA_MAX => {
            if value > 0 {
                ARENA_MAX.store(value as usize, Relaxed);
            }
            1
        }
        // M_CHECK_ACTION and parameters glibc does not know either.
        _ => 1,
    }
}

/// Parses a decimal (or 0x hex) unsigned value; `None` unless the whole string is a number.
pub fn parse_num(s: &[u8]) -> Option<usize> {
    let (digits, radix) = if s.len() > 2 && (s.starts_with(b"0x") || s.starts_with(b"0X")) {
        (&s[2..], 16)
    } else {
        (s, 10)
    };
    if digits.is_empty() {
        return None;
    }
    let mut v: usize = 0;
    for &c in digits {
        let d = match c {
            b'0'..=b'9' => (c - b'0') as usize,
            b'a'..=b'f' if radix == 16 => (c - b'a' + 10) as usize,
            b'A'..=b'F' if radix == 16 => (c - b'A' + 10) as usize,
            _ => return None,
        };
        v = v.checked_mul(radix)?.checked_add(d)?;
    }
    Some(v)
}

fn getenv(name: &[u8]) -> Option<&'static [u8]> {
    // SAFETY: name is NUL-terminated; glibc's getenv neither allocates nor modifies environ,
    // and the returned string lives as long as the environment entry.
    unsafe {
        let p = libc::getenv(name.as_ptr() as *const libc::c_char);
        if p.is_null() {
            return None;
        }
        Some(core::ffi::CStr::from_ptr(p).to_bytes())
    }
}

/// Applies one named tunable (glibc.malloc.NAME or the matching old variable); values that do
/// not parse are ignored, as glibc ignores them.
pub fn apply(name: &[u8], value: &[u8]) {
    let Some(v) = parse_num(value) else { return };
    let vi = v.min(i32::MAX as usize) as i32;
    match name {
        b"mmap_threshold" => {
            mallopt(M_MMAP_THRESHOLD, vi);
        }
        b"trim_threshold" => {
            mallopt(M_TRIM_THRESHOLD, vi);
        }
        b"top_pad" => {
            mallopt(M_TOP_PAD, vi);
        }
        b"mmap_max" => {
            mallopt(M_MMAP_MAX, vi);
        }
        b"arena_max" => {
            mallopt(M_ARENA_MAX, vi);
        }
        b"arena_test" => {
            mallopt(M_ARENA_TEST, vi);
        }
        b"perturb" => {
            mallopt(M_PERTURB, vi);
        }
        b"mxfast" if v <= crate::chunk::MAX_FAST_SIZE => {
            MAX_FAST.store(crate::chunk::max_fast_chunk(v), Relaxed);
        }
        b"tcache_count" if v <= MAX_TCACHE_COUNT => {
            TCACHE_COUNT.store(v, Relaxed);
            TCACHE_COUNT_SET.store(true, Relaxed);
        }
        // glibc.malloc.check / MALLOC_CHECK_: glibc (2.34+) checks only with its debug library
        // preloaded, which then also reports exact usable sizes. A value that asks for an
        // abort on corruption (2 or 3) turns on the hardened mode, which checks more and
        // reports exact usable sizes; 1 (print and go on) and 0 change nothing.
        b"check" if v & 2 != 0 => enable_harden(),
        b"tcache_max" => {
            TCACHE_MAX.store(v.min(crate::chunk::TCACHE_MAX_REQUEST), Relaxed);
        }
        _ => {}
    }
}

fn enable_harden() {
    if !HARDEN.swap(true, Relaxed) {
        crate::hooks::intercept_for_hardening();
    }
}

/// Reads MALLOC_*_ and GLIBC_TUNABLES once, at global init. Allocation-free.
pub fn read_environment() {
    let old: [(&[u8], &[u8]); 7] = [
        (b"MALLOC_ARENA_MAX\0", b"arena_max"),
        (b"MALLOC_ARENA_TEST\0", b"arena_test"),
        (b"MALLOC_MMAP_THRESHOLD_\0", b"mmap_threshold"),
        (b"MALLOC_TRIM_THRESHOLD_\0", b"trim_threshold"),
        (b"MALLOC_TOP_PAD_\0", b"top_pad"),
        (b"MALLOC_MMAP_MAX_\0", b"mmap_max"),
        (b"MALLOC_PERTURB_\0", b"perturb"),
    ];
    for (env, name) in old {
        if let Some(v) = getenv(env) {
            apply(name, v);
        }
    }
    if let Some(v) = getenv(b"MALLOC_CHECK_\0") {
        apply(b"check", v);
    }
    if let Some(v) = getenv(b"OXMALLOC_HARDEN\0") {
        if parse_num(v).is_some_and(|n| n != 0) {
            enable_harden();
        }
    }
    // GLIBC_TUNABLES=glibc.malloc.NAME=VALUE:glibc.malloc.NAME=VALUE (other namespaces ignored).
    if let Some(t) = getenv(b"GLIBC_TUNABLES\0") {
        for item in t.split(|&c| c == b':') {
            let Some(eq) = item.iter().position(|&c| c == b'=') else {
                continue;
            };
            let (key, val) = (&item[..eq], &item[eq + 1..]);
            if let Some(name) = key.strip_prefix(b"glibc.malloc.") {
                apply(name, val);
            }
        }
    }
}

/// The arena limit in force: the user's M_ARENA_MAX, or 8 × the CPUs this process may use.
pub fn arena_limit(cpus: usize) -> usize {
    match ARENA_MAX.load(Relaxed) {
        0 => (8 * cpus).max(1),
        n => n,
    }
}
