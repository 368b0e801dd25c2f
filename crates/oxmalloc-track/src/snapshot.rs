//! Writes one snapshot file (format: docs/tracking.md) from the recorder's tables, the loaded
//! modules (dl_iterate_phdr: path, build-id, load bias, text range), /proc/self/smaps and the
//! allocator's own figures. Text in a buffer of the recorder's own memory, then written whole
//! or not at all (oxmalloc-core's report_file: temporary file, rename, mode 0600).

use crate::mem::Buf;
use crate::{sites, threads, Mode};
use core::sync::atomic::Ordering::*;

/// Appends the whole snapshot text to `b`.
pub fn render(b: &mut Buf, reason: &[u8], seq: u64) {
    b.push(b"oxmalloc-snapshot 1\n");
    // SAFETY: getpid/getppid cannot fail.
    let (pid, ppid) = unsafe { (libc::getpid(), libc::getppid()) };
    b.push(b"pid ");
    b.dec(pid as u64);
    b.push(b"\nppid ");
    b.dec(ppid as u64);
    b.push(b"\nexe ");
    let mut path = [0u8; 4096];
    let n = readlink(b"/proc/self/exe\0", &mut path);
    b.text(&path[..n]);
    b.push(b"\ncmdline ");
    cmdline(b);
    b.push(b"\nmode ");
    let cfg = crate::config();
    b.push(match cfg.mode {
        Mode::Summary => b"summary" as &[u8],
        Mode::Sample => b"sample",
        Mode::Full => b"full",
        Mode::Off => b"off",
    });
    b.push(b"\ninterval ");
    b.dec(if cfg.mode == Mode::Sample {
        cfg.interval
    } else {
        0
    });
    b.push(b"\nreason ");
    b.push(reason);
    b.push(b"\nseq ");
    b.dec(seq);
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    b.push(b"\ntime ");
    b.dec(ts.tv_sec as u64);
    b.byte(b'.');
    let ns = ts.tv_nsec as u64;
    let mut div = 100_000_000;
    while div > 0 {
        b.byte(b'0' + ((ns / div) % 10) as u8);
        div /= 10;
    }
    let up = crate::uptime_ns();
    b.push(b"\nuptime ");
    b.dec(up / 1_000_000_000);
    b.byte(b'.');
    let us = (up % 1_000_000_000) / 1000;
    let mut div = 100_000;
    while div > 0 {
        b.byte(b'0' + ((us / div) % 10) as u8);
        div /= 10;
    }
    b.nl();
    modules(b);
    // threads
    let nslots = threads::NSLOTS.load(Relaxed).min(threads::MAX_SLOTS as u32);
    for i in 1..nslots {
        let s = threads::slot(i);
        let tid = s.tid.load(Relaxed);
        if tid == 0 {
            continue;
        }
        threads::refresh_name(s, tid);
        let mut name = [0u8; 16];
        let len = threads::name(s, &mut name);
        b.push(b"thread ");
        b.dec(i as u64);
        b.sp();
        b.dec(tid as u64);
        b.sp();
        b.text(&name[..len]);
        b.nl();
    }
    // stacks and sites
    let nstacks = sites::NSTACKS.load(Acquire);
    for id in 1..nstacks {
        let f = sites::stack_frames(id);
        b.push(b"stack ");
        b.dec(id as u64);
        b.sp();
        b.dec(f.len() as u64);
        for &ip in f {
            b.sp();
            b.hex(ip as u64);
        }
        b.nl();
    }
    let nsites = sites::NSITES.load(Acquire);
    for id in 1..nsites {
        let s = sites::site(id);
        // every site, those with no block too (a mapping's site charges no block)
        let [a, ab, f, fb] = s.figures();
        b.push(b"site ");
        b.dec(id as u64);
        b.sp();
        b.dec(s.stack as u64);
        b.sp();
        b.dec(s.slot as u64);
        for v in [a, ab, f, fb] {
            b.sp();
            b.dec(v);
        }
        b.nl();
    }
    // size classes, summed over the threads
    let (mut total_bytes, mut total_blocks) = (0u64, 0u64);
    for c in 0..threads::CLASSES {
        let mut v = [0u64; 4];
        for i in 0..nslots.max(1) {
            let s = threads::slot(i);
            for (k, x) in v.iter_mut().enumerate() {
                *x += s.classes[c][k].load(Relaxed);
            }
        }
        total_blocks += v[0];
        total_bytes += v[1];
        if v == [0; 4] {
            continue;
        }
        b.push(b"size ");
        b.dec(c as u64);
        for x in v {
            b.sp();
            b.dec(x);
        }
        b.nl();
    }
    let t = &crate::TOTALS;
    b.push(b"totals");
    for v in [
        t.live_bytes.load(Relaxed).max(0) as u64,
        t.live_blocks.load(Relaxed).max(0) as u64,
        t.peak_bytes.load(Relaxed).max(0) as u64,
        t.peak_blocks.load(Relaxed).max(0) as u64,
        total_bytes,
        total_blocks,
    ] {
        b.sp();
        b.dec(v);
    }
    b.nl();
    crate::maps::for_each(|m| {
        b.push(b"map ");
        b.hex(m.start as u64);
        b.sp();
        b.dec(m.len as u64);
        b.sp();
        b.dec(m.prot as u32 as u64);
        b.sp();
        b.hex(m.flags as u32 as u64);
        b.sp();
        b.dec(m.site as u64);
        b.nl();
    });
    crate::procfs::regions(b);
    allocator(b);
    b.push(b"tracker ");
    b.dec(crate::mem::MAPPED.load(Relaxed) as u64);
    b.push(b"\nend\n");
}

