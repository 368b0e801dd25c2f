//! oxmalloc-report against synthetic snapshot files written by the tests themselves.

use object::{Object, ObjectSegment};
use oxmalloc_report::aggregate::scale_factor;
use oxmalloc_report::pprof::Profile;
use oxmalloc_report::snapshot::Snapshot;
use oxmalloc_report::symbols::Symbolizer;
use oxmalloc_report::{render, By, Error, Format, Options, Report, SampleType};
use std::io::Read;
use std::path::{Path, PathBuf};

const HEADER: &str = "oxmalloc-snapshot 1
pid 4242
ppid 1
exe /usr/bin/prog
cmdline prog --flag value
mode full
interval 0
reason exit
seq 3
time 1733561234.123456789
uptime 12.345678
";

/// Modules whose files do not exist: library names and offsets only.
const BODY: &str = "module 0 0x400000 0x500000 0x0 - /nonexistent/prog
module 1 0x7f0000000000 0x7f0000100000 0x7effff000000 abcd /nonexistent/libc.so.6
module 2 0x7f1000000000 0x7f1000100000 0x7f1000000000 - /nonexistent/dir with space/libfoo.so
module 3 0x7f2000000000 0x7f2000100000 0x7f2000000000 - /nonexistent/liboxmalloc.so
thread 1 4242 main
thread 2 4243 worker one
stack 1 3 0x7f0000000100 0x7f1000000200 0x400100
stack 2 2 0x7f2000000010 0x400200
stack 3 1 0x7f0000000300
site 1 1 1 10 10240 4 4096
site 2 1 2 5 5000 5 5000
site 3 2 1 100 1000000 50 500000
site 4 3 2 2 64 0 0
size 0 3 0 1 0
size 7 100 10000 60 6000
size 11 10 10240 4 4096
totals 506208 58 800000 70 1015304 117
map 0x7f3000000000 1048576 rw- private 3
map 0x7f3000200000 65536 rw- private -1
region 0x7f3000000000 0x7f3000100000 rw-p 512 program-mmap -
region 0x7f3000200000 0x7f3000210000 rw-p 64 program-mmap -
region 0x555500000000 0x555500400000 rw-p 2048 oxmalloc [heap]
region 0x7f4000000000 0x7f4000010000 rw-p 32 tracker -
region 0x7f0000000000 0x7f0000100000 r-xp 400 library /nonexistent/libc.so.6
arena 0 4194304 600000 3000000 1000 500000
arena 1 1048576 0 1000000 0 100000
allocator 2097152 2 131072
tracker 65536
some-future-record 1 2 3
end
";

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn full_snapshot(dir: &Path) -> PathBuf {
    write(dir, "snapshot-4242-3.oxm", &format!("{HEADER}{BODY}"))
}

fn lib<'a>(r: &'a Report, name: &str) -> &'a oxmalloc_report::aggregate::LibraryFigures {
    r.aggregate
        .libraries
        .iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("no library {name}: {:?}", r.aggregate.libraries))
}

#[test]
fn parses_every_record() {
    let d = tempfile::tempdir().unwrap();
    let s = Snapshot::read(&full_snapshot(d.path())).unwrap();
    assert_eq!((s.pid, s.ppid, s.seq), (4242, 1, 3));
    assert_eq!(s.exe, "/usr/bin/prog");
    assert_eq!(s.cmdline, "prog --flag value");
    assert_eq!(s.reason, "exit");
    assert_eq!((s.time.secs, s.time.nanos), (1733561234, 123456789));
    assert_eq!(s.modules.len(), 4);
    assert_eq!(s.modules[1].build_id.as_deref(), Some("abcd"));
    assert_eq!(s.modules[2].path, "/nonexistent/dir with space/libfoo.so");
    assert_eq!(s.threads[1].name, "worker one");
    assert_eq!(s.stacks[&1], vec![0x7f0000000100, 0x7f1000000200, 0x400100]);
    assert_eq!(s.sites.len(), 4);
    assert_eq!(s.sizes[1].range(), (65, 128));
    assert_eq!(s.sizes[0].range(), (0, 1));
    assert_eq!(s.totals.live_bytes, 506208);
    assert_eq!(s.maps[1].site, None);
    assert_eq!(s.regions[2].path.as_deref(), Some("[heap]"));
    assert_eq!(s.regions[0].path, None);
    assert_eq!(s.arenas.len(), 2);
    assert_eq!(s.allocator.trimmable_bytes, 131072);
    assert_eq!(s.tracker_bytes, 65536);
}

