//! Integration tests for the `oxmalloc` command.
//!
//! Most tests point `--lib` (or `OXMALLOC_LIB`) at a dummy file: ld.so then
//! prints "cannot be preloaded ... ignored" on stderr and runs the command
//! with glibc's malloc, which is enough to check argument handling, the
//! environment the command gets, and exit-status propagation. The tests at the
//! end use the real target/release/liboxmalloc.so and are skipped (with a
//! note) when it has not been built.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const EXE: &str = env!("CARGO_BIN_EXE_oxmalloc");

/// A fresh scratch directory for one test, outside the workspace (so the
/// command never decides to build the library on demand):
/// $TMPDIR/oxmalloc-cli-test-PID/NAME. Directories left by earlier runs
/// (whose process is gone) are removed the first time.
fn scratch(name: &str) -> PathBuf {
    static CLEAN: std::sync::Once = std::sync::Once::new();
    const PREFIX: &str = "oxmalloc-cli-test-";
    let tmp = std::env::temp_dir();
    CLEAN.call_once(|| {
        for entry in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
            let file_name = entry.file_name();
            let Some(pid) = file_name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else {
                continue;
            };
            if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    });
    let dir = tmp
        .join(format!("{PREFIX}{}", std::process::id()))
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// An empty file standing in for the library.
fn dummy_lib(name: &str) -> PathBuf {
    let lib = scratch(name).join("liboxmalloc.so");
    std::fs::write(&lib, b"").unwrap();
    lib
}

/// `oxmalloc ARGS...` with a clean environment as far as oxmalloc cares.
fn oxmalloc<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut c = Command::new(EXE);
    c.args(args)
        .env_remove("OXMALLOC_LIB")
        .env_remove("OXMALLOC_STATS_AT_EXIT")
        .env_remove("OXMALLOC_STATS_FILE")
        .env_remove("LD_PRELOAD");
    c
}

fn run(cmd: &mut Command) -> Output {
    // ETXTBSY: an executable copied by one test thread can still be open for
    // writing in a child that another test thread forked and has not yet
    // exec'd. That passes quickly; retry.
    let mut tries = 0;
    loop {
        match cmd.output() {
            Ok(o) => return o,
            Err(e) if e.raw_os_error() == Some(26) && tries < 50 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("cannot run {:?}: {e}", cmd.get_program()),
        }
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Usage errors: exit 2, exactly one "oxmalloc: ..." line on stderr, nothing
/// on stdout.
fn assert_usage_error(o: &Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "stderr: {err}");
    assert!(o.stdout.is_empty(), "stdout: {}", stdout(o));
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("oxmalloc:")).collect();
    assert_eq!(lines.len(), 1, "want one oxmalloc: line, stderr: {err}");
    assert!(
        lines[0].contains(needle),
        "{:?} does not mention {needle:?}",
        lines[0]
    );
}

// ---------------------------------------------------------------------------
// --help, --version, argument errors
// ---------------------------------------------------------------------------

