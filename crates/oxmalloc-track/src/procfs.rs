//! /proc readers without malloc: whole small files into a stack buffer, and /proc/self/smaps
//! line by line through a fixed buffer, turned into `region` records with what each mapping
//! is (the allocator's heap, the recorder's tables, a library, a stack, anonymous memory...).

use crate::mem::Buf;

/// Reads up to `out.len()` bytes of a file (path NUL-terminated); 0 if it cannot be read.
pub fn read_file(path: &[u8], out: &mut [u8]) -> usize {
    let saved = oxmalloc_core::os::errno();
    let mut n = 0usize;
    // SAFETY: path is NUL-terminated; reads go into out's free part.
    unsafe {
        let fd = libc::open(
            path.as_ptr() as *const libc::c_char,
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        if fd >= 0 {
            while n < out.len() {
                let r = libc::read(
                    fd,
                    out.as_mut_ptr().add(n) as *mut libc::c_void,
                    out.len() - n,
                );
                if r <= 0 {
                    break;
                }
                n += r as usize;
            }
            libc::close(fd);
        }
    }
    oxmalloc_core::os::set_errno(saved);
    n
}

fn hex(s: &[u8]) -> Option<usize> {
    let mut v = 0usize;
    if s.is_empty() {
        return None;
    }
    for &c in s {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return None,
        };
        v = v.checked_mul(16)?.checked_add(d as usize)?;
    }
    Some(v)
}

fn dec(s: &[u8]) -> usize {
    s.iter()
        .take_while(|c| c.is_ascii_digit())
        .fold(0usize, |v, &c| v * 10 + (c - b'0') as usize)
}

struct Region {
    start: usize,
    end: usize,
    perms: [u8; 4],
    rss_kb: usize,
    path: [u8; 256],
    path_len: usize,
    open: bool,
}

fn kind(r: &Region) -> &'static [u8] {
    let path = &r.path[..r.path_len];
    if crate::mem::is_tracker(r.start) {
        return b"tracker";
    }
    if path == b"[heap]" || (path.is_empty() && oxmalloc_core::registry::in_arena_memory(r.start)) {
        return b"oxmalloc";
    }
    if crate::maps::contains(r.start) {
        return b"program-mmap";
    }
    if path == b"[stack]" {
        return b"stack";
    }
    if path.starts_with(b"[") {
        return b"other";
    }
    if path.is_empty() {
        return b"anonymous";
    }
    if path.ends_with(b".so") || contains(path, b".so.") {
        return b"library";
    }
    b"file"
}

fn contains(h: &[u8], n: &[u8]) -> bool {
    h.windows(n.len()).any(|w| w == n)
}

fn emit(b: &mut Buf, r: &Region) {
    if !r.open {
        return;
    }
    b.push(b"region ");
    b.hex(r.start as u64);
    b.sp();
    b.hex(r.end as u64);
    b.sp();
    b.push(&r.perms);
    b.sp();
    b.dec(r.rss_kb as u64);
    b.sp();
    b.push(kind(r));
    b.sp();
    if r.path_len == 0 {
        b.byte(b'-');
    } else {
        b.text(&r.path[..r.path_len]);
    }
    b.nl();
}

fn line(b: &mut Buf, r: &mut Region, l: &[u8]) {
    // a mapping's header: "start-end perms offset dev inode [path]"
    let dash = l.iter().position(|&c| c == b'-');
    let sp = l.iter().position(|&c| c == b' ');
    if let (Some(d), Some(s)) = (dash, sp) {
        if d < s {
            if let (Some(start), Some(end)) = (hex(&l[..d]), hex(&l[d + 1..s])) {
                emit(b, r);
                r.start = start;
                r.end = end;
                r.perms = [b'-'; 4];
                let p = &l[s + 1..];
                let k = 4.min(p.len());
                r.perms[..k].copy_from_slice(&p[..k]);
                // the path starts after five fields
                let mut fields = 0;
                let mut i = s;
                while i < l.len() && fields < 5 {
                    while i < l.len() && l[i] == b' ' {
                        i += 1;
                    }
                    if fields == 4 {
                        break;
                    }
                    while i < l.len() && l[i] != b' ' {
                        i += 1;
                    }
                    fields += 1;
                }
                let path = &l[i.min(l.len())..];
                r.path_len = path.len().min(r.path.len());
                r.path[..r.path_len].copy_from_slice(&path[..r.path_len]);
                r.rss_kb = 0;
                r.open = true;
                return;
            }
        }
    }
    if let Some(rest) = l.strip_prefix(b"Rss:") {
        let rest: &[u8] = {
            let mut k = 0;
            while k < rest.len() && rest[k] == b' ' {
                k += 1;
            }
            &rest[k..]
        };
        r.rss_kb = dec(rest);
    }
}

/// Appends one `region` record per mapping of /proc/self/smaps.
pub fn regions(b: &mut Buf) {
    let saved = oxmalloc_core::os::errno();
    // SAFETY: a NUL-terminated path.
    let fd = unsafe {
        libc::open(
            c"/proc/self/smaps".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        oxmalloc_core::os::set_errno(saved);
        return;
    }
    let mut r = Region {
        start: 0,
        end: 0,
        perms: [b'-'; 4],
        rss_kb: 0,
        path: [0; 256],
        path_len: 0,
        open: false,
    };
    let mut buf = [0u8; 8192];
    let mut have = 0usize;
    loop {
        // SAFETY: reads into the free tail of buf.
        let n = unsafe {
            libc::read(
                fd,
                buf.as_mut_ptr().add(have) as *mut libc::c_void,
                buf.len() - have,
            )
        };
        if n <= 0 {
            if have > 0 {
                line(b, &mut r, &buf[..have]);
            }
            break;
        }
        have += n as usize;
        let mut start = 0;
        while let Some(off) = buf[start..have].iter().position(|&c| c == b'\n') {
            line(b, &mut r, &buf[start..start + off]);
            start += off + 1;
        }
        buf.copy_within(start..have, 0);
        have -= start;
        if have == buf.len() {
            have = 0; // a line longer than the buffer: dropped
        }
    }
    emit(b, &r);
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
    oxmalloc_core::os::set_errno(saved);
}
