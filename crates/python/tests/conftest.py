"""Shared helpers of the warmstart Python tests: where the fixtures are (made by TensorFlow, h5py and
safetensors through the generators in tests/fixtures), and the numpy dtype of each warmstart dtype name
as the fixtures' expected.json files spell them."""
import pathlib

import ml_dtypes
import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
FIXTURES = REPO / "tests" / "fixtures"

# The dtype TensorFlow's reader (and numpy, ml_dtypes) gives for each warmstart dtype name.
NUMPY_DTYPES = {
    "BOOL": np.dtype(np.bool_),
    "U8": np.dtype(np.uint8),
    "I8": np.dtype(np.int8),
    "U16": np.dtype(np.uint16),
    "I16": np.dtype(np.int16),
    "U32": np.dtype(np.uint32),
    "I32": np.dtype(np.int32),
    "U64": np.dtype(np.uint64),
    "I64": np.dtype(np.int64),
    "F16": np.dtype(np.float16),
    "F32": np.dtype(np.float32),
    "F64": np.dtype(np.float64),
    "C64": np.dtype(np.complex64),
    "C128": np.dtype(np.complex128),
    "BF16": np.dtype(ml_dtypes.bfloat16),
    "F8_E5M2": np.dtype(ml_dtypes.float8_e5m2),
    "F8_E4M3": np.dtype(ml_dtypes.float8_e4m3fn),
    "F8_E8M0": np.dtype(ml_dtypes.float8_e8m0fnu),
    "F8_E4M3FNUZ": np.dtype(ml_dtypes.float8_e4m3fnuz),
    "F8_E5M2FNUZ": np.dtype(ml_dtypes.float8_e5m2fnuz),
    "STRING": np.dtype(object),
}


def files_under(path):
    """Every file and folder under `path`, relative, sorted."""
    return sorted(str(p.relative_to(path)) for p in pathlib.Path(path).rglob("*"))


@pytest.fixture
def empty_dir(tmp_path):
    """A folder that must be empty when the test ends (nothing left behind)."""
    yield tmp_path
    assert files_under(tmp_path) == [], "left behind"
