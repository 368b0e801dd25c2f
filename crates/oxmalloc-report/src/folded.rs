//! Folded stacks for flame graphs (`flamegraph.pl`, inferno, speedscope): one line per
//! distinct stack, `root;caller;...;callee VALUE`, outermost caller first, inlined calls
//! expanded. VALUE is the options' sample type (live bytes by default); zero lines are left
//! out, lines sorted. `by` library, thread or size adds a root frame `[libfoo.so]`,
//! `[thread SLOT NAME]` or `[size MIN..MAX]` (the class of the site's average block).

use crate::symbols::Frame;
use crate::{By, Options, Report};
use std::collections::BTreeMap;

fn clean(s: &str) -> String {
    s.replace(';', ":").replace('\n', " ")
}

/// The folded names of one stack, outermost first.
pub fn names(stack: &[Frame]) -> Vec<String> {
    let mut out = Vec::new();
    for f in stack.iter().rev() {
        if f.lines.is_empty() {
            out.push(clean(&format!("{}+{:#x}", f.library, f.offset)));
        }
        for (i, l) in f.lines.iter().enumerate().rev() {
            let name = match &l.function {
                Some(n) => n.clone(),
                None if i + 1 == f.lines.len() => format!("{}+{:#x}", f.library, f.offset),
                None => "??".to_string(),
            };
            out.push(clean(&name));
        }
    }
    out
}

fn size_root(bytes: u64, blocks: u64) -> String {
    if blocks == 0 {
        return "[size ?]".into();
    }
    let avg = bytes.div_ceil(blocks);
    if avg <= 1 {
        return "[size 0..1]".into();
    }
    let k = 64 - (avg - 1).leading_zeros();
    format!("[size {}..{}]", (1u64 << (k - 1)) + 1, 1u64 << k)
}

pub fn render(r: &Report, opts: &Options) -> String {
    let mut lines: BTreeMap<String, u64> = BTreeMap::new();
    for x in &r.aggregate.sites {
        let v = opts.sample_type.value(&x.figures);
        if v == 0 {
            continue;
        }
        let mut parts = Vec::new();
        match opts.by {
            Some(By::Library) => parts.push(format!("[{}]", clean(&x.library))),
            Some(By::Thread) => {
                let root = match r.thread(x.slot).map(|t| t.name.as_str()) {
                    Some(name) if !name.is_empty() => format!("[thread {} {name}]", x.slot),
                    _ => format!("[thread {}]", x.slot),
                };
                parts.push(clean(&root));
            }
            Some(By::Size) => parts.push(size_root(x.figures.total_bytes, x.figures.total_blocks)),
            Some(By::Site) | None => {}
        }
        parts.extend(names(r.stack(x.stack)));
        if parts.is_empty() {
            parts.push("[no stack]".into());
        }
        *lines.entry(parts.join(";")).or_default() += v;
    }
    let mut out = String::new();
    for (k, v) in lines {
        out.push_str(&k);
        out.push(' ');
        out.push_str(&v.to_string());
        out.push('\n');
    }
    out
}
