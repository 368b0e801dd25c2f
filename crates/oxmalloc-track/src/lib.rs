//! oxmalloc-track: the native-memory recorder that lives inside liboxmalloc.
//!
//! `no_std`, and it never allocates through malloc: its tables live in memory it maps itself
//! ([`mem`]). It plugs into the engine's one hook ([`oxmalloc_core::hooks`]) when
//! `OXMALLOC_TRACK` asks for it, records every block in a shadow map ([`shadow`]) charged to a
//! site — a (stack, thread) pair ([`sites`], [`threads`]) — and writes snapshot files
//! ([`snapshot`], format in docs/tracking.md) at exit and, optionally, every few seconds.
//! Stacks are captured by libgcc's unwinder ([`unwind`]); symbols are the reader's business.
#![no_std]
#![allow(clippy::missing_safety_doc)]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(test)]
extern crate std;

pub mod maps;
pub mod math;
pub mod mem;
pub mod modules;
pub mod procfs;
pub mod shadow;
pub mod sites;
pub mod snapshot;
pub mod threads;
pub mod tls;
pub mod unwind;

use core::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering::*};
use oxmalloc_core::hooks;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    Off,
    Summary,
    Sample,
    Full,
}

/// Frames kept per stack in summary mode (enough to find the calling library) and otherwise.
pub const SUMMARY_DEPTH: usize = 8;
pub const DEFAULT_INTERVAL: u64 = 512 * 1024;

pub struct Config {
    pub mode: Mode,
    /// sample mode: mean bytes between samples.
    pub interval: u64,
    /// seconds between periodic snapshots (0: only at exit).
    pub every: u64,
    out: [u8; 1024],
    out_len: usize,
}

static CFG: oxmalloc_core::global::Global<Config> = oxmalloc_core::global::Global::new(Config {
    mode: Mode::Off,
    interval: DEFAULT_INTERVAL,
    every: 0,
    out: [0; 1024],
    out_len: 0,
});

/// The configuration read at start-up (immutable afterwards).
pub fn config() -> &'static Config {
    // SAFETY: written only by init, before the hooks are installed and any reader runs.
    unsafe { &*CFG.get() }
}

/// Exact process-wide live figures and their peaks (requested bytes).
pub struct Totals {
    pub live_bytes: AtomicI64,
    pub live_blocks: AtomicI64,
    pub peak_bytes: AtomicI64,
    pub peak_blocks: AtomicI64,
}

pub static TOTALS: Totals = Totals {
    live_bytes: AtomicI64::new(0),
    live_blocks: AtomicI64::new(0),
    peak_bytes: AtomicI64::new(0),
    peak_blocks: AtomicI64::new(0),
};

static START_NS: AtomicU64 = AtomicU64::new(0);
static SEQ: AtomicU64 = AtomicU64::new(0);
static STATE: AtomicU8 = AtomicU8::new(0);

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

pub fn uptime_ns() -> u64 {
    monotonic_ns().saturating_sub(START_NS.load(Relaxed))
}

// ---------------------------------------------------------------- configuration

/// A size with an optional K/M/G suffix (powers of 1024; "KiB", "KB", "k" all accepted).
pub fn parse_size(s: &[u8]) -> Option<u64> {
    let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in &s[..digits] {
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    let mult: u64 = match &s[digits..] {
        b"" | b"b" | b"B" => 1,
        b"k" | b"K" | b"KB" | b"kB" | b"KiB" | b"kiB" => 1 << 10,
        b"m" | b"M" | b"MB" | b"MiB" => 1 << 20,
        b"g" | b"G" | b"GB" | b"GiB" => 1 << 30,
        _ => return None,
    };
    v.checked_mul(mult).filter(|&x| x > 0)
}

/// `off | summary | sample[:SIZE] | full` → (mode, interval).
pub fn parse_mode(s: &[u8]) -> Option<(Mode, u64)> {
    match s {
        b"" | b"off" | b"0" => Some((Mode::Off, DEFAULT_INTERVAL)),
        b"summary" => Some((Mode::Summary, DEFAULT_INTERVAL)),
        b"sample" => Some((Mode::Sample, DEFAULT_INTERVAL)),
        b"full" | b"1" => Some((Mode::Full, DEFAULT_INTERVAL)),
        _ => {
            let rest = s.strip_prefix(b"sample:")?;
            Some((Mode::Sample, parse_size(rest)?))
        }
    }
}

fn getenv(name: &core::ffi::CStr) -> Option<&'static [u8]> {
    // SAFETY: getenv returns null or a NUL-terminated string that lives as long as the
    // environment entry (we read it once, at start-up).
    unsafe {
        let p = libc::getenv(name.as_ptr());
        if p.is_null() {
            None
        } else {
            Some(core::ffi::CStr::from_ptr(p).to_bytes())
        }
    }
}