#[test]
fn version() {
    let o = run(&mut oxmalloc(["--version"]));
    assert!(o.status.success());
    assert_eq!(
        stdout(&o).trim(),
        format!("oxmalloc {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn help() {
    for args in [&["--help"][..], &["-h"], &["run", "--help"]] {
        let o = run(&mut oxmalloc(args));
        assert!(o.status.success(), "{args:?}");
        let out = stdout(&o);
        assert!(
            out.contains("oxmalloc run [--stats | --stats-file FILE] [--lib PATH]")
                && out.contains("[--track MODE [--out DIR] [--every SECS]] -- CMD")
                && out.contains("oxmalloc report DIR|FILE"),
            "{out}"
        );
        assert!(out.contains("OXMALLOC_LIB"), "{out}");
    }
}

#[test]
fn no_arguments() {
    let o = run(&mut oxmalloc::<_, &str>([]));
    assert_usage_error(&o, "no subcommand");
}

#[test]
fn unknown_subcommand() {
    let o = run(&mut oxmalloc(["frobnicate"]));
    assert_usage_error(&o, "frobnicate");
    let o = run(&mut oxmalloc(["--frobnicate"]));
    assert_usage_error(&o, "--frobnicate");
}

#[test]
fn run_without_command() {
    let lib = dummy_lib("nocmd");
    let o = run(&mut oxmalloc(["run"]));
    assert_usage_error(&o, "no command");
    let o = run(&mut oxmalloc(["run", "--"]));
    assert_usage_error(&o, "no command");
    let o = run(oxmalloc(["run", "--stats", "--lib"]).arg(&lib).arg("--"));
    assert_usage_error(&o, "no command");
}

#[test]
fn lib_option_needs_a_value() {
    let o = run(&mut oxmalloc(["run", "--lib"]));
    assert_usage_error(&o, "--lib");
    let o = run(&mut oxmalloc(["run", "--lib=", "--", "true"]));
    assert_usage_error(&o, "--lib");
}

#[test]
fn unknown_run_option() {
    let o = run(&mut oxmalloc(["run", "--bogus", "--", "true"]));
    assert_usage_error(&o, "--bogus");
}

#[test]
fn missing_library_from_option() {
    let o = run(&mut oxmalloc([
        "run",
        "--lib",
        "/nonexistent/liboxmalloc.so",
        "--",
        "true",
    ]));
    assert_usage_error(&o, "library not found: /nonexistent/liboxmalloc.so");
}

#[test]
fn missing_library_from_env() {
    let o = run(oxmalloc(["run", "--", "true"]).env("OXMALLOC_LIB", "/nonexistent/env.so"));
    assert_usage_error(&o, "library not found: /nonexistent/env.so");
    assert!(stderr(&o).contains("OXMALLOC_LIB"));
}

#[test]
fn library_that_is_a_directory() {
    let dir = scratch("libdir");
    let o = run(oxmalloc(["run", "--lib"]).arg(&dir).args(["--", "true"]));
    assert_usage_error(&o, "directory");
}

#[test]
fn command_not_found() {
    let lib = dummy_lib("cmdnf");
    let o = run(oxmalloc(["run", "--lib"])
        .arg(&lib)
        .args(["--", "oxmalloc-no-such-command-xyz"]));
    assert_usage_error(&o, "command not found: oxmalloc-no-such-command-xyz");
}

#[test]
fn command_not_executable() {
    let lib = dummy_lib("noexec");
    // The dummy library itself: a regular file without execute permission.
    let o = run(oxmalloc(["run", "--lib"]).arg(&lib).arg("--").arg(&lib));
    assert_usage_error(&o, "permission denied");
}

// ---------------------------------------------------------------------------
// Environment given to the command
// ---------------------------------------------------------------------------

/// Runs `sh -c 'printf "%s|%s\n" "$LD_PRELOAD" "$OXMALLOC_STATS_AT_EXIT"'`
/// under oxmalloc and returns the two values.
fn child_env(cmd: &mut Command) -> (String, String, Output) {
    let o = run(cmd.args([
        "sh",
        "-c",
        r#"printf '%s|%s\n' "$LD_PRELOAD" "$OXMALLOC_STATS_AT_EXIT""#,
    ]));
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let out = stdout(&o);
    let (pre, stats) = out.trim_end().split_once('|').expect("sh output");
    (pre.to_string(), stats.to_string(), o)
}

#[test]
fn sets_ld_preload_from_lib_option() {
    let lib = dummy_lib("preload");
    let (pre, stats, o) = child_env(oxmalloc(["run", "--lib"]).arg(&lib).arg("--"));
    assert_eq!(pre, lib.to_str().unwrap());
    assert_eq!(stats, "", "OXMALLOC_STATS_AT_EXIT set without --stats");
    // No header without --stats.
    assert!(!stderr(&o).contains("oxmalloc: running"), "{}", stderr(&o));
}

#[test]
fn prepends_to_existing_ld_preload() {
    let lib = dummy_lib("prepend");
    let other = dummy_lib("prepend-other");
    let (pre, _, _) = child_env(
        oxmalloc(["run", "--lib"])
            .arg(&lib)
            .arg("--")
            .env("LD_PRELOAD", &other),
    );
    assert_eq!(pre, format!("{}:{}", lib.display(), other.display()));
}

#[test]
fn relative_lib_path_is_made_absolute() {
    let lib = dummy_lib("relative");
    let dir = lib.parent().unwrap();
    let (pre, _, _) =
        child_env(oxmalloc(["run", "--lib", "liboxmalloc.so", "--"]).current_dir(dir));
    assert!(Path::new(&pre).is_absolute(), "{pre}");
    assert_eq!(Path::new(&pre), lib);
}

#[test]
fn lib_from_env() {
    let lib = dummy_lib("env");
    let (pre, _, _) = child_env(oxmalloc(["run", "--"]).env("OXMALLOC_LIB", &lib));
    assert_eq!(pre, lib.to_str().unwrap());
}

#[test]
fn lib_option_beats_env() {
    let lib = dummy_lib("beats");
    let (pre, _, _) = child_env(
        oxmalloc(["run", "--lib"])
            .arg(&lib)
            .arg("--")
            .env("OXMALLOC_LIB", "/nonexistent/ignored.so"),
    );
    assert_eq!(pre, lib.to_str().unwrap());
}

#[test]
fn stats_sets_env_and_prints_header() {
    let lib = dummy_lib("stats");
    let (pre, stats, o) = child_env(oxmalloc(["run", "--stats", "--lib"]).arg(&lib).arg("--"));
    assert_eq!(pre, lib.to_str().unwrap());
    // The oxmalloc process's pid: `sh` is its direct child, so `$PPID` names it.
    let pid: u32 = stats.parse().expect("a pid");
    assert!(pid > 1, "{stats}");
    let err = stderr(&o);
    let header = err
        .lines()
        .find(|l| l.starts_with("oxmalloc: running "))
        .unwrap_or_else(|| panic!("no header in stderr: {err}"));
    assert!(header.starts_with("oxmalloc: running sh -c "), "{header}");
    assert!(
        header.ends_with(&format!(" with {}", lib.display())),
        "{header}"
    );
}

#[test]
fn double_dash_is_optional_and_args_pass_through() {
    let lib = dummy_lib("passthru");
    let o = run(oxmalloc(["run", "--lib"])
        .arg(&lib)
        .args(["echo", "--stats", "--lib", "-- x"]));
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o), "--stats --lib -- x\n");
}

