//! Stack capture inside malloc: a small DWARF unwinder of our own for x86-64.
//!
//! Each frame's rule (where the CFA is — rsp or rbp plus an offset — and where rbp was saved;
//! the return address is at CFA − 8) comes from the module's `.eh_frame`, found through
//! glibc's `_dl_find_object` (lock-free, no dynamic-loader lock, no malloc) and its
//! `.eh_frame_hdr` binary-search table, evaluated with gimli (no_std, no alloc, fixed storage
//! on the stack). Rules are cached by address in a lock-free table, so a stack seen before
//! costs a few loads per frame. Libraries built without frame pointers (Debian's libc, libz,
//! libstdc++, libjvm, libpython) unwind like any other. The walk stops at an address without
//! unwind information (JIT code), at a frame whose rule is not of that simple shape (signal
//! frames), where the return address is undefined (`_start`, a thread's first frame), or when
//! the CFA leaves the stack's plausible range.
//!
//! Limit: a library dlclosed and another loaded at the same addresses may reuse stale rules
//! for those addresses (the cache is not flushed on dlclose).

use core::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering::*};
use gimli::{
    BaseAddresses, CfaRule, EhFrame, EhFrameHdr, LittleEndian, Pointer, Register, RegisterRule,
    UnwindContext, UnwindContextStorage, UnwindSection, UnwindTableRow, X86_64,
};

pub const MAX_FRAMES: usize = 64;
/// The CFA may not move further than this from the first frame's stack pointer.
const MAX_STACK: usize = 256 << 20;

/// The text range of this library (frames in it are the allocator's, not the program's).
static OWN_START: AtomicUsize = AtomicUsize::new(0);
static OWN_END: AtomicUsize = AtomicUsize::new(0);

// ---------------------------------------------------------------- rule cache

const CACHE_BITS: u32 = 16;
const CACHE: usize = 1 << CACHE_BITS;
/// (pc, packed rule) pairs; a reader checks the pc before and after reading the rule.
static RULES: AtomicPtr<[AtomicU64; 2]> = AtomicPtr::new(core::ptr::null_mut());

/// "No unwind information here": the walk stops.
const NONE: u64 = 2;

#[derive(Clone, Copy)]
struct Rule {
    cfa_rbp: bool,
    cfa_off: i32,
    rbp_off: Option<i16>,
    /// The frame's module may be allocation plumbing (see [`plumbing_name`]).
    plumbing: bool,
}

fn pack(r: Rule) -> u64 {
    1 | (r.cfa_rbp as u64) << 1
        | (r.rbp_off.is_some() as u64) << 2
        | (r.plumbing as u64) << 3
        | (r.cfa_off as u32 as u64) << 8
        | (r.rbp_off.unwrap_or(0) as u16 as u64) << 40
}

fn unpack(v: u64) -> Option<Rule> {
    if v & 1 == 0 {
        return None;
    }
    Some(Rule {
        cfa_rbp: v & 2 != 0,
        cfa_off: (v >> 8) as u32 as i32,
        rbp_off: (v & 4 != 0).then_some((v >> 40) as u16 as i16),
        plumbing: v & 8 != 0,
    })
}

fn slot_of(pc: usize) -> usize {
    ((pc as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - CACHE_BITS)) as usize
}

fn cached(pc: usize) -> Option<u64> {
    let t = RULES.load(Relaxed);
    if t.is_null() {
        return None;
    }
    // SAFETY: the table has CACHE entries; slot_of is below that.
    let e = unsafe { &*t.add(slot_of(pc)) };
    if e[0].load(Acquire) != pc as u64 {
        return None;
    }
    let v = e[1].load(Acquire);
    (e[0].load(Acquire) == pc as u64).then_some(v)
}

fn remember(pc: usize, v: u64) {
    let t = RULES.load(Relaxed);
    if t.is_null() {
        return;
    }
    // SAFETY: as in cached.
    let e = unsafe { &*t.add(slot_of(pc)) };
    e[0].store(0, Release);
    e[1].store(v, Release);
    e[0].store(pc as u64, Release);
}

// ---------------------------------------------------------------- rules from .eh_frame

#[repr(C)]
struct DlFindObject {
    flags: u64,
    map_start: *mut libc::c_void,
    map_end: *mut libc::c_void,
    link_map: *mut libc::c_void,
    eh_frame: *mut libc::c_void,
    reserved: [u64; 7],
}

extern "C" {
    /// glibc 2.35+: the module containing `pc` and its PT_GNU_EH_FRAME, without locks.
    fn _dl_find_object(pc: *mut libc::c_void, result: *mut DlFindObject) -> libc::c_int;
}