#[test]
fn aggregates_exactly() {
    let d = tempfile::tempdir().unwrap();
    let r = Report::load(&full_snapshot(d.path())).unwrap();
    let a = &r.aggregate;

    // Calling libraries: past libc and liboxmalloc; a libc-only stack stays libc's.
    let foo = lib(&r, "libfoo.so");
    assert_eq!(
        (
            foo.malloc.live_bytes,
            foo.malloc.live_blocks,
            foo.malloc.total_bytes,
            foo.malloc.total_blocks
        ),
        (6144, 6, 15240, 15)
    );
    assert_eq!(foo.mmap_reserved, 0);
    let prog = lib(&r, "prog");
    assert_eq!(
        (prog.malloc.live_bytes, prog.malloc.live_blocks),
        (500000, 50)
    );
    assert_eq!((prog.mmap_reserved, prog.mmap_committed), (1048576, 524288));
    assert_eq!(prog.reserved(), 1548576);
    assert_eq!(prog.committed(), 1024288);
    let libc = lib(&r, "libc.so.6");
    assert_eq!((libc.malloc.live_bytes, libc.malloc.total_blocks), (64, 2));
    let unknown = lib(&r, "[unknown]");
    assert_eq!(
        (unknown.mmap_reserved, unknown.mmap_committed),
        (65536, 65536)
    );
    let names: Vec<&str> = a.libraries.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["prog", "[unknown]", "libfoo.so", "libc.so.6"]);

    // Totals.
    let t = &a.totals;
    assert_eq!(t.reserved, 4194304 + 1048576 + 2097152 + 1048576 + 65536);
    assert_eq!(t.committed, 2048 * 1024 + (512 + 64) * 1024);
    assert_eq!((t.malloc_bytes, t.malloc_blocks), (506208, 58));
    assert_eq!((t.mmap_reserved, t.mmap_committed), (1114112, 589824));

    // Sites, largest live first.
    let ids: Vec<u64> = a.sites.iter().map(|s| s.id).collect();
    assert_eq!(ids, [3, 1, 4, 2]);

    // Threads.
    let t1 = a.threads.iter().find(|t| t.slot == 1).unwrap();
    assert_eq!(
        (
            t1.figures.live_bytes,
            t1.figures.live_blocks,
            t1.figures.total_bytes,
            t1.figures.total_blocks
        ),
        (506144, 56, 1010240, 110)
    );
    assert_eq!(t1.name.as_deref(), Some("main"));
    let t2 = a.threads.iter().find(|t| t.slot == 2).unwrap();
    assert_eq!((t2.figures.live_bytes, t2.figures.total_bytes), (64, 5064));
    assert_eq!(t2.tid, Some(4243));

    // Size classes, exact.
    let c7 = a.sizes.iter().find(|c| c.class == 7).unwrap();
    assert_eq!((c7.min, c7.max), (65, 128));
    assert_eq!((c7.figures.live_bytes, c7.figures.live_blocks), (4000, 40));

    // Stacks: stack 1's two sites together.
    let s1 = a.stacks.iter().find(|s| s.stack == 1).unwrap();
    assert_eq!((s1.figures.live_bytes, s1.figures.total_blocks), (6144, 15));

    // Allocator and regions.
    assert_eq!(a.allocator.held, 4194304 + 1048576 + 2097152);
    assert_eq!(a.allocator.arena_free, 4000000);
    assert_eq!(a.allocator.resident, 2048 * 1024);
    assert_eq!(a.allocator.tracker_resident, 32 * 1024);
    let pm = a.regions.iter().find(|k| k.kind == "program-mmap").unwrap();
    assert_eq!((pm.count, pm.reserved, pm.rss), (2, 0x110000, 576 * 1024));
}

