//! Statistics: mallinfo2 figures summed over the arenas and the mmap path, malloc_stats in
//! glibc's layout (to stderr) and malloc_info's XML, all computed without allocating.

use crate::arena::Arena;
use crate::fmt::StackWriter;
use crate::global::{self, for_each_arena, lock_arena, unlock_arena};
use crate::large;
use core::fmt::Write;
use core::sync::atomic::Ordering::Relaxed;

/// glibc's `struct mallinfo2`.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct MallInfo2 {
    pub arena: usize,
    pub ordblks: usize,
    pub smblks: usize,
    pub hblks: usize,
    pub hblkhd: usize,
    pub usmblks: usize,
    pub fsmblks: usize,
    pub uordblks: usize,
    pub fordblks: usize,
    pub keepcost: usize,
}

/// Figures of one arena, taken under its lock.
#[derive(Clone, Copy, Default)]
pub struct ArenaFigures {
    pub system: usize,
    pub max_system: usize,
    pub free_chunks: usize,
    pub free_bytes: usize,
    pub fast_chunks: usize,
    pub fast_bytes: usize,
    pub top: usize,
}

/// Reads arena `a`'s figures under its lock.
///
/// # Safety
/// `a` is a live arena.
pub unsafe fn arena_figures(a: *mut Arena) -> ArenaFigures {
    let secret = global::SECRET.load(Relaxed);
    // SAFETY: a is a live arena (the caller's promise); the lock is held while the bins are
    // walked.
    let f = unsafe {
        lock_arena(a);
        let (nfree, free, nfast, fast) = (*a).free_stats(secret);
        ArenaFigures {
            system: (*a).system_mem,
            max_system: (*a).max_system_mem,
            free_chunks: nfree,
            free_bytes: free,
            fast_chunks: nfast,
            fast_bytes: fast,
            top: (*a).top_size(),
        }
    };
    // SAFETY: taken above.
    unsafe { unlock_arena(a) };
    f
}

pub fn mallinfo2() -> MallInfo2 {
    global::ensure_init();
    let mut m = MallInfo2::default();
    for_each_arena(|a| {
        // SAFETY: a is a live arena from the list.
        let f = unsafe { arena_figures(a) };
        m.arena += f.system;
        m.ordblks += f.free_chunks;
        m.smblks += f.fast_chunks;
        m.fsmblks += f.fast_bytes;
        m.fordblks += f.free_bytes + f.fast_bytes;
        m.uordblks += f.system.saturating_sub(f.free_bytes + f.fast_bytes);
        if a == global::main_arena() {
            m.keepcost = f.top;
        }
    });
    m.hblks = large::N_MMAPS.load(Relaxed);
    m.hblkhd = large::MMAPPED_MEM.load(Relaxed);
    m
}

// glibc's <pthread.h>; the libc crate does not bind it.
const PTHREAD_CANCEL_DISABLE: libc::c_int = 1;
extern "C" {
    fn pthread_setcancelstate(state: libc::c_int, old: *mut libc::c_int) -> libc::c_int;
}

/// Prints the per-arena and total figures to stderr in glibc's layout.
///
/// Not a cancellation point (glibc's tst-malloc-stats-cancellation): the writes to stderr
/// are, so cancellation is disabled while it prints and the caller's state put back after.
pub fn malloc_stats() {
    let mut old: libc::c_int = 0;
    // SAFETY: pthread_setcancelstate only reads and writes this thread's cancel state.
    unsafe { pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &mut old) };
    malloc_stats_to(&mut |b| crate::os::write_stderr(b));
    // SAFETY: as above; a null old-state pointer is allowed.
    unsafe { pthread_setcancelstate(old, core::ptr::null_mut()) };
}

/// malloc_stats's text, written through `out` piece by piece.
pub fn malloc_stats_to(out: &mut dyn FnMut(&[u8])) {
    global::ensure_init();
    let mut w = StackWriter::<256>::new();
    let (mut system, mut inuse) = (0usize, 0usize);
    let mut i = 0;
    for_each_arena(|a| {
        // SAFETY: a is a live arena from the list.
        let f = unsafe { arena_figures(a) };
        let used = f.system.saturating_sub(f.free_bytes + f.fast_bytes);
        w.clear();
        let _ = write!(
            w,
            "Arena {}:\nsystem bytes     = {:>10}\nin use bytes     = {:>10}\n",
            i, f.system, used
        );
        out(w.as_bytes());
        system += f.system;
        inuse += used;
        i += 1;
    });
    let mm = large::MMAPPED_MEM.load(Relaxed);
    w.clear();
    let _ = write!(
        w,
        "Total (incl. mmap):\nsystem bytes     = {:>10}\nin use bytes     = {:>10}\nmax mmap regions = {:>10}\nmax mmap bytes   = {:>10}\n",
        system + mm,
        inuse + mm,
        large::MAX_N_MMAPS.load(Relaxed),
        large::MAX_MMAPPED_MEM.load(Relaxed)
    );
    out(w.as_bytes());
}

