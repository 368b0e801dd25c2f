//! liboxmalloc: glibc's malloc API (and its `__libc_*` aliases) exported from the oxmalloc
//! engine, for LD_PRELOAD or -loxmalloc. Each export is a thin wrapper over `oxmalloc_core::api`.
//!
//! `no_std`: nothing here allocates, and leaving out std keeps its panic and backtrace
//! machinery (~200 KiB of text, mapped into every process the library is preloaded into)
//! out of the library.
#![no_std]
#![allow(clippy::missing_safety_doc)]
#![deny(unsafe_op_in_unsafe_fn)]

use core::ffi::{c_int, c_void};
use oxmalloc_core::{api, hooks, stats};

/// No code path is meant to panic; if one ever did, it must not unwind into C: report it in
/// one line and abort, like every other fatal error.
#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    oxmalloc_core::os::fatal("internal error (panic)", 0)
}

// Every wrapper is `extern "C"`; the crate is built with panic = "abort", so no unwinding
// crosses the boundary.

#[no_mangle]
pub unsafe extern "C" fn malloc(n: usize) -> *mut c_void {
    // SAFETY: any size is accepted.
    unsafe { api::malloc(n) as *mut c_void }
}

#[no_mangle]
pub unsafe extern "C" fn free(p: *mut c_void) {
    // SAFETY: the C contract: p is null or a live block from this allocator.
    unsafe { api::free(p as *mut u8) }
}

#[no_mangle]
pub unsafe extern "C" fn cfree(p: *mut c_void) {
    // SAFETY: as free.
    unsafe { api::free(p as *mut u8) }
}

#[no_mangle]
pub unsafe extern "C" fn calloc(n: usize, m: usize) -> *mut c_void {
    // SAFETY: overflow is checked inside.
    unsafe { api::calloc(n, m) as *mut c_void }
}

#[no_mangle]
pub unsafe extern "C" fn realloc(p: *mut c_void, n: usize) -> *mut c_void {
    // SAFETY: the C contract for p.
    unsafe { api::realloc(p as *mut u8, n) as *mut c_void }
}

#[no_mangle]
pub unsafe extern "C" fn reallocarray(p: *mut c_void, n: usize, m: usize) -> *mut c_void {
    // SAFETY: the C contract for p.
    unsafe { api::reallocarray(p as *mut u8, n, m) as *mut c_void }
}

#[no_mangle]
pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, n: usize) -> c_int {
    if out.is_null() {
        return libc::EINVAL;
    }
    // SAFETY: out is a valid pointer per the C contract.
    unsafe { api::posix_memalign(out as *mut *mut u8, align, n) }
}

#[no_mangle]
pub unsafe extern "C" fn aligned_alloc(align: usize, n: usize) -> *mut c_void {
    // SAFETY: validated inside.
    unsafe { api::aligned_alloc(align, n) as *mut c_void }
}

#[no_mangle]
pub unsafe extern "C" fn memalign(align: usize, n: usize) -> *mut c_void {
    // SAFETY: validated inside.
    unsafe { api::memalign(align, n) as *mut c_void }
}

#[no_mangle]
pub unsafe extern "C" fn valloc(n: usize) -> *mut c_void {
    // SAFETY: validated inside.
    unsafe { api::valloc(n) as *mut c_void }
}

#[no_mangle]
pub unsafe extern "C" fn pvalloc(n: usize) -> *mut c_void {
    // SAFETY: validated inside.
    unsafe { api::pvalloc(n) as *mut c_void }
}

#[no_mangle]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    // SAFETY: p is null or a live block.
    unsafe { api::usable_size(p as *mut u8) }
}

#[no_mangle]
pub extern "C" fn mallopt(param: c_int, value: c_int) -> c_int {
    api::mallopt(param, value)
}

#[no_mangle]
pub extern "C" fn malloc_trim(pad: usize) -> c_int {
    api::trim(pad)
}

#[no_mangle]
pub extern "C" fn mallinfo2() -> stats::MallInfo2 {
    stats::mallinfo2()
}

/// glibc's old `struct mallinfo` with int fields (values wrap as glibc's do).
#[repr(C)]
pub struct MallInfo {
    pub arena: c_int,
    pub ordblks: c_int,
    pub smblks: c_int,
    pub hblks: c_int,
    pub hblkhd: c_int,
    pub usmblks: c_int,
    pub fsmblks: c_int,
    pub uordblks: c_int,
    pub fordblks: c_int,
    pub keepcost: c_int,
}

