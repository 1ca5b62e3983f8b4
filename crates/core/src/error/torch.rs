//! [`TorchError`]: every way a PyTorch checkpoint (`torch.save`'s zip archive, or a sharded
//! `pytorch_model.bin.index.json` folder) can be refused, each naming the file and, where there is
//! one, the tensor; and [`PickleProblem`], what the restricted unpickler found wrong at an offset of
//! the archive's `data.pkl`.

use std::path::PathBuf;

/// A PyTorch checkpoint that cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TorchError {
    // ----- the file itself -----
    /// An I/O error on a named file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The legacy format of `torch.save` before PyTorch 1.6 (a bare pickle stream, no zip).
    #[error("{}: this is the legacy PyTorch format (torch < 1.6, or `_use_new_zipfile_serialization=False`), which is not read; load it with torch and save it again with torch.save (or as safetensors)", path.display())]
    LegacyFormat {
        /// The file.
        path: PathBuf,
    },
    /// The zip structure is unreadable.
    #[error("{}: not a readable zip archive: {source}", path.display())]
    BadZip {
        /// The file.
        path: PathBuf,
        /// What the zip reader said.
        source: crate::LibraryError,
    },
    /// A zip archive without a `<name>/data.pkl` member.
    #[error("{}: a zip archive, but no <name>/data.pkl member: not a torch.save checkpoint", path.display())]
    NoDataPkl {
        /// The file.
        path: PathBuf,
    },
    /// A zip archive with several `<name>/data.pkl` members.
    #[error("{}: the archive holds several torch.save records ({}); which one is meant cannot be told", path.display(), prefixes.join(", "))]
    SeveralRecords {
        /// The file.
        path: PathBuf,
        /// The record names (`<name>` of each `<name>/data.pkl`).
        prefixes: Vec<String>,
    },
    /// A member that is compressed or encrypted: `torch.save` stores every member as is.
    #[error("{}: member {member:?} is compressed or encrypted ({method}); torch.save stores members uncompressed, and only such are read", path.display())]
    CompressedMember {
        /// The file.
        path: PathBuf,
        /// The member.
        member: String,
        /// Its compression method, as the zip reader names it.
        method: String,
    },
    /// A member whose bytes run past the end of the file.
    #[error("{}: member {member:?} claims bytes {start}..{end}, past the end of the {file_len}-byte file", path.display())]
    MemberOutOfFile {
        /// The file.
        path: PathBuf,
        /// The member.
        member: String,
        /// Its first byte.
        start: u64,
        /// One past its last byte.
        end: u64,
        /// The file's length.
        file_len: u64,
    },
    /// `byteorder` is neither `little` nor `big`.
    #[error("{}: the byteorder member says {value:?}, neither \"little\" nor \"big\"", path.display())]
    BadByteOrder {
        /// The file.
        path: PathBuf,
        /// What it says (lossily decoded, at most 32 bytes).
        value: String,
    },
    /// `data.pkl` is larger than any state dict's pickle.
    #[error("{}: data.pkl is {len} bytes, more than the {max} read", path.display())]
    PickleTooLarge {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
        /// The limit.
        max: u64,
    },

    // ----- the pickle -----
    /// The pickle names a Python global outside the allow-list; nothing was run.
    #[error("{}: data.pkl refers to the Python global {module}.{name}, which is not allowed (only state-dict contents are: OrderedDict, torch tensors, storages and dtypes); nothing was run", path.display())]
    DisallowedGlobal {
        /// The file.
        path: PathBuf,
        /// The global's module.
        module: String,
        /// Its name.
        name: String,
    },
    /// The pickle stream is malformed or uses what a state dict does not.
    #[error("{}: data.pkl at byte {offset}: {problem}", path.display())]
    Pickle {
        /// The file.
        path: PathBuf,
        /// Where in data.pkl.
        offset: u64,
        /// What is wrong.
        problem: PickleProblem,
    },
    /// The pickled object is not a dict (a state dict, or a dict holding state dicts).
    #[error("{}: the pickled object is a {found}, not a dict of tensors", path.display())]
    NotAStateDict {
        /// The file.
        path: PathBuf,
        /// What it is.
        found: &'static str,
    },
    /// A dict key under which tensors sit cannot be part of a name.
    #[error("{}: a dict key of type {found} (under {parent:?}) holds tensors; only string and integer keys name them", path.display())]
    BadKey {
        /// The file.
        path: PathBuf,
        /// The dotted name of the dict.
        parent: String,
        /// The key's type.
        found: &'static str,
    },
    /// Two tensors get the same dotted name.
    #[error("{}: two tensors are named {tensor:?}", path.display())]
    DuplicateTensor {
        /// The file.
        path: PathBuf,
        /// The name.
        tensor: String,
    },
    /// The dicts nest deeper than any checkpoint does (or refer to themselves).
    #[error("{}: the dicts nest more than {max} deep under {parent:?} (or contain themselves)", path.display())]
    TooDeep {
        /// The file.
        path: PathBuf,
        /// The dotted name where the limit was reached.
        parent: String,
        /// The limit.
        max: usize,
    },

    // ----- tensors -----
    /// A tensor's storage is not in the archive.
    #[error("{}: tensor {tensor:?}: its storage {key:?} has no member data/{key} in the archive", path.display())]
    MissingStorage {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// The storage key.
        key: String,
    },
    /// A storage's member holds fewer bytes than the pickle says the storage has.
    #[error("{}: tensor {tensor:?}: storage {key:?} should hold {needed} bytes but its member has {has}", path.display())]
    StorageTooShort {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// The storage key.
        key: String,
        /// The bytes the storage should have.
        needed: u64,
        /// The bytes the member has.
        has: u64,
    },
    /// A tensor's view (offset, shape, strides) reaches past its storage.
    #[error("{}: tensor {tensor:?}: offset {offset}, shape {shape:?} and strides {strides:?} reach element {extent:?}, past the {numel} of its storage", path.display())]
    ViewOutOfStorage {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// Its storage offset, in elements.
        offset: u64,
        /// Its shape.
        shape: Vec<u64>,
        /// Its strides, in elements.
        strides: Vec<u64>,
        /// One past the last element it reaches (`None` on overflow).
        extent: Option<u64>,
        /// The elements its storage has.
        numel: u64,
    },
    /// A view whose elements would take more bytes than the whole file (a broadcast, stride-0 view):
    /// materialising it is refused rather than allocated.
    #[error("{}: tensor {tensor:?} is a view of {bytes:?} bytes, more than the {file_len}-byte file holds (a broadcast view); refused rather than materialised", path.display())]
    ViewTooLarge {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// Its logical size in bytes (`None` on overflow).
        bytes: Option<u64>,
        /// The file's length.
        file_len: u64,
    },

    // ----- sharded checkpoints and folders -----
    /// The index is not JSON with a `weight_map` of tensor names to shard files.
    #[error("{}: not a PyTorch index (JSON with a \"weight_map\" of tensor names to shard files): {source}", path.display())]
    BadIndex {
        /// The index file.
        path: PathBuf,
        /// What the JSON parser said.
        source: crate::LibraryError,
    },
    /// The index file is larger than any index.
    #[error("{}: {len} bytes is too large for a PyTorch index (at most {max})", path.display())]
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
    /// A folder with no PyTorch checkpoint.
    #[error("{}: the folder holds no torch.save archive and no pytorch_model.bin.index.json", path.display())]
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
}

