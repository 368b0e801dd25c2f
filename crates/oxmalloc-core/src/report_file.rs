//! Whole-or-nothing report files: write a private temporary file next to the target, fsync it,
//! then rename it into place. Raw syscalls and stack buffers only: no allocation, no panics.
//!
//! [`write_atomic`] is safe to call from inside the allocator (for example from the
//! stats-at-exit path):
//!
//! - Every kernel call goes through `libc::syscall`, so nothing here allocates, takes a libc
//!   lock, is a pthread cancellation point, or can be interposed by another preloaded library.
//! - Path buffers are fixed-size arrays on the stack (about 4.6 KiB in all).
//! - The caller's `errno` is preserved; the error, if any, is the returned value.
//!
//! # Steps
//!
//! 1. Split `path` into a directory part and a final name, and open the directory once
//!    (`O_DIRECTORY`); every later step is relative to that descriptor (`openat`, `renameat`,
//!    `unlinkat`), so the temporary file and the final name are always in the same directory,
//!    even if a component of the directory part is renamed or replaced meanwhile.
//! 2. Refuse a final name that is an existing directory (`EISDIR`), without following a
//!    symlink there.
//! 3. Create `<name>.<pid>.<16 hex digits>.tmp` with
//!    `O_WRONLY|O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC` and mode 0600, so a file, directory or
//!    symlink already at that name is never opened or followed: the call gets `EEXIST` and
//!    tries the next name (up to [`TEMP_ATTEMPTS`] names). The hex digits come from
//!    getrandom(2) mixed with a per-process call counter, so the names cannot be predicted by
//!    another user. `<name>` is cut to 223 bytes so the temporary name fits `NAME_MAX`.
//! 4. `fchmod(0600)` (best effort: the create mode already is 0600 or stricter, whatever the
//!    umask; this only makes the result exactly 0600 under an unusually strict umask).
//! 5. Write every part fully (short writes are continued, `EINTR` is retried), `fsync`, and
//!    `close` (an error from any of them fails the call).
//! 6. `renameat` the temporary file onto the final name. This atomically replaces whatever
//!    directory entry is there — a regular file, or a **symlink, which is replaced itself and
//!    never written through** — so readers see either the old file or the whole new one.
//! 7. Best effort `fsync` of the directory, so the rename itself survives a crash.
//!
//! On any failure after step 3 the temporary file is unlinked and the old file at `path` is
//! left exactly as it was. Only the final component is protected against symlinks: symlinks
//! in the directory part of `path` are followed, as in any path lookup.

use crate::os;
use core::sync::atomic::{AtomicU64, Ordering};
use libc::{c_char, c_int, c_long};

/// The largest path accepted, including the terminating NUL (Linux `PATH_MAX`).
pub const PATH_MAX: usize = 4096;
/// The longest final path component accepted (Linux `NAME_MAX`).
pub const NAME_MAX: usize = 255;
/// How many temporary names are tried before giving up with `EEXIST`.
pub const TEMP_ATTEMPTS: u32 = 8;

/// The longest suffix added to the final name: "." + pid (at most 10 digits) + "." + 16 hex
/// digits + ".tmp".
const TEMP_SUFFIX_MAX: usize = 1 + 10 + 1 + 16 + 4;
/// How much of the final name the temporary name keeps.
const TEMP_PREFIX_MAX: usize = NAME_MAX - TEMP_SUFFIX_MAX;

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// Calls so far in this process: two calls never derive the same names, even when getrandom(2)
/// is unavailable and the random part falls back to a per-process constant.
static CALLS: AtomicU64 = AtomicU64::new(0);

