//! [`Hdf5Sink`]: writes tensors as HDF5 datasets, streaming each by row hyperslabs, into a file staged
//! beside the destination through [`AtomicOutput`], which `finish` commits into place.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use hdf5::types::{TypeDescriptor, VarLenUnicode};
use hdf5::{Dataset, Datatype, Extents, File};
use warmstart_core::output::AtomicOutput;
use warmstart_core::{CheckpointSink, DType, Error, Result, SinkTensor, TensorInfo};

use crate::layout;
use crate::raw;
use crate::{Hdf5Error, Hdf5Protocol, Hdf5Source};

/// An HDF5 file being written.
pub struct Hdf5Sink {
    // Field order is drop order: HDF5 handles close before the staged file is removed.
    current: Option<Current>,
    file: Option<File>,
    /// The one staged file, which the HDF5 library writes by its temporary path.
    output: AtomicOutput,
    path: PathBuf,
    planned: Vec<Planned>,
    index: HashMap<String, usize>,
}

/// A declared tensor and where it goes.
struct Planned {
    info: TensorInfo,
    /// Dataset path in the new file (without the leading `/`).
    dataset: String,
    written: bool,
}

/// The numeric tensor being streamed.
struct Current {
    planned: usize,
    dataset: Dataset,
    mem: Datatype,
    shape: Vec<usize>,
    row_bytes: usize,
    rows_done: usize,
    /// The start of a row whose end has not arrived yet.
    pending: Vec<u8>,
    given: u64,
    expected: u64,
}

impl std::fmt::Debug for Hdf5Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hdf5Sink").field("path", &self.path).field("tensors", &self.planned.len()).finish()
    }
}

impl Hdf5Sink {
    /// Makes `finish` flush the file to the disk (fsync) before moving it into place, for a checkpoint
    /// that must survive a crash of the machine.
    pub fn sync_on_finish(mut self, sync: bool) -> Self {
        self.output.set_sync(sync);
        self
    }

    /// Starts writing `tensors` to `path`. With a `layout_from` HDF5 file written by Keras, its groups
    /// and attributes are written first and tensors named after a legacy file's weights go to their
    /// original dataset paths; a template that is not a Keras file lends nothing.
    pub fn create(path: &Path, tensors: &[SinkTensor], layout_from: Option<&Path>) -> Result<Hdf5Sink> {
        hdf5::silence_errors(true);
        let template = layout_from.map(Hdf5Source::open).transpose()?;
        Hdf5Sink::create_from(path, tensors, template.as_ref())
    }

    /// [`create`](Self::create), with the template already open (a Keras archive's weights, read in
    /// place).
    pub fn create_from(path: &Path, tensors: &[SinkTensor], template: Option<&Hdf5Source>) -> Result<Hdf5Sink> {
        hdf5::silence_errors(true);
        let template = template.filter(|t| t.keras_layout().is_some());
        check_groups(path, tensors, template)?;
        let mut output = AtomicOutput::new(false);
        // Declared after `output`, so dropped before it on an error: HDF5 closes the file before the
        // staged file is removed.
        let file = create_file(path, &mut output, template)?;
        let (planned, index) = create_datasets(path, &file, tensors, template)?;
        Ok(Hdf5Sink { current: None, file: Some(file), output, path: path.to_path_buf(), planned, index })
    }

    fn protocol(&self, reason: Hdf5Protocol) -> Error {
        Hdf5Error::Protocol { path: self.path.clone(), reason }.into()
    }

    fn file(&self) -> Result<&File> {
        self.file.as_ref().ok_or_else(|| self.protocol(Hdf5Protocol::AlreadyFinished))
    }

