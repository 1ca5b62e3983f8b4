//! HDF5 weight files for warmstart: Keras 3 `.weights.h5`, legacy Keras full-model `.h5` and any file
//! h5py writes, read as a [`CheckpointSource`](warmstart_core::CheckpointSource) ([`Hdf5Source`]) and
//! written as a [`CheckpointSink`](warmstart_core::CheckpointSink) ([`Hdf5Sink`]).
//!
//! # Naming
//! - A legacy Keras full-model `.h5` has a `model_weights` group whose `layer_names` attribute lists the
//!   layers; each layer group's `weight_names` attribute lists its weights as dataset paths relative to
//!   the layer group (`sequential/d1/kernel:0`). Such a weight is named by its `weight_names` entry
//!   without the `:0` suffix (`sequential/d1/kernel`). An entry naming no dataset lists nothing (a file
//!   written from a Keras template with only some of its weights).
//! - Every other dataset (all of a Keras 3 `.weights.h5`, a legacy file's `optimizer_weights`, any h5py
//!   file) is named by its path from the root without the leading `/` (`layers/dense/vars/0`).
//!
//! # Types
//! Integers of 1 to 8 bytes, IEEE floats of 2, 4 and 8 bytes, h5py's boolean enum (`FALSE`/`TRUE` over
//! a signed byte, listed as `BOOL`), h5py's complex compounds (`r`, `i`), in either byte order: bytes
//! are served little-endian, converted by the HDF5 library. Fixed and variable-length strings are listed
//! as `STRING`. Keras's bfloat16 (and float8) datasets, opaque types of their size marked with a
//! `dtype` attribute (`bfloat16`, `float8_e4m3fn`, `float8_e5m2`), are `BF16` (`F8_E4M3`, `F8_E5M2`),
//! read as stored; an opaque dataset without the mark is refused, its bytes being anything. Contiguous,
//! compact and chunked (gzip, shuffle, ...) storage are all read through the library, row ranges as
//! hyperslabs, so a row range never loads the whole dataset.
//!
//! A file held inside a mapped input (a Keras archive's weights) is opened in place
//! ([`Hdf5Source::open_image`], [`FileImage`]), through the core driver, without a copy.
//!
//! # Writing
//! Datasets go to the tensors' names (groups created from `/`), contiguous, with the same bytes
//! (`BF16`, `F8_E4M3` and `F8_E5M2` as Keras stores bfloat16: opaque, marked). When
//! the writer is given an [`Hdf5Source`] of a Keras file as template, the template's groups (including
//! empty ones) and their attributes are written first (`vars` groups' `name`, `layer_names`,
//! `weight_names`, `model_config`, ...), and a legacy file's weights go back to their original dataset
//! paths, so that Keras `load_weights` accepts the result.
//!
//! The HDF5 C library prints its error stacks to stderr unless told not to; both entry points silence
//! it, and every library error is reported as an [`Hdf5Error`] naming the file and dataset.
#![deny(missing_docs)]

#[cfg(target_endian = "big")]
compile_error!("warmstart-hdf5 serves little-endian bytes through native memory types: little-endian hosts only");

mod heaps;
mod image;
mod layout;
mod raw;
mod sink;
mod source;
mod structure;

pub use image::FileImage;
pub use sink::Hdf5Sink;
pub use source::{Hdf5Source, KerasLayout};
pub use warmstart_core::{Hdf5Error, Hdf5Protocol, Hdf5StructureReason, KerasAttributeReason};
