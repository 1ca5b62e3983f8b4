//! PyTorch checkpoints for warmstart, read only: [`TorchSource`] reads what `torch.save` writes
//! (`pytorch_model.bin`, `.pt`, `.pth`), a sharded Hugging Face checkpoint
//! (`pytorch_model.bin.index.json` naming its shard files), or a folder holding either.
//!
//! The format (torch >= 1.6): a zip archive, every member stored uncompressed, all under one record
//! name: `<name>/data.pkl` is the pickled object (a state dict: a dict of tensors, or dicts of them),
//! `<name>/data/<key>` holds the raw bytes of each storage, `<name>/byteorder` says `little` or
//! `big`, and `<name>/version` the format version. A tensor is pickled as a call of
//! `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`, its storage as a persistent
//! id naming its key, dtype and length: views (slices, transposes) keep the storage of the tensor
//! they view, and tied weights share one.
//!
//! Reading it never runs pickle code: [`pickle`] is a restricted interpreter that knows only the
//! globals state dicts use and refuses any other by name. The archive ([`archive`]) is read in place
//! from the memory map; contiguous little-endian tensors are borrowed from it, other views and
//! big-endian files are materialised row-major little-endian on read ([`layout`]). The legacy format
//! (torch < 1.6, a bare pickle stream) is refused with a message saying so.
#![deny(missing_docs)]

mod archive;
mod layout;
mod names;
mod pickle;
mod source;

pub use source::TorchSource;
pub use warmstart_core::TorchError;

/// The fuzz harness's entry to the unpickler alone: runs `bytes` as a `data.pkl` and names its
/// tensors, returning how many there are, or the error. Not for other uses.
#[doc(hidden)]
pub fn fuzz_unpickle(bytes: &[u8]) -> warmstart_core::Result<usize> {
    let path = std::path::Path::new("data.pkl");
    let root = pickle::load(bytes).map_err(|e| match e {
        pickle::PickleError::Disallowed { module, name } => {
            TorchError::DisallowedGlobal { path: path.to_path_buf(), module, name }
        }
        pickle::PickleError::At { offset, problem } => TorchError::Pickle { path: path.to_path_buf(), offset, problem },
    });
    let root = root.map_err(warmstart_core::Error::from)?;
    Ok(names::tensors(path, &root)?.len())
}
