//! The arena's mechanisms driven directly: splitting, coalescing, fast bins, best fit,
//! in-place resizing, aligned carving and trimming, on a private heap-mode arena.

use oxmalloc_core::arena::Arena;
use oxmalloc_core::chunk::*;
use oxmalloc_core::global;

const SECRET: usize = 0x5eed_0000_1230;

fn arena() -> &'static mut Arena {
    global::ensure_init();
    let a = Arena::create(99).expect("heap mapping");
    // SAFETY: a fresh arena owned by this test alone.
    unsafe { &mut *a }
}

#[test]
fn freed_neighbours_coalesce_and_serve_a_larger_request() {
    let a = arena();
    unsafe {
        let c1 = a.int_malloc(2000, SECRET);
        let c2 = a.int_malloc(2000, SECRET);
        let guard = a.int_malloc(2000, SECRET);
        assert_eq!(c2 as usize, c1 as usize + 2000);
        assert!(head(c1) & IN_HEAP != 0);
        a.int_free(c1, 2000, SECRET);
        a.int_free(c2, 2000, SECRET);
        // One merged free chunk of 4000 bytes, placed where c1 was.
        let big = a.int_malloc(4000, SECRET);
        assert_eq!(big, c1);
        assert!(inuse(big));
        a.int_free(big, 4000, SECRET);
        a.int_free(guard, 2000, SECRET);
        // Everything merged back into the top.
        assert_eq!(a.top, c1);
    }
}

#[test]
fn small_frees_go_to_fast_bins_and_are_reused_lifo() {
    let a = arena();
    unsafe {
        let x = a.int_malloc(48, SECRET);
        let y = a.int_malloc(48, SECRET);
        let _guard = a.int_malloc(48, SECRET);
        a.int_free(x, 48, SECRET);
        a.int_free(y, 48, SECRET);
        assert!(a.has_fast());
        // Fast-bin chunks still look in use to their neighbours (no coalescing at free).
        assert!(inuse(x));
        assert_eq!(a.int_malloc(48, SECRET), y);
        assert_eq!(a.int_malloc(48, SECRET), x);
    }
}

#[test]
fn small_requests_are_cut_from_the_last_remainder() {
    let a = arena();
    unsafe {
        let b = a.int_malloc(208, SECRET);
        let _g1 = a.int_malloc(64 * 16, SECRET);
        let big = a.int_malloc(4000, SECRET);
        let _g2 = a.int_malloc(64 * 16, SECRET);
        a.int_free(b, 208, SECRET);
        a.int_free(big, 4000, SECRET);
        // b is too small for 304 bytes (and is filed in its small bin on the way); the
        // 4000-byte chunk is split and its remainder stays unsorted as the last remainder.
        let c1 = a.int_malloc(304, SECRET);
        assert_eq!(c1, big);
        // b would fit 160 bytes more tightly, but while the remainder is the only unsorted
        // chunk the next small request is cut from it, right after c1 (glibc's rule).
        let c2 = a.int_malloc(160, SECRET);
        assert_eq!(c2 as usize, c1 as usize + 304);
        let c3 = a.int_malloc(160, SECRET);
        assert_eq!(c3 as usize, c2 as usize + 160);
        // A chunk freed meanwhile joins the unsorted bin: the remainder is no longer alone,
        // both are filed, and the best fit (b's bin) serves the request.
        let x = a.int_malloc(400, SECRET);
        let _g3 = a.int_malloc(64 * 16, SECRET);
        a.int_free(x, 400, SECRET);
        let c4 = a.int_malloc(160, SECRET);
        assert_eq!(c4, b);
    }
}

#[test]
fn large_requests_take_the_best_fit_and_split_the_rest() {
    let a = arena();
    unsafe {
        let mut kept = Vec::new();
        let mut freed = Vec::new();
        for sz in [8192usize, 4096 + 512, 6144, 4096 + 256] {
            let c = a.int_malloc(sz, SECRET);
            freed.push((c, sz));
            kept.push(a.int_malloc(64 * 16, SECRET)); // separators
        }
        for &(c, sz) in &freed {
            a.int_free(c, sz, SECRET);
        }
        // 4096+256 is the tightest fit for 4096+128.
        let got = a.int_malloc(4096 + 128, SECRET);
        assert_eq!(got, freed[3].0);
        // A request larger than every free chunk comes from the top.
        let top_before = a.top;
        let huge = a.int_malloc(16384, SECRET);
        assert_eq!(huge, top_before);
    }
}

