//! `oxmalloc`: run a program with liboxmalloc preloaded, and read its tracking snapshots.
//!
//! ```text
//! oxmalloc run [--stats | --stats-file FILE] [--lib PATH] [--track MODE [--out DIR] [--every SECS]] -- CMD [ARGS...]
//! oxmalloc report DIR|FILE [--format text|json|pprof|folded] [-o OUT] [--by ...] [--top N]
//! ```
//!
//! The report logic lives in the oxmalloc-report crate; this file only parses arguments (clap)
//! and runs the command.
//!
//! The library is looked up, in order:
//!
//! 1. `--lib PATH`;
//! 2. the environment variable `OXMALLOC_LIB`;
//! 3. `liboxmalloc.so` in the directory of the `oxmalloc` executable;
//! 4. when the executable lives in a cargo target directory inside the
//!    oxmalloc workspace, `cargo build --release -p oxmalloc-cabi` is run in
//!    the workspace root and `target/release/liboxmalloc.so` is used.
//!
//! An explicit choice (1 or 2) that does not exist is an error; there is no
//! fallback to the later steps.
//!
//! The command runs with `LD_PRELOAD` set to the library, prepended to any
//! `LD_PRELOAD` already in the environment. `--stats` additionally sets
//! `OXMALLOC_STATS_AT_EXIT=<this process's pid>`, which makes the library print
//! `malloc_stats()` to stderr when the command exits (only in the command, a
//! direct child of this process, not in the processes it starts).
//! `--stats-file FILE` writes that report, with malloc_info's XML, to FILE
//! instead (owner-only, whole or not at all; `%p` in FILE becomes the pid).
//!
//! Exit status: the command's own status, or 128+N when it was killed by
//! signal N; 2 for usage errors, a missing library or a command that cannot
//! be started (with one `oxmalloc: ...` line on stderr).

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus, Stdio};

const LIB_NAME: &str = "liboxmalloc.so";
const CABI_PACKAGE: &str = "oxmalloc-cabi";
const ENV_LIB: &str = "OXMALLOC_LIB";
const ENV_STATS: &str = "OXMALLOC_STATS_AT_EXIT";
const EXIT_USAGE: u8 = 2;

const HELP: &str = "\
oxmalloc: run a program with the oxmalloc allocator (liboxmalloc.so) preloaded.

Usage:
  oxmalloc run [--stats | --stats-file FILE] [--lib PATH]
               [--track MODE [--out DIR] [--every SECS]] -- CMD [ARGS...]
  oxmalloc report DIR|FILE [--format text|json|pprof|folded] [-o OUT]
               [--by site|library|thread|size] [--top N] [--sample-type TYPE]
  oxmalloc --help
  oxmalloc --version

