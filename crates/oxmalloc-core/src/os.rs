//! OS layer: the only place that talks to the kernel (brk, mmap, munmap, mremap, madvise,
//! futex, errno, stderr). Every function here is allocation-free and returns plain values.

use core::ptr;

/// The system page size (x86-64 Linux: 4096). Read once at start-up.
pub static mut PAGE_SIZE: usize = 4096;

/// Reads the page size from the auxiliary vector.
pub fn init_page_size() {
    // SAFETY: getauxval has no preconditions; it returns 0 for an unknown key.
    let p = unsafe { libc::getauxval(libc::AT_PAGESZ) } as usize;
    if p.is_power_of_two() && p >= 4096 {
        // SAFETY: called once during single-threaded global init, before any reader exists.
        unsafe { PAGE_SIZE = p };
    }
}

#[inline]
pub fn page_size() -> usize {
    // SAFETY: written only during init, read-only afterwards.
    unsafe { PAGE_SIZE }
}

#[inline]
pub fn errno() -> i32 {
    // SAFETY: __errno_location always returns this thread's valid errno slot.
    unsafe { *libc::__errno_location() }
}

#[inline]
pub fn set_errno(e: i32) {
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = e }
}

/// Maps `len` bytes of fresh anonymous read-write memory; `None` on failure.
pub fn mmap_rw(len: usize) -> Option<*mut u8> {
    let r = sys_mmap(
        0,
        len,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
        -1,
        0,
    );
    if r < 0 {
        set_errno(-r as i32);
        None
    } else {
        Some(r as *mut u8)
    }
}

/// Maps `len` bytes aligned to `align` (a power of two, at least a page); `None` on failure.
pub fn mmap_aligned(len: usize, align: usize) -> Option<*mut u8> {
    let total = len.checked_add(align)?;
    let raw = mmap_rw(total)? as usize;
    let start = (raw + align - 1) & !(align - 1);
    let lead = start - raw;
    let tail = total - lead - len;
    if lead > 0 {
        munmap(raw as *mut u8, lead);
    }
    if tail > 0 {
        munmap((start + len) as *mut u8, tail);
    }
    Some(start as *mut u8)
}

// The allocator's (and the tracker's) own mappings go straight to the kernel: liboxmalloc
// exports mmap, munmap and mremap for the program (see oxmalloc-cabi), and its own calls must
// neither come back through those nor be mistaken for the program's.

/// mmap(2) as a raw system call: the address, or a negative errno.
pub fn sys_mmap(addr: usize, len: usize, prot: i32, flags: i32, fd: i32, off: i64) -> isize {
    // SAFETY: the kernel validates every argument; callers own what they map over.
    unsafe {
        raw_syscall6(
            libc::SYS_mmap,
            addr,
            len,
            prot as usize,
            flags as usize,
            fd as isize as usize,
            off as usize,
        )
    }
}

/// munmap(2) as a raw system call: 0 or a negative errno.
pub fn sys_munmap(addr: usize, len: usize) -> isize {
    // SAFETY: the kernel validates the range; callers pass a range they no longer use.
    unsafe { raw_syscall4(libc::SYS_munmap, addr, len, 0, 0) }
}

/// mremap(2) as a raw system call: the new address, or a negative errno.
pub fn sys_mremap(
    old: usize,
    old_len: usize,
    new_len: usize,
    flags: i32,
    new_addr: usize,
) -> isize {
    // SAFETY: as for sys_mmap.
    unsafe {
        raw_syscall6(
            libc::SYS_mremap,
            old,
            old_len,
            new_len,
            flags as usize,
            new_addr,
            0,
        )
    }
}

pub fn munmap(p: *mut u8, len: usize) {
    sys_munmap(p as usize, len);
}

/// Resizes a mapping, possibly moving it; `None` on failure (the old mapping is intact).
pub fn mremap(p: *mut u8, old: usize, new: usize) -> Option<*mut u8> {
    let r = sys_mremap(p as usize, old, new, libc::MREMAP_MAYMOVE, 0);
    if r < 0 {
        set_errno(-r as i32);
        None
    } else {
        Some(r as *mut u8)
    }
}

/// Gives the pages of `[p, p+len)` back to the kernel; they read as zero afterwards.
/// Makes [p, p+len) inaccessible (a guard page); false if the kernel refuses.
pub fn protect_none(p: *mut u8, len: usize) -> bool {
    // SAFETY: the caller owns the page-aligned range; PROT_NONE only removes access.
    unsafe { libc::mprotect(p as *mut libc::c_void, len, libc::PROT_NONE) == 0 }
}

