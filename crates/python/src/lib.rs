//! The `warmstart` Python module: TensorFlow's `warm_start`, `load_checkpoint` and `list_variables`, and
//! `save` and `convert`, for every format warmstart reads, without TensorFlow.
//!
//! The binding only turns Python arguments into the library's settings and calls the library crates:
//! the warm-start is [`warmstart::run_files`] and [`warmstart::plan_files`], reading is
//! [`warmstart_formats::open`], writing is [`warmstart_formats::create_sink`] and
//! [`warmstart_formats::convert`]. The modules:
//! - `args`: Python arguments to [`warmstart::WarmStartSettings`] (TF's `VocabInfo`, `Variable`s, ...);
//! - `errors`: the library's errors as Python exceptions (`WarmStartError`, `CheckpointError`, ...);
//! - `work`: long work on a thread of its own, with the GIL released and Ctrl-C turned into a
//!   [`CancelToken`](warmstart_core::cancel::CancelToken);
//! - `dtypes`: warmstart dtypes to numpy's and back;
//! - `reader`: `load_checkpoint`'s `CheckpointReader` and its zero-copy arrays;
//! - `save`: `save` and `convert`.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

mod args;
mod dtypes;
mod errors;
mod reader;
mod save;
mod warm;
mod work;

/// A variable named by its name, as TF's `Variable` objects are in a `vars_to_warm_start` list.
#[pyclass(module = "warmstart", frozen)]
struct Variable {
    #[pyo3(get)]
    name: String,
}

#[pymethods]
impl Variable {
    #[new]
    fn new(name: String) -> Self {
        Variable { name }
    }

    fn __repr__(&self) -> String {
        format!("warmstart.Variable({:?})", self.name)
    }
}

/// TF's `VocabInfo` (a namedtuple there too), with its defaults.
fn vocab_info_class<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
    let fields =
        ["new_vocab", "new_vocab_size", "num_oov_buckets", "old_vocab", "old_vocab_size", "backup_initializer", "axis"];
    let kwargs = PyDict::new(py);
    kwargs.set_item(
        "defaults",
        PyTuple::new(
            py,
            [(-1i64).into_pyobject(py)?.into_any(), py.None().into_bound(py), 0i64.into_pyobject(py)?.into_any()],
        )?,
    )?;
    kwargs.set_item("module", "warmstart")?;
    let class = py.import("collections")?.getattr("namedtuple")?.call(("VocabInfo", fields), Some(&kwargs))?;
    class.setattr(
        "__doc__",
        "TF's VocabInfo: the vocabularies of a variable to remap (new_vocab, new_vocab_size, num_oov_buckets, \
         old_vocab, old_vocab_size=-1, backup_initializer=None, axis=0).",
    )?;
    Ok(class)
}

#[pymodule]
#[pyo3(name = "warmstart")]
fn warmstart_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("WarmStartError", py.get_type::<errors::WarmStartError>())?;
    m.add("CheckpointError", py.get_type::<errors::CheckpointError>())?;
    m.add("VocabInfo", vocab_info_class(py)?)?;
    m.add_class::<Variable>()?;
    m.add_class::<reader::CheckpointReader>()?;
    m.add_function(wrap_pyfunction!(warm::warm_start, m)?)?;
    m.add_function(wrap_pyfunction!(warm::plan, m)?)?;
    m.add_function(wrap_pyfunction!(reader::load_checkpoint, m)?)?;
    m.add_function(wrap_pyfunction!(reader::list_variables, m)?)?;
    m.add_function(wrap_pyfunction!(save::save, m)?)?;
    m.add_function(wrap_pyfunction!(save::convert, m)?)?;
    Ok(())
}