/// Writes the concatenation of `parts` to the file at `path`, whole or not at all.
///
/// `path` is a byte string, with or without one terminating NUL (`b"/tmp/r.txt"` and
/// `b"/tmp/r.txt\0"` name the same file); any other NUL byte is an error. A path without a
/// `/` is relative to the current directory.
///
/// On success the file at `path` is a new regular file with mode 0600 (owner read/write,
/// whatever the umask) holding exactly the bytes of `parts`, fsynced. Whatever was at `path`
/// before (a file, a symlink, a FIFO — anything but a directory) is replaced by an atomic
/// rename: a symlink at `path` is replaced, not followed, so its target is never touched.
///
/// On failure returns the errno, leaves `path` as it was and leaves no temporary file behind:
/// - `ENOENT`: `path` is empty (as open(2) says), or a directory in it does not exist.
/// - `EINVAL`: `path` holds a NUL byte before its last byte.
/// - `ENAMETOOLONG`: `path` is `PATH_MAX` bytes or longer (the NUL not counted), or its final
///   component is longer than `NAME_MAX`.
/// - `EISDIR`: `path` ends in `/`, `.` or `..`, or names an existing directory.
/// - `EEXIST`: [`TEMP_ATTEMPTS`] temporary names in a row were taken.
/// - anything else that openat, write, fsync, close or renameat report (`EACCES`, `ENOSPC`,
///   `EDQUOT`, `EFBIG`, `EIO`, `EROFS`, `EXDEV`, ...).
///
/// The caller's `errno` is unchanged either way. Writing past `RLIMIT_FSIZE` raises
/// `SIGXFSZ` as any write does (the call returns `EFBIG` if the signal is ignored).
pub fn write_atomic(path: &[u8], parts: &[&[u8]]) -> Result<(), i32> {
    let saved = os::errno();
    let calls = CALLS.fetch_add(1, Ordering::Relaxed);
    let seed = os::process_random().0 ^ mix(calls.wrapping_mul(GOLDEN));
    let r = write_in_place_of(path, parts, seed);
    os::set_errno(saved);
    r
}

/// [`write_atomic`] with the temporary names derived from `seed` instead of random bytes, so
/// tests can predict them (see [`temp_name`]) and plant things there. Not for production use:
/// predictable names let another user make every attempt fail with `EEXIST` (though never
/// make the call follow a symlink).
#[doc(hidden)]
pub fn write_atomic_seeded(path: &[u8], parts: &[&[u8]], seed: u64) -> Result<(), i32> {
    let saved = os::errno();
    let r = write_in_place_of(path, parts, seed);
    os::set_errno(saved);
    r
}

/// The temporary file name (final component only, no NUL) that attempt `attempt` of
/// [`write_atomic_seeded`]`(path, _, seed)` in this process uses; returns its length in `out`.
#[doc(hidden)]
pub fn temp_name(
    path: &[u8],
    seed: u64,
    attempt: u32,
    out: &mut [u8; NAME_MAX + 1],
) -> Result<usize, i32> {
    let (_, base) = split(path)?;
    let n = build_temp_name(base, getpid(), seed, attempt, out)?;
    Ok(n)
}

/// Returns (directory part, final name) of `path`, validated. The directory part keeps its
/// trailing `/` ("/" for a file in the root) and is "." for a path without a `/`.
fn split(path: &[u8]) -> Result<(&[u8], &[u8]), i32> {
    let path = match path.split_last() {
        Some((0, rest)) => rest,
        _ => path,
    };
    if path.is_empty() {
        return Err(libc::ENOENT);
    }
    if path.contains(&0) {
        return Err(libc::EINVAL);
    }
    if path.len() >= PATH_MAX {
        return Err(libc::ENAMETOOLONG);
    }
    let (dir, base): (&[u8], &[u8]) = match path.iter().rposition(|&c| c == b'/') {
        Some(i) => match (path.get(..i + 1), path.get(i + 1..)) {
            (Some(d), Some(b)) => (d, b),
            _ => return Err(libc::EINVAL),
        },
        None => (b".", path),
    };
    if base.is_empty() || base == b"." || base == b".." {
        return Err(libc::EISDIR);
    }
    if base.len() > NAME_MAX {
        return Err(libc::ENAMETOOLONG);
    }
    Ok((dir, base))
}

fn write_in_place_of(path: &[u8], parts: &[&[u8]], seed: u64) -> Result<(), i32> {
    let (dir, base) = split(path)?;
    let mut dir_buf = [0u8; PATH_MAX];
    let mut base_buf = [0u8; NAME_MAX + 1];
    let dir_c = c_string(dir, &mut dir_buf)?;
    let base_c = c_string(base, &mut base_buf)?;

    // O_RDONLY so the directory can be fsynced after the rename; O_PATH (enough for the *at
    // calls) where the directory is searchable and writable but not readable.
    let dirfd = match openat(libc::AT_FDCWD, dir_c, libc::O_RDONLY | DIR_FLAGS, 0) {
        Err(libc::EACCES) => openat(libc::AT_FDCWD, dir_c, libc::O_PATH | DIR_FLAGS, 0)?,
        r => r?,
    };
    let r = write_in_dir(dirfd, base, base_c, parts, seed);
    let _ = close(dirfd);
    r
}

