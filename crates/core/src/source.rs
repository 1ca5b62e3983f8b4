//! The [`CheckpointSource`] trait: what every format reader offers the planner and the executor.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::Path;

use crate::{Error, Format, Result, Slice, TensorInfo};

/// A checkpoint opened for reading, in any format.
///
/// Tensors are *logical*: a TensorFlow variable saved as several slices is listed once, with its full
/// name and full shape, and its rows are assembled from the slices on read. Reads return whole rows
/// (everything under the first dimension), borrowed from a memory map where the format allows, so a
/// caller can stream a large tensor in row blocks. A scalar has one row.
pub trait CheckpointSource: Send + Sync {
    /// The format this source reads.
    fn format(&self) -> Format;

    /// The path the checkpoint was opened from (a file, a prefix or a folder).
    fn path(&self) -> &Path;

    /// Every tensor, in the order the format stores them.
    fn tensors(&self) -> &[TensorInfo];

    /// The tensor called `name`, if there is one.
    fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors().iter().find(|t| t.name == name)
    }

    /// Row-major bytes of rows `rows` of a numeric tensor, little-endian.
    fn read_rows(&self, name: &str, rows: Range<u64>) -> Result<Cow<'_, [u8]>>;

    /// Says the caller is done, for now, with rows `rows` of `name`: a source that serves them from a
    /// memory map may drop their pages from the process's resident memory (they stay in the OS page
    /// cache, and a later read maps them again). Bytes borrowed from earlier reads stay valid and
    /// unchanged. Streaming callers release what they have written, so that resident memory stays
    /// bounded however large the checkpoint. Does nothing by default.
    fn release(&self, _name: &str, _rows: Range<u64>) {}

    /// An error naming the input if a file of this checkpoint changed since it was opened: truncated
    /// while being read (found by the reads themselves), or rewritten in place (its size or
    /// modification time differ). Writers of a new checkpoint call it before putting the output in
    /// place, and when a write fails (a write from a map whose pages vanished fails with EFAULT: the
    /// input, not the output, is at fault). Sources that read whole files at open keep the default,
    /// which says nothing changed.
    fn check_unchanged(&self) -> Result<()> {
        Ok(())
    }

    /// [`Error::Cancelled`](crate::Error::Cancelled) once the work reading this source is cancelled
    /// (a [`CancellableSource`](crate::cancel::CancellableSource)), for work between reads that reads
    /// no source (the one-pass remap reading its regions back). Sources that wrap another pass it on;
    /// others are never cancelled (the default).
    fn check_cancelled(&self) -> Result<()> {
        Ok(())
    }

    /// Whether the numeric tensor `name` is stored as one run of bytes, in row order, carrying its
    /// CRC32C (a TF bundle's entry): a caller reading every byte of it once, in order, through
    /// [`read_rows_unverified`](CheckpointSource::read_rows_unverified) can hash them on the way and
    /// have [`verify_crc32c`](CheckpointSource::verify_crc32c) check the sum, instead of the source
    /// verifying the tensor in a pass of its own on its first read. `false` by default.
    fn stores_crc32c(&self, _name: &str) -> bool {
        false
    }

    /// [`read_rows`](CheckpointSource::read_rows) without the check a source makes on a tensor's first
    /// read, for a caller that verifies the bytes itself (see
    /// [`stores_crc32c`](CheckpointSource::stores_crc32c)); by default, `read_rows`. Nothing read this
    /// way may reach an output before [`verify_crc32c`](CheckpointSource::verify_crc32c) has passed.
    fn read_rows_unverified(&self, name: &str, rows: Range<u64>) -> Result<Cow<'_, [u8]>> {
        self.read_rows(name, rows)
    }

    /// Checks `crc32c`, the CRC32C of every byte of the tensor `name` in order (as read through
    /// [`read_rows_unverified`](CheckpointSource::read_rows_unverified)), against the one stored: the
    /// same error as a failed check on a first read if they differ; the tensor counts as verified if
    /// they agree. Does nothing by default (a source that stores no checksum).
    fn verify_crc32c(&self, _name: &str, _crc32c: u32) -> Result<()> {
        Ok(())
    }

    /// Where the bytes of the numeric tensor `name` lie in one of the checkpoint's files, exactly as
    /// [`read`](CheckpointSource::read) returns them (one run, row-major, little-endian), for a copy
    /// made file to file ([`TensorRegion::copy_from`](crate::TensorRegion::copy_from)); `None` by
    /// default, and for a tensor stored otherwise. The bytes are not checked: a copy of them is kept
    /// only once [`checked_crc32c`](CheckpointSource::checked_crc32c) has passed.
    fn stored_bytes(&self, _name: &str) -> Option<StoredBytes<'_>> {
        None
    }

    /// Makes the check a source makes on a tensor's first read (a TF bundle verifies its CRC32C) and
    /// returns the CRC32C of the tensor's bytes (as [`read`](CheckpointSource::read) returns them) if
    /// the source stores one, now verified; `Ok(None)` if it stores none. By default, reads the
    /// tensor's first row (its check, if any) and returns `Ok(None)`.
    fn checked_crc32c(&self, name: &str) -> Result<Option<u32>> {
        let rows = self.require(name)?.rows();
        self.read_rows(name, 0..rows.min(1))?;
        Ok(None)
    }

    /// Row-major bytes of a whole numeric tensor, little-endian.
    fn read(&self, name: &str) -> Result<Cow<'_, [u8]>> {
        let rows = self.require(name)?.rows();
        self.read_rows(name, 0..rows)
    }

    /// The elements of a string tensor, in row-major order.
    fn read_strings(&self, name: &str) -> Result<Vec<Vec<u8>>> {
        let info = self.require(name)?;
        Err(Error::WrongDType { path: self.path().to_path_buf(), name: name.to_string(), dtype: info.dtype })
    }

    /// How the tensor is stored in parts (TensorFlow partitioned variables), or `None` if it is stored
    /// whole. Optional: formats without partitions (safetensors, HDF5) keep the default, `None` for
    /// every tensor.
    fn slices(&self, _name: &str) -> Option<Vec<Slice>> {
        None
    }

    /// The model's variables as a graph describes them (TF1 `.meta`). Optional: formats without a
    /// graph (safetensors, HDF5), and TF checkpoints saved without a `.meta`, return `None` (the
    /// default), and the planner then tells variables from the tensors themselves.
    fn graph(&self) -> Option<&GraphInfo> {
        None
    }

    /// For object-based checkpoints (TF2), the map from each variable's original full name to its
    /// checkpoint key. Optional: name-based checkpoints, and formats without an object graph
    /// (safetensors, HDF5), return `Ok(None)` (the default).
    fn object_graph_keys(&self) -> Result<Option<HashMap<String, String>>> {
        Ok(None)
    }

    /// Free-form string metadata the file carries (safetensors `__metadata__`).
    fn metadata(&self) -> Option<&BTreeMap<String, String>> {
        None
    }

    /// The tensor called `name`, or [`Error::TensorNotFound`].
    fn require(&self, name: &str) -> Result<&TensorInfo> {
        self.tensor(name)
            .ok_or_else(|| Error::TensorNotFound { path: self.path().to_path_buf(), name: name.to_string() })
    }
}

