//! `save` (numpy arrays into a new checkpoint of any format, through
//! [`warmstart_formats::create_sink`]) and `convert` (a checkpoint into another format, through
//! [`warmstart_formats::convert`]). Both are atomic: the output appears whole or not at all, and missing
//! parent folders made for it are removed again on failure.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pyo3::exceptions::{PyTypeError, PyUserWarning, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyMapping, PyString};
use warmstart_core::cancel::CancellableSource;
use warmstart_core::output::CreatedFolders;
use warmstart_core::{DType, SinkTensor, TensorInfo};
use warmstart_formats::WriteOptions;

use crate::warm::format;
use crate::{dtypes, errors, work};

/// One tensor to write: numeric bytes (an address and a length in an array that `keep` holds) or strings.
struct Input {
    tensor: SinkTensor,
    data: Data,
}

enum Data {
    Numeric { address: usize, len: usize },
    Strings(Vec<Vec<u8>>),
}

/// Writes `tensors` (a mapping of names to numpy arrays, or anything `numpy.asarray` takes) to `path`
/// in the format `to` names or the name says.
#[pyfunction]
#[pyo3(signature = (tensors, path, *, to=None, metadata=None, shards=None, max_shard_size=None))]
pub fn save(
    py: Python<'_>,
    tensors: &Bound<'_, PyMapping>,
    path: PathBuf,
    to: Option<&str>,
    metadata: Option<BTreeMap<String, String>>,
    shards: Option<usize>,
    max_shard_size: Option<&str>,
) -> PyResult<()> {
    let max_shard_size = shard_size(max_shard_size)?;
    let out_format = output_format(&path, to, max_shard_size)?;
    let mut keep = Vec::new();
    let mut inputs = Vec::new();
    for item in tensors.items()?.iter() {
        let (name, value): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item.extract()?;
        let name: String = name
            .cast::<PyString>()
            .map_err(|_| PyTypeError::new_err(format!("tensor names must be str, not {}", name.get_type())))?
            .to_cow()?
            .to_string();
        inputs.push(input(py, name, &value, &mut keep)?);
    }
    let opts = WriteOptions { shards, max_shard_size, metadata, ..Default::default() };
    // The arrays in `keep` stay alive (and unresized: they are referenced) while their bytes are written.
    py.detach(|| write(&path, out_format, &inputs, &opts)).map_err(|e| errors::checkpoint(&e))?;
    drop(keep);
    Ok(())
}

/// `max_shard_size=` ("5GB", "500MB", "10KiB", ...) read as the CLI's `--max-shard-size` is, by
/// [`warmstart_formats::parse_shard_size`]: `ValueError` if it is no size.
fn shard_size(given: Option<&str>) -> PyResult<Option<u64>> {
    given.map(|s| warmstart_formats::parse_shard_size(s).map_err(|e| PyValueError::new_err(e.to_string()))).transpose()
}

/// The output's format: `to`, else safetensors when split by size (as the CLI does), else the name's.
fn output_format(path: &Path, to: Option<&str>, max_shard_size: Option<u64>) -> PyResult<warmstart_core::Format> {
    let explicit = format(to)?.or(max_shard_size.map(|_| warmstart_core::Format::Safetensors));
    warmstart_formats::destination_format(path, explicit).map_err(|e| errors::checkpoint(&e))
}

/// The tensor `name` from `value`, its array kept in `keep` while its bytes are used.
fn input(py: Python<'_>, name: String, value: &Bound<'_, PyAny>, keep: &mut Vec<Py<PyAny>>) -> PyResult<Input> {
    let numpy = py.import("numpy")?;
    let mut array = numpy.getattr("asarray")?.call1((value,))?;
    let shape: Vec<u64> = array.getattr("shape")?.extract()?;
    let kind: String = array.getattr("dtype")?.getattr("kind")?.extract()?;
    if matches!(kind.as_str(), "O" | "S" | "U") {
        let values = strings(&name, &array.call_method0("ravel")?.call_method0("tolist")?)?;
        let tensor = SinkTensor::whole(TensorInfo::new(name, DType::String, shape));
        return Ok(Input { tensor, data: Data::Strings(values) });
    }
    let byteorder: String = array.getattr("dtype")?.getattr("byteorder")?.extract()?;
    if byteorder == ">" {
        let little = array.getattr("dtype")?.call_method1("newbyteorder", ("<",))?;
        array = array.call_method1("astype", (little,))?;
    }
    let array = numpy.getattr("ascontiguousarray")?.call1((array,))?;
    let dtype = dtypes::from_numpy(py, &array.getattr("dtype")?)?.ok_or_else(|| {
        let dt = array.getattr("dtype").map(|d| d.to_string()).unwrap_or_default();
        PyTypeError::new_err(format!("tensor {name:?}: numpy dtype {dt} has no warmstart equivalent"))
    })?;
    let address: usize = array.getattr("__array_interface__")?.get_item("data")?.get_item(0)?.extract()?;
    let len: usize = array.getattr("nbytes")?.extract()?;
    keep.push(array.unbind());
    Ok(Input { tensor: SinkTensor::whole(TensorInfo::new(name, dtype, shape)), data: Data::Numeric { address, len } })
}