Options for `run`:
  --stats        print malloc_stats() to stderr when CMD exits
                 (sets OXMALLOC_STATS_AT_EXIT=<pid of oxmalloc> for CMD)
  --stats-file FILE
                 write that report and malloc_info's XML to FILE instead
                 (mode 0600, replaced atomically, never through a symlink;
                 %p in FILE becomes CMD's pid)
  --lib PATH     use this liboxmalloc.so
  --track MODE   record where memory goes: summary, sample[:SIZE] or full
                 (docs/tracking.md); the summary is printed when CMD exits
  --out DIR      where the snapshots go (default oxmalloc-track)
  --every SECS   also write a snapshot every SECS seconds
  --             end of options; everything after it is CMD and its ARGS

`report` reads the latest snapshot of DIR (or FILE) and writes text (the
default), json, pprof (gzipped profile.proto, for go tool pprof) or folded
stacks; see `oxmalloc report --help`.

The library is, in order of preference: --lib PATH; $OXMALLOC_LIB;
liboxmalloc.so next to the oxmalloc executable; or, when oxmalloc runs from a
cargo target directory of the oxmalloc workspace, the result of
`cargo build --release -p oxmalloc-cabi` (target/release/liboxmalloc.so),
built on demand.

CMD runs with LD_PRELOAD=<library>, prepended to any existing LD_PRELOAD.
oxmalloc exits with CMD's exit status (128+N if CMD was killed by signal N),
or 2 when it cannot run CMD.";

/// A fatal error: printed as one `oxmalloc: ...` line, exit status 2.
#[derive(Debug)]
struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, Error> {
    Err(Error(msg.into()))
}

fn main() -> ExitCode {
    match real_main() {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("oxmalloc: {e}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn real_main() -> Result<u8, Error> {
    let mut args = std::env::args_os().skip(1);
    let Some(first) = args.next() else {
        return err("no subcommand given (usage: oxmalloc run [--stats | --stats-file FILE] [--lib PATH] -- CMD [ARGS...]; see 'oxmalloc --help')");
    };
    match first.to_str() {
        Some("-h" | "--help" | "help") => {
            print_stdout(HELP);
            Ok(0)
        }
        Some("-V" | "--version" | "version") => {
            print_stdout(&format!("oxmalloc {}", env!("CARGO_PKG_VERSION")));
            Ok(0)
        }
        Some("run") => {
            let opts = match parse_run(args.collect())? {
                Parsed::Help => {
                    print_stdout(HELP);
                    return Ok(0);
                }
                Parsed::Run(opts) => opts,
            };
            run(opts)
        }
        Some("report") => match report(args.collect()) {
            Ok(c) => Ok(c),
            // a report that cannot be made: one line, exit status 1
            Err(e) => {
                eprintln!("oxmalloc: {e}");
                Ok(1)
            }
        },
        _ => err(format!(
            "unknown subcommand or option '{}' (try 'oxmalloc --help')",
            first.to_string_lossy()
        )),
    }
}

fn print_stdout(s: &str) {
    let mut out = io::stdout().lock();
    // A closed stdout (e.g. `oxmalloc --help | head -0`) is not worth a panic.
    let _ = writeln!(out, "{s}");
    let _ = out.flush();
}

#[derive(Debug)]
struct RunOpts {
    stats: bool,
    /// --stats-file: the report goes to this file (written atomically) instead of stderr.
    stats_file: Option<OsString>,
    lib: Option<OsString>,
    /// --track MODE (validated), --out DIR, --every SECS.
    track: Option<String>,
    out: Option<OsString>,
    every: Option<u64>,
    /// CMD followed by its ARGS; never empty.
    command: Vec<OsString>,
}

enum Parsed {
    Help,
    Run(RunOpts),
}

#[derive(clap::Parser, Debug)]
#[command(
    name = "oxmalloc run",
    disable_help_flag = true,
    disable_version_flag = true
)]
struct RunArgs {
    #[arg(short = 'h', long = "help")]
    help: bool,
    #[arg(long)]
    stats: bool,
    #[arg(long, value_name = "FILE", value_parser = non_empty)]
    stats_file: Option<OsString>,
    #[arg(long, value_name = "PATH", value_parser = non_empty)]
    lib: Option<OsString>,
    #[arg(long, value_name = "MODE", value_parser = track_mode)]
    track: Option<String>,
    #[arg(long, value_name = "DIR", value_parser = non_empty)]
    out: Option<OsString>,
    #[arg(long, value_name = "SECS", value_parser = every_secs)]
    every: Option<u64>,
    /// CMD and its ARGS: everything from the first argument that is not an option (or after
    /// `--`) on, options included.
    #[arg(value_name = "CMD", trailing_var_arg = true)]
    command: Vec<OsString>,
}

fn non_empty(v: &str) -> Result<OsString, String> {
    if v.is_empty() {
        Err("needs a non-empty value".into())
    } else {
        Ok(OsString::from(v))
    }
}

fn track_mode(v: &str) -> Result<String, String> {
    match oxmalloc_track::parse_mode(v.as_bytes()) {
        Some(_) => Ok(v.to_string()),
        None => Err("not off, summary, sample[:SIZE] or full".into()),
    }
}

fn every_secs(v: &str) -> Result<u64, String> {
    match v.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err("not a whole number of seconds above 0".into()),
    }
}

