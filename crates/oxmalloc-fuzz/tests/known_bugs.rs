//! Regression tests for oxmalloc-core bugs oxmalloc-fuzz found (all fixed; each test failed
//! before its fix).

use oxmalloc_core::api;
use std::process::Command;

const M_MMAP_THRESHOLD: i32 = -3;
const M_PERTURB: i32 = -6;

/// Found as seed 1, op 80035: calloc skips zeroing mmapped blocks ("a fresh mapping is
/// already zero"), but malloc has just filled them with the perturb byte ^ 0xff.
#[test]
fn calloc_of_an_mmapped_block_is_zero_under_m_perturb() {
    assert_eq!(api::mallopt(M_MMAP_THRESHOLD, 64 * 1024), 1);
    assert_eq!(api::mallopt(M_PERTURB, 0xa5), 1);
    for n in [100, 76_896, 200_000, 1 << 20] {
        // SAFETY: calloc has no preconditions; the block is read within its n bytes and freed.
        unsafe {
            let p = api::calloc(1, n);
            assert!(!p.is_null());
            let s = std::slice::from_raw_parts(p, n);
            let bad = s.iter().position(|&b| b != 0);
            api::free(p);
            assert_eq!(bad, None, "calloc(1, {n}): byte not zero");
        }
    }
}

/// Found as seed 505, op 0, under OXMALLOC_HARDEN=1: the first allocation asks harden::on()
/// before initialisation has read the environment, so it gets no canary, and the first
/// usable_size, realloc or free of it aborts with "heap overflow detected".
#[test]
fn the_first_allocation_is_armed_in_hardened_mode() {
    let out = Command::new(env!("CARGO_BIN_EXE_oxmalloc-fuzz"))
        .args(["--seed", "505", "--ops", "200", "--threads", "0"])
        .env("OXMALLOC_HARDEN", "1")
        .output()
        .expect("oxmalloc-fuzz runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
