//! [`FormatsError`]: what can go wrong choosing a format, each naming the path.

use std::path::PathBuf;

use crate::Format;

/// A checkpoint whose format cannot be told or handled, or a destination whose format cannot be chosen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatsError {
    /// The content matches no format warmstart knows.
    #[error("{}: not a checkpoint warmstart recognises (no safetensors header or index, TF bundle index, HDF5 signature, Keras archive or index, torch.save archive, or NumPy .npy/.npz)", path.display())]
    Undetected {
        /// The path.
        path: PathBuf,
    },
    /// A folder holding checkpoints of several formats.
    #[error("{}: the folder holds checkpoints of several formats ({}); name one file, or choose one with --format", path.display(), formats.iter().map(|f| f.name()).collect::<Vec<_>>().join(", "))]
    AmbiguousFolder {
        /// The folder.
        path: PathBuf,
        /// The formats found.
        formats: Vec<Format>,
    },
    /// A folder holding several files of one format that opens only one (NumPy).
    #[error("{}: the folder holds several {format} files ({}); name one", path.display(), candidates.join(", "))]
    SeveralFiles {
        /// The folder.
        path: PathBuf,
        /// Their format.
        format: Format,
        /// The files.
        candidates: Vec<String>,
    },
    /// A format this build was compiled without.
    #[error("{}: this is a {format} checkpoint, but this build has no {format} support (build with --features {format})", path.display())]
    NotCompiledIn {
        /// The checkpoint or destination.
        path: PathBuf,
        /// Its format.
        format: Format,
    },
    /// The destination's format cannot be told from its name.
    #[error("{}: cannot tell the destination format from the name (.safetensors, .h5/.hdf5, .keras, .npz/.npy, a .ckpt prefix or a folder); pass --to safetensors|tf|hdf5|keras|numpy", path.display())]
    NoDestinationFormat {
        /// The destination.
        path: PathBuf,
    },
    /// Output asked in a format warmstart only reads.
    #[error("{}: {format} checkpoints are read only; write safetensors (--to safetensors) for PyTorch users", path.display())]
    ReadOnly {
        /// The destination.
        path: PathBuf,
        /// The format.
        format: Format,
    },
    /// A maximum shard size asked of a format other than safetensors.
    #[error("{}: {format} output is not split by size; --max-shard-size is for safetensors", path.display())]
    ShardSizeUnsupported {
        /// The destination.
        path: PathBuf,
        /// The format.
        format: Format,
    },
    /// Compressed output asked of a format other than NumPy.
    #[error("{}: warmstart does not compress {format} output; --compress is for numpy (.npz)", path.display())]
    CompressUnsupported {
        /// The destination.
        path: PathBuf,
        /// The format.
        format: Format,
    },
    /// Sharded output asked of a format written as one file.
    #[error("{}: {format} output is written as one file; {shards} shards were asked for", path.display())]
    ShardsUnsupported {
        /// The destination.
        path: PathBuf,
        /// The format.
        format: Format,
        /// The shards asked for.
        shards: usize,
    },
    /// `--worker` asked of a format other than TF bundles.
    #[error("{}: only TF bundle output is split across workers, not {format}", path.display())]
    WorkerUnsupported {
        /// The destination.
        path: PathBuf,
        /// The format.
        format: Format,
    },
}

/// A `--max-shard-size` that is not a size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{given:?} is not a shard size: {reason} (a number and a unit: 5GB, 500MB, 1.5GB, 10KiB, or bytes)")]
pub struct BadShardSize {
    /// The size as given.
    pub given: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl From<FormatsError> for crate::Error {
    fn from(e: FormatsError) -> Self {
        crate::Error::Formats(Box::new(e))
    }
}