#[no_mangle]
pub extern "C" fn mallinfo() -> MallInfo {
    let m = stats::mallinfo2();
    MallInfo {
        arena: m.arena as c_int,
        ordblks: m.ordblks as c_int,
        smblks: m.smblks as c_int,
        hblks: m.hblks as c_int,
        hblkhd: m.hblkhd as c_int,
        usmblks: m.usmblks as c_int,
        fsmblks: m.fsmblks as c_int,
        uordblks: m.uordblks as c_int,
        fordblks: m.fordblks as c_int,
        keepcost: m.keepcost as c_int,
    }
}

#[no_mangle]
pub extern "C" fn malloc_stats() {
    stats::malloc_stats()
}

/// malloc_info(options, stream): options must be 0 (glibc returns EINVAL otherwise).
#[no_mangle]
pub unsafe extern "C" fn malloc_info(options: c_int, fp: *mut libc::FILE) -> c_int {
    if options != 0 {
        oxmalloc_core::os::set_errno(libc::EINVAL);
        return -1;
    }
    if fp.is_null() {
        oxmalloc_core::os::set_errno(libc::EINVAL);
        return -1;
    }
    stats::malloc_info(&mut |b: &[u8]| {
        // SAFETY: fp is the caller's open stream; stdio may call malloc (no lock is held).
        unsafe { libc::fwrite(b.as_ptr() as *const c_void, 1, b.len(), fp) };
    });
    0
}

// glibc's internal names, which some programs and libraries call directly.

#[no_mangle]
pub unsafe extern "C" fn __libc_malloc(n: usize) -> *mut c_void {
    // SAFETY: as malloc.
    unsafe { malloc(n) }
}
#[no_mangle]
pub unsafe extern "C" fn __libc_free(p: *mut c_void) {
    // SAFETY: as free.
    unsafe { free(p) }
}
#[no_mangle]
pub unsafe extern "C" fn __libc_calloc(n: usize, m: usize) -> *mut c_void {
    // SAFETY: as calloc.
    unsafe { calloc(n, m) }
}
#[no_mangle]
pub unsafe extern "C" fn __libc_realloc(p: *mut c_void, n: usize) -> *mut c_void {
    // SAFETY: as realloc.
    unsafe { realloc(p, n) }
}
#[no_mangle]
pub unsafe extern "C" fn __libc_memalign(align: usize, n: usize) -> *mut c_void {
    // SAFETY: as memalign.
    unsafe { memalign(align, n) }
}
#[no_mangle]
pub unsafe extern "C" fn __libc_valloc(n: usize) -> *mut c_void {
    // SAFETY: as valloc.
    unsafe { valloc(n) }
}
#[no_mangle]
pub unsafe extern "C" fn __libc_pvalloc(n: usize) -> *mut c_void {
    // SAFETY: as pvalloc.
    unsafe { pvalloc(n) }
}

/// The tracking-hook entry point for native tools: installs `on_alloc`/`on_free` callbacks
/// (both non-null) or removes them (either null). Off, hooks cost one branch per call.
#[no_mangle]
pub unsafe extern "C" fn oxmalloc_set_hooks(
    on_alloc: Option<unsafe extern "C" fn(*mut u8, usize)>,
    on_free: Option<unsafe extern "C" fn(*mut u8)>,
) -> c_int {
    static SLOT: oxmalloc_core::global::Global<Option<hooks::Hooks>> =
        oxmalloc_core::global::Global::new(None);
    match (on_alloc, on_free) {
        (Some(a), Some(f)) => {
            hooks::install(None);
            // SAFETY: the slot is written only here, after readers were switched off; a
            // racing reader may still see the previous hooks, which stay valid functions.
            unsafe {
                *SLOT.get() = Some(hooks::Hooks {
                    // SAFETY (of the transmute): the engine passes a third argument (the
                    // origin pointer) the C callback does not declare; in the x86-64 System V
                    // ABI it travels in a register the callee ignores.
                    on_alloc: core::mem::transmute::<
                        unsafe extern "C" fn(*mut u8, usize),
                        unsafe extern "C" fn(*mut u8, usize, *const hooks::Origin),
                    >(a),
                    on_free: f,
                    on_realloc_begin: None,
                    on_realloc: None,
                    on_fork: None,
                });
                hooks::install((*SLOT.get()).as_ref());
            }
            1
        }
        _ => {
            hooks::install(None);
            0
        }
    }
}

