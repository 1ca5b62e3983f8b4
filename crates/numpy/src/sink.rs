//! [`NumpySink`]: writes an `.npz` archive as `np.savez` does (one stored `<name>.npy` member per
//! tensor, each byte for byte what `np.save` writes), or, for a destination named `.npy`, the single
//! `.npy` file `np.save` writes; with [`compressed`](NumpySink::compressed), deflated members as
//! `np.savez_compressed` writes them. The file is staged beside the destination through [`AtomicOutput`] and
//! moved into place only when complete; the zip structure is the `zip` crate's.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use warmstart_core::output::AtomicOutput;
use warmstart_core::{CheckpointSink, Error, Format, Result, SinkTensor};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use crate::{header, NumpyError};

/// A NumPy file being written.
pub struct NumpySink {
    path: PathBuf,
    output: AtomicOutput,
    /// The archive, written to the staged file through a handle of its own; `None` for a `.npy`.
    zip: Option<ZipWriter<BufWriter<File>>>,
    declared: Vec<SinkTensor>,
    by_name: HashMap<String, usize>,
    written: Vec<bool>,
    open: Option<OpenTensor>,
    /// Deflate the members, as `np.savez_compressed` does.
    compress: bool,
}

/// The tensor being written: its declared index, its size and the bytes still due.
struct OpenTensor {
    index: usize,
    len: u64,
    remaining: u64,
}

impl NumpySink {
    /// Makes `finish` flush the file to the disk (fsync) before moving it into place.
    pub fn sync_on_finish(mut self, sync: bool) -> Self {
        self.output.set_sync(sync);
        self
    }

    /// Deflates the `.npz` members, as `np.savez_compressed` does (zlib's default level); a single
    /// `.npy` is never compressed.
    pub fn compressed(mut self, compress: bool) -> Self {
        self.compress = compress;
        self
    }

    /// Starts writing `tensors` to `path`: a single `.npy` if the name ends in `.npy` (then exactly one
    /// tensor), else an `.npz`.
    ///
    /// Fails with [`Error::Unsupported`] for tensors numpy has no type for (strings, bfloat16, float8,
    /// complex) and for slices of partitioned tensors.
    pub fn create(path: impl AsRef<Path>, tensors: &[SinkTensor]) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let mut by_name = HashMap::with_capacity(tensors.len());
        for (i, t) in tensors.iter().enumerate() {
            let unsupported = |reason: String| Error::Unsupported {
                path: path.clone(),
                format: Format::Numpy,
                name: t.info.name.clone(),
                reason,
            };
            if header::descr(t.info.dtype).is_none() {
                return Err(unsupported(format!("numpy has no {} type", t.info.dtype)));
            }
            if t.slice.as_ref().is_some_and(|s| !s.is_full(&t.info.shape)) {
                return Err(unsupported("it is a slice of a partitioned tensor".into()));
            }
            if t.byte_len().is_none() {
                return Err(Error::TooLarge { path: path.clone(), name: t.info.name.clone() });
            }
            if by_name.insert(t.info.name.clone(), i).is_some() {
                return Err(NumpyError::SinkDuplicateTensor { path, tensor: t.info.name.clone() }.into());
            }
        }
        let single = path.file_name().is_some_and(|n| n.to_string_lossy().to_lowercase().ends_with(".npy"));
        if single && tensors.len() != 1 {
            return Err(NumpyError::SinkNotOneTensor { path, count: tensors.len() }.into());
        }
        let mut output = AtomicOutput::new(false);
        let staged = output.stage(&path)?;
        let zip = if single {
            None
        } else {
            let temp = output.file(staged).temp_path().to_path_buf();
            let file = File::options().write(true).open(&temp).map_err(|e| Error::io(&path, e))?;
            Some(ZipWriter::new(BufWriter::with_capacity(1 << 20, file)))
        };
        let written = vec![false; tensors.len()];
        Ok(NumpySink { path, output, zip, declared: tensors.to_vec(), by_name, written, open: None, compress: false })
    }

    fn archive_err(&self, e: impl Into<warmstart_core::LibraryError>) -> Error {
        NumpyError::SinkArchive { path: self.path.clone(), source: e.into() }.into()
    }

    /// Appends bytes to the open member (or the `.npy`).
    fn append(&mut self, bytes: &[u8]) -> Result<()> {
        match &mut self.zip {
            Some(zip) => zip.write_all(bytes).map_err(|e| Error::io(&self.path, e)),
            None => self.output.file(0).write_all(bytes),
        }
    }
}

