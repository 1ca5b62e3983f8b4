//! [`TfError`]: every way reading or writing a TensorFlow checkpoint can fail, each naming the file and,
//! where there is one, the tensor.

use std::path::PathBuf;

/// A failure reading or writing a TensorFlow V2 checkpoint.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TfError {
    // ---- files and paths ----
    /// An I/O error on a named file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// Nothing at the path is a checkpoint.
    #[error("{path}: no TensorFlow checkpoint here ({reason})")]
    NoCheckpoint {
        /// The path given.
        path: PathBuf,
        /// What was looked for.
        reason: String,
    },
    /// The `checkpoint` state file cannot be parsed or names no checkpoint.
    #[error("{path}: invalid checkpoint state file: {reason}")]
    BadCheckpointState {
        /// The `checkpoint` file.
        path: PathBuf,
        /// What is wrong.
        reason: StateFileError,
    },
    /// A data shard named by the header is missing.
    #[error("{path}: data shard {shard} of {num_shards} is missing: {source}")]
    MissingShard {
        /// The shard file expected.
        path: PathBuf,
        /// Its number.
        shard: u32,
        /// How many shards the header announces.
        num_shards: u32,
        /// What the operating system said.
        source: std::io::Error,
    },

    // ---- the .index table ----
    /// The file is shorter than a table footer.
    #[error("{path}: file is too short to be an sstable ({len} bytes)")]
    TooShort {
        /// The `.index` file.
        path: PathBuf,
        /// Its length.
        len: u64,
    },
    /// The footer's magic number is wrong.
    #[error("{path}: not an sstable (bad magic number)")]
    BadMagic {
        /// The `.index` file.
        path: PathBuf,
    },
    /// A block handle, varint or length points outside the file or the block.
    #[error("{path}: corrupt table at byte {offset}: {reason}")]
    CorruptTable {
        /// The `.index` file.
        path: PathBuf,
        /// Where (file offset of the block or footer).
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A block's CRC32C does not match its contents.
    #[error("{path}: block checksum mismatch in the block at byte {offset}")]
    BlockChecksum {
        /// The `.index` file.
        path: PathBuf,
        /// File offset of the block.
        offset: u64,
    },
    /// A block uses a compression other than none or snappy.
    #[error("{path}: block at byte {offset} has unknown compression type {kind}")]
    UnknownCompression {
        /// The `.index` file.
        path: PathBuf,
        /// File offset of the block.
        offset: u64,
        /// The type byte.
        kind: u8,
    },
    /// A snappy block does not decompress.
    #[error("{path}: block at byte {offset} is corrupt snappy data: {reason}")]
    Snappy {
        /// The `.index` file.
        path: PathBuf,
        /// File offset of the block.
        offset: u64,
        /// What snap said.
        reason: String,
    },
    /// Keys are not in strictly increasing order.
    #[error("{path}: table keys out of order at key {key:?}")]
    KeysOutOfOrder {
        /// The `.index` file.
        path: PathBuf,
        /// The key found out of order (lossy UTF-8).
        key: String,
    },

    // ---- header and entries ----
    /// The table has no `""` key with the bundle header.
    #[error("{path}: no bundle header (the table has no empty key)")]
    MissingHeader {
        /// The `.index` file.
        path: PathBuf,
    },
    /// A protobuf message does not decode.
    #[error("{path}: cannot decode the {what}: {source}")]
    BadProto {
        /// The file.
        path: PathBuf,
        /// Which message (`bundle header`, `entry of tensor "w"`, ...).
        what: String,
        /// What prost said.
        source: crate::LibraryError,
    },
    /// The header's version says this reader is too old, or its counts are invalid.
    #[error("{path}: unsupported bundle header: {reason}")]
    BadHeader {
        /// The `.index` file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A TensorFlow DataType number we do not know.
    #[error("{path}: tensor {tensor:?} has unknown TensorFlow dtype number {dtype}")]
    UnknownDType {
        /// The `.index` file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// The DataType number.
        dtype: i32,
    },
    /// A TensorFlow dtype we know but cannot present (resource, variant, quantized...).
    #[error("{path}: tensor {tensor:?} has TensorFlow dtype {dtype}, which warmstart does not support")]
    UnsupportedDType {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// TensorFlow's name for it (`DT_VARIANT`).
        dtype: String,
    },
    /// An entry's shape is unknown, negative or overflows.
    #[error("{path}: tensor {tensor:?} has an invalid shape: {reason}")]
    BadShape {
        /// The `.index` file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// What is wrong.
        reason: String,
    },
    /// An entry names a shard the header does not have.
    #[error("{path}: tensor {tensor:?} is in shard {shard}, but the bundle has {num_shards} shards")]
    BadShardId {
        /// The `.index` file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// The shard it names.
        shard: i64,
        /// The shards there are.
        num_shards: u32,
    },
    /// An entry's byte range lies outside its data file.
    #[error("{path}: tensor {tensor:?} at bytes {offset}+{size} lies outside the file ({file_len} bytes)")]
    DataOutOfRange {
        /// The data shard.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// Its offset.
        offset: i64,
        /// Its size.
        size: i64,
        /// The shard's length.
        file_len: u64,
    },
    /// An entry's size does not match dtype x shape.
    #[error(
        "{path}: invalid size in bundle entry of tensor {tensor:?}: {size} bytes, dtype and shape need {expected}"
    )]
    SizeMismatch {
        /// The `.index` file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// The size in the entry.
        size: i64,
        /// What dtype x shape gives.
        expected: u64,
    },
    /// A tensor's bytes do not match the CRC32C in its entry.
    #[error("{path}: checksum mismatch for tensor {tensor:?}: stored {stored:#010x}, computed {computed:#010x}")]
    TensorChecksum {
        /// The data shard.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// The masked CRC in the entry.
        stored: u32,
        /// The masked CRC of the bytes.
        computed: u32,
    },
    /// A DT_STRING tensor's bytes are malformed.
    #[error("{path}: string tensor {tensor:?} is corrupt: {reason}")]
    BadStrings {
        /// The data shard.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// What is wrong.
        reason: String,
    },

    // ---- partitioned tensors ----
    /// A slice listed by a full-name entry is invalid or its entry is absent.
    #[error("{path}: tensor {tensor:?} has an invalid slice: {reason}")]
    BadSlice {
        /// The `.index` file.
        path: PathBuf,
        /// The tensor (full name).
        tensor: String,
        /// What is wrong.
        reason: String,
    },
    /// The stored slices do not cover the rows asked for.
    #[error("{path}: tensor {tensor:?} does not have sufficient slices for rows {start}..{end}")]
    SlicesDoNotCover {
        /// The checkpoint prefix.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// First row asked for.
        start: u64,
        /// One past the last row asked for.
        end: u64,
    },

    // ---- reading requests ----
    /// No tensor of that name.
    #[error("{path}: tensor {tensor:?} not found in checkpoint")]
    NotFound {
        /// The checkpoint prefix.
        path: PathBuf,
        /// The tensor asked for.
        tensor: String,
    },
    /// Rows outside the tensor.
    #[error("{path}: rows {start}..{end} requested from tensor {tensor:?}, which has {rows} rows")]
    RowsOutOfRange {
        /// The checkpoint prefix.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// First row asked for.
        start: u64,
        /// One past the last row asked for.
        end: u64,
        /// Rows there are.
        rows: u64,
    },
    /// Bytes asked of a string tensor, or strings of a numeric one.
    #[error("{path}: tensor {tensor:?} has dtype {dtype}, which this operation does not take")]
    WrongDType {
        /// The checkpoint prefix.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// Its dtype.
        dtype: crate::DType,
    },
    /// The tensor is larger than this machine can address.
    #[error("{path}: tensor {tensor:?} is too large to address")]
    TooLarge {
        /// The checkpoint prefix.
        path: PathBuf,
        /// The tensor.
        tensor: String,
    },

    // ---- graph files ----
    /// The `.meta` file's collections are malformed.
    #[error("{path}: invalid MetaGraphDef: {reason}")]
    BadMeta {
        /// The `.meta` file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    // ---- writing ----
    /// The tensors given to the writer are inconsistent.
    #[error("{path}: cannot write tensor {tensor:?}: {reason}")]
    BadSinkTensor {
        /// The checkpoint prefix being written.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// What is wrong.
        reason: String,
    },
    /// The writer's calls came in an order the trait does not allow.
    #[error("{path}: writer misuse: {reason}")]
    SinkMisuse {
        /// The checkpoint prefix being written.
        path: PathBuf,
        /// What happened.
        reason: String,
    },
    /// A tensor was given more or fewer bytes than its size.
    #[error("{path}: tensor {tensor:?} was given {given} bytes, expected {expected}")]
    SinkSize {
        /// The checkpoint prefix being written.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// Bytes given.
        given: u64,
        /// Bytes expected.
        expected: u64,
    },

    // ---- merging parts (`warmstart merge`) ----
    /// No worker part of the prefix was found.
    #[error("{path}: no worker parts (files {path}.part-NNNNN-of-NNNNN.index) to merge")]
    MergeNoParts {
        /// The checkpoint prefix to merge into.
        path: PathBuf,
    },
    /// A worker's part is missing.
    #[error("{path}: the part of worker {worker} of {workers} is missing (was `--worker {worker}/{workers}` run?)")]
    MergeMissingPart {
        /// The missing part's `.index` file.
        path: PathBuf,
        /// The worker.
        worker: usize,
        /// How many workers the other parts were written for.
        workers: usize,
    },
    /// The parts found were written for different numbers of workers.
    #[error("{path}: the parts were written for different numbers of workers ({counts}); remove the stale ones")]
    MergeWorkerCounts {
        /// The checkpoint prefix to merge into.
        path: PathBuf,
        /// The worker counts found.
        counts: String,
    },
    /// A tensor (or slice) is in more than one part.
    #[error("{path}: tensor {key:?} is also in an earlier part: duplicate keys are not merged")]
    MergeDuplicate {
        /// The part's `.index` file where it came again.
        path: PathBuf,
        /// The table key.
        key: String,
    },
    /// A part does not agree with the others, or its index is not a bundle's.
    #[error("{path}: cannot merge this part: {reason}")]
    MergeMismatch {
        /// The part's `.index` file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A partitioned tensor lists a slice that no part holds.
    #[error("{path}: slice {slice} of tensor {tensor:?} is in no part (is a worker's part missing?)")]
    MergeMissingSlice {
        /// The checkpoint prefix to merge into.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// The slice, as start:length per dimension.
        slice: String,
    },
}

impl TfError {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TfError::Io { path: path.into(), source }
    }
}

