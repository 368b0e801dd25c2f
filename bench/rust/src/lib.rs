//! The allocators the criterion benchmarks compare (see benches/alloc.rs), behind one list.

pub use mimalloc::MiMalloc;
pub use oxmalloc::OxMalloc;
pub use std::alloc::System;
pub use tikv_jemallocator::Jemalloc;
