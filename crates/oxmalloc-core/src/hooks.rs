//! Tracking hooks: an optional observer of every allocation and free, for the native-memory
//! reports to come. Off, a hook costs one load and one predictable branch per call.

use core::sync::atomic::{AtomicPtr, AtomicU8, Ordering};

/// Callbacks installed by a tracker. They run inside malloc/free: they must not allocate
/// through malloc (or must guard against re-entry themselves).
///
/// realloc: when `on_realloc` is set, a realloc calls `on_realloc_begin(old)` first, then does
/// its work (the malloc and free it may make inside still call `on_alloc`/`on_free`: the
/// tracker ignores them between the two calls), then `on_realloc(old, new, size)` once, with
/// `new` null when it failed (the old block is then untouched). Without it, a moving realloc
/// shows only as the inner malloc and free.
#[repr(C)]
pub struct Hooks {
    /// `origin`: where the engine was when it called (see [`Origin`]), valid for the call.
    pub on_alloc: unsafe extern "C" fn(ptr: *mut u8, size: usize, origin: *const Origin),
    pub on_free: unsafe extern "C" fn(ptr: *mut u8),
    pub on_realloc_begin: Option<unsafe extern "C" fn(old: *mut u8)>,
    pub on_realloc: Option<
        unsafe extern "C" fn(old: *mut u8, new: *mut u8, size: usize, origin: *const Origin),
    >,
    /// Called by the engine's fork handlers (0 prepare, 1 parent, 2 child) at the point where
    /// the tracker's own locks belong in the order: after glibc's stdio list lock, before the
    /// arenas' (a thread in fflush(NULL) holds the list lock and may malloc, reaching the
    /// tracker). Only in a process with several threads, like the engine's own locking.
    pub on_fork: Option<unsafe extern "C" fn(phase: u32)>,
}

/// A point inside the engine to start a stack walk from: an instruction address and the stack
/// and frame pointers at that instruction (taken together, so the unwind rule at `pc` applies
/// to `sp`). A tracker walking from here skips its own frames and the hook plumbing.
#[repr(C)]
pub struct Origin {
    pub pc: usize,
    pub sp: usize,
    pub fp: usize,
}

/// The caller's own point (see [`Origin`]).
#[inline(always)]
pub fn origin() -> Origin {
    let (pc, sp, fp): (usize, usize, usize);
    // SAFETY: reads rip, rsp and rbp in one block; changes nothing.
    unsafe {
        core::arch::asm!(
            "lea {pc}, [rip]",
            "mov {sp}, rsp",
            "mov {fp}, rbp",
            pc = out(reg) pc,
            sp = out(reg) sp,
            fp = out(reg) fp,
            options(nomem, nostack, preserves_flags),
        );
    }
    Origin { pc, sp, fp }
}

/// What intercepts calls: bit 0 tracking hooks, bit 1 the hardened mode. The fast paths test
/// the whole byte once; the slow paths sort out which is on.
static ACTIVE: AtomicU8 = AtomicU8::new(0);
const TRACKING: u8 = 1;
const HARDENED: u8 = 2;
static HOOKS: AtomicPtr<Hooks> = AtomicPtr::new(core::ptr::null_mut());

/// Installs (Some) or removes (None) the hooks.
pub fn install(h: Option<&'static Hooks>) {
    match h {
        Some(h) => {
            HOOKS.store(h as *const Hooks as *mut Hooks, Ordering::Release);
            ACTIVE.fetch_or(TRACKING, Ordering::Release);
        }
        None => {
            ACTIVE.fetch_and(!TRACKING, Ordering::Release);
        }
    }
}

/// Routes every free through the interception path (hardened mode, set once at init).
pub fn intercept_for_hardening() {
    ACTIVE.fetch_or(HARDENED, Ordering::Release);
}

/// Whether hooks are installed or the hardened mode is on (one relaxed load).
#[inline(always)]
pub fn active() -> bool {
    ACTIVE.load(Ordering::Relaxed) != 0
}

#[inline(always)]
pub fn on_alloc(p: *mut u8, n: usize) {
    if ACTIVE.load(Ordering::Relaxed) & TRACKING != 0 {
        alloc_slow(p, n);
    }
}

#[inline(always)]
pub fn on_free(p: *mut u8) {
    if ACTIVE.load(Ordering::Relaxed) & TRACKING != 0 {
        free_slow(p);
    }
}

#[cold]
#[inline(never)]
fn alloc_slow(p: *mut u8, n: usize) {
    let h = HOOKS.load(Ordering::Acquire);
    if !h.is_null() && !p.is_null() {
        let o = origin();
        // SAFETY: h was installed from a &'static Hooks; o lives through the call.
        unsafe { ((*h).on_alloc)(p, n, &o) }
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

/// The realloc hooks, if a tracker installed them (tracking on and `on_realloc` set).
#[inline]
pub fn realloc_hooks() -> Option<&'static Hooks> {
    if ACTIVE.load(Ordering::Relaxed) & TRACKING == 0 {
        return None;
    }
    let h = HOOKS.load(Ordering::Acquire);
    // SAFETY: h was installed from a &'static Hooks.
    let h = unsafe { h.as_ref() }?;
    h.on_realloc.is_some().then_some(h)
}

/// Runs the tracker's fork callback for `phase` (see Hooks::on_fork), if one is installed.
pub fn fork_phase(phase: u32) {
    if ACTIVE.load(Ordering::Relaxed) & TRACKING == 0 {
        return;
    }
    let h = HOOKS.load(Ordering::Acquire);
    // SAFETY: h was installed from a &'static Hooks.
    if let Some(f) = unsafe { h.as_ref() }.and_then(|h| h.on_fork) {
        // SAFETY: the tracker's callback, valid for the process lifetime.
        unsafe { f(phase) }
    }
}