#[test]
fn resize_in_place_grows_into_the_top_and_free_neighbours() {
    let a = arena();
    unsafe {
        let c = a.int_malloc(1024, SECRET);
        assert_eq!(a.top as usize, c as usize + 1024);
        assert!(a.try_resize(c, 1024, 300_000, 300_000, SECRET));
        assert_eq!(size(c), 300_000);
        assert!(a.try_resize(c, 300_000, 2048, 2048, SECRET));
        assert_eq!(size(c), 2048);
        let d = a.int_malloc(4096, SECRET);
        let e = a.int_malloc(4096, SECRET);
        let _g = a.int_malloc(4096, SECRET);
        a.int_free(e, 4096, SECRET);
        assert!(a.try_resize(d, 4096, 8192, 8192, SECRET));
        assert_eq!(size(d), 8192);
        assert!(!a.try_resize(d, 8192, 12288, 12288, SECRET) || size(d) == 12288);
    }
}

#[test]
fn resize_in_place_takes_the_headroom_asked_for_when_it_fits() {
    let a = arena();
    unsafe {
        // Into the top: the preferred size.
        let c = a.int_malloc(1024, SECRET);
        assert!(a.try_resize(c, 1024, 1040, 1200, SECRET));
        assert_eq!(size(c), 1200);
        // Into a free neighbour too small for the preference: what is needed (the neighbour's
        // whole size, since the rest would be below MINSIZE, or exactly nb).
        let d = a.int_malloc(1024, SECRET);
        let e = a.int_malloc(64, SECRET);
        let _g = a.int_malloc(1024, SECRET);
        a.int_free(e, 64, SECRET);
        a.consolidate(SECRET);
        assert!(a.try_resize(d, 1024, 1056, 4096, SECRET));
        assert!(size(d) >= 1056 && size(d) <= 1024 + 64, "size {}", size(d));
    }
}

#[test]
fn aligned_carving_returns_aligned_chunks_and_frees_the_lead() {
    let a = arena();
    unsafe {
        for align in [32usize, 64, 4096, 65536] {
            let c = a.int_memalign(align, 1008, SECRET, true);
            assert_eq!(chunk2mem(c) as usize % align, 0);
            assert!(size(c) >= 1008 && size(c) < 1008 + MINSIZE);
            assert!(inuse(c));
        }
    }
}

#[test]
fn trimming_gives_the_top_back() {
    let a = arena();
    unsafe {
        let c = a.int_malloc(8 << 20, SECRET);
        std::ptr::write_bytes(chunk2mem(c), 1, (8 << 20) - SIZE_SZ);
        let sys = a.system_mem;
        a.int_free(c, 8 << 20, SECRET);
        // Freeing into the top above the trim threshold trims it at once.
        assert!(
            a.system_mem < sys - (4 << 20),
            "{} -> {}",
            sys,
            a.system_mem
        );
        assert!(!a.trim(0, SECRET) || a.top_size() < 1 << 20);
    }
}

#[test]
fn without_growth_only_free_space_serves_a_request() {
    // What a request of at least mmap_threshold gets: the arena's free space, never growth.
    let a = arena();
    unsafe {
        let big = (a.top_size() + (1 << 20)) & !15;
        assert!(a.int_malloc_from(big, SECRET, false).is_null());
        let c = a.int_malloc_from(big, SECRET, true);
        assert!(!c.is_null());
        let guard = a.int_malloc(2000, SECRET);
        a.int_free(c, big, SECRET);
        // The freed chunk (not the top: the guard follows it) serves a smaller one.
        let half = (big / 2) & !15;
        let d = a.int_malloc_from(half, SECRET, false);
        assert_eq!(d, c);
        a.int_free(d, half, SECRET);
        a.int_free(guard, 2000, SECRET);
    }
}
