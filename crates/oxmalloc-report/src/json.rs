//! The JSON report (schema in docs/tracking.md, "JSON schema"): everything the text report
//! has, unabridged, as one object. Frames are expanded: one entry per inlined call.

use crate::aggregate::Figures;
use crate::symbols::Frame;
use crate::{Error, Report};
use serde::Serialize;

/// Version of this JSON schema (not of the snapshot format).
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Serialize)]
struct Doc<'a> {
    schema: u32,
    process: Process<'a>,
    totals: Totals,
    libraries: Vec<Library<'a>>,
    sites: Vec<Site<'a>>,
    threads: Vec<Thread<'a>>,
    size_classes: Vec<SizeClass>,
    allocator: Allocator,
    arenas: Vec<Arena>,
    regions: Vec<Region<'a>>,
    maps: Vec<Map<'a>>,
}

#[derive(Serialize)]
struct Process<'a> {
    pid: u64,
    ppid: u64,
    exe: &'a str,
    cmdline: &'a str,
    mode: &'a str,
    interval: u64,
    reason: &'a str,
    seq: u64,
    time: String,
    uptime: f64,
    snapshot: String,
}

#[derive(Serialize)]
struct Totals {
    reserved: u64,
    committed: u64,
    malloc_live_bytes: u64,
    malloc_live_blocks: u64,
    /// true in sample mode: the live figures are estimates, peaks null.
    live_estimated: bool,
    peak_bytes: Option<u64>,
    peak_blocks: Option<u64>,
    total_bytes: u64,
    total_blocks: u64,
    mmap_reserved: u64,
    mmap_committed: u64,
}

#[derive(Serialize)]
struct Library<'a> {
    name: &'a str,
    live_bytes: u64,
    live_blocks: u64,
    total_bytes: u64,
    total_blocks: u64,
    mmap_reserved: u64,
    mmap_committed: u64,
}

#[derive(Serialize)]
struct Site<'a> {
    id: u64,
    stack: u64,
    library: &'a str,
    thread: u64,
    live_bytes: u64,
    live_blocks: u64,
    total_bytes: u64,
    total_blocks: u64,
    frames: Vec<JFrame<'a>>,
}

#[derive(Serialize)]
struct JFrame<'a> {
    ip: u64,
    library: &'a str,
    offset: u64,
    function: Option<&'a str>,
    file: Option<&'a str>,
    line: Option<u32>,
    inlined: bool,
}

#[derive(Serialize)]
struct Thread<'a> {
    slot: u64,
    tid: Option<u64>,
    name: Option<&'a str>,
    live_bytes: u64,
    live_blocks: u64,
    total_bytes: u64,
    total_blocks: u64,
}

#[derive(Serialize)]
struct SizeClass {
    class: u32,
    min: u64,
    max: u64,
    /// null in sample mode (not kept).
    live_bytes: Option<u64>,
    live_blocks: Option<u64>,
    total_bytes: u64,
    total_blocks: u64,
}

#[derive(Serialize)]
struct Allocator {
    held: u64,
    mmapped_bytes: u64,
    mmapped_chunks: u64,
    resident: u64,
    trimmable: u64,
    tracker_mapped: u64,
    tracker_resident: u64,
}

#[derive(Serialize)]
struct Arena {
    index: u64,
    system_bytes: u64,
    in_use_bytes: u64,
    free_bytes: u64,
    fast_bytes: u64,
    top_bytes: u64,
}

#[derive(Serialize)]
struct Region<'a> {
    start: u64,
    end: u64,
    perms: &'a str,
    rss: u64,
    kind: &'a str,
    path: Option<&'a str>,
}

#[derive(Serialize)]
struct Map<'a> {
    start: u64,
    len: u64,
    prot: &'a str,
    flags: &'a str,
    site: Option<u64>,
    library: &'a str,
    committed: u64,
}

/// Expanded frames: per IP its inlined calls (innermost first, `inlined: true`), then the
/// frame's own function.
fn frames(stack: &[Frame]) -> Vec<JFrame<'_>> {
    let mut out = Vec::new();
    for f in stack {
        let n = f.lines.len();
        if n == 0 {
            out.push(JFrame {
                ip: f.ip,
                library: &f.library,
                offset: f.offset,
                function: None,
                file: None,
                line: None,
                inlined: false,
            });
        }
        for (i, l) in f.lines.iter().enumerate() {
            out.push(JFrame {
                ip: f.ip,
                library: &f.library,
                offset: f.offset,
                function: l.function.as_deref(),
                file: l.file.as_deref(),
                line: l.line,
                inlined: i + 1 < n,
            });
        }
    }
    out
}

