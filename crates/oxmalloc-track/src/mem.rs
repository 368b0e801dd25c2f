//! Memory the recorder maps for itself (never malloc): reserved tables and a growable text
//! buffer, with a count of the bytes mapped so snapshots can report the tracker's own cost.

use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Bytes currently mapped by the recorder (reserved, not necessarily resident).
pub static MAPPED: AtomicUsize = AtomicUsize::new(0);

/// The recorder's mappings, so the snapshot can label them (start, len); a few dozen at most.
pub static RANGES: [(AtomicUsize, AtomicUsize); 64] =
    [const { (AtomicUsize::new(0), AtomicUsize::new(0)) }; 64];

fn note(start: usize, len: usize) {
    for (s, l) in RANGES.iter() {
        if s.load(Relaxed) == 0 && s.compare_exchange(0, start, Relaxed, Relaxed).is_ok() {
            l.store(len, Relaxed);
            return;
        }
    }
}

fn forget(start: usize) {
    for (s, l) in RANGES.iter() {
        if s.load(Relaxed) == start {
            l.store(0, Relaxed);
            s.store(0, Relaxed);
            return;
        }
    }
}

/// Whether `addr` lies in one of the recorder's own mappings.
pub fn is_tracker(addr: usize) -> bool {
    RANGES.iter().any(|(s, l)| {
        let s = s.load(Relaxed);
        s != 0 && addr >= s && addr < s + l.load(Relaxed)
    })
}

/// Reserves `len` bytes of zeroed memory (pages become resident only when touched).
pub fn reserve(len: usize) -> Option<*mut u8> {
    let p = oxmalloc_core::os::mmap_rw(len)?;
    MAPPED.fetch_add(len, Relaxed);
    note(p as usize, len);
    Some(p)
}

/// Gives back a mapping made by `reserve`.
pub fn release(p: *mut u8, len: usize) {
    oxmalloc_core::os::munmap(p, len);
    MAPPED.fetch_sub(len, Relaxed);
    forget(p as usize);
}

/// A growable byte buffer in its own mapping (snapshot text).
pub struct Buf {
    ptr: *mut u8,
    cap: usize,
    len: usize,
    /// Set when the buffer could not grow: the text is incomplete and must not be written.
    pub failed: bool,
}

impl Buf {
    pub fn new() -> Buf {
        let cap = 1 << 20;
        match reserve(cap) {
            Some(ptr) => Buf {
                ptr,
                cap,
                len: 0,
                failed: false,
            },
            None => Buf {
                ptr: core::ptr::null_mut(),
                cap: 0,
                len: 0,
                failed: true,
            },
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        if self.ptr.is_null() {
            return &[];
        }
        // SAFETY: [ptr, ptr+len) was written by push.
        unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }

    pub fn push(&mut self, b: &[u8]) {
        if self.failed {
            return;
        }
        if self.len + b.len() > self.cap {
            let mut ncap = self.cap * 2;
            while ncap < self.len + b.len() {
                ncap *= 2;
            }
            let Some(np) = oxmalloc_core::os::mremap(self.ptr, self.cap, ncap) else {
                self.failed = true;
                return;
            };
            forget(self.ptr as usize);
            MAPPED.fetch_add(ncap - self.cap, Relaxed);
            note(np as usize, ncap);
            self.ptr = np;
            self.cap = ncap;
        }
        // SAFETY: capacity checked above; the source is a valid slice.
        unsafe { core::ptr::copy_nonoverlapping(b.as_ptr(), self.ptr.add(self.len), b.len()) };
        self.len += b.len();
    }

    pub fn byte(&mut self, c: u8) {
        self.push(&[c]);
    }

    pub fn dec(&mut self, v: u64) {
        let mut tmp = [0u8; 20];
        let mut i = tmp.len();
        let mut v = v;
        loop {
            i -= 1;
            tmp[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.push(&tmp[i..]);
    }

    pub fn sdec(&mut self, v: i64) {
        if v < 0 {
            self.byte(b'-');
        }
        self.dec(v.unsigned_abs());
    }

    pub fn hex(&mut self, v: u64) {
        let mut tmp = [0u8; 18];
        let mut i = tmp.len();
        let mut v = v;
        loop {
            i -= 1;
            tmp[i] = b"0123456789abcdef"[(v & 15) as usize];
            v >>= 4;
            if v == 0 {
                break;
            }
        }
        i -= 2;
        tmp[i] = b'0';
        tmp[i + 1] = b'x';
        self.push(&tmp[i..]);
    }

    /// Text without line breaks (they would start a new record): replaced by spaces.
    pub fn text(&mut self, s: &[u8]) {
        for &c in s {
            self.byte(if c == b'\n' || c == b'\r' || c == 0 {
                b' '
            } else {
                c
            });
        }
    }

    pub fn sp(&mut self) {
        self.byte(b' ');
    }

    pub fn nl(&mut self) {
        self.byte(b'\n');
    }
}

impl Default for Buf {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        if !self.ptr.is_null() {
            release(self.ptr, self.cap);
        }
    }
}
