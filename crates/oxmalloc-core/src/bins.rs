//! Bins of free chunks: the unsorted bin, 62 exact-size small bins and size-range large bins
//! (16 per doubling below 1 MiB, 4 above), circular doubly-linked lists with a binmap.

use crate::chunk::*;

pub const UNSORTED: usize = 1;
/// Chunk sizes below this go to small bins (one size each, 16 bytes apart).
pub const MIN_LARGE_SIZE: usize = 1024;
pub const NSMALLBINS: usize = 64;
pub const NBINS: usize = 320;
pub const BINMAP_WORDS: usize = NBINS / 64;
/// How many chunks of its own bin a large request looks at for the best fit.
pub const LARGE_SCAN: usize = 32;

#[inline(always)]
pub const fn in_smallbin_range(sz: usize) -> bool {
    sz < MIN_LARGE_SIZE
}

#[inline(always)]
pub const fn smallbin_index(sz: usize) -> usize {
    sz >> 4
}

/// Large bins of 1 KiB up to 1 MiB: 16 per doubling (each 1/16 of its doubling wide).
const FINE_DOUBLINGS: usize = 10;
const FINE_BINS: usize = 16 * FINE_DOUBLINGS;

/// The large bin of chunk size `sz` (>= MIN_LARGE_SIZE). Below 1 MiB, where a busy heap holds
/// many free chunks, a bin spans 1/16 of a doubling, so a request's own bin holds few chunks
/// and those close to its size: the best-fit scan touches few (cold) chunks. From 1 MiB up a
/// bin spans a quarter of a doubling; the last bin (from 7 × 2^41 bytes) takes every larger
/// size too.
#[inline]
pub const fn largebin_index(sz: usize) -> usize {
    let b = (usize::BITS - 1 - sz.leading_zeros()) as usize; // floor(log2), >= 10
    if b < 10 + FINE_DOUBLINGS {
        return NSMALLBINS + (b - 10) * 16 + ((sz >> (b - 4)) & 15);
    }
    let i = NSMALLBINS + FINE_BINS + (b - 10 - FINE_DOUBLINGS) * 4 + ((sz >> (b - 2)) & 3);
    if i < NBINS {
        i
    } else {
        NBINS - 1
    }
}

#[inline]
pub const fn bin_index(sz: usize) -> usize {
    if in_smallbin_range(sz) {
        smallbin_index(sz)
    } else {
        largebin_index(sz)
    }
}

/// Smallest chunk size that belongs to large bin `idx`: the inverse of largebin_index, which
/// the tests check it against (the allocator itself never needs it).
#[cfg(test)]
const fn largebin_floor(idx: usize) -> usize {
    let k = idx - NSMALLBINS;
    if k < FINE_BINS {
        let b = 10 + k / 16;
        return (16 + k % 16) << (b - 4);
    }
    let k = k - FINE_BINS;
    let b = 10 + FINE_DOUBLINGS + k / 4;
    (4 + k % 4) << (b - 2)
}

/// The bin headers of one arena and the map of non-empty bins.
#[repr(C)]
pub struct Bins {
    /// fd/bk pairs; bin i acts as a fake chunk whose links overlay `heads[i]`.
    heads: [[*mut u8; 2]; NBINS],
    map: [u64; BINMAP_WORDS],
}

impl Bins {
    pub const fn new() -> Self {
        Bins {
            heads: [[core::ptr::null_mut(); 2]; NBINS],
            map: [0; BINMAP_WORDS],
        }
    }

    /// Whether every header and the map are zero (a freshly zeroed arena, before init).
    #[cfg(test)]
    pub fn is_zeroed(&self) -> bool {
        self.heads.iter().all(|h| h[0].is_null() && h[1].is_null())
            && self.map.iter().all(|&w| w == 0)
    }

    /// Makes every bin an empty circular list (its header points to itself).
    pub fn init(&mut self) {
        for i in 0..NBINS {
            let b = self.bin(i);
            self.heads[i] = [b, b];
        }
        self.map = [0; BINMAP_WORDS];
    }

    /// The fake chunk address of bin `i`: fd(bin) and bk(bin) read `heads[i]`.
    #[inline(always)]
    pub fn bin(&mut self, i: usize) -> *mut u8 {
        (self.heads[i].as_mut_ptr() as *mut u8).wrapping_sub(HDR)
    }

    #[inline(always)]
    pub fn is_empty(&mut self, i: usize) -> bool {
        let b = self.bin(i);
        // SAFETY: b is this bin's header; read through the same (volatile) accessor as every
        // other link so the compiler cannot keep a stale copy (see chunk::fd).
        unsafe { fd(b) == b }
    }

    #[inline(always)]
    pub fn mark(&mut self, i: usize) {
        self.map[i / 64] |= 1 << (i % 64);
    }

    #[inline(always)]
    fn unmark(&mut self, i: usize) {
        self.map[i / 64] &= !(1 << (i % 64));
    }

    /// The first non-empty bin with index >= `from` (unsorted excluded), if any.
    #[inline]
    pub fn next_nonempty(&self, from: usize) -> Option<usize> {
        let mut w = from / 64;
        if w >= BINMAP_WORDS {
            return None;
        }
        let mut bits = self.map[w] & (!0u64 << (from % 64));
        loop {
            if bits != 0 {
                return Some(w * 64 + bits.trailing_zeros() as usize);
            }
            w += 1;
            if w >= BINMAP_WORDS {
                return None;
            }
            bits = self.map[w];
        }
    }