fn say(parts: &[&[u8]]) {
    let mut line = [0u8; 512];
    let mut n = 0;
    for p in parts.iter().copied().chain([b"\n" as &[u8]]) {
        for &c in p {
            if n < line.len() {
                line[n] = c;
                n += 1;
            }
        }
    }
    oxmalloc_core::os::write_stderr(&line[..n]);
}

// ---------------------------------------------------------------- start-up

static HOOKS: hooks::Hooks = hooks::Hooks {
    on_alloc,
    on_free,
    on_realloc_begin: Some(on_realloc_begin),
    on_realloc: Some(on_realloc),
    on_fork: Some(on_fork),
};

/// Reads `OXMALLOC_TRACK` (and `OXMALLOC_OUT`, `OXMALLOC_TRACK_EVERY`) and, when tracking is
/// asked for, sets up the tables and installs the hooks. Called once, from liboxmalloc's
/// constructor. A bad setting is reported in one line and leaves tracking off.
pub fn init() {
    if STATE.swap(1, AcqRel) != 0 {
        return;
    }
    let Some(v) = getenv(c"OXMALLOC_TRACK") else {
        return;
    };
    let Some((mode, interval)) = parse_mode(v) else {
        say(&[
            b"oxmalloc: OXMALLOC_TRACK=",
            v,
            b": not off, summary, sample[:SIZE] or full; tracking stays off",
        ]);
        return;
    };
    if mode == Mode::Off {
        return;
    }
    let every = match getenv(c"OXMALLOC_TRACK_EVERY") {
        None | Some(b"") | Some(b"0") => 0,
        Some(s) => match parse_size(s) {
            Some(n) => n,
            None => {
                say(&[
                    b"oxmalloc: OXMALLOC_TRACK_EVERY=",
                    s,
                    b": not a number of seconds; snapshots at exit only",
                ]);
                0
            }
        },
    };
    let out = getenv(c"OXMALLOC_OUT")
        .filter(|s| !s.is_empty())
        .unwrap_or(b"oxmalloc-%p");
    // SAFETY: single-threaded start-up (a constructor), before the hooks exist.
    unsafe {
        let cfg = &mut *CFG.get();
        cfg.mode = mode;
        cfg.interval = interval;
        cfg.every = every;
        let n = out.len().min(cfg.out.len() - 1);
        cfg.out[..n].copy_from_slice(&out[..n]);
        cfg.out_len = n;
    }
    if !(sites::init() && shadow::init() && threads::init() && unwind::init() && maps::init()) {
        say(&[b"oxmalloc: cannot map the tracker's tables; tracking stays off"]);
        return;
    }

    START_NS.store(monotonic_ns(), Relaxed);
    oxmalloc_core::os::at_exit(at_exit);
    hooks::install(Some(&HOOKS));
    MAPS_ON.store(1, Release);
    if every > 0 {
        start_periodic();
    }
}

// ---------------------------------------------------------------- the hooks

#[inline]
fn ensure_slot(r: *mut tls::ThreadRec) -> u32 {
    // SAFETY: r is this thread's record.
    unsafe {
        if (*r).slot == 0 {
            (*r).slot = threads::new_slot();
        }
        (*r).slot
    }
}

fn site_with_stack(
    slot: u32,
    depth: usize,
    origin: Option<&hooks::Origin>,
    to_caller: bool,
) -> u32 {
    let mut frames = [core::mem::MaybeUninit::<usize>::uninit(); unwind::MAX_FRAMES];
    let d = unwind::capture(&mut frames[..depth], origin, to_caller);
    // SAFETY: capture initialised the first d entries.
    let f = unsafe { core::slice::from_raw_parts(frames.as_ptr() as *const usize, d) };
    let sh = sites::hash_frames(f);
    let key = sites::site_hash(sh, slot);
    let i = (key as usize) & (threads::SITE_CACHE - 1);
    if slot == threads::SHARED_SLOT {
        return site_for_locked(f, sh, slot);
    }
    let s = threads::slot(slot);
    if s.cache_hash[i].load(Relaxed) == key {
        return s.cache_site[i].load(Relaxed);
    }
    let id = site_for_locked(f, sh, slot);
    s.cache_hash[i].store(key, Relaxed);
    s.cache_site[i].store(id, Relaxed);
    id
}

