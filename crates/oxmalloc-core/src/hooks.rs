//! Tracking hooks: an optional observer of every allocation and free, for the native-memory
//! reports to come. Off, a hook costs one load and one predictable branch per call.

use core::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

/// Callbacks installed by a tracker. They run inside malloc/free: they must not allocate
/// through malloc (or must guard against re-entry themselves).
#[repr(C)]
pub struct Hooks {
    pub on_alloc: unsafe extern "C" fn(ptr: *mut u8, size: usize),
    pub on_free: unsafe extern "C" fn(ptr: *mut u8),
}

static ACTIVE: AtomicBool = AtomicBool::new(false);
static HOOKS: AtomicPtr<Hooks> = AtomicPtr::new(core::ptr::null_mut());

/// Installs (Some) or removes (None) the hooks.
pub fn install(h: Option<&'static Hooks>) {
    match h {
        Some(h) => {
            HOOKS.store(h as *const Hooks as *mut Hooks, Ordering::Release);
            ACTIVE.store(true, Ordering::Release);
        }
        None => {
            ACTIVE.store(false, Ordering::Release);
        }
    }
}

/// Whether hooks are installed (one relaxed load).
#[inline(always)]
pub fn active() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

#[inline(always)]
pub fn on_alloc(p: *mut u8, n: usize) {
    if ACTIVE.load(Ordering::Relaxed) {
        alloc_slow(p, n);
    }
}

#[inline(always)]
pub fn on_free(p: *mut u8) {
    if ACTIVE.load(Ordering::Relaxed) {
        free_slow(p);
    }
}

#[cold]
#[inline(never)]
fn alloc_slow(p: *mut u8, n: usize) {
    let h = HOOKS.load(Ordering::Acquire);
    if !h.is_null() && !p.is_null() {
        // SAFETY: h was installed from a &'static Hooks.
        unsafe { ((*h).on_alloc)(p, n) }
    }
}

#[cold]
#[inline(never)]
fn free_slow(p: *mut u8) {
    let h = HOOKS.load(Ordering::Acquire);
    if !h.is_null() {
        // SAFETY: as above.
        unsafe { ((*h).on_free)(p) }
    }
}