    /// The declared tensor `tensor` names, not yet written.
    fn planned_for(&self, tensor: &SinkTensor) -> Result<usize> {
        let i = *self
            .index
            .get(&tensor.info.name)
            .ok_or_else(|| self.protocol(Hdf5Protocol::Undeclared { tensor: tensor.info.name.clone() }))?;
        let p = &self.planned[i];
        if p.info != tensor.info {
            return Err(self.protocol(Hdf5Protocol::DiffersFromDeclaration { tensor: tensor.info.name.clone() }));
        }
        if p.written {
            return Err(self.protocol(Hdf5Protocol::AlreadyWritten { tensor: tensor.info.name.clone() }));
        }
        if self.current.is_some() {
            return Err(self.protocol(Hdf5Protocol::StartedBeforePreviousEnded { tensor: tensor.info.name.clone() }));
        }
        Ok(i)
    }

    fn write_err(&self, planned: usize, source: hdf5::Error) -> Error {
        let p = &self.planned[planned];
        write_error(&self.path, format!("dataset /{} (tensor {:?})", p.dataset, p.info.name), source).into()
    }
}

/// Stages the file for `path` in `output` and creates it there as an HDF5 file, holding the
/// template's groups and attributes if there is one.
fn create_file(path: &Path, output: &mut AtomicOutput, template: Option<&Hdf5Source>) -> Result<File> {
    let staged = output.stage(path)?;
    let file = File::create(output.file(staged).temp_path()).map_err(|e| write_error(path, "the file".into(), e))?;
    raw::close_on_exec(&file);
    if let Some(t) = template {
        layout::copy_layout(t, &file, path)?;
    }
    Ok(file)
}

/// Creates the dataset of each of `tensors` in `file` (being written at `path`), empty, in declaration
/// order; returns what was planned and the index of each tensor's name in it.
fn create_datasets(
    path: &Path,
    file: &File,
    tensors: &[SinkTensor],
    template: Option<&Hdf5Source>,
) -> Result<(Vec<Planned>, HashMap<String, usize>), Hdf5Error> {
    let mut planned = Vec::with_capacity(tensors.len());
    let mut index = HashMap::with_capacity(tensors.len());
    let mut paths: HashMap<String, String> = HashMap::with_capacity(tensors.len());
    for tensor in tensors {
        let info = &tensor.info;
        let (element, dataset) = dataset_for(path, tensor, template, &mut paths)?;
        create_dataset(path, file, info, &element, &dataset, template)?;
        if index.insert(info.name.clone(), planned.len()).is_some() {
            return Err(Hdf5Error::DuplicateName {
                path: path.to_path_buf(),
                name: info.name.clone(),
                first: dataset.clone(),
                second: dataset,
            });
        }
        planned.push(Planned { info: info.clone(), dataset, written: false });
    }
    Ok((planned, index))
}

/// Refuses, before anything is created, tensors whose dataset paths make one of them a group of
/// another's (`k` and `k/Adam`), which HDF5 cannot hold: its library would fail midway with an
/// unhelpful error. Names that are no valid path are left to [`dataset_for`] to refuse.
fn check_groups(path: &Path, tensors: &[SinkTensor], template: Option<&Hdf5Source>) -> Result<(), Hdf5Error> {
    let datasets: Vec<(String, &str)> = tensors
        .iter()
        .filter_map(|t| {
            let name = t.info.name.as_str();
            normalize(template.and_then(|t| t.dataset_path(name)).unwrap_or(name)).map(|d| (d, name))
        })
        .collect();
    let by_dataset: HashMap<&str, &str> = datasets.iter().map(|(d, n)| (d.as_str(), *n)).collect();
    for (nested_dataset, nested) in &datasets {
        let groups = nested_dataset.match_indices('/').map(|(i, _)| &nested_dataset[..i]);
        if let Some((dataset, tensor)) = groups.filter_map(|g| by_dataset.get(g).map(|t| (g, *t))).next() {
            return Err(Hdf5Error::DatasetIsGroup {
                path: path.to_path_buf(),
                tensor: tensor.to_string(),
                dataset: dataset.to_string(),
                nested: nested.to_string(),
                nested_dataset: nested_dataset.clone(),
            });
        }
    }
    Ok(())
}

