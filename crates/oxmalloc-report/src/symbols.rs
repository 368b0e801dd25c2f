//! Symbolising return addresses at report time from the snapshot's module map.
//!
//! A frame's module is the `module` record whose START..END holds the IP; its ELF virtual
//! address is IP - OFFSET, and since every IP in a stack is a return address the lookup uses
//! that address minus one (the call instruction). Library basename and address are always
//! given; the function (symbol table, demangled) and file:line (DWARF, inlined calls
//! included) where the module file can be read and its build-id matches the snapshot's (a
//! snapshot without build-id accepts any file at that path). DWARF comes from the module
//! itself or from a separate debug file: `/usr/lib/debug/.build-id/xx/rest.debug` (build-id
//! checked), then the `.gnu_debuglink` name in the module's directory, its `.debug/`
//! subdirectory and under `/usr/lib/debug/` + that directory (CRC checked). Each module is
//! loaded once per [`Symbolizer`], each IP resolved once.

use crate::snapshot::{Module, Snapshot};
use addr2line::Context;
use gimli::{EndianRcSlice, RunTimeEndian};
use object::{Object, ObjectSection, ObjectSymbol, ObjectSymbolTable, SymbolKind};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

type Reader = EndianRcSlice<RunTimeEndian>;

/// What a library is called when no module holds the IP.
pub const UNKNOWN_LIBRARY: &str = "[unknown]";

/// One source-level frame at an IP: a function, possibly inlined into the next one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Line {
    /// Demangled name.
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
}

/// A symbolised return address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub ip: u64,
    /// The module record's id, if a module holds the IP.
    pub module: Option<u64>,
    /// Basename of the module's path, or [`UNKNOWN_LIBRARY`].
    pub library: String,
    /// The ELF virtual address (IP - OFFSET); the IP itself without a module.
    pub offset: u64,
    /// Raw (mangled) name of the symbol-table entry holding the address.
    pub symbol: Option<String>,
    /// Offset of the IP from that symbol's start.
    pub symbol_offset: Option<u64>,
    /// Innermost first; the last is the frame's own (not inlined) function. Empty when
    /// nothing is known but library and offset.
    pub lines: Vec<Line>,
}

impl Frame {
    /// The frame's own function, demangled (the outermost of the inlined chain).
    pub fn function(&self) -> Option<&str> {
        self.lines.last().and_then(|l| l.function.as_deref())
    }

    /// `lib!func+0xoff` (or `lib+0xoffset` without a function) for the frame's own
    /// function; `(file:line)` appended where known.
    pub fn display(&self) -> String {
        let mut s = match (self.function(), self.symbol_offset) {
            (Some(f), Some(off)) => format!("{}!{f}+{off:#x}", self.library),
            (Some(f), None) => format!("{}!{f}", self.library),
            _ => format!("{}+{:#x}", self.library, self.offset),
        };
        if let Some(loc) = self.lines.last().and_then(location) {
            s.push_str(&format!(" ({loc})"));
        }
        s
    }

    /// One line per inlined call, innermost first, in the style of [`Frame::display`],
    /// followed by [`Frame::display`] itself.
    pub fn display_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.lines.len() > 1 {
            for l in &self.lines[..self.lines.len() - 1] {
                let mut s = format!(
                    "{}!{} (inlined)",
                    self.library,
                    l.function.as_deref().unwrap_or("??")
                );
                if let Some(loc) = location(l) {
                    s.push_str(&format!(" ({loc})"));
                }
                out.push(s);
            }
        }
        out.push(self.display());
        out
    }
}

/// `file:line`, or `file` alone.
pub fn location(l: &Line) -> Option<String> {
    let file = l.file.as_deref()?;
    Some(match l.line {
        Some(n) => format!("{file}:{n}"),
        None => file.to_string(),
    })
}

/// Basename of a module path (`[vdso]`-style names as they are).
pub fn basename(path: &str) -> String {
    let p = path.strip_suffix(" (deleted)").unwrap_or(path);
    Path::new(p)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.to_string())
}

