//! Modules that were dlclosed while tracking: liboxmalloc's dlclose records the module (path,
//! text range, load bias, build-id) before forwarding the call, so a snapshot taken after the
//! library is gone still lists it and its stacks still symbolise. The list of loaded modules
//! itself is read at snapshot time (snapshot.rs).

use core::sync::atomic::{AtomicUsize, Ordering::*};
use oxmalloc_core::sync::Mutex;

const CAP: usize = 256;
const PATH: usize = 512;

#[derive(Clone, Copy)]
pub struct Closed {
    pub start: usize,
    pub end: usize,
    pub bias: usize,
    pub build_id: [u8; 32],
    pub build_id_len: usize,
    pub path: [u8; PATH],
    pub path_len: usize,
}

const EMPTY: Closed = Closed {
    start: 0,
    end: 0,
    bias: 0,
    build_id: [0; 32],
    build_id_len: 0,
    path: [0; PATH],
    path_len: 0,
};

static TABLE: oxmalloc_core::global::Global<[Closed; CAP]> =
    oxmalloc_core::global::Global::new([EMPTY; CAP]);
static COUNT: AtomicUsize = AtomicUsize::new(0);
static LOCK: Mutex = Mutex::new();

#[repr(C)]
struct LinkMap {
    l_addr: usize,
    l_name: *const libc::c_char,
}

const RTLD_DI_LINKMAP: libc::c_int = 2;

struct Want {
    bias: usize,
    name: *const libc::c_char,
    found: Closed,
    ok: bool,
}

unsafe extern "C" fn match_module(
    info: *mut libc::dl_phdr_info,
    _size: libc::size_t,
    arg: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: glibc passes a valid dl_phdr_info; arg is the Want below.
    unsafe {
        let w = &mut *(arg as *mut Want);
        let i = &*info;
        if i.dlpi_addr as usize != w.bias || i.dlpi_name.is_null() || w.name.is_null() {
            return 0;
        }
        if libc::strcmp(i.dlpi_name, w.name) != 0 {
            return 0;
        }
        let (mut lo, mut hi) = (usize::MAX, 0usize);
        for k in 0..i.dlpi_phnum as usize {
            let ph = &*i.dlpi_phdr.add(k);
            if ph.p_type == libc::PT_LOAD {
                let s = w.bias + ph.p_vaddr as usize;
                lo = lo.min(s);
                hi = hi.max(s + ph.p_memsz as usize);
            } else if ph.p_type == libc::PT_NOTE && w.found.build_id_len == 0 {
                let id = crate::snapshot::find_build_id(
                    w.bias + ph.p_vaddr as usize,
                    ph.p_memsz as usize,
                );
                let n = id.len().min(32);
                w.found.build_id[..n].copy_from_slice(&id[..n]);
                w.found.build_id_len = n;
            }
        }
        let name = core::ffi::CStr::from_ptr(i.dlpi_name).to_bytes();
        let n = name.len().min(PATH);
        w.found.path[..n].copy_from_slice(&name[..n]);
        w.found.path_len = n;
        w.found.start = lo;
        w.found.end = hi;
        w.found.bias = w.bias;
        w.ok = hi > 0;
        1
    }
}

/// Records the module behind dlopen handle `h` (called just before it is closed).
pub fn before_dlclose(handle: usize) {
    let h = handle as *mut libc::c_void;
    if h.is_null() {
        return;
    }
    let mut lm: *const LinkMap = core::ptr::null();
    // SAFETY: dlinfo with RTLD_DI_LINKMAP writes the handle's link_map pointer; an invalid
    // handle makes it fail (dlclose will then fail the same way).
    unsafe {
        if libc::dlinfo(h, RTLD_DI_LINKMAP, &mut lm as *mut _ as *mut libc::c_void) != 0
            || lm.is_null()
        {
            return;
        }
        let mut w = Want {
            bias: (*lm).l_addr,
            name: (*lm).l_name,
            found: EMPTY,
            ok: false,
        };
        libc::dl_iterate_phdr(Some(match_module), &mut w as *mut Want as *mut libc::c_void);
        if !w.ok {
            return;
        }
        LOCK.lock();
        let t = &mut *TABLE.get();
        let n = COUNT.load(Relaxed);
        let dup = t[..n].iter().any(|c| {
            c.bias == w.found.bias && c.path[..c.path_len] == w.found.path[..w.found.path_len]
        });
        if !dup && n < CAP {
            t[n] = w.found;
            COUNT.store(n + 1, Release);
        }
        LOCK.unlock();
    }
}

/// Calls `f` for each recorded closed module.
pub fn for_each(mut f: impl FnMut(&Closed)) {
    LOCK.lock();
    let n = COUNT.load(Acquire);
    // SAFETY: entries below COUNT are complete; the lock keeps writers out.
    let t = unsafe { &*TABLE.get() };
    for c in &t[..n] {
        f(c);
    }
    LOCK.unlock();
}

pub fn lock() -> &'static Mutex {
    &LOCK
}
