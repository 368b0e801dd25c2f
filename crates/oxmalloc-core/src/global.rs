//! Process-wide state: lazy initialisation on the first call, the arena list and how threads
//! are attached to arenas, thread start and exit, and the fork handlers.

use crate::arena::Arena;
use crate::chunk::*;
use crate::heap::heap_for_ptr;
use crate::sync::Mutex;
use crate::tcache::{self, ThreadCache, ACTIVE, DEAD, INITIALIZING, UNINIT};
use crate::{os, tls, tunables};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU8, AtomicUsize, Ordering::*};

/// A static whose contents are guarded by a lock or by the init protocol.
pub struct Global<T>(UnsafeCell<T>);
// SAFETY: every access goes through a lock or happens during single-threaded init.
unsafe impl<T> Sync for Global<T> {}
impl<T> Global<T> {
    pub const fn new(v: T) -> Self {
        Global(UnsafeCell::new(v))
    }
    #[inline(always)]
    pub fn get(&self) -> *mut T {
        self.0.get()
    }
}

pub static MAIN: Global<Arena> = Global::new(Arena::new());
static MAIN_REMOTE: crate::arena::RemoteBatches = crate::arena::RemoteBatches::new();

const NOT_STARTED: u8 = 0;
const RUNNING: u8 = 1;
const DONE: u8 = 2;
static INIT: AtomicU8 = AtomicU8::new(NOT_STARTED);
/// 0 none, 1 being created, 2 ready.
static KEY_STATE: AtomicU8 = AtomicU8::new(0);
static KEY: AtomicU32 = AtomicU32::new(0);

pub static SECRET: AtomicUsize = AtomicUsize::new(0);
pub static TCACHE_KEY: AtomicUsize = AtomicUsize::new(0);
pub static CPUS: AtomicUsize = AtomicUsize::new(1);
static NARENAS: AtomicUsize = AtomicUsize::new(1);
/// The last arena in the list (the list starts at MAIN).
static LAST: AtomicPtr<Arena> = AtomicPtr::new(core::ptr::null_mut());
static LIST_LOCK: Mutex = Mutex::new();
/// The cache address of the thread inside fork (it holds every lock), or 0.
static FORK_OWNER: AtomicUsize = AtomicUsize::new(0);

#[inline(always)]
pub fn main_arena() -> *mut Arena {
    MAIN.get()
}

#[inline(always)]
pub fn is_initialized() -> bool {
    INIT.load(Acquire) == DONE
}

#[inline(always)]
pub fn ensure_init() {
    if INIT.load(Acquire) != DONE {
        init_slow();
    }
}

#[cold]
#[inline(never)]
fn init_slow() {
    if INIT
        .compare_exchange(NOT_STARTED, RUNNING, Acquire, Acquire)
        .is_ok()
    {
        // Phase 1: nothing here allocates or calls anything that might.
        os::init_page_size();
        let (a, b) = os::process_random();
        SECRET.store((a as usize) & !ALIGN_MASK, Relaxed);
        TCACHE_KEY.store((b as usize) | 1, Relaxed);
        crate::chunk::HEADER_KEY.store((b as usize).rotate_left(29) ^ a as usize, Relaxed);
        tunables::read_environment();
        CPUS.store(os::usable_cpus(), Relaxed);
        // SAFETY: single-threaded here: every other caller waits for DONE.
        unsafe {
            let m = MAIN.get();
            (*m).init(true, 0, &MAIN_REMOTE);
            (*m).next = core::ptr::null_mut();
        }
        LAST.store(MAIN.get(), Release);
        INIT.store(DONE, Release);
        // Phase 2: these may call malloc, which now works (without a thread cache).
        init_thread_machinery();
    } else {
        while INIT.load(Acquire) != DONE {
            core::hint::spin_loop();
            // SAFETY: sched_yield has no preconditions.
            unsafe { libc::sched_yield() };
        }
    }
}