fn site_for_locked(f: &[usize], sh: u64, slot: u32) -> u32 {
    sites::site_for(f, sh, slot, tls::current() as usize)
}

/// Sample mode: whether this allocation of `n` bytes is sampled (the byte countdown crossed
/// zero; the next interval is drawn from the exponential distribution).
#[inline(always)]
fn take_sample(r: *mut tls::ThreadRec, interval: u64, n: usize) -> bool {
    // SAFETY: r is this thread's record.
    unsafe {
        (*r).countdown -= n as i64;
        if (*r).countdown > 0 {
            return false;
        }
        if (*r).rng == 0 {
            (*r).rng = (r as u64) ^ monotonic_ns().rotate_left(17) | 1;
            // the first interval of a thread starts now
            (*r).countdown = math::exp_interval(&mut (*r).rng, interval) - n as i64;
            if (*r).countdown > 0 {
                return false;
            }
        }
        (*r).countdown = math::exp_interval(&mut (*r).rng, interval);
        true
    }
}

fn record_alloc(r: *mut tls::ThreadRec, p: *mut u8, n: usize, origin: *const hooks::Origin) {
    // SAFETY: the engine's origin lives through the hook call (or is null).
    let origin = unsafe { origin.as_ref() };
    let cfg = config();
    let slot = ensure_slot(r);
    let class = threads::class_of(n);
    let s = threads::slot(slot);
    threads::bump(&s.classes[class][0], 1);
    threads::bump(&s.classes[class][1], n as u64);
    let site = match cfg.mode {
        Mode::Full => site_with_stack(slot, unwind::MAX_FRAMES, origin, false),
        Mode::Summary => site_with_stack(slot, SUMMARY_DEPTH, origin, true),
        _ => {
            // Sample mode keeps exact allocation counters only; an unsampled block gets no
            // mark, so its free costs one shadow load (live figures are estimated from the
            // sampled blocks).
            if !take_sample(r, cfg.interval, n) {
                return;
            }
            site_with_stack(slot, unwind::MAX_FRAMES, origin, false)
        }
    };
    if cfg.mode != Mode::Sample {
        // The process-wide live figures are the only shared counters (for the exact peak);
        // the totals are the sums of the threads' own counters.
        let t = &TOTALS;
        let live = t.live_bytes.fetch_add(n as i64, Relaxed) + n as i64;
        let blocks = t.live_blocks.fetch_add(1, Relaxed) + 1;
        if live > t.peak_bytes.load(Relaxed) {
            t.peak_bytes.fetch_max(live, Relaxed);
        }
        if blocks > t.peak_blocks.load(Relaxed) {
            t.peak_blocks.fetch_max(blocks, Relaxed);
        }
    }
    sites::charge_alloc(site, n);
    // SAFETY: p is the live block just handed out.
    let usable = unsafe { oxmalloc_core::api::chunk_usable_size(p) };
    shadow::set(p as usize, site, n, usable);
}

/// Accounts the free of a block whose shadow word was `w` and requested size `n`.
fn record_free(r: *mut tls::ThreadRec, w: u32, n: usize) {
    let slot = ensure_slot(r);
    sites::charge_free(w & shadow::SITE_MASK, n, slot);
    if config().mode == Mode::Sample {
        // only sampled blocks have marks: the live totals and the per-class frees are not
        // kept (the reader estimates live figures from the sites)
        return;
    }
    let t = &TOTALS;
    t.live_bytes.fetch_sub(n as i64, Relaxed);
    t.live_blocks.fetch_sub(1, Relaxed);
    let s = threads::slot(slot);
    let class = threads::class_of(n);
    threads::bump(&s.classes[class][2], 1);
    threads::bump(&s.classes[class][3], n as u64);
}

unsafe extern "C" fn on_alloc(p: *mut u8, n: usize, origin: *const hooks::Origin) {
    let r = tls::current();
    // SAFETY: r is this thread's record.
    unsafe {
        if (*r).guard != 0 {
            return;
        }
        // Sample mode, the common case: not sampled. The countdown and the thread's two
        // allocation counters, kept out of record_alloc (whose frame is costlier).
        if config().mode == Mode::Sample && (*r).slot != 0 {
            let left = (*r).countdown - n as i64;
            if left > 0 {
                (*r).countdown = left;
                let c = &threads::slot((*r).slot).classes[threads::class_of(n)];
                threads::bump(&c[0], 1);
                threads::bump(&c[1], n as u64);
                return;
            }
        }
        (*r).guard = 1;
        record_alloc(r, p, n, origin);
        (*r).guard = 0;
    }
}

