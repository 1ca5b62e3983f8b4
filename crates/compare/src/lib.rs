//! Comparing checkpoints: [`diff`] (two checkpoints of any formats, element by element, with
//! `numpy.isclose`'s tolerance) and [`stats`] (per-tensor min, max, mean, std and counts). Both read
//! through [`CheckpointSource`](warmstart_core::CheckpointSource) in row blocks, so memory stays
//! bounded whatever the checkpoints' sizes, compute in `f64`, and work on tensors (and on the blocks
//! of a large tensor) in parallel. This crate knows no file format.
#![deny(missing_docs)]

mod decode;
pub mod diff;
pub mod stats;

pub use decode::decodes;
pub use diff::{diff, DiffOptions, DiffReport, TensorDiff, ValueDiff};
pub use stats::{stats, stats_of, TensorStats};
