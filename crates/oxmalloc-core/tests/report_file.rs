//! report_file::write_atomic: the file is written whole or not at all, owner-only, and no
//! symlink (at the final name or at a temporary name) is ever followed.

use oxmalloc_core::report_file::{self, write_atomic, write_atomic_seeded, NAME_MAX};
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};

/// umask, the working directory and fork are process-wide: the tests take turns.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let p = std::env::temp_dir().join(format!(
            "oxmalloc-report-file-{}-{}-{}-{}",
            tag,
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            nanos
        ));
        fs::create_dir(&p).unwrap();
        TempDir(p)
    }
    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    /// Names in the directory that end in ".tmp".
    fn tmp_files(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        v.sort();
        v
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn bytes(p: &Path) -> &[u8] {
    p.as_os_str().as_bytes()
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap()
}

fn set_errno(e: i32) {
    unsafe { *libc::__errno_location() = e };
}

#[test]
fn content_is_written_whole() {
    let _g = serial();
    let d = TempDir::new("whole");
    let p = d.join("report.txt");
    let big: Vec<u8> = (0..3 * 1024 * 1024 + 17).map(|i| (i % 251) as u8).collect();
    let parts: [&[u8]; 4] = [b"header\n", b"", &big, b"\ntrailer\n"];
    write_atomic(bytes(&p), &parts).unwrap();
    let want: Vec<u8> = parts.concat();
    assert_eq!(fs::read(&p).unwrap(), want);
    assert!(fs::symlink_metadata(&p).unwrap().file_type().is_file());
    assert_eq!(d.tmp_files(), Vec::<String>::new());

    // No parts at all: an empty file.
    let e = d.join("empty");
    write_atomic(bytes(&e), &[]).unwrap();
    assert_eq!(fs::read(&e).unwrap(), b"");

    // The same path with a terminating NUL names the same file.
    let mut with_nul = bytes(&p).to_vec();
    with_nul.push(0);
    write_atomic(&with_nul, &[b"again"]).unwrap();
    assert_eq!(fs::read(&p).unwrap(), b"again");
    assert_eq!(d.tmp_files(), Vec::<String>::new());
}

#[test]
fn mode_is_0600_whatever_the_umask() {
    let _g = serial();
    let d = TempDir::new("mode");
    for (i, mask) in [0o000, 0o022, 0o077, 0o277, 0o777].into_iter().enumerate() {
        let p = d.join(&format!("r{i}"));
        let old = unsafe { libc::umask(mask) };
        let r = write_atomic(bytes(&p), &[b"x"]);
        unsafe { libc::umask(old) };
        r.unwrap();
        assert_eq!(mode(&p), 0o600, "umask {mask:o}");
    }
    // Replacing a world-readable file gives a 0600 one, not the old mode.
    let p = d.join("was-public");
    fs::write(&p, b"old").unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
    let old = unsafe { libc::umask(0) };
    let r = write_atomic(bytes(&p), &[b"new"]);
    unsafe { libc::umask(old) };
    r.unwrap();
    assert_eq!(mode(&p), 0o600);
    assert_eq!(fs::read(&p).unwrap(), b"new");
}

#[test]
fn an_existing_file_is_replaced_by_rename_not_rewritten() {
    let _g = serial();
    let d = TempDir::new("replace");
    let p = d.join("report");
    fs::write(&p, b"old content").unwrap();
    // A hard link to the old inode: it must keep the old bytes (the old file is never opened
    // for writing, only unlinked from its name by the rename).
    let link = d.join("old-inode");
    fs::hard_link(&p, &link).unwrap();
    let old_ino = fs::metadata(&p).unwrap().ino();
    write_atomic(bytes(&p), &[b"new ", b"content"]).unwrap();
    assert_eq!(fs::read(&p).unwrap(), b"new content");
    assert_ne!(fs::metadata(&p).unwrap().ino(), old_ino);
    assert_eq!(fs::read(&link).unwrap(), b"old content");
    assert_eq!(d.tmp_files(), Vec::<String>::new());
}

/// A failure after the temporary file exists (a write past RLIMIT_FSIZE gets EFBIG, which
/// holds for root too) leaves the old file untouched and no temporary file. Runs in a forked
/// child so the limit stays there; the child only makes allocation-free calls.
#[test]
fn a_failed_write_leaves_the_old_file_and_no_temp() {
    let _g = serial();
    let d = TempDir::new("efbig");
    let p = d.join("report");
    fs::write(&p, b"old content").unwrap();
    let path = CString::new(bytes(&p)).unwrap();
    let big = vec![b'z'; 256 * 1024];
    let parts: [&[u8]; 2] = [b"start", &big];

    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // Child: at most 64 KiB per file, SIGXFSZ ignored so the write returns EFBIG.
        unsafe {
            let lim = libc::rlimit {
                rlim_cur: 64 * 1024,
                rlim_max: libc::RLIM_INFINITY,
            };
            libc::setrlimit(libc::RLIMIT_FSIZE, &lim);
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let code = match write_atomic(path.as_bytes_with_nul(), &parts) {
                Ok(()) => 0,
                Err(e) => e,
            };
            libc::_exit(code);
        }
    }
    let mut status = 0;
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status), "child status {status:#x}");
    assert_eq!(libc::WEXITSTATUS(status), libc::EFBIG);
    assert_eq!(fs::read(&p).unwrap(), b"old content");
    assert_eq!(d.tmp_files(), Vec::<String>::new());
    assert_eq!(fs::read_dir(&d.0).unwrap().count(), 1);
}