fn parse_run(args: Vec<OsString>) -> Result<Parsed, Error> {
    use clap::Parser;
    // An option-looking first word of the command is clap's to reject only before the command
    // starts: a first argument that is not an option starts CMD (`oxmalloc run ls --stats`).
    let mut argv = vec![OsString::from("oxmalloc run")];
    argv.extend(args);
    let a = match RunArgs::try_parse_from(argv) {
        Ok(a) => a,
        Err(e) => {
            let msg = e.to_string();
            let first = msg
                .lines()
                .next()
                .unwrap_or("bad arguments")
                .trim_start_matches("error: ");
            let hint = if first.contains("unexpected argument '-") {
                " (put the command after '--')"
            } else {
                ""
            };
            return err(format!("run: {first}{hint} (see 'oxmalloc --help')"));
        }
    };
    if a.help {
        return Ok(Parsed::Help);
    }
    if a.command.is_empty() {
        return err(
            "no command given (usage: oxmalloc run [--stats | --stats-file FILE] [--lib PATH] -- CMD [ARGS...])",
        );
    }
    if a.track.is_none() && (a.out.is_some() || a.every.is_some()) {
        return err("--out and --every go with --track MODE");
    }
    Ok(Parsed::Run(RunOpts {
        stats: a.stats || a.stats_file.is_some(),
        stats_file: a.stats_file,
        lib: a.lib,
        track: a.track,
        out: a.out,
        every: a.every,
        command: a.command,
    }))
}

fn run(opts: RunOpts) -> Result<u8, Error> {
    let lib = find_library(opts.lib.as_deref())?;
    let lib_bytes = lib.as_os_str().as_bytes();
    // ld.so splits LD_PRELOAD on ':' and whitespace, with no escaping.
    if lib_bytes
        .iter()
        .any(|&b| b == b':' || b == b' ' || b == b'\t' || b == b'\n')
    {
        return err(format!(
            "library path {} contains ':' or whitespace, which LD_PRELOAD cannot express",
            lib.display()
        ));
    }

    let mut preload = lib.as_os_str().to_os_string();
    if let Some(old) = std::env::var_os("LD_PRELOAD") {
        if !old
            .as_bytes()
            .iter()
            .all(|b| b.is_ascii_whitespace() || *b == b':')
        {
            preload.push(":");
            preload.push(&old);
        }
    }

    let program = &opts.command[0];
    let mut cmd = Command::new(program);
    cmd.args(&opts.command[1..]).env("LD_PRELOAD", &preload);
    if opts.stats {
        // Our pid: the library then reports only in its direct children (the command itself,
        // exec chains included), not in every process the command starts.
        cmd.env(ENV_STATS, std::process::id().to_string());
        match &opts.stats_file {
            Some(f) => cmd.env("OXMALLOC_STATS_FILE", f),
            None => cmd.env_remove("OXMALLOC_STATS_FILE"),
        };
        eprintln!(
            "oxmalloc: running {} with {}",
            shell_words(&opts.command),
            lib.display()
        );
    }

    let track_dir = match &opts.track {
        Some(mode) if mode != "off" => {
            let dir = PathBuf::from(opts.out.clone().unwrap_or_else(|| "oxmalloc-track".into()));
            let dir = std::path::absolute(&dir).unwrap_or(dir);
            cmd.env("OXMALLOC_TRACK", mode).env("OXMALLOC_OUT", &dir);
            match opts.every {
                Some(n) => cmd.env("OXMALLOC_TRACK_EVERY", n.to_string()),
                None => cmd.env_remove("OXMALLOC_TRACK_EVERY"),
            };
            Some(dir)
        }
        Some(_) => {
            cmd.env_remove("OXMALLOC_TRACK");
            None
        }
        None => None,
    };

    let signals = signals::IgnoreWhileWaiting::install();
    signals.restore_in_child(&mut cmd);
    let mut child = cmd.spawn().map_err(|e| spawn_error(program, e))?;
    let pid = child.id();
    let status = child
        .wait()
        .map_err(|e| Error(format!("waiting for {}: {e}", program.to_string_lossy())))?;
    drop(signals);
    if let Some(dir) = track_dir {
        print_track_summary(&dir, pid);
    }
    Ok(exit_code(status))
}

/// After a tracked run: the text summary of the command's last snapshot, and how to read the
/// rest. Problems are one line each; the command's exit status is kept either way.
fn print_track_summary(dir: &Path, pid: u32) {
    match oxmalloc_report::summary_of_latest(dir, Some(pid), 10) {
        Ok((file, text)) => {
            let mut e = io::stderr().lock();
            let _ = write!(e, "{text}");
            let _ = writeln!(
                e,
                "oxmalloc: snapshots in {} (latest {}); read them with: oxmalloc report {} [--format pprof -o prof.pb.gz]",
                dir.display(),
                file.display(),
                dir.display()
            );
        }
        Err(e) => eprintln!("oxmalloc: no tracking snapshot of process {pid}: {e}"),
    }
}

