//! Detection and dispatch, nothing else: this crate tells which format a checkpoint is in and hands
//! it to that format's crate. It reads and writes no format itself.
//!
//! - [`detect`] tells a checkpoint's [`Format`] from its content (never from its name);
//! - [`open`] opens it with the reader of that format, as a `dyn CheckpointSource`;
//! - [`destination_format`] chooses an output's format from `--to` or its name, and [`create_sink`]
//!   starts the writer of that format, as a `dyn CheckpointSink`;
//! - [`parse_shard_size`] reads `--max-shard-size` (sharded safetensors output);
//! - [`convert`] wires the two: every tensor of a source streamed into a sink, through the traits.
//!
//! Each format's crate is behind a cargo feature of the same name (`safetensors`, `tf`, `hdf5`).
//! Detection knows every format whether or not it is compiled in, so a build without a format says
//! "this build has no tf support" instead of failing to recognise the file ([`compiled_in`]).
#![deny(missing_docs)]

mod convert;
mod detect;
mod dispatch;
mod format;
mod size;

pub use convert::{convert, ConvertReport, SkippedTensor};
pub use detect::{detect, detect_preferring};
pub use dispatch::{
    choose_destination_format, create_sink, destination_format, open, open_preferring, LayoutTemplate, WriteOptions,
};
pub use format::{compiled_in, Format};
pub use size::parse_shard_size;
pub use warmstart_core::FormatsError;
