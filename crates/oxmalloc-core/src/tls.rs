//! Thread-local state: each thread's cache lives in static TLS reached with the initial-exec
//! model (one `fs:`-relative load, no call), declared in assembly because stable Rust cannot
//! choose a TLS model. The block starts zeroed, which reads as "not yet initialised".

use crate::tcache::ThreadCache;

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
compile_error!("oxmalloc supports x86-64 Linux only");

// An 8-byte-aligned, zero-filled symbol in .tbss: every thread gets its own copy, laid out by
// the dynamic loader in the static TLS block (the library is marked STATIC_TLS).
core::arch::global_asm!(
    ".pushsection .tbss,\"awT\",@nobits",
    ".p2align 6",
    ".globl oxmalloc_thread_cache",
    ".hidden oxmalloc_thread_cache",
    ".type oxmalloc_thread_cache,@object",
    ".size oxmalloc_thread_cache,{size}",
    "oxmalloc_thread_cache:",
    ".zero {size}",
    ".popsection",
    size = const core::mem::size_of::<ThreadCache>(),
);

/// The calling thread's cache. Valid for the whole life of the thread, including while its
/// thread-local destructors and glibc's own thread-exit frees run.
#[inline(always)]
pub fn current() -> *mut ThreadCache {
    let p: usize;
    // SAFETY: reads the thread pointer (fs:0 holds its own address on x86-64 Linux) and the
    // symbol's TLS offset from the GOT; the result is constant for the thread, so the
    // compiler may treat this as pure.
    unsafe {
        core::arch::asm!(
            "mov {p}, qword ptr fs:[0]",
            "add {p}, qword ptr [rip + oxmalloc_thread_cache@GOTTPOFF]",
            p = out(reg) p,
            options(pure, nomem, nostack),
        );
    }
    p as *mut ThreadCache
}
