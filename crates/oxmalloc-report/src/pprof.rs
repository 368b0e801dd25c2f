//! A gzipped `profile.proto` (perftools.profiles.Profile, as read by `pprof` and
//! `go tool pprof`), encoded with prost from the message structs below (written from the
//! public field numbers; no protoc). Sample values: alloc_objects/count, alloc_space/bytes,
//! inuse_objects/count, inuse_space/bytes (scaled estimates in sample mode); the default
//! sample type is the options' one (inuse_space unless chosen). Every sample carries the
//! string labels `library` (the calling library) and `thread`. Locations are already
//! symbolised (one per IP, inlined calls as extra lines), so `has_functions` is set on the
//! mappings whose frames got names.

use crate::{Error, Options, Report};
use std::collections::HashMap;
use std::io::Write;

/// perftools.profiles.Profile.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Profile {
    #[prost(message, repeated, tag = "1")]
    pub sample_type: Vec<ValueType>,
    #[prost(message, repeated, tag = "2")]
    pub sample: Vec<Sample>,
    #[prost(message, repeated, tag = "3")]
    pub mapping: Vec<Mapping>,
    #[prost(message, repeated, tag = "4")]
    pub location: Vec<Location>,
    #[prost(message, repeated, tag = "5")]
    pub function: Vec<Function>,
    #[prost(string, repeated, tag = "6")]
    pub string_table: Vec<String>,
    #[prost(int64, tag = "7")]
    pub drop_frames: i64,
    #[prost(int64, tag = "8")]
    pub keep_frames: i64,
    #[prost(int64, tag = "9")]
    pub time_nanos: i64,
    #[prost(int64, tag = "10")]
    pub duration_nanos: i64,
    #[prost(message, optional, tag = "11")]
    pub period_type: Option<ValueType>,
    #[prost(int64, tag = "12")]
    pub period: i64,
    #[prost(int64, repeated, tag = "13")]
    pub comment: Vec<i64>,
    #[prost(int64, tag = "14")]
    pub default_sample_type: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ValueType {
    /// String table index.
    #[prost(int64, tag = "1")]
    pub r#type: i64,
    /// String table index.
    #[prost(int64, tag = "2")]
    pub unit: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    /// Leaf first.
    #[prost(uint64, repeated, tag = "1")]
    pub location_id: Vec<u64>,
    #[prost(int64, repeated, tag = "2")]
    pub value: Vec<i64>,
    #[prost(message, repeated, tag = "3")]
    pub label: Vec<Label>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    #[prost(int64, tag = "1")]
    pub key: i64,
    #[prost(int64, tag = "2")]
    pub str: i64,
    #[prost(int64, tag = "3")]
    pub num: i64,
    #[prost(int64, tag = "4")]
    pub num_unit: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Mapping {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(uint64, tag = "2")]
    pub memory_start: u64,
    #[prost(uint64, tag = "3")]
    pub memory_limit: u64,
    #[prost(uint64, tag = "4")]
    pub file_offset: u64,
    #[prost(int64, tag = "5")]
    pub filename: i64,
    #[prost(int64, tag = "6")]
    pub build_id: i64,
    #[prost(bool, tag = "7")]
    pub has_functions: bool,
    #[prost(bool, tag = "8")]
    pub has_filenames: bool,
    #[prost(bool, tag = "9")]
    pub has_line_numbers: bool,
    #[prost(bool, tag = "10")]
    pub has_inline_frames: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Location {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(uint64, tag = "2")]
    pub mapping_id: u64,
    #[prost(uint64, tag = "3")]
    pub address: u64,
    /// Innermost inlined call first; the last is the function the address is in.
    #[prost(message, repeated, tag = "4")]
    pub line: Vec<Line>,
    #[prost(bool, tag = "5")]
    pub is_folded: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Line {
    #[prost(uint64, tag = "1")]
    pub function_id: u64,
    #[prost(int64, tag = "2")]
    pub line: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Function {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(int64, tag = "2")]
    pub name: i64,
    #[prost(int64, tag = "3")]
    pub system_name: i64,
    #[prost(int64, tag = "4")]
    pub filename: i64,
    #[prost(int64, tag = "5")]
    pub start_line: i64,
}

#[derive(Default)]
struct Strings {
    table: Vec<String>,
    index: HashMap<String, i64>,
}

impl Strings {
    fn new() -> Self {
        let mut s = Strings::default();
        s.get("");
        s
    }
    fn get(&mut self, v: &str) -> i64 {
        if let Some(&i) = self.index.get(v) {
            return i;
        }
        let i = self.table.len() as i64;
        self.table.push(v.to_string());
        self.index.insert(v.to_string(), i);
        i
    }
}

/// The names of the four sample values, in order.
pub const SAMPLE_TYPES: [(&str, &str); 4] = [
    ("alloc_objects", "count"),
    ("alloc_space", "bytes"),
    ("inuse_objects", "count"),
    ("inuse_space", "bytes"),
];

fn i64_of(v: u64) -> i64 {
    v.min(i64::MAX as u64) as i64
}

/// The profile message (not yet encoded).
pub fn profile(r: &Report, opts: &Options) -> Profile {
    let s = &r.snapshot;
    let mut st = Strings::new();
    let mut p = Profile {
        sample_type: SAMPLE_TYPES
            .iter()
            .map(|(t, u)| ValueType {
                r#type: st.get(t),
                unit: st.get(u),
            })
            .collect(),
        ..Default::default()
    };
    p.default_sample_type = st.get(opts.sample_type.name());
    p.period_type = Some(ValueType {
        r#type: st.get("space"),
        unit: st.get("bytes"),
    });
    p.period = if s.mode == crate::snapshot::Mode::Sample {
        i64_of(s.interval)
    } else {
        0
    };
    p.time_nanos = i64::try_from(s.time.as_nanos()).unwrap_or(i64::MAX);
    p.duration_nanos = (s.uptime * 1e9) as i64;
    let comment = format!(
        "oxmalloc snapshot {} (mode {}, pid {}, reason {}, seq {})",
        s.path.display(),
        s.mode.as_str(),
        s.pid,
        s.reason,
        s.seq
    );
    p.comment.push(st.get(&comment));

    // Mappings: one per module record, in order; id = position + 1.
    let mut mapping_of: HashMap<u64, usize> = HashMap::new();
    for (i, m) in s.modules.iter().enumerate() {
        mapping_of.insert(m.id, i);
        p.mapping.push(Mapping {
            id: i as u64 + 1,
            memory_start: m.start,
            memory_limit: m.end,
            file_offset: 0,
            filename: st.get(&m.path),
            build_id: st.get(m.build_id.as_deref().unwrap_or("")),
            ..Default::default()
        });
    }

    // Locations (one per IP) and functions.
    let mut loc_of: HashMap<u64, u64> = HashMap::new();
    let mut func_of: HashMap<(i64, i64, i64), u64> = HashMap::new();
    for stack in r.frames.values() {
        for f in stack {
            if loc_of.contains_key(&f.ip) {
                continue;
            }
            let mapping = f.module.and_then(|m| mapping_of.get(&m).copied());
            let mut lines = Vec::new();
            let n = f.lines.len();
            for (i, l) in f.lines.iter().enumerate() {
                let name = l
                    .function
                    .clone()
                    .unwrap_or_else(|| format!("{}+{:#x}", f.library, f.offset));
                let system = match (&f.symbol, i + 1 == n) {
                    (Some(raw), true) => raw.clone(),
                    _ => name.clone(),
                };
                let key = (
                    st.get(&name),
                    st.get(&system),
                    st.get(l.file.as_deref().unwrap_or("")),
                );
                let next = func_of.len() as u64 + 1;
                let id = *func_of.entry(key).or_insert_with(|| {
                    p.function.push(Function {
                        id: next,
                        name: key.0,
                        system_name: key.1,
                        filename: key.2,
                        start_line: 0,
                    });
                    next
                });
                lines.push(Line {
                    function_id: id,
                    line: l.line.map_or(0, i64::from),
                });
                if let Some(m) = mapping {
                    let mp = &mut p.mapping[m];
                    mp.has_functions |= l.function.is_some();
                    mp.has_filenames |= l.file.is_some();
                    mp.has_line_numbers |= l.line.is_some();
                    mp.has_inline_frames |= n > 1;
                }
            }
            let id = p.location.len() as u64 + 1;
            p.location.push(Location {
                id,
                mapping_id: mapping.map_or(0, |m| m as u64 + 1),
                address: f.ip,
                line: lines,
                is_folded: false,
            });
            loc_of.insert(f.ip, id);
        }
    }

    // Samples: one per site.
    let key_library = st.get("library");
    let key_thread = st.get("thread");
    for x in &r.aggregate.sites {
        let f = &x.figures;
        let thread = match r.thread(x.slot) {
            Some(t) if !t.name.is_empty() => format!("{} (slot {}, tid {})", t.name, x.slot, t.tid),
            Some(t) => format!("slot {}, tid {}", x.slot, t.tid),
            None => format!("slot {}", x.slot),
        };
        p.sample.push(Sample {
            location_id: r.stack(x.stack).iter().map(|fr| loc_of[&fr.ip]).collect(),
            value: vec![
                i64_of(f.total_blocks),
                i64_of(f.total_bytes),
                i64_of(f.live_blocks),
                i64_of(f.live_bytes),
            ],
            label: vec![
                Label {
                    key: key_library,
                    str: st.get(&x.library),
                    ..Default::default()
                },
                Label {
                    key: key_thread,
                    str: st.get(&thread),
                    ..Default::default()
                },
            ],
        });
    }
    p.string_table = st.table;
    p
}

/// The gzipped, encoded profile.
pub fn render(r: &Report, opts: &Options) -> Result<Vec<u8>, Error> {
    let bytes = prost::Message::encode_to_vec(&profile(r, opts));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&bytes)
        .and_then(|_| gz.finish())
        .map_err(|e| Error::Output {
            message: format!("cannot compress the profile: {e}"),
        })
}