#[test]
fn sample_mode_scales_sites() {
    let d = tempfile::tempdir().unwrap();
    let header = HEADER
        .replace("mode full", "mode sample")
        .replace("interval 0", "interval 524288");
    let body = "stack 1 1 0x400100
stack 2 1 0x400200
site 1 1 1 2 1048576 1 524288
site 2 2 1 1 64 0 0
totals 1 1 1 1 1 1
end
";
    let p = write(d.path(), "s.oxm", &format!("{header}{body}"));
    let r = Report::load(&p).unwrap();
    let site = |id| r.aggregate.sites.iter().find(|s| s.id == id).unwrap();

    let s1 = 1.0 / (1.0 - (-1.0f64).exp()); // avg 524288 = I
    assert!((scale_factor(2, 1048576, 524288) - s1).abs() < 1e-12);
    let f = site(1).figures;
    assert_eq!(f.total_bytes, (1048576.0 * s1).round() as u64);
    assert_eq!(f.total_blocks, (2.0 * s1).round() as u64);
    assert_eq!(f.live_bytes, (524288.0 * s1).round() as u64);
    assert_eq!(f.live_blocks, (1.0 * s1).round() as u64);

    let s2 = 1.0 / (1.0 - (-64.0f64 / 524288.0).exp()); // about I/64
    let f = site(2).figures;
    assert_eq!(f.total_bytes, (64.0 * s2).round() as u64);
    assert!((f.total_bytes as f64 - 524288.0).abs() < 64.0, "{f:?}");
    assert_eq!(f.total_blocks, s2.round() as u64);

    // Outside sample mode nothing is scaled.
    assert_eq!(scale_factor(2, 1048576, 0), 1.0);
    let text = String::from_utf8(render(&p, Format::Text, &Options::default()).unwrap()).unwrap();
    assert!(
        text.starts_with(
            "Native Memory Tracking (oxmalloc, mode sample:512K, pid 4242, /usr/bin/prog)"
        ),
        "{text}"
    );
    assert!(text.contains("Live blocks at exit (estimated)"), "{text}");
}

fn expect_err(text: &[u8]) -> (Error, String, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("x.oxm");
    std::fs::write(&p, text).unwrap();
    let e = Snapshot::read(&p).unwrap_err();
    let msg = e.to_string();
    assert!(!msg.contains('\n'), "{msg}");
    assert!(msg.contains(&p.display().to_string()), "{msg}");
    (e, msg, p)
}

#[test]
fn errors() {
    let (e, msg, _) = expect_err(b"hello world\n");
    assert!(matches!(e, Error::NotSnapshot { .. }), "{e:?}");
    assert!(msg.contains("not an oxmalloc snapshot"), "{msg}");
    let (e, _, _) = expect_err(b"");
    assert!(matches!(e, Error::NotSnapshot { .. }), "{e:?}");
    let (e, _, _) = expect_err(b"\x7fELF\x02\x01\x01\0\0\0");
    assert!(matches!(e, Error::NotSnapshot { .. }), "{e:?}");

    let (e, msg, _) = expect_err(b"oxmalloc-snapshot 2\npid 1\nend\n");
    assert!(
        matches!(&e, Error::UnsupportedVersion { version, .. } if version == "2"),
        "{e:?}"
    );
    assert!(msg.contains("version 2"), "{msg}");

    // Truncated: no end line, even mid-record.
    let full = format!("{HEADER}{BODY}");
    let cut = &full[..full.find("site 3").unwrap() + 8];
    let (e, msg, _) = expect_err(cut.as_bytes());
    assert!(matches!(e, Error::Truncated { .. }), "{e:?}");
    assert!(msg.contains("truncated"), "{msg}");

    // Garbled record: its line number.
    let bad = full.replace("site 2 1 2 5 5000 5 5000", "site 2 1 two 5 5000 5 5000");
    let line = bad.lines().position(|l| l.starts_with("site 2 ")).unwrap() + 1;
    let (e, msg, _) = expect_err(bad.as_bytes());
    assert!(
        matches!(e, Error::Malformed { line: l, .. } if l == line),
        "{e:?}"
    );
    assert!(msg.contains(&format!("malformed line {line}")), "{msg}");
    assert!(msg.contains("SLOT"), "{msg}");

    let bad = full.replace(
        "stack 2 2 0x7f2000000010 0x400200",
        "stack 2 3 0x7f2000000010 0x400200",
    );
    let (e, _, _) = expect_err(bad.as_bytes());
    assert!(matches!(e, Error::Malformed { .. }), "{e:?}");
    let bad = full.replace("mode full", "mode fancy");
    let (e, _, _) = expect_err(bad.as_bytes());
    assert!(matches!(e, Error::Malformed { .. }), "{e:?}");
    let bad = full.replace("totals 506208 58 800000 70 1015304 117\n", "");
    let (e, msg, _) = expect_err(bad.as_bytes());
    assert!(matches!(e, Error::Missing { .. }), "{e:?}");
    assert!(msg.contains("totals"), "{msg}");

    // A missing file and an empty directory.
    let d = tempfile::tempdir().unwrap();
    let e = render(&d.path().join("nope"), Format::Text, &Options::default()).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
    let e = render(d.path(), Format::Text, &Options::default()).unwrap_err();
    assert!(matches!(e, Error::NoSnapshot { .. }), "{e:?}");
    assert!(e.to_string().contains("no snapshot"), "{e}");
}

