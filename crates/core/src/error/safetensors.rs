//! [`SafetensorsError`]: every way a safetensors file, index or folder can be refused, and every way
//! the writer can be misused, each naming the file and (where there is one) the tensor.

use std::path::PathBuf;

/// A safetensors file, index or folder that cannot be read, or a write that cannot be done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SafetensorsError {
    // ----- the file itself -----
    /// An I/O error on a named file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The file is shorter than the 8-byte header length.
    #[error("{}: {len} bytes is too short for a safetensors file (the header length alone takes 8)", path.display())]
    FileTooShort {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
    },
    /// The header length is above the 100 MB that safetensors allows.
    #[error("{}: the header claims {header_len} bytes, more than the {max} safetensors allows", path.display())]
    HeaderTooLarge {
        /// The file.
        path: PathBuf,
        /// The header length claimed.
        header_len: u64,
        /// The limit.
        max: u64,
    },
    /// The header length runs past the end of the file.
    #[error("{}: the header claims {header_len} bytes but only {available} follow the length", path.display())]
    HeaderLongerThanFile {
        /// The file.
        path: PathBuf,
        /// The header length claimed.
        header_len: u64,
        /// The bytes after the 8-byte length.
        available: u64,
    },
    /// The header is not UTF-8.
    #[error("{}: the header is not UTF-8: {source}", path.display())]
    HeaderNotUtf8 {
        /// The file.
        path: PathBuf,
        /// Where decoding failed.
        source: std::str::Utf8Error,
    },
    /// The header is not a JSON object.
    #[error("{}: the header is not a JSON object: {source}", path.display())]
    HeaderNotJson {
        /// The file.
        path: PathBuf,
        /// What the JSON parser said.
        source: crate::LibraryError,
    },
    /// The header names the same key twice.
    #[error("{}: the header lists {name:?} twice", path.display())]
    DuplicateEntry {
        /// The file.
        path: PathBuf,
        /// The repeated key.
        name: String,
    },
    /// `__metadata__` is not a map from strings to strings.
    #[error("{}: __metadata__ is not a map of strings to strings: {source}", path.display())]
    BadMetadata {
        /// The file.
        path: PathBuf,
        /// What the JSON parser said.
        source: crate::LibraryError,
    },
    /// A tensor's header entry is malformed (unknown dtype, missing field, negative number, ...).
    #[error("{}: tensor {tensor:?}: bad header entry: {source}", path.display())]
    BadTensorEntry {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// What the JSON parser said.
        source: crate::LibraryError,
    },
    /// A dtype that safetensors knows but whole-byte row reads cannot address (F4, F6).
    #[error("{}: tensor {tensor:?} has dtype {dtype}, which warmstart does not support (elements smaller than a byte)", path.display())]
    UnsupportedDtype {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// The dtype as the header spells it.
        dtype: String,
    },
    /// `data_offsets` end before they begin.
    #[error("{}: tensor {tensor:?}: data_offsets [{begin}, {end}] end before they begin", path.display())]
    ReversedOffsets {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// The first offset.
        begin: u64,
        /// The second offset.
        end: u64,
    },
    /// `data_offsets` run past the end of the data buffer.
    #[error("{}: tensor {tensor:?}: data_offsets end at {end}, past the {data_len}-byte data buffer", path.display())]
    OffsetsPastEnd {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// The end offset.
        end: u64,
        /// The length of the data buffer.
        data_len: u64,
    },
    /// Two tensors share bytes.
    #[error("{}: tensor {tensor:?} overlaps tensor {other:?}", path.display())]
    OverlappingTensors {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// The tensor before it whose bytes it shares.
        other: String,
    },
    /// Bytes that belong to no tensor lie before a tensor.
    #[error("{}: tensor {tensor:?} begins at {begin}, leaving bytes {gap_start}..{begin} unused (tensors must be contiguous)", path.display())]
    GapBeforeTensor {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// Where the unused bytes start.
        gap_start: u64,
        /// Where the tensor begins.
        begin: u64,
    },
    /// Bytes that belong to no tensor lie after the last one.
    #[error("{}: the tensors end at {end} but the data buffer has {data_len} bytes (tensors must fill it)", path.display())]
    TrailingBytes {
        /// The file.
        path: PathBuf,
        /// Where the last tensor ends.
        end: u64,
        /// The length of the data buffer.
        data_len: u64,
    },
    /// The dtype and shape do not match the byte range.
    #[error("{}: tensor {tensor:?}: dtype {dtype} and shape {shape:?} need {} bytes but data_offsets span {actual}", path.display(), expected.map_or_else(|| "more than 2^64".to_string(), |e| e.to_string()))]
    DtypeShapeMismatch {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// The dtype.
        dtype: String,
        /// The shape.
        shape: Vec<usize>,
        /// The bytes dtype and shape need, or `None` if that overflows.
        expected: Option<u64>,
        /// The bytes `data_offsets` span.
        actual: u64,
    },
    /// The official safetensors crate refused a file that passed our own checks.
    #[error("{}: the safetensors library refuses the file: {source}", path.display())]
    Rejected {
        /// The file.
        path: PathBuf,
        /// What the library said.
        source: crate::LibraryError,
    },

    // ----- sharded checkpoints and folders -----
    /// The index is not JSON with a `weight_map` of tensor names to shard files.
    #[error("{}: not a safetensors index (JSON with a \"weight_map\" of tensor names to shard files): {source}", path.display())]
    BadIndex {
        /// The index file.
        path: PathBuf,
        /// What the JSON parser said.
        source: crate::LibraryError,
    },
    /// The index file is larger than any index (Hugging Face's run to a few hundred KB).
    #[error("{}: {len} bytes is too large for a safetensors index (at most {max})", path.display())]
    IndexTooLarge {
        /// The index file.
        path: PathBuf,
        /// Its length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// A shard file named by the index cannot be opened.
    #[error("{}: shard {shard:?} (holding tensor {tensor:?}) cannot be opened: {source}", index.display())]
    MissingShard {
        /// The index file.
        index: PathBuf,
        /// The shard as the index names it.
        shard: String,
        /// The first tensor the index places in it.
        tensor: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The index places a tensor in a shard that does not hold it.
    #[error("{}: the index places tensor {tensor:?} in shard {shard:?}, which does not hold it", index.display())]
    TensorNotInShard {
        /// The index file.
        index: PathBuf,
        /// The shard.
        shard: String,
        /// The tensor.
        tensor: String,
    },
    /// A shard holds a tensor that the index does not place in it.
    #[error("{}: shard {shard:?} holds tensor {tensor:?}, which the index does not place there", index.display())]
    TensorNotInIndex {
        /// The index file.
        index: PathBuf,
        /// The shard.
        shard: String,
        /// The tensor.
        tensor: String,
    },
    /// A folder with neither an index nor a single `.safetensors` file.
    #[error("{}: the folder holds no *.safetensors file and no model.safetensors.index.json", path.display())]
    NoCheckpointInFolder {
        /// The folder.
        path: PathBuf,
    },
    /// A folder with several candidates and no index to say how they fit together.
    #[error("{}: the folder holds several candidates ({}) and no single index to choose; name the file", path.display(), candidates.join(", "))]
    AmbiguousFolder {
        /// The folder.
        path: PathBuf,
        /// The candidate files.
        candidates: Vec<String>,
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
    /// The safetensors library could not build the header.
    #[error("{}: cannot build the header: {source}", path.display())]
    SinkHeader {
        /// The destination.
        path: PathBuf,
        /// What the library said.
        source: crate::LibraryError,
    },
}

impl From<SafetensorsError> for crate::Error {
    fn from(e: SafetensorsError) -> Self {
        crate::Error::Safetensors(Box::new(e))
    }
}
