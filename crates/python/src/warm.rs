//! `warm_start` and `plan`: TF's `tf.compat.v1.train.warm_start` signature plus `target=` and
//! `output=`, carried out by [`warmstart::run_files`] and [`warmstart::plan_files`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use pyo3::prelude::*;
use warmstart::{Format, OutputOptions, RunOptions};

use crate::args::WarmStartArgs;
use crate::{errors, work};

/// JSON text as Python objects (through the standard `json` module).
pub fn from_json<'py>(py: Python<'py>, value: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    py.import("json")?.getattr("loads")?.call1((value.to_string(),))
}

/// A format name (`to=`) as a [`Format`]: `ValueError` if unknown.
pub fn format(to: Option<&str>) -> PyResult<Option<Format>> {
    to.map(|name| name.parse::<Format>().map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string())))
        .transpose()
}

/// Warm-starts `target` from `ckpt_to_initialize_from` as TF's `warm_start` would, writing `output`.
#[pyfunction]
#[pyo3(signature = (
    ckpt_to_initialize_from, vars_to_warm_start=VarsArg::Default, var_name_to_vocab_info=None,
    var_name_to_prev_var_name=None, *, target, output, non_trainable=None, to=None, shards=None, format=None
), text_signature = "(ckpt_to_initialize_from, vars_to_warm_start='.*', var_name_to_vocab_info=None, \
    var_name_to_prev_var_name=None, *, target, output, non_trainable=None, to=None, shards=None, format=None)")]
#[allow(clippy::too_many_arguments)]
pub fn warm_start<'py>(
    py: Python<'py>,
    ckpt_to_initialize_from: PathBuf,
    vars_to_warm_start: VarsArg<'py>,
    var_name_to_vocab_info: Option<BTreeMap<String, Bound<'py, PyAny>>>,
    var_name_to_prev_var_name: Option<BTreeMap<String, String>>,
    target: PathBuf,
    output: PathBuf,
    non_trainable: Option<Vec<String>>,
    to: Option<&str>,
    shards: Option<usize>,
    format: Option<&str>,
) -> PyResult<Bound<'py, PyAny>> {
    let vars = default_vars(py, vars_to_warm_start);
    let settings = WarmStartArgs {
        ckpt_to_initialize_from,
        vars_to_warm_start: vars.as_ref(),
        var_name_to_vocab_info,
        var_name_to_prev_var_name,
        target,
        non_trainable,
        format: self::format(format)?,
    }
    .settings()?;
    // As on the command line: `to=`, else the name, else the target's format (safetensors for a format
    // warmstart only reads).
    let target_format = warmstart_formats::detect_preferring(&settings.target.resolve(), settings.format)
        .map_err(|e| errors::checkpoint(&e))?;
    let (out_format, _) = warmstart_formats::choose_destination_format(&output, self::format(to)?, target_format);
    let output_options = OutputOptions { format: Some(out_format), shards, ..Default::default() };
    let result = work::cancellable(py, |token| {
        let options = RunOptions { cancel: Some(token), ..Default::default() };
        warmstart::run_files(&settings, &output, &output_options, &options)
    })?;
    let (plan, report) = result.map_err(|e| errors::warm_start(py, &e))?;
    let value = serde_json::json!({ "out": output, "format": out_format.name(), "report": report, "plan": plan });
    from_json(py, &value)
}

/// `vars_to_warm_start` as given: TF's default `".*"` when left out, which an explicit `None` (TF's
/// "only the variables with vocabularies") is not.
pub enum VarsArg<'py> {
    /// Not given: `".*"`.
    Default,
    /// Given: `None` or a value.
    Given(Option<Bound<'py, PyAny>>),
}

impl<'a, 'py> FromPyObject<'a, 'py> for VarsArg<'py> {
    type Error = PyErr;

    fn extract(obj: pyo3::Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        Ok(VarsArg::Given((!obj.is_none()).then(|| obj.to_owned())))
    }
}

fn default_vars<'py>(py: Python<'py>, given: VarsArg<'py>) -> Option<Bound<'py, PyAny>> {
    match given {
        VarsArg::Default => Some(pyo3::types::PyString::new(py, ".*").into_any()),
        VarsArg::Given(v) => v,
    }
}

/// The plan of that warm-start (the dry run): one entry per target variable, what it gets and why.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
#[pyo3(signature = (
    ckpt_to_initialize_from, vars_to_warm_start=VarsArg::Default, var_name_to_vocab_info=None,
    var_name_to_prev_var_name=None, *, target, non_trainable=None, format=None
), text_signature = "(ckpt_to_initialize_from, vars_to_warm_start='.*', var_name_to_vocab_info=None, \
    var_name_to_prev_var_name=None, *, target, non_trainable=None, format=None)")]
pub fn plan<'py>(
    py: Python<'py>,
    ckpt_to_initialize_from: PathBuf,
    vars_to_warm_start: VarsArg<'py>,
    var_name_to_vocab_info: Option<BTreeMap<String, Bound<'py, PyAny>>>,
    var_name_to_prev_var_name: Option<BTreeMap<String, String>>,
    target: PathBuf,
    non_trainable: Option<Vec<String>>,
    format: Option<&str>,
) -> PyResult<Bound<'py, PyAny>> {
    let vars = default_vars(py, vars_to_warm_start);
    let settings = WarmStartArgs {
        ckpt_to_initialize_from,
        vars_to_warm_start: vars.as_ref(),
        var_name_to_vocab_info,
        var_name_to_prev_var_name,
        target,
        non_trainable,
        format: self::format(format)?,
    }
    .settings()?;
    let plan = py.detach(|| warmstart::plan_files(&settings)).map_err(|e| errors::warm_start(py, &e))?;
    let value = serde_json::to_value(&plan).map_err(|e| errors::CheckpointError::new_err(e.to_string()))?;
    from_json(py, &value["variables"])
}
