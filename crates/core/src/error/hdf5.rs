//! [`Hdf5Error`]: every way reading or writing an HDF5 file can fail, naming the file and the dataset.

use std::path::PathBuf;

/// An HDF5 read or write failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Hdf5Error {
    /// The file could not be opened as HDF5 (missing, not HDF5, truncated, corrupt superblock).
    #[error("{path}: cannot open as HDF5: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// What the HDF5 library said.
        source: crate::LibraryError,
    },
    /// A group could not be listed or opened.
    #[error("{path}: cannot read group {group:?}: {source}")]
    Group {
        /// The file.
        path: PathBuf,
        /// The group's path.
        group: String,
        /// What the HDF5 library said.
        source: crate::LibraryError,
    },
    /// A dataset's header (type, shape, storage) could not be read.
    #[error("{path}: cannot read the header of dataset {dataset:?}: {source}")]
    Dataset {
        /// The file.
        path: PathBuf,
        /// The dataset's path.
        dataset: String,
        /// What the HDF5 library said.
        source: crate::LibraryError,
    },
    /// A dataset's element type has no warmstart dtype.
    #[error("{path}: dataset {dataset:?} has element type {found}, which warmstart does not read")]
    UnsupportedType {
        /// The file.
        path: PathBuf,
        /// The dataset's path.
        dataset: String,
        /// The HDF5 type, described.
        found: String,
    },
    /// A contiguous dataset stores a different number of bytes than its shape and type declare.
    #[error("{path}: dataset {dataset:?} declares {declared} bytes but stores {stored}")]
    DeclaredSizeMismatch {
        /// The file.
        path: PathBuf,
        /// The dataset's path.
        dataset: String,
        /// Bytes its shape and type declare.
        declared: u64,
        /// Bytes allocated for it in the file.
        stored: u64,
    },
    /// A chunked dataset declares far more bytes than its chunks store, more than compression or
    /// unwritten chunks explain: a forged shape (reading it would walk a forged number of chunks).
    #[error("{path}: dataset {dataset:?} declares {declared} bytes but its chunks store only {stored}")]
    ChunkedSizeImplausible {
        /// The file.
        path: PathBuf,
        /// The dataset's path.
        dataset: String,
        /// Bytes its shape and type declare.
        declared: u64,
        /// Bytes allocated for its chunks in the file.
        stored: u64,
    },
    /// A dataset's shape is too large to address.
    #[error("{path}: dataset {dataset:?} is too large to address")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The dataset's path.
        dataset: String,
    },
    /// Reading a dataset's data failed (corrupt chunk, failed decompression, storage past the end).
    #[error("{path}: cannot read dataset {dataset:?}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The dataset's path.
        dataset: String,
        /// What the HDF5 library said.
        source: crate::LibraryError,
    },
    /// A Keras attribute (`layer_names`, `weight_names`) is not a list of UTF-8 strings, or
    /// `layer_names` names a layer group that is not there.
    #[error("{path}: attribute {attribute:?} of group {group:?}: {reason}")]
    KerasAttribute {
        /// The file.
        path: PathBuf,
        /// The group carrying the attribute.
        group: String,
        /// The attribute.
        attribute: String,
        /// What is wrong.
        reason: String,
    },
    /// Two datasets would be listed under the same tensor name.
    #[error("{path}: datasets {first:?} and {second:?} are both named {name:?}")]
    DuplicateName {
        /// The file.
        path: PathBuf,
        /// The name.
        name: String,
        /// The first dataset.
        first: String,
        /// The second dataset.
        second: String,
    },
    /// A tensor name that is not a valid HDF5 path (empty, or with an empty component).
    #[error("{path}: tensor name {name:?} is not a valid HDF5 dataset path")]
    InvalidName {
        /// The destination.
        path: PathBuf,
        /// The tensor.
        name: String,
    },
    /// The writer cannot store this dtype as HDF5.
    #[error("{path}: tensor {name:?} has dtype {dtype}, which has no HDF5 type that h5py reads back")]
    UnsupportedDType {
        /// The destination.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// Its dtype.
        dtype: crate::DType,
    },
    /// The writer received a part of a tensor; HDF5 files hold whole tensors.
    #[error("{path}: tensor {name:?} was given as a slice; HDF5 output takes whole tensors only")]
    SliceGiven {
        /// The destination.
        path: PathBuf,
        /// The tensor.
        name: String,
    },
    /// Writing to the output file failed.
    #[error("{path}: cannot write {what}: {source}")]
    Write {
        /// The destination.
        path: PathBuf,
        /// The dataset, group or attribute being written.
        what: String,
        /// What the HDF5 library said.
        source: crate::LibraryError,
    },
    /// Copying the template's layout (groups and attributes) failed.
    #[error("{path}: cannot copy {what} from template {template}: {source}")]
    Template {
        /// The destination.
        path: PathBuf,
        /// The template file.
        template: PathBuf,
        /// The group or attribute being copied.
        what: String,
        /// What the HDF5 library said.
        source: crate::LibraryError,
    },
    /// The writer was used out of order (data without `begin_tensor`, a tensor not declared, ...).
    #[error("{path}: {reason}")]
    Protocol {
        /// The destination.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A file-system operation on the output failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
}


impl From<Hdf5Error> for crate::Error {
    fn from(e: Hdf5Error) -> Self {
        match e {
            Hdf5Error::Io { path, source } => crate::Error::Io { path, source },
            other => crate::Error::Hdf5(Box::new(other)),
        }
    }
}