fn figs(f: &Figures) -> (u64, u64, u64, u64) {
    (f.live_bytes, f.live_blocks, f.total_bytes, f.total_blocks)
}

pub fn render(r: &Report) -> Result<Vec<u8>, Error> {
    let s = &r.snapshot;
    let a = &r.aggregate;
    let doc = Doc {
        schema: SCHEMA_VERSION,
        process: Process {
            pid: s.pid,
            ppid: s.ppid,
            exe: &s.exe,
            cmdline: &s.cmdline,
            mode: s.mode.as_str(),
            interval: s.interval,
            reason: &s.reason,
            seq: s.seq,
            time: format!("{}.{:09}", s.time.secs, s.time.nanos),
            uptime: s.uptime,
            snapshot: s.path.display().to_string(),
        },
        totals: Totals {
            reserved: a.totals.reserved,
            committed: a.totals.committed,
            malloc_live_bytes: a.totals.malloc_bytes,
            malloc_live_blocks: a.totals.malloc_blocks,
            live_estimated: a.totals.live_estimated,
            peak_bytes: (!a.totals.live_estimated).then_some(s.totals.peak_bytes),
            peak_blocks: (!a.totals.live_estimated).then_some(s.totals.peak_blocks),
            total_bytes: s.totals.total_bytes,
            total_blocks: s.totals.total_blocks,
            mmap_reserved: a.totals.mmap_reserved,
            mmap_committed: a.totals.mmap_committed,
        },
        libraries: a
            .libraries
            .iter()
            .map(|l| {
                let (live_bytes, live_blocks, total_bytes, total_blocks) = figs(&l.malloc);
                Library {
                    name: &l.name,
                    live_bytes,
                    live_blocks,
                    total_bytes,
                    total_blocks,
                    mmap_reserved: l.mmap_reserved,
                    mmap_committed: l.mmap_committed,
                }
            })
            .collect(),
        sites: a
            .sites
            .iter()
            .map(|x| {
                let (live_bytes, live_blocks, total_bytes, total_blocks) = figs(&x.figures);
                Site {
                    id: x.id,
                    stack: x.stack,
                    library: &x.library,
                    thread: x.slot,
                    live_bytes,
                    live_blocks,
                    total_bytes,
                    total_blocks,
                    frames: frames(r.stack(x.stack)),
                }
            })
            .collect(),
        threads: a
            .threads
            .iter()
            .map(|t| {
                let (live_bytes, live_blocks, total_bytes, total_blocks) = figs(&t.figures);
                Thread {
                    slot: t.slot,
                    tid: t.tid,
                    name: t.name.as_deref(),
                    live_bytes,
                    live_blocks,
                    total_bytes,
                    total_blocks,
                }
            })
            .collect(),
        size_classes: a
            .sizes
            .iter()
            .map(|c| {
                let (live_bytes, live_blocks, total_bytes, total_blocks) = figs(&c.figures);
                let known = !a.totals.live_estimated;
                SizeClass {
                    class: c.class,
                    min: c.min,
                    max: c.max,
                    live_bytes: known.then_some(live_bytes),
                    live_blocks: known.then_some(live_blocks),
                    total_bytes,
                    total_blocks,
                }
            })
            .collect(),
        allocator: Allocator {
            held: a.allocator.held,
            mmapped_bytes: a.allocator.mmapped_bytes,
            mmapped_chunks: a.allocator.mmapped_chunks,
            resident: a.allocator.resident,
            trimmable: a.allocator.trimmable,
            tracker_mapped: a.allocator.tracker_mapped,
            tracker_resident: a.allocator.tracker_resident,
        },
        arenas: s
            .arenas
            .iter()
            .map(|x| Arena {
                index: x.index,
                system_bytes: x.system_bytes,
                in_use_bytes: x.in_use_bytes,
                free_bytes: x.free_bytes,
                fast_bytes: x.fast_bytes,
                top_bytes: x.top_bytes,
            })
            .collect(),
        regions: s
            .regions
            .iter()
            .map(|x| Region {
                start: x.start,
                end: x.end,
                perms: &x.perms,
                rss: x.rss_kb * 1024,
                kind: &x.kind,
                path: x.path.as_deref(),
            })
            .collect(),
        maps: a
            .maps
            .iter()
            .map(|m| Map {
                start: m.map.start,
                len: m.map.len,
                prot: &m.map.prot,
                flags: &m.map.flags,
                site: m.map.site,
                library: &m.library,
                committed: m.committed,
            })
            .collect(),
    };
    let mut out = serde_json::to_vec_pretty(&doc).map_err(|e| Error::Output {
        message: format!("cannot encode the JSON report: {e}"),
    })?;
    out.push(b'\n');
    Ok(out)
}
