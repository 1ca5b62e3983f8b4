"""`load_checkpoint` and `list_variables` on every reader fixture (TF bundles made by TensorFlow,
safetensors files by `safetensors`, HDF5 files by Keras and h5py): what TF's reader, or the library that
wrote the file, sees (the fixture's expected.json), in TF's shapes and numpy dtypes."""
import hashlib
import json

import numpy as np
import pytest

import warmstart
from conftest import FIXTURES, NUMPY_DTYPES


def cases(area):
    return sorted(p.name for p in (FIXTURES / area).iterdir() if (p / "expected.json").exists())


def expected_tensors(area, case):
    """(path to open, [entry with name, dtype, shape, ...]) of a fixture case."""
    folder = FIXTURES / area / case
    expected = json.loads((folder / "expected.json").read_text())
    if area == "tf":
        tensors = [dict(v, name=k) for k, v in expected["tensors"].items()]
        return folder / expected["checkpoint"], tensors, expected
    if area == "safetensors":
        return folder / expected["source"], expected.get("tensors"), expected
    return folder / expected["file"], expected["tensors"], expected


def check_tensor(reader, entry):
    name = entry["name"]
    assert reader.has_tensor(name) and name in reader
    assert reader.get_variable_to_shape_map()[name] == entry["shape"]
    assert reader.get_variable_to_dtype_map()[name] == NUMPY_DTYPES[entry["dtype"]]
    if "unreadable" in entry:
        # TF cannot read it either (a slice that does not cover its tensor).
        with pytest.raises(ValueError):
            reader.get_tensor(name)
        return
    array = reader.get_tensor(name)
    assert isinstance(array, np.ndarray)
    assert array.shape == tuple(entry["shape"]) and array.dtype == NUMPY_DTYPES[entry["dtype"]]
    if "strings" in entry:
        assert [v.hex() for v in array.ravel()] == entry["strings"]
    elif "values" in entry:
        assert [v.decode() for v in array.ravel()] == entry["values"]
    elif "hex" in entry:
        assert array.tobytes().hex() == entry["hex"]
    else:
        assert hashlib.sha256(array.tobytes()).hexdigest() == entry["sha256"], name


@pytest.mark.parametrize("area,case", [(a, c) for a in ["tf", "safetensors", "hdf5"] for c in cases(a)])
def test_reader_fixture(area, case):
    path, tensors, expected = expected_tensors(area, case)
    if tensors is None:
        # A file the library itself refuses (safetensors' F4): named, with the tensor.
        with pytest.raises(warmstart.CheckpointError) as refused:
            warmstart.load_checkpoint(path)
        assert expected["refused"]["tensor"] in str(refused.value) and path.name in str(refused.value)
        return
    with warmstart.load_checkpoint(path) as reader:
        assert reader.format == area
        assert sorted(reader.keys()) == sorted(t["name"] for t in tensors)
        for entry in tensors:
            check_tensor(reader, entry)
        if area == "safetensors":
            assert reader.metadata() == expected["metadata"]
    listed = warmstart.list_variables(path)
    assert listed == sorted((t["name"], t["shape"]) for t in tensors)


def test_a_scalar_has_shape_empty_and_strings_are_bytes():
    path, tensors, _ = expected_tensors("tf", "dtypes")
    reader = warmstart.load_checkpoint(path)
    scalar = reader.get_tensor("str_scalar")
    assert scalar.shape == () and scalar.dtype == object and scalar[()] == b"hello"
    assert reader.get_variable_to_shape_map()["str_scalar"] == []


def test_get_rows_reads_a_row_range():
    path, tensors, _ = expected_tensors("tf", "tf1_partitioned")
    reader = warmstart.load_checkpoint(path)
    for entry in tensors:
        if not entry["shape"] or entry["dtype"] == "STRING":
            continue
        whole = reader.get_tensor(entry["name"])
        rows = entry["shape"][0]
        for start, stop in [(0, rows), (rows // 2, rows), (1, 1)]:
            if stop <= rows and start <= stop:
                part = reader.get_rows(entry["name"], start, stop)
                assert part.shape == (stop - start, *whole.shape[1:])
                assert np.array_equal(part, whole[start:stop])
        with pytest.raises(IndexError):
            reader.get_rows(entry["name"], 0, rows + 1)
    strings = warmstart.load_checkpoint(expected_tensors("tf", "dtypes")[0])
    assert list(strings.get_rows("str_mat", 1, 2).ravel()) == list(strings.get_tensor("str_mat")[1:2].ravel())


def test_errors_are_python_exceptions(tmp_path):
    with pytest.raises(FileNotFoundError):
        warmstart.load_checkpoint(tmp_path / "missing.safetensors")
    with pytest.raises(FileNotFoundError):
        warmstart.list_variables(tmp_path / "missing" / "model.ckpt")
    reader = warmstart.load_checkpoint(expected_tensors("safetensors", "dtypes")[0])
    with pytest.raises(KeyError):
        reader.get_tensor("no such tensor")
    with pytest.raises(TypeError):
        reader.get_tensor(3)
    with pytest.raises(TypeError):
        warmstart.load_checkpoint(3)
    reader.close()
    with pytest.raises(ValueError):
        reader.keys()