fn init_thread_machinery() {
    if KEY_STATE.compare_exchange(0, 1, AcqRel, Acquire).is_err() {
        return;
    }
    // SAFETY: registering callbacks with glibc; they are valid for the process lifetime.
    unsafe {
        let mut k: libc::pthread_key_t = 0;
        if libc::pthread_key_create(&mut k, Some(thread_exit)) != 0 {
            // No key, no thread caches: every call goes to the arenas. Still correct.
            KEY_STATE.store(0, Release);
            return;
        }
        KEY.store(k, Relaxed);
        libc::pthread_atfork(Some(fork_prepare), Some(fork_parent), Some(fork_child));
        if stats_wanted() {
            os::at_exit(stats_at_exit);
        }
    }
    KEY_STATE.store(2, Release);
}

/// OXMALLOC_STATS_AT_EXIT: "1" (or any non-numeric value but "0") reports in every process
/// that inherits it; a process id N > 1 reports only in the direct children of N, which is
/// how `oxmalloc run --stats` gets one report for its command and none for the command's
/// own helpers (a pyenv shim's subshells, say). OXMALLOC_STATS_FILE alone asks for a report
/// too (in every process; `%p` in the name keeps them apart).
fn stats_wanted() -> bool {
    let Some(v) = env(c"OXMALLOC_STATS_AT_EXIT") else {
        return env(c"OXMALLOC_STATS_FILE").is_some_and(|f| !f.is_empty());
    };
    match tunables::parse_num(v) {
        Some(0) => false,
        Some(1) | None => !v.is_empty(),
        Some(pid) => {
            STATS_PARENT.store(pid, Relaxed);
            is_child_of(pid)
        }
    }
}

/// An environment variable's value (libc getenv: no allocation).
fn env(name: &core::ffi::CStr) -> Option<&'static [u8]> {
    // SAFETY: name is NUL-terminated; getenv does not allocate; the value is a C string that
    // lives as long as the environment.
    unsafe {
        let p = libc::getenv(name.as_ptr());
        if p.is_null() {
            None
        } else {
            Some(core::ffi::CStr::from_ptr(p).to_bytes())
        }
    }
}

/// The process whose direct children report at exit (0: every process).
static STATS_PARENT: AtomicUsize = AtomicUsize::new(0);

fn is_child_of(pid: usize) -> bool {
    // SAFETY: getppid has no preconditions.
    (unsafe { libc::getppid() }) as usize == pid
}

unsafe extern "C" fn stats_at_exit(_: *mut libc::c_void) {
    // A forked copy of the command (a shell's subshell) inherits this hook: only the process
    // that is still the parent's direct child reports.
    let parent = STATS_PARENT.load(Relaxed);
    if parent != 0 && !is_child_of(parent) {
        return;
    }
    match env(c"OXMALLOC_STATS_FILE") {
        Some(f) if !f.is_empty() => {
            if let Err(e) = crate::stats::write_report_file(f) {
                let mut w = crate::fmt::StackWriter::<160>::new();
                let _ = core::fmt::Write::write_fmt(
                    &mut w,
                    format_args!("oxmalloc: cannot write the stats file (errno {})\n", e),
                );
                os::write_stderr(w.as_bytes());
            }
        }
        _ => crate::stats::malloc_stats(),
    }
}

// ------------------------------------------------------------------ locks

#[inline(always)]
fn fork_owned() -> bool {
    let o = FORK_OWNER.load(Relaxed);
    o != 0 && o == tls::current() as usize
}

// The thread cache records the lock a thread is taking *before* taking it, and forgets it only
// *after* releasing it: a fork from a signal handler that interrupts either step then treats
// that arena as possibly half-updated (see the fork handlers) instead of waiting for itself.

/// Takes arena `a`'s lock, recording it in this thread's cache first.
///
/// # Safety
/// `a` is a live arena (arenas are never freed, so any arena pointer oxmalloc handed out).
#[inline(always)]
pub unsafe fn lock_arena(a: *mut Arena) {
    // SAFETY: arenas are never freed; tls::current() is this thread's cache.
    unsafe {
        let tc = tls::current();
        (*tc).held = a;
        core::sync::atomic::compiler_fence(SeqCst);
        if !(*a).lock.try_lock() && !fork_owned() {
            (*a).lock.lock();
        }
    }
}