struct Symbol {
    addr: u64,
    size: u64,
    name: String,
}

/// What one module file gave: its symbols and its DWARF, either possibly empty.
struct Loaded {
    symbols: Vec<Symbol>,
    dwarf: Option<Context<Reader>>,
}

impl Loaded {
    fn symbol(&self, probe: u64) -> Option<&Symbol> {
        let i = self.symbols.partition_point(|s| s.addr <= probe);
        let s = self.symbols.get(i.checked_sub(1)?)?;
        (s.size == 0 || probe < s.addr + s.size).then_some(s)
    }
}

/// Resolves IPs against one snapshot's modules; modules are loaded lazily, once.
pub struct Symbolizer<'a> {
    modules: &'a [Module],
    loaded: HashMap<u64, Option<Loaded>>,
    frames: HashMap<u64, Frame>,
}

impl<'a> Symbolizer<'a> {
    pub fn new(snapshot: &'a Snapshot) -> Self {
        Symbolizer {
            modules: &snapshot.modules,
            loaded: HashMap::new(),
            frames: HashMap::new(),
        }
    }

    /// The frame for one return address.
    pub fn frame(&mut self, ip: u64) -> Frame {
        if let Some(f) = self.frames.get(&ip) {
            return f.clone();
        }
        let f = self.resolve(ip);
        self.frames.insert(ip, f.clone());
        f
    }

    /// The frames of a stack, innermost first.
    pub fn stack(&mut self, ips: &[u64]) -> Vec<Frame> {
        ips.iter().map(|&ip| self.frame(ip)).collect()
    }

