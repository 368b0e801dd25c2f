//! The human-readable report, shaped like the JDK's Native Memory Tracking summary: a
//! `Total:` block, one section per library (or per site, thread or size class with `by`),
//! then the top call sites with their stacks, the blocks live at exit, threads, size
//! classes, the allocator's own view and the process's regions. Sizes are in KB (1024
//! bytes, rounded to nearest).

use crate::aggregate::Figures;
use crate::snapshot::Mode;
use crate::symbols::Frame;
use crate::{By, Options, Report};
use std::fmt::Write;

/// Bytes as `NNNKB`.
pub fn kb(bytes: u64) -> String {
    format!("{}KB", bytes.saturating_add(512) / 1024)
}

/// A size as `512K`, `1M`, `3G` when it is a whole number of those, else bytes.
pub fn size_suffix(n: u64) -> String {
    for (shift, s) in [(30, "G"), (20, "M"), (10, "K")] {
        if n != 0 && n.is_multiple_of(1u64 << shift) {
            return format!("{}{s}", n >> shift);
        }
    }
    n.to_string()
}

fn mode_text(r: &Report) -> String {
    let s = &r.snapshot;
    match s.mode {
        Mode::Sample if s.interval > 0 => format!("sample:{}", size_suffix(s.interval)),
        m => m.as_str().to_string(),
    }
}

const NAME_WIDTH: usize = 26;
const INDENT: &str = "                            "; // 28: under the name's end

fn section(out: &mut String, name: &str, reserved: u64, committed: u64) {
    let _ = writeln!(
        out,
        "-{name:>NAME_WIDTH$} (reserved={}, committed={})",
        kb(reserved),
        kb(committed)
    );
}

fn fig(f: &Figures) -> String {
    format!(
        "live={} #{}, total={} #{}",
        kb(f.live_bytes),
        f.live_blocks,
        kb(f.total_bytes),
        f.total_blocks
    )
}

fn thread_label(r: &Report, slot: u64) -> String {
    match r.thread(slot) {
        Some(t) if !t.name.is_empty() => format!("thread {slot} (tid {}, {})", t.tid, t.name),
        Some(t) => format!("thread {slot} (tid {})", t.tid),
        None => format!("thread {slot}"),
    }
}

fn frames(out: &mut String, stack: &[Frame]) {
    if stack.is_empty() {
        let _ = writeln!(out, "        (no stack)");
    }
    for f in stack {
        for l in f.display_lines() {
            let _ = writeln!(out, "        {l}");
        }
    }
}

/// Header, `Total:` block and the sections (per library unless `opts.by` says otherwise).
pub fn summary(r: &Report, opts: &Options) -> String {
    let s = &r.snapshot;
    let a = &r.aggregate;
    let t = &a.totals;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Native Memory Tracking (oxmalloc, mode {}, pid {}, {})",
        mode_text(r),
        s.pid,
        s.exe
    );
    let _ = writeln!(
        out,
        "(snapshot {} of {}, reason {}, {:.3} s after start)",
        s.seq,
        s.path.display(),
        if s.reason.is_empty() { "?" } else { &s.reason },
        s.uptime
    );
    if s.mode == Mode::Sample && s.interval > 0 {
        let _ = writeln!(
            out,
            "(sampled: live figures are estimates from the samples; the totals allocated per thread and size class are exact)"
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Total: reserved={}, committed={}",
        kb(t.reserved),
        kb(t.committed)
    );
    let _ = writeln!(
        out,
        "       malloc: {} #{}",
        kb(t.malloc_bytes),
        t.malloc_blocks
    );
    let _ = writeln!(
        out,
        "       mmap: reserved={}, committed={}",
        kb(t.mmap_reserved),
        kb(t.mmap_committed)
    );
    let _ = writeln!(out);

    let top = opts.top;
    match opts.by.unwrap_or(By::Library) {
        By::Library => {
            for l in a.libraries.iter().take(top) {
                section(&mut out, &l.name, l.reserved(), l.committed());
                let _ = writeln!(
                    out,
                    "{INDENT}(malloc={} #{})",
                    kb(l.malloc.live_bytes),
                    l.malloc.live_blocks
                );
                if l.mmap_reserved > 0 {
                    let _ = writeln!(
                        out,
                        "{INDENT}(mmap: reserved={}, committed={})",
                        kb(l.mmap_reserved),
                        kb(l.mmap_committed)
                    );
                }
                let _ = writeln!(out);
            }
            more(&mut out, a.libraries.len(), top, "libraries");
        }
        By::Site => {
            for x in a.sites.iter().take(top) {
                let first = r
                    .stack(x.stack)
                    .iter()
                    .find(|f| !crate::aggregate::is_plumbing(f))
                    .map(Frame::display)
                    .unwrap_or_else(|| x.library.clone());
                let name = format!("site {} {first}", x.id);
                section(&mut out, &name, x.figures.live_bytes, x.figures.live_bytes);
                malloc_lines(&mut out, &x.figures);
            }
            more(&mut out, a.sites.len(), top, "sites");
        }
        By::Thread => {
            for x in a.threads.iter().take(top) {
                let name = thread_label(r, x.slot);
                section(&mut out, &name, x.figures.live_bytes, x.figures.live_bytes);
                malloc_lines(&mut out, &x.figures);
            }
            more(&mut out, a.threads.len(), top, "threads");
        }
        By::Size => {
            let mut sizes: Vec<_> = a
                .sizes
                .iter()
                .filter(|c| c.figures.total_blocks > 0)
                .collect();
            sizes.sort_by(|x, y| {
                (y.figures.live_bytes, x.class).cmp(&(x.figures.live_bytes, y.class))
            });
            let n = sizes.len();
            for c in sizes.into_iter().take(top) {
                let name = format!("size {}..{}", c.min, c.max);
                section(&mut out, &name, c.figures.live_bytes, c.figures.live_bytes);
                malloc_lines(&mut out, &c.figures);
            }
            more(&mut out, n, top, "size classes");
        }
    }
    out
}

