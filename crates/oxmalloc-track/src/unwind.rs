//! Stack capture inside malloc: libgcc's DWARF unwinder (`_Unwind_Backtrace`), which reads
//! each module's .eh_frame through glibc's `_dl_find_object` (glibc 2.35+, GCC 12+: lock-free,
//! no dynamic-loader lock, no malloc), so it walks libraries built without frame pointers.
//! Frames inside liboxmalloc itself (the hooks, malloc) are dropped; the first kept frame is
//! the return address into the allocation's caller.

use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

pub const MAX_FRAMES: usize = 64;

#[repr(C)]
struct UnwindContext {
    _private: [u8; 0],
}

type Trace = extern "C" fn(ctx: *mut UnwindContext, arg: *mut libc::c_void) -> i32;

#[link(name = "gcc_s")]
extern "C" {
    fn _Unwind_Backtrace(trace: Trace, arg: *mut libc::c_void) -> i32;
    fn _Unwind_GetIP(ctx: *mut UnwindContext) -> usize;
}

const URC_NO_REASON: i32 = 0;
const URC_END_OF_STACK: i32 = 5;

/// The text range of this library (frames in it are the allocator's, not the program's).
static OWN_START: AtomicUsize = AtomicUsize::new(0);
static OWN_END: AtomicUsize = AtomicUsize::new(0);

struct Walk<'a> {
    out: &'a mut [usize],
    n: usize,
    own: (usize, usize),
}

extern "C" fn step(ctx: *mut UnwindContext, arg: *mut libc::c_void) -> i32 {
    // SAFETY: arg is the Walk passed to _Unwind_Backtrace below, alive for the whole walk;
    // ctx is libgcc's context for this frame.
    unsafe {
        let w = &mut *(arg as *mut Walk);
        let ip = _Unwind_GetIP(ctx);
        if ip == 0 {
            return URC_END_OF_STACK;
        }
        if ip >= w.own.0 && ip < w.own.1 {
            // the allocator's own frames: skipped (only before the first program frame)
            if w.n == 0 {
                return URC_NO_REASON;
            }
        }
        if w.n >= w.out.len() {
            return URC_END_OF_STACK;
        }
        w.out[w.n] = ip;
        w.n += 1;
        URC_NO_REASON
    }
}

/// Fills `out` with up to `out.len()` return addresses, innermost first; returns how many.
pub fn capture(out: &mut [usize]) -> usize {
    let mut w = Walk {
        out,
        n: 0,
        own: (OWN_START.load(Relaxed), OWN_END.load(Relaxed)),
    };
    // SAFETY: step only touches the Walk through arg while _Unwind_Backtrace runs.
    unsafe { _Unwind_Backtrace(step, &mut w as *mut Walk as *mut libc::c_void) };
    w.n
}

struct Find {
    addr: usize,
    lo: usize,
    hi: usize,
}

unsafe extern "C" fn find_own(
    info: *mut libc::dl_phdr_info,
    _size: libc::size_t,
    arg: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: glibc passes a valid dl_phdr_info; arg is the Find below.
    unsafe {
        let f = &mut *(arg as *mut Find);
        let i = &*info;
        let (mut lo, mut hi) = (usize::MAX, 0usize);
        for k in 0..i.dlpi_phnum as usize {
            let ph = &*i.dlpi_phdr.add(k);
            if ph.p_type == libc::PT_LOAD && ph.p_flags & libc::PF_X != 0 {
                let s = i.dlpi_addr as usize + ph.p_vaddr as usize;
                lo = lo.min(s);
                hi = hi.max(s + ph.p_memsz as usize);
            }
        }
        if f.addr >= lo && f.addr < hi {
            f.lo = lo;
            f.hi = hi;
            return 1;
        }
        0
    }
}

/// Finds this library's executable range (once, at start-up: dl_iterate_phdr takes the
/// loader's lock, which is fine in a constructor and never done on the hot path).
pub fn init() {
    let mut f = Find {
        addr: capture as *const () as usize,
        lo: 0,
        hi: 0,
    };
    // SAFETY: find_own only reads the program headers glibc hands it.
    unsafe { libc::dl_iterate_phdr(Some(find_own), &mut f as *mut Find as *mut libc::c_void) };
    OWN_START.store(f.lo, Relaxed);
    OWN_END.store(f.hi, Relaxed);
}
