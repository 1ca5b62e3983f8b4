//! `load_checkpoint` and `list_variables`: TensorFlow's `CheckpointReader` for a checkpoint of any
//! format, opened by [`warmstart_formats::open`].
//!
//! Memory: a tensor the format stores whole, in numpy's byte order, is returned without a copy: a
//! read-only array over the memory map, whose `base` (a `TensorBuffer`) holds the reader and the map,
//! and which hands its pages back to the OS page cache when it is dropped
//! ([`CheckpointSource::release`]). Any other tensor is assembled once, by the reader, into memory the
//! array then owns. `copy=True` always gives an array of its own.
//!
//! Bytes borrowed from a map read zeros, instead of raising SIGBUS, if the file is truncated under
//! them while its reader lives (warmstart's SIGBUS guard, `warmstart_core::mapped`); past the guard's
//! 4096 maps, or with another SIGBUS handler installed after warmstart's, a truncated file kills the
//! process as it does with `numpy.memmap`. Don't change a checkpoint while reading it.

use std::borrow::Cow;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use pyo3::exceptions::{PyIndexError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};
use warmstart_core::{CheckpointSource, DType, TensorInfo};

use crate::errors::{self, CheckpointError};

type Source = Arc<dyn CheckpointSource>;

/// Opens the checkpoint at `path` (a file, a TF prefix, or a folder), with the GIL released; `format`
/// (a format's name, as `--format`) picks one in a folder holding checkpoints of several formats
/// ([`warmstart_formats::open_preferring`]); `names` is `"keys"` (the checkpoint's) or `"variables"`
/// (a TF2 object-based checkpoint's tensors under their variables' names, as `--names variables`:
/// [`warmstart_rules::names::named`]).
fn open(py: Python<'_>, path: PathBuf, format: Option<&str>, names: &str) -> PyResult<Source> {
    let prefer = crate::warm::format(format)?;
    let variables = match names {
        "keys" => false,
        "variables" => true,
        other => {
            return Err(PyValueError::new_err(format!("names must be \"keys\" or \"variables\", not {other:?}")));
        }
    };
    let source: Source = py
        .detach(|| warmstart_formats::open_preferring(&path, prefer).map(Arc::from))
        .map_err(|e| errors::checkpoint(&e))?;
    if !variables {
        return Ok(source);
    }
    let named = py.detach(|| warmstart_rules::names::named(source.clone())).map_err(|e| errors::rules(&e))?;
    Ok(named.map_or(source, |n| Arc::new(n) as Source))
}

/// TF's `tf.train.load_checkpoint`: a reader of the checkpoint at `path`, whatever its format.
#[pyfunction]
#[pyo3(signature = (path, *, format=None, names="keys"))]
pub fn load_checkpoint(py: Python<'_>, path: PathBuf, format: Option<&str>, names: &str) -> PyResult<CheckpointReader> {
    Ok(CheckpointReader { source: Mutex::new(Some(open(py, path, format, names)?)) })
}

/// TF's `tf.train.list_variables`: `(name, shape)` of every tensor, sorted by name.
#[pyfunction]
#[pyo3(signature = (path, *, format=None, names="keys"))]
pub fn list_variables(
    py: Python<'_>,
    path: PathBuf,
    format: Option<&str>,
    names: &str,
) -> PyResult<Vec<(String, Vec<u64>)>> {
    let source = open(py, path, format, names)?;
    let mut list: Vec<_> = source.tensors().iter().map(|t| (t.name.clone(), t.shape.clone())).collect();
    list.sort();
    Ok(list)
}

/// TensorFlow's `CheckpointReader`, for every format warmstart reads.
#[pyclass(module = "warmstart", frozen, weakref)]
pub struct CheckpointReader {
    /// `None` once closed.
    source: Mutex<Option<Source>>,
}

impl CheckpointReader {
    fn source(&self) -> PyResult<Source> {
        let guard = self.source.lock().map_err(|_| PyValueError::new_err("the reader is unusable"))?;
        guard.clone().ok_or_else(|| PyValueError::new_err("I/O operation on a closed checkpoint reader"))
    }

    fn info(&self, name: &str) -> PyResult<(Source, TensorInfo)> {
        let source = self.source()?;
        let info = source.require(name).map_err(|e| errors::checkpoint(&e))?.clone();
        Ok((source, info))
    }
}