/// The element type a dataset is created with.
enum Element {
    /// The HDF5 type h5py has for the dtype.
    Described(TypeDescriptor),
    /// An opaque type of the dtype's size, marked with Keras's `dtype` attribute (bfloat16, float8).
    KerasOpaque {
        /// The attribute's value.
        name: &'static str,
        /// Bytes per element.
        size: usize,
    },
}

/// The element type and the dataset path (without the leading `/`) of `tensor`, after checking that
/// it is whole, has an HDF5 type, a valid name and an addressable size, and that no tensor before it
/// goes to the same dataset (`paths` maps the dataset paths taken to their tensors).
fn dataset_for(
    path: &Path,
    tensor: &SinkTensor,
    template: Option<&Hdf5Source>,
    paths: &mut HashMap<String, String>,
) -> Result<(Element, String), Hdf5Error> {
    let info = &tensor.info;
    if tensor.slice.as_ref().is_some_and(|s| !s.is_full(&info.shape)) {
        return Err(Hdf5Error::SliceGiven { path: path.to_path_buf(), name: info.name.clone() });
    }
    let opaque = raw::keras_opaque_name(info.dtype).zip(info.dtype.size());
    let element = match opaque {
        Some((name, size)) => Element::KerasOpaque { name, size },
        None => Element::Described(raw::descriptor_for(info.dtype).ok_or_else(|| Hdf5Error::UnsupportedDType {
            path: path.to_path_buf(),
            name: info.name.clone(),
            dtype: info.dtype,
        })?),
    };
    let dataset = template.and_then(|t| t.dataset_path(&info.name)).unwrap_or(&info.name);
    let dataset = normalize(dataset)
        .ok_or_else(|| Hdf5Error::InvalidName { path: path.to_path_buf(), name: info.name.clone() })?;
    if let Some(first) = paths.insert(dataset.clone(), info.name.clone()) {
        return Err(Hdf5Error::DuplicateName {
            path: path.to_path_buf(),
            name: dataset,
            first,
            second: info.name.clone(),
        });
    }
    if info.dtype != DType::String && info.byte_len().and_then(|n| usize::try_from(n).ok()).is_none() {
        return Err(Hdf5Error::TooLarge { path: path.to_path_buf(), dataset: info.name.clone() });
    }
    Ok((element, dataset))
}

/// Creates the empty dataset `dataset` of `info`'s shape and `element` type in `file` (with its
/// parent group), and copies the template's attributes of the same dataset onto it; a Keras opaque
/// type gets its `dtype` attribute, as Keras writes it (a variable-length UTF-8 string).
fn create_dataset(
    path: &Path,
    file: &File,
    info: &TensorInfo,
    element: &Element,
    dataset: &str,
    template: Option<&Hdf5Source>,
) -> Result<(), Hdf5Error> {
    let created_err = |e| write_error(path, format!("dataset /{dataset} (tensor {:?})", info.name), e);
    let extents = if info.shape.is_empty() {
        Extents::Scalar
    } else {
        Extents::from(info.shape.iter().map(|&d| d as usize).collect::<Vec<usize>>())
    };
    if let Some((parent, _)) = dataset.rsplit_once('/') {
        if !file.link_exists(parent) {
            file.create_group(parent).map_err(created_err)?;
        }
    }
    let builder = file.new_dataset_builder();
    let builder = match element {
        Element::Described(desc) => builder.empty_as(desc),
        Element::KerasOpaque { size, .. } => builder.empty_as(raw::opaque_type(*size).map_err(created_err)?),
    };
    let created = builder.shape(extents).create(dataset).map_err(created_err)?;
    if let Some(t) = template {
        layout::copy_dataset_attributes(t, dataset, &created, path)?;
    }
    if let Element::KerasOpaque { name, .. } = element {
        let mark = || {
            if created.attr_names()?.iter().any(|n| n == raw::KERAS_DTYPE_ATTRIBUTE) {
                created.delete_attr(raw::KERAS_DTYPE_ATTRIBUTE)?;
            }
            let value = VarLenUnicode::from_str(name).map_err(|e| hdf5::Error::from(e.to_string()))?;
            created.new_attr::<VarLenUnicode>().create(raw::KERAS_DTYPE_ATTRIBUTE)?.write_scalar(&value)
        };
        mark().map_err(created_err)?;
    }
    Ok(())
}