unsafe extern "C" fn on_free(p: *mut u8) {
    let r = tls::current();
    // SAFETY: r is this thread's record; p is still live (the hook runs before the free).
    unsafe {
        if (*r).guard != 0 {
            return;
        }
        let w = shadow::take(p as usize);
        if w == 0 {
            return;
        }
        (*r).guard = 1;
        let n = shadow::size_of(p as usize, w, oxmalloc_core::api::chunk_usable_size(p));
        record_free(r, w, n);
        (*r).guard = 0;
    }
}

/// Marks "this realloc is not ours to record" (the recorder itself was running).
const REALLOC_IGNORED: u32 = u32::MAX;

unsafe extern "C" fn on_realloc_begin(old: *mut u8) {
    let r = tls::current();
    // SAFETY: r is this thread's record; old is live until realloc frees it.
    unsafe {
        if (*r).guard != 0 {
            (*r).realloc_word = REALLOC_IGNORED;
            return;
        }
        (*r).guard = 1;
        // Taken now, before realloc may free the block (another thread could then get the
        // same address and record it).
        let w = shadow::take(old as usize);
        (*r).realloc_word = w;
        if w != 0 {
            (*r).realloc_size =
                shadow::size_of(old as usize, w, oxmalloc_core::api::chunk_usable_size(old));
        }
    }
}

unsafe extern "C" fn on_realloc(
    old: *mut u8,
    new: *mut u8,
    n: usize,
    origin: *const hooks::Origin,
) {
    let r = tls::current();
    // SAFETY: r is this thread's record; new is null or the live block realloc returned.
    unsafe {
        let w = (*r).realloc_word;
        if w == REALLOC_IGNORED {
            (*r).realloc_word = 0;
            return;
        }
        if new.is_null() && n != 0 {
            // failed: the old block is untouched
            if w != 0 {
                shadow::put(old as usize, w);
            }
        } else {
            if w != 0 {
                record_free(r, w, (*r).realloc_size);
            }
            if !new.is_null() {
                record_alloc(r, new, n, origin);
            }
        }
        (*r).realloc_word = 0;
        (*r).guard = 0;
    }
}

// ---------------------------------------------------------------- the program's mappings

static MAPS_ON: AtomicU8 = AtomicU8::new(0);

/// Runs `call` (the system call) and, when tracking is on and this is not the recorder's own
/// work, `update` on the map table with its result, both under the table's lock.
fn mapping_call(call: impl FnOnce() -> isize, update: impl FnOnce(isize, u32)) -> isize {
    if MAPS_ON.load(Relaxed) == 0 {
        return call();
    }
    let r = tls::current();
    // SAFETY: this thread's record.
    unsafe {
        if (*r).guard != 0 {
            return call();
        }
        (*r).guard = 1;
        let slot = ensure_slot(r);
        let site = site_with_stack(slot, unwind::MAX_FRAMES, None, false);
        maps::LOCK.lock();
        let res = call();
        if res >= 0 {
            update(res, site);
        }
        maps::LOCK.unlock();
        (*r).guard = 0;
        res
    }
}

/// mmap for the program: the kernel's result (address or negative errno), recorded.
pub fn mmap(addr: usize, len: usize, prot: i32, flags: i32, fd: i32, off: i64) -> isize {
    mapping_call(
        || oxmalloc_core::os::sys_mmap(addr, len, prot, flags, fd, off),
        |start, site| {
            maps::insert(maps::Map {
                start: start as usize,
                len,
                prot,
                flags,
                site,
            });
        },
    )
}

/// munmap for the program.
pub fn munmap(addr: usize, len: usize) -> isize {
    mapping_call(
        || oxmalloc_core::os::sys_munmap(addr, len),
        |_, _| maps::remove(addr, len),
    )
}

/// mremap for the program.
pub fn mremap(old: usize, old_len: usize, new_len: usize, flags: i32, new_addr: usize) -> isize {
    mapping_call(
        || oxmalloc_core::os::sys_mremap(old, old_len, new_len, flags, new_addr),
        |new, _| maps::moved(old, old_len, new as usize, new_len),
    )
}

/// Before a dlclose: remember the module, so later snapshots still list it.
pub fn before_dlclose(handle: usize) {
    if MAPS_ON.load(Relaxed) == 0 {
        return;
    }
    let r = tls::current();
    // SAFETY: this thread's record.
    unsafe {
        let was = core::mem::replace(&mut (*r).guard, 1);
        modules::before_dlclose(handle);
        (*r).guard = was;
    }
}

