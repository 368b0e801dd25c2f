//! `oxmalloc-fuzz`: random operation sequences against oxmalloc-core's API, checked after
//! every step against a shadow model kept on the System allocator (a stable-Rust fuzz driver).

mod crash;
mod model;
mod rng;
mod threads;

use model::{Kind, Limits, Model, Op};
use rng::Rng;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const HELP: &str = "\
oxmalloc-fuzz: run random malloc/calloc/realloc/reallocarray/free/memalign/aligned_alloc/
posix_memalign/valloc/pvalloc/usable_size/trim/mallopt sequences against oxmalloc-core and
check every result against a shadow model (alignment, usable size, contents, overlap, zeroing,
errno), with phases of 2..T threads that also free each other's blocks.

Usage: oxmalloc-fuzz [--seconds N] [--seed S] [--ops N] [--threads T] [--no-perturb]
                     [--init-first] [--trace]

  --seconds N   stop after N seconds (default 10, unless --ops is given)
  --seed S      the seed (decimal or 0x hex; default: from the clock); printed at start
  --ops N       stop after N operations (a thread phase counts its workers' operations)
  --threads T   at most T workers per thread phase (default 4; 0: single-threaded)
  --no-perturb  leave mallopt(M_PERTURB) out of the mix (a narrower mix)
  --init-first  initialise oxmalloc before the first operation, as liboxmalloc.so's
                constructor does (by default the first call initialises it lazily)
  --trace       print every operation to stderr before running it

The same seed, --threads, --no-perturb, --init-first and --ops replay the same main-thread
sequence. Exit status: 0 when every check passed, 1 on a mismatch (one line: seed, operation
index, what differed; a crash inside the allocator prints the same line from a signal
handler), 2 for a bad argument.
";

const EXIT_MISMATCH: u8 = 1;
const EXIT_USAGE: u8 = 2;

#[derive(Debug)]
struct Args {
    seconds: Option<f64>,
    seed: Option<u64>,
    ops: Option<u64>,
    threads: usize,
    trace: bool,
    no_perturb: bool,
    init_first: bool,
    help: bool,
}

fn parse_u64(flag: &str, v: &str) -> Result<u64, String> {
    let r = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse(),
    };
    r.map_err(|_| format!("{flag} wants a non-negative integer, not '{v}'"))
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut a = Args {
        seconds: None,
        seed: None,
        ops: None,
        threads: 4,
        trace: false,
        no_perturb: false,
        init_first: false,
        help: false,
    };
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let takes_value = matches!(
            flag.as_str(),
            "--seconds" | "--seed" | "--ops" | "--threads"
        );
        let value = if takes_value {
            match inline {
                Some(v) => v,
                None => it.next().ok_or_else(|| format!("{flag} needs a value"))?,
            }
        } else {
            if inline.is_some() {
                return Err(format!("{flag} takes no value"));
            }
            String::new()
        };
        match flag.as_str() {
            "--seconds" => {
                let s: f64 = value
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s >= 0.0 && *s < 1e9)
                    .ok_or_else(|| format!("--seconds wants a number of seconds, not '{value}'"))?;
                a.seconds = Some(s);
            }
            "--seed" => a.seed = Some(parse_u64("--seed", &value)?),
            "--ops" => a.ops = Some(parse_u64("--ops", &value)?),
            "--threads" => {
                let t = parse_u64("--threads", &value)?;
                if t > 16 {
                    return Err(format!("--threads wants 0 to 16, not {t}"));
                }
                a.threads = t as usize;
            }
            "--trace" => a.trace = true,
            "--no-perturb" => a.no_perturb = true,
            "--init-first" => a.init_first = true,
            "-h" | "--help" => a.help = true,
            _ => return Err(format!("unknown argument '{arg}'")),
        }
    }
    Ok(a)
}

fn seed_from_clock() -> u64 {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    rng::mix(t ^ (u64::from(std::process::id()) << 32))
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(p).unwrap_or(4096)
}

fn print_counts(counts: &model::Counts) {
    let parts: Vec<String> = Kind::ALL
        .iter()
        .zip(counts)
        .map(|(k, n)| format!("{}={n}", k.name()))
        .collect();
    println!("oxmalloc-fuzz: {}", parts.join(" "));
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("oxmalloc-fuzz: {e} (see --help)");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if args.help {
        print!("{HELP}");
        return ExitCode::SUCCESS;
    }
    let seed = args.seed.unwrap_or_else(seed_from_clock);
    println!("oxmalloc-fuzz: seed {seed}");
    let _ = std::io::stdout().flush();
    let replay = format!(
        "--seed {seed} --threads {}{}{}",
        args.threads,
        if args.no_perturb { " --no-perturb" } else { "" },
        if args.init_first { " --init-first" } else { "" }
    );
    crash::install(seed, &replay);
    if args.init_first {
        oxmalloc_core::global::ensure_init();
    }

    let limit = match (args.seconds, args.ops) {
        (Some(s), _) => Some(Duration::from_secs_f64(s)),
        (None, Some(_)) => None,
        (None, None) => Some(Duration::from_secs(10)),
    };
    let start = Instant::now();
    let mut m = Model::new(
        Rng::new(seed),
        Limits::MAIN,
        0,
        page_size(),
        Model::default_mmap_threshold(),
    );
    m.perturb = !args.no_perturb;
    let mut ops: u64 = 0;
    let fail = |op: u64, what: String| {
        eprintln!(
            "oxmalloc-fuzz: FAILED seed {seed} op {op}: {what} (replay: {replay} --ops {} --trace)",
            op + 1
        );
        ExitCode::from(EXIT_MISMATCH)
    };
    loop {
        if args.ops.is_some_and(|n| ops >= n) || limit.is_some_and(|d| start.elapsed() >= d) {
            break;
        }
        let op = m.gen(args.threads);
        crash::at(ops);
        if args.trace {
            eprintln!("op {ops}: {op:?}");
        }
        let r = match &op {
            Op::Threads(plan) => {
                m.counts[Kind::Threads as usize] += 1;
                threads::run(&mut m, plan, args.trace)
            }
            _ => m.exec(&op, ops).map(|()| 0),
        };
        match r {
            Ok(extra) => ops += 1 + extra,
            Err(what) => return fail(ops, what),
        }
    }
    crash::at(ops);
    if let Err(what) = m.exec(&Op::FreeAll, ops) {
        return fail(ops, what);
    }
    ops += 1;
    print_counts(&m.counts);
    println!("oxmalloc-fuzz: {ops} ops, seed {seed}, ok");
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &[&str]) -> Result<Args, String> {
        parse_args(v.iter().map(|s| s.to_string()))
    }

    #[test]
    fn arguments() {
        let a = parse(&[
            "--seconds",
            "2.5",
            "--seed=0x10",
            "--ops",
            "7",
            "--threads",
            "0",
        ])
        .unwrap();
        assert_eq!(
            (a.seconds, a.seed, a.ops, a.threads),
            (Some(2.5), Some(16), Some(7), 0)
        );
        assert!(parse(&["--seconds"]).is_err());
        assert!(parse(&["--seconds", "-1"]).is_err());
        assert!(parse(&["--seed", "x"]).is_err());
        assert!(parse(&["--threads", "17"]).is_err());
        assert!(parse(&["--trace=1"]).is_err());
        assert!(parse(&["fast"]).is_err());
    }
}
