//! The [`CheckpointSink`] trait: what every format writer offers the executor.

use std::path::Path;

use crate::{Result, Slice, TensorInfo};

/// A tensor (or one slice of a partitioned tensor) about to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkTensor {
    /// Name, dtype and **full** shape.
    pub info: TensorInfo,
    /// The part of the full tensor this entry holds, or `None` for the whole tensor. Formats without
    /// partitions receive only whole tensors.
    pub slice: Option<Slice>,
}

impl SinkTensor {
    /// A whole tensor.
    pub fn whole(info: TensorInfo) -> Self {
        SinkTensor { info, slice: None }
    }

    /// The shape of the data this entry holds: the slice's, or the full shape.
    pub fn data_shape(&self) -> &[u64] {
        match &self.slice {
            Some(s) => &s.len,
            None => &self.info.shape,
        }
    }

    /// The bytes of the data this entry holds, or `None` for strings or on overflow.
    pub fn byte_len(&self) -> Option<u64> {
        crate::tensor::num_elements(self.data_shape())?.checked_mul(self.info.dtype.size()? as u64)
    }
}

/// A checkpoint being written.
///
/// The writer is created with the list of tensors it will receive (formats such as safetensors need the
/// whole header first). Numeric tensors then arrive one at a time, in that order, as `begin_tensor`,
/// any number of `write_data` calls whose bytes add up to the tensor's size in row-major little-endian
/// order, and `end_tensor`; string tensors arrive whole through `write_strings`. Output goes to temporary
/// files beside the destination; only `finish` moves them into place, and dropping an unfinished sink
/// removes them.
pub trait CheckpointSink: Send {
    /// Where the checkpoint will be when finished.
    fn path(&self) -> &Path;

    /// Starts a numeric tensor.
    fn begin_tensor(&mut self, tensor: &SinkTensor) -> Result<()>;

    /// Appends bytes of the current tensor.
    fn write_data(&mut self, bytes: &[u8]) -> Result<()>;

    /// Ends the current tensor; fails if fewer bytes than its size were written.
    fn end_tensor(&mut self) -> Result<()>;

    /// Writes a whole string tensor.
    fn write_strings(&mut self, tensor: &SinkTensor, values: &[Vec<u8>]) -> Result<()>;

    /// Completes the files and moves them into place.
    fn finish(self: Box<Self>) -> Result<()>;
}
