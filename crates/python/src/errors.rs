//! The library's errors as Python exceptions:
//! - TF's refusals: `WarmStartError` (a `ValueError`), TF's message, with `tf_class` (the class TF raised,
//!   `re.error`'s `"error"` for a bad pattern, or `None` for a refusal past what TF can express) and
//!   `variable`;
//! - a damaged or unsupported checkpoint: `CheckpointError` (a `ValueError`), naming the file and the
//!   tensor;
//! - a missing file: `FileNotFoundError`; a tensor not in the checkpoint: `KeyError`.

use pyo3::exceptions::{PyFileNotFoundError, PyKeyError, PyValueError};
use pyo3::prelude::*;
use warmstart::{Error, ExecError, PlanError};

pyo3::create_exception!(
    warmstart,
    WarmStartError,
    PyValueError,
    "TensorFlow's refusal of a warm-start, with TF's message; `tf_class` names the class TF raised and \
     `variable` the variable (or pattern) it is about."
);

pyo3::create_exception!(
    warmstart,
    CheckpointError,
    PyValueError,
    "A checkpoint that cannot be read or written (damaged, unsupported, or changed while read); the \
     message names the file and the tensor."
);

/// TF's refusal `e` as a `WarmStartError`.
pub fn refusal(py: Python<'_>, e: &PlanError) -> PyErr {
    let err = WarmStartError::new_err(e.to_string());
    let value = err.value(py);
    // Setting attributes on a fresh exception instance cannot fail but for memory; then the exception
    // goes without them.
    let _ = value.setattr("tf_class", e.tf_class());
    let _ = value.setattr("variable", e.variable());
    err
}

/// A checkpoint error as the Python exception a caller expects.
pub fn checkpoint(e: &warmstart_core::Error) -> PyErr {
    match e {
        warmstart_core::Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            PyFileNotFoundError::new_err(e.to_string())
        }
        warmstart_core::Error::TensorNotFound { .. } => PyKeyError::new_err(e.to_string()),
        _ => CheckpointError::new_err(e.to_string()),
    }
}

/// A warm-start error as a Python exception.
pub fn warm_start(py: Python<'_>, e: &Error) -> PyErr {
    match e {
        Error::Refused(e) => refusal(py, e),
        Error::Checkpoint(e) => checkpoint(e),
        Error::Exec(ExecError::Checkpoint(e)) => checkpoint(e),
        Error::Exec(ExecError::Plan(e)) => refusal(py, e),
        other => CheckpointError::new_err(other.to_string()),
    }
}

/// A porting failure ([`warmstart_rules::RulesError`]): the checkpoint's own error as [`checkpoint`]
/// raises it, anything else (two tensors given one name) as `CheckpointError`.
pub fn rules(e: &warmstart_rules::RulesError) -> PyErr {
    match e {
        warmstart_rules::RulesError::Checkpoint(inner) => checkpoint(inner),
        other => CheckpointError::new_err(other.to_string()),
    }
}