/// Takes arena `a`'s lock if it is free right now (recorded like lock_arena); false if not.
///
/// # Safety
/// As for lock_arena.
#[inline]
pub unsafe fn try_lock_arena(a: *mut Arena) -> bool {
    // SAFETY: as for lock_arena.
    unsafe {
        let tc = tls::current();
        (*tc).held = a;
        core::sync::atomic::compiler_fence(SeqCst);
        if (*a).lock.try_lock() || fork_owned() {
            return true;
        }
        core::sync::atomic::compiler_fence(SeqCst);
        (*tc).held = core::ptr::null_mut();
        false
    }
}

/// Releases arena `a`'s lock and forgets it in this thread's cache.
///
/// # Safety
/// `a` is a live arena whose lock this thread holds.
#[inline(always)]
pub unsafe fn unlock_arena(a: *mut Arena) {
    if !fork_owned() {
        // SAFETY: arenas are never freed; the caller locked it.
        unsafe { (*a).lock.unlock() }
    }
    core::sync::atomic::compiler_fence(SeqCst);
    // SAFETY: this thread's cache.
    unsafe { (*tls::current()).held = core::ptr::null_mut() };
}

fn lock_list() -> bool {
    if fork_owned() {
        return false;
    }
    // SAFETY: this thread's cache.
    unsafe { (*tls::current()).holds_list = true };
    core::sync::atomic::compiler_fence(SeqCst);
    LIST_LOCK.lock();
    true
}

fn unlock_list(locked: bool) {
    if locked {
        LIST_LOCK.unlock();
        core::sync::atomic::compiler_fence(SeqCst);
        // SAFETY: this thread's cache.
        unsafe { (*tls::current()).holds_list = false };
    }
}

// ------------------------------------------------------------------ arenas

/// The arena that owns in-use chunk `c`.
///
/// # Safety
/// `c` is an in-use chunk of some arena (its header, and for a heap chunk the heap's header,
/// are readable and were written by oxmalloc).
#[inline(always)]
pub unsafe fn arena_for_chunk(c: *mut u8) -> *mut Arena {
    // SAFETY: c is an in-use heap chunk; IN_HEAP chunks lie in a heap with a valid header.
    unsafe {
        if head(c) & IN_HEAP != 0 {
            (*heap_for_ptr(c)).arena
        } else {
            main_arena()
        }
    }
}

/// Calls `f` on every arena in list order.
pub fn for_each_arena(mut f: impl FnMut(*mut Arena)) {
    let mut a = main_arena();
    while !a.is_null() {
        f(a);
        // SAFETY: the list only grows; `next` is written before an arena is published.
        a = unsafe { (*a).next };
    }
}

/// Chooses an arena for a new thread: an unused one, else a new one while under the limit,
/// else the least shared.
fn attach_arena() -> *mut Arena {
    let locked = lock_list();
    let mut pick: *mut Arena = core::ptr::null_mut();
    let mut least = usize::MAX;
    for_each_arena(|a| {
        // SAFETY: arenas are never freed.
        let (n, bad) = unsafe { ((*a).attached.load(Relaxed), (*a).poisoned) };
        if n < least && !bad {
            least = n;
            pick = a;
        }
    });
    let limit = tunables::arena_limit(CPUS.load(Relaxed));
    if pick.is_null() || (least > 0 && NARENAS.load(Relaxed) < limit) {
        if let Some(a) = Arena::create(NARENAS.load(Relaxed)) {
            let last = LAST.load(Relaxed);
            // SAFETY: the list is extended under LIST_LOCK; readers see next once set.
            unsafe { (*last).next = a };
            LAST.store(a, Release);
            NARENAS.fetch_add(1, Relaxed);
            pick = a;
        }
    }
    if pick.is_null() {
        // Only poisoned arenas and no memory for a new one (a forked child under pressure).
        pick = main_arena();
    }
    // SAFETY: pick is a live arena.
    unsafe { (*pick).attached.fetch_add(1, Relaxed) };
    unlock_list(locked);
    pick
}