#[test]
fn library_next_to_executable() {
    // A copy of the executable outside the workspace, with a library beside it.
    let dir = scratch("beside");
    let exe = dir.join("oxmalloc");
    std::fs::copy(EXE, &exe).unwrap();
    let lib = dir.join("liboxmalloc.so");
    std::fs::write(&lib, b"").unwrap();
    let mut cmd = Command::new(&exe);
    cmd.env_remove("OXMALLOC_LIB")
        .env_remove("LD_PRELOAD")
        .args(["run", "--"]);
    let (pre, _, _) = child_env(&mut cmd);
    assert_eq!(pre, lib.to_str().unwrap());

    // Without it (and outside any workspace): a clear error.
    std::fs::remove_file(&lib).unwrap();
    let o = run(Command::new(&exe)
        .env_remove("OXMALLOC_LIB")
        .env_remove("LD_PRELOAD")
        .args(["run", "--", "true"]));
    assert_usage_error(&o, "library not found");
}

/// A fake workspace with a copy of the executable in target/release and a
/// fake `cargo` (through $CARGO) that records its arguments and directory and
/// "builds" the library: exercises the build-on-demand path without cargo.
#[test]
fn builds_library_on_demand_in_workspace() {
    use std::os::unix::fs::PermissionsExt;
    let ws = scratch("ondemand");
    std::fs::write(
        ws.join("Cargo.toml"),
        "[workspace]\nmembers = [\"crates/oxmalloc-cabi\"]\n",
    )
    .unwrap();
    let release = ws.join("target/release");
    std::fs::create_dir_all(&release).unwrap();
    let exe = release.join("oxmalloc");
    std::fs::copy(EXE, &exe).unwrap();
    let log = ws.join("cargo.log");
    let fake_cargo = ws.join("fake-cargo");
    std::fs::write(
        &fake_cargo,
        format!(
            "#!/bin/sh\n\
             echo \"$PWD|$*\" >>'{log}'\n\
             echo 'fake cargo: building' >&2\n\
             echo 'fake cargo stdout'\n\
             if [ -n \"$FAKE_CARGO_FAIL\" ]; then exit 101; fi\n\
             while [ $# -gt 0 ]; do\n\
               if [ \"$1\" = --target-dir ]; then : >\"$2/release/liboxmalloc.so\"; fi\n\
               shift\n\
             done\n",
            log = log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake_cargo, std::fs::Permissions::from_mode(0o755)).unwrap();

    let ox = |fail: bool| {
        let mut c = Command::new(&exe);
        c.env_remove("OXMALLOC_LIB")
            .env_remove("LD_PRELOAD")
            .env("CARGO", &fake_cargo)
            .args(["run", "--"]);
        if fail {
            c.env("FAKE_CARGO_FAIL", "1");
        }
        c
    };

    // A failing build: a clear error, exit 2, and the build's stdout kept off
    // our stdout.
    let o = run(ox(true).arg("true"));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(o.stdout.is_empty(), "{}", stdout(&o));
    let first = err.lines().next().unwrap_or("");
    assert!(
        first.starts_with("oxmalloc: liboxmalloc.so not built yet; running"),
        "{err}"
    );
    assert!(err.contains("fake cargo stdout"), "{err}");
    let last = err.lines().last().unwrap_or("");
    assert!(
        last.starts_with(
            "oxmalloc: library not found, and `cargo build --release -p oxmalloc-cabi` failed"
        ),
        "{err}"
    );

    // A working build: the library it produced is preloaded.
    let (pre, _, o) = child_env(&mut ox(false));
    let lib = release.join("liboxmalloc.so");
    assert_eq!(Path::new(&pre), lib.canonicalize().unwrap());
    assert!(
        stderr(&o).contains("fake cargo: building"),
        "{}",
        stderr(&o)
    );
    let calls = std::fs::read_to_string(&log).unwrap();
    let last = calls.lines().last().unwrap();
    let root = ws.canonicalize().unwrap();
    assert_eq!(
        last,
        format!(
            "{}|build --release -p oxmalloc-cabi --target-dir {}",
            root.display(),
            root.join("target").display()
        )
    );

    // Next time the library is simply found next to the executable.
    let before = calls.lines().count();
    let (pre, _, _) = child_env(&mut ox(false));
    assert_eq!(Path::new(&pre), lib.canonicalize().unwrap());
    let after = std::fs::read_to_string(&log).unwrap().lines().count();
    assert_eq!(before, after, "cargo ran again");
}

// ---------------------------------------------------------------------------
// Exit status
// ---------------------------------------------------------------------------

#[test]
fn exit_status_is_propagated() {
    let lib = dummy_lib("status");
    for code in [0, 1, 3, 42, 255] {
        let o = run(oxmalloc(["run", "--lib"]).arg(&lib).args([
            "--",
            "sh",
            "-c",
            &format!("exit {code}"),
        ]));
        assert_eq!(o.status.code(), Some(code), "stderr: {}", stderr(&o));
    }
    let o = run(oxmalloc(["run", "--lib"]).arg(&lib).args(["--", "true"]));
    assert_eq!(o.status.code(), Some(0));
    let o = run(oxmalloc(["run", "--lib"]).arg(&lib).args(["--", "false"]));
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn killed_by_signal_gives_128_plus_signal() {
    let lib = dummy_lib("signal");
    for (sig, num) in [("TERM", 15), ("KILL", 9), ("HUP", 1), ("INT", 2)] {
        // perl, not sh: a shell cannot undo a signal ignored on entry (a test run under
        // nohup ignores SIGHUP), perl can.
        let o = run(oxmalloc(["run", "--lib"]).arg(&lib).args([
            "--",
            "perl",
            "-e",
            "$SIG{$ARGV[0]} = 'DEFAULT' if $ARGV[0] ne 'KILL'; kill $ARGV[0], $$; sleep 10",
            sig,
        ]));
        assert_eq!(o.status.code(), Some(128 + num), "SIG{sig}: {}", stderr(&o));
    }
}

#[test]
fn stdin_is_passed_through() {
    use std::io::Write;
    use std::process::Stdio;
    let lib = dummy_lib("stdin");
    let mut child = oxmalloc(["run", "--lib"])
        .arg(&lib)
        .args(["--", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"through the pipe\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    assert_eq!(stdout(&o), "through the pipe\n");
}

// ---------------------------------------------------------------------------
// With the real library (skipped when it has not been built)
// ---------------------------------------------------------------------------

/// OXMALLOC_LIB if set, else <workspace>/target/release/liboxmalloc.so.
fn real_lib() -> Option<PathBuf> {
    let lib = match std::env::var_os("OXMALLOC_LIB").filter(|v| !v.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
            target.join("release/liboxmalloc.so")
        }
    };
    if lib.is_file() {
        Some(lib)
    } else {
        eprintln!(
            "note: {} not found; skipping the test with the real library \
             (build it with `cargo build --release -p oxmalloc-cabi`)",
            lib.display()
        );
        None
    }
}

fn assert_clean_stderr(o: &Output) {
    let err = stderr(o);
    assert!(
        !err.contains("ld.so") && !err.contains("cannot be preloaded"),
        "the loader rejected the library: {err}"
    );
}

#[test]
fn real_library_runs_commands() {
    let Some(lib) = real_lib() else {
        assert!(Path::new(EXE).is_file());
        return;
    };
    let o = run(oxmalloc(["run", "--lib"]).arg(&lib).args(["--", "true"]));
    assert_clean_stderr(&o);
    assert_eq!(o.status.code(), Some(0));

    let o = run(oxmalloc(["run", "--lib"])
        .arg(&lib)
        .args(["--", "sh", "-c", "exit 3"]));
    assert_clean_stderr(&o);
    assert_eq!(o.status.code(), Some(3));

    // A pipeline of allocating programs.
    let o = run(oxmalloc(["run", "--lib"]).arg(&lib).args([
        "--",
        "sh",
        "-c",
        "seq 1 20000 | sort -rn | sed -n '1p;$p' | tr '\\n' ' '",
    ]));
    assert_clean_stderr(&o);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o), "20000 1 ");

    let (pre, _, o) = child_env(oxmalloc(["run", "--lib"]).arg(&lib).arg("--"));
    assert_clean_stderr(&o);
    assert_eq!(Path::new(&pre), std::path::absolute(&lib).unwrap());
}

#[test]
fn real_library_stats_at_exit() {
    let Some(lib) = real_lib() else {
        assert!(Path::new(EXE).is_file());
        return;
    };
    // The statistics come from an atexit hook, so the command must leave
    // through exit() with stderr still open: bash does. (dash leaves through
    // _exit(), and coreutils' close_stdout closes stderr before the hook.)
    if !Path::new("/bin/bash").is_file() {
        eprintln!("note: no /bin/bash; skipping the --stats test with the real library");
        return;
    }
    let o = run(oxmalloc(["run", "--stats", "--lib"]).arg(&lib).args([
        "--",
        "/bin/bash",
        "-c",
        "echo hello",
    ]));
    assert_clean_stderr(&o);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o), "hello\n");
    let err = stderr(&o);
    assert!(
        err.starts_with("oxmalloc: running /bin/bash -c 'echo hello' with "),
        "{err}"
    );
    for needle in ["Arena 0:", "system bytes", "in use bytes"] {
        assert!(
            err.contains(needle),
            "malloc_stats output lacks {needle:?}: {err}"
        );
    }
    // Exactly one process, so exactly one report.
    assert_eq!(err.matches("Arena 0:").count(), 1, "{err}");

    // A command that starts processes of its own: still one report, the command's.
    let o = run(oxmalloc(["run", "--stats", "--lib"]).arg(&lib).args([
        "--",
        "/bin/bash",
        "-c",
        "/bin/bash -c 'echo inner'; x=$(echo sub; exit 0); echo $x; echo outer",
    ]));
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o), "inner\nsub\nouter\n");
    let err = stderr(&o);
    assert_eq!(err.matches("Arena 0:").count(), 1, "{err}");
}