/// The elements of a string array: `bytes`, or `str` (written as UTF-8).
fn strings(name: &str, list: &Bound<'_, PyAny>) -> PyResult<Vec<Vec<u8>>> {
    let mut values = Vec::new();
    for item in list.try_iter()? {
        let item = item?;
        if let Ok(b) = item.cast::<PyBytes>() {
            values.push(b.as_bytes().to_vec());
        } else if let Ok(s) = item.cast::<PyString>() {
            values.push(s.to_cow()?.as_bytes().to_vec());
        } else {
            return Err(PyTypeError::new_err(format!(
                "tensor {name:?}: a string tensor holds bytes or str, not {}",
                item.get_type()
            )));
        }
    }
    Ok(values)
}

/// Writes `inputs` into a new checkpoint at `path`; nothing is left on failure.
fn write(
    path: &Path,
    format: warmstart_core::Format,
    inputs: &[Input],
    opts: &WriteOptions,
) -> warmstart_core::Result<()> {
    let folders = match path.parent() {
        Some(parent) => CreatedFolders::create(parent)?,
        None => CreatedFolders::default(),
    };
    let tensors: Vec<SinkTensor> = inputs.iter().map(|i| i.tensor.clone()).collect();
    let mut sink = warmstart_formats::create_sink(path, format, &tensors, opts)?;
    for input in inputs {
        match &input.data {
            Data::Strings(values) => sink.write_strings(&input.tensor, values)?,
            Data::Numeric { address, len } => {
                let bytes: &[u8] = if *len == 0 {
                    &[]
                } else {
                    // SAFETY: `address` and `len` are the data pointer and `nbytes` of a C-contiguous numpy
                    // array that the caller holds (`keep` in `save`) until this returns, so the bytes stay
                    // allocated; an array with other references cannot be resized. Another Python
                    // thread may write into it meanwhile, as with any buffer a C extension reads
                    // without the GIL: the bytes written are then some mix of old and new values.
                    unsafe { std::slice::from_raw_parts(*address as *const u8, *len) }
                };
                sink.begin_tensor(&input.tensor)?;
                sink.write_data(bytes)?;
                sink.end_tensor()?;
            }
        }
    }
    sink.finish()?;
    folders.keep();
    Ok(())
}

/// Converts the checkpoint `src` into `dst`, in the format `to` names or `dst`'s name says; string
/// tensors the destination cannot store are left out with a warning. Ctrl-C stops it, leaving nothing.
#[pyfunction]
#[pyo3(signature = (src, dst, *, to=None, shards=None, max_shard_size=None))]
pub fn convert(
    py: Python<'_>,
    src: PathBuf,
    dst: PathBuf,
    to: Option<&str>,
    shards: Option<usize>,
    max_shard_size: Option<&str>,
) -> PyResult<()> {
    let max_shard_size = shard_size(max_shard_size)?;
    let out_format = output_format(&dst, to, max_shard_size)?;
    let source = py.detach(|| warmstart_formats::open(&src)).map_err(|e| errors::checkpoint(&e))?;
    let opts = WriteOptions { shards, max_shard_size, ..Default::default() };
    let report = work::cancellable(py, |token| {
        let source = CancellableSource::new(source.as_ref(), token);
        warmstart_formats::convert(&source, &dst, out_format, &opts)
    })?
    .map_err(|e| errors::checkpoint(&e))?;
    for skipped in &report.skipped {
        let message = format!("{}: skipped tensor {:?}: {}", dst.display(), skipped.name, skipped.reason);
        PyErr::warn(py, &py.get_type::<PyUserWarning>(), &std::ffi::CString::new(message).unwrap_or_default(), 1)?;
    }
    Ok(())
}
