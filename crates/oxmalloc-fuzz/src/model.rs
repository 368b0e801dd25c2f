//! The shadow model: every block the fuzzer holds from oxmalloc (size, usable size, byte
//! pattern), the random operations generated from a seed, and their checks against the model.

use crate::rng::Rng;
use crate::threads::ThreadPlan;
use oxmalloc_core::api;
use std::collections::BTreeMap;

// glibc's mallopt parameter numbers (malloc.h): the model encodes glibc's contract, so it
// does not borrow oxmalloc's own definitions.
pub const M_TRIM_THRESHOLD: i32 = -1;
pub const M_TOP_PAD: i32 = -2;
pub const M_MMAP_THRESHOLD: i32 = -3;
pub const M_MMAP_MAX: i32 = -4;
pub const M_PERTURB: i32 = -6;

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;
const DEFAULT_MMAP_THRESHOLD: usize = 128 * KIB;
const DEFAULT_TRIM_THRESHOLD: i32 = 128 * 1024;
const DEFAULT_TOP_PAD: i32 = 128 * 1024;
const DEFAULT_MMAP_MAX: i32 = 65536;
/// The largest block the random sizes ask for.
const MAX_SIZE: usize = 8 * MIB;
/// Written to posix_memalign's out-parameter first: a failing call must leave it alone.
const SENTINEL: usize = 0x5a5a_5a50;

/// Requests no allocator can satisfy (all above 2^62 bytes).
const HUGE: [usize; 6] = [
    usize::MAX,
    usize::MAX - 15,
    usize::MAX - 4095,
    isize::MAX as usize,
    (isize::MAX as usize) - 4 * MIB + 1,
    1 << 62,
];
/// nmemb × size pairs whose product overflows.
const OVERFLOW: [(usize, usize); 4] = [
    (usize::MAX, 2),
    (1 << 32, 1 << 32),
    (3, usize::MAX / 2),
    (usize::MAX / 16 + 1, 16),
];
/// Sizes around glibc's chunk-size steps (24/25), fast-bin and tcache limits (1032/1033).
const SMALL_EDGES: [usize; 40] = [
    0, 1, 8, 15, 16, 17, 23, 24, 25, 31, 32, 33, 39, 40, 41, 56, 57, 64, 72, 120, 121, 127, 128,
    129, 136, 137, 1000, 1008, 1009, 1016, 1017, 1023, 1024, 1025, 1031, 1032, 1033, 1034, 1040,
    1048,
];

/// What kind of operation: used for the per-kind counts and to say where a block came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Malloc,
    Calloc,
    Realloc,
    ReallocArray,
    Free,
    Memalign,
    AlignedAlloc,
    PosixMemalign,
    Valloc,
    Pvalloc,
    UsableSize,
    Failing,
    Trim,
    Mallopt,
    VerifyAll,
    FreeAll,
    Threads,
}

pub const NKINDS: usize = 17;

impl Kind {
    pub const ALL: [Kind; NKINDS] = [
        Kind::Malloc,
        Kind::Calloc,
        Kind::Realloc,
        Kind::ReallocArray,
        Kind::Free,
        Kind::Memalign,
        Kind::AlignedAlloc,
        Kind::PosixMemalign,
        Kind::Valloc,
        Kind::Pvalloc,
        Kind::UsableSize,
        Kind::Failing,
        Kind::Trim,
        Kind::Mallopt,
        Kind::VerifyAll,
        Kind::FreeAll,
        Kind::Threads,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Malloc => "malloc",
            Kind::Calloc => "calloc",
            Kind::Realloc => "realloc",
            Kind::ReallocArray => "reallocarray",
            Kind::Free => "free",
            Kind::Memalign => "memalign",
            Kind::AlignedAlloc => "aligned_alloc",
            Kind::PosixMemalign => "posix_memalign",
            Kind::Valloc => "valloc",
            Kind::Pvalloc => "pvalloc",
            Kind::UsableSize => "usable_size",
            Kind::Failing => "failing",
            Kind::Trim => "trim",
            Kind::Mallopt => "mallopt",
            Kind::VerifyAll => "verify_all",
            Kind::FreeAll => "free_all",
            Kind::Threads => "thread_phases",
        }
    }
}

/// How a new block is filled: its pattern key, and whether the pattern covers all usable
/// bytes (malloc_usable_size promises they may be used) or only the requested ones.
#[derive(Clone, Copy, Debug)]
pub struct Fill {
    pub key: u64,
    pub all: bool,
}

/// A request that must fail: null (or an error code) with the given errno, nothing changed.
#[derive(Clone, Copy, Debug)]
pub enum Failing {
    Malloc(usize),
    Calloc(usize, usize),
    /// (align, size)
    Memalign(usize, usize),
    AlignedAlloc(usize, usize),
    PosixMemalign(usize, usize),
    Valloc(usize),
    Pvalloc(usize),
    Realloc(Option<usize>, usize),
    ReallocArray(Option<usize>, usize, usize),
}

