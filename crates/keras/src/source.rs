//! [`KerasSource`]: a Keras 3 archive opened for reading. The archive is mapped (guarded against
//! truncation), its members listed, and its `model.weights.h5` opened in place as an HDF5 file image
//! over the map: the weights are named and read exactly as the HDF5 reader reads a `.weights.h5`.

use std::borrow::Cow;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use warmstart_core::mapped::InputMap;
use warmstart_core::{CheckpointSource, Error, Format, KerasError, Result, TensorInfo};
use warmstart_hdf5::{FileImage, Hdf5Source};

use crate::archive::{self, Member};

/// A `.keras` archive opened for reading.
pub struct KerasSource {
    path: PathBuf,
    /// Declared before the map it reads from; it holds the map too (the image), so the order is
    /// only for clarity.
    weights: Hdf5Source,
    map: Arc<InputMap>,
    members: Vec<Member>,
    config: Option<serde_json::Value>,
}

impl std::fmt::Debug for KerasSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KerasSource")
            .field("path", &self.path)
            .field("members", &self.members.iter().map(|m| m.name.as_str()).collect::<Vec<_>>())
            .field("tensors", &self.weights.tensors().len())
            .finish()
    }
}

impl KerasSource {
    /// Opens the archive at `path`.
    pub fn open(path: &Path) -> Result<KerasSource> {
        let map = InputMap::open(path).map_err(|e| Error::io(path, e))?;
        let map = Arc::new(map);
        let opened = KerasSource::open_map(path, map.clone());
        // A truncated archive reads as zeros under the map: say so, whatever the parse made of it.
        map.check_read()?;
        opened
    }

    fn open_map(path: &Path, map: Arc<InputMap>) -> Result<KerasSource> {
        let members = archive::members(path, map.bytes())?;
        if archive::find(&members, archive::CONFIG).is_none() {
            return Err(KerasError::MissingMember { path: path.to_path_buf(), member: archive::CONFIG.into() }.into());
        }
        let range = archive::weights_range(path, &members)?;
        let config = archive::json_member(path, map.bytes(), &members, archive::CONFIG)?;
        let image = FileImage::new(map.clone(), range.clone()).ok_or_else(|| KerasError::MemberOutOfBounds {
            path: path.to_path_buf(),
            member: archive::WEIGHTS.into(),
            start: range.start as u64,
            end: range.end as u64,
            len: map.len() as u64,
        })?;
        let weights = Hdf5Source::open_image(path, image)?;
        Ok(KerasSource { path: path.to_path_buf(), weights, map, members, config })
    }

    /// The archive's weights, as the HDF5 reader opened them (a layout template for writers).
    pub fn weights(&self) -> &Hdf5Source {
        &self.weights
    }

    /// The archive's `config.json`.
    pub fn config(&self) -> Option<&serde_json::Value> {
        self.config.as_ref()
    }

    /// The names of the model's layers as `config.json` lists them (`config.layers[*].config.name`),
    /// in order; empty if the config lists none. The weights are named by their HDF5 paths, which
    /// Keras makes from the layers' classes (`layers/dense_1/vars/0`); these are the names the user
    /// gave.
    pub fn layer_names(&self) -> Vec<&str> {
        let layers = self.config.as_ref().and_then(|c| c.pointer("/config/layers")).and_then(|l| l.as_array());
        layers
            .map(|layers| layers.iter().filter_map(|l| l.pointer("/config/name").and_then(|n| n.as_str())).collect())
            .unwrap_or_default()
    }

    /// The members' names, in the archive's order.
    pub fn member_names(&self) -> Vec<&str> {
        self.members.iter().map(|m| m.name.as_str()).collect()
    }

    /// Where the weights' HDF5 file lies in the archive.
    pub fn weights_range(&self) -> Range<usize> {
        // Checked at open.
        archive::weights_range(&self.path, &self.members).unwrap_or_default()
    }

    /// The mapped archive (for a writer copying its members).
    pub(crate) fn map(&self) -> &InputMap {
        &self.map
    }
}

impl CheckpointSource for KerasSource {
    fn format(&self) -> Format {
        Format::Keras
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn tensors(&self) -> &[TensorInfo] {
        self.weights.tensors()
    }

    fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.weights.tensor(name)
    }

    fn read_rows(&self, name: &str, rows: Range<u64>) -> Result<Cow<'_, [u8]>> {
        self.weights.read_rows(name, rows)
    }

    fn read_strings(&self, name: &str) -> Result<Vec<Vec<u8>>> {
        self.weights.read_strings(name)
    }

    fn check_unchanged(&self) -> Result<()> {
        self.map.check_unchanged()
    }
}