const DIR_FLAGS: c_int = libc::O_DIRECTORY | libc::O_CLOEXEC;

fn write_in_dir(
    dirfd: c_int,
    base: &[u8],
    base_c: *const c_char,
    parts: &[&[u8]],
    seed: u64,
) -> Result<(), i32> {
    // A directory at the final name is refused up front (renameat would refuse it too, but
    // only after the whole file was written). O_NOFOLLOW: a symlink there, even to a
    // directory, is not a directory; the rename replaces it.
    if let Ok(fd) = openat(
        dirfd,
        base_c,
        libc::O_PATH | libc::O_NOFOLLOW | DIR_FLAGS,
        0,
    ) {
        let _ = close(fd);
        return Err(libc::EISDIR);
    }

    let pid = getpid();
    let mut tmp_buf = [0u8; NAME_MAX + 1];
    let mut attempt = 0;
    let fd = loop {
        build_temp_name(base, pid, seed, attempt, &mut tmp_buf)?;
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
        match openat(
            dirfd,
            tmp_buf.as_ptr().cast(),
            flags | libc::O_CLOEXEC,
            0o600,
        ) {
            Ok(fd) => break fd,
            Err(libc::EEXIST) if attempt + 1 < TEMP_ATTEMPTS => attempt += 1,
            Err(e) => return Err(e),
        }
    };
    // From here on tmp_buf holds the name of a file this call created.
    let tmp_c: *const c_char = tmp_buf.as_ptr().cast();

    let written = fill(fd, parts);
    let closed = close(fd);
    let r = match (written, closed) {
        (Err(e), _) | (Ok(()), Err(e)) => Err(e),
        (Ok(()), Ok(())) => renameat(dirfd, tmp_c, base_c),
    };
    match r {
        Ok(()) => fsync_best_effort(dirfd),
        Err(_) => unlinkat(dirfd, tmp_c),
    }
    r
}

/// Sets the mode, writes every part, and fsyncs.
fn fill(fd: c_int, parts: &[&[u8]]) -> Result<(), i32> {
    // Best effort: the file was created 0600 or stricter (the umask only removes bits), and
    // some filesystems (vfat, some FUSE ones) refuse chmod.
    // SAFETY: fchmod on a descriptor this call owns; no memory is passed.
    let _ = unsafe { libc::syscall(libc::SYS_fchmod, fd as c_long, 0o600 as c_long) };
    for part in parts {
        write_all(fd, part)?;
    }
    loop {
        // SAFETY: fsync on a descriptor this call owns; no memory is passed.
        if unsafe { libc::syscall(libc::SYS_fsync, fd as c_long) } == 0 {
            return Ok(());
        }
        match os::errno() {
            libc::EINTR => continue,
            // The filesystem cannot sync (some FUSE and special filesystems): nothing to wait
            // for, and the rename is still atomic.
            libc::EINVAL | libc::ENOSYS => return Ok(()),
            e => return Err(e),
        }
    }
}

fn write_all(fd: c_int, mut buf: &[u8]) -> Result<(), i32> {
    while !buf.is_empty() {
        // SAFETY: buf is a live readable slice of buf.len() bytes.
        let n = unsafe {
            libc::syscall(
                libc::SYS_write,
                fd as c_long,
                buf.as_ptr() as c_long,
                buf.len() as c_long,
            )
        };
        if n < 0 {
            match os::errno() {
                libc::EINTR => continue,
                e => return Err(e),
            }
        }
        // A regular file never takes 0 of a non-empty write without an error; don't spin.
        buf = match buf.get(n as usize..) {
            Some(rest) if n > 0 => rest,
            _ => return Err(libc::EIO),
        };
    }
    Ok(())
}

/// `<base, cut to TEMP_PREFIX_MAX bytes>.<pid>.<16 hex digits>.tmp` and a NUL into `out`;
/// returns the length without the NUL.
fn build_temp_name(
    base: &[u8],
    pid: u32,
    seed: u64,
    attempt: u32,
    out: &mut [u8; NAME_MAX + 1],
) -> Result<usize, i32> {
    let prefix = base.get(..TEMP_PREFIX_MAX).unwrap_or(base);
    let mut w = Cursor { buf: out, len: 0 };
    let random = mix(seed ^ (attempt as u64 + 1).wrapping_mul(GOLDEN));
    let ok = w.push(prefix)
        && w.push(b".")
        && w.push_dec(pid as u64)
        && w.push(b".")
        && w.push_hex16(random)
        && w.push(b".tmp");
    let len = w.len;
    if ok && w.push(b"\0") {
        Ok(len)
    } else {
        Err(libc::ENAMETOOLONG)
    }
}

