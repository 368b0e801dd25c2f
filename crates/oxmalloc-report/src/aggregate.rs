//! Figures from a snapshot and its symbolised stacks: per site, per calling library, per
//! thread, per size class, per stack, per region kind; the process totals and the
//! allocator's own view. Sample-mode sites are scaled to estimates here.
//!
//! The *calling library* of a stack is the library of its first frame (innermost first)
//! that is not allocator plumbing ([`is_plumbing`]); a stack made of plumbing only belongs to
//! its outermost frame's library, an empty one to `[unknown]`.

use crate::snapshot::{Map, Mode, Snapshot};
use crate::symbols::{Frame, UNKNOWN_LIBRARY};
use std::collections::{BTreeMap, HashMap};

/// Live and total bytes and blocks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Figures {
    pub live_bytes: u64,
    pub live_blocks: u64,
    pub total_bytes: u64,
    pub total_blocks: u64,
}

impl Figures {
    pub fn add(&mut self, o: &Figures) {
        self.live_bytes += o.live_bytes;
        self.live_blocks += o.live_blocks;
        self.total_bytes += o.total_bytes;
        self.total_blocks += o.total_blocks;
    }

    /// Exact figures from allocation and free counters.
    pub fn from_counts(allocs: u64, alloc_bytes: u64, frees: u64, free_bytes: u64) -> Self {
        Figures {
            live_bytes: alloc_bytes.saturating_sub(free_bytes),
            live_blocks: allocs.saturating_sub(frees),
            total_bytes: alloc_bytes,
            total_blocks: allocs,
        }
    }
}

/// The factor a sampled site's counters are multiplied by: with mean sampling interval `I`
/// bytes and average sampled block size `avg`, a block is sampled with probability
/// `1 - exp(-avg/I)`, so `s = 1 / (1 - exp(-avg/I))`. 1 outside sample mode.
pub fn scale_factor(allocs: u64, alloc_bytes: u64, interval: u64) -> f64 {
    if interval == 0 || allocs == 0 {
        return 1.0;
    }
    let avg = (alloc_bytes as f64 / allocs as f64).max(1.0);
    1.0 / -(-avg / interval as f64).exp_m1()
}

fn scaled(v: u64, s: f64) -> u64 {
    if s == 1.0 {
        v
    } else {
        (v as f64 * s).round() as u64
    }
}

/// Libraries whose frames are allocator plumbing, by basename prefix (`libc.so*`,
/// `ld-linux*` with `.so` in the name, `liboxmalloc.so*`, `libgcc_s*`).
pub fn is_plumbing_library(lib: &str) -> bool {
    lib.starts_with("libc.so")
        || (lib.starts_with("ld-linux") && lib.contains(".so"))
        || lib.starts_with("liboxmalloc.so")
        || lib.starts_with("libgcc_s")
}

/// Standard functions that only allocate on their caller's behalf.
pub const WRAPPERS: &[&str] = &[
    "strdup",
    "strndup",
    "__strdup",
    "__strndup",
    "realpath",
    "asprintf",
    "vasprintf",
    "open_memstream",
    "getline",
    "getdelim",
];

/// C++ `operator new`/`operator new[]` (any overload, wherever defined) or one of
/// [`WRAPPERS`], by raw symbol or demangled function name.
pub fn is_wrapper_function(f: &Frame) -> bool {
    let raw = f.symbol.as_deref().unwrap_or("");
    if raw.starts_with("_Znw") || raw.starts_with("_Zna") || WRAPPERS.contains(&raw) {
        return true;
    }
    match f.function() {
        Some(name) => name.starts_with("operator new") || WRAPPERS.contains(&name),
        None => false,
    }
}

/// A frame the calling library is looked for above.
pub fn is_plumbing(f: &Frame) -> bool {
    is_plumbing_library(&f.library) || is_wrapper_function(f)
}

