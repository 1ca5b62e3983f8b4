//! [`Hdf5Error`]: every way reading or writing an HDF5 file can fail, naming the file and the dataset;
//! [`Hdf5Protocol`]: the ways the HDF5 writer can be used out of order; [`KerasAttributeReason`]: what
//! can be wrong with a Keras attribute; [`Hdf5StructureReason`]: the damaged structures refused before
//! the HDF5 library opens a file.

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
        reason: KerasAttributeReason,
    },
    /// The file holds a structure that the HDF5 library aborts on instead of reporting (found by a
    /// walk of the file before the library opens it).
    #[error("{path}: cannot open as HDF5: {reason}")]
    Structure {
        /// The file.
        path: PathBuf,
        /// The structure refused.
        reason: Hdf5StructureReason,
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
    /// One tensor's dataset path is a group of another's (TF's `k` and its slot `k/Adam`): an HDF5 file
    /// cannot hold a dataset and a group under one name.
    #[error(
        "{path}: tensors {tensor:?} and {nested:?} cannot both be written: HDF5 cannot hold a dataset {dataset:?} \
         and a group of that name holding dataset {nested_dataset:?}; map one of the names to another (for \
         instance {tensor:?} to \"{tensor}/value\"), or write safetensors or TF, which hold both"
    )]
    DatasetIsGroup {
        /// The destination.
        path: PathBuf,
        /// The tensor whose dataset would be the group.
        tensor: String,
        /// Its dataset path.
        dataset: String,
        /// The tensor whose dataset lies under it.
        nested: String,
        /// That tensor's dataset path.
        nested_dataset: String,
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
        reason: Hdf5Protocol,
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

/// What is wrong with a Keras attribute (`layer_names`, `weight_names`) of a legacy full-model file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KerasAttributeReason {
    /// The attribute could not be found or opened, or its shape read.
    #[error("{source}")]
    Unreadable {
        /// What the HDF5 library said.
        source: crate::LibraryError,
    },
    /// The attribute's values are not strings, or could not be read as strings.
    #[error("not a list of strings: {source}")]
    NotStrings {
        /// What the HDF5 library said.
        source: crate::LibraryError,
    },
    /// A listed name is not UTF-8.
    #[error("a name is not UTF-8")]
    NotUtf8,
    /// `layer_names` lists a layer with no group under `model_weights`.
    #[error("names layer {layer:?}, which has no group")]
    LayerWithoutGroup {
        /// The layer.
        layer: String,
    },
}

/// A structure of an HDF5 file that the HDF5 library asserts on (aborting a build with assertions)
/// rather than returning an error, refused before the library opens the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Hdf5StructureReason {
    /// A chunk B-tree leaf's key gives a chunk of 0 bytes.
    #[error("the chunk B-tree node at byte {node} gives chunk {key} a size of 0 bytes (a damaged file)")]
    EmptyChunk {
        /// The node's position in the file.
        node: u64,
        /// The key's index in the node.
        key: u64,
    },
    /// A group's symbol table names an undefined local heap address.
    #[error("the group whose object header is at byte {header} has an undefined local heap address (a damaged file)")]
    UndefinedLocalHeap {
        /// The group's object header's position in the file.
        header: u64,
    },
}