/// Writes the exit report (malloc_stats, then malloc_info's XML) to file `path` whole or not
/// at all (see report_file), assembling it in a private mapping so nothing is allocated.
/// `%p` in the path becomes the process id. Returns the errno on failure.
pub fn write_report_file(path: &[u8]) -> Result<(), i32> {
    const CAP: usize = 4 << 20;
    let mut name = [0u8; crate::report_file::PATH_MAX];
    let mut n = 0;
    let mut i = 0;
    while i < path.len() && path[i] != 0 {
        if path[i] == b'%' && path.get(i + 1) == Some(&b'p') {
            let mut w = StackWriter::<24>::new();
            // SAFETY: getpid has no preconditions.
            let _ = write!(w, "{}", unsafe { libc::getpid() });
            for &b in w.as_bytes() {
                if n < name.len() {
                    name[n] = b;
                    n += 1;
                }
            }
            i += 2;
            continue;
        }
        if n < name.len() {
            name[n] = path[i];
            n += 1;
        }
        i += 1;
    }
    if n >= name.len() {
        return Err(libc::ENAMETOOLONG);
    }
    let Some(buf) = crate::os::mmap_rw(CAP) else {
        return Err(libc::ENOMEM);
    };
    let mut len = 0usize;
    let mut truncated = false;
    {
        let mut put = |b: &[u8]| {
            if len + b.len() <= CAP {
                // SAFETY: buf has CAP writable bytes; the range is inside it.
                unsafe { core::ptr::copy_nonoverlapping(b.as_ptr(), buf.add(len), b.len()) };
                len += b.len();
            } else {
                truncated = true;
            }
        };
        malloc_stats_to(&mut put);
        malloc_info(&mut put);
    }
    let r = if truncated {
        Err(libc::EFBIG)
    } else {
        // SAFETY: the first len bytes of buf were written above.
        let body = unsafe { core::slice::from_raw_parts(buf, len) };
        crate::report_file::write_atomic(&name[..n], &[body])
    };
    crate::os::munmap(buf, CAP);
    r
}

/// Writes malloc_info's XML through `out` (called with each piece of text).
pub fn malloc_info(out: &mut dyn FnMut(&[u8])) {
    global::ensure_init();
    let secret = global::SECRET.load(Relaxed);
    let mut w = StackWriter::<512>::new();
    out(b"<malloc version=\"1\">\n");
    let (mut tfast_n, mut tfast, mut trest_n, mut trest, mut tsys, mut tmax) = (0, 0, 0, 0, 0, 0);
    let mut i = 0;
    for_each_arena(|a| {
        // Collect the bin sizes under the lock into a fixed buffer, then print unlocked
        // (printing may call malloc for the FILE's buffer).
        const MAXB: usize = 64;
        let mut sizes = [(0usize, 0usize, 0usize, 0usize); MAXB];
        let mut ns = 0;
        // SAFETY: a is a live arena from the list; its lock is held while the bins are read.
        let (nfree, free, nfast, fast, sys, maxsys) = unsafe {
            lock_arena(a);
            (*a).bin_summary(|_, n, total, lo, hi| {
                if ns < MAXB {
                    sizes[ns] = (lo, hi, n, total);
                    ns += 1;
                }
            });
            let (nf, f, nfa, fa) = (*a).free_stats(secret);
            let r = (nf, f, nfa, fa, (*a).system_mem, (*a).max_system_mem);
            unlock_arena(a);
            r
        };
        w.clear();
        let _ = write!(w, "<heap nr=\"{}\">\n<sizes>\n", i);
        out(w.as_bytes());
        for &(lo, hi, n, total) in &sizes[..ns] {
            w.clear();
            let _ = writeln!(
                w,
                "  <size from=\"{}\" to=\"{}\" total=\"{}\" count=\"{}\"/>",
                lo, hi, total, n
            );
            out(w.as_bytes());
        }
        w.clear();
        let _ = write!(
            w,
            "</sizes>\n<total type=\"fast\" count=\"{}\" size=\"{}\"/>\n<total type=\"rest\" count=\"{}\" size=\"{}\"/>\n<system type=\"current\" size=\"{}\"/>\n<system type=\"max\" size=\"{}\"/>\n<aspace type=\"total\" size=\"{}\"/>\n<aspace type=\"mprotect\" size=\"{}\"/>\n</heap>\n",
            nfast, fast, nfree, free, sys, maxsys, sys, sys
        );
        out(w.as_bytes());
        tfast_n += nfast;
        tfast += fast;
        trest_n += nfree;
        trest += free;
        tsys += sys;
        tmax += maxsys;
        i += 1;
    });
    w.clear();
    let _ = write!(
        w,
        "<total type=\"fast\" count=\"{}\" size=\"{}\"/>\n<total type=\"rest\" count=\"{}\" size=\"{}\"/>\n<total type=\"mmap\" count=\"{}\" size=\"{}\"/>\n<system type=\"current\" size=\"{}\"/>\n<system type=\"max\" size=\"{}\"/>\n<aspace type=\"total\" size=\"{}\"/>\n<aspace type=\"mprotect\" size=\"{}\"/>\n</malloc>\n",
        tfast_n,
        tfast,
        trest_n,
        trest,
        large::N_MMAPS.load(Relaxed),
        large::MMAPPED_MEM.load(Relaxed),
        tsys,
        tmax,
        tsys,
        tsys
    );
    out(w.as_bytes());
}