impl From<TfError> for crate::Error {
    fn from(e: TfError) -> Self {
        use crate::Error as E;
        match e {
            TfError::Io { path, source } => E::Io { path, source },
            TfError::NotFound { path, tensor } => E::TensorNotFound { path, name: tensor },
            TfError::RowsOutOfRange { path, tensor, start, end, rows } => {
                E::RowsOutOfRange { path, name: tensor, start, end, rows }
            }
            TfError::WrongDType { path, tensor, dtype } => E::WrongDType { path, name: tensor, dtype },
            TfError::TooLarge { path, tensor } => E::TooLarge { path, name: tensor },
            TfError::SinkSize { path, tensor, given, expected } => {
                E::SizeMismatch { path, name: tensor, given, expected }
            }
            other => E::Tf(Box::new(other)),
        }
    }
}

/// What is wrong with a `checkpoint` state file (a text-format `CheckpointState`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StateFileError {
    /// A field name not followed by `:`.
    #[error("expected ':' after {field}")]
    ExpectedColon {
        /// The field.
        field: String,
    },
    /// A field `CheckpointState` does not have.
    #[error("unknown field {field}")]
    UnknownField {
        /// The field.
        field: String,
    },
    /// No (or an empty) `model_checkpoint_path`.
    #[error("no model_checkpoint_path")]
    NoModelPath,
    /// The `model_checkpoint_path` is not UTF-8.
    #[error("model_checkpoint_path is not UTF-8")]
    ModelPathNotUtf8,
    /// A character where a field name belongs.
    #[error("unexpected {found:?} at byte {at}")]
    Unexpected {
        /// The character.
        found: char,
        /// Its offset.
        at: usize,
    },
    /// No number where a timestamp belongs.
    #[error("expected a number at byte {at}")]
    ExpectedNumber {
        /// The offset.
        at: usize,
    },
    /// No quoted string where a path belongs.
    #[error("expected a quoted string at byte {at}")]
    ExpectedString {
        /// The offset.
        at: usize,
    },
    /// The file ends inside a string.
    #[error("unterminated string")]
    UnterminatedString,
    /// A string runs over a line end.
    #[error("newline in string")]
    NewlineInString,
    /// The file ends inside an escape.
    #[error("unterminated escape")]
    UnterminatedEscape,
    /// An octal escape above `\377`.
    #[error("octal escape out of range")]
    OctalOutOfRange,
    /// `\x` without hex digits.
    #[error("empty \\x escape")]
    EmptyHexEscape,
}
