//! The threads-at-once phase: 2–4 workers run their own models at the same time, on their
//! own blocks and on blocks handed over by the main thread, and hand some of theirs back.

use crate::model::{Block, Counts, Limits, Model};
use crate::rng::Rng;
use std::sync::atomic::{AtomicU8, Ordering};
use std::thread;

/// One thread phase, fixed when the operation is generated.
#[derive(Clone, Copy, Debug)]
pub struct ThreadPlan {
    pub seed: u64,
    pub workers: usize,
    /// Random operations each worker runs (before freeing or handing back what it holds).
    pub steps: u64,
}

/// What a worker brings back: the blocks it hands to the main thread, its operation counts
/// and how many operations it ran.
struct Done {
    back: Vec<Block>,
    counts: Counts,
    ops: u64,
}

const WAIT: u8 = 0;
const GO: u8 = 1;
const CANCEL: u8 = 2;

/// Runs thread phase `plan` and returns how many
/// operations the workers ran. Everything the main thread's model decides here comes from the
/// plan's seed, so the main sequence stays replayable; only the interleaving varies.
///
/// While the workers run, the main thread only waits: its System-allocator calls would go to
/// glibc's main arena, which grows with brk just as oxmalloc's main arena does, and two
/// threads moving the break at once would race in sbrk (a harness artefact, not a bug).
pub fn run(main: &mut Model, plan: &ThreadPlan, trace: bool) -> Result<u64, String> {
    let mut rng = Rng::new(plan.seed);
    let workers = plan.workers.max(1);
    let mut handed: Vec<Vec<Block>> = vec![Vec::new(); workers];
    let mut i = 0;
    while i < main.len() {
        if rng.chance(1, 3) {
            main.verify_slot(i)
                .map_err(|e| format!("before handing a block over: {e}"))?;
            let b = main.remove(i);
            handed[rng.below(workers)].push(b);
        } else {
            i += 1;
        }
    }
    let seeds: Vec<u64> = (0..workers).map(|_| rng.next_u64()).collect();
    let (page, thr, perturb) = (main.page(), main.mmap_threshold(), main.perturb);
    let gate = AtomicU8::new(WAIT);
    let mut results: Vec<Result<Done, String>> = Vec::with_capacity(workers);

    thread::scope(|s| {
        let mut handles = Vec::with_capacity(workers);
        let mut spawn_error = None;
        for (k, (blocks, seed)) in handed.into_iter().zip(seeds).enumerate() {
            let gate = &gate;
            let spawned = thread::Builder::new()
                .name(format!("fuzz-worker-{k}"))
                .spawn_scoped(s, move || {
                    let mut m = Model::new(Rng::new(seed), Limits::WORKER, k + 1, page, thr);
                    m.perturb = perturb;
                    worker(k, m, blocks, plan.steps, gate, trace)
                });
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    spawn_error = Some(format!("cannot start worker {k}: {e}"));
                    break;
                }
            }
        }
        let go = if spawn_error.is_some() { CANCEL } else { GO };
        gate.store(go, Ordering::Release);
        for h in handles {
            results.push(
                h.join()
                    .unwrap_or_else(|_| Err("a worker panicked".to_string())),
            );
        }
        if let Some(e) = spawn_error {
            results.push(Err(e));
        }
    });

    let mut ops = 0;
    let mut back = Vec::new();
    for r in results {
        let d = r.map_err(|e| format!("thread phase: {e}"))?;
        for (total, n) in main.counts.iter_mut().zip(d.counts) {
            *total += n;
        }
        ops += d.ops;
        back.push(d.back);
    }
    for b in back.into_iter().flatten() {
        main.insert(b)
            .map_err(|e| format!("after the thread phase, a handed-back block: {e}"))?;
    }
    main.verify_all()
        .map_err(|e| format!("after the thread phase: {e}"))?;
    Ok(ops)
}

/// One worker (model `m`): waits for the gate, adopts the handed-over blocks, runs `steps` random
/// operations, then frees three quarters of what it holds and hands the rest back.
fn worker(
    k: usize,
    mut m: Model,
    blocks: Vec<Block>,
    steps: u64,
    gate: &AtomicU8,
    trace: bool,
) -> Result<Done, String> {
    loop {
        match gate.load(Ordering::Acquire) {
            WAIT => thread::yield_now(),
            GO => break,
            _ => return Err(format!("worker {k} cancelled")),
        }
    }
    for b in blocks {
        m.insert(b)
            .map_err(|e| format!("worker {k} adopting a handed-over block: {e}"))?;
    }
    let mut ops = 0;
    for j in 0..steps {
        let op = m.gen(0);
        if trace {
            eprintln!("worker {k} step {j}: {op:?}");
        }
        m.exec(&op, j)
            .map_err(|e| format!("worker {k} step {j}: {e}"))?;
        ops += 1;
    }
    let mut back = Vec::new();
    while let Some(i) = m.len().checked_sub(1) {
        if m.rng.chance(1, 4) {
            m.verify_slot(i)
                .map_err(|e| format!("worker {k} before handing back: {e}"))?;
            back.push(m.remove(i));
        } else {
            let op = crate::model::Op::Free { slot: Some(i) };
            m.exec(&op, ops)
                .map_err(|e| format!("worker {k} step {ops} (final free): {e}"))?;
            ops += 1;
        }
    }
    Ok(Done {
        back,
        counts: m.counts,
        ops,
    })
}