/// The arena this thread allocates from when it bypasses (or has no) cache.
///
/// # Safety
/// `tc` is the calling thread's cache (`tls::current()`).
#[inline]
pub unsafe fn thread_arena(tc: *mut ThreadCache) -> *mut Arena {
    // SAFETY: tc is this thread's cache; arenas are never freed.
    unsafe {
        let a = if (*tc).arena.is_null() {
            main_arena()
        } else {
            (*tc).arena
        };
        if (*a).poisoned {
            return replace_poisoned(tc);
        }
        a
    }
}

#[cold]
#[inline(never)]
fn replace_poisoned(tc: *mut ThreadCache) -> *mut Arena {
    let a = attach_arena();
    // SAFETY: tc is this thread's cache.
    unsafe { (*tc).arena = a };
    a
}

// ------------------------------------------------------------------ threads

/// Sets up the calling thread's cache; leaves it UNINIT when that cannot be done yet.
///
/// # Safety
/// `tc` is the calling thread's cache (`tls::current()`).
#[cold]
#[inline(never)]
pub unsafe fn thread_init(tc: *mut ThreadCache) {
    ensure_init();
    if KEY_STATE.load(Acquire) != 2 {
        return;
    }
    // SAFETY: tc is this thread's cache; the state guard makes nested calls (from
    // pthread_setspecific or arena creation) bypass the cache.
    unsafe {
        if (*tc).state != UNINIT {
            return;
        }
        (*tc).state = INITIALIZING;
        (*tc).secret = SECRET.load(Relaxed);
        (*tc).key = TCACHE_KEY.load(Relaxed);
        (*tc).arena = attach_arena();
        (*tc).ext = alloc_ext((*tc).arena);
        // A non-null value makes glibc run thread_exit when the thread ends.
        libc::pthread_setspecific(KEY.load(Relaxed), tc as *const libc::c_void);
        tcache::configure(tc);
        (*tc).state = ACTIVE;
    }
}

/// Allocates and zeroes a thread's cache extension (tcache::CacheExt) from its arena; null
/// when there is no memory (the cache then works without it).
fn alloc_ext(a: *mut Arena) -> *mut tcache::CacheExt {
    if a.is_null() {
        return core::ptr::null_mut();
    }
    let nb = crate::chunk::request2size(core::mem::size_of::<tcache::CacheExt>());
    // SAFETY: a is a live arena (the one the thread was just attached to), locked around
    // int_malloc.
    let c = unsafe {
        lock_arena(a);
        let c = (*a).int_malloc(nb, SECRET.load(Relaxed));
        unlock_arena(a);
        c
    };
    if c.is_null() {
        return core::ptr::null_mut();
    }
    let e = crate::chunk::chunk2mem(c) as *mut tcache::CacheExt;
    // SAFETY: e is a fresh block large enough for a CacheExt, whose all-zero bytes are valid
    // (null pointers and zero counters).
    unsafe { core::ptr::write_bytes(e, 0, 1) };
    e
}

/// Returns an exiting thread's cache extension (already emptied) to its arena.
unsafe fn free_ext(tc: *mut ThreadCache) {
    // SAFETY: tc is the exiting thread's cache; ext, if set, is an in-use block of an arena.
    unsafe {
        let e = (*tc).ext;
        if e.is_null() {
            return;
        }
        (*tc).ext = core::ptr::null_mut();
        let c = crate::chunk::mem2chunk(e as *mut u8);
        let a = arena_for_chunk(c);
        if (*a).poisoned {
            return;
        }
        lock_arena(a);
        (*a).int_free(c, crate::chunk::size(c), SECRET.load(Relaxed));
        unlock_arena(a);
    }
}

/// The pthread key destructor: returns the thread's cached blocks to the arenas and detaches.
/// glibc may still call free afterwards (its own thread-exit frees): those go to the arena.
extern "C" fn thread_exit(_arg: *mut libc::c_void) {
    let tc = tls::current();
    // SAFETY: runs on the exiting thread; its TLS block is still valid.
    unsafe {
        if (*tc).state != ACTIVE {
            return;
        }
        // The spares' length is the bins' limit: flush before the limits drop to 0 (which
        // sends glibc's later thread-exit frees to the arena).
        tcache::flush_all(tc);
        (*tc).limits = [0; TCACHE_BINS];
        crate::harden::drain(tc);
        (*tc).state = DEAD;
        free_ext(tc);
        let a = (*tc).arena;
        if !a.is_null() {
            (*a).attached.fetch_sub(1, Relaxed);
        }
    }
}