#[pymethods]
impl CheckpointReader {
    /// Every tensor's shape, by name (a scalar's is `[]`).
    fn get_variable_to_shape_map<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        for t in self.source()?.tensors() {
            dict.set_item(&t.name, &t.shape)?;
        }
        Ok(dict)
    }

    /// Every tensor's numpy dtype, by name (`ml_dtypes.bfloat16` and the float8 types where present,
    /// `object` for strings).
    fn get_variable_to_dtype_map<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        for t in self.source()?.tensors() {
            dict.set_item(&t.name, crate::dtypes::to_numpy(py, t.dtype)?)?;
        }
        Ok(dict)
    }

    /// Whether the checkpoint has a tensor called `name`.
    fn has_tensor(&self, name: &str) -> PyResult<bool> {
        Ok(self.source()?.tensor(name).is_some())
    }

    fn __contains__(&self, name: &str) -> PyResult<bool> {
        self.has_tensor(name)
    }

    /// Every tensor's name, in the order the format stores them.
    fn keys(&self) -> PyResult<Vec<String>> {
        Ok(self.source()?.tensors().iter().map(|t| t.name.clone()).collect())
    }

    /// The format's name: `"tf"`, `"safetensors"`, `"hdf5"`, ...
    #[getter]
    fn format(&self) -> PyResult<&'static str> {
        Ok(self.source()?.format().name())
    }

    /// The file's free-form string metadata (safetensors `__metadata__`), or `None`.
    fn metadata(&self) -> PyResult<Option<std::collections::BTreeMap<String, String>>> {
        Ok(self.source()?.metadata().cloned())
    }

    /// The tensor `name` as a numpy array: read-only over the memory map where the format allows
    /// (`copy=True` for an array of its own); strings as an object array of `bytes`.
    #[pyo3(signature = (name, *, copy = false))]
    fn get_tensor<'py>(slf: &Bound<'py, Self>, name: &str, copy: bool) -> PyResult<Bound<'py, PyAny>> {
        let (source, info) = slf.get().info(name)?;
        let rows = info.rows();
        array(slf, &source, &info, 0..rows, info.shape.clone(), copy)
    }

    /// Rows `start..stop` of the tensor `name` (along its first dimension), as `get_tensor` would
    /// return them; reads only those rows.
    #[pyo3(signature = (name, start, stop, *, copy = false))]
    fn get_rows<'py>(
        slf: &Bound<'py, Self>,
        name: &str,
        start: u64,
        stop: u64,
        copy: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (source, info) = slf.get().info(name)?;
        if start > stop || stop > info.rows() {
            return Err(PyIndexError::new_err(format!(
                "rows {start}..{stop} of tensor {name:?}, which has {} rows",
                info.rows()
            )));
        }
        let mut shape = info.shape.clone();
        match shape.first_mut() {
            Some(first) => *first = stop - start,
            None => shape = vec![stop - start],
        }
        array(slf, &source, &info, start..stop, shape, copy)
    }

    /// Lets go of the checkpoint (arrays still borrowing from it keep it open).
    fn close(&self) -> PyResult<()> {
        if let Ok(mut guard) = self.source.lock() {
            guard.take();
        }
        Ok(())
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.close()?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        match self.source() {
            Ok(s) => format!("<warmstart.CheckpointReader {} {:?}>", s.format(), s.path()),
            Err(_) => "<warmstart.CheckpointReader (closed)>".to_string(),
        }
    }
}

/// Rows `rows` of `info` as a numpy array of shape `shape`.
fn array<'py>(
    reader: &Bound<'py, CheckpointReader>,
    source: &Source,
    info: &TensorInfo,
    rows: Range<u64>,
    shape: Vec<u64>,
    copy: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let py = reader.py();
    let numpy = py.import("numpy")?;
    if info.dtype == DType::String {
        return strings(py, source, info, rows, &shape);
    }
    let dtype = crate::dtypes::to_numpy(py, info.dtype)?;
    let expected = numeric_len(info, &shape)?;
    let data = py.detach(|| match source.read_rows(&info.name, rows.clone()) {
        Ok(Cow::Borrowed(bytes)) => Ok(Bytes::Borrowed(bytes.as_ptr() as usize, bytes.len())),
        Ok(Cow::Owned(bytes)) => Ok(Bytes::Owned(bytes)),
        Err(e) => Err(e),
    });
    let data = data.map_err(|e| errors::checkpoint(&e))?;
    if data.len() != expected {
        return Err(CheckpointError::new_err(format!(
            "{}: tensor {:?}: the reader returned {} bytes, expected {expected}",
            source.path().display(),
            info.name,
            data.len()
        )));
    }
    let typestr = crate::dtypes::typestr(info.dtype);
    let buffer = TensorBuffer::new(reader, source, info, rows, data, shape, typestr);
    let mut typed = numpy.getattr("asarray")?.call1((Bound::new(py, buffer)?,))?;
    // numpy's type string of an ml_dtypes type is a plain `V2` or `V1`: viewed as the type.
    if !typed.getattr("dtype")?.eq(&dtype)? {
        typed = typed.call_method1("view", (dtype,))?;
    }
    if copy {
        typed.call_method0("copy")
    } else {
        Ok(typed)
    }
}

/// The bytes of `shape` elements of `info`'s dtype, if they fit in memory.
fn numeric_len(info: &TensorInfo, shape: &[u64]) -> PyResult<usize> {
    TensorInfo::new(info.name.as_str(), info.dtype, shape.to_vec())
        .byte_len()
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| CheckpointError::new_err(format!("tensor {:?} is too large to address", info.name)))
}