/// A failure of the HDF5 library writing `what` into the file at `path`.
fn write_error(path: &Path, what: String, source: hdf5::Error) -> Hdf5Error {
    Hdf5Error::Write { path: path.to_path_buf(), what, source: source.into() }
}

/// `name` as a dataset path: without leading `/`, with no empty, `.` or `..` component.
fn normalize(name: &str) -> Option<String> {
    let trimmed = name.trim_start_matches('/');
    let ok = !trimmed.is_empty() && trimmed.split('/').all(|c| !c.is_empty() && c != "." && c != "..");
    ok.then(|| trimmed.to_string())
}

impl CheckpointSink for Hdf5Sink {
    fn path(&self) -> &Path {
        &self.path
    }

    fn begin_tensor(&mut self, tensor: &SinkTensor) -> Result<()> {
        let i = self.planned_for(tensor)?;
        let info = &self.planned[i].info;
        if info.dtype == DType::String {
            return Err(Error::WrongDType { path: self.path.clone(), name: info.name.clone(), dtype: info.dtype });
        }
        let dataset = self.file()?.dataset(&self.planned[i].dataset).map_err(|e| self.write_err(i, e))?;
        let mem = raw::memory_type(&dataset, info.dtype)
            .map_err(|e| self.write_err(i, e))?
            .ok_or_else(|| self.protocol(Hdf5Protocol::NoHdf5Type { tensor: info.name.clone() }))?;
        // Both fit: checked against usize when the file was created.
        let expected = info.byte_len().unwrap_or(0);
        let row_bytes = info.row_bytes().unwrap_or(0) as usize;
        let shape = info.shape.iter().map(|&d| d as usize).collect();
        self.current = Some(Current {
            planned: i,
            dataset,
            mem,
            shape,
            row_bytes,
            rows_done: 0,
            pending: Vec::new(),
            given: 0,
            expected,
        });
        Ok(())
    }

    fn write_data(&mut self, mut bytes: &[u8]) -> Result<()> {
        let Some(cur) = self.current.as_mut() else {
            return Err(self.protocol(Hdf5Protocol::DataWithoutTensor));
        };
        let given = cur.given + bytes.len() as u64;
        if given > cur.expected {
            let name = self.planned[cur.planned].info.name.clone();
            return Err(Error::SizeMismatch { path: self.path.clone(), name, given, expected: cur.expected });
        }
        cur.given = given;
        let mut result = Ok(());
        if !cur.pending.is_empty() {
            let take = (cur.row_bytes - cur.pending.len()).min(bytes.len());
            cur.pending.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if cur.pending.len() == cur.row_bytes {
                result = raw::write_rows(&cur.dataset, &cur.mem, &cur.shape, cur.rows_done, 1, &cur.pending);
                cur.rows_done += 1;
                cur.pending.clear();
            }
        }
        if result.is_ok() && cur.row_bytes > 0 {
            let rows = bytes.len() / cur.row_bytes;
            if rows > 0 {
                let whole = rows * cur.row_bytes;
                result = raw::write_rows(&cur.dataset, &cur.mem, &cur.shape, cur.rows_done, rows, &bytes[..whole]);
                cur.rows_done += rows;
                bytes = &bytes[whole..];
            }
            cur.pending.extend_from_slice(bytes);
        }
        let planned = cur.planned;
        result.map_err(|e| self.write_err(planned, e))
    }