// ---------------------------------------------------------------- snapshots

/// Writes a snapshot now; false (after one line on stderr, once) if it could not be written.
pub fn write_snapshot(reason: &[u8]) -> bool {
    if STATE.load(Relaxed) == 0 || config().mode == Mode::Off {
        return false;
    }
    let r = tls::current();
    // SAFETY: this thread's record.
    let was = unsafe { core::mem::replace(&mut (*r).guard, 1) };
    let seq = SEQ.fetch_add(1, Relaxed) + 1;
    let mut b = mem::Buf::new();
    snapshot::render(&mut b, reason, seq);
    let ok = !b.failed && write_file(&b, seq);
    // SAFETY: as above.
    unsafe { (*r).guard = was };
    ok
}

static WARNED: AtomicU8 = AtomicU8::new(0);

fn write_file(b: &mem::Buf, seq: u64) -> bool {
    let cfg = config();
    // SAFETY: getpid cannot fail.
    let pid = unsafe { libc::getpid() } as u64;
    let mut path = mem::Buf::new();
    let out = &cfg.out[..cfg.out_len];
    let mut i = 0;
    while i < out.len() {
        if out[i] == b'%' && i + 1 < out.len() && out[i + 1] == b'p' {
            path.dec(pid);
            i += 2;
        } else {
            path.byte(out[i]);
            i += 1;
        }
    }
    path.byte(0);
    let saved = oxmalloc_core::os::errno();
    // SAFETY: a NUL-terminated path.
    let mk = unsafe { libc::mkdir(path.as_bytes().as_ptr() as *const libc::c_char, 0o700) };
    let mk_err = if mk != 0 {
        oxmalloc_core::os::errno()
    } else {
        0
    };
    oxmalloc_core::os::set_errno(saved);
    let dir_len = path.as_bytes().len() - 1;
    let mut file = mem::Buf::new();
    file.push(&path.as_bytes()[..dir_len]);
    file.push(b"/snapshot-");
    file.dec(pid);
    file.byte(b'-');
    file.dec(seq);
    file.push(b".oxm\0");
    if file.failed || path.failed {
        return false;
    }
    let r = with_sigxfsz_blocked(|| {
        oxmalloc_core::report_file::write_atomic(file.as_bytes(), &[b.as_bytes()])
    });
    match r {
        Ok(()) => true,
        Err(e) => {
            if WARNED.swap(1, Relaxed) == 0 {
                let e = if mk_err != 0 && mk_err != libc::EEXIST {
                    mk_err
                } else {
                    e
                };
                // SAFETY: strerror returns a static, NUL-terminated message for any value.
                let msg = unsafe { core::ffi::CStr::from_ptr(libc::strerror(e)).to_bytes() };
                say(&[
                    b"oxmalloc: cannot write the tracking snapshot ",
                    &file.as_bytes()[..file.as_bytes().len() - 1],
                    b": ",
                    msg,
                ]);
            }
            false
        }
    }
}

/// Runs `f` with SIGXFSZ blocked, and swallows a SIGXFSZ that `f` raised (a snapshot past
/// RLIMIT_FSIZE fails with EFBIG instead of killing the program).
fn with_sigxfsz_blocked<T>(f: impl FnOnce() -> T) -> T {
    // SAFETY: sigset operations on local sets; pthread_sigmask only changes this thread.
    unsafe {
        let mut set: libc::sigset_t = core::mem::zeroed();
        let mut old: libc::sigset_t = core::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGXFSZ);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
        let mut before: libc::sigset_t = core::mem::zeroed();
        libc::sigpending(&mut before);
        let was_pending = libc::sigismember(&before, libc::SIGXFSZ) == 1;
        let r = f();
        let mut after: libc::sigset_t = core::mem::zeroed();
        libc::sigpending(&mut after);
        if !was_pending && libc::sigismember(&after, libc::SIGXFSZ) == 1 {
            let zero = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            libc::sigtimedwait(&set, core::ptr::null_mut(), &zero);
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, core::ptr::null_mut());
        r
    }
}

unsafe extern "C" fn at_exit(_: *mut libc::c_void) {
    write_snapshot(b"exit");
}