#[test]
fn a_symlink_at_the_path_is_replaced_not_followed() {
    let _g = serial();
    let d = TempDir::new("symlink-path");
    let victim = d.join("victim");
    fs::write(&victim, b"precious").unwrap();
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o644)).unwrap();

    let p = d.join("report");
    symlink(&victim, &p).unwrap();
    write_atomic(bytes(&p), &[b"report body"]).unwrap();
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    assert_eq!(mode(&victim), 0o644);
    let m = fs::symlink_metadata(&p).unwrap();
    assert!(m.file_type().is_file(), "{:?}", m.file_type());
    assert_eq!(fs::read(&p).unwrap(), b"report body");

    // A dangling symlink: its target is not created.
    let q = d.join("dangling");
    let target = d.join("would-be-created");
    symlink(&target, &q).unwrap();
    write_atomic(bytes(&q), &[b"x"]).unwrap();
    assert!(fs::symlink_metadata(&target).is_err());
    assert!(fs::symlink_metadata(&q).unwrap().file_type().is_file());

    // A symlink to a directory is still a symlink, not a directory: replaced as well, and
    // nothing is written inside the directory.
    let sub = d.join("subdir");
    fs::create_dir(&sub).unwrap();
    let r = d.join("to-dir");
    symlink(&sub, &r).unwrap();
    write_atomic(bytes(&r), &[b"y"]).unwrap();
    assert!(fs::symlink_metadata(&r).unwrap().file_type().is_file());
    assert_eq!(fs::read_dir(&sub).unwrap().count(), 0);
    assert_eq!(d.tmp_files(), Vec::<String>::new());
}

