//! Porting rules: `skip`, `[[rename]]`, `[[transpose]]` and `[[cast]]` from a TOML rules file,
//! applied to any checkpoint's tensors. This crate knows no file format: it reads a
//! [`CheckpointSource`](warmstart_core::CheckpointSource) and presents another ([`RulesSource`]), so
//! `convert`, `diff` and the warm-start's output apply rules through the traits alone.
//!
//! Each source tensor goes through the rules in this order:
//! 1. `skip = ["regex", ...]`: a tensor whose name any of them matches is left out;
//! 2. `[[rename]] pattern, replace`: in order, each applied (to every match, `$1` / `${name}` for
//!    groups) to the result of the previous ones;
//! 3. `[[transpose]] pattern, perm`: the first whose pattern matches the **source** name transposes the
//!    tensor as `np.transpose(x, perm)`;
//! 4. `[[cast]] pattern, to, lossy`: the first matching the source name casts it (see [`cast`]).
//!
//! Patterns are the Rust `regex` crate's syntax (not TensorFlow's Python dialect), searched anywhere
//! in the name (anchor with `^...$`). Every problem with the file is found before any checkpoint is
//! read; every problem with a checkpoint ([`Rules::map`]) before any data is.
#![deny(missing_docs)]

pub mod cast;
mod error;
mod mapping;
pub mod names;
mod parse;
mod source;
pub mod transpose;

pub use error::RulesError;
pub use mapping::{Entry, Fate, Kept, Mapping};
pub use parse::{CastTo, Rule, RuleKind, RuleRef, Rules};
pub use source::{Inner, RulesSource, CHUNK_BYTES};