/// The model's variables as a graph describes them, in the order of its global-variables collection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GraphInfo {
    /// Every global variable.
    pub variables: Vec<GraphVariable>,
}

/// One (possibly partitioned) variable of a graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphVariable {
    /// The full name, without `:0` (for a partitioned variable, the `full_name` of its parts).
    pub name: String,
    /// The full shape.
    pub shape: Vec<u64>,
    /// Whether it is in the trainable-variables collection.
    pub trainable: bool,
    /// Its partitions (`name/part_0`, ...), or empty if it is not partitioned.
    pub parts: Vec<VariablePart>,
}

/// One partition of a partitioned variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariablePart {
    /// The part's own variable name, without `:0`, e.g. `x/part_1`.
    pub name: String,
    /// Where the part lies in the full variable.
    pub slice: Slice,
}

/// Where a numeric tensor's bytes lie in a file ([`CheckpointSource::stored_bytes`]).
#[derive(Debug, Clone, Copy)]
pub struct StoredBytes<'a> {
    /// The file, opened for reading.
    pub file: &'a std::fs::File,
    /// Its path, for errors.
    pub path: &'a Path,
    /// Where the tensor's bytes start in it.
    pub offset: u64,
    /// How many bytes the tensor has.
    pub len: u64,
}