struct Cursor<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Cursor<'_> {
    fn push(&mut self, bytes: &[u8]) -> bool {
        let end = match self.len.checked_add(bytes.len()) {
            Some(e) => e,
            None => return false,
        };
        match self.buf.get_mut(self.len..end) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.len = end;
                true
            }
            None => false,
        }
    }

    fn push_dec(&mut self, mut v: u64) -> bool {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 || i == 0 {
                break;
            }
        }
        match digits.get(i..) {
            Some(d) => self.push(d),
            None => false,
        }
    }

    fn push_hex16(&mut self, v: u64) -> bool {
        let mut digits = [0u8; 16];
        for (k, d) in digits.iter_mut().enumerate() {
            let nibble = (v >> (60 - 4 * k)) & 0xf;
            *d = b"0123456789abcdef"[nibble as usize];
        }
        self.push(&digits)
    }
}

/// Copies `s` and a NUL into `buf`; returns a pointer to the C string.
fn c_string<const N: usize>(s: &[u8], buf: &mut [u8; N]) -> Result<*const c_char, i32> {
    let mut w = Cursor { buf, len: 0 };
    if w.push(s) && w.push(b"\0") {
        Ok(buf.as_ptr().cast())
    } else {
        Err(libc::ENAMETOOLONG)
    }
}

/// splitmix64's finaliser.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn getpid() -> u32 {
    // SAFETY: getpid takes no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_getpid) as u32 }
}

fn openat(dirfd: c_int, name: *const c_char, flags: c_int, mode: u32) -> Result<c_int, i32> {
    loop {
        // SAFETY: name points to a NUL-terminated string in a live stack buffer; the kernel
        // only reads it.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat,
                dirfd as c_long,
                name as c_long,
                flags as c_long,
                mode as c_long,
            )
        };
        if fd >= 0 {
            return Ok(fd as c_int);
        }
        match os::errno() {
            libc::EINTR => continue,
            e => return Err(e),
        }
    }
}

/// Closes `fd`. `EINTR` counts as success: Linux has released the descriptor by then, and
/// everything written was already fsynced.
fn close(fd: c_int) -> Result<(), i32> {
    // SAFETY: close on a descriptor this call owns and does not use afterwards.
    if unsafe { libc::syscall(libc::SYS_close, fd as c_long) } == 0 {
        return Ok(());
    }
    match os::errno() {
        libc::EINTR => Ok(()),
        e => Err(e),
    }
}

/// Renames `from` to `to`, both relative to `dirfd`.
fn renameat(dirfd: c_int, from: *const c_char, to: *const c_char) -> Result<(), i32> {
    loop {
        // SAFETY: both names point to NUL-terminated strings in live stack buffers.
        let r = unsafe {
            libc::syscall(
                libc::SYS_renameat,
                dirfd as c_long,
                from as c_long,
                dirfd as c_long,
                to as c_long,
            )
        };
        if r == 0 {
            return Ok(());
        }
        match os::errno() {
            libc::EINTR => continue,
            e => return Err(e),
        }
    }
}

/// Removes the file `name` relative to `dirfd`, ignoring errors (cleanup only).
fn unlinkat(dirfd: c_int, name: *const c_char) {
    loop {
        // SAFETY: name points to a NUL-terminated string in a live stack buffer.
        let r = unsafe {
            libc::syscall(
                libc::SYS_unlinkat,
                dirfd as c_long,
                name as c_long,
                0 as c_long,
            )
        };
        if r == 0 || os::errno() != libc::EINTR {
            return;
        }
    }
}

/// Fsyncs the directory so the rename is durable; errors ignored (an `O_PATH` descriptor
/// gives `EBADF`, and the rename already happened either way).
fn fsync_best_effort(dirfd: c_int) {
    // SAFETY: fsync on a descriptor this call owns; no memory is passed.
    let _ = unsafe { libc::syscall(libc::SYS_fsync, dirfd as c_long) };
}