/// Initialises the allocator when the library is loaded, even if the program never calls
/// malloc (so `OXMALLOC_STATS_AT_EXIT` reports for every program). Calls that come earlier,
/// from other constructors, initialise lazily as usual.
extern "C" fn load_time_init() {
    oxmalloc_core::global::ensure_init();
    // OXMALLOC_TRACK: the recorder installs its hooks now, before main (docs/tracking.md).
    oxmalloc_track::init();
}

#[used]
#[link_section = ".init_array"]
static LOAD_TIME_INIT: extern "C" fn() = load_time_init;

// ------------------------------------------------------------------ the program's mappings
//
// mmap, mmap64, munmap and mremap are exported so the tracker can record the mappings the
// program makes itself (docs/tracking.md). Each goes straight to the kernel, with glibc's
// errno convention; when tracking is off that is all they do. (glibc's own internal mappings —
// thread stacks, the loader's — do not come through these symbols.)

fn mapped_result(r: isize) -> *mut c_void {
    if r < 0 {
        oxmalloc_core::os::set_errno(-r as i32);
        libc::MAP_FAILED
    } else {
        r as *mut c_void
    }
}

#[no_mangle]
pub unsafe extern "C" fn mmap(
    addr: *mut c_void,
    len: usize,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: libc::off_t,
) -> *mut c_void {
    mapped_result(oxmalloc_track::mmap(
        addr as usize,
        len,
        prot,
        flags,
        fd,
        off,
    ))
}

#[no_mangle]
pub unsafe extern "C" fn mmap64(
    addr: *mut c_void,
    len: usize,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: libc::off64_t,
) -> *mut c_void {
    mapped_result(oxmalloc_track::mmap(
        addr as usize,
        len,
        prot,
        flags,
        fd,
        off,
    ))
}

#[no_mangle]
pub unsafe extern "C" fn munmap(addr: *mut c_void, len: usize) -> c_int {
    let r = oxmalloc_track::munmap(addr as usize, len);
    if r < 0 {
        oxmalloc_core::os::set_errno(-r as i32);
        -1
    } else {
        0
    }
}

/// mremap is variadic in C (the fifth argument, the new address, only with MREMAP_FIXED);
/// on x86-64 a variadic caller passes it in r8 like a fixed fifth argument, which is what this
/// definition reads (stable Rust cannot define C-variadic functions).
#[no_mangle]
pub unsafe extern "C" fn mremap(
    old: *mut c_void,
    old_len: usize,
    new_len: usize,
    flags: c_int,
    new_addr: *mut c_void,
) -> *mut c_void {
    // Without MREMAP_FIXED the fifth register holds whatever the caller left there.
    let target = if flags & libc::MREMAP_FIXED != 0 {
        new_addr as usize
    } else {
        0
    };
    mapped_result(oxmalloc_track::mremap(
        old as usize,
        old_len,
        new_len,
        flags,
        target,
    ))
}

/// dlclose: the tracker records the module first (so stacks through a closed library still
/// symbolise), then glibc's dlclose runs (found once with dlsym(RTLD_NEXT): not a hot path).
#[no_mangle]
pub unsafe extern "C" fn dlclose(handle: *mut c_void) -> c_int {
    use core::sync::atomic::{AtomicUsize, Ordering::*};
    static REAL: AtomicUsize = AtomicUsize::new(0);
    oxmalloc_track::before_dlclose(handle as usize);
    let mut f = REAL.load(Acquire);
    if f == 0 {
        // SAFETY: looks up the next definition of dlclose (libc's) by its NUL-terminated name.
        f = unsafe { libc::dlsym(libc::RTLD_NEXT, c"dlclose".as_ptr()) } as usize;
        if f == 0 {
            return -1;
        }
        REAL.store(f, Release);
    }
    // SAFETY: f is glibc's dlclose, with its C signature.
    unsafe {
        let real: unsafe extern "C" fn(*mut c_void) -> c_int = core::mem::transmute(f);
        real(handle)
    }
}