#[test]
fn real_library_stats_file_is_whole_private_and_not_followed() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let Some(lib) = real_lib() else {
        assert!(Path::new(EXE).is_file());
        return;
    };
    if !Path::new("/bin/bash").is_file() {
        eprintln!("note: no /bin/bash; skipping the --stats-file test");
        return;
    }
    let dir = scratch("statsfile");
    // A symlink planted where the report goes, pointing at a file that must not change.
    let victim = dir.join("victim");
    std::fs::write(&victim, b"precious\n").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
    let report = dir.join("report.txt");
    std::os::unix::fs::symlink(&victim, &report).unwrap();
    let o = run(oxmalloc(["run", "--stats-file"])
        .arg(&report)
        .arg("--lib")
        .arg(&lib)
        .args(["--", "/bin/bash", "-c", "echo hi"]));
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o), "hi\n");
    // Nothing on stderr but the header line: the report went to the file.
    assert!(!stderr(&o).contains("Arena 0:"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious\n");
    let meta = std::fs::symlink_metadata(&report).unwrap();
    assert!(
        meta.file_type().is_file(),
        "the symlink was written through"
    );
    assert_eq!(meta.mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&report).unwrap();
    assert!(text.starts_with("Arena 0:\n"), "{text}");
    assert!(text.contains("Total (incl. mmap):"), "{text}");
    assert!(text.trim_end().ends_with("</malloc>"), "{text}");
    // No temporary files left beside it.
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");

    // An unwritable place: the command still succeeds, with one line saying why.
    let o = run(oxmalloc(["run", "--stats-file"])
        .arg(dir.join("no/such/dir/r.txt"))
        .arg("--lib")
        .arg(&lib)
        .args(["--", "/bin/bash", "-c", "true"]));
    assert_eq!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("oxmalloc: cannot write the stats file"),
        "{}",
        stderr(&o)
    );
}