/// The calling library of a stack (innermost frame first).
pub fn calling_library(frames: &[Frame]) -> &str {
    match frames.iter().find(|f| !is_plumbing(f)) {
        Some(f) => &f.library,
        None => frames.last().map_or(UNKNOWN_LIBRARY, |f| &f.library),
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteFigures {
    pub id: u64,
    pub stack: u64,
    pub slot: u64,
    pub library: String,
    pub figures: Figures,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LibraryFigures {
    pub name: String,
    /// malloc figures of the sites it is the calling library of.
    pub malloc: Figures,
    pub mmap_reserved: u64,
    pub mmap_committed: u64,
}

impl LibraryFigures {
    pub fn reserved(&self) -> u64 {
        self.malloc.live_bytes + self.mmap_reserved
    }
    pub fn committed(&self) -> u64 {
        self.malloc.live_bytes + self.mmap_committed
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadFigures {
    pub slot: u64,
    pub tid: Option<u64>,
    pub name: Option<String>,
    pub figures: Figures,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SizeFigures {
    pub class: u32,
    /// Smallest and largest request size in the class.
    pub min: u64,
    pub max: u64,
    pub figures: Figures,
}

/// Sites of one stack, all threads together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackFigures {
    pub stack: u64,
    pub library: String,
    pub figures: Figures,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapFigures {
    pub map: Map,
    pub library: String,
    /// Resident bytes: the RSS of the `program-mmap` regions it overlaps, in proportion.
    pub committed: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegionKindFigures {
    pub kind: String,
    pub count: u64,
    /// Sum of END - START.
    pub reserved: u64,
    /// Sum of RSS, bytes.
    pub rss: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllocatorFigures {
    /// Arenas' SYSTEM_BYTES plus the allocator's mmapped chunks.
    pub held: u64,
    pub arena_system: u64,
    pub arena_in_use: u64,
    pub arena_free: u64,
    pub arena_fast: u64,
    pub arena_top: u64,
    pub mmapped_bytes: u64,
    pub mmapped_chunks: u64,
    /// RSS of the regions of kind `oxmalloc`.
    pub resident: u64,
    pub trimmable: u64,
    pub tracker_mapped: u64,
    /// RSS of the regions of kind `tracker`.
    pub tracker_resident: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Held by oxmalloc plus the program's own mappings.
    pub reserved: u64,
    /// RSS of the oxmalloc and program-mmap regions.
    pub committed: u64,
    /// Live requested bytes and blocks: the `totals` record (exact), or in sample mode the
    /// sum of the sites' estimates (the recorder keeps no exact live figures there).
    pub malloc_bytes: u64,
    pub malloc_blocks: u64,
    /// Whether the live figures are estimates (sample mode): then the size classes' live
    /// figures and the peaks are not known.
    pub live_estimated: bool,
    pub mmap_reserved: u64,
    pub mmap_committed: u64,
}

/// Everything the formats print, sorted largest first.
#[derive(Clone, Debug, Default)]
pub struct Aggregate {
    pub totals: Totals,
    /// By live bytes, then total bytes, then id.
    pub sites: Vec<SiteFigures>,
    /// By reserved, then name.
    pub libraries: Vec<LibraryFigures>,
    /// By live bytes, then slot.
    pub threads: Vec<ThreadFigures>,
    /// By class.
    pub sizes: Vec<SizeFigures>,
    /// By live bytes, then stack id.
    pub stacks: Vec<StackFigures>,
    /// By length, then start.
    pub maps: Vec<MapFigures>,
    /// By reserved, then kind.
    pub regions: Vec<RegionKindFigures>,
    pub allocator: AllocatorFigures,
}

fn region_rss(s: &Snapshot, kind: &str) -> u64 {
    s.regions
        .iter()
        .filter(|r| r.kind == kind)
        .map(|r| r.rss_kb * 1024)
        .sum()
}

impl Aggregate {
    /// `frames`: the symbolised frames of each stack id (a stack id without an entry
    /// counts as an empty stack).
    pub fn new(s: &Snapshot, frames: &BTreeMap<u64, Vec<Frame>>) -> Aggregate {
        let interval = if s.mode == Mode::Sample {
            s.interval
        } else {
            0
        };
        let empty = Vec::new();
        let stack_library = |stack: u64| -> String {
            calling_library(frames.get(&stack).unwrap_or(&empty)).to_string()
        };

        // Sites.
        let mut sites: Vec<SiteFigures> = s
            .sites
            .iter()
            // A site that never counted anything (the recorder's placeholder) says nothing.
            .filter(|site| site.allocs != 0 || site.frees != 0)
            .map(|site| {
                let k = scale_factor(site.allocs, site.alloc_bytes, interval);
                let exact = Figures::from_counts(
                    site.allocs,
                    site.alloc_bytes,
                    site.frees,
                    site.free_bytes,
                );
                SiteFigures {
                    id: site.id,
                    stack: site.stack,
                    slot: site.slot,
                    library: stack_library(site.stack),
                    figures: Figures {
                        live_bytes: scaled(exact.live_bytes, k),
                        live_blocks: scaled(exact.live_blocks, k),
                        total_bytes: scaled(exact.total_bytes, k),
                        total_blocks: scaled(exact.total_blocks, k),
                    },
                }
            })
            .collect();
        sites.sort_by(|a, b| {
            (b.figures.live_bytes, b.figures.total_bytes, a.id).cmp(&(
                a.figures.live_bytes,
                a.figures.total_bytes,
                b.id,
            ))
        });

        // Maps and their resident part.
        let site_stack: HashMap<u64, u64> = s.sites.iter().map(|x| (x.id, x.stack)).collect();
        let mut maps: Vec<MapFigures> = s
            .maps
            .iter()
            .map(|m| {
                let library = match m.site.and_then(|id| site_stack.get(&id)) {
                    Some(&stack) => stack_library(stack),
                    None => UNKNOWN_LIBRARY.to_string(),
                };
                let (a, b) = (m.start, m.start.saturating_add(m.len));
                let committed: u128 = s
                    .regions
                    .iter()
                    .filter(|r| r.kind == "program-mmap" && r.end > r.start)
                    .map(|r| {
                        let lo = a.max(r.start);
                        let hi = b.min(r.end);
                        if hi <= lo {
                            return 0;
                        }
                        // (to the nearest byte: a region that holds exactly this map then
                        // gives exactly its RSS)
                        let len = (r.end - r.start) as u128;
                        (r.rss_kb as u128 * 1024 * (hi - lo) as u128 + len / 2) / len
                    })
                    .sum();
                MapFigures {
                    map: m.clone(),
                    library,
                    committed: committed as u64,
                }
            })
            .collect();
        maps.sort_by(|x, y| (y.map.len, x.map.start).cmp(&(x.map.len, y.map.start)));

        // Libraries.
        let mut libs: BTreeMap<String, LibraryFigures> = BTreeMap::new();
        for site in &sites {
            let l = libs.entry(site.library.clone()).or_default();
            l.malloc.add(&site.figures);
        }
        for m in &maps {
            let l = libs.entry(m.library.clone()).or_default();
            l.mmap_reserved += m.map.len;
            l.mmap_committed += m.committed;
        }
        let mut libraries: Vec<LibraryFigures> = libs
            .into_iter()
            .map(|(name, l)| LibraryFigures { name, ..l })
            .collect();
        libraries.sort_by(|a, b| {
            (b.reserved(), b.malloc.total_bytes, &a.name).cmp(&(
                a.reserved(),
                a.malloc.total_bytes,
                &b.name,
            ))
        });

        // Threads.
        let mut by_slot: BTreeMap<u64, Figures> = BTreeMap::new();
        for t in &s.threads {
            by_slot.entry(t.slot).or_default();
        }
        for site in &sites {
            by_slot.entry(site.slot).or_default().add(&site.figures);
        }
        let mut threads: Vec<ThreadFigures> = by_slot
            .into_iter()
            .map(|(slot, figures)| {
                let t = s.threads.iter().rev().find(|t| t.slot == slot);
                ThreadFigures {
                    slot,
                    tid: t.map(|t| t.tid),
                    name: t.map(|t| t.name.clone()),
                    figures,
                }
            })
            .collect();
        threads.sort_by(|a, b| {
            (b.figures.live_bytes, b.figures.total_bytes, a.slot).cmp(&(
                a.figures.live_bytes,
                a.figures.total_bytes,
                b.slot,
            ))
        });

        // Size classes: exact in every mode (in sample mode their frees are not kept: only the
        // totals allocated mean anything there, and the live figures are left at 0).
        let mut by_class: BTreeMap<u32, SizeFigures> = BTreeMap::new();
        for c in &s.sizes {
            let (min, max) = c.range();
            let e = by_class.entry(c.class).or_insert(SizeFigures {
                class: c.class,
                min,
                max,
                figures: Figures::default(),
            });
            let mut f = Figures::from_counts(c.allocs, c.alloc_bytes, c.frees, c.free_bytes);
            if s.mode == Mode::Sample {
                f.live_bytes = 0;
                f.live_blocks = 0;
            }
            e.figures.add(&f);
        }
        let sizes = by_class.into_values().collect();

        // Stacks, all threads together.
        let mut by_stack: BTreeMap<u64, Figures> = BTreeMap::new();
        for site in &sites {
            by_stack.entry(site.stack).or_default().add(&site.figures);
        }
        let mut stacks: Vec<StackFigures> = by_stack
            .into_iter()
            .map(|(stack, figures)| StackFigures {
                stack,
                library: stack_library(stack),
                figures,
            })
            .collect();
        stacks.sort_by(|a, b| {
            (b.figures.live_bytes, b.figures.live_blocks, a.stack).cmp(&(
                a.figures.live_bytes,
                a.figures.live_blocks,
                b.stack,
            ))
        });

        // Regions by kind.
        let mut kinds: BTreeMap<&str, RegionKindFigures> = BTreeMap::new();
        for r in &s.regions {
            let k = kinds.entry(&r.kind).or_insert_with(|| RegionKindFigures {
                kind: r.kind.clone(),
                ..Default::default()
            });
            k.count += 1;
            k.reserved += r.end - r.start;
            k.rss += r.rss_kb * 1024;
        }
        let mut regions: Vec<RegionKindFigures> = kinds.into_values().collect();
        regions.sort_by(|a, b| (b.reserved, &a.kind).cmp(&(a.reserved, &b.kind)));

        // The allocator.
        let sum = |f: fn(&crate::snapshot::Arena) -> u64| s.arenas.iter().map(f).sum::<u64>();
        let arena_system = sum(|a| a.system_bytes);
        let allocator = AllocatorFigures {
            held: arena_system + s.allocator.mmapped_bytes,
            arena_system,
            arena_in_use: sum(|a| a.in_use_bytes),
            arena_free: sum(|a| a.free_bytes),
            arena_fast: sum(|a| a.fast_bytes),
            arena_top: sum(|a| a.top_bytes),
            mmapped_bytes: s.allocator.mmapped_bytes,
            mmapped_chunks: s.allocator.mmapped_chunks,
            resident: region_rss(s, "oxmalloc"),
            trimmable: s.allocator.trimmable_bytes,
            tracker_mapped: s.tracker_bytes,
            tracker_resident: region_rss(s, "tracker"),
        };

        let mmap_reserved: u64 = s.maps.iter().map(|m| m.len).sum();
        let mmap_committed = region_rss(s, "program-mmap");
        let live_estimated = s.mode == Mode::Sample;
        let (malloc_bytes, malloc_blocks) = if live_estimated {
            sites.iter().fold((0, 0), |(b, n), x| {
                (b + x.figures.live_bytes, n + x.figures.live_blocks)
            })
        } else {
            (s.totals.live_bytes, s.totals.live_blocks)
        };
        let totals = Totals {
            reserved: allocator.held + mmap_reserved,
            committed: allocator.resident + mmap_committed,
            malloc_bytes,
            malloc_blocks,
            live_estimated,
            mmap_reserved,
            mmap_committed,
        };

        Aggregate {
            totals,
            sites,
            libraries,
            threads,
            sizes,
            stacks,
            maps,
            regions,
            allocator,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbols::Line;

    fn frame(lib: &str, symbol: Option<&str>, function: Option<&str>) -> Frame {
        Frame {
            ip: 0x1000,
            module: Some(0),
            library: lib.to_string(),
            offset: 0x1000,
            symbol: symbol.map(str::to_string),
            symbol_offset: Some(4),
            lines: vec![Line {
                function: function.map(str::to_string),
                file: None,
                line: None,
            }],
        }
    }

    #[test]
    fn plumbing() {
        for lib in [
            "libc.so.6",
            "ld-linux-x86-64.so.2",
            "liboxmalloc.so",
            "libgcc_s.so.1",
        ] {
            assert!(is_plumbing_library(lib), "{lib}");
        }
        for lib in ["libcrypto.so.3", "libstdc++.so.6", "prog", "ld-linuxish"] {
            assert!(!is_plumbing_library(lib), "{lib}");
        }
        let new = frame(
            "libstdc++.so.6",
            Some("_Znwm"),
            Some("operator new(unsigned long)"),
        );
        assert!(is_wrapper_function(&new));
        let new_arr = frame("libstdc++.so.6", Some("_ZnamRKSt9nothrow_t"), None);
        assert!(is_wrapper_function(&new_arr));
        let dem = frame("libfoo.so", None, Some("operator new[](unsigned long)"));
        assert!(is_wrapper_function(&dem));
        let strdup = frame("libfoo.so", Some("strdup"), Some("strdup"));
        assert!(is_wrapper_function(&strdup));
        let other = frame(
            "libstdc++.so.6",
            Some("_ZNSs4_Rep9_S_createEmmRKSaIcE"),
            None,
        );
        assert!(!is_wrapper_function(&other));

        let stack = vec![
            frame("libc.so.6", Some("malloc"), Some("malloc")),
            new.clone(),
            frame("libstdc++.so.6", Some("_ZNSs7reserveEm"), None),
            frame("prog", Some("main"), Some("main")),
        ];
        assert_eq!(calling_library(&stack), "libstdc++.so.6");
        assert_eq!(calling_library(&stack[..2]), "libstdc++.so.6"); // only plumbing: outermost
        assert_eq!(calling_library(&[]), UNKNOWN_LIBRARY);
    }

    #[test]
    fn scale() {
        assert_eq!(scale_factor(0, 0, 512), 1.0);
        let s = scale_factor(1, 512 * 1024, 512 * 1024);
        assert!((s - 1.0 / (1.0 - (-1.0f64).exp())).abs() < 1e-12);
        // Huge blocks are always sampled.
        assert!((scale_factor(1, 1 << 40, 512 * 1024) - 1.0).abs() < 1e-9);
    }
}
