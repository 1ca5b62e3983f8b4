//! The error type that crosses crate boundaries: what the traits return. Format crates keep their own
//! detailed enums and convert into [`Error::Format`].

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
    /// A format-specific failure (corrupt file, bad header, ...), already naming file and tensor.
    #[error(transparent)]
    Format(Box<dyn std::error::Error + Send + Sync + 'static>),
}

impl Error {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    /// Wraps a format crate's own error.
    pub fn format(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Format(Box::new(err))
    }
}