fn readlink(path: &[u8], out: &mut [u8]) -> usize {
    // SAFETY: path is NUL-terminated; out is writable for its length.
    let n = unsafe {
        libc::readlink(
            path.as_ptr() as *const libc::c_char,
            out.as_mut_ptr() as *mut libc::c_char,
            out.len(),
        )
    };
    if n < 0 {
        0
    } else {
        n as usize
    }
}

fn cmdline(b: &mut Buf) {
    let mut buf = [0u8; 1024];
    let n = crate::procfs::read_file(b"/proc/self/cmdline\0", &mut buf);
    let mut end = n;
    while end > 0 && buf[end - 1] == 0 {
        end -= 1;
    }
    for &c in &buf[..end] {
        b.byte(if c == 0 || c == b'\n' { b' ' } else { c });
    }
}

fn allocator(b: &mut Buf) {
    let mut i = 0u64;
    oxmalloc_core::global::for_each_arena(|a| {
        // SAFETY: a is a live arena from the engine's list.
        let f = unsafe { oxmalloc_core::stats::arena_figures(a) };
        let in_use = f.system.saturating_sub(f.free_bytes + f.fast_bytes);
        b.push(b"arena ");
        b.dec(i);
        for v in [f.system, in_use, f.free_bytes, f.fast_bytes, f.top] {
            b.sp();
            b.dec(v as u64);
        }
        b.nl();
        i += 1;
    });
    let m = oxmalloc_core::stats::mallinfo2();
    b.push(b"allocator ");
    b.dec(m.hblkhd as u64);
    b.sp();
    b.dec(m.hblks as u64);
    b.sp();
    b.dec(m.keepcost as u64);
    b.nl();
}

// ---------------------------------------------------------------- modules

