"""PyTorch and NumPy checkpoints through `load_checkpoint`, against what `torch.load` and `np.load` read
from the same files (tests/fixtures/torch/<case>/expected.json by gen_torch.py, tests/fixtures/numpy by
gen_numpy.py); the files those readers must refuse raise `CheckpointError` naming the file; and
`save(..., to="numpy")` read back by `numpy.load`."""
import hashlib
import json

import numpy as np
import pytest

import warmstart
from conftest import FIXTURES, NUMPY_DTYPES
from test_save import assert_same, numeric_tensors

TORCH = FIXTURES / "torch"
TORCH_CASES = sorted(p.parent.name for p in TORCH.glob("*/expected.json"))
TORCH_READ = [c for c in TORCH_CASES if "tensors" in json.loads((TORCH / c / "expected.json").read_text())]
TORCH_REFUSED = [c for c in TORCH_CASES if c not in TORCH_READ]
NUMPY = FIXTURES / "numpy"
NUMPY_READ = sorted(str(p.relative_to(NUMPY)) for p in NUMPY.glob("*/*.json") if p.parent.name != "refused")


def le_bytes(array):
    """The array's values as C-order little-endian bytes (the generators' spelling)."""
    array = np.ascontiguousarray(array)
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return array.tobytes()


def assert_reads_as(reader, tensors, digest):
    assert reader.keys() == [t["name"] for t in tensors]
    dtypes = reader.get_variable_to_dtype_map()
    shapes = reader.get_variable_to_shape_map()
    for t in tensors:
        name, want_dtype = t["name"], NUMPY_DTYPES[t["dtype"]]
        for copy in (False, True):
            got = reader.get_tensor(name, copy=copy)
            assert got.dtype == want_dtype and dtypes[name] == want_dtype, name
            assert list(got.shape) == t["shape"] == shapes[name], name
            assert digest(le_bytes(got)) == t.get("sha256", t.get("hex")), name


def test_the_fixtures_are_there():
    assert TORCH_READ == ["bigendian", "nested", "plain", "protocol5", "sharded", "tied", "views"]
    assert TORCH_REFUSED == ["disallowed", "legacy"]
    assert len(NUMPY_READ) == 7


@pytest.mark.parametrize("case", TORCH_READ)
def test_torch_reads_as_torch_load_reads_it(case):
    expected = json.loads((TORCH / case / "expected.json").read_text())
    with warmstart.load_checkpoint(TORCH / case / expected["source"]) as reader:
        assert reader.format == "torch"
        assert_reads_as(reader, expected["tensors"], lambda b: hashlib.sha256(b).hexdigest())


@pytest.mark.parametrize("case", TORCH_REFUSED)
def test_torch_refused(case):
    expected = json.loads((TORCH / case / "expected.json").read_text())
    path = TORCH / case / expected["source"]
    for call in (warmstart.load_checkpoint, warmstart.list_variables):
        with pytest.raises(warmstart.CheckpointError) as refused:
            call(path)
        message = str(refused.value)
        assert str(path) in message, message
        if "global" in expected["refused"]:
            assert expected["refused"]["global"] in message, message
        else:
            assert "legacy PyTorch format" in message, message


@pytest.mark.parametrize("case", NUMPY_READ)
def test_numpy_reads_as_np_load_reads_it(case):
    expected = json.loads((NUMPY / case).read_text())
    with warmstart.load_checkpoint((NUMPY / case).parent / expected["file"]) as reader:
        assert reader.format == "numpy"
        assert_reads_as(reader, expected["tensors"], bytes.hex)


@pytest.mark.parametrize("name, kind", sorted(json.loads((NUMPY / "refused" / "refused.json").read_text()).items()))
def test_numpy_refused(name, kind):
    path = NUMPY / "refused" / name
    with pytest.raises(warmstart.CheckpointError) as refused:
        warmstart.load_checkpoint(path)
    assert str(path) in str(refused.value) and kind in str(refused.value), str(refused.value)


@pytest.mark.parametrize("how", ["name", "to"])
def test_npz_output_read_back_by_numpy(tmp_path, how):
    tensors = numeric_tensors()
    out = tmp_path / ("model.npz" if how == "name" else "model.bin")
    warmstart.save(tensors, out, **({"to": "numpy"} if how == "to" else {}))
    with np.load(out) as back:
        assert sorted(back.files) == sorted(tensors)
        for name, want in tensors.items():
            assert_same(back[name], want, name)


@pytest.mark.parametrize("case", ["views", "protocol5", "tied"])
def test_torch_converted_to_npz_read_back_by_numpy(tmp_path, case):
    expected = json.loads((TORCH / case / "expected.json").read_text())
    out = tmp_path / f"{case}.npz"
    warmstart.convert(TORCH / case / expected["source"], out)
    with np.load(out) as back:
        assert back.files == [t["name"] for t in expected["tensors"]]
        for t in expected["tensors"]:
            got = back[t["name"]]
            assert got.dtype == NUMPY_DTYPES[t["dtype"]] and list(got.shape) == t["shape"], t["name"]
            assert hashlib.sha256(le_bytes(got)).hexdigest() == t["sha256"], t["name"]


def test_a_dtype_numpy_lacks_is_refused_leaving_nothing(empty_dir):
    with pytest.raises(warmstart.CheckpointError, match='"bf16".*numpy has no BF16'):
        warmstart.convert(TORCH / "plain" / "model.pt", empty_dir / "plain.npz")
