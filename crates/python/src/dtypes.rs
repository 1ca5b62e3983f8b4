//! warmstart's dtypes as numpy's, little-endian: the standard ones from numpy, bfloat16 and the float8
//! types from `ml_dtypes` (as TensorFlow and JAX give them), strings as `object` (arrays of `bytes`, as
//! TF's reader returns them). And back, by comparing a numpy dtype with each of them.

use pyo3::prelude::*;
use warmstart_core::DType;

use crate::errors::CheckpointError;

/// Where numpy (or `ml_dtypes`) has the dtype: a module and the name to ask it for.
fn numpy_name(dtype: DType) -> Option<(&'static str, &'static str)> {
    Some(match dtype {
        DType::Bool => ("numpy", "|b1"),
        DType::U8 => ("numpy", "|u1"),
        DType::I8 => ("numpy", "|i1"),
        DType::U16 => ("numpy", "<u2"),
        DType::I16 => ("numpy", "<i2"),
        DType::U32 => ("numpy", "<u4"),
        DType::I32 => ("numpy", "<i4"),
        DType::U64 => ("numpy", "<u8"),
        DType::I64 => ("numpy", "<i8"),
        DType::F16 => ("numpy", "<f2"),
        DType::F32 => ("numpy", "<f4"),
        DType::F64 => ("numpy", "<f8"),
        DType::C64 => ("numpy", "<c8"),
        DType::C128 => ("numpy", "<c16"),
        DType::String => ("numpy", "object"),
        DType::BF16 => ("ml_dtypes", "bfloat16"),
        DType::F8E5M2 => ("ml_dtypes", "float8_e5m2"),
        DType::F8E4M3 => ("ml_dtypes", "float8_e4m3fn"),
        DType::F8E8M0 => ("ml_dtypes", "float8_e8m0fnu"),
        DType::F8E4M3Fnuz => ("ml_dtypes", "float8_e4m3fnuz"),
        DType::F8E5M2Fnuz => ("ml_dtypes", "float8_e5m2fnuz"),
        _ => return None,
    })
}

/// The numpy dtype of `dtype`; `CheckpointError` for one numpy cannot hold.
pub fn to_numpy<'py>(py: Python<'py>, dtype: DType) -> PyResult<Bound<'py, PyAny>> {
    let (module, name) =
        numpy_name(dtype).ok_or_else(|| CheckpointError::new_err(format!("dtype {dtype} has no numpy equivalent")))?;
    let numpy_dtype = py.import("numpy")?.getattr("dtype")?;
    if module == "numpy" {
        numpy_dtype.call1((name,))
    } else {
        numpy_dtype.call1((py.import(module)?.getattr(name)?,))
    }
}

/// The type string of numpy's array interface for a numeric `dtype`: numpy's own, or, for the
/// `ml_dtypes` types (which have none numpy parses), plain bytes of their size, to be viewed as the type.
pub fn typestr(dtype: DType) -> String {
    match numpy_name(dtype) {
        Some(("numpy", name)) => name.to_string(),
        _ => format!("|V{}", dtype.size().unwrap_or(1)),
    }
}

/// The warmstart dtype of a numpy dtype (little-endian or native), or `None` if it has none.
pub fn from_numpy(py: Python<'_>, dtype: &Bound<'_, PyAny>) -> PyResult<Option<DType>> {
    for candidate in DType::ALL {
        // ml_dtypes missing: its dtypes cannot be what the array has.
        let Ok(numpy) = to_numpy(py, candidate) else { continue };
        if candidate != DType::String && numpy.eq(dtype)? {
            return Ok(Some(candidate));
        }
    }
    Ok(None)
}