/// The temporary names are random, so no one can plant anything there; the seeded variant
/// makes them predictable to show that a planted symlink would not be followed either.
#[test]
fn a_symlink_at_a_temp_name_is_not_followed() {
    let _g = serial();
    let d = TempDir::new("symlink-tmp");
    let victim = d.join("victim");
    fs::write(&victim, b"precious").unwrap();
    let p = d.join("report");
    let seed = 0x1234_5678_9abc_def0;

    let name = |attempt: u32| {
        let mut buf = [0u8; NAME_MAX + 1];
        let n = report_file::temp_name(bytes(&p), seed, attempt, &mut buf).unwrap();
        assert_eq!(buf[n], 0);
        d.join(std::str::from_utf8(&buf[..n]).unwrap())
    };
    // The names look as documented and differ from attempt to attempt.
    let first = name(0);
    let s = first.file_name().unwrap().to_str().unwrap().to_owned();
    let prefix = format!("report.{}.", std::process::id());
    assert!(s.starts_with(&prefix) && s.ends_with(".tmp"), "{s}");
    assert_eq!(s.len(), prefix.len() + 16 + 4);
    assert_ne!(name(0), name(1));

    // Plant symlinks at the first three names: to the victim, to a file that does not exist,
    // and to a directory.
    let missing = d.join("missing");
    let sub = d.join("sub");
    fs::create_dir(&sub).unwrap();
    symlink(&victim, name(0)).unwrap();
    symlink(&missing, name(1)).unwrap();
    symlink(&sub, name(2)).unwrap();
    write_atomic_seeded(bytes(&p), &[b"safe"], seed).unwrap();
    assert_eq!(fs::read(&p).unwrap(), b"safe");
    assert!(fs::symlink_metadata(&p).unwrap().file_type().is_file());
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    assert!(fs::symlink_metadata(&missing).is_err());
    assert_eq!(fs::read_dir(&sub).unwrap().count(), 0);
    // The planted links are left alone (they are not ours), and nothing else is left.
    for a in 0..3 {
        assert!(fs::symlink_metadata(name(a))
            .unwrap()
            .file_type()
            .is_symlink());
    }
    let mut planted: Vec<String> = (0..3)
        .map(|a| name(a).file_name().unwrap().to_str().unwrap().to_owned())
        .collect();
    planted.sort();
    assert_eq!(d.tmp_files(), planted);

    // Every name taken: EEXIST, and the file at the path keeps its content.
    for a in 3..report_file::TEMP_ATTEMPTS {
        symlink(&victim, name(a)).unwrap();
    }
    assert_eq!(
        write_atomic_seeded(bytes(&p), &[b"blocked"], seed),
        Err(libc::EEXIST)
    );
    assert_eq!(fs::read(&p).unwrap(), b"safe");
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    assert_eq!(d.tmp_files().len(), report_file::TEMP_ATTEMPTS as usize);

    // The unseeded call uses other (random) names and is not blocked.
    write_atomic(bytes(&p), &[b"random names"]).unwrap();
    assert_eq!(fs::read(&p).unwrap(), b"random names");
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
}

#[test]
fn bad_paths_are_refused_without_leaving_anything() {
    let _g = serial();
    let d = TempDir::new("errors");
    let keep = d.join("keep");
    fs::write(&keep, b"keep").unwrap();
    let dir = d.join("a-dir");
    fs::create_dir(&dir).unwrap();
    let s = |p: &Path| bytes(p).to_vec();
    let with = |p: &Path, tail: &str| {
        let mut v = s(p);
        v.extend_from_slice(tail.as_bytes());
        v
    };

    let long_path = {
        let mut v = s(&d.0);
        while v.len() < 5000 {
            v.extend_from_slice(b"/aaaaaaaaaa");
        }
        v
    };
    let long_name = with(&d.0, &format!("/{}", "n".repeat(NAME_MAX + 1)));
    let mut interior_nul = s(&keep);
    interior_nul.extend_from_slice(b"\0x");

    let cases: Vec<(&str, Vec<u8>, i32)> = vec![
        ("empty", vec![], libc::ENOENT),
        ("only NUL", vec![0], libc::ENOENT),
        ("interior NUL", interior_nul, libc::EINVAL),
        ("too long", long_path, libc::ENAMETOOLONG),
        ("name too long", long_name, libc::ENAMETOOLONG),
        ("a directory", s(&dir), libc::EISDIR),
        ("trailing slash", with(&dir, "/"), libc::EISDIR),
        ("dot", with(&dir, "/."), libc::EISDIR),
        ("dot dot", with(&dir, "/.."), libc::EISDIR),
        ("root", b"/".to_vec(), libc::EISDIR),
        ("missing dir", with(&d.0, "/no/such/dir/f"), libc::ENOENT),
        ("file as dir", with(&keep, "/f"), libc::ENOTDIR),
    ];
    for (what, path, want) in cases {
        assert_eq!(write_atomic(&path, &[b"data"]), Err(want), "{what}");
        assert_eq!(d.tmp_files(), Vec::<String>::new(), "{what}");
    }
    assert_eq!(fs::read(&keep).unwrap(), b"keep");
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
    assert_eq!(fs::read_dir(&d.0).unwrap().count(), 2);
}

