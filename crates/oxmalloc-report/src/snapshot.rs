//! Parsing snapshot files (format version 1, docs/tracking.md) into plain structs, and
//! finding the latest snapshot in a directory.
//!
//! Checks, in this order: the first line must be `oxmalloc-snapshot 1` (else
//! [`Error::NotSnapshot`] or [`Error::UnsupportedVersion`]); the file must contain an `end`
//! line (else [`Error::Truncated`]); every known record before `end` must parse (else
//! [`Error::Malformed`] with its line number). Unknown record kinds are skipped, and so are
//! extra fields after the last one a fixed-size record defines (room for later versions);
//! anything after `end` is ignored.

use crate::error::Error;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The tracking mode the snapshot was taken in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Summary,
    Sample,
    Full,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Summary => "summary",
            Mode::Sample => "sample",
            Mode::Full => "full",
        }
    }
}

/// `time SECS.NANOS` (CLOCK_REALTIME), kept exact for ordering.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Time {
    pub secs: u64,
    pub nanos: u32,
}

impl Time {
    pub fn as_nanos(self) -> u128 {
        self.secs as u128 * 1_000_000_000 + self.nanos as u128
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    pub id: u64,
    pub start: u64,
    pub end: u64,
    /// Load bias: runtime address minus OFFSET is the ELF virtual address.
    pub offset: u64,
    /// Lower-case hex; `None` for `-`.
    pub build_id: Option<String>,
    pub path: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Thread {
    pub slot: u64,
    pub tid: u64,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Site {
    pub id: u64,
    pub stack: u64,
    pub slot: u64,
    pub allocs: u64,
    pub alloc_bytes: u64,
    pub frees: u64,
    pub free_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SizeClass {
    pub class: u32,
    pub allocs: u64,
    pub alloc_bytes: u64,
    pub frees: u64,
    pub free_bytes: u64,
}

impl SizeClass {
    /// The request sizes the class holds, inclusive: class 0 is 0..=1, class k is
    /// 2^(k-1)+1 ..= 2^k.
    pub fn range(&self) -> (u64, u64) {
        match self.class {
            0 => (0, 1),
            k if k >= 64 => (1u64 << 63, u64::MAX),
            k => ((1u64 << (k - 1)) + 1, 1u64 << k),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub live_bytes: u64,
    pub live_blocks: u64,
    pub peak_bytes: u64,
    pub peak_blocks: u64,
    pub total_bytes: u64,
    pub total_blocks: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Map {
    pub start: u64,
    pub len: u64,
    pub prot: String,
    pub flags: String,
    /// `None` for `-1`.
    pub site: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Region {
    pub start: u64,
    pub end: u64,
    pub perms: String,
    pub rss_kb: u64,
    pub kind: String,
    /// `None` for `-`.
    pub path: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arena {
    pub index: u64,
    pub system_bytes: u64,
    pub in_use_bytes: u64,
    pub free_bytes: u64,
    pub fast_bytes: u64,
    pub top_bytes: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Allocator {
    pub mmapped_bytes: u64,
    pub mmapped_chunks: u64,
    pub trimmable_bytes: u64,
}

/// One parsed snapshot file.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub path: PathBuf,
    pub pid: u64,
    pub ppid: u64,
    pub exe: String,
    pub cmdline: String,
    pub mode: Mode,
    /// Mean bytes between samples in sample mode; 0 otherwise.
    pub interval: u64,
    pub reason: String,
    pub seq: u64,
    pub time: Time,
    pub uptime: f64,
    pub modules: Vec<Module>,
    pub threads: Vec<Thread>,
    /// Stack id → return addresses, innermost (the allocation call's return address) first.
    pub stacks: BTreeMap<u64, Vec<u64>>,
    pub sites: Vec<Site>,
    pub sizes: Vec<SizeClass>,
    pub totals: Totals,
    pub maps: Vec<Map>,
    pub regions: Vec<Region>,
    pub arenas: Vec<Arena>,
    pub allocator: Allocator,
    /// `tracker MAPPED_BYTES`.
    pub tracker_bytes: u64,
}

impl Snapshot {
    /// Reads and parses one snapshot file.
    pub fn read(path: &Path) -> Result<Snapshot, Error> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Snapshot::parse(path, &bytes)
    }

    /// Parses snapshot text; `path` is only used in errors and kept in the result.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Snapshot, Error> {
        let text = String::from_utf8_lossy(bytes);
        let lines: Vec<&str> = text.split('\n').collect();
        check_first_line(path, lines[0])?;
        let Some(end) = lines.iter().position(|l| l.trim_end_matches('\r') == "end") else {
            return Err(Error::Truncated {
                path: path.to_path_buf(),
            });
        };
        let mut b = Builder::default();
        for (i, line) in lines[1..end].iter().enumerate() {
            let line = line.trim_end_matches('\r');
            b.record(line).map_err(|message| Error::Malformed {
                path: path.to_path_buf(),
                line: i + 2,
                message,
            })?;
        }
        b.finish(path)
    }

    /// The module whose text range holds `ip`.
    pub fn module_of(&self, ip: u64) -> Option<&Module> {
        self.modules.iter().find(|m| m.start <= ip && ip < m.end)
    }
}

fn check_first_line(path: &Path, first: &str) -> Result<(), Error> {
    let first = first.trim_end_matches('\r');
    let mut f = first.split(' ');
    if f.next() != Some("oxmalloc-snapshot") {
        return Err(Error::NotSnapshot {
            path: path.to_path_buf(),
        });
    }
    match f.next() {
        Some("1") if f.next().is_none() => Ok(()),
        Some(v) if !v.is_empty() => Err(Error::UnsupportedVersion {
            path: path.to_path_buf(),
            version: v.to_string(),
        }),
        _ => Err(Error::NotSnapshot {
            path: path.to_path_buf(),
        }),
    }
}

/// A number: decimal, or hex with a `0x` prefix.
pub(crate) fn number(s: &str) -> Option<u64> {
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()
    } else if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

/// The fields of one record after its kind.
struct Fields<'a> {
    rest: &'a str,
}

impl<'a> Fields<'a> {
    fn word(&mut self, what: &str) -> Result<&'a str, String> {
        if self.rest.is_empty() {
            return Err(format!("missing {what}"));
        }
        let (w, r) = self.rest.split_once(' ').unwrap_or((self.rest, ""));
        self.rest = r;
        Ok(w)
    }

    fn num(&mut self, what: &str) -> Result<u64, String> {
        let w = self.word(what)?;
        number(w).ok_or_else(|| format!("{what} {w:?} is not a number"))
    }

    /// The rest of the line (possibly empty, possibly with spaces).
    fn rest(self) -> &'a str {
        self.rest
    }
}

#[derive(Default)]
struct Builder {
    pid: Option<u64>,
    ppid: u64,
    exe: String,
    cmdline: String,
    mode: Option<Mode>,
    interval: u64,
    reason: String,
    seq: u64,
    time: Time,
    uptime: f64,
    modules: Vec<Module>,
    threads: Vec<Thread>,
    stacks: BTreeMap<u64, Vec<u64>>,
    sites: Vec<Site>,
    sizes: Vec<SizeClass>,
    totals: Option<Totals>,
    maps: Vec<Map>,
    regions: Vec<Region>,
    arenas: Vec<Arena>,
    allocator: Allocator,
    tracker_bytes: u64,
}

impl Builder {
    fn record(&mut self, line: &str) -> Result<(), String> {
        if line.is_empty() {
            return Ok(());
        }
        let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
        let mut f = Fields { rest };
        match kind {
            "pid" => self.pid = Some(f.num("PID")?),
            "ppid" => self.ppid = f.num("PPID")?,
            "exe" => self.exe = f.rest().to_string(),
            "cmdline" => self.cmdline = f.rest().to_string(),
            "mode" => {
                self.mode = Some(match f.word("MODE")? {
                    "summary" => Mode::Summary,
                    "sample" => Mode::Sample,
                    "full" => Mode::Full,
                    m => return Err(format!("unknown mode {m:?}")),
                })
            }
            "interval" => self.interval = f.num("INTERVAL")?,
            "reason" => self.reason = f.word("REASON")?.to_string(),
            "seq" => self.seq = f.num("SEQ")?,
            "time" => self.time = parse_time(f.word("TIME")?)?,
            "uptime" => {
                let w = f.word("UPTIME")?;
                self.uptime = w
                    .parse::<f64>()
                    .ok()
                    .filter(|u| u.is_finite() && *u >= 0.0)
                    .ok_or_else(|| format!("UPTIME {w:?} is not a number of seconds"))?;
            }
            "module" => {
                let m = Module {
                    id: f.num("ID")?,
                    start: f.num("START")?,
                    end: f.num("END")?,
                    offset: f.num("OFFSET")?,
                    build_id: match f.word("BUILDID")? {
                        "-" => None,
                        b if b.len() % 2 == 0 && b.bytes().all(|c| c.is_ascii_hexdigit()) => {
                            Some(b.to_ascii_lowercase())
                        }
                        b => return Err(format!("BUILDID {b:?} is neither hex nor '-'")),
                    },
                    path: f.rest().to_string(),
                };
                if m.end < m.start {
                    return Err("module END is below START".into());
                }
                self.modules.push(m);
            }
            "thread" => self.threads.push(Thread {
                slot: f.num("SLOT")?,
                tid: f.num("TID")?,
                name: f.rest().to_string(),
            }),
            "stack" => {
                let id = f.num("ID")?;
                let depth = f.num("DEPTH")?;
                let mut ips = Vec::with_capacity(depth.min(256) as usize);
                for _ in 0..depth {
                    ips.push(f.num("IP")?);
                }
                if !f.rest().is_empty() {
                    return Err(format!("more IPs than DEPTH {depth}"));
                }
                self.stacks.insert(id, ips);
            }
            "site" => self.sites.push(Site {
                id: f.num("ID")?,
                stack: f.num("STACK")?,
                slot: f.num("SLOT")?,
                allocs: f.num("ALLOCS")?,
                alloc_bytes: f.num("ALLOC_BYTES")?,
                frees: f.num("FREES")?,
                free_bytes: f.num("FREE_BYTES")?,
            }),
            "size" => {
                let class = f.num("CLASS")?;
                if class > 64 {
                    return Err(format!("size CLASS {class} is past 64"));
                }
                self.sizes.push(SizeClass {
                    class: class as u32,
                    allocs: f.num("ALLOCS")?,
                    alloc_bytes: f.num("ALLOC_BYTES")?,
                    frees: f.num("FREES")?,
                    free_bytes: f.num("FREE_BYTES")?,
                })
            }
            "totals" => {
                self.totals = Some(Totals {
                    live_bytes: f.num("LIVE_BYTES")?,
                    live_blocks: f.num("LIVE_BLOCKS")?,
                    peak_bytes: f.num("PEAK_BYTES")?,
                    peak_blocks: f.num("PEAK_BLOCKS")?,
                    total_bytes: f.num("TOTAL_BYTES")?,
                    total_blocks: f.num("TOTAL_BLOCKS")?,
                })
            }
            "map" => self.maps.push(Map {
                start: f.num("START")?,
                len: f.num("LEN")?,
                prot: f.word("PROT")?.to_string(),
                flags: f.word("FLAGS")?.to_string(),
                site: match f.word("SITE")? {
                    "-1" => None,
                    s => Some(number(s).ok_or_else(|| format!("SITE {s:?} is not a number"))?),
                },
            }),
            "region" => {
                let r = Region {
                    start: f.num("START")?,
                    end: f.num("END")?,
                    perms: f.word("PERMS")?.to_string(),
                    rss_kb: f.num("RSS_KB")?,
                    kind: f.word("KIND")?.to_string(),
                    path: match f.rest() {
                        "" => return Err("missing PATH".into()),
                        "-" => None,
                        p => Some(p.to_string()),
                    },
                };
                if r.end < r.start {
                    return Err("region END is below START".into());
                }
                self.regions.push(r);
            }
            "arena" => self.arenas.push(Arena {
                index: f.num("INDEX")?,
                system_bytes: f.num("SYSTEM_BYTES")?,
                in_use_bytes: f.num("IN_USE_BYTES")?,
                free_bytes: f.num("FREE_BYTES")?,
                fast_bytes: f.num("FAST_BYTES")?,
                top_bytes: f.num("TOP_BYTES")?,
            }),
            "allocator" => {
                self.allocator = Allocator {
                    mmapped_bytes: f.num("MMAPPED_BYTES")?,
                    mmapped_chunks: f.num("MMAPPED_CHUNKS")?,
                    trimmable_bytes: f.num("TRIMMABLE_BYTES")?,
                }
            }
            "tracker" => self.tracker_bytes = f.num("MAPPED_BYTES")?,
            _ => {} // a record of a later version: skipped
        }
        Ok(())
    }

    fn finish(self, path: &Path) -> Result<Snapshot, Error> {
        let missing = |record| Error::Missing {
            path: path.to_path_buf(),
            record,
        };
        Ok(Snapshot {
            path: path.to_path_buf(),
            pid: self.pid.ok_or_else(|| missing("pid"))?,
            ppid: self.ppid,
            exe: self.exe,
            cmdline: self.cmdline,
            mode: self.mode.ok_or_else(|| missing("mode"))?,
            interval: self.interval,
            reason: self.reason,
            seq: self.seq,
            time: self.time,
            uptime: self.uptime,
            modules: self.modules,
            threads: self.threads,
            stacks: self.stacks,
            sites: self.sites,
            sizes: self.sizes,
            totals: self.totals.ok_or_else(|| missing("totals"))?,
            maps: self.maps,
            regions: self.regions,
            arenas: self.arenas,
            allocator: self.allocator,
            tracker_bytes: self.tracker_bytes,
        })
    }
}

fn parse_time(w: &str) -> Result<Time, String> {
    let bad = || format!("TIME {w:?} is not SECONDS.NANOSECONDS");
    let (s, frac) = w.split_once('.').unwrap_or((w, ""));
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let secs = s.parse().map_err(|_| bad())?;
    let nanos = if frac.is_empty() {
        0
    } else {
        frac.parse::<u32>().map_err(|_| bad())? * 10u32.pow(9 - frac.len() as u32)
    };
    Ok(Time { secs, nanos })
}

// ---------------------------------------------------------------- finding the latest

/// `snapshot-PID-SEQ.oxm` → (PID, SEQ).
pub fn parse_file_name(name: &str) -> Option<(u64, u64)> {
    let rest = name.strip_prefix("snapshot-")?.strip_suffix(".oxm")?;
    let (pid, seq) = rest.split_once('-')?;
    Some((number_dec(pid)?, number_dec(seq)?))
}

fn number_dec(s: &str) -> Option<u64> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

/// The header fields that order snapshots, read without parsing the whole file.
fn header_time(path: &Path) -> Option<(Time, u64)> {
    use std::io::{BufRead, BufReader};
    let f = std::fs::File::open(path).ok()?;
    let mut lines = BufReader::new(f).split(b'\n');
    let first = lines.next()?.ok()?;
    if first != b"oxmalloc-snapshot 1" {
        return None;
    }
    let (mut time, mut seq) = (None, 0);
    // The header records come first; stop at the first record that is not one of them.
    for line in lines.take(64) {
        let line = line.ok()?;
        let line = String::from_utf8_lossy(&line);
        let (kind, rest) = line.split_once(' ').unwrap_or((&line, ""));
        match kind {
            "time" => time = parse_time(rest.split(' ').next().unwrap_or("")).ok(),
            "seq" => seq = number(rest.split(' ').next().unwrap_or("")).unwrap_or(0),
            "module" | "thread" | "stack" | "site" | "size" | "totals" | "end" => break,
            _ => {}
        }
    }
    Some((time.unwrap_or_default(), seq))
}

/// The latest snapshot in `dir` (of process `pid` if given): among the files named
/// `snapshot-PID-SEQ.oxm` whose first line is `oxmalloc-snapshot 1`, the one with the latest
/// `time` record; on a tie the highest SEQ (the one in the name), then the highest PID.
/// Files whose header cannot be read are passed over; the chosen one is then parsed in full
/// by the caller, and its errors are reported.
pub fn latest_in_dir(dir: &Path, pid: Option<u32>) -> Result<PathBuf, Error> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut best: Option<((Time, u64, u64), PathBuf)> = None;
    let mut named = None;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let Some((p, seq)) = name.to_str().and_then(parse_file_name) else {
            continue;
        };
        if pid.is_some_and(|want| u64::from(want) != p) {
            continue;
        }
        let path = entry.path();
        if !path.is_file() {
            continue;
        }
        named.get_or_insert_with(|| path.clone());
        let Some((time, _)) = header_time(&path) else {
            continue;
        };
        let key = (time, seq, p);
        if best.as_ref().is_none_or(|(k, _)| key > *k) {
            best = Some((key, path));
        }
    }
    match (best, named) {
        (Some((_, p)), _) => Ok(p),
        // Only unreadable candidates: parse one of them to say what is wrong with it.
        (None, Some(p)) => Ok(p),
        (None, None) => Err(Error::NoSnapshot {
            dir: dir.to_path_buf(),
            pid,
        }),
    }
}

/// A file is read as it is; a directory gives its latest snapshot ([`latest_in_dir`]).
pub fn resolve(path: &Path) -> Result<PathBuf, Error> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        latest_in_dir(path, None)
    } else {
        Ok(path.to_path_buf())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_names() {
        assert_eq!(number("42"), Some(42));
        assert_eq!(number("0x2a"), Some(42));
        assert_eq!(number("-1"), None);
        assert_eq!(number(""), None);
        assert_eq!(number("0x"), None);
        assert_eq!(parse_file_name("snapshot-4242-3.oxm"), Some((4242, 3)));
        assert_eq!(parse_file_name("snapshot-4242-3.oxm.tmp"), None);
        assert_eq!(parse_file_name("snapshot-x-3.oxm"), None);
        assert_eq!(
            parse_time("12.5").unwrap(),
            Time {
                secs: 12,
                nanos: 500_000_000
            }
        );
        assert_eq!(parse_time("12").unwrap(), Time { secs: 12, nanos: 0 });
        assert!(parse_time("12.1234567890").is_err());
        assert!(parse_time("x").is_err());
    }
}
