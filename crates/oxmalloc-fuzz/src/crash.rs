//! A last word on fatal signals: when oxmalloc aborts (it detected corruption) or the process
//! faults, one line on stderr names the seed and the operation that was running.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;

static SEED: AtomicU64 = AtomicU64::new(0);
/// The options that replay this run ("--seed S --threads T ..."), set before any operation.
static REPLAY: OnceLock<String> = OnceLock::new();
static OP: AtomicU64 = AtomicU64::new(0);

/// Remembers the run's seed and replay options and installs the handler for SIGABRT,
/// SIGSEGV, SIGBUS and SIGILL (each runs once, then the default action takes over).
pub fn install(seed: u64, replay: &str) {
    SEED.store(seed, Relaxed);
    let _ = REPLAY.set(replay.to_string());
    for sig in [libc::SIGABRT, libc::SIGSEGV, libc::SIGBUS, libc::SIGILL] {
        // SAFETY: a zeroed sigaction is a valid starting point; the handler only does
        // async-signal-safe work (atomic loads and write(2)); SA_RESETHAND restores the default
        // action, so returning re-raises (abort) or re-faults into it.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESETHAND;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// Records the index of the operation about to run on the main thread.
#[inline]
pub fn at(op: u64) {
    OP.store(op, Relaxed);
}

/// A fixed-size, allocation-free line buffer for the signal handler.
struct Line {
    buf: [u8; 256],
    len: usize,
}

impl Line {
    fn text(&mut self, s: &[u8]) {
        for &b in s {
            if self.len < self.buf.len() {
                self.buf[self.len] = b;
                self.len += 1;
            }
        }
    }

    fn num(&mut self, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.text(&digits[i..]);
    }
}

extern "C" fn on_signal(sig: libc::c_int) {
    let (seed, op) = (SEED.load(Relaxed), OP.load(Relaxed));
    let mut l = Line {
        buf: [0; 256],
        len: 0,
    };
    l.text(b"oxmalloc-fuzz: FAILED seed ");
    l.num(seed);
    l.text(b" op ");
    l.num(op);
    l.text(b": killed by signal ");
    l.num(sig as u64);
    l.text(b" (replay: ");
    // OnceLock::get is a plain atomic load: no lock, no allocation.
    l.text(REPLAY.get().map_or(&b""[..], |r| r.as_bytes()));
    l.text(b" --ops ");
    l.num(op + 1);
    l.text(b" --trace)\n");
    // SAFETY: write(2) is async-signal-safe and the buffer holds l.len valid bytes.
    unsafe { libc::write(2, l.buf.as_ptr().cast(), l.len) };
}