    /// Puts free chunk `c` at the front of bin `i`.
    #[inline]
    pub unsafe fn push_front(&mut self, i: usize, c: *mut u8) {
        let b = self.bin(i);
        // SAFETY: b is a valid list header; c is a free chunk owned by this arena.
        unsafe {
            let f = fd(b);
            set_fd(c, f);
            set_bk(c, b);
            set_bk(f, c);
            set_fd(b, c);
        }
        self.mark(i);
    }

    /// Takes the last chunk of bin `i` (which must be non-empty).
    #[inline]
    pub unsafe fn pop_back(&mut self, i: usize) -> *mut u8 {
        let b = self.bin(i);
        // SAFETY: the bin is non-empty, so bk(b) is a free chunk in it.
        unsafe {
            let c = bk(b);
            // Its header first: an overflow that reached it has likely hit its links too, and
            // unlink must not follow those.
            let h = head(c);
            if h & FREE_BIT == 0 || !tag_ok(c, h) {
                crate::os::fatal(
                    "malloc(): corrupted chunk header in a bin",
                    chunk2mem(c) as usize,
                );
            }
            unlink(c);
            c
        }
    }

    /// Clears the map bit of bin `i` (the map is cleared lazily, when a search finds the bin
    /// empty: unlinking from the middle of a list does not know its bin).
    #[inline(always)]
    pub fn unmark_empty(&mut self, i: usize) {
        self.unmark(i);
    }

    /// Iterates the chunks of bin `i` (for statistics and trimming; callers hold the lock).
    pub fn for_each(&mut self, i: usize, mut f: impl FnMut(*mut u8)) {
        let b = self.bin(i);
        // SAFETY: the list is well formed under the arena lock.
        let mut c = unsafe { fd(b) };
        while c != b {
            // Read the link first: f may not change it, but keep the walk robust.
            // SAFETY: c is a chunk in the list.
            let n = unsafe { fd(c) };
            f(c);
            c = n;
        }
    }
}

/// Removes free chunk `c` from whatever list holds it, checking the neighbours' links first.
#[inline]
pub unsafe fn unlink(c: *mut u8) {
    // SAFETY: c is linked in a bin; its neighbours are chunks or the bin header.
    unsafe {
        let f = fd(c);
        let k = bk(c);
        if bk(f) != c || fd(k) != c {
            crate::os::fatal("corrupted double-linked list", c as usize);
        }
        set_bk(f, k);
        set_fd(k, f);
    }
}

impl Default for Bins {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_are_monotone_and_floors_match() {
        let mut last = 0;
        let mut s = 32;
        while s < (1 << 46) {
            let i = bin_index(s);
            assert!(i >= last, "size {s}");
            assert!(i < NBINS);
            if !in_smallbin_range(s) {
                assert!(largebin_floor(i) <= s, "size {s}");
                if i + 1 < NBINS {
                    assert!(largebin_floor(i + 1) > s, "size {s}");
                }
            }
            last = i;
            s += if s < 65536 { 16 } else { (s / 7) & !15 };
        }
        assert_eq!(bin_index(1008), 63);
        assert_eq!(bin_index(1024), 64);
        // 16 bins per doubling below 1 MiB, 4 from there.
        assert_eq!(bin_index(1024 + 64), 65);
        assert_eq!(bin_index((1 << 20) - 16), 64 + 159);
        assert_eq!(bin_index(1 << 20), 64 + 160);
        assert_eq!(bin_index((1 << 20) + (1 << 18)), 64 + 161);
        assert_eq!(largebin_floor(64 + 160), 1 << 20);
        // The last bin takes every size from its floor up.
        assert_eq!(bin_index(usize::MAX & !15), NBINS - 1);
    }

    #[test]
    fn list_operations_keep_the_map_exact() {
        let mut bins = std::boxed::Box::new(Bins::new());
        bins.init();
        let mut mem = std::vec![0usize; 64];
        let a = mem.as_mut_ptr() as *mut u8;
        let c1 = a;
        let c2 = unsafe { a.add(128) };
        unsafe {
            set_free_head(c1, 2048 | PREV_INUSE);
            set_free_head(c2, 2064 | PREV_INUSE);
            let i = bin_index(2048);
            assert_eq!(bin_index(2064), i);
            assert_eq!(bins.next_nonempty(2), None);
            bins.push_front(i, c1);
            bins.push_front(i, c2);
            assert_eq!(bins.next_nonempty(2), Some(i));
            let mut n = 0;
            bins.for_each(i, |_| n += 1);
            assert_eq!(n, 2);
            assert_eq!(bins.pop_back(i), c1);
            // A chunk whose header lost its free mark is refused, not unlinked (checked in a
            // child process would be nicer; here: the header check itself).
            assert!(head(c2) & FREE_BIT != 0 && tag_ok(c2, head(c2)));
            unlink(c2);
            assert!(bins.is_empty(i));
            assert_eq!(bins.next_nonempty(2), Some(i)); // cleared lazily
            bins.unmark_empty(i);
            assert_eq!(bins.next_nonempty(2), None);
        }
    }
}