#[test]
fn latest_snapshot_in_directory() {
    let d = tempfile::tempdir().unwrap();
    let mk = |pid: u32, seq: u32, time: &str| {
        let h = HEADER
            .replace("pid 4242", &format!("pid {pid}"))
            .replace("seq 3", &format!("seq {seq}"))
            .replace("time 1733561234.123456789", &format!("time {time}"));
        write(
            d.path(),
            &format!("snapshot-{pid}-{seq}.oxm"),
            &format!("{h}totals 0 0 0 0 0 0\nend\n"),
        )
    };
    mk(10, 1, "100.5");
    let want = mk(10, 2, "200.000000001");
    mk(10, 3, "200.0"); // later seq, earlier time
    let p11 = mk(11, 1, "150");
    write(d.path(), "snapshot-12-1.oxm.tmp", "junk");
    write(d.path(), "notes.txt", "junk");
    assert_eq!(
        oxmalloc_report::latest_in_dir(d.path(), None).unwrap(),
        want
    );
    assert_eq!(
        oxmalloc_report::latest_in_dir(d.path(), Some(11)).unwrap(),
        p11
    );
    let e = oxmalloc_report::latest_in_dir(d.path(), Some(99)).unwrap_err();
    assert!(e.to_string().contains("pid 99"), "{e}");
    // Same time: the higher seq.
    let want = mk(10, 4, "200.000000001");
    assert_eq!(
        oxmalloc_report::latest_in_dir(d.path(), Some(10)).unwrap(),
        want
    );
    let r = Report::load(d.path()).unwrap();
    assert_eq!(r.snapshot.seq, 4);
}

// ------------------------------------------------------------------ symbols

#[inline(never)]
pub fn some_fn_for_the_symboliser(x: u64) -> u64 {
    let mut acc = x;
    for i in 0..std::hint::black_box(x) {
        acc = acc.rotate_left(7) ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    std::hint::black_box(acc)
}

/// The test executable's module record: its mapped text range and load bias.
fn self_module(build_id: &str) -> (String, u64) {
    let exe = std::fs::read_link("/proc/self/exe").unwrap();
    let data = std::fs::read(&exe).unwrap();
    let obj = object::File::parse(&*data).unwrap();
    let segs: Vec<(u64, u64)> = obj.segments().map(|s| (s.address(), s.size())).collect();
    let lo = segs.iter().map(|s| s.0).min().unwrap();
    let hi = segs.iter().map(|s| s.0 + s.1).max().unwrap();
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let exe_s = exe.display().to_string();
    let first = maps
        .lines()
        .filter(|l| l.ends_with(&exe_s))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let start = u64::from_str_radix(f[0].split('-').next().unwrap(), 16).unwrap();
            let off = u64::from_str_radix(f[2], 16).unwrap();
            start - off
        })
        .min()
        .unwrap();
    let bias = first - (lo & !0xfff);
    let id = match build_id {
        "self" => obj
            .build_id()
            .unwrap()
            .map(|b| b.iter().map(|x| format!("{x:02x}")).collect())
            .unwrap_or_else(|| "-".to_string()),
        other => other.to_string(),
    };
    (
        format!(
            "module 0 {:#x} {:#x} {bias:#x} {id} {exe_s}\n",
            bias + lo,
            bias + hi
        ),
        bias,
    )
}