extern "C" fn periodic(_: *mut libc::c_void) -> *mut libc::c_void {
    // This thread's own allocations (none of ours; glibc's, if any) are not recorded.
    // SAFETY: this thread's record.
    unsafe { (*tls::current()).guard = 1 };
    let secs = config().every;
    loop {
        let mut ts = libc::timespec {
            tv_sec: secs as libc::time_t,
            tv_nsec: 0,
        };
        // SAFETY: ts is valid; an interrupted sleep resumes with the time left.
        while unsafe { libc::nanosleep(&ts, &mut ts) } != 0 {}
        write_snapshot(b"periodic");
    }
}

fn start_periodic() {
    // SAFETY: a detached thread with every signal blocked (the program's signals go to its
    // own threads); pthread_create's failure just means no periodic snapshots.
    unsafe {
        let mut all: libc::sigset_t = core::mem::zeroed();
        let mut old: libc::sigset_t = core::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let mut t: libc::pthread_t = 0;
        if libc::pthread_create(&mut t, core::ptr::null(), periodic, core::ptr::null_mut()) == 0 {
            libc::pthread_detach(t);
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, core::ptr::null_mut());
    }
}

// ---------------------------------------------------------------- fork

// The engine calls these from its own fork handlers, after glibc's stdio list lock and before
// the arenas (hooks::Hooks::on_fork), and only in a multi-threaded process; the child callback
// always runs in the child.

static TAKEN: AtomicU8 = AtomicU8::new(0);

unsafe extern "C" fn on_fork(phase: u32) {
    match phase {
        0 => fork_prepare(),
        1 => fork_parent(),
        _ => fork_child(),
    }
}

fn fork_prepare() {
    // A fork from a signal handler that interrupted this thread inside the site table must
    // not wait for itself.
    // A fork from a signal handler that interrupted this very thread inside the recorder
    // (its guard is up, and it may hold any of the recorder's locks) takes none of them: the
    // parent resumes the interrupted work, the child resets every lock.
    // SAFETY: this thread's record.
    if sites::OWNER.load(Relaxed) == tls::current() as usize
        || unsafe { (*tls::current()).guard } != 0
    {
        TAKEN.store(0, Relaxed);
        return;
    }
    modules::lock().lock();
    maps::LOCK.lock();
    sites::LOCK.lock();
    shadow::locks().lock();
    TAKEN.store(1, Relaxed);
}

fn fork_parent() {
    if TAKEN.swap(0, Relaxed) == 1 {
        shadow::locks().unlock();
        sites::LOCK.unlock();
        maps::LOCK.unlock();
        modules::lock().unlock();
    }
}

fn fork_child() {
    TAKEN.store(0, Relaxed);
    shadow::locks().reset();
    sites::LOCK.reset();
    maps::LOCK.reset();
    modules::lock().reset();
    sites::OWNER.store(0, Relaxed);
    SEQ.store(0, Relaxed);
    WARNED.store(0, Relaxed);
    if config().every > 0 {
        // the parent's periodic thread does not exist here
        start_periodic();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse() {
        assert_eq!(parse_mode(b"off"), Some((Mode::Off, DEFAULT_INTERVAL)));
        assert_eq!(
            parse_mode(b"summary"),
            Some((Mode::Summary, DEFAULT_INTERVAL))
        );
        assert_eq!(parse_mode(b"full"), Some((Mode::Full, DEFAULT_INTERVAL)));
        assert_eq!(
            parse_mode(b"sample"),
            Some((Mode::Sample, DEFAULT_INTERVAL))
        );
        assert_eq!(parse_mode(b"sample:1M"), Some((Mode::Sample, 1 << 20)));
        assert_eq!(parse_mode(b"sample:64K"), Some((Mode::Sample, 64 << 10)));
        assert_eq!(parse_mode(b"sample:4096"), Some((Mode::Sample, 4096)));
        assert_eq!(parse_mode(b"sample:"), None);
        assert_eq!(parse_mode(b"sample:0"), None);
        assert_eq!(parse_mode(b"sample:1X"), None);
        assert_eq!(parse_mode(b"fulll"), None);
    }

    #[test]
    fn size_classes() {
        assert_eq!(threads::class_of(0), 0);
        assert_eq!(threads::class_of(1), 0);
        assert_eq!(threads::class_of(2), 1);
        assert_eq!(threads::class_of(3), 2);
        assert_eq!(threads::class_of(4), 2);
        assert_eq!(threads::class_of(5), 3);
        assert_eq!(threads::class_of(1024), 10);
        assert_eq!(threads::class_of(1025), 11);
        assert_eq!(threads::class_of(usize::MAX), 63);
    }
}