/// One generated operation; `slot` indexes the model's live blocks (`None`: a null pointer).
#[derive(Clone, Debug)]
pub enum Op {
    Malloc {
        size: usize,
        fill: Fill,
    },
    Calloc {
        nmemb: usize,
        size: usize,
        fill: Fill,
    },
    Realloc {
        slot: Option<usize>,
        size: usize,
        fill: Fill,
    },
    ReallocArray {
        slot: Option<usize>,
        nmemb: usize,
        size: usize,
        fill: Fill,
    },
    Free {
        slot: Option<usize>,
    },
    Memalign {
        align: usize,
        size: usize,
        fill: Fill,
    },
    AlignedAlloc {
        align: usize,
        size: usize,
        fill: Fill,
    },
    PosixMemalign {
        align: usize,
        size: usize,
        fill: Fill,
    },
    Valloc {
        size: usize,
        fill: Fill,
    },
    Pvalloc {
        size: usize,
        fill: Fill,
    },
    UsableSize {
        slot: Option<usize>,
    },
    Failing(Failing),
    Trim {
        pad: usize,
    },
    Mallopt {
        param: i32,
        value: i32,
    },
    /// Puts M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_MAX and M_PERTURB back to
    /// glibc's defaults (the thresholds stay fixed: glibc's dynamic threshold never returns).
    MalloptDefaults,
    VerifyAll,
    FreeAll,
    Threads(ThreadPlan),
}

impl Op {
    pub fn kind(&self) -> Kind {
        match self {
            Op::Malloc { .. } => Kind::Malloc,
            Op::Calloc { .. } => Kind::Calloc,
            Op::Realloc { .. } => Kind::Realloc,
            Op::ReallocArray { .. } => Kind::ReallocArray,
            Op::Free { .. } => Kind::Free,
            Op::Memalign { .. } => Kind::Memalign,
            Op::AlignedAlloc { .. } => Kind::AlignedAlloc,
            Op::PosixMemalign { .. } => Kind::PosixMemalign,
            Op::Valloc { .. } => Kind::Valloc,
            Op::Pvalloc { .. } => Kind::Pvalloc,
            Op::UsableSize { .. } => Kind::UsableSize,
            Op::Failing(_) => Kind::Failing,
            Op::Trim { .. } => Kind::Trim,
            Op::Mallopt { .. } | Op::MalloptDefaults => Kind::Mallopt,
            Op::VerifyAll => Kind::VerifyAll,
            Op::FreeAll => Kind::FreeAll,
            Op::Threads(_) => Kind::Threads,
        }
    }
}

/// A live block of the subject, as the model remembers it.
#[derive(Clone, Debug)]
pub struct Block {
    pub addr: usize,
    /// The size asked for: what the caller may rely on.
    pub req: usize,
    /// malloc_usable_size when it was allocated (it must not change while the block lives).
    pub usable: usize,
    /// How many bytes from `addr` hold the block's pattern.
    pub filled: usize,
    pub key: u64,
    /// Where it came from: the call, the op index and the thread (0: main, k+1: worker k).
    pub from: Kind,
    pub op: u64,
    pub thread: usize,
}

impl Block {
    fn describe(&self) -> String {
        format!(
            "block {:#x} (req {}, usable {}, from {} at op {} on {})",
            self.addr,
            self.req,
            self.usable,
            self.from.name(),
            self.op,
            thread_name(self.thread)
        )
    }

    /// The block's own span, as the overlap check sees it: all usable bytes, at least one.
    fn end(&self) -> usize {
        self.addr + self.usable.max(1)
    }
}

fn thread_name(t: usize) -> String {
    if t == 0 {
        "the main thread".to_string()
    } else {
        format!("worker {}", t - 1)
    }
}

/// Bounds on what one model keeps live; beyond them it mostly frees.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_blocks: usize,
    pub max_bytes: usize,
}

impl Limits {
    pub const MAIN: Limits = Limits {
        max_blocks: 1500,
        max_bytes: 32 * MIB,
    };
    pub const WORKER: Limits = Limits {
        max_blocks: 400,
        max_bytes: 16 * MIB,
    };
}

/// Per-kind operation counts.
pub type Counts = [u64; NKINDS];

pub struct Model {
    pub rng: Rng,
    live: Vec<Block>,
    /// start → end of every live block's usable span, for the neighbour overlap check.
    spans: BTreeMap<usize, usize>,
    /// Sum of the live blocks' requested sizes (deterministic, unlike usable sizes).
    live_req: usize,
    limits: Limits,
    page: usize,
    /// The M_MMAP_THRESHOLD this model last set (sizes around it are interesting).
    mmap_threshold: usize,
    /// 0 for the main thread, k+1 for worker k.
    thread: usize,
    /// Whether mallopt(M_PERTURB) is in the mix (--no-perturb leaves it out).
    pub perturb: bool,
    pub counts: Counts,
}

// ------------------------------------------------------------------ patterns and errno