// ------------------------------------------------------------------ fork
//
// Before a multi-threaded process forks, every lock is taken, so the child starts with
// consistent arenas. Three things can make that wait forever, and each is handled:
//
// - Lock order with stdio (glibc's tst-malloc-fork-deadlock). glibc's fork takes the stdio list
//   lock, then malloc's locks; a thread in fflush(NULL) holds the list lock and waits for a
//   FILE lock whose holder (in getline, say) waits for an arena lock. pthread_atfork handlers
//   run before fork takes the list lock, so the prepare handler takes it first itself (it is
//   recursive: fork's own take nests inside ours), then the arenas: glibc's order.
// - A fork from a signal handler that interrupted this thread inside the allocator: the locks
//   it holds (tracked in the thread cache) are skipped, the parent resumes the interrupted
//   operation afterwards, and the child poisons that arena and continues on another one.
// - A fork from a signal handler that interrupted this thread's own fork (glibc's
//   tst-mallocfork2): the inner fork takes nothing (the outer one holds or is taking the
//   locks); its parent resumes the outer fork; its child resets every lock, and the outer fork
//   goes on there as in any single-threaded process.
//
// A single-threaded process takes no lock at all (as glibc): no other thread can hold one, and
// the child handler's reset covers this thread's own interrupted operation.

/// The arena the forking thread held when fork began, if any (its lock was not taken).
static INTERRUPTED: AtomicPtr<Arena> = AtomicPtr::new(core::ptr::null_mut());
static INTERRUPTED_LIST: AtomicU8 = AtomicU8::new(0);
/// Whether fork_prepare took the mmapped-chunk registry's lock.
static MAPS_TAKEN: AtomicU8 = AtomicU8::new(0);
/// The cache address of the thread between the start of fork_prepare and the end of
/// fork_parent or fork_child (FORK_OWNER is set only once all locks are held).
static FORKING: AtomicUsize = AtomicUsize::new(0);
/// How many forks from signal handlers are running inside the outer fork.
static NESTED: AtomicU32 = AtomicU32::new(0);
/// Whether the outer fork takes the locks (the process had several threads).
static LOCKING: AtomicU8 = AtomicU8::new(0);
/// The stdio list lock: 0 not ours, 1 being taken, 2 held, 3 was held but a nested fork's child
/// found it reset by glibc (so the outer fork must not release it again).
static STDIO: AtomicU8 = AtomicU8::new(0);
/// Held from fork_prepare to the end of fork_parent (reset in the child): one fork at a time.
static FORK_LOCK: Mutex = Mutex::new();

extern "C" {
    /// Non-zero while the process has never had a second thread (glibc 2.32+).
    static __libc_single_threaded: core::ffi::c_char;
    fn _IO_list_lock();
    fn _IO_list_unlock();
}

fn single_threaded() -> bool {
    // SAFETY: a plain byte glibc owns and only ever changes from 1 to 0 when a thread starts.
    unsafe { core::ptr::read_volatile(&raw const __libc_single_threaded) != 0 }
}

extern "C" fn fork_prepare() {
    if !is_initialized() {
        return;
    }
    let me = tls::current();
    if FORKING.load(SeqCst) == me as usize {
        NESTED.fetch_add(1, SeqCst);
        return;
    }
    // glibc 2.36 runs prepare handlers without holding its own atfork lock, so two threads
    // can fork at once (glibc's tst-malloc-fork-deadlock): one at a time through here, or the
    // second overwrites the first's state and the first never releases its locks.
    FORK_LOCK.lock();
    FORKING.store(me as usize, SeqCst);
    // SAFETY: this thread's cache.
    let (held, holds_list) = unsafe { ((*me).held, (*me).holds_list) };
    INTERRUPTED.store(held, Relaxed);
    INTERRUPTED_LIST.store(holds_list as u8, Relaxed);
    // Whether the table is consistent in the child (not so if this thread was updating it).
    MAPS_TAKEN.store(!crate::registry::owned_by(me as usize) as u8, Relaxed);
    if single_threaded() {
        LOCKING.store(0, SeqCst);
        return;
    }
    LOCKING.store(1, SeqCst);
    STDIO.store(1, SeqCst);
    // SAFETY: glibc's exported, recursive stdio list lock; released in fork_parent, reset by
    // glibc itself in the child.
    unsafe { _IO_list_lock() };
    STDIO.store(2, SeqCst);
    crate::hooks::fork_phase(0);
    if !holds_list {
        LIST_LOCK.lock();
    }
    for_each_arena(|a| {
        if a != held {
            // SAFETY: arenas are never freed.
            unsafe { (*a).lock.lock() }
        }
    });
    MAPS_TAKEN.store(crate::registry::fork_prepare(me as usize) as u8, Relaxed);
    FORK_OWNER.store(me as usize, Relaxed);
}

