//! Runs the oxmalloc-fuzz binary: a short clean run with a fixed seed, replay determinism,
//! and the one-line error for a bad argument.

use std::process::{Command, Output};

fn fuzz(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_oxmalloc-fuzz"))
        .args(args)
        .output()
        .expect("oxmalloc-fuzz runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn five_seconds_with_a_fixed_seed_pass() {
    let out = fuzz(&["--seconds", "5", "--seed", "20240601"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.first(), Some(&"oxmalloc-fuzz: seed 20240601"));
    let last = lines.last().copied().unwrap_or_default();
    let ops: u64 = last
        .strip_prefix("oxmalloc-fuzz: ")
        .and_then(|s| s.strip_suffix(" ops, seed 20240601, ok"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected last line: {last}"));
    assert!(ops > 1000, "only {ops} operations in 5 s");
}

#[test]
fn a_seed_replays_the_same_sequence() {
    let args = [
        "--ops",
        "20000",
        "--seed",
        "0xfeed",
        "--threads",
        "3",
        "--no-perturb",
    ];
    let (a, b) = (fuzz(&args), fuzz(&args));
    assert!(a.status.success(), "{}", text(&a.stderr));
    assert!(b.status.success(), "{}", text(&b.stderr));
    // The per-kind counts (workers' included) and the total match exactly.
    assert_eq!(text(&a.stdout), text(&b.stdout));
}

#[test]
fn a_bad_argument_is_one_line_and_a_failure() {
    for args in [
        &["--seconds", "soon"][..],
        &["--frobnicate"],
        &["--ops"],
        &["--threads", "99"],
    ] {
        let out = fuzz(args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("oxmalloc-fuzz: "), "{args:?}: {stderr}");
    }
}
