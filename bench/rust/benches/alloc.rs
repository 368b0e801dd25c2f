//! Criterion benchmarks of the Rust front end: `OxMalloc` against `System` (glibc's malloc),
//! `MiMalloc` and `Jemalloc`, each called through `GlobalAlloc` in this one process (none of
//! them is the global allocator), on the same small workloads.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use oxmalloc_rust_bench::{Jemalloc, MiMalloc, OxMalloc, System};
use std::alloc::{GlobalAlloc, Layout};
use std::time::Duration;

fn lay(n: usize) -> Layout {
    Layout::from_size_align(n, 8).expect("valid layout")
}

/// One block allocated, touched and freed: the thread-cache fast path.
fn alloc_free<A: GlobalAlloc>(a: &A, n: usize) {
    // SAFETY: the block is used only between its alloc and its dealloc, with its own layout.
    unsafe {
        let p = a.alloc(lay(n));
        assert!(!p.is_null());
        p.write(1);
        a.dealloc(black_box(p), lay(n));
    }
}

/// `sizes.len()` blocks of mixed sizes allocated and touched, then freed in the same order:
/// more than a thread cache keeps, so refills and flushes run too.
fn batch<A: GlobalAlloc>(a: &A, sizes: &[usize], ptrs: &mut Vec<*mut u8>) {
    // SAFETY: as above; every pointer is freed once, with the layout it was allocated with.
    unsafe {
        for &n in sizes {
            let p = a.alloc(lay(n));
            assert!(!p.is_null());
            p.write(n as u8);
            ptrs.push(p);
        }
        for (p, &n) in ptrs.drain(..).zip(sizes) {
            a.dealloc(p, lay(n));
        }
    }
}

/// A buffer grown 16 bytes at a time from 16 to 4 096 bytes with realloc (appending to a
/// string without capacity doubling), then freed.
fn realloc_grow<A: GlobalAlloc>(a: &A) {
    // SAFETY: each realloc gets the current block and its current layout.
    unsafe {
        let mut n = 16;
        let mut p = a.alloc(lay(n));
        assert!(!p.is_null());
        while n < 4096 {
            p.add(n - 1).write(n as u8);
            p = a.realloc(p, lay(n), n + 16);
            assert!(!p.is_null());
            n += 16;
        }
        a.dealloc(black_box(p), lay(n));
    }
}

#[repr(C)]
struct Node {
    l: *mut Node,
    r: *mut Node,
    v: u64,
}

/// A binary tree of 32-byte nodes (2^(depth+1) - 1 of them) built depth first, then freed
/// bottom up: the linked-structure pattern.
fn tree<A: GlobalAlloc>(a: &A, depth: u32) -> u64 {
    fn build<A: GlobalAlloc>(a: &A, d: u32, v: u64) -> *mut Node {
        // SAFETY: a fresh block of Node's size and alignment, fully initialised.
        unsafe {
            let n = a.alloc(Layout::new::<Node>()) as *mut Node;
            assert!(!n.is_null());
            let (l, r) = if d == 0 {
                (core::ptr::null_mut(), core::ptr::null_mut())
            } else {
                (build(a, d - 1, 2 * v), build(a, d - 1, 2 * v + 1))
            };
            n.write(Node { l, r, v });
            n
        }
    }
    fn free<A: GlobalAlloc>(a: &A, n: *mut Node) -> u64 {
        if n.is_null() {
            return 0;
        }
        // SAFETY: n is a node built above, freed exactly once after its children.
        unsafe {
            let s = (*n).v + free(a, (*n).l) + free(a, (*n).r);
            a.dealloc(n as *mut u8, Layout::new::<Node>());
            s
        }
    }
    free(a, build(a, depth, 1))
}

/// 1 000 sizes in 16..=1024 from a fixed generator (the same for every allocator).
fn mixed_sizes(n: usize) -> Vec<usize> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            16 + (x % 1009) as usize
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    let sizes = mixed_sizes(1000);
    let mut ptrs = Vec::with_capacity(sizes.len());
    macro_rules! group {
        ($name:expr, |$a:ident| $body:expr) => {{
            let mut g = c.benchmark_group($name);
            g.warm_up_time(Duration::from_millis(500))
                .measurement_time(Duration::from_secs(2))
                .sample_size(40);
            {
                let $a = &System;
                g.bench_function("system", |b| b.iter(|| $body));
            }
            {
                let $a = &MiMalloc;
                g.bench_function("mimalloc", |b| b.iter(|| $body));
            }
            {
                let $a = &Jemalloc;
                g.bench_function("jemalloc", |b| b.iter(|| $body));
            }
            {
                let $a = &OxMalloc;
                g.bench_function("oxmalloc", |b| b.iter(|| $body));
            }
            g.finish();
        }};
    }
    group!("malloc_free_32", |a| alloc_free(a, 32));
    group!("malloc_free_256", |a| alloc_free(a, 256));
    group!("batch_1000_mixed", |a| batch(a, &sizes, &mut ptrs));
    group!("realloc_grow_16_to_4096", |a| realloc_grow(a));
    group!("tree_depth_10", |a| black_box(tree(a, 10)));
}

criterion_group!(alloc_benches, benches);
criterion_main!(alloc_benches);
