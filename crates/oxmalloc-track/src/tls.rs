//! The recorder's per-thread record, in static TLS (initial-exec, one `fs:`-relative load, no
//! call, no allocation: `#[thread_local]` is unstable and std's thread_local may allocate).
//! Zeroed for every new thread, which reads as "no slot yet".

#[repr(C)]
pub struct ThreadRec {
    /// Non-zero while this thread runs recorder code (its own calls are not recorded) or
    /// between realloc's two hook calls.
    pub guard: u32,
    /// The thread's slot number (0: none yet).
    pub slot: u32,
    /// Sample mode: bytes left before the next sample (refilled when it reaches 0 or less).
    pub countdown: i64,
    /// Random state for the sampling intervals (0: not seeded yet).
    pub rng: u64,
    /// realloc: the old block's shadow word and size, taken in on_realloc_begin.
    pub realloc_word: u32,
    pub realloc_size: usize,
}

core::arch::global_asm!(
    ".pushsection .tbss,\"awT\",@nobits",
    ".p2align 3",
    ".globl oxmalloc_track_thread",
    ".hidden oxmalloc_track_thread",
    ".type oxmalloc_track_thread,@object",
    ".size oxmalloc_track_thread,{size}",
    "oxmalloc_track_thread:",
    ".zero {size}",
    ".popsection",
    size = const core::mem::size_of::<ThreadRec>(),
);

/// The calling thread's record, valid for the thread's whole life.
#[inline(always)]
pub fn current() -> *mut ThreadRec {
    let p: usize;
    // SAFETY: reads the thread pointer (fs:0 holds its own address on x86-64 Linux) and the
    // symbol's TLS offset from the GOT; constant for the thread.
    unsafe {
        core::arch::asm!(
            "mov {p}, qword ptr fs:[0]",
            "add {p}, qword ptr [rip + oxmalloc_track_thread@GOTTPOFF]",
            p = out(reg) p,
            options(pure, nomem, nostack),
        );
    }
    p as *mut ThreadRec
}
