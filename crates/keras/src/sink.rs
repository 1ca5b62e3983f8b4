//! [`KerasSink`]: writes a new `.keras` archive whose weights are the tensors written, and whose other
//! members (config, metadata, assets) are the template archive's, copied byte for byte.
//!
//! The weights go first to an HDF5 file staged beside the destination (written by the HDF5 writer with
//! the template's weights as layout template, so Keras finds every group it expects), which is never
//! put in place. `finish` then writes the archive through the `zip` crate into a file staged for the
//! destination: the template's members in their order, each copied raw except `model.weights.h5`,
//! which is stored (uncompressed, as Keras writes it) from the staged HDF5 file; and commits it. The
//! staged HDF5 file is removed then, or when anything fails.

use std::fs::File;
use std::path::{Path, PathBuf};

use warmstart_core::output::AtomicOutput;
use warmstart_core::{CheckpointSink, CheckpointSource, Error, KerasError, Result, SinkTensor};
use warmstart_hdf5::Hdf5Sink;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

use crate::archive::WEIGHTS;
use crate::KerasSource;

/// A `.keras` archive being written.
pub struct KerasSink {
    path: PathBuf,
    // Field order is drop order: the weights' writer (and its staged file) before the archive's.
    weights: Hdf5Sink,
    output: AtomicOutput,
    staged: usize,
    template: KerasSource,
}

impl std::fmt::Debug for KerasSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KerasSink").field("path", &self.path).field("template", &self.template.path()).finish()
    }
}

impl KerasSink {
    /// Starts writing `tensors` as the weights of a new archive at `path`, with every other member
    /// taken from the archive `template` (required: the model's config comes from it).
    pub fn create(path: &Path, tensors: &[SinkTensor], template: Option<&Path>) -> Result<KerasSink> {
        let template = template.ok_or_else(|| KerasError::NoTemplate {
            path: path.to_path_buf(),
            reason: "none was given (convert from a .keras archive, or warm-start a .keras target)".into(),
        })?;
        if !crate::is_zip(template)? {
            let reason = format!("{} is none (sharded weights hold no config)", template.display());
            return Err(KerasError::NoTemplate { path: path.to_path_buf(), reason }.into());
        }
        let template = KerasSource::open(template)?;
        let mut output = AtomicOutput::new(false);
        let staged = output.stage(path)?;
        let weights = Hdf5Sink::create_from(&hidden_weights_path(path), tensors, Some(template.weights()))?;
        Ok(KerasSink { path: path.to_path_buf(), weights, output, staged, template })
    }

    /// Makes `finish` flush the archive to the disk (fsync) before moving it into place.
    pub fn sync_on_finish(mut self, sync: bool) -> Self {
        self.output.set_sync(sync);
        self
    }
}

/// Writes the archive at `path` into the staged file `dest`: `template`'s members, with the weights
/// taken from the HDF5 file at `weights`.
fn write_archive(path: &Path, template: &KerasSource, dest: &Path, weights: &Path) -> Result<()> {
    let write_err =
        |e: zip::result::ZipError| Error::from(KerasError::Write { path: path.to_path_buf(), source: e.into() });
    let mut members = ZipArchive::new(std::io::Cursor::new(template.map().bytes())).map_err(write_err)?;
    let file = File::options().write(true).open(dest).map_err(|e| Error::io(path, e))?;
    let mut zip = ZipWriter::new(file);
    for i in 0..members.len() {
        let member = members.by_index_raw(i).map_err(write_err)?;
        let is_weights = member.name().map_err(write_err)? == WEIGHTS;
        if !is_weights {
            zip.raw_copy_file(member).map_err(write_err)?;
            continue;
        }
        let len = std::fs::metadata(weights).map_err(|e| Error::io(weights, e))?.len();
        let mut options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Stored)
            .large_file(len >= u64::from(u32::MAX));
        if let Some(time) = member.last_modified() {
            options = options.last_modified_time(time);
        }
        if let Some(mode) = member.unix_mode() {
            options = options.unix_permissions(mode);
        }
        drop(member);
        zip.start_file(WEIGHTS, options).map_err(write_err)?;
        let mut h5 = File::open(weights).map_err(|e| Error::io(weights, e))?;
        std::io::copy(&mut h5, &mut zip).map_err(|e| Error::io(path, e))?;
    }
    zip.finish().map_err(write_err)?;
    Ok(())
}

/// Where the weights are staged for the archive at `path`: a hidden name beside it (never put in
/// place; the staged file is named after it).
fn hidden_weights_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{WEIGHTS}"))
}

impl CheckpointSink for KerasSink {
    fn path(&self) -> &Path {
        &self.path
    }

    fn begin_tensor(&mut self, tensor: &SinkTensor) -> Result<()> {
        self.weights.begin_tensor(tensor)
    }

    fn write_data(&mut self, bytes: &[u8]) -> Result<()> {
        self.weights.write_data(bytes)
    }

    fn end_tensor(&mut self) -> Result<()> {
        self.weights.end_tensor()
    }

    fn write_strings(&mut self, tensor: &SinkTensor, values: &[Vec<u8>]) -> Result<()> {
        self.weights.write_strings(tensor, values)
    }

    fn finish(self: Box<Self>) -> Result<()> {
        let KerasSink { path, weights, mut output, staged, template } = *self;
        let weights = weights.finish_staged()?;
        let h5 = weights.files().first().map(|f| f.temp_path().to_path_buf());
        let h5 = h5
            .ok_or_else(|| Error::from(KerasError::Write { path: path.clone(), source: "no weights staged".into() }))?;
        let dest = output.file(staged).temp_path().to_path_buf();
        write_archive(&path, &template, &dest, &h5)?;
        // The staged weights are removed; the archive goes in place.
        drop(weights);
        template.check_unchanged()?;
        output.commit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_weights_are_staged_under_a_hidden_name_beside_the_archive() {
        assert_eq!(hidden_weights_path(Path::new("out/m.keras")), Path::new("out/.m.keras.model.weights.h5"));
        assert_eq!(hidden_weights_path(Path::new("m.keras")), Path::new(".m.keras.model.weights.h5"));
    }
}
