//! Every checkpoint format behind one door: [`detect`] tells a checkpoint's [`Format`] from its content
//! (never from its name), [`open`] reads it, [`destination_format`] and [`create_sink`] pick and start
//! a writer, and [`convert`] streams a whole checkpoint from one format into another.
//!
//! Each format's crate is behind a cargo feature of the same name (`safetensors`, and later `tf`,
//! `hdf5`). Detection knows every format whether or not it is compiled in, so a build without a format
//! says "this build has no tf support" instead of failing to recognise the file.
#![deny(missing_docs)]

mod convert;
mod detect;
mod dispatch;
mod format;

pub use convert::{convert, ConvertReport, SkippedTensor};
pub use detect::detect;
pub use dispatch::{create_sink, destination_format, open, LayoutTemplate, WriteOptions};
pub use warmstart_core::FormatsError;
pub use format::{compiled_in, Format};