/// gimli's unwind context in fixed storage on the stack (x86-64 frames save few registers).
struct Small;
impl UnwindContextStorage<usize> for Small {
    type Rules = [(Register, RegisterRule<usize>); 24];
    type Stack = [UnwindTableRow<usize, Self>; 3];
}

fn rule_from_row(row: &UnwindTableRow<usize, Small>) -> Option<Rule> {
    let (cfa_rbp, cfa_off) = match *row.cfa() {
        CfaRule::RegisterAndOffset { register, offset } if register == X86_64::RSP => {
            (false, offset)
        }
        CfaRule::RegisterAndOffset { register, offset } if register == X86_64::RBP => {
            (true, offset)
        }
        _ => return None,
    };
    match row.register(X86_64::RA) {
        RegisterRule::Offset(-8) => {}
        _ => return None,
    }
    let rbp_off = match row.register(X86_64::RBP) {
        RegisterRule::Offset(o) => Some(i16::try_from(o).ok()?),
        RegisterRule::Undefined | RegisterRule::SameValue => None,
        _ => return None,
    };
    Some(Rule {
        cfa_rbp,
        cfa_off: i32::try_from(cfa_off).ok()?,
        rbp_off,
        plumbing: false,
    })
}

/// Whether a module (by path) may hold allocation plumbing: the C library, the loader, this
/// library, libgcc_s, and libstdc++ (operator new). A conservative superset of the reader's
/// list (which also looks at function names), so a walk that stops at the first frame outside
/// these has always passed the calling library's frame.
fn plumbing_name(path: &[u8]) -> bool {
    let base = match path.iter().rposition(|&c| c == b'/') {
        Some(i) => &path[i + 1..],
        None => path,
    };
    [
        &b"libc.so"[..],
        b"ld-linux",
        b"liboxmalloc",
        b"libgcc_s",
        b"libstdc++",
    ]
    .iter()
    .any(|p| base.starts_with(p))
}

/// The path of a glibc link map (its `l_name`, the second word), empty for the program.
///
/// # Safety
/// `lm` is null or a live `struct link_map` from `_dl_find_object`.
unsafe fn link_map_name(lm: *const libc::c_void) -> &'static [u8] {
    if lm.is_null() {
        return b"";
    }
    // SAFETY: l_name follows l_addr in every glibc's struct link_map; it is a C string the
    // loader keeps while the module is loaded.
    unsafe {
        let name = *(lm as *const *const libc::c_char).add(1);
        if name.is_null() {
            return b"";
        }
        core::ffi::CStr::from_ptr(name).to_bytes()
    }
}

fn lookup(pc: usize) -> Option<Rule> {
    let mut f = DlFindObject {
        flags: 0,
        map_start: core::ptr::null_mut(),
        map_end: core::ptr::null_mut(),
        link_map: core::ptr::null_mut(),
        eh_frame: core::ptr::null_mut(),
        reserved: [0; 7],
    };
    // SAFETY: f is a valid result buffer of glibc's layout.
    if unsafe { _dl_find_object(pc as *mut libc::c_void, &mut f) } != 0 || f.eh_frame.is_null() {
        return None;
    }
    let hdr = f.eh_frame as usize;
    let end = f.map_end as usize;
    if end <= hdr {
        return None;
    }
    // SAFETY: [hdr, map_end) lies inside the module's mapping (glibc says where it ends).
    let hdr_data = unsafe { core::slice::from_raw_parts(hdr as *const u8, end - hdr) };
    let bases = BaseAddresses::default().set_eh_frame_hdr(hdr as u64);
    let parsed = EhFrameHdr::new(hdr_data, LittleEndian)
        .parse(&bases, 8)
        .ok()?;
    let Pointer::Direct(ehf) = parsed.eh_frame_ptr() else {
        return None;
    };
    let ehf = ehf as usize;
    if ehf < f.map_start as usize || ehf >= end {
        return None;
    }
    // SAFETY: as above, [ehf, map_end) is inside the module's mapping.
    let ehf_data = unsafe { core::slice::from_raw_parts(ehf as *const u8, end - ehf) };
    let eh_frame = EhFrame::new(ehf_data, LittleEndian);
    let bases = bases.set_eh_frame(ehf as u64);
    let table = parsed.table()?;
    let mut ctx = UnwindContext::<usize, Small>::new_in();
    let row = table
        .unwind_info_for_address(&eh_frame, &bases, &mut ctx, pc as u64, |s, b, o| {
            s.cie_from_offset(b, o)
        })
        .ok()?;
    let mut r = rule_from_row(row)?;
    // SAFETY: the link map _dl_find_object returned for a loaded module.
    r.plumbing = plumbing_name(unsafe { link_map_name(f.link_map) });
    Some(r)
}