impl CheckpointSink for NumpySink {
    fn path(&self) -> &Path {
        &self.path
    }

    fn begin_tensor(&mut self, tensor: &SinkTensor) -> Result<()> {
        if let Some(open) = &self.open {
            let tensor = self.declared[open.index].info.name.clone();
            return Err(NumpyError::SinkTensorOpen { path: self.path.clone(), tensor }.into());
        }
        let name = &tensor.info.name;
        let index = match self.by_name.get(name) {
            Some(&i) if self.declared[i].info == tensor.info => i,
            _ => return Err(NumpyError::SinkUndeclaredTensor { path: self.path.clone(), tensor: name.clone() }.into()),
        };
        if self.written[index] {
            return Err(NumpyError::SinkTensorRepeated { path: self.path.clone(), tensor: name.clone() }.into());
        }
        let info = &self.declared[index].info;
        // Checked at create.
        let (descr, len) = (header::descr(info.dtype).unwrap_or("|u1"), info.byte_len().unwrap_or(0));
        let head = header::write(descr, &info.shape);
        if let Some(zip) = &mut self.zip {
            let total = len.saturating_add(head.len() as u64);
            let method = if self.compress { CompressionMethod::Deflated } else { CompressionMethod::Stored };
            let options =
                SimpleFileOptions::default().compression_method(method).large_file(total >= u64::from(u32::MAX));
            let started = zip.start_file(format!("{name}.npy"), options);
            started.map_err(|e| self.archive_err(e))?;
        }
        self.append(&head)?;
        self.open = Some(OpenTensor { index, len, remaining: len });
        Ok(())
    }

    fn write_data(&mut self, bytes: &[u8]) -> Result<()> {
        let Some(open) = self.open.as_mut() else {
            return Err(NumpyError::SinkNoTensorOpen { path: self.path.clone() }.into());
        };
        let given = bytes.len() as u64;
        if given > open.remaining {
            return Err(Error::SizeMismatch {
                path: self.path.clone(),
                name: self.declared[open.index].info.name.clone(),
                given: open.len - open.remaining + given,
                expected: open.len,
            });
        }
        open.remaining -= given;
        self.append(bytes)
    }

    fn end_tensor(&mut self) -> Result<()> {
        let Some(open) = self.open.take() else {
            return Err(NumpyError::SinkNoTensorOpen { path: self.path.clone() }.into());
        };
        if open.remaining != 0 {
            return Err(Error::SizeMismatch {
                path: self.path.clone(),
                name: self.declared[open.index].info.name.clone(),
                given: open.len - open.remaining,
                expected: open.len,
            });
        }
        self.written[open.index] = true;
        Ok(())
    }

    fn write_strings(&mut self, tensor: &SinkTensor, _values: &[Vec<u8>]) -> Result<()> {
        Err(Error::Unsupported {
            path: self.path.clone(),
            format: Format::Numpy,
            name: tensor.info.name.clone(),
            reason: "warmstart writes no numpy string arrays".to_string(),
        })
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        let path = self.path.clone();
        if let Some(open) = &self.open {
            let tensor = self.declared[open.index].info.name.clone();
            return Err(NumpyError::SinkTensorOpen { path, tensor }.into());
        }
        if let Some(i) = self.written.iter().position(|w| !w) {
            let tensor = self.declared[i].info.name.clone();
            return Err(NumpyError::SinkTensorMissing { path, tensor }.into());
        }
        if let Some(zip) = self.zip.take() {
            let file = zip.finish().map_err(|e| self.archive_err(e))?;
            file.into_inner().map_err(|e| Error::io(&path, e.into_error()))?;
        }
        self.output.commit()
    }
}

#[cfg(test)]
mod tests;