fn symbolise_self(build_id: &str) -> (oxmalloc_report::symbols::Frame, u64) {
    symbolise_self_at(build_id, None)
}

/// As the test executable, but read from `path` (a copy of it) when given.
fn symbolise_self_at(
    build_id: &str,
    path: Option<&Path>,
) -> (oxmalloc_report::symbols::Frame, u64) {
    let (mut module, _) = self_module(build_id);
    if let Some(p) = path {
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        module = module.replace(&exe.display().to_string(), &p.display().to_string());
    }
    let ip = some_fn_for_the_symboliser as fn(u64) -> u64 as usize as u64 + 4;
    let text = format!("{HEADER}{module}stack 1 1 {ip:#x}\ntotals 0 0 0 0 0 0\nend\n");
    let s = Snapshot::parse(Path::new("self.oxm"), text.as_bytes()).unwrap();
    let mut sym = Symbolizer::new(&s);
    (sym.frame(ip), ip)
}

#[test]
fn symbolises_the_test_executable() {
    assert_ne!(some_fn_for_the_symboliser(3), 0);
    let exe = std::fs::read_link("/proc/self/exe").unwrap();
    let base = exe.file_name().unwrap().to_string_lossy().into_owned();
    for id in ["self", "-"] {
        let (f, _) = symbolise_self(id);
        assert_eq!(f.library, base);
        let func = f.function().unwrap_or_else(|| panic!("no function: {f:?}"));
        assert!(func.ends_with("some_fn_for_the_symboliser"), "{func}");
        assert!(!func.contains("::h"), "hash left in {func}");
        assert_eq!(f.symbol_offset, Some(4), "{f:?}");
        let shown = f.display();
        assert!(shown.starts_with(&format!("{base}!")), "{shown}");
        assert!(shown.contains("some_fn_for_the_symboliser+0x4"), "{shown}");
        // DWARF (line tables are on in both profiles): this very file.
        let last = f.lines.last().unwrap();
        assert!(
            last.file
                .as_deref()
                .is_some_and(|p| p.ends_with("report.rs")),
            "{f:?}"
        );
        assert!(last.line.is_some(), "{f:?}");
    }
}

