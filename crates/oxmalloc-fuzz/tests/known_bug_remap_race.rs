//! Regression test (fixed; it aborted before) for an oxmalloc-core race oxmalloc-fuzz found (seed 808, --threads 8): realloc
//! of an mmapped block registers the moved mapping only after mremap has released the old one.

use oxmalloc_core::api;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

const M_MMAP_THRESHOLD: i32 = -3;

/// In the window between mremap and the registry update another thread's mmap can get the old
/// address; the registry then holds that chunk address twice, and the stale entry's length
/// makes the other thread's usable_size, realloc or free abort with "corrupted chunk header"
/// (a false alarm on a valid block).
#[test]
fn moving_mmapped_blocks_do_not_confuse_other_threads() {
    // A fixed threshold, so every block below stays mmapped (no dynamic raise).
    assert_eq!(api::mallopt(M_MMAP_THRESHOLD, 128 * 1024), 1);
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..4 {
            // Grows an mmapped block step by step: mremap moves it, freeing the old range.
            s.spawn(|| {
                while !stop.load(Relaxed) {
                    // SAFETY: every pointer is the live result of the previous call.
                    unsafe {
                        let mut p = api::malloc(200_000);
                        for k in 1..8 {
                            p = api::realloc(p, 200_000 << k);
                            assert!(!p.is_null());
                        }
                        api::free(p);
                    }
                }
            });
            // Maps blocks of the first size (they land in the ranges just released) and looks
            // each up at once.
            s.spawn(|| {
                while !stop.load(Relaxed) {
                    // SAFETY: p is live from malloc until free.
                    unsafe {
                        let p = api::malloc(200_000);
                        assert!(api::usable_size(p) >= 200_000);
                        api::free(p);
                    }
                }
            });
        }
        while start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, Relaxed);
    });
}