// ------------------------------------------------------------------ report

#[derive(clap::Parser, Debug)]
#[command(
    name = "oxmalloc report",
    about = "Reads a tracking snapshot and writes a report"
)]
struct ReportArgs {
    /// A snapshot file, or a directory (its latest snapshot).
    path: PathBuf,
    #[arg(long, value_enum, default_value = "text")]
    format: FormatArg,
    /// Write to this file (whole or not at all) instead of stdout.
    #[arg(short = 'o', long = "output")]
    output: Option<PathBuf>,
    /// How the text report groups (and folded stacks are rooted).
    #[arg(long, value_enum)]
    by: Option<ByArg>,
    /// Entries per list in the text report.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// The value folded stacks carry (pprof carries all four).
    #[arg(long, value_enum, default_value = "inuse_space")]
    sample_type: SampleArg,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum FormatArg {
    Text,
    Json,
    Pprof,
    Folded,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum ByArg {
    Site,
    Library,
    Thread,
    Size,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
#[clap(rename_all = "snake_case")]
enum SampleArg {
    InuseSpace,
    InuseObjects,
    AllocSpace,
    AllocObjects,
}

fn report(args: Vec<OsString>) -> Result<u8, Error> {
    use clap::Parser;
    use oxmalloc_report::{By, Format, Options, SampleType};
    let mut argv = vec![OsString::from("oxmalloc report")];
    argv.extend(args);
    let a = match ReportArgs::try_parse_from(argv) {
        Ok(a) => a,
        Err(e) if e.use_stderr() => {
            let msg = e.to_string();
            let first = msg
                .lines()
                .next()
                .unwrap_or("bad arguments")
                .trim_start_matches("error: ");
            return err(format!("report: {first} (see 'oxmalloc report --help')"));
        }
        Err(e) => {
            print_stdout(e.to_string().trim_end());
            return Ok(0);
        }
    };
    let format = match a.format {
        FormatArg::Text => Format::Text,
        FormatArg::Json => Format::Json,
        FormatArg::Pprof => Format::Pprof,
        FormatArg::Folded => Format::Folded,
    };
    if matches!(format, Format::Pprof)
        && a.output.is_none()
        && io::IsTerminal::is_terminal(&io::stdout())
    {
        return err("report: pprof output is binary: give -o FILE or redirect stdout");
    }
    let opts = Options {
        by: a.by.map(|b| match b {
            ByArg::Site => By::Site,
            ByArg::Library => By::Library,
            ByArg::Thread => By::Thread,
            ByArg::Size => By::Size,
        }),
        top: a.top,
        sample_type: match a.sample_type {
            SampleArg::InuseSpace => SampleType::InuseSpace,
            SampleArg::InuseObjects => SampleType::InuseObjects,
            SampleArg::AllocSpace => SampleType::AllocSpace,
            SampleArg::AllocObjects => SampleType::AllocObjects,
        },
    };
    let bytes =
        oxmalloc_report::render(&a.path, format, &opts).map_err(|e| Error(e.to_string()))?;
    match &a.output {
        Some(out) => write_whole(out, &bytes)
            .map_err(|e| Error(format!("cannot write {}: {e}", out.display())))?,
        None => {
            let mut o = io::stdout().lock();
            if let Err(e) = o.write_all(&bytes).and_then(|_| o.flush()) {
                if e.kind() != io::ErrorKind::BrokenPipe {
                    return err(format!("writing the report: {e}"));
                }
            }
        }
    }
    Ok(0)
}

/// Writes `bytes` to `path` whole or not at all: a temporary file beside it, then rename.
fn write_whole(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other("not a file name"))?;
    let mut tmp_name = OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let r = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

fn spawn_error(program: &OsStr, e: io::Error) -> Error {
    let name = program.to_string_lossy();
    match e.kind() {
        io::ErrorKind::NotFound => Error(format!("command not found: {name}")),
        io::ErrorKind::PermissionDenied => {
            Error(format!("cannot execute {name}: permission denied"))
        }
        _ => Error(format!("cannot execute {name}: {e}")),
    }
}

fn exit_code(status: ExitStatus) -> u8 {
    if let Some(code) = status.code() {
        // On Linux an exit status is 0..=255 already.
        code as u8
    } else if let Some(sig) = status.signal() {
        (128 + sig).clamp(0, 255) as u8
    } else {
        1
    }
}

/// Quote a command line for display, roughly as a POSIX shell would accept it.
fn shell_words(words: &[OsString]) -> String {
    let mut out = String::new();
    for (i, w) in words.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let s = w.to_string_lossy();
        let plain = !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_./=+,:@%^".contains(&b));
        if plain {
            out.push_str(&s);
        } else {
            out.push('\'');
            out.push_str(&s.replace('\'', r"'\''"));
            out.push('\'');
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Finding the library
// ---------------------------------------------------------------------------

fn find_library(cli: Option<&OsStr>) -> Result<PathBuf, Error> {
    if let Some(p) = cli {
        return explicit_library(Path::new(p), "--lib");
    }
    if let Some(p) = std::env::var_os(ENV_LIB).filter(|p| !p.is_empty()) {
        return explicit_library(Path::new(&p), ENV_LIB);
    }

    let exe = std::env::current_exe()
        .map_err(|e| Error(format!("cannot locate the oxmalloc executable: {e}")))?;
    let exe_dir = exe
        .parent()
        .ok_or_else(|| Error(format!("odd executable path {}", exe.display())))?;
    let beside = exe_dir.join(LIB_NAME);
    if beside.is_file() {
        return Ok(beside);
    }

    if let Some((root, target_dir)) = workspace_target_dir(exe_dir) {
        return build_library(&root, &target_dir);
    }

    err(format!(
        "library not found: no {LIB_NAME} next to {} (use --lib PATH or set {ENV_LIB})",
        exe.display()
    ))
}

/// A library named explicitly (--lib or OXMALLOC_LIB) must exist; it is made
/// absolute so the command can change directory and still find it.
fn explicit_library(p: &Path, source: &str) -> Result<PathBuf, Error> {
    if !p.exists() {
        return err(format!(
            "library not found: {} (from {source})",
            p.display()
        ));
    }
    if p.is_dir() {
        return err(format!(
            "library path {} (from {source}) is a directory",
            p.display()
        ));
    }
    std::path::absolute(p).map_err(|e| {
        Error(format!(
            "bad library path {} (from {source}): {e}",
            p.display()
        ))
    })
}

/// If `exe_dir` is inside a cargo target directory of a workspace, return
/// (workspace root, that target directory). The workspace root is the closest
/// ancestor whose Cargo.toml contains a `[workspace]` table; the target
/// directory is the root's child that contains `exe_dir` and carries cargo's
/// `CACHEDIR.TAG` (or is named `target`).
fn workspace_target_dir(exe_dir: &Path) -> Option<(PathBuf, PathBuf)> {
    let exe_dir = exe_dir.canonicalize().ok()?;
    for root in exe_dir.ancestors().skip(1) {
        let manifest = root.join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        if !text.lines().any(|l| l.trim() == "[workspace]") {
            continue;
        }
        // exe_dir = root/<target>/...: pick <target>.
        let rel = exe_dir.strip_prefix(root).ok()?;
        let first = rel.components().next()?;
        let target_dir = root.join(first);
        let is_target =
            target_dir.join("CACHEDIR.TAG").is_file() || first.as_os_str() == OsStr::new("target");
        if is_target && text.contains(CABI_PACKAGE) {
            return Some((root.to_path_buf(), target_dir));
        }
        return None;
    }
    None
}

fn build_library(root: &Path, target_dir: &Path) -> Result<PathBuf, Error> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    eprintln!(
        "oxmalloc: {LIB_NAME} not built yet; running `cargo build --release -p {CABI_PACKAGE}` in {}",
        root.display()
    );
    // Cargo's own output goes to our stderr: stdout belongs to the command.
    let status = Command::new(&cargo)
        .args(["build", "--release", "-p", CABI_PACKAGE, "--target-dir"])
        .arg(target_dir)
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(io::stderr())
        .status()
        .map_err(|e| {
            Error(format!(
                "library not found, and cannot run {} to build it: {e}",
                cargo.to_string_lossy()
            ))
        })?;
    if !status.success() {
        return err(format!(
            "library not found, and `cargo build --release -p {CABI_PACKAGE}` failed ({status})"
        ));
    }
    let lib = target_dir.join("release").join(LIB_NAME);
    if !lib.is_file() {
        return err(format!(
            "library not found: cargo build succeeded but {} does not exist",
            lib.display()
        ));
    }
    Ok(lib)
}

// ---------------------------------------------------------------------------
// Signals
// ---------------------------------------------------------------------------

/// While the command runs, oxmalloc ignores SIGINT and SIGQUIT (as shells and
/// time(1) do): a Ctrl-C reaches the whole foreground process group, and the
/// command, not oxmalloc, decides what to do with it. oxmalloc then reports
/// the command's status once it has really exited (its exit-time statistics
/// included). The command gets the original dispositions back before exec.
mod signals {
    use std::os::raw::c_int;
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    // Linux values, identical on every architecture oxmalloc targets.
    const SIGINT: c_int = 2;
    const SIGQUIT: c_int = 3;
    const SIG_IGN: usize = 1;
    const SIG_ERR: usize = usize::MAX;

    extern "C" {
        // From the C library std already links; glibc's signal() has BSD
        // semantics (SA_RESTART, handler not reset), and we only install
        // SIG_IGN or restore a previous disposition.
        fn signal(signum: c_int, handler: usize) -> usize;
    }

    pub struct IgnoreWhileWaiting {
        saved: [(c_int, usize); 2],
    }

    impl IgnoreWhileWaiting {
        pub fn install() -> Self {
            let mut saved = [(SIGINT, SIG_ERR), (SIGQUIT, SIG_ERR)];
            for (sig, old) in saved.iter_mut() {
                // SAFETY: installing SIG_IGN is always sound.
                *old = unsafe { signal(*sig, SIG_IGN) };
            }
            Self { saved }
        }

        /// Make the child restore the original dispositions before exec
        /// (ignored dispositions survive exec; handled ones become default).
        pub fn restore_in_child(&self, cmd: &mut Command) {
            let saved = self.saved;
            // SAFETY: signal() is async-signal-safe; the closure allocates
            // nothing and touches only its captured copy.
            unsafe {
                cmd.pre_exec(move || {
                    for (sig, old) in saved {
                        if old != SIG_ERR {
                            signal(sig, old);
                        }
                    }
                    Ok(())
                });
            }
        }
    }

    impl Drop for IgnoreWhileWaiting {
        fn drop(&mut self) {
            for (sig, old) in self.saved {
                if old != SIG_ERR {
                    // SAFETY: restores what was there before install().
                    unsafe { signal(sig, old) };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    fn parse(v: &[&str]) -> Result<RunOpts, Error> {
        match parse_run(os(v))? {
            Parsed::Run(o) => Ok(o),
            Parsed::Help => panic!("unexpected help"),
        }
    }

    #[test]
    fn parses_options_and_command() {
        let o = parse(&["--stats", "--lib", "/x/l.so", "--", "sh", "-c", "exit 3"]).unwrap();
        assert!(o.stats);
        assert_eq!(o.lib.as_deref(), Some(OsStr::new("/x/l.so")));
        assert_eq!(o.command, os(&["sh", "-c", "exit 3"]));

        let o = parse(&["--lib=/y.so", "ls", "--stats"]).unwrap();
        assert!(!o.stats);
        assert_eq!(o.lib.as_deref(), Some(OsStr::new("/y.so")));
        assert_eq!(o.command, os(&["ls", "--stats"]));

        let o = parse(&["--", "--weird-name"]).unwrap();
        assert_eq!(o.command, os(&["--weird-name"]));
    }

    #[test]
    fn rejects_bad_run_args() {
        assert!(parse(&[]).unwrap_err().0.contains("no command"));
        assert!(parse(&["--stats", "--"])
            .unwrap_err()
            .0
            .contains("no command"));
        assert!(parse(&["--lib"]).unwrap_err().0.contains("--lib"));
        assert!(parse(&["--lib="]).unwrap_err().0.contains("--lib"));
        assert!(parse(&["--bogus", "--", "true"])
            .unwrap_err()
            .0
            .contains("--bogus"));
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_words(&os(&["sh", "-c", "exit 3"])), "sh -c 'exit 3'");
        assert_eq!(
            shell_words(&os(&["echo", "it's", ""])),
            r"echo 'it'\''s' ''"
        );
    }

    #[test]
    fn exit_codes() {
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(ExitStatus::from_raw(0)), 0);
        assert_eq!(exit_code(ExitStatus::from_raw(15)), 143); // SIGTERM
        assert_eq!(exit_code(ExitStatus::from_raw(9)), 137); // SIGKILL
    }
}
