//! The arguments of `warm_start` and `plan`, TF's, as a [`WarmStartSettings`]:
//! - `vars_to_warm_start`: a regex string, a list of regex strings, a list of objects with a `name`
//!   (`tf.Variable`, `warmstart.Variable`; a trailing `:0` is dropped), or `None`;
//! - `var_name_to_vocab_info`: names to any object with `VocabInfo`'s attributes;
//! - `backup_initializer`: `None`, `"zeros"`, `"ones"`, `"initial"`, a number, an object with a `value`
//!   (TF's `constant_initializer`), or an object whose class is `Zeros` or `Ones`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt, PyString};
use warmstart::{BackupInitializer, ConfigPath, VarsToWarmStart, VocabSettings, WarmStartSettings};

/// The settings of one `warm_start` or `plan` call.
pub struct WarmStartArgs<'a, 'py> {
    pub ckpt_to_initialize_from: PathBuf,
    pub vars_to_warm_start: Option<&'a Bound<'py, PyAny>>,
    pub var_name_to_vocab_info: Option<BTreeMap<String, Bound<'py, PyAny>>>,
    pub var_name_to_prev_var_name: Option<BTreeMap<String, String>>,
    pub target: PathBuf,
    pub non_trainable: Option<Vec<String>>,
    /// The configuration's `format`: the one to open in a folder holding checkpoints of several formats.
    pub format: Option<warmstart::Format>,
}

/// A path as the messages show it: as given.
fn given(path: &std::path::Path) -> String {
    path.to_string_lossy().into_owned()
}

impl WarmStartArgs<'_, '_> {
    /// The library's settings.
    pub fn settings(self) -> PyResult<WarmStartSettings> {
        let mut settings = WarmStartSettings::new(given(&self.ckpt_to_initialize_from), given(&self.target));
        settings.vars_to_warm_start = match self.vars_to_warm_start {
            None => VarsToWarmStart::Nothing,
            Some(v) => vars_to_warm_start(v)?,
        };
        settings.var_name_to_prev_var_name = self.var_name_to_prev_var_name.unwrap_or_default();
        for (name, info) in self.var_name_to_vocab_info.unwrap_or_default() {
            let vocab = vocab_settings(&name, &info)?;
            settings.var_name_to_vocab_info.insert(name, vocab);
        }
        settings.non_trainable = self.non_trainable.unwrap_or_default();
        settings.format = self.format;
        Ok(settings)
    }
}

/// TF's `vars_to_warm_start` (not `None`).
fn vars_to_warm_start(value: &Bound<'_, PyAny>) -> PyResult<VarsToWarmStart> {
    if let Ok(s) = value.cast::<PyString>() {
        return Ok(VarsToWarmStart::Regex(s.to_cow()?.to_string()));
    }
    let items: Vec<Bound<'_, PyAny>> = value.extract().map_err(|_| {
        PyTypeError::new_err(format!(
            "vars_to_warm_start must be a regex string, a list of regex strings, a list of variables or None, \
             not {}",
            type_name(value)
        ))
    })?;
    if items.iter().all(|i| i.is_instance_of::<PyString>()) {
        return Ok(VarsToWarmStart::List(items.iter().map(|i| i.extract()).collect::<PyResult<_>>()?));
    }
    let mut names = Vec::with_capacity(items.len());
    for item in &items {
        let name = item.getattr("name").ok().and_then(|n| n.extract::<String>().ok()).ok_or_else(|| {
            PyTypeError::new_err(format!(
                "vars_to_warm_start: a list holds either regex strings or variables (objects with a name), \
                 not {}",
                type_name(item)
            ))
        })?;
        names.push(name.strip_suffix(":0").map(str::to_string).unwrap_or(name));
    }
    Ok(VarsToWarmStart::Variables(names))
}

fn type_name(value: &Bound<'_, PyAny>) -> String {
    value.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into())
}

/// One `VocabInfo`-shaped object.
fn vocab_settings(variable: &str, info: &Bound<'_, PyAny>) -> PyResult<VocabSettings> {
    let field = |name: &str| {
        info.getattr(name).map_err(|_| {
            PyTypeError::new_err(format!(
                "var_name_to_vocab_info[{variable:?}]: {} has no attribute {name:?} (use warmstart.VocabInfo)",
                type_name(info)
            ))
        })
    };
    let int = |name: &str| -> PyResult<i64> {
        field(name)?
            .extract()
            .map_err(|_| PyTypeError::new_err(format!("var_name_to_vocab_info[{variable:?}].{name} must be an int")))
    };
    let path = |name: &str| -> PyResult<ConfigPath> {
        let path: PathBuf = field(name)?
            .extract()
            .map_err(|_| PyTypeError::new_err(format!("var_name_to_vocab_info[{variable:?}].{name} must be a path")))?;
        Ok(ConfigPath::new(given(&path)))
    };
    Ok(VocabSettings {
        new_vocab: path("new_vocab")?,
        new_vocab_size: int("new_vocab_size")?,
        num_oov_buckets: int("num_oov_buckets")?,
        old_vocab: path("old_vocab")?,
        old_vocab_size: int("old_vocab_size")?,
        backup_initializer: backup_initializer(variable, &field("backup_initializer")?)?,
        axis: int("axis")?,
    })
}

/// A `backup_initializer`, in any of the forms the module doc lists.
fn backup_initializer(variable: &str, value: &Bound<'_, PyAny>) -> PyResult<BackupInitializer> {
    if value.is_none() {
        return Ok(BackupInitializer::Zeros);
    }
    if let Ok(s) = value.cast::<PyString>() {
        return match &*s.to_cow()? {
            "zeros" => Ok(BackupInitializer::Zeros),
            "ones" => Ok(BackupInitializer::Ones),
            "initial" => Ok(BackupInitializer::Initial),
            other => Err(PyValueError::new_err(format!(
                "var_name_to_vocab_info[{variable:?}].backup_initializer: unknown value {other:?}, expected \
                 \"zeros\", \"ones\", \"initial\", a number or an initializer"
            ))),
        };
    }
    if let Some(x) = number(value) {
        // Rounded to float32 as TF's constant initializer does.
        return Ok(BackupInitializer::Constant(x as f32));
    }
    if let Some(x) = value.getattr("value").ok().as_ref().and_then(number) {
        return Ok(BackupInitializer::Constant(x as f32));
    }
    match type_name(value).as_str() {
        "Zeros" => Ok(BackupInitializer::Zeros),
        "Ones" => Ok(BackupInitializer::Ones),
        _ => Err(PyTypeError::new_err(format!(
            "var_name_to_vocab_info[{variable:?}].backup_initializer: {} is not an initializer warmstart knows \
             (None, \"zeros\", \"ones\", \"initial\", a number, constant_initializer(x), Zeros(), Ones())",
            type_name(value)
        ))),
    }
}

/// A Python int or float (not a bool), as f64.
fn number(value: &Bound<'_, PyAny>) -> Option<f64> {
    let numeric =
        (value.is_instance_of::<PyFloat>() || value.is_instance_of::<PyInt>()) && !value.is_instance_of::<PyBool>();
    // numpy scalars have `__float__` but are not Python floats: taken too.
    let numpy_scalar = value.hasattr("dtype").unwrap_or(false) && value.hasattr("__float__").unwrap_or(false);
    (numeric || numpy_scalar).then(|| value.extract::<f64>().ok()).flatten()
}