/// Rows `rows` of the string tensor `info` as an object array of `bytes`.
fn strings<'py>(
    py: Python<'py>,
    source: &Source,
    info: &TensorInfo,
    rows: Range<u64>,
    shape: &[u64],
) -> PyResult<Bound<'py, PyAny>> {
    let values = py.detach(|| source.read_strings(&info.name)).map_err(|e| errors::checkpoint(&e))?;
    let inner = info.shape.get(1..).unwrap_or(&[]).to_vec();
    let per_row = TensorInfo::new(info.name.as_str(), DType::U8, inner)
        .num_elements()
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| CheckpointError::new_err(format!("tensor {:?} is too large to address", info.name)))?;
    let range = usize::try_from(rows.start)
        .ok()
        .and_then(|s| s.checked_mul(per_row))
        .zip(usize::try_from(rows.end).ok().and_then(|e| e.checked_mul(per_row)));
    let Some(picked) = range.and_then(|(a, b)| values.get(a..b)) else {
        return Err(CheckpointError::new_err(format!(
            "{}: string tensor {:?} has {} values, not those of its shape {:?}",
            source.path().display(),
            info.name,
            values.len(),
            info.shape
        )));
    };
    let list = PyList::new(py, picked.iter().map(|v| PyBytes::new(py, v)))?;
    let numpy = py.import("numpy")?;
    let kwargs = PyDict::new(py);
    kwargs.set_item("dtype", numpy.getattr("object_")?)?;
    // An empty list of an object dtype, and a list of bytes, both come out one-dimensional.
    let flat = numpy.getattr("empty")?.call((picked.len(),), Some(&kwargs))?;
    flat.set_item(pyo3::types::PySlice::full(py), list)?;
    flat.call_method1("reshape", (PyTuple::new(py, shape)?,))
}

/// Where an array's bytes are.
enum Bytes {
    /// In the source's memory map: the address and length.
    Borrowed(usize, usize),
    /// Assembled by the reader.
    Owned(Vec<u8>),
}

impl Bytes {
    fn len(&self) -> usize {
        match self {
            Bytes::Borrowed(_, len) => *len,
            Bytes::Owned(v) => v.len(),
        }
    }
}

/// The memory under one array: numpy reads it through `__array_interface__`, and the array's `base`
/// is this object, which keeps the reader (and its map) alive.
#[pyclass(module = "warmstart", frozen)]
pub struct TensorBuffer {
    /// The reader the array came from.
    #[pyo3(get)]
    reader: Py<CheckpointReader>,
    source: Source,
    name: String,
    rows: Range<u64>,
    /// The bytes' address, in `source`'s map or in `owned`.
    address: usize,
    /// The array's shape and numpy type string.
    shape: Vec<u64>,
    typestr: String,
    /// Owned bytes, written through `address` by numpy only: the box is never read or written from
    /// Rust after it is made.
    owned: Option<OwnedBytes>,
}

/// A byte allocation that numpy may write into (through the raw address only).
struct OwnedBytes(*mut [u8]);

// SAFETY: the allocation is plain bytes owned by this value; Rust never reads or writes it through a
// reference (only numpy does, through the address, under the GIL or by its own locking), so sharing or
// sending the pointer between threads creates no Rust data race.
unsafe impl Send for OwnedBytes {}
// SAFETY: as for `Send`: no `&` access to the bytes exists in Rust.
unsafe impl Sync for OwnedBytes {}

impl Drop for OwnedBytes {
    fn drop(&mut self) {
        // SAFETY: the pointer came from `Box::into_raw` in `TensorBuffer::new` and is dropped once, here.
        drop(unsafe { Box::from_raw(self.0) });
    }
}

impl TensorBuffer {
    fn new(
        reader: &Bound<'_, CheckpointReader>,
        source: &Source,
        info: &TensorInfo,
        rows: Range<u64>,
        data: Bytes,
        shape: Vec<u64>,
        typestr: String,
    ) -> Self {
        let (address, owned) = match data {
            Bytes::Borrowed(address, _) => (address, None),
            Bytes::Owned(v) => {
                let raw = Box::into_raw(v.into_boxed_slice());
                (raw as *mut u8 as usize, Some(OwnedBytes(raw)))
            }
        };
        TensorBuffer {
            reader: reader.clone().unbind(),
            source: source.clone(),
            name: info.name.clone(),
            rows,
            address,
            shape,
            typestr,
            owned,
        }
    }
}

#[pymethods]
impl TensorBuffer {
    /// numpy's array interface (version 3): the tensor's shape and type, read-only when the bytes are
    /// the memory map's.
    #[getter]
    fn __array_interface__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        dict.set_item("shape", PyTuple::new(py, &self.shape)?)?;
        dict.set_item("typestr", &self.typestr)?;
        dict.set_item("data", (self.address, self.owned.is_none()))?;
        dict.set_item("version", 3)?;
        Ok(dict)
    }

    /// Whether numpy may write the bytes (they are the array's own).
    #[getter]
    fn writeable(&self) -> bool {
        self.owned.is_some()
    }
}

impl Drop for TensorBuffer {
    fn drop(&mut self) {
        if self.owned.is_none() {
            // The map's pages go back to the page cache; other arrays over them read them again.
            self.source.release(&self.name, self.rows.clone());
        }
    }
}