/// What the restricted unpickler found wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PickleProblem {
    /// The stream ends inside an opcode, or before STOP.
    #[error("the pickle ends early")]
    Truncated,
    /// A byte that is no pickle opcode.
    #[error("unknown opcode 0x{0:02x}")]
    UnknownOpcode(u8),
    /// A pickle opcode a state dict never needs (object construction, extensions, protocol 0 text).
    #[error("opcode {0} is not supported (a state dict does not need it)")]
    UnsupportedOpcode(&'static str),
    /// A protocol newer than 5.
    #[error("pickle protocol {0} is not known")]
    UnknownProtocol(u8),
    /// An opcode found fewer values on the stack than it takes, or no mark.
    #[error("{0} found the stack too short (or no mark)")]
    StackUnderflow(&'static str),
    /// A memo index that was never stored.
    #[error("memo entry {0} was never stored")]
    MissingMemo(u64),
    /// A limit that keeps memory bounded was reached.
    #[error("more than {max} {what}: refused to keep memory bounded")]
    Limit {
        /// What was counted.
        what: &'static str,
        /// The limit.
        max: u64,
    },
    /// An integer that does not fit 64 bits.
    #[error("an integer of {0} bytes does not fit 64 bits")]
    IntTooLarge(u64),
    /// A string that is not UTF-8.
    #[error("a string is not UTF-8")]
    NotUtf8,
    /// A value of the wrong type for the opcode or call.
    #[error("{op}: expected {expected}, found {found}")]
    WrongType {
        /// The opcode or call.
        op: &'static str,
        /// What it takes.
        expected: &'static str,
        /// What it found.
        found: &'static str,
    },
    /// An allowed callable called with arguments it does not take.
    #[error("{callable} called with {reason}")]
    BadCall {
        /// The callable.
        callable: &'static str,
        /// What is wrong with the arguments.
        reason: String,
    },
    /// A persistent id that is not `('storage', type, key, location, numel)`.
    #[error("a persistent id that is not ('storage', type, key, location, numel): {0}")]
    BadPersistentId(String),
    /// A tensor's storage has no dtype (an untyped storage outside `_rebuild_tensor_v3`).
    #[error("a tensor's storage has no dtype")]
    UntypedStorage,
    /// A storage or tensor of a dtype warmstart does not hold (complex32, quantized, ...).
    #[error("dtype {0} is not supported")]
    UnsupportedDType(String),
    /// A negative size, stride or offset.
    #[error("a tensor with a negative {0}")]
    Negative(&'static str),
    /// Shape and strides of different lengths.
    #[error("a tensor with {shape} sizes but {strides} strides")]
    StrideRank {
        /// The sizes given.
        shape: usize,
        /// The strides given.
        strides: usize,
    },
}

impl From<TorchError> for crate::Error {
    fn from(e: TorchError) -> Self {
        crate::Error::Torch(Box::new(e))
    }
}
