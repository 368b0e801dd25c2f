//! oxmalloc-report: reads the snapshot files oxmalloc's tracker writes (docs/tracking.md),
//! symbolises their stacks, aggregates them and renders text (NMT-shaped), JSON, folded
//! stacks or a gzipped pprof profile. [`render`] is the one-call entry point; the
//! `oxmalloc report` command is a thin layer over it.

pub mod aggregate;
pub mod error;
pub mod folded;
pub mod json;
pub mod pprof;
pub mod snapshot;
pub mod symbols;
pub mod text;

pub use error::Error;
pub use snapshot::{latest_in_dir, Snapshot};

use aggregate::Aggregate;
use std::collections::BTreeMap;
use std::path::Path;
use symbols::{Frame, Symbolizer};

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Pprof,
    Folded,
}

/// The grouping of the text report's sections and the root frame of folded stacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum By {
    Site,
    Library,
    Thread,
    Size,
}

/// The value folded stacks carry (pprof carries all four, this one as the default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SampleType {
    #[default]
    InuseSpace,
    InuseObjects,
    AllocSpace,
    AllocObjects,
}

impl SampleType {
    pub fn name(self) -> &'static str {
        match self {
            SampleType::InuseSpace => "inuse_space",
            SampleType::InuseObjects => "inuse_objects",
            SampleType::AllocSpace => "alloc_space",
            SampleType::AllocObjects => "alloc_objects",
        }
    }

    /// The figure this sample type picks.
    pub fn value(self, f: &aggregate::Figures) -> u64 {
        match self {
            SampleType::InuseSpace => f.live_bytes,
            SampleType::InuseObjects => f.live_blocks,
            SampleType::AllocSpace => f.total_bytes,
            SampleType::AllocObjects => f.total_blocks,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// `None`: the format's default (text: by library; folded: by site, no root frame).
    pub by: Option<By>,
    /// How many entries each list shows (text only).
    pub top: usize,
    pub sample_type: SampleType,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            by: None,
            top: 10,
            sample_type: SampleType::InuseSpace,
        }
    }
}

/// A parsed, symbolised and aggregated snapshot: what every format renders.
#[derive(Clone, Debug)]
pub struct Report {
    pub snapshot: Snapshot,
    /// Stack id → frames, innermost first.
    pub frames: BTreeMap<u64, Vec<Frame>>,
    pub aggregate: Aggregate,
}

impl Report {
    /// Reads a snapshot file, or the latest snapshot of a directory.
    pub fn load(path: &Path) -> Result<Report, Error> {
        let file = snapshot::resolve(path)?;
        Ok(Report::new(Snapshot::read(&file)?))
    }

    pub fn new(snapshot: Snapshot) -> Report {
        let mut sym = Symbolizer::new(&snapshot);
        let frames = snapshot
            .stacks
            .iter()
            .map(|(&id, ips)| (id, sym.stack(ips)))
            .collect();
        drop(sym);
        let aggregate = Aggregate::new(&snapshot, &frames);
        Report {
            snapshot,
            frames,
            aggregate,
        }
    }

    /// The frames of a stack (empty for an unknown id).
    pub fn stack(&self, id: u64) -> &[Frame] {
        self.frames.get(&id).map_or(&[], |v| v.as_slice())
    }

    /// A thread slot's name and tid as the `thread` records give them.
    pub fn thread(&self, slot: u64) -> Option<&snapshot::Thread> {
        self.snapshot.threads.iter().rev().find(|t| t.slot == slot)
    }
}

/// Renders the snapshot at `path` (a file, or a directory: its latest snapshot).
pub fn render(path: &Path, format: Format, opts: &Options) -> Result<Vec<u8>, Error> {
    let report = Report::load(path)?;
    render_report(&report, format, opts)
}

/// Renders a loaded report.
pub fn render_report(report: &Report, format: Format, opts: &Options) -> Result<Vec<u8>, Error> {
    Ok(match format {
        Format::Text => text::render(report, opts).into_bytes(),
        Format::Json => json::render(report)?,
        Format::Folded => folded::render(report, opts).into_bytes(),
        Format::Pprof => pprof::render(report, opts)?,
    })
}

/// The text report's first part (header, `Total:` block, per-library sections) of the
/// latest snapshot of process `pid` in `dir`, for `oxmalloc run`; with the file it read.
pub fn summary_of_latest(
    dir: &Path,
    pid: Option<u32>,
    top: usize,
) -> Result<(std::path::PathBuf, String), Error> {
    let file = latest_in_dir(dir, pid)?;
    let report = Report::new(Snapshot::read(&file)?);
    let opts = Options {
        top,
        ..Options::default()
    };
    Ok((file, text::summary(&report, &opts)))
}