/// A stripped copy whose DWARF is in a separate file named by .gnu_debuglink.
#[test]
fn separate_debug_file_through_debuglink() {
    let objcopy = Path::new("/usr/bin/objcopy");
    if !objcopy.is_file() {
        eprintln!("note: no objcopy; skipping the .gnu_debuglink test");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let exe = std::fs::read_link("/proc/self/exe").unwrap();
    let debug = d.path().join("prog.debug");
    let stripped = d.path().join("prog");
    let run = |args: &[&std::ffi::OsStr]| {
        let st = std::process::Command::new(objcopy)
            .args(args)
            .status()
            .unwrap();
        assert!(st.success(), "objcopy {args:?}");
    };
    run(&[
        "--only-keep-debug".as_ref(),
        exe.as_os_str(),
        debug.as_os_str(),
    ]);
    let link = format!("--add-gnu-debuglink={}", debug.display());
    run(&[
        "--strip-debug".as_ref(),
        link.as_ref(),
        exe.as_os_str(),
        stripped.as_os_str(),
    ]);
    {
        let data = std::fs::read(&stripped).unwrap();
        let obj = object::File::parse(&*data).unwrap();
        assert!(
            object::Object::section_by_name(&obj, ".debug_info").is_none(),
            "still has DWARF"
        );
    }
    let (f, _) = symbolise_self_at("self", Some(&stripped));
    assert_eq!(f.library, "prog");
    assert!(
        f.function()
            .is_some_and(|n| n.ends_with("some_fn_for_the_symboliser")),
        "{f:?}"
    );
    let last = f.lines.last().unwrap();
    assert!(
        last.file
            .as_deref()
            .is_some_and(|p| p.ends_with("report.rs")),
        "{f:?}"
    );

    // Without the debug file: the symbol table still names the function, no file:line.
    std::fs::remove_file(&debug).unwrap();
    let (f, _) = symbolise_self_at("self", Some(&stripped));
    assert!(
        f.function()
            .is_some_and(|n| n.ends_with("some_fn_for_the_symboliser")),
        "{f:?}"
    );
    assert!(f.lines.last().unwrap().file.is_none(), "{f:?}");
}

#[test]
fn other_build_id_gives_library_and_offset_only() {
    let (f, ip) = symbolise_self("0123456789abcdef");
    let (_, bias) = self_module("-");
    assert!(f.function().is_none(), "{f:?}");
    assert_eq!(f.offset, ip - bias);
    assert!(
        f.display().contains(&format!("+{:#x}", ip - bias)),
        "{}",
        f.display()
    );
}

// ------------------------------------------------------------------ formats

#[test]
fn text_report() {
    let d = tempfile::tempdir().unwrap();
    let p = full_snapshot(d.path());
    let text =
        String::from_utf8(render(d.path(), Format::Text, &Options::default()).unwrap()).unwrap();
    assert!(
        text.starts_with("Native Memory Tracking (oxmalloc, mode full, pid 4242, /usr/bin/prog)\n"),
        "{text}"
    );
    assert!(text.contains(&p.display().to_string()));
    assert!(
        text.contains("\nTotal: reserved=8256KB, committed=2624KB\n"),
        "{text}"
    );
    assert!(text.contains("\n       malloc: 494KB #58\n"), "{text}");
    assert!(
        text.contains("\n       mmap: reserved=1088KB, committed=576KB\n"),
        "{text}"
    );
    let prog = format!("-{:>26} (reserved=1512KB, committed=1000KB)\n", "prog");
    assert!(text.contains(&prog), "{text}");
    assert!(
        text.contains(&format!("{}(malloc=488KB #50)\n", " ".repeat(28))),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{}(mmap: reserved=1024KB, committed=512KB)\n",
            " ".repeat(28)
        )),
        "{text}"
    );
    // Sections by size: prog first, libc last.
    assert!(text.find(" prog (").unwrap() < text.find(" libfoo.so (").unwrap());
    assert!(text.contains("Top call sites (live)"), "{text}");
    assert!(text.contains("libfoo.so+0x200"), "{text}");
    assert!(text.contains("Live blocks at exit: "), "{text}");
    assert!(text.contains("Threads: 2"), "{text}");
    assert!(text.contains("worker one"), "{text}");
    assert!(text.contains("Size classes"), "{text}");
    assert!(text.contains("held by oxmalloc: 7168KB"), "{text}");
    assert!(
        text.contains("malloc_trim would give back: 128KB"),
        "{text}"
    );
    assert!(text.contains("program-mmap"), "{text}");

    // --top 1 and --by thread.
    let opts = Options {
        top: 1,
        by: Some(By::Thread),
        ..Options::default()
    };
    let text = String::from_utf8(render(&p, Format::Text, &opts).unwrap()).unwrap();
    assert!(
        text.contains("thread 1 (tid 4242, main) (reserved=494KB"),
        "{text}"
    );
    assert!(text.contains("(1 more threads; see --top)"), "{text}");
    assert_eq!(text.matches("\n[").count(), 1, "{text}");

    // The run summary stops before the call sites.
    let (file, sum) = oxmalloc_report::summary_of_latest(d.path(), Some(4242), 10).unwrap();
    assert_eq!(file, p);
    assert!(sum.contains("Total: "));
    assert!(!sum.contains("Top call sites"));
}