    fn end_tensor(&mut self) -> Result<()> {
        let Some(cur) = self.current.take() else {
            return Err(self.protocol(Hdf5Protocol::EndWithoutTensor));
        };
        let p = &mut self.planned[cur.planned];
        if cur.given != cur.expected {
            return Err(Error::SizeMismatch {
                path: self.path.clone(),
                name: p.info.name.clone(),
                given: cur.given,
                expected: cur.expected,
            });
        }
        p.written = true;
        Ok(())
    }

    fn write_strings(&mut self, tensor: &SinkTensor, values: &[Vec<u8>]) -> Result<()> {
        let i = self.planned_for(tensor)?;
        let info = &self.planned[i].info;
        if info.dtype != DType::String {
            return Err(Error::WrongDType { path: self.path.clone(), name: info.name.clone(), dtype: info.dtype });
        }
        if info.num_elements() != Some(values.len() as u64) {
            let reason = Hdf5Protocol::WrongStringCount {
                tensor: info.name.clone(),
                shape: info.shape.clone(),
                given: values.len(),
            };
            return Err(self.protocol(reason));
        }
        let unsupported = |reason: &str| Error::Unsupported {
            path: self.path.clone(),
            format: warmstart_core::Format::Hdf5,
            name: info.name.clone(),
            reason: reason.to_string(),
        };
        let strings = values
            .iter()
            .map(|v| {
                let s = std::str::from_utf8(v).map_err(|_| unsupported("a value is not UTF-8"))?;
                VarLenUnicode::from_str(s).map_err(|_| unsupported("a value holds a NUL byte"))
            })
            .collect::<Result<Vec<_>>>()?;
        let dataset = self.file()?.dataset(&self.planned[i].dataset).map_err(|e| self.write_err(i, e))?;
        dataset.write_raw(&strings).map_err(|e| self.write_err(i, e))?;
        self.planned[i].written = true;
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<()> {
        self.close()?.commit()
    }
}

impl Hdf5Sink {
    /// Closes the finished file without putting it in place: the staged output, whose one file the
    /// caller reads (a Keras archive's writer copies it into the archive) and drops, which removes it.
    pub fn finish_staged(self) -> Result<AtomicOutput> {
        self.close()
    }

