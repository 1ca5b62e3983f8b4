//! [`KerasError`]: every way reading or writing a Keras 3 archive (`.keras`) or a sharded Keras
//! weights index (`.weights.json`) can fail, naming the file and the member or shard. Failures inside
//! the weights themselves are the HDF5 reader's ([`Hdf5Error`](crate::Hdf5Error)).

use std::path::PathBuf;

/// A Keras archive or sharded index that cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KerasError {
    /// The zip structure cannot be read (no central directory, a damaged entry, ...).
    #[error("{path}: not a readable Keras archive (zip): {source}")]
    Zip {
        /// The archive.
        path: PathBuf,
        /// What the zip reader said.
        source: crate::LibraryError,
    },
    /// A member whose bytes lie past the end of the file.
    #[error("{path}: archive member {member:?} claims bytes {start}..{end}, past the end of the file ({len} bytes)")]
    MemberOutOfBounds {
        /// The archive.
        path: PathBuf,
        /// The member.
        member: String,
        /// Where its data starts.
        start: u64,
        /// Where it claims its data ends.
        end: u64,
        /// The file's length.
        len: u64,
    },
    /// Two members of one name.
    #[error("{path}: the archive holds member {member:?} twice")]
    DuplicateMember {
        /// The archive.
        path: PathBuf,
        /// The member.
        member: String,
    },
    /// A member every Keras archive has is missing.
    #[error(
        "{path}: the archive has no {member:?} (a Keras archive holds metadata.json, config.json and model.weights.h5)"
    )]
    MissingMember {
        /// The archive.
        path: PathBuf,
        /// The member.
        member: String,
    },
    /// The weights are in a form this reader does not read (`model.weights.npz`).
    #[error("{path}: the archive holds its weights as {member:?}; warmstart reads only model.weights.h5")]
    UnsupportedWeights {
        /// The archive.
        path: PathBuf,
        /// The member found.
        member: String,
    },
    /// The weights member is compressed: Keras stores it uncompressed, and it is read only in place.
    #[error("{path}: archive member {member:?} is compressed ({method}); Keras stores it uncompressed, and warmstart reads it only so")]
    Compressed {
        /// The archive.
        path: PathBuf,
        /// The member.
        member: String,
        /// The compression method.
        method: String,
    },
    /// A stored member whose stored and uncompressed sizes differ.
    #[error("{path}: archive member {member:?} is stored uncompressed in {stored} bytes but declares {size}")]
    StoredSizeMismatch {
        /// The archive.
        path: PathBuf,
        /// The member.
        member: String,
        /// Its stored size.
        stored: u64,
        /// Its declared uncompressed size.
        size: u64,
    },
    /// A JSON member or index larger than this reader reads.
    #[error("{path}: {member:?} holds {size} bytes, more than the {limit} bytes read of a JSON file")]
    JsonTooLarge {
        /// The archive or index.
        path: PathBuf,
        /// The member (or the index itself).
        member: String,
        /// Its size.
        size: u64,
        /// The most read.
        limit: u64,
    },
    /// A JSON member that cannot be read or parsed.
    #[error("{path}: {member:?} is not readable JSON: {source}")]
    Json {
        /// The archive or index.
        path: PathBuf,
        /// The member (or the index itself).
        member: String,
        /// What the reader said.
        source: crate::LibraryError,
    },
    /// A sharded weights index that is not what Keras writes.
    #[error("{path}: not a Keras sharded weights index: {reason}")]
    Index {
        /// The index.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// One tensor in two shards.
    #[error("{path}: tensor {name:?} is in two shards, {first} and {second}")]
    DuplicateTensor {
        /// The index.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// The first shard holding it.
        first: PathBuf,
        /// The second.
        second: PathBuf,
    },
    /// A `.keras` output asked for without a `.keras` archive to take the rest of the model from.
    #[error("{path}: a .keras archive is written from another .keras archive (its config, metadata and assets), and {reason}")]
    NoTemplate {
        /// The destination.
        path: PathBuf,
        /// Why there is none.
        reason: String,
    },
    /// Writing the new archive failed.
    #[error("{path}: cannot write the archive: {source}")]
    Write {
        /// The destination.
        path: PathBuf,
        /// What the zip writer said.
        source: crate::LibraryError,
    },
}

impl From<KerasError> for crate::Error {
    fn from(e: KerasError) -> Self {
        crate::Error::Keras(Box::new(e))
    }
}
