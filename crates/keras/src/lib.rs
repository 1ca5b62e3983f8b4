//! Keras 3 archives and sharded Keras weights for warmstart.
//!
//! - [`KerasSource`] reads a `.keras` archive (`model.save("m.keras")`: a zip of `metadata.json`,
//!   `config.json` and `model.weights.h5`, stored uncompressed). The weights are read in place: the
//!   archive is mapped, and HDF5's core driver is given the weights member's bytes in the map as its
//!   file image, so nothing is copied (they cannot be read as an HDF5 user block: they start at an
//!   offset that is no power of two). Tensors are named and read exactly as the HDF5 reader reads a
//!   `.weights.h5` (`layers/dense/vars/0`); `config.json` is parsed, for the layers' own names.
//! - [`KerasShardedSource`] reads sharded weights (`save_weights("m.weights.json",
//!   max_shard_size=...)`): the index and its `m_NNNNN.weights.h5` shards, as one checkpoint.
//! - [`KerasSink`] writes a new archive from a template archive: the tensors written become
//!   `model.weights.h5` (with the template's HDF5 layout), every other member is copied byte for byte.
//!
//! Every member's offset and size is checked against the file before it is used; errors are
//! [`KerasError`]s naming the archive and member (or the HDF5 reader's, for the weights themselves).
#![deny(missing_docs)]

mod archive;
mod sharded;
mod sink;
mod source;

pub use archive::{CONFIG, METADATA, WEIGHTS};
pub use sharded::{shard_names, KerasShardedSource};
pub use sink::KerasSink;
pub use source::KerasSource;
pub use warmstart_core::KerasError;

use std::path::{Path, PathBuf};

use warmstart_core::{CheckpointSource, Error, Result};

/// Opens the Keras checkpoint at `path`: an archive (a zip), a sharded weights index, or a folder
/// holding exactly one of these.
pub fn open(path: &Path) -> Result<Box<dyn CheckpointSource>> {
    let path = if path.is_dir() { only_checkpoint_in(path)? } else { path.to_path_buf() };
    if is_zip(&path)? {
        Ok(Box::new(KerasSource::open(&path)?))
    } else {
        Ok(Box::new(KerasShardedSource::open(&path)?))
    }
}

/// Whether the file at `path` starts as a zip archive does.
pub(crate) fn is_zip(path: &Path) -> Result<bool> {
    use std::io::Read;
    let mut head = [0u8; 4];
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let got = file.take(4).read(&mut head).map_err(|e| Error::io(path, e))?;
    Ok(got == 4 && head == *b"PK\x03\x04")
}

/// Whether the file at `path` is a Keras checkpoint, by its content: an archive holding
/// `config.json` and `model.weights.h5`, or a sharded weights index naming `.weights.h5` shards.
fn is_keras_file(path: &Path) -> Result<bool> {
    if is_zip(path)? {
        let map = warmstart_core::mapped::InputMap::open(path).map_err(|e| Error::io(path, e))?;
        let members = archive::members(path, map.bytes()).unwrap_or_default();
        return Ok(archive::find(&members, CONFIG).is_some() && archive::find(&members, WEIGHTS).is_some());
    }
    let len = std::fs::metadata(path).map_err(|e| Error::io(path, e))?.len();
    if len > archive::MAX_JSON_BYTES {
        return Ok(false);
    }
    let text = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    Ok(shard_names(path, &text)
        .is_ok_and(|names| !names.is_empty() && names.iter().all(|n| n.ends_with(".weights.h5"))))
}

/// The one Keras archive or sharded weights index in the folder `dir` (told by content).
fn only_checkpoint_in(dir: &Path) -> Result<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if path.is_file() && is_keras_file(&path)? {
            found.push(path);
        }
    }
    found.sort();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(KerasError::Index {
            path: dir.to_path_buf(),
            reason: format!("the folder holds {} Keras archives or indexes; name one", found.len()),
        }
        .into()),
    }
}