    /// Checks that every tensor was written, and closes the HDF5 file.
    fn close(mut self) -> Result<AtomicOutput> {
        if let Some(cur) = &self.current {
            let tensor = self.planned[cur.planned].info.name.clone();
            return Err(self.protocol(Hdf5Protocol::FinishedWhileOpen { tensor }));
        }
        if let Some(p) = self.planned.iter().find(|p| !p.written) {
            return Err(self.protocol(Hdf5Protocol::NeverWritten { tensor: p.info.name.clone() }));
        }
        let file = self.file.take().ok_or_else(|| self.protocol(Hdf5Protocol::AlreadyFinished))?;
        let close_err = |source| write_error(&self.path, "the file".into(), source);
        file.flush().map_err(close_err)?;
        file.close().map_err(close_err)?;
        // The HDF5 file is closed: what remains is moving (and with `sync`, flushing) the staged file.
        Ok(std::mem::take(&mut self.output))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_dataset_paths() {
        assert_eq!(normalize("a/b").as_deref(), Some("a/b"));
        assert_eq!(normalize("/a/b:0").as_deref(), Some("a/b:0"));
        for bad in ["", "/", "a//b", "a/", "./a", "a/../b"] {
            assert_eq!(normalize(bad), None, "{bad:?}");
        }
    }

    fn protocol_of(e: Error) -> Hdf5Protocol {
        match e.hdf5() {
            Some(Hdf5Error::Protocol { reason, .. }) => reason.clone(),
            _ => panic!("not a protocol error: {e}"),
        }
    }

    #[test]
    fn misuse_is_a_typed_protocol_error() {
        let dir = tempfile::tempdir().unwrap();
        let w = SinkTensor::whole(TensorInfo::new("w", DType::U8, vec![2]));
        let s = SinkTensor::whole(TensorInfo::new("s", DType::String, vec![2]));
        let mut sink = Hdf5Sink::create(&dir.path().join("o.h5"), &[w.clone(), s.clone()], None).unwrap();
        assert_eq!(protocol_of(sink.write_data(&[1]).unwrap_err()), Hdf5Protocol::DataWithoutTensor);
        assert_eq!(protocol_of(sink.end_tensor().unwrap_err()), Hdf5Protocol::EndWithoutTensor);
        let other = SinkTensor::whole(TensorInfo::new("w", DType::U8, vec![3]));
        assert_eq!(
            protocol_of(sink.begin_tensor(&other).unwrap_err()),
            Hdf5Protocol::DiffersFromDeclaration { tensor: "w".into() }
        );
        let x = SinkTensor::whole(TensorInfo::new("x", DType::U8, vec![2]));
        assert_eq!(protocol_of(sink.begin_tensor(&x).unwrap_err()), Hdf5Protocol::Undeclared { tensor: "x".into() });
        let err = sink.write_strings(&s, &[b"a".to_vec()]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{}: tensor \"s\" of shape [2] was given 1 strings", dir.path().join("o.h5").display())
        );
        assert_eq!(protocol_of(err), Hdf5Protocol::WrongStringCount { tensor: "s".into(), shape: vec![2], given: 1 });
        sink.begin_tensor(&w).unwrap();
        assert_eq!(
            protocol_of(sink.begin_tensor(&w).unwrap_err()),
            Hdf5Protocol::StartedBeforePreviousEnded { tensor: "w".into() }
        );
        sink.write_data(&[1, 2]).unwrap();
        sink.end_tensor().unwrap();
        assert_eq!(
            protocol_of(sink.begin_tensor(&w).unwrap_err()),
            Hdf5Protocol::AlreadyWritten { tensor: "w".into() }
        );
        assert_eq!(
            protocol_of(Box::new(sink).finish().unwrap_err()),
            Hdf5Protocol::NeverWritten { tensor: "s".into() }
        );
    }

    /// With `sync`, the file is committed as without; either way it gets an ordinary new file's
    /// permissions and nothing else is left in the folder.
    #[test]
    fn synced_output_is_committed_like_any_other() {
        use warmstart_core::CheckpointSource;
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"").unwrap();
        let w = SinkTensor::whole(TensorInfo::new("a/w", DType::F32, vec![2]));
        for (name, sync) in [("synced.h5", true), ("unsynced.h5", false)] {
            let out = dir.path().join(name);
            let mut sink: Box<dyn CheckpointSink> =
                Box::new(Hdf5Sink::create(&out, std::slice::from_ref(&w), None).unwrap().sync_on_finish(sync));
            sink.begin_tensor(&w).unwrap();
            sink.write_data(&[0, 0, 128, 63, 0, 0, 0, 64]).unwrap();
            sink.end_tensor().unwrap();
            sink.finish().unwrap();
            assert_eq!(Hdf5Source::open(&out).unwrap().read("a/w").unwrap().as_ref(), [0, 0, 128, 63, 0, 0, 0, 64]);
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode(&out), mode(&plain), "{name}");
            }
        }
        let mut names: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["plain", "synced.h5", "unsynced.h5"]);
    }

    #[test]
    fn errors_convert_to_the_core_error() {
        let e: Error = Hdf5Error::Io { path: "x.h5".into(), source: std::io::Error::other("disk full") }.into();
        assert!(matches!(e, Error::Io { .. }));
        let e: Error = Hdf5Error::InvalidName { path: "x.h5".into(), name: "a//b".into() }.into();
        assert!(matches!(&e, Error::Hdf5(h) if matches!(**h, Hdf5Error::InvalidName { .. })));
        assert_eq!(e.to_string(), "x.h5: tensor name \"a//b\" is not a valid HDF5 dataset path");
    }
}
