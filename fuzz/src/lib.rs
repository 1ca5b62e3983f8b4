//! Fuzzing warmstart's readers on stable Rust. Each target in [`targets`] is a `fn(&[u8])` that a
//! libfuzzer `fuzz_target!` could call; the `warmstart-fuzz` binary ([`driver`]) runs them as a long
//! property test instead: it mutates the fixtures ([`mutate`]) from a fixed seed and runs each target
//! in a child process of its own, which catches panics and reports slow inputs, while the parent
//! restarts it after a crash (an abort, a signal, a C library's crash) and keeps the reproducer.
//!
//! Reproducers of fixed findings live under `fuzz/regressions/<target>/` and run as tests.

pub mod alloc;
pub mod driver;
pub mod mutate;
pub mod targets;

pub use targets::{target, Target, TARGETS};