pub fn discard(p: *mut u8, len: usize) {
    if len == 0 {
        return;
    }
    // SAFETY: callers pass whole pages of memory they own and hold no live data in.
    unsafe { libc::madvise(p as *mut libc::c_void, len, libc::MADV_DONTNEED) };
}

/// The current program break.
pub fn sbrk_current() -> usize {
    // SAFETY: sbrk(0) only reads the break.
    unsafe { libc::sbrk(0) as usize }
}

/// Moves the program break by `incr` bytes; returns the old break, or `None` on failure.
pub fn sbrk(incr: isize) -> Option<usize> {
    // SAFETY: oxmalloc owns the memory it obtains from the break; callers hold the main
    // arena's lock, so no other oxmalloc thread moves the break at the same time.
    let r = unsafe { libc::sbrk(incr) };
    if r as isize == -1 {
        None
    } else {
        Some(r as usize)
    }
}

/// Writes all of `buf` to standard error, ignoring errors (used by reports and aborts).
pub fn write_stderr(buf: &[u8]) {
    write_fd(2, buf);
}

pub fn write_fd(fd: i32, mut buf: &[u8]) {
    while !buf.is_empty() {
        // SAFETY: buf is a valid readable slice.
        let n = unsafe { libc::write(fd, buf.as_ptr() as *const libc::c_void, buf.len()) };
        if n <= 0 {
            if n < 0 && errno() == libc::EINTR {
                continue;
            }
            return;
        }
        buf = &buf[n as usize..];
    }
}

