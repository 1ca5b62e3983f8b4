//! [`NumpyError`]: every way a NumPy `.npz` archive or `.npy` file can be refused, and every way the
//! `.npz` writer can be misused, each naming the file and (where there is one) the member or tensor.

use std::path::PathBuf;

/// A NumPy file that cannot be read, or a write that cannot be done. `member` is the `.npy` member of
/// an `.npz` archive as the archive names it, or the file's own name for a single `.npy` file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NumpyError {
    // ----- the archive -----
    /// The zip structure of an `.npz` cannot be read (no end of central directory, bad offsets, ...).
    #[error("{}: not a readable .npz archive: {source}", path.display())]
    BadArchive {
        /// The archive.
        path: PathBuf,
        /// What the zip library said.
        source: crate::LibraryError,
    },
    /// A member of the archive cannot be read (its local header, its compressed data).
    #[error("{}: member {member:?} cannot be read: {source}", path.display())]
    BadMember {
        /// The archive.
        path: PathBuf,
        /// The member.
        member: String,
        /// What the zip library (or the inflater) said.
        source: crate::LibraryError,
    },
    /// A member that is not a `.npy` array (np.load would hand it out as raw bytes, not an array).
    #[error("{}: member {member:?} is not a .npy array (an .npz holds only <name>.npy members)", path.display())]
    NotNpyMember {
        /// The archive.
        path: PathBuf,
        /// The member.
        member: String,
    },
    /// A member stored with a compression method other than stored or deflated (np.savez writes only
    /// those two).
    #[error("{}: member {member:?} is compressed with {method}; only stored and deflated members are read", path.display())]
    UnsupportedCompression {
        /// The archive.
        path: PathBuf,
        /// The member.
        member: String,
        /// The method, as the zip library names it.
        method: String,
    },
    /// An encrypted member.
    #[error("{}: member {member:?} is encrypted", path.display())]
    Encrypted {
        /// The archive.
        path: PathBuf,
        /// The member.
        member: String,
    },
    /// A deflated member whose inflated size (from its `.npy` header) is more than deflate can give
    /// from its compressed bytes, or differs from the size the archive records.
    #[error("{}: member {member:?} claims {claimed} bytes inflated from {compressed} compressed bytes ({why})", path.display())]
    InflatedSize {
        /// The archive.
        path: PathBuf,
        /// The member.
        member: String,
        /// The inflated size claimed.
        claimed: u64,
        /// The compressed size.
        compressed: u64,
        /// Which check failed.
        why: &'static str,
    },

    // ----- the .npy header -----
    /// The bytes do not start with the `.npy` magic `\x93NUMPY`.
    #[error("{}: {member:?} is not a .npy array (no \\x93NUMPY magic)", path.display())]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The member.
        member: String,
    },
    /// A format version other than 1.0, 2.0 and 3.0.
    #[error("{}: {member:?} is .npy format version {major}.{minor}; versions 1.0, 2.0 and 3.0 are read", path.display())]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The member.
        member: String,
        /// The major version.
        major: u8,
        /// The minor version.
        minor: u8,
    },
    /// The header (or its length field) runs past the end of the member.
    #[error("{}: {member:?}: the .npy header needs {need} bytes but the member has {have}", path.display())]
    HeaderTruncated {
        /// The file.
        path: PathBuf,
        /// The member.
        member: String,
        /// The bytes the header needs.
        need: u64,
        /// The bytes there are.
        have: u64,
    },
    /// The header is longer than numpy itself reads (`np.load`'s `max_header_size`, 10000 bytes).
    #[error("{}: {member:?}: the .npy header claims {len} bytes, more than the {max} numpy reads", path.display())]
    HeaderTooLarge {
        /// The file.
        path: PathBuf,
        /// The member.
        member: String,
        /// The header length claimed.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// The header is not the dict literal numpy writes (`{'descr': ..., 'fortran_order': ..., 'shape': ...}`).
    #[error("{}: {member:?}: bad .npy header at byte {at}: expected {expected}", path.display())]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// The member.
        member: String,
        /// The byte of the header text where parsing stopped.
        at: usize,
        /// What was expected there.
        expected: &'static str,
    },
    /// A dtype warmstart does not read: object arrays (which need pickle), structured and complex
    /// dtypes, strings, dates, ...
    #[error("{}: {member:?} has dtype {descr}, which is {kind} and not read", path.display())]
    UnsupportedDtype {
        /// The file.
        path: PathBuf,
        /// The member.
        member: String,
        /// The dtype as the header spells it.
        descr: String,
        /// What kind of dtype it is ("an object dtype", "a structured dtype", "a complex dtype", ...).
        kind: &'static str,
    },
    /// The data after the header is not the size that dtype and shape give.
    #[error("{}: {member:?}: dtype and shape {shape:?} need {} bytes of data but {actual} follow the header", path.display(), expected.map_or_else(|| "more than 2^64".to_string(), |e| e.to_string()))]
    DataSizeMismatch {
        /// The file.
        path: PathBuf,
        /// The member.
        member: String,
        /// The shape.
        shape: Vec<u64>,
        /// The bytes dtype and shape need, or `None` if that overflows.
        expected: Option<u64>,
        /// The bytes there are.
        actual: u64,
    },

    // ----- writing -----
    /// The same tensor name was declared twice.
    #[error("{}: tensor {tensor:?} is declared twice", path.display())]
    SinkDuplicateTensor {
        /// The destination.
        path: PathBuf,
        /// The tensor.
        tensor: String,
    },
    /// Data arrived for a tensor that was not declared (or was declared with another dtype or shape).
    #[error("{}: tensor {tensor:?} was not declared with this dtype and shape", path.display())]
    SinkUndeclaredTensor {
        /// The destination.
        path: PathBuf,
        /// The tensor.
        tensor: String,
    },
    /// A tensor was begun a second time.
    #[error("{}: tensor {tensor:?} was already written", path.display())]
    SinkTensorRepeated {
        /// The destination.
        path: PathBuf,
        /// The tensor.
        tensor: String,
    },
    /// Data or an end arrived with no tensor begun.
    #[error("{}: data written with no tensor begun", path.display())]
    SinkNoTensorOpen {
        /// The destination.
        path: PathBuf,
    },
    /// A tensor was begun, or the file finished, while another tensor was still open.
    #[error("{}: tensor {tensor:?} is still being written", path.display())]
    SinkTensorOpen {
        /// The destination.
        path: PathBuf,
        /// The open tensor.
        tensor: String,
    },
    /// The file was finished before a declared tensor was written.
    #[error("{}: tensor {tensor:?} was declared but never written", path.display())]
    SinkTensorMissing {
        /// The destination.
        path: PathBuf,
        /// The tensor.
        tensor: String,
    },
    /// A single `.npy` file was asked to hold other than one tensor.
    #[error("{}: a .npy file holds one array; {count} tensors were given (write an .npz)", path.display())]
    SinkNotOneTensor {
        /// The destination.
        path: PathBuf,
        /// The tensors given.
        count: usize,
    },
    /// The zip library failed writing the archive.
    #[error("{}: cannot write the archive: {source}", path.display())]
    SinkArchive {
        /// The destination.
        path: PathBuf,
        /// What the zip library said.
        source: crate::LibraryError,
    },
}

impl From<NumpyError> for crate::Error {
    fn from(e: NumpyError) -> Self {
        crate::Error::Numpy(Box::new(e))
    }
}