    fn resolve(&mut self, ip: u64) -> Frame {
        let Some(m) = self.modules.iter().find(|m| m.start <= ip && ip < m.end) else {
            return Frame {
                ip,
                module: None,
                library: UNKNOWN_LIBRARY.to_string(),
                offset: ip,
                symbol: None,
                symbol_offset: None,
                lines: Vec::new(),
            };
        };
        let vaddr = ip.wrapping_sub(m.offset);
        let mut frame = Frame {
            ip,
            module: Some(m.id),
            library: basename(&m.path),
            offset: vaddr,
            symbol: None,
            symbol_offset: None,
            lines: Vec::new(),
        };
        let loaded = self
            .loaded
            .entry(m.id)
            .or_insert_with(|| load_module(m))
            .as_ref();
        let Some(loaded) = loaded else {
            return frame;
        };
        let probe = vaddr.saturating_sub(1);
        let sym = loaded.symbol(probe);
        if let Some(s) = sym {
            frame.symbol = Some(s.name.clone());
            frame.symbol_offset = Some(vaddr - s.addr);
        }
        if let Some(ctx) = &loaded.dwarf {
            if let Ok(mut it) = ctx.find_frames(probe).skip_all_loads() {
                while let Ok(Some(f)) = it.next() {
                    let function = f
                        .function
                        .as_ref()
                        .and_then(|n| n.demangle().ok())
                        .map(|n| n.into_owned());
                    let (file, line) = match f.location {
                        Some(l) => (l.file.map(str::to_string), l.line),
                        None => (None, None),
                    };
                    frame.lines.push(Line {
                        function,
                        file,
                        line,
                    });
                }
            }
        }
        let sym_name = sym.map(|s| addr2line::demangle_auto(s.name.as_str().into(), None));
        match frame.lines.last_mut() {
            Some(last) if last.function.is_none() => {
                last.function = sym_name.map(|n| n.into_owned());
            }
            None => {
                if let Some(n) = sym_name {
                    frame.lines.push(Line {
                        function: Some(n.into_owned()),
                        file: None,
                        line: None,
                    });
                }
            }
            _ => {}
        }
        frame
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn load_module(m: &Module) -> Option<Loaded> {
    let path = m.path.strip_suffix(" (deleted)").unwrap_or(&m.path);
    let data = std::fs::read(path).ok()?;
    let obj = object::File::parse(&*data).ok()?;
    let file_id = obj.build_id().ok().flatten().map(hex);
    if let Some(want) = &m.build_id {
        if file_id.as_deref() != Some(want.as_str()) {
            return None; // another build at the same path: addresses would lie
        }
    }
    let mut symbols = text_symbols(obj.symbol_table());
    let has_symtab = obj.symbol_table().is_some();
    if !has_symtab {
        symbols = text_symbols(obj.dynamic_symbol_table());
    }
    let has_dwarf = obj
        .section_by_name(".debug_info")
        .is_some_and(|s| s.size() > 0);
    let dwarf = if has_dwarf {
        dwarf_context(&obj)
    } else {
        // No separate debug file: the module's own symbols still name the functions.
        match find_debug_file(Path::new(path), &obj, file_id.as_deref()) {
            Some(debug) => match object::File::parse(&*debug) {
                Ok(d) => {
                    if !has_symtab && d.symbol_table().is_some() {
                        symbols = text_symbols(d.symbol_table());
                    }
                    dwarf_context(&d)
                }
                Err(_) => None,
            },
            None => None,
        }
    };
    Some(Loaded { symbols, dwarf })
}

fn text_symbols<'d, T: ObjectSymbolTable<'d>>(table: Option<T>) -> Vec<Symbol> {
    let Some(table) = table else {
        return Vec::new();
    };
    let mut v: Vec<Symbol> = table
        .symbols()
        .filter(|s| s.is_definition() && s.kind() == SymbolKind::Text && s.address() != 0)
        .filter_map(|s| {
            Some(Symbol {
                addr: s.address(),
                size: s.size(),
                name: s.name().ok().filter(|n| !n.is_empty())?.to_string(),
            })
        })
        .collect();
    // Aliases share an address: keep the first in table order, with the largest size.
    v.sort_by_key(|s| s.addr);
    v.dedup_by(|later, earlier| {
        if later.addr == earlier.addr {
            earlier.size = earlier.size.max(later.size);
            true
        } else {
            false
        }
    });
    v
}

fn dwarf_context(obj: &object::File<'_>) -> Option<Context<Reader>> {
    let endian = if obj.is_little_endian() {
        RunTimeEndian::Little
    } else {
        RunTimeEndian::Big
    };
    let load = |id: gimli::SectionId| -> Result<Reader, gimli::Error> {
        let data: Rc<[u8]> = match obj.section_by_name(id.name()) {
            Some(s) => match s.uncompressed_data() {
                Ok(d) => Rc::from(&*d),
                Err(_) => Rc::from(&[][..]),
            },
            None => Rc::from(&[][..]),
        };
        Ok(EndianRcSlice::new(data, endian))
    };
    let dwarf = gimli::Dwarf::load(load).ok()?;
    Context::from_dwarf(dwarf).ok()
}

/// The separate debug file of `path`, if one is installed.
fn find_debug_file(path: &Path, obj: &object::File<'_>, build_id: Option<&str>) -> Option<Vec<u8>> {
    if let Some(id) = build_id.filter(|id| id.len() > 2) {
        let p = PathBuf::from(format!(
            "/usr/lib/debug/.build-id/{}/{}.debug",
            &id[..2],
            &id[2..]
        ));
        if let Ok(data) = std::fs::read(&p) {
            let same = object::File::parse(&*data)
                .ok()
                .and_then(|d| d.build_id().ok().flatten().map(hex))
                .is_some_and(|b| b == id);
            if same {
                return Some(data);
            }
        }
    }
    let (name, crc) = obj.gnu_debuglink().ok().flatten()?;
    let name = Path::new(std::str::from_utf8(name).ok()?);
    let dir = path.parent()?;
    let mut candidates = vec![dir.join(name), dir.join(".debug").join(name)];
    if let Ok(rel) = dir.strip_prefix("/") {
        candidates.push(Path::new("/usr/lib/debug").join(rel).join(name));
    }
    for c in candidates {
        if c == path {
            continue;
        }
        if let Ok(data) = std::fs::read(&c) {
            if crc32fast::hash(&data) == crc {
                return Some(data);
            }
        }
    }
    None
}
