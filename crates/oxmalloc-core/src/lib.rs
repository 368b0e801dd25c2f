//! oxmalloc-core: glibc's malloc design in Rust — chunks, a per-thread tcache, fast, small,
//! large and unsorted bins, arenas with a brk-grown main heap, and a direct mmap path.
//!
//! `no_std` and allocation-free: nothing in here calls malloc, so it can *be* malloc.
//! The C ABI (`oxmalloc-cabi`) and the Rust `GlobalAlloc` (`oxmalloc`) are thin layers over
//! [`api`].
#![no_std]
#![allow(clippy::missing_safety_doc)]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(test)]
extern crate std;

pub mod api;
pub mod arena;
pub mod bins;
pub mod chunk;
pub mod fmt;
pub mod global;
pub mod harden;
pub mod heap;
pub mod hooks;
pub mod large;
pub mod os;
pub mod registry;
pub mod report_file;
pub mod stats;
pub mod sync;
pub mod tcache;
pub mod tls;
pub mod tunables;