fn rule_for(pc: usize) -> Option<Rule> {
    if let Some(v) = cached(pc) {
        return unpack(v);
    }
    let r = lookup(pc);
    remember(pc, r.map(pack).unwrap_or(NONE));
    r
}

// ---------------------------------------------------------------- the walk

#[inline]
fn read(addr: usize, lo: usize, hi: usize) -> Option<usize> {
    if addr < lo || addr + 8 > hi || addr & 7 != 0 {
        return None;
    }
    // SAFETY: within the current thread's stack as far as the walk can tell (between the
    // first frame's stack pointer and MAX_STACK above it, below every CFA seen so far).
    Some(unsafe { core::ptr::read_volatile(addr as *const usize) })
}

/// Fills the start of `out` with up to `out.len()` return addresses, innermost first (frames in this
/// library dropped); returns how many. The walk starts at `origin` (a point in the engine:
/// the recorder's and the hook's frames are not walked) or, without one, here. `to_caller`:
/// stop after the first frame outside the plumbing modules (the calling library's frame).
#[inline(never)]
pub fn capture(
    out: &mut [core::mem::MaybeUninit<usize>],
    origin: Option<&oxmalloc_core::hooks::Origin>,
    to_caller: bool,
) -> usize {
    let (mut pc, mut sp, mut fp): (usize, usize, usize);
    match origin {
        Some(o) => (pc, sp, fp) = (o.pc, o.sp, o.fp),
        // SAFETY: reads the instruction pointer, stack pointer and rbp; changes nothing.
        None => unsafe {
            core::arch::asm!(
                "lea {pc}, [rip]",
                "mov {sp}, rsp",
                "mov {fp}, rbp",
                pc = out(reg) pc,
                sp = out(reg) sp,
                fp = out(reg) fp,
                options(nomem, nostack, preserves_flags),
            );
        },
    }
    let lo = sp;
    let hi = sp.saturating_add(MAX_STACK);
    let own = (OWN_START.load(Relaxed), OWN_END.load(Relaxed));
    let mut n = 0;
    let mut first = true;
    while n < out.len() {
        // a return address points after the call: look up the call itself
        let Some(r) = rule_for(if first { pc } else { pc - 1 }) else {
            break;
        };
        if to_caller && n > 0 && !r.plumbing {
            break; // out[n - 1] is the calling library's frame
        }
        first = false;
        let base = if r.cfa_rbp { fp } else { sp };
        let cfa = (base as isize).wrapping_add(r.cfa_off as isize) as usize;
        if cfa <= sp || cfa > hi {
            break;
        }
        let Some(ra) = read(cfa - 8, lo, hi) else {
            break;
        };
        if let Some(o) = r.rbp_off {
            let Some(v) = read((cfa as isize + o as isize) as usize, lo, hi) else {
                break;
            };
            fp = v;
        }
        sp = cfa;
        pc = ra;
        if pc < 4096 {
            break;
        }
        if n == 0 && pc >= own.0 && pc < own.1 {
            continue; // still inside the allocator
        }
        out[n].write(pc);
        n += 1;
    }
    n
}

struct Find {
    addr: usize,
    lo: usize,
    hi: usize,
}

unsafe extern "C" fn find_own(
    info: *mut libc::dl_phdr_info,
    _size: libc::size_t,
    arg: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: glibc passes a valid dl_phdr_info; arg is the Find below.
    unsafe {
        let f = &mut *(arg as *mut Find);
        let i = &*info;
        let (mut lo, mut hi) = (usize::MAX, 0usize);
        for k in 0..i.dlpi_phnum as usize {
            let ph = &*i.dlpi_phdr.add(k);
            if ph.p_type == libc::PT_LOAD && ph.p_flags & libc::PF_X != 0 {
                let s = i.dlpi_addr as usize + ph.p_vaddr as usize;
                lo = lo.min(s);
                hi = hi.max(s + ph.p_memsz as usize);
            }
        }
        if f.addr >= lo && f.addr < hi {
            f.lo = lo;
            f.hi = hi;
            return 1;
        }
        0
    }
}

/// Finds this library's executable range and reserves the rule cache (once, at start-up:
/// dl_iterate_phdr takes the loader's lock, which is fine in a constructor and never done on
/// the hot path).
pub fn init() -> bool {
    let mut f = Find {
        addr: capture as *const () as usize,
        lo: 0,
        hi: 0,
    };
    // SAFETY: find_own only reads the program headers glibc hands it.
    unsafe { libc::dl_iterate_phdr(Some(find_own), &mut f as *mut Find as *mut libc::c_void) };
    OWN_START.store(f.lo, Relaxed);
    OWN_END.store(f.hi, Relaxed);
    match crate::mem::reserve(CACHE * 16) {
        Some(p) => {
            RULES.store(p as *mut [AtomicU64; 2], Release);
            true
        }
        None => false,
    }
}