fn malloc_lines(out: &mut String, f: &Figures) {
    let _ = writeln!(
        out,
        "{INDENT}(malloc={} #{})",
        kb(f.live_bytes),
        f.live_blocks
    );
    let _ = writeln!(
        out,
        "{INDENT}(allocated in all={} #{})",
        kb(f.total_bytes),
        f.total_blocks
    );
    let _ = writeln!(out);
}

fn more(out: &mut String, n: usize, top: usize, what: &str) {
    if n > top {
        let _ = writeln!(out, "({} more {what}; see --top)", n - top);
        let _ = writeln!(out);
    }
}

/// The whole text report.
pub fn render(r: &Report, opts: &Options) -> String {
    let s = &r.snapshot;
    let a = &r.aggregate;
    let top = opts.top;
    let mut out = summary(r, opts);

    // Top call sites.
    let live: Vec<_> = a
        .sites
        .iter()
        .filter(|x| x.figures.live_bytes > 0 || x.figures.live_blocks > 0)
        .collect();
    let _ = writeln!(
        out,
        "Top call sites (live): {} of {} sites with live blocks ({} sites in all)",
        live.len().min(top),
        live.len(),
        a.sites.len()
    );
    let _ = writeln!(out);
    for (i, x) in live.iter().take(top).enumerate() {
        let _ = writeln!(
            out,
            "[{}] site {}: {}, {}, library {}",
            i + 1,
            x.id,
            fig(&x.figures),
            thread_label(r, x.slot),
            x.library
        );
        frames(&mut out, r.stack(x.stack));
        let _ = writeln!(out);
    }

    // Blocks live at exit, by stack.
    if s.mode != Mode::Summary && s.reason == "exit" {
        let stacks: Vec<_> = a
            .stacks
            .iter()
            .filter(|x| x.figures.live_blocks > 0)
            .collect();
        let est = if s.mode == Mode::Sample {
            " (estimated)"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "Live blocks at exit{est}: {} stacks, {} #{}",
            stacks.len(),
            kb(stacks.iter().map(|x| x.figures.live_bytes).sum()),
            stacks.iter().map(|x| x.figures.live_blocks).sum::<u64>()
        );
        let _ = writeln!(out);
        for x in stacks.iter().take(top) {
            let _ = writeln!(
                out,
                "{} in {} blocks, stack {}, library {}",
                kb(x.figures.live_bytes),
                x.figures.live_blocks,
                x.stack,
                x.library
            );
            frames(&mut out, r.stack(x.stack));
            let _ = writeln!(out);
        }
        more(&mut out, stacks.len(), top, "stacks");
    }

    // Threads.
    let _ = writeln!(out, "Threads: {}", a.threads.len());
    let _ = writeln!(
        out,
        "  {:>5} {:>8}  {:<16} {:>20} {:>22}",
        "slot", "tid", "name", "live", "total"
    );
    for t in a.threads.iter().take(top) {
        let _ = writeln!(
            out,
            "  {:>5} {:>8}  {:<16} {:>20} {:>22}",
            t.slot,
            t.tid.map_or("?".to_string(), |x| x.to_string()),
            t.name.as_deref().unwrap_or(""),
            format!("{} #{}", kb(t.figures.live_bytes), t.figures.live_blocks),
            format!("{} #{}", kb(t.figures.total_bytes), t.figures.total_blocks),
        );
    }
    more(&mut out, a.threads.len(), top, "threads");
    let _ = writeln!(out);

    // Size classes.
    let _ = writeln!(
        out,
        "Size classes (requested sizes; exact{}):",
        if a.totals.live_estimated {
            "; live not kept in sample mode"
        } else {
            ""
        }
    );
    let _ = writeln!(
        out,
        "  {:>5} {:>24} {:>20} {:>22}",
        "class", "sizes", "live", "total"
    );
    for c in a.sizes.iter().filter(|c| c.figures.total_blocks > 0) {
        let _ = writeln!(
            out,
            "  {:>5} {:>24} {:>20} {:>22}",
            c.class,
            format!("{}..{}", c.min, c.max),
            if a.totals.live_estimated {
                "-".to_string()
            } else {
                format!("{} #{}", kb(c.figures.live_bytes), c.figures.live_blocks)
            },
            format!("{} #{}", kb(c.figures.total_bytes), c.figures.total_blocks),
        );
    }
    let _ = writeln!(out);

    // The allocator.
    let al = &a.allocator;
    let t = &s.totals;
    let _ = writeln!(out, "Allocator:");
    let _ = writeln!(
        out,
        "  held by oxmalloc: {} (arenas {}, mmapped chunks {} in {})",
        kb(al.held),
        kb(al.arena_system),
        kb(al.mmapped_bytes),
        al.mmapped_chunks
    );
    let live = a.totals.malloc_bytes;
    if a.totals.live_estimated {
        let _ = writeln!(
            out,
            "  live requested: about {} #{} (estimated from the samples; allocated in all {} #{})",
            kb(live),
            a.totals.malloc_blocks,
            kb(t.total_bytes),
            t.total_blocks
        );
    } else {
        let _ = writeln!(
            out,
            "  live requested: {} #{} (peak {} #{}; allocated in all {} #{})",
            kb(live),
            t.live_blocks,
            kb(t.peak_bytes),
            t.peak_blocks,
            kb(t.total_bytes),
            t.total_blocks
        );
    }
    let _ = writeln!(
        out,
        "  held but not requested: {}{}",
        if a.totals.live_estimated {
            "about "
        } else {
            ""
        },
        kb(al.held.saturating_sub(live))
    );
    let _ = writeln!(
        out,
        "  free in arenas: {} (fast bins {}, tops {})",
        kb(al.arena_free),
        kb(al.arena_fast),
        kb(al.arena_top)
    );
    for ar in &s.arenas {
        let _ = writeln!(
            out,
            "    arena {}: system={}, in use={}, free={}, fast={}, top={}",
            ar.index,
            kb(ar.system_bytes),
            kb(ar.in_use_bytes),
            kb(ar.free_bytes),
            kb(ar.fast_bytes),
            kb(ar.top_bytes)
        );
    }
    let _ = writeln!(
        out,
        "  resident (regions of kind oxmalloc): {}",
        kb(al.resident)
    );
    let _ = writeln!(out, "  malloc_trim would give back: {}", kb(al.trimmable));
    let _ = writeln!(
        out,
        "  tracker's own memory: mapped={}, resident={}",
        kb(al.tracker_mapped),
        kb(al.tracker_resident)
    );
    let _ = writeln!(out);

    // Regions.
    let _ = writeln!(out, "Regions:");
    let _ = writeln!(
        out,
        "  {:<14} {:>7} {:>14} {:>14}",
        "kind", "count", "reserved", "rss"
    );
    for k in &a.regions {
        let _ = writeln!(
            out,
            "  {:<14} {:>7} {:>14} {:>14}",
            k.kind,
            k.count,
            kb(k.reserved),
            kb(k.rss)
        );
    }
    out
}
