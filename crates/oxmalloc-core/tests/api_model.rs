//! A randomized model test of the public API: random malloc/calloc/realloc/memalign/free
//! sequences checked against a shadow copy of every block (contents, alignment, overlap).

use oxmalloc_core::api;
use std::collections::BTreeMap;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn size(r: &mut Rng) -> usize {
    match r.below(100) {
        0..=69 => r.below(256) as usize,
        70..=94 => r.below(4096) as usize,
        95..=98 => r.below(200_000) as usize,
        _ => r.below(3 << 20) as usize,
    }
}

#[test]
fn random_operations_match_a_shadow_model() {
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    // addr -> (size, fill byte, align)
    let mut live: BTreeMap<usize, (usize, u8, usize)> = BTreeMap::new();
    let check = |p: usize, n: usize, b: u8| unsafe {
        let s = std::slice::from_raw_parts(p as *const u8, n);
        assert!(
            s.iter().all(|&x| x == b),
            "block {p:#x} size {n} lost its contents"
        );
        assert!(api::usable_size(p as *mut u8) >= n);
    };
    for step in 0..60_000u32 {
        let op = r.below(10);
        if op < 4 || live.is_empty() {
            let n = size(&mut r);
            let (p, align) = unsafe {
                match r.below(4) {
                    0 => (api::calloc(1, n), 16),
                    1 => {
                        let al = 16usize << r.below(10);
                        (api::memalign(al, n), al)
                    }
                    _ => (api::malloc(n), 16),
                }
            };
            assert!(!p.is_null());
            assert_eq!(p as usize % align, 0);
            let b = (step % 251) as u8;
            unsafe { std::ptr::write_bytes(p, b, n) };
            // No overlap with the neighbours in address order.
            let a = p as usize;
            if let Some((&q, &(qn, _, _))) = live.range(..a).next_back() {
                assert!(q + qn <= a, "overlap below");
            }
            if let Some((&q, _)) = live.range(a..).next() {
                assert!(a + n <= q, "overlap above");
            }
            live.insert(a, (n, b, align));
        } else {
            let k = r.below(live.len() as u64) as usize;
            let (&a, &(n, b, align)) = live.iter().nth(k).unwrap();
            check(a, n, b);
            live.remove(&a);
            if op < 7 {
                unsafe { api::free(a as *mut u8) };
            } else if align == 16 {
                let m = size(&mut r).max(1);
                let q = unsafe { api::realloc(a as *mut u8, m) };
                assert!(!q.is_null());
                check(q as usize, n.min(m), b);
                unsafe { std::ptr::write_bytes(q, b, m) };
                live.insert(q as usize, (m, b, 16));
            } else {
                unsafe { api::free(a as *mut u8) };
            }
        }
    }
    for (&a, &(n, b, _)) in &live {
        check(a, n, b);
        unsafe { api::free(a as *mut u8) };
    }
    assert!(api::trim(0) >= 0);
}

#[test]
fn failures_are_null_with_enomem_and_leave_blocks_intact() {
    unsafe {
        for n in [usize::MAX, usize::MAX - 4096, isize::MAX as usize] {
            *libc::__errno_location() = 0;
            assert!(api::malloc(n).is_null());
            assert_eq!(*libc::__errno_location(), libc::ENOMEM);
        }
        assert!(api::calloc(usize::MAX / 2, 3).is_null());
        let p = api::malloc(100);
        std::ptr::write_bytes(p, 9, 100);
        assert!(api::realloc(p, usize::MAX).is_null());
        assert!(std::slice::from_raw_parts(p, 100).iter().all(|&x| x == 9));
        api::free(p);
        let mut out = std::ptr::null_mut();
        assert_eq!(api::posix_memalign(&mut out, 24, 10), libc::EINVAL);
        assert_eq!(
            api::posix_memalign(&mut out, 64, usize::MAX / 2),
            libc::ENOMEM
        );
        assert!(out.is_null());
    }
}