/// How the HDF5 writer was misused: a call out of order, or a tensor other than declared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Hdf5Protocol {
    /// A call after `finish` took the file.
    #[error("the file is already finished")]
    AlreadyFinished,
    /// A tensor not among those the file was created with.
    #[error("tensor {tensor:?} was not declared when the file was created")]
    Undeclared {
        /// The tensor.
        tensor: String,
    },
    /// A tensor whose dtype or shape differs from its declaration.
    #[error("tensor {tensor:?} differs from its declaration")]
    DiffersFromDeclaration {
        /// The tensor.
        tensor: String,
    },
    /// A tensor written a second time.
    #[error("tensor {tensor:?} was already written")]
    AlreadyWritten {
        /// The tensor.
        tensor: String,
    },
    /// A tensor begun while another was still being written.
    #[error("tensor {tensor:?} started before the previous one ended")]
    StartedBeforePreviousEnded {
        /// The tensor.
        tensor: String,
    },
    /// A tensor whose dtype has no HDF5 type (refused when the file was created, so never seen).
    #[error("tensor {tensor:?} has no HDF5 type")]
    NoHdf5Type {
        /// The tensor.
        tensor: String,
    },
    /// Data given with no tensor begun.
    #[error("data given with no tensor begun")]
    DataWithoutTensor,
    /// The end of a tensor with no tensor begun.
    #[error("end of a tensor with no tensor begun")]
    EndWithoutTensor,
    /// A string tensor given a number of values other than its element count.
    #[error("tensor {tensor:?} of shape {shape:?} was given {given} strings")]
    WrongStringCount {
        /// The tensor.
        tensor: String,
        /// Its declared shape.
        shape: Vec<u64>,
        /// The number of strings given.
        given: usize,
    },
    /// `finish` called while a tensor was still being written.
    #[error("finished while tensor {tensor:?} was still being written")]
    FinishedWhileOpen {
        /// The tensor.
        tensor: String,
    },
    /// `finish` called with a declared tensor never written.
    #[error("tensor {tensor:?} was declared but never written")]
    NeverWritten {
        /// The tensor.
        tensor: String,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Each misuse reads exactly as the writer's free-text reasons did.
    #[test]
    fn protocol_reasons_keep_their_text() {
        let t = || "a/w".to_string();
        let cases = [
            (Hdf5Protocol::AlreadyFinished, "the file is already finished".to_string()),
            (
                Hdf5Protocol::Undeclared { tensor: t() },
                format!("tensor {:?} was not declared when the file was created", "a/w"),
            ),
            (
                Hdf5Protocol::DiffersFromDeclaration { tensor: t() },
                format!("tensor {:?} differs from its declaration", "a/w"),
            ),
            (Hdf5Protocol::AlreadyWritten { tensor: t() }, format!("tensor {:?} was already written", "a/w")),
            (
                Hdf5Protocol::StartedBeforePreviousEnded { tensor: t() },
                format!("tensor {:?} started before the previous one ended", "a/w"),
            ),
            (Hdf5Protocol::NoHdf5Type { tensor: t() }, format!("tensor {:?} has no HDF5 type", "a/w")),
            (Hdf5Protocol::DataWithoutTensor, "data given with no tensor begun".to_string()),
            (Hdf5Protocol::EndWithoutTensor, "end of a tensor with no tensor begun".to_string()),
            (
                Hdf5Protocol::WrongStringCount { tensor: t(), shape: vec![2, 3], given: 1 },
                format!("tensor {:?} of shape {:?} was given {} strings", "a/w", vec![2u64, 3], 1),
            ),
            (
                Hdf5Protocol::FinishedWhileOpen { tensor: t() },
                format!("finished while tensor {:?} was still being written", "a/w"),
            ),
            (Hdf5Protocol::NeverWritten { tensor: t() }, format!("tensor {:?} was declared but never written", "a/w")),
        ];
        for (reason, text) in cases {
            assert_eq!(reason.to_string(), text);
            let e = Hdf5Error::Protocol { path: "o.h5".into(), reason };
            assert_eq!(e.to_string(), format!("o.h5: {text}"));
        }
    }

    /// Each Keras attribute problem reads exactly as the reader's free-text reasons did.
    #[test]
    fn keras_attribute_reasons_keep_their_text() {
        let library = || -> crate::LibraryError { "H5Aopen failed".into() };
        let cases = [
            (KerasAttributeReason::Unreadable { source: library() }, "H5Aopen failed".to_string()),
            (
                KerasAttributeReason::NotStrings { source: library() },
                "not a list of strings: H5Aopen failed".to_string(),
            ),
            (KerasAttributeReason::NotUtf8, "a name is not UTF-8".to_string()),
            (
                KerasAttributeReason::LayerWithoutGroup { layer: "d1".into() },
                format!("names layer {:?}, which has no group", "d1"),
            ),
        ];
        for (reason, text) in cases {
            assert_eq!(reason.to_string(), text);
            let e = Hdf5Error::KerasAttribute {
                path: "m.h5".into(),
                group: "/model_weights".into(),
                attribute: "layer_names".into(),
                reason,
            };
            assert_eq!(e.to_string(), format!("m.h5: attribute \"layer_names\" of group \"/model_weights\": {text}"));
        }
    }
}