#[test]
fn the_longest_name_still_gets_a_temp_name() {
    let _g = serial();
    let d = TempDir::new("long-name");
    let p = d.join(&"L".repeat(NAME_MAX));
    write_atomic(bytes(&p), &[b"ok"]).unwrap();
    assert_eq!(fs::read(&p).unwrap(), b"ok");
    assert_eq!(d.tmp_files(), Vec::<String>::new());
}

#[test]
fn a_relative_path_is_relative_to_the_working_directory() {
    let _g = serial();
    let d = TempDir::new("relative");
    let cwd = std::env::current_dir().unwrap();
    std::env::set_current_dir(&d.0).unwrap();
    let r = write_atomic(b"rel.txt\0", &[b"relative"]);
    std::env::set_current_dir(&cwd).unwrap();
    r.unwrap();
    assert_eq!(fs::read(d.join("rel.txt")).unwrap(), b"relative");
    assert_eq!(d.tmp_files(), Vec::<String>::new());
}

#[test]
fn errno_is_preserved() {
    let _g = serial();
    let d = TempDir::new("errno");
    set_errno(libc::EDOM);
    write_atomic(bytes(&d.join("f")), &[b"x"]).unwrap();
    assert_eq!(errno(), libc::EDOM);
    set_errno(libc::ERANGE);
    assert_eq!(
        write_atomic(bytes(&d.join("missing/f")), &[b"x"]),
        Err(libc::ENOENT)
    );
    assert_eq!(errno(), libc::ERANGE);
}

/// Writers race on one path while readers keep reading it: every read sees one writer's
/// whole content, never a mix or a short file, and no temporary file survives.
#[test]
fn concurrent_writers_and_readers_see_whole_files() {
    let _g = serial();
    let d = TempDir::new("race");
    let p = d.join("report");
    const LEN: usize = 192 * 1024;
    write_atomic(bytes(&p), &[&vec![b'@'; LEN]]).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let writers: Vec<_> = (0..4u8)
            .map(|t| {
                let p = &p;
                s.spawn(move || {
                    let body = vec![b'a' + t; LEN];
                    for _ in 0..25 {
                        // Two parts, so a torn write would show up as a mix.
                        write_atomic(bytes(p), &[&body[..LEN / 3], &body[LEN / 3..]]).unwrap();
                    }
                })
            })
            .collect();
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (p, stop) = (&p, &stop);
                s.spawn(move || {
                    let mut reads = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let got = fs::read(p).unwrap();
                        assert_eq!(got.len(), LEN);
                        assert!(got.iter().all(|&c| c == got[0]), "mixed content");
                        reads += 1;
                    }
                    reads
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            assert!(r.join().unwrap() > 0);
        }
    });
    assert_eq!(d.tmp_files(), Vec::<String>::new());
    assert_eq!(mode(&p), 0o600);
}

/// A directory that can be written and searched but not listed (mode 0300) still works (the
/// directory is then opened O_PATH and only its fsync is skipped); a read-only one refuses
/// with EACCES, which only shows when not running as root (root may write anyway).
#[test]
fn directory_permissions() {
    let _g = serial();
    let d = TempDir::new("perms");
    let wx = d.join("write-search-only");
    fs::create_dir(&wx).unwrap();
    fs::set_permissions(&wx, fs::Permissions::from_mode(0o300)).unwrap();
    let r = write_atomic(bytes(&wx.join("f")), &[b"ok"]);
    fs::set_permissions(&wx, fs::Permissions::from_mode(0o700)).unwrap();
    r.unwrap();
    assert_eq!(fs::read(wx.join("f")).unwrap(), b"ok");

    let ro = d.join("read-only");
    fs::create_dir(&ro).unwrap();
    fs::write(ro.join("f"), b"old").unwrap();
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o500)).unwrap();
    let r = write_atomic(bytes(&ro.join("f")), &[b"new"]);
    let names: Vec<_> = fs::read_dir(&ro)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o700)).unwrap();
    if unsafe { libc::geteuid() } != 0 {
        assert_eq!(r, Err(libc::EACCES));
        assert_eq!(fs::read(ro.join("f")).unwrap(), b"old");
        assert_eq!(names, vec![std::ffi::OsString::from("f")]);
    } else {
        r.unwrap();
        assert_eq!(fs::read(ro.join("f")).unwrap(), b"new");
        assert_eq!(names.len(), 1);
    }
}