unsafe extern "C" fn one_module(
    info: *mut libc::dl_phdr_info,
    _size: libc::size_t,
    arg: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: glibc passes a valid dl_phdr_info; arg is the (Buf, counter) pair below.
    unsafe {
        let (b, id) = &mut *(arg as *mut (&mut Buf, u64));
        let i = &*info;
        let bias = i.dlpi_addr as usize;
        let (mut lo, mut hi) = (usize::MAX, 0usize);
        let mut build_id: &[u8] = &[];
        for k in 0..i.dlpi_phnum as usize {
            let ph = &*i.dlpi_phdr.add(k);
            if ph.p_type == libc::PT_LOAD {
                let s = bias + ph.p_vaddr as usize;
                lo = lo.min(s);
                hi = hi.max(s + ph.p_memsz as usize);
            } else if ph.p_type == libc::PT_NOTE && build_id.is_empty() {
                build_id = find_build_id(bias + ph.p_vaddr as usize, ph.p_memsz as usize);
            }
        }
        if hi == 0 {
            return 0;
        }
        b.push(b"module ");
        b.dec(*id);
        b.sp();
        b.hex(lo as u64);
        b.sp();
        b.hex(hi as u64);
        b.sp();
        b.hex(bias as u64);
        b.sp();
        if build_id.is_empty() {
            b.byte(b'-');
        } else {
            for &c in build_id {
                b.byte(b"0123456789abcdef"[(c >> 4) as usize]);
                b.byte(b"0123456789abcdef"[(c & 15) as usize]);
            }
        }
        b.sp();
        let name = if i.dlpi_name.is_null() {
            &[][..]
        } else {
            core::ffi::CStr::from_ptr(i.dlpi_name).to_bytes()
        };
        if name.is_empty() {
            if *id == 0 {
                let mut path = [0u8; 4096];
                let n = readlink(b"/proc/self/exe\0", &mut path);
                b.text(&path[..n]);
            } else {
                b.push(b"[vdso]");
            }
        } else {
            b.text(name);
        }
        b.nl();
        *id += 1;
        0
    }
}

/// The NT_GNU_BUILD_ID descriptor in the note segment at [p, p+len), if any.
pub unsafe fn find_build_id(p: usize, len: usize) -> &'static [u8] {
    let mut off = 0usize;
    // SAFETY: the note segment is mapped (it lies in a PT_LOAD of a loaded module); every
    // read is bounds-checked against its length.
    unsafe {
        while off + 12 <= len {
            let namesz = *((p + off) as *const u32) as usize;
            let descsz = *((p + off + 4) as *const u32) as usize;
            let ty = *((p + off + 8) as *const u32);
            let name_at = off + 12;
            let desc_at = name_at + ((namesz + 3) & !3);
            let next = desc_at + ((descsz + 3) & !3);
            if next > len {
                break;
            }
            if ty == 3 && namesz == 4 && *((p + name_at) as *const [u8; 4]) == *b"GNU\0" {
                return core::slice::from_raw_parts((p + desc_at) as *const u8, descsz);
            }
            off = next;
        }
    }
    &[]
}

fn modules(b: &mut Buf) {
    let mut arg: (&mut Buf, u64) = (b, 0);
    // SAFETY: one_module only appends to the Buf passed through arg.
    unsafe {
        libc::dl_iterate_phdr(
            Some(one_module),
            &mut arg as *mut (&mut Buf, u64) as *mut libc::c_void,
        )
    };
    // Modules dlclosed meanwhile, after the loaded ones (a reader takes the first match, so
    // an address now used by another library resolves to that one).
    let (b, mut id) = arg;
    crate::modules::for_each(|c| {
        b.push(b"module ");
        b.dec(id);
        b.sp();
        b.hex(c.start as u64);
        b.sp();
        b.hex(c.end as u64);
        b.sp();
        b.hex(c.bias as u64);
        b.sp();
        if c.build_id_len == 0 {
            b.byte(b'-');
        }
        for &x in &c.build_id[..c.build_id_len] {
            b.byte(b"0123456789abcdef"[(x >> 4) as usize]);
            b.byte(b"0123456789abcdef"[(x & 15) as usize]);
        }
        b.sp();
        b.text(&c.path[..c.path_len]);
        b.nl();
        id += 1;
    });
}
