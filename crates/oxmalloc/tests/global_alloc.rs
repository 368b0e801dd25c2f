//! The std collections and threads running with OxMalloc as the global allocator.

use oxmalloc::OxMalloc;
use std::alloc::{GlobalAlloc, Layout};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{mpsc, Arc, Mutex};

#[global_allocator]
static GLOBAL: OxMalloc = OxMalloc;

#[test]
fn collections_work_and_keep_contents() {
    let mut v: Vec<u64> = Vec::new();
    for i in 0..200_000u64 {
        v.push(i * 3);
    }
    assert_eq!(v.iter().sum::<u64>(), 3 * (200_000 * 199_999 / 2));
    let mut m = HashMap::new();
    for i in 0..50_000 {
        m.insert(i, format!("value-{i}"));
    }
    assert_eq!(m[&4242], "value-4242");
    let mut b = BTreeMap::new();
    for i in (0..20_000).rev() {
        b.insert(i, vec![i as u8; (i % 300) as usize]);
    }
    assert_eq!(b.len(), 20_000);
    assert!(b
        .iter()
        .all(|(k, v)| v.len() == (k % 300) as usize && v.iter().all(|&x| x == *k as u8)));
    let mut d: VecDeque<String> = (0..10_000).map(|i| i.to_string()).collect();
    d.rotate_left(17);
    assert_eq!(d[0], "17");
    let s: String = (0..10_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    assert_eq!(s.len(), 10_000);
}

#[test]
fn threads_allocate_and_free_across_each_other() {
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let producers: Vec<_> = (0..4)
        .map(|t| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for i in 0..20_000usize {
                    let n = (i * 7 + t) % 2000 + 1;
                    tx.send(vec![(n % 251) as u8; n]).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let consumer = std::thread::spawn(move || {
        let mut count = 0;
        for v in rx {
            let want = (v.len() % 251) as u8;
            assert!(v.iter().all(|&x| x == want));
            count += 1;
        }
        count
    });
    for p in producers {
        p.join().unwrap();
    }
    assert_eq!(consumer.join().unwrap(), 80_000);
    let shared = Arc::new(Mutex::new(Vec::new()));
    let hs: Vec<_> = (0..8)
        .map(|t| {
            let s = shared.clone();
            std::thread::spawn(move || {
                for i in 0..1000 {
                    s.lock().unwrap().push(Box::new([t as u64, i as u64]));
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(shared.lock().unwrap().len(), 8000);
}

#[test]
fn any_layout_alignment_is_honoured() {
    for shift in 0..=21 {
        let align = 1usize << shift;
        for size in [1usize, 8, 100, 4096, 200_000] {
            let l = Layout::from_size_align(size, align).unwrap();
            // SAFETY: non-zero size layouts; blocks are freed with the same layout.
            unsafe {
                let p = GLOBAL.alloc(l);
                assert!(!p.is_null());
                assert_eq!(p as usize % align, 0, "align {align} size {size}");
                p.write_bytes(0xAB, size);
                let z = GLOBAL.alloc_zeroed(l);
                assert_eq!(z as usize % align, 0);
                assert!(std::slice::from_raw_parts(z, size).iter().all(|&b| b == 0));
                let q = GLOBAL.realloc(p, l, size * 2 + 1);
                assert_eq!(q as usize % align, 0);
                assert!(std::slice::from_raw_parts(q, size)
                    .iter()
                    .all(|&b| b == 0xAB));
                GLOBAL.dealloc(q, Layout::from_size_align(size * 2 + 1, align).unwrap());
                GLOBAL.dealloc(z, l);
            }
        }
    }
}

#[test]
fn stats_reflect_live_memory() {
    let before = oxmalloc::stats();
    // Above the dynamic threshold's 32 MiB ceiling, blocks are always mapped on their own
    // (other tests in this process may have raised the threshold).
    let big: Vec<Vec<u8>> = (0..4).map(|_| vec![1u8; 40 << 20]).collect();
    let during = oxmalloc::stats();
    assert!(during.hblkhd >= 160 << 20, "{before:?} {during:?}");
    assert!(during.hblks >= 4);
    drop(big);
    let small: Vec<Box<[u8; 512]>> = (0..10_000).map(|_| Box::new([7u8; 512])).collect();
    let s2 = oxmalloc::stats();
    assert!(s2.uordblks >= 10_000 * 512, "{s2:?}");
    // SAFETY: a live block of this allocator.
    let u = unsafe { oxmalloc::usable_size(small[0].as_ptr() as *mut u8) };
    assert!(u >= 512);
    drop(small);
    oxmalloc::trim();
}
