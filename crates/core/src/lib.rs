//! The vocabulary every warmstart crate shares: tensor metadata ([`TensorInfo`], [`DType`]), the
//! [`CheckpointSource`] trait that every format reader implements, the [`CheckpointSink`] trait that every
//! format writer implements, and the shared [`Error`] type.
//!
//! Design: readers present *logical* tensors (a partitioned TensorFlow variable is one tensor with its full
//! name and full shape) and serve byte ranges of whole rows, so that the planner and the executor never
//! see a file format, and the executor can stream a tensor row block by row block.
#![deny(missing_docs)]

pub mod cancel;
pub mod copy;
mod dtype;
pub mod error;
mod format;
pub mod journal;
pub mod mapped;
pub mod output;
pub mod shard_index;
mod sink;
mod source;
mod tensor;
#[cfg(any(test, feature = "test-support"))]
pub mod test_support;

pub use copy::copy_tensor;
pub use dtype::{DType, UnknownDType};
pub use error::{
    BadShardSize, Error, FormatsError, Hdf5Error, Hdf5Protocol, Hdf5StructureReason, KerasAttributeReason, KerasError,
    LibraryError, NumpyError, PickleProblem, Result, SafetensorsError, StateFileError, TfError, TorchError,
};
pub use format::{Format, UnknownFormat};
pub use sink::{CheckpointSink, SinkTensor, TensorRegion};
pub use source::{CheckpointSource, GraphInfo, GraphVariable, StoredBytes, VariablePart};
pub use tensor::{Slice, TensorInfo};