/// A system call made without libc's wrapper, so it never writes errno: the lock's futex calls
/// often "fail" harmlessly (EAGAIN when the word changed before the wait), and a successful
/// malloc must not leave such a value in the caller's errno (glibc's tst-malloc-thread-fail).
/// Returns the kernel's raw result (a negative errno on failure).
#[cfg(target_arch = "x86_64")]
#[inline]
unsafe fn raw_syscall4(n: i64, a1: usize, a2: usize, a3: usize, a4: usize) -> isize {
    let ret: isize;
    // SAFETY: the x86-64 Linux system call convention: number in rax, arguments in rdi, rsi,
    // rdx, r10; the kernel clobbers rcx and r11 and returns in rax. The caller vouches for
    // the arguments.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") n as isize => ret,
            in("rdi") a1,
            in("rsi") a2,
            in("rdx") a3,
            in("r10") a4,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// Six arguments (the sixth in r9).
#[cfg(target_arch = "x86_64")]
#[inline]
unsafe fn raw_syscall6(
    n: i64,
    a1: usize,
    a2: usize,
    a3: usize,
    a4: usize,
    a5: usize,
    a6: usize,
) -> isize {
    let ret: isize;
    // SAFETY: as raw_syscall4, with r8 and r9 for the fifth and sixth arguments.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") n as isize => ret,
            in("rdi") a1,
            in("rsi") a2,
            in("rdx") a3,
            in("r10") a4,
            in("r8") a5,
            in("r9") a6,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// Elsewhere: libc's wrapper, with errno put back as it was.
#[cfg(not(target_arch = "x86_64"))]
#[inline]
unsafe fn raw_syscall4(n: i64, a1: usize, a2: usize, a3: usize, a4: usize) -> isize {
    let saved = errno();
    // SAFETY: forwarded; the caller vouches for the arguments.
    let r = unsafe { libc::syscall(n as libc::c_long, a1, a2, a3, a4) } as isize;
    set_errno(saved);
    r
}

pub fn futex_wait(word: &core::sync::atomic::AtomicU32, expected: u32) {
    // SAFETY: the futex word is a live u32 borrowed for the whole call; a null timeout.
    unsafe {
        raw_syscall4(
            libc::SYS_futex,
            word.as_ptr() as usize,
            (libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG) as usize,
            expected as usize,
            0,
        )
    };
}

pub fn futex_wake_one(word: &core::sync::atomic::AtomicU32) {
    // SAFETY: the futex word is a live u32 borrowed for the whole call.
    unsafe {
        raw_syscall4(
            libc::SYS_futex,
            word.as_ptr() as usize,
            (libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG) as usize,
            1,
            0,
        )
    };
}

/// 16 random bytes from getrandom(2), independent of the AT_RANDOM bytes glibc already uses
/// for the stack protector and pointer guard; failing that, AT_RANDOM; failing both, a mix of
/// the clock and an address.
pub fn process_random() -> (u64, u64) {
    let mut buf = [0u64; 2];
    // SAFETY: buf is 16 writable bytes; GRND_NONBLOCK never waits for the entropy pool.
    let got = unsafe {
        libc::syscall(
            libc::SYS_getrandom,
            buf.as_mut_ptr() as *mut libc::c_void,
            16usize,
            libc::GRND_NONBLOCK,
        )
    };
    if got == 16 {
        return (buf[0], buf[1]);
    }
    // SAFETY: AT_RANDOM, when present, points at 16 readable bytes for the process lifetime.
    unsafe {
        let p = libc::getauxval(libc::AT_RANDOM) as *const u64;
        if !p.is_null() {
            return (ptr::read_unaligned(p), ptr::read_unaligned(p.add(1)));
        }
    }
    let mut t: libc::timespec = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: t is a valid out-parameter.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    let x = (t.tv_nsec as u64) ^ ((t.tv_sec as u64) << 32) ^ (&t as *const _ as u64);
    (
        x.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        x.rotate_left(29) ^ 0xD1B5_4A32_D192_ED03,
    )
}

/// The number of CPUs this process may run on: its affinity mask, capped by a cgroup v2/v1
/// CPU quota when one is set. Never allocates (raw reads into stack buffers).
pub fn usable_cpus() -> usize {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it.
    let mut n = unsafe {
        let mut set: libc::cpu_set_t = core::mem::zeroed();
        if libc::sched_getaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
            libc::CPU_COUNT(&set) as usize
        } else {
            0
        }
    };
    if n == 0 {
        // SAFETY: sysconf has no preconditions.
        n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as usize;
    }
    if let Some(q) = cgroup_cpu_quota() {
        n = n.min(q.max(1));
    }
    n
}

fn read_small_file(path: &[u8], buf: &mut [u8]) -> Option<usize> {
    // SAFETY: path is NUL-terminated by callers; buf is a valid writable slice.
    unsafe {
        let fd = libc::open(
            path.as_ptr() as *const libc::c_char,
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        if fd < 0 {
            return None;
        }
        let n = libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len());
        libc::close(fd);
        if n <= 0 {
            None
        } else {
            Some(n as usize)
        }
    }
}

fn parse_u64(s: &[u8]) -> Option<u64> {
    let mut v: u64 = 0;
    let mut any = false;
    for &c in s {
        if c.is_ascii_digit() {
            v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
            any = true;
        } else {
            break;
        }
    }
    if any {
        Some(v)
    } else {
        None
    }
}

/// CPUs allowed by a cgroup quota (rounded up), if a quota is set.
fn cgroup_cpu_quota() -> Option<usize> {
    let mut buf = [0u8; 128];
    let saved = errno();
    let r = (|| {
        if let Some(n) = read_small_file(b"/sys/fs/cgroup/cpu.max\0", &mut buf) {
            let s = &buf[..n];
            if s.starts_with(b"max") {
                return None;
            }
            let quota = parse_u64(s)?;
            let sp = s.iter().position(|&c| c == b' ')?;
            let period = parse_u64(&s[sp + 1..])?;
            if period == 0 {
                return None;
            }
            return Some(quota.div_ceil(period) as usize);
        }
        let n = read_small_file(b"/sys/fs/cgroup/cpu/cpu.cfs_quota_us\0", &mut buf)?;
        if buf[0] == b'-' {
            return None;
        }
        let quota = parse_u64(&buf[..n])?;
        let n = read_small_file(b"/sys/fs/cgroup/cpu/cpu.cfs_period_us\0", &mut buf)?;
        let period = parse_u64(&buf[..n])?;
        if period == 0 {
            return None;
        }
        Some(quota.div_ceil(period) as usize)
    })();
    set_errno(saved);
    r
}

/// Prints one line and aborts the process with SIGABRT. Used for detected heap corruption.
#[cold]
#[inline(never)]
pub fn fatal(msg: &str, addr: usize) -> ! {
    let mut w = crate::fmt::StackWriter::<160>::new();
    let _ = core::fmt::Write::write_fmt(&mut w, format_args!("oxmalloc: {} (0x{:x})\n", msg, addr));
    write_stderr(w.as_bytes());
    // SAFETY: abort never returns and needs no preconditions.
    unsafe { libc::abort() }
}

extern "C" {
    fn __cxa_atexit(
        f: unsafe extern "C" fn(*mut libc::c_void),
        arg: *mut libc::c_void,
        dso: *mut libc::c_void,
    ) -> libc::c_int;
}

/// Runs `f` at exit. Through `__cxa_atexit`, which libc.so.6 exports: `atexit` itself lives
/// in libc_nonshared.a, and a cdylib linked without it is left with an undefined `atexit`.
pub fn at_exit(f: unsafe extern "C" fn(*mut libc::c_void)) {
    // SAFETY: registers a process-lifetime function; a null dso handle means "the program".
    unsafe { __cxa_atexit(f, core::ptr::null_mut(), core::ptr::null_mut()) };
}