extern "C" fn fork_parent() {
    if !is_initialized() || FORKING.load(SeqCst) != tls::current() as usize {
        return;
    }
    if NESTED.load(SeqCst) > 0 {
        NESTED.fetch_sub(1, SeqCst);
        return;
    }
    if LOCKING.load(SeqCst) != 0 {
        FORK_OWNER.store(0, Relaxed);
        let held = INTERRUPTED.load(Relaxed);
        for_each_arena(|a| {
            if a != held {
                // SAFETY: the prepare handler locked every other arena (the held one, if any,
                // is released by the interrupted code when it resumes). After a nested fork's
                // child reset them, releasing a free lock is harmless in that one-thread child.
                unsafe { (*a).lock.unlock() }
            }
        });
        if INTERRUPTED_LIST.load(Relaxed) == 0 {
            LIST_LOCK.unlock();
        }
        crate::registry::fork_parent(MAPS_TAKEN.load(Relaxed) != 0);
        crate::hooks::fork_phase(1);
        if STDIO.swap(0, SeqCst) == 2 {
            // SAFETY: this thread took it in fork_prepare.
            unsafe { _IO_list_unlock() };
        }
    }
    FORKING.store(0, SeqCst);
    FORK_LOCK.unlock();
}

extern "C" fn fork_child() {
    let me = tls::current();
    if !is_initialized() || FORKING.load(SeqCst) != me as usize {
        return;
    }
    let nested = NESTED.load(SeqCst) > 0;
    if nested {
        // The child of a fork that interrupted this thread's fork: the outer fork resumes
        // here and releases what it took (this reset makes that harmless), except the stdio
        // lock, which glibc has already reset in this child.
        NESTED.fetch_sub(1, SeqCst);
        let _ = STDIO.compare_exchange(2, 3, SeqCst, SeqCst);
    } else {
        FORK_OWNER.store(0, Relaxed);
        STDIO.store(0, SeqCst);
        FORKING.store(0, SeqCst);
        FORK_LOCK.reset();
    }
    let held = INTERRUPTED.load(Relaxed);
    // SAFETY: the child has one thread; the locks' former holders do not exist here.
    unsafe {
        for_each_arena(|a| {
            (*a).lock.reset();
            (*a).attached.store(0, Relaxed);
        });
        LIST_LOCK.reset();
        crate::registry::fork_child(MAPS_TAKEN.load(Relaxed) != 0);
        crate::hooks::fork_phase(2);
        (*me).held = core::ptr::null_mut();
        (*me).holds_list = false;
        if !held.is_null() {
            // The interrupted operation may have left this arena's lists half-updated, and
            // the thread cache half-pushed: drop both (their blocks leak in the child).
            (*held).poisoned = true;
            for i in 0..crate::chunk::TCACHE_BINS {
                (*me).entries[i] = core::ptr::null_mut();
                if !(*me).ext.is_null() {
                    (*(*me).ext).spare[i] = core::ptr::null_mut();
                }
                (*me).counts[i] = 0;
            }
            if (*me).arena == held {
                (*me).arena = core::ptr::null_mut();
                if (*me).state == ACTIVE {
                    (*me).arena = attach_arena();
                }
            }
        }
        let a = (*me).arena;
        if !a.is_null() && (*me).state == ACTIVE && !(*a).poisoned {
            (*a).attached.store(1, Relaxed);
        }
    }
}