#[test]
fn json_report() {
    let d = tempfile::tempdir().unwrap();
    let p = full_snapshot(d.path());
    let out = render(&p, Format::Json, &Options::default()).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["schema"], 1);
    assert_eq!(v["process"]["pid"], 4242);
    assert_eq!(v["process"]["mode"], "full");
    assert_eq!(v["process"]["time"], "1733561234.123456789");
    assert_eq!(v["totals"]["reserved"], 8454144u64);
    assert_eq!(v["libraries"][0]["name"], "prog");
    assert_eq!(v["libraries"][0]["mmap_reserved"], 1048576);
    let site1 = v["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == 1)
        .unwrap();
    assert_eq!(site1["library"], "libfoo.so");
    assert_eq!(site1["thread"], 1);
    assert_eq!(site1["live_bytes"], 6144);
    assert_eq!(site1["frames"][1]["library"], "libfoo.so");
    assert_eq!(site1["frames"][1]["offset"], 0x200);
    assert_eq!(site1["frames"][1]["ip"], 0x7f1000000200u64);
    assert!(site1["frames"][1]["function"].is_null());
    assert_eq!(v["threads"].as_array().unwrap().len(), 2);
    assert_eq!(v["size_classes"].as_array().unwrap().len(), 3);
    assert_eq!(v["arenas"].as_array().unwrap().len(), 2);
    assert_eq!(v["regions"].as_array().unwrap().len(), 5);
    assert_eq!(v["maps"][0]["library"], "prog");
    assert_eq!(v["maps"][0]["committed"], 524288);
}

#[test]
fn folded_report() {
    let d = tempfile::tempdir().unwrap();
    let p = full_snapshot(d.path());
    let out = String::from_utf8(render(&p, Format::Folded, &Options::default()).unwrap()).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines.contains(&"prog+0x400100;libfoo.so+0x200;libc.so.6+0x1000100 6144"),
        "{out}"
    );
    assert!(
        lines.contains(&"prog+0x400200;liboxmalloc.so+0x10 500000"),
        "{out}"
    );
    assert_eq!(lines.len(), 3, "{out}"); // site 2 has nothing live
    let opts = Options {
        sample_type: SampleType::AllocObjects,
        by: Some(By::Library),
        ..Options::default()
    };
    let out = String::from_utf8(render(&p, Format::Folded, &opts).unwrap()).unwrap();
    assert!(
        out.lines()
            .any(|l| l == "[libfoo.so];prog+0x400100;libfoo.so+0x200;libc.so.6+0x1000100 15"),
        "{out}"
    );
}

#[test]
fn pprof_decodes_back() {
    let d = tempfile::tempdir().unwrap();
    let p = full_snapshot(d.path());
    let gz = render(&p, Format::Pprof, &Options::default()).unwrap();
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut raw)
        .unwrap();
    let prof: Profile = prost::Message::decode(&raw[..]).unwrap();
    let s = |i: i64| prof.string_table[i as usize].as_str();
    assert_eq!(s(0), "");
    let types: Vec<(&str, &str)> = prof
        .sample_type
        .iter()
        .map(|t| (s(t.r#type), s(t.unit)))
        .collect();
    assert_eq!(
        types,
        [
            ("alloc_objects", "count"),
            ("alloc_space", "bytes"),
            ("inuse_objects", "count"),
            ("inuse_space", "bytes")
        ]
    );
    assert_eq!(s(prof.default_sample_type), "inuse_space");
    let pt = prof.period_type.as_ref().unwrap();
    assert_eq!((s(pt.r#type), s(pt.unit)), ("space", "bytes"));
    assert_eq!(prof.sample.len(), 4);
    let sum = |i: usize| prof.sample.iter().map(|x| x.value[i]).sum::<i64>();
    assert_eq!(sum(3), 6144 + 500000 + 64);
    assert_eq!(sum(2), 6 + 50 + 2);
    assert_eq!(sum(1), 10240 + 5000 + 1000000 + 64);
    assert_eq!(sum(0), 117);
    assert_eq!(prof.mapping.len(), 4);
    assert_eq!(s(prof.mapping[1].build_id), "abcd");
    assert_eq!(prof.location.len(), 6);
    for x in &prof.sample {
        let keys: Vec<&str> = x.label.iter().map(|l| s(l.key)).collect();
        assert_eq!(keys, ["library", "thread"]);
        for id in &x.location_id {
            assert!(prof.location.iter().any(|l| l.id == *id));
        }
    }
    let biggest = prof.sample.iter().max_by_key(|x| x.value[3]).unwrap();
    assert_eq!(s(biggest.label[0].str), "prog");
    assert!(s(biggest.label[1].str).starts_with("main"));
    // The leaf first.
    let leaf = prof
        .location
        .iter()
        .find(|l| l.id == biggest.location_id[0])
        .unwrap();
    assert_eq!(leaf.address, 0x7f2000000010);
    assert_eq!(leaf.mapping_id, 4);
}
