//! safetensors checkpoints for warmstart: [`SafetensorsSource`] reads a single `.safetensors` file, a
//! sharded Hugging Face checkpoint (`model.safetensors.index.json` naming its shard files), or a folder
//! holding either; [`SafetensorsSink`] writes a single file, or shards and their index as Hugging Face
//! splits a checkpoint by size ([`shards`]).
//!
//! The format: an 8-byte little-endian header length `N`, then `N` bytes of UTF-8 JSON mapping each
//! tensor name to `{"dtype", "shape", "data_offsets": [begin, end]}` (plus an optional
//! `"__metadata__"` string-to-string map), then the data buffer. Offsets are relative to the buffer,
//! tensors are row-major little-endian, and they tile the buffer exactly: no gaps, no overlaps, no
//! trailing bytes. Because of that, reading is a memory map plus a header check, and every row range
//! of every tensor is a borrowed slice of the map.
//!
//! Every header is checked here before use, with one [`SafetensorsError`] variant per way it can be
//! wrong (each naming the file and the tensor), and then once more by the official `safetensors` crate.
#![deny(missing_docs)]

mod dtype;
mod header;
pub mod shards;
mod sink;
mod source;

pub use sink::SafetensorsSink;
pub use source::SafetensorsSource;
pub use warmstart_core::SafetensorsError;