/// The pattern word at 8-byte index `j` of a block keyed `key`: position-dependent, so
/// a shifted or misplaced copy does not verify.
#[inline]
fn word(key: u64, j: usize) -> u64 {
    let x = key ^ (j as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^ (x >> 29)
}

/// Writes the pattern of `key` over `[addr, addr + len)`.
///
/// # Safety
/// The range must be writable memory that nothing else uses.
unsafe fn write_pattern(addr: usize, len: usize, key: u64) {
    // SAFETY: the caller vouches for the range.
    let s = unsafe { std::slice::from_raw_parts_mut(addr as *mut u8, len) };
    let mut words = s.chunks_exact_mut(8);
    for (j, w) in (&mut words).enumerate() {
        w.copy_from_slice(&word(key, j).to_le_bytes());
    }
    let tail = words.into_remainder();
    let n = tail.len();
    tail.copy_from_slice(&word(key, len / 8).to_le_bytes()[..n]);
}

/// The first byte of `[addr, addr + len)` that differs from the pattern of `key`:
/// (offset, expected, found).
///
/// # Safety
/// The range must be readable memory that nothing writes meanwhile.
unsafe fn mismatch(addr: usize, len: usize, key: u64) -> Option<(usize, u8, u8)> {
    // SAFETY: the caller vouches for the range.
    let s = unsafe { std::slice::from_raw_parts(addr as *const u8, len) };
    let mut words = s.chunks_exact(8);
    // Fast pass over whole words (no early exit, so it vectorises); bytes only on a miss.
    let bad = (&mut words)
        .enumerate()
        .map(|(j, w)| u64::from_le_bytes(w.try_into().unwrap_or([0; 8])) ^ word(key, j))
        .fold(0, |acc, d| acc | d);
    if bad != 0 {
        for (j, w) in s.chunks_exact(8).enumerate() {
            let want = word(key, j).to_le_bytes();
            if let Some(i) = (0..8).find(|&i| w[i] != want[i]) {
                return Some((j * 8 + i, want[i], w[i]));
            }
        }
    }
    let tail = words.remainder();
    let want = word(key, len / 8).to_le_bytes();
    let base = len - tail.len();
    (0..tail.len())
        .find(|&i| tail[i] != want[i])
        .map(|i| (base + i, want[i], tail[i]))
}

/// The first non-zero byte of `[addr, addr + len)`: (offset, found).
///
/// # Safety
/// As for [`mismatch`].
unsafe fn nonzero(addr: usize, len: usize) -> Option<(usize, u8)> {
    // SAFETY: the caller vouches for the range.
    let s = unsafe { std::slice::from_raw_parts(addr as *const u8, len) };
    s.iter().position(|&b| b != 0).map(|i| (i, s[i]))
}

fn errno() -> i32 {
    // SAFETY: __errno_location returns this thread's errno slot, valid for the thread's life.
    unsafe { *libc::__errno_location() }
}

fn set_errno(e: i32) {
    // SAFETY: as in errno().
    unsafe { *libc::__errno_location() = e }
}

fn errno_name(e: i32) -> String {
    match e {
        0 => "0".to_string(),
        libc::ENOMEM => "ENOMEM".to_string(),
        libc::EINVAL => "EINVAL".to_string(),
        _ => e.to_string(),
    }
}

fn round_up(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

// ------------------------------------------------------------------ the model

impl Model {
    pub fn new(
        rng: Rng,
        limits: Limits,
        thread: usize,
        page: usize,
        mmap_threshold: usize,
    ) -> Model {
        Model {
            rng,
            live: Vec::new(),
            spans: BTreeMap::new(),
            live_req: 0,
            limits,
            page,
            mmap_threshold,
            thread,
            perturb: true,
            counts: [0; NKINDS],
        }
    }

    pub fn default_mmap_threshold() -> usize {
        DEFAULT_MMAP_THRESHOLD
    }

    pub fn page(&self) -> usize {
        self.page
    }

    pub fn mmap_threshold(&self) -> usize {
        self.mmap_threshold
    }

    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Takes block `i` out of the model (the caller frees it or hands it on).
    pub fn remove(&mut self, i: usize) -> Block {
        let b = self.live.swap_remove(i);
        self.spans.remove(&b.addr);
        self.live_req -= b.req;
        b
    }

    /// Puts a block (already filled, possibly from another model) into this one, checking
    /// that it overlaps no live block.
    pub fn insert(&mut self, b: Block) -> Result<(), String> {
        let (a, end) = (b.addr, b.end());
        if let Some((&q, &qend)) = self.spans.range(..=a).next_back() {
            if qend > a {
                return Err(format!(
                    "{} overlaps live {}",
                    b.describe(),
                    self.live
                        .iter()
                        .find(|x| x.addr == q)
                        .map_or_else(|| format!("block {q:#x}..{qend:#x}"), Block::describe)
                ));
            }
        }
        if let Some((&q, _)) = self.spans.range(a + 1..).next() {
            if q < end {
                return Err(format!(
                    "{} overlaps live {}",
                    b.describe(),
                    self.live
                        .iter()
                        .find(|x| x.addr == q)
                        .map_or_else(|| format!("block at {q:#x}"), Block::describe)
                ));
            }
        }
        self.spans.insert(a, end);
        self.live_req += b.req;
        self.live.push(b);
        Ok(())
    }

    /// Checks a live block: usable_size unchanged and the whole pattern intact.
    pub fn verify(b: &Block) -> Result<(), String> {
        // SAFETY: b is a live block of the subject, owned by this model.
        let u = unsafe { api::usable_size(b.addr as *mut u8) };
        if u != b.usable {
            return Err(format!("usable_size changed to {u} for {}", b.describe()));
        }
        // SAFETY: [addr, addr + filled) lies inside the live block and only we use it.
        if let Some((off, want, got)) = unsafe { mismatch(b.addr, b.filled, b.key) } {
            return Err(format!(
                "{} corrupted at offset {off}{}: expected {want:#04x}, found {got:#04x}",
                b.describe(),
                if off >= b.req {
                    " (in the usable tail)"
                } else {
                    ""
                }
            ));
        }
        Ok(())
    }

    pub fn verify_slot(&self, i: usize) -> Result<(), String> {
        Model::verify(&self.live[i])
    }

    pub fn verify_all(&self) -> Result<(), String> {
        self.live.iter().try_for_each(Model::verify)
    }

    /// Checks a fresh block `p` from `call` (non-null, aligned, big enough, overlapping
    /// nothing, zeroed for calloc), then fills it and adds it to the model.
    #[allow(clippy::too_many_arguments)]
    fn adopt(
        &mut self,
        p: *mut u8,
        req: usize,
        align: usize,
        zeroed: bool,
        fill: Fill,
        from: Kind,
        op: u64,
        call: &dyn Fn() -> String,
    ) -> Result<(), String> {
        if p.is_null() {
            return Err(format!(
                "{} returned null (errno {})",
                call(),
                errno_name(errno())
            ));
        }
        let addr = p as usize;
        // Every expected alignment is a power of two.
        if addr & (align - 1) != 0 {
            return Err(format!(
                "{} returned {addr:#x}, not {align}-aligned",
                call()
            ));
        }
        // SAFETY: p is a live block the subject just returned.
        let usable = unsafe { api::usable_size(p) };
        if usable < req {
            return Err(format!(
                "{} returned {addr:#x} with usable_size {usable} < {req}",
                call()
            ));
        }
        let b = Block {
            addr,
            req,
            usable,
            filled: if fill.all { usable } else { req },
            key: fill.key,
            from,
            op,
            thread: self.thread,
        };
        // Overlap first: filling an overlapping block would corrupt the other one.
        self.insert(b.clone())
            .map_err(|e| format!("{} returned an overlapping block: {e}", call()))?;
        if zeroed {
            // SAFETY: the block is live, ours, and at least req bytes long.
            if let Some((off, got)) = unsafe { nonzero(addr, req) } {
                return Err(format!(
                    "{} returned {addr:#x} with byte {off} = {got:#04x}, not zero",
                    call()
                ));
            }
        }
        // SAFETY: [addr, addr + filled) lies inside the new block (filled <= usable).
        unsafe { write_pattern(addr, b.filled, b.key) };
        Ok(())
    }

    /// Checks that a failing request returned null with `want` in errno.
    fn expect_null(p: *mut u8, want: i32, call: &dyn Fn() -> String) -> Result<(), String> {
        let e = errno();
        if !p.is_null() {
            // Leaked on purpose: the run stops at this failure.
            return Err(format!("{} returned {p:p}, expected null", call()));
        }
        if e != want {
            return Err(format!(
                "{} returned null with errno {}, expected {}",
                call(),
                errno_name(e),
                errno_name(want)
            ));
        }
        Ok(())
    }

    // -------------------------------------------------------------- generation

    fn new_fill(&mut self) -> Fill {
        Fill {
            key: self.rng.next_u64(),
            all: self.rng.chance(1, 2),
        }
    }

    fn slot(&mut self, null_one_in: usize) -> Option<usize> {
        if self.live.is_empty() || self.rng.chance(1, null_one_in) {
            None
        } else {
            Some(self.rng.below(self.live.len()))
        }
    }

    /// A request size: mostly small (0–1 KiB), some medium (to 256 KiB), rarely large
    /// (to 8 MiB), and often one around a boundary of the allocator's design.
    pub fn size(&mut self) -> usize {
        match self.rng.below(1000) {
            0..=629 => self.rng.range(0, KIB),
            630..=749 => self.rng.range(KIB + 1, 256 * KIB),
            750..=754 => self.rng.range(256 * KIB, MAX_SIZE),
            _ => self.edge_size(),
        }
    }

    fn edge_size(&mut self) -> usize {
        let page = self.page;
        let thr = self.mmap_threshold.min(MAX_SIZE);
        let r = &mut self.rng;
        match r.below(6) {
            0 => r.pick(&SMALL_EDGES),
            // The default mmap threshold, ±16.
            1 => DEFAULT_MMAP_THRESHOLD - 16 + r.range(0, 32),
            // The threshold set last, ±16.
            2 => thr.saturating_sub(16) + r.range(0, 32),
            // Page multiples, a little under and over.
            3 => (page * r.range(1, 64)).saturating_add_signed(r.pick(&[-16, -1, 0, 1, 16])),
            // Powers of two up to 1 MiB (rarely 8 MiB), ±1.
            4 => {
                let k = if r.chance(1, 10) { 23 } else { 20 };
                (1usize << r.range(0, k)).saturating_add_signed(r.pick(&[-1, 0, 1]))
            }
            // Both sides of a chunk-size step: 16k+8 bytes fit a chunk, 16k+9 need the next.
            _ => 16 * r.range(1, 80) + r.pick(&[8, 9]),
        }
    }

    /// A power-of-two alignment, mostly 16 .. 64 KiB, sometimes 1 .. 8.
    fn pow2_align(&mut self) -> usize {
        if self.rng.chance(1, 8) {
            1 << self.rng.range(0, 3)
        } else {
            16 << self.rng.range(0, 12)
        }
    }

    /// The next operation. `threads`: the most workers a thread phase may use (0: none).
    pub fn gen(&mut self, threads: usize) -> Op {
        let n = self.live.len();
        let crowded = n >= self.limits.max_blocks || self.live_req >= self.limits.max_bytes;
        if crowded && self.rng.chance(3, 4) {
            let slot = self.rng.below(n);
            return Op::Free { slot: Some(slot) };
        }
        // Weights out of 10 000.
        let roll = self.rng.below(10_000);
        match roll {
            0..=2599 => Op::Malloc {
                size: self.size(),
                fill: self.new_fill(),
            },
            2600..=3399 => self.gen_calloc(),
            3400..=4999 => self.gen_realloc(),
            5000..=5399 => self.gen_reallocarray(),
            5400..=7599 => Op::Free {
                slot: self.slot(50),
            },
            7600..=8099 => {
                let align = if self.rng.chance(1, 7) {
                    // Not a power of two: memalign rounds it up.
                    self.rng
                        .pick(&[3, 24, 48, 100, 1000, 3000, 12288, 40000, 65535])
                } else {
                    self.pow2_align()
                };
                Op::Memalign {
                    align,
                    size: self.size(),
                    fill: self.new_fill(),
                }
            }
            8100..=8499 => {
                let align = if self.rng.chance(1, 6) {
                    // aligned_alloc (glibc 2.38+): not a power of two is EINVAL.
                    self.rng.pick(&[0, 3, 24, 48, 96, 1000, 12288, usize::MAX])
                } else {
                    self.pow2_align()
                };
                Op::AlignedAlloc {
                    align,
                    size: self.size(),
                    fill: self.new_fill(),
                }
            }
            8500..=8899 => {
                let align = if self.rng.chance(1, 4) {
                    // Not a power of two, or not a multiple of sizeof(void *): EINVAL.
                    self.rng
                        .pick(&[0, 1, 2, 4, 12, 24, 48, 100, 4097, 12288, usize::MAX])
                } else {
                    self.pow2_align().max(8)
                };
                Op::PosixMemalign {
                    align,
                    size: self.size(),
                    fill: self.new_fill(),
                }
            }
            8900..=9099 => Op::Valloc {
                size: self.size(),
                fill: self.new_fill(),
            },
            9100..=9299 => Op::Pvalloc {
                size: self.size(),
                fill: self.new_fill(),
            },
            9300..=9699 => Op::UsableSize {
                slot: self.slot(20),
            },
            9700..=9899 => Op::Failing(self.gen_failing()),
            9900..=9904 => Op::Trim {
                pad: {
                    let random = 1 + self.rng.below(MIB);
                    self.rng.pick(&[0, 1, 4096, 128 * KIB, random])
                },
            },
            9905..=9907 => self.gen_mallopt(),
            9908..=9910 => Op::VerifyAll,
            9911 => Op::FreeAll,
            9912..=9914 if threads > 0 => {
                let workers = if threads >= 2 {
                    self.rng.range(2, threads)
                } else {
                    1
                };
                Op::Threads(ThreadPlan {
                    seed: self.rng.next_u64(),
                    workers,
                    steps: self.rng.range(500, 2500) as u64,
                })
            }
            _ => Op::Malloc {
                size: self.size(),
                fill: self.new_fill(),
            },
        }
    }

    fn gen_calloc(&mut self) -> Op {
        let fill = self.new_fill();
        if self.rng.chance(1, 25) {
            let (nmemb, size) = self.rng.pick(&OVERFLOW);
            return Op::Calloc { nmemb, size, fill };
        }
        let total = self.size();
        let elem = self.rng.pick(&[1, 1, 2, 4, 8, 12, 16, 24, 100]);
        let (nmemb, size) = if self.rng.chance(1, 2) {
            (total / elem, elem)
        } else {
            (elem, total / elem)
        };
        Op::Calloc { nmemb, size, fill }
    }

    /// A new size for a block of `old` bytes: grow a little or a lot, shrink, keep, or 0.
    fn resize(&mut self, old: usize) -> usize {
        let n = match self.rng.below(20) {
            0..=6 => old + self.rng.range(1, 64),
            7..=9 => old.saturating_mul(2).max(1),
            10..=13 => self.rng.range(1, old.max(1)),
            14 => old,
            15 => 0,
            _ => self.size(),
        };
        n.min(MAX_SIZE + 64)
    }

    fn gen_realloc(&mut self) -> Op {
        let slot = self.slot(40);
        let old = slot.map_or(0, |i| self.live[i].req);
        let size = self.resize(old);
        let fill = self.new_fill();
        Op::Realloc { slot, size, fill }
    }

    fn gen_reallocarray(&mut self) -> Op {
        let slot = self.slot(40);
        let fill = self.new_fill();
        if self.rng.chance(1, 10) {
            let (nmemb, size) = self.rng.pick(&OVERFLOW);
            return Op::ReallocArray {
                slot,
                nmemb,
                size,
                fill,
            };
        }
        let old = slot.map_or(0, |i| self.live[i].req);
        let total = self.resize(old);
        let elem = self.rng.pick(&[1, 2, 4, 8, 16, 24]);
        Op::ReallocArray {
            slot,
            nmemb: total / elem,
            size: elem,
            fill,
        }
    }

    fn gen_failing(&mut self) -> Failing {
        let h = self.rng.pick(&HUGE);
        match self.rng.below(9) {
            0 => Failing::Malloc(h),
            1 => {
                let (a, b) = if self.rng.chance(1, 2) {
                    self.rng.pick(&OVERFLOW)
                } else {
                    (1, h)
                };
                Failing::Calloc(a, b)
            }
            2 => {
                if self.rng.chance(1, 3) {
                    // An alignment above SIZE_MAX / 2 + 1: EINVAL.
                    Failing::Memalign(self.rng.pick(&[usize::MAX, (1 << 63) + 1]), 16)
                } else {
                    Failing::Memalign(self.pow2_align(), h)
                }
            }
            3 => Failing::AlignedAlloc(self.pow2_align(), h),
            4 => Failing::PosixMemalign(self.pow2_align().max(8), h),
            5 => Failing::Valloc(h),
            6 => Failing::Pvalloc(h),
            7 => Failing::Realloc(self.slot(10), h),
            _ => {
                let (a, b) = self.rng.pick(&OVERFLOW);
                Failing::ReallocArray(self.slot(10), a, b)
            }
        }
    }

    fn gen_mallopt(&mut self) -> Op {
        let r = &mut self.rng;
        let random = r.range(0, 4 * MIB) as i32;
        let (param, value) = match r.below(10) {
            0..=2 => (
                M_MMAP_THRESHOLD,
                r.pick(&[
                    0,
                    4096,
                    64 * 1024,
                    128 * 1024,
                    256 * 1024,
                    1 << 20,
                    32 << 20,
                    (32 << 20) + 1,
                    -1,
                    random,
                ]),
            ),
            3 | 4 => (
                M_TRIM_THRESHOLD,
                r.pick(&[0, 4096, 128 * 1024, 1 << 20, i32::MAX, -1, random]),
            ),
            5 | 6 => (
                M_TOP_PAD,
                r.pick(&[0, 1, 4096, 128 * 1024, 1 << 20, 16 << 20, -7, random]),
            ),
            8 if self.perturb => (M_PERTURB, r.pick(&[0, 0xa5, 1 + (random & 0xfe)])),
            7 | 8 => (M_MMAP_MAX, r.pick(&[0, 1, 16, 65536])),
            _ => return Op::MalloptDefaults,
        };
        Op::Mallopt { param, value }
    }

    // -------------------------------------------------------------- execution

    /// Runs one operation (not [`Op::Threads`]) and checks it against the model.
    pub fn exec(&mut self, op: &Op, idx: u64) -> Result<(), String> {
        self.counts[op.kind() as usize] += 1;
        match *op {
            Op::Malloc { size, fill } => {
                // SAFETY: malloc has no preconditions.
                let p = unsafe { api::malloc(size) };
                self.adopt(p, size, 16, false, fill, Kind::Malloc, idx, &|| {
                    format!("malloc({size})")
                })
            }
            Op::Calloc { nmemb, size, fill } => {
                set_errno(0);
                // SAFETY: calloc has no preconditions.
                let p = unsafe { api::calloc(nmemb, size) };
                let call = || format!("calloc({nmemb}, {size})");
                match nmemb.checked_mul(size) {
                    None => Model::expect_null(p, libc::ENOMEM, &call),
                    Some(total) => self.adopt(p, total, 16, true, fill, Kind::Calloc, idx, &call),
                }
            }
            Op::Realloc { slot, size, fill } => self.realloc(
                slot,
                Some(size),
                fill,
                Kind::Realloc,
                idx,
                &|p| {
                    // SAFETY: p is null or a live block of the subject that the model drops.
                    unsafe { api::realloc(p, size) }
                },
                &|a| format!("realloc({a:#x}, {size})"),
            ),
            Op::ReallocArray {
                slot,
                nmemb,
                size,
                fill,
            } => self.realloc(
                slot,
                nmemb.checked_mul(size),
                fill,
                Kind::ReallocArray,
                idx,
                &|p| {
                    // SAFETY: as for realloc.
                    unsafe { api::reallocarray(p, nmemb, size) }
                },
                &|a| format!("reallocarray({a:#x}, {nmemb}, {size})"),
            ),
            Op::Free { slot: None } => {
                // SAFETY: free(NULL) does nothing.
                unsafe { api::free(std::ptr::null_mut()) };
                Ok(())
            }
            Op::Free { slot: Some(i) } => {
                Model::verify(&self.live[i]).map_err(|e| format!("before free: {e}"))?;
                let b = self.remove(i);
                // SAFETY: b was live and the model no longer refers to it.
                unsafe { api::free(b.addr as *mut u8) };
                Ok(())
            }
            Op::Memalign { align, size, fill } => {
                // SAFETY: memalign has no preconditions.
                let p = unsafe { api::memalign(align, size) };
                let want = align.next_power_of_two().max(16);
                self.adopt(p, size, want, false, fill, Kind::Memalign, idx, &|| {
                    format!("memalign({align}, {size})")
                })
            }
            Op::AlignedAlloc { align, size, fill } => {
                set_errno(0);
                // SAFETY: aligned_alloc has no preconditions.
                let p = unsafe { api::aligned_alloc(align, size) };
                let call = || format!("aligned_alloc({align}, {size})");
                if align.is_power_of_two() {
                    let a = align.max(16);
                    self.adopt(p, size, a, false, fill, Kind::AlignedAlloc, idx, &call)
                } else {
                    Model::expect_null(p, libc::EINVAL, &call)
                }
            }
            Op::PosixMemalign { align, size, fill } => {
                let mut out = SENTINEL as *mut u8;
                // SAFETY: out is a valid place for the result.
                let rc = unsafe { api::posix_memalign(&mut out, align, size) };
                let call = || format!("posix_memalign(&p, {align}, {size})");
                let valid = align.is_power_of_two() && align % std::mem::size_of::<usize>() == 0;
                let want = if valid { 0 } else { libc::EINVAL };
                if rc != want {
                    return Err(format!(
                        "{} returned {}, expected {}",
                        call(),
                        errno_name(rc),
                        errno_name(want)
                    ));
                }
                if !valid {
                    if out as usize != SENTINEL {
                        return Err(format!("{} failed but wrote {out:p} to p", call()));
                    }
                    return Ok(());
                }
                let a = align.max(16);
                self.adopt(out, size, a, false, fill, Kind::PosixMemalign, idx, &call)
            }
            Op::Valloc { size, fill } => {
                // SAFETY: valloc has no preconditions.
                let p = unsafe { api::valloc(size) };
                let page = self.page;
                self.adopt(p, size, page, false, fill, Kind::Valloc, idx, &|| {
                    format!("valloc({size})")
                })
            }
            Op::Pvalloc { size, fill } => {
                // SAFETY: pvalloc has no preconditions.
                let p = unsafe { api::pvalloc(size) };
                let page = self.page;
                let req = round_up(size.max(1), page);
                self.adopt(p, req, page, false, fill, Kind::Pvalloc, idx, &|| {
                    format!("pvalloc({size})")
                })
            }
            Op::UsableSize { slot: None } => {
                // SAFETY: usable_size(NULL) is 0.
                let u = unsafe { api::usable_size(std::ptr::null_mut()) };
                if u != 0 {
                    return Err(format!("usable_size(NULL) returned {u}, expected 0"));
                }
                Ok(())
            }
            Op::UsableSize { slot: Some(i) } => Model::verify(&self.live[i]),
            Op::Failing(f) => self.failing(f),
            Op::Trim { pad } => {
                let rc = api::trim(pad);
                if rc != 0 && rc != 1 {
                    return Err(format!("trim({pad}) returned {rc}, expected 0 or 1"));
                }
                self.verify_all()
                    .map_err(|e| format!("after trim({pad}): {e}"))
            }
            Op::Mallopt { param, value } => self.mallopt(param, value),
            Op::MalloptDefaults => {
                for (param, value) in [
                    (M_MMAP_THRESHOLD, DEFAULT_MMAP_THRESHOLD as i32),
                    (M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD),
                    (M_TOP_PAD, DEFAULT_TOP_PAD),
                    (M_MMAP_MAX, DEFAULT_MMAP_MAX),
                    (M_PERTURB, 0),
                ] {
                    self.mallopt(param, value)?;
                }
                Ok(())
            }
            Op::VerifyAll => self.verify_all(),
            Op::FreeAll => self.free_all(),
            Op::Threads(_) => unreachable!("thread phases run in threads::run"),
        }
    }

    /// realloc or reallocarray of `slot` (or null) to `total` bytes (`None`: the size
    /// overflows, so the call must fail with ENOMEM and leave the block alone).
    #[allow(clippy::too_many_arguments)]
    fn realloc(
        &mut self,
        slot: Option<usize>,
        total: Option<usize>,
        fill: Fill,
        kind: Kind,
        idx: u64,
        call: &dyn Fn(*mut u8) -> *mut u8,
        name: &dyn Fn(usize) -> String,
    ) -> Result<(), String> {
        let old = match slot {
            Some(i) => {
                let b = self.live[i].clone();
                Model::verify(&b).map_err(|e| format!("before {}: {e}", name(b.addr)))?;
                Some((i, b))
            }
            None => None,
        };
        let a = old.as_ref().map_or(0, |(_, b)| b.addr);
        set_errno(0);
        let p = call(a as *mut u8);
        let Some(total) = total else {
            Model::expect_null(p, libc::ENOMEM, &|| name(a))?;
            if let Some((_, b)) = &old {
                Model::verify(b).map_err(|e| format!("after failed {}: {e}", name(a)))?;
            }
            return Ok(());
        };
        let Some((i, b)) = old else {
            // realloc(NULL, n) is malloc(n), even for n = 0.
            return self.adopt(p, total, 16, false, fill, kind, idx, &|| name(0));
        };
        if total == 0 {
            // glibc: realloc(p, 0) frees p and returns null.
            if !p.is_null() {
                return Err(format!("{} returned {p:p}, expected null", name(a)));
            }
            self.remove(i);
            return Ok(());
        }
        if p.is_null() {
            return Err(format!(
                "{} of {} returned null (errno {})",
                name(a),
                b.describe(),
                errno_name(errno())
            ));
        }
        self.remove(i);
        // SAFETY: p is a live block the subject just returned.
        let usable = unsafe { api::usable_size(p) };
        if usable < total {
            return Err(format!(
                "{} returned {p:p} with usable_size {usable} < {total}",
                name(a)
            ));
        }
        let keep = b.filled.min(total);
        // SAFETY: [p, p + keep) lies inside the new block (keep <= total <= usable).
        if let Some((off, want, got)) = unsafe { mismatch(p as usize, keep, b.key) } {
            return Err(format!(
                "{} -> {p:p} lost the contents of {} at offset {off}{}: expected \
                 {want:#04x}, found {got:#04x}",
                name(a),
                b.describe(),
                if off >= b.req {
                    " (in the usable tail)"
                } else {
                    ""
                }
            ));
        }
        self.adopt(p, total, 16, false, fill, kind, idx, &|| name(a))
    }

    fn failing(&mut self, f: Failing) -> Result<(), String> {
        set_errno(0);
        match f {
            Failing::Malloc(n) => {
                // SAFETY: malloc has no preconditions.
                let p = unsafe { api::malloc(n) };
                Model::expect_null(p, libc::ENOMEM, &|| format!("malloc({n})"))
            }
            Failing::Calloc(a, b) => {
                // SAFETY: calloc has no preconditions.
                let p = unsafe { api::calloc(a, b) };
                Model::expect_null(p, libc::ENOMEM, &|| format!("calloc({a}, {b})"))
            }
            Failing::Memalign(al, n) => {
                // SAFETY: memalign has no preconditions.
                let p = unsafe { api::memalign(al, n) };
                let want = if al > usize::MAX / 2 + 1 {
                    libc::EINVAL
                } else {
                    libc::ENOMEM
                };
                Model::expect_null(p, want, &|| format!("memalign({al}, {n})"))
            }
            Failing::AlignedAlloc(al, n) => {
                // SAFETY: aligned_alloc has no preconditions.
                let p = unsafe { api::aligned_alloc(al, n) };
                Model::expect_null(p, libc::ENOMEM, &|| format!("aligned_alloc({al}, {n})"))
            }
            Failing::PosixMemalign(al, n) => {
                let mut out = SENTINEL as *mut u8;
                // SAFETY: out is a valid place for the result.
                let rc = unsafe { api::posix_memalign(&mut out, al, n) };
                if rc != libc::ENOMEM || out as usize != SENTINEL {
                    return Err(format!(
                        "posix_memalign(&p, {al}, {n}) returned {} with p = {out:p}, \
                         expected ENOMEM and p untouched",
                        errno_name(rc)
                    ));
                }
                Ok(())
            }
            Failing::Valloc(n) => {
                // SAFETY: valloc has no preconditions.
                let p = unsafe { api::valloc(n) };
                Model::expect_null(p, libc::ENOMEM, &|| format!("valloc({n})"))
            }
            Failing::Pvalloc(n) => {
                // SAFETY: pvalloc has no preconditions.
                let p = unsafe { api::pvalloc(n) };
                Model::expect_null(p, libc::ENOMEM, &|| format!("pvalloc({n})"))
            }
            Failing::Realloc(slot, n) => self.realloc(
                slot,
                None,
                Fill { key: 0, all: false },
                Kind::Failing,
                0,
                &|p| {
                    // SAFETY: p is null or a live block; the call must fail and keep it.
                    unsafe { api::realloc(p, n) }
                },
                &|a| format!("realloc({a:#x}, {n})"),
            ),
            Failing::ReallocArray(slot, a, b) => self.realloc(
                slot,
                None,
                Fill { key: 0, all: false },
                Kind::Failing,
                0,
                &|p| {
                    // SAFETY: as above.
                    unsafe { api::reallocarray(p, a, b) }
                },
                &|x| format!("reallocarray({x:#x}, {a}, {b})"),
            ),
        }
    }

    fn mallopt(&mut self, param: i32, value: i32) -> Result<(), String> {
        let rc = api::mallopt(param, value);
        // glibc 2.36 answers 1 to everything but an M_MXFAST above 160 (never generated), and
        // stores an mmap threshold as given, sign-extended (-1: never map).
        if rc != 1 {
            return Err(format!(
                "mallopt({param}, {value}) returned {rc}, expected 1"
            ));
        }
        if param == M_MMAP_THRESHOLD {
            self.mmap_threshold = value as isize as usize;
        }
        Ok(())
    }

    /// Verifies and frees every live block, last first.
    pub fn free_all(&mut self) -> Result<(), String> {
        while let Some(i) = self.live.len().checked_sub(1) {
            Model::verify(&self.live[i]).map_err(|e| format!("before free: {e}"))?;
            let b = self.remove(i);
            // SAFETY: b was live and the model no longer refers to it.
            unsafe { api::free(b.addr as *mut u8) };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_round_trip_and_catch_a_flipped_byte() {
        for len in [0, 1, 7, 8, 9, 31, 100] {
            let mut v = vec![0u8; len];
            let a = v.as_mut_ptr() as usize;
            // SAFETY: v is ours and len bytes long.
            unsafe {
                write_pattern(a, len, 42);
                assert_eq!(mismatch(a, len, 42), None);
                if len > 0 {
                    v[len - 1] ^= 1;
                    assert_eq!(mismatch(a, len, 42).map(|m| m.0), Some(len - 1));
                }
            }
        }
    }
}
