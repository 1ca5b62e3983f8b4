//! The error type that crosses crate boundaries: what the traits return. Each format's detailed enum
//! ([`TfError`], [`SafetensorsError`], [`Hdf5Error`], and [`FormatsError`] for telling and choosing
//! formats) is defined here, beside [`Error`], so that it reaches every caller with its type intact:
//! a caller matches `Error::Tf(e)` (or calls [`Error::tf`]) and gets a `TfError`, without
//! downcasting (boxed, so that `Result`s stay small). The format crates
//! build and re-export them; core itself reads no format. Failures every format shares (I/O, a missing
//! tensor, rows out of range, ...) are [`Error`]'s own variants.

mod formats;
mod hdf5;
mod keras;
mod numpy;
mod safetensors;
mod tf;
mod torch;

pub use formats::{BadShardSize, FormatsError};
pub use hdf5::{Hdf5Error, Hdf5Protocol, Hdf5StructureReason, KerasAttributeReason};
pub use keras::KerasError;
pub use numpy::NumpyError;
pub use safetensors::SafetensorsError;
pub use tf::{StateFileError, TfError};
pub use torch::{PickleProblem, TorchError};

use std::path::PathBuf;

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong reading or writing a checkpoint through the traits.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error on a named file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The tensor is not in the checkpoint.
    #[error("{path}: tensor {name:?} not found")]
    TensorNotFound {
        /// The checkpoint.
        path: PathBuf,
        /// The tensor asked for.
        name: String,
    },
    /// A row range outside the tensor.
    #[error("{path}: rows {start}..{end} requested from tensor {name:?}, which has {rows} rows")]
    RowsOutOfRange {
        /// The checkpoint.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// First row asked for.
        start: u64,
        /// One past the last row asked for.
        end: u64,
        /// The rows the tensor has.
        rows: u64,
    },
    /// Bytes were asked of a string tensor, or strings of a numeric one.
    #[error("{path}: tensor {name:?} has dtype {dtype}, which this operation does not take")]
    WrongDType {
        /// The checkpoint.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// Its dtype.
        dtype: crate::DType,
    },
    /// The tensor is too large for this machine's address space.
    #[error("{path}: tensor {name:?} is too large to address")]
    TooLarge {
        /// The checkpoint.
        path: PathBuf,
        /// The tensor.
        name: String,
    },
    /// The writer cannot store this tensor (for instance strings in safetensors).
    #[error("{path}: the {format} format cannot store tensor {name:?} ({reason})")]
    Unsupported {
        /// The destination.
        path: PathBuf,
        /// The destination format.
        format: crate::Format,
        /// The tensor.
        name: String,
        /// Why not.
        reason: String,
    },
    /// The sink was fed bytes that do not match the tensor it was told about.
    #[error("{path}: tensor {name:?} was given {given} bytes, expected {expected}")]
    SizeMismatch {
        /// The destination.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// Bytes given.
        given: u64,
        /// Bytes expected.
        expected: u64,
    },
    /// An input file changed while it was being read: truncated (bytes it had when mapped vanished)
    /// or rewritten in place (its size or modification time changed).
    #[error(
        "{path}: the input changed while being read: {reason}; inputs must not be modified until warmstart is done"
    )]
    InputChanged {
        /// The input file.
        path: PathBuf,
        /// What changed.
        reason: String,
    },
    /// The work was cancelled through a [`CancelToken`](crate::cancel::CancelToken) (Ctrl-C).
    #[error("{path}: cancelled")]
    Cancelled {
        /// The checkpoint being read when it stopped.
        path: PathBuf,
    },
    /// A TensorFlow checkpoint cannot be read or written.
    #[error(transparent)]
    Tf(Box<TfError>),
    /// A safetensors file, index or folder cannot be read or written.
    #[error(transparent)]
    Safetensors(Box<SafetensorsError>),
    /// An HDF5 file cannot be read or written.
    #[error(transparent)]
    Hdf5(Box<Hdf5Error>),
    /// A checkpoint's format cannot be told or handled, or a destination's cannot be chosen.
    #[error(transparent)]
    Formats(Box<FormatsError>),
    /// A Keras archive or sharded Keras weights index cannot be read or written.
    #[error(transparent)]
    Keras(Box<KerasError>),
    /// A PyTorch checkpoint cannot be read.
    #[error(transparent)]
    Torch(Box<TorchError>),
    /// A NumPy `.npz` or `.npy` file cannot be read or written.
    #[error(transparent)]
    Numpy(Box<NumpyError>),
}

/// What a library a format crate builds on (prost, serde_json, safetensors, the HDF5 C library)
/// said, as the `source` of one of the format enums' variants; core does not depend on those
/// libraries. Only the message and the source chain matter to callers; the variant it sits in says
/// what failed.
pub type LibraryError = Box<dyn std::error::Error + Send + Sync + 'static>;

impl Error {
    /// The TF reader's or writer's own error, if this is one.
    pub fn tf(&self) -> Option<&TfError> {
        match self {
            Error::Tf(e) => Some(e),
            _ => None,
        }
    }

    /// The safetensors reader's or writer's own error, if this is one.
    pub fn safetensors(&self) -> Option<&SafetensorsError> {
        match self {
            Error::Safetensors(e) => Some(e),
            _ => None,
        }
    }

    /// The HDF5 reader's or writer's own error, if this is one.
    pub fn hdf5(&self) -> Option<&Hdf5Error> {
        match self {
            Error::Hdf5(e) => Some(e),
            _ => None,
        }
    }

    /// The Keras archive reader's or writer's own error, if this is one.
    pub fn keras(&self) -> Option<&KerasError> {
        match self {
            Error::Keras(e) => Some(e),
            _ => None,
        }
    }

    /// The PyTorch reader's own error, if this is one.
    pub fn torch(&self) -> Option<&TorchError> {
        match self {
            Error::Torch(e) => Some(e),
            _ => None,
        }
    }

    /// The NumPy reader's or writer's own error, if this is one.
    pub fn numpy(&self) -> Option<&NumpyError> {
        match self {
            Error::Numpy(e) => Some(e),
            _ => None,
        }
    }

    /// Why a format could not be told or handled, if this is that.
    pub fn formats(&self) -> Option<&FormatsError> {
        match self {
            Error::Formats(e) => Some(e),
            _ => None,
        }
    }

    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}
