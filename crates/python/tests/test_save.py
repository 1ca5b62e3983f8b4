"""`save` and `convert`: files written by warmstart read back by the reference readers (safetensors'
own numpy loader, h5py), and TF bundles through `load_checkpoint` against what TensorFlow saw in its
own bundle of the same tensors (tests/fixtures/tf/dtypes, made by TensorFlow)."""
import hashlib
import json

import h5py
import ml_dtypes
import numpy as np
import pytest
import safetensors
import safetensors.numpy

import warmstart
from conftest import FIXTURES, files_under


def numeric_tensors():
    rng = np.random.default_rng(7)
    tensors = {
        "f32": rng.standard_normal((3, 4)).astype(np.float32),
        "f64": rng.standard_normal((2,)),
        "f16": rng.standard_normal((5, 1)).astype(np.float16),
        "i8": np.array([-128, 0, 127], dtype=np.int8),
        "u8": np.arange(6, dtype=np.uint8).reshape(2, 3),
        "i16": np.array([[-3], [4]], dtype=np.int16),
        "u16": np.array([65535], dtype=np.uint16),
        "i32": np.arange(-4, 4, dtype=np.int32).reshape(2, 2, 2),
        "u32": np.array([1, 2**32 - 1], dtype=np.uint32),
        "i64": np.array([-(2**63), 2**63 - 1], dtype=np.int64),
        "u64": np.array([2**64 - 1], dtype=np.uint64),
        "bool": np.array([True, False, True]),
        "scalar": np.float32(2.5),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "scope/nested": np.ones((2, 2), dtype=np.float32),
        # Not C-contiguous, and big-endian: written as the values, little-endian.
        "transposed": np.arange(6, dtype=np.float32).reshape(2, 3).T,
        "big_endian": np.arange(3, dtype=">i4"),
    }
    return tensors


def assert_same(got, want, name):
    want = np.asarray(want)
    assert got.shape == want.shape, name
    assert got.dtype == want.dtype.newbyteorder("="), name
    assert np.array_equal(got, want), name


def test_safetensors_read_back_by_safetensors(tmp_path):
    tensors = numeric_tensors()
    out = tmp_path / "sub" / "model.safetensors"
    warmstart.save(tensors, out, metadata={"format": "np", "k": "v"})
    back = safetensors.numpy.load_file(out)
    assert sorted(back) == sorted(tensors)
    for name, want in tensors.items():
        assert_same(back[name], want, name)
    with safetensors.safe_open(out, framework="numpy") as f:
        assert f.metadata() == {"format": "np", "k": "v"}
    assert warmstart.load_checkpoint(out).metadata() == {"format": "np", "k": "v"}


def test_hdf5_read_back_by_h5py(tmp_path):
    tensors = numeric_tensors()
    tensors["strings"] = np.array([b"a", b"", b"bc"], dtype=object)
    out = tmp_path / "model.h5"
    warmstart.save(tensors, str(out))
    with h5py.File(out, "r") as f:
        for name, want in tensors.items():
            got = f[name][()]
            if name == "strings":
                assert list(got) == list(want)
            else:
                assert_same(np.asarray(got), want, name)


def test_bfloat16_float8_and_complex_round_trip(tmp_path):
    tensors = {
        "bf16": np.array([1.5, -2.0, 3.0], dtype=ml_dtypes.bfloat16),
        "e4m3": np.array([0.5, -1.0], dtype=ml_dtypes.float8_e4m3fn),
        "e5m2": np.array([2.0], dtype=ml_dtypes.float8_e5m2),
        "c64": np.array([1 + 2j], dtype=np.complex64),
    }
    for out in [tmp_path / "a.safetensors", tmp_path / "tf" / "model.ckpt", tmp_path / "a.h5"]:
        if out.suffix == ".safetensors":
            saved = {k: v for k, v in tensors.items() if k != "c64"}
        elif out.suffix == ".h5":
            saved = {"c64": tensors["c64"]}
        else:
            saved = tensors
        warmstart.save(saved, out)
        reader = warmstart.load_checkpoint(out)
        for name, want in saved.items():
            got = reader.get_tensor(name)
            assert got.dtype == want.dtype and got.tobytes() == want.tobytes(), (out, name)


def test_tf_bundle_against_tensorflows_own(tmp_path):
    """The tensors of TensorFlow's dtypes bundle, saved by warmstart as a TF bundle, read back as
    TensorFlow read its own (expected.json): every dtype, shape and byte, strings included."""
    folder = FIXTURES / "tf" / "dtypes"
    expected = json.loads((folder / "expected.json").read_text())["tensors"]
    source = warmstart.load_checkpoint(folder / "all")
    tensors = {name: source.get_tensor(name) for name in source.keys()}
    prefix = tmp_path / "out" / "model.ckpt"
    warmstart.save(tensors, prefix, shards=2)
    assert (tmp_path / "out" / "model.ckpt.data-00001-of-00002").is_file()
    reader = warmstart.load_checkpoint(prefix)
    assert reader.format == "tf"
    assert sorted(reader.keys()) == sorted(expected)
    for name, entry in expected.items():
        got = reader.get_tensor(name)
        assert list(got.shape) == entry["shape"], name
        if "strings" in entry:
            assert [v.hex() for v in got.ravel()] == entry["strings"], name
        else:
            assert hashlib.sha256(got.tobytes()).hexdigest() == entry["sha256"], name


def test_convert_between_formats(tmp_path):
    """safetensors' dtypes file into a new safetensors file, TensorFlow's into a TF bundle and on into
    safetensors and HDF5: every tensor as the library that wrote it saw it (expected.json; safetensors'
    own numpy loader has no float8 FNUZ types to compare with)."""
    for area, source, dst in [
        ("safetensors", "model.safetensors", tmp_path / "copy.safetensors"),
        ("tf", "all", tmp_path / "tf" / "model.ckpt"),
    ]:
        folder = FIXTURES / area / "dtypes"
        expected = json.loads((folder / "expected.json").read_text())["tensors"]
        if isinstance(expected, dict):
            expected = [dict(v, name=k) for k, v in expected.items()]
        warmstart.convert(folder / source, dst)
        back = warmstart.load_checkpoint(dst)
        assert sorted(back.keys()) == sorted(t["name"] for t in expected)
        for entry in expected:
            got = back.get_tensor(entry["name"])
            assert list(got.shape) == entry["shape"]
            if "strings" in entry:
                assert [v.hex() for v in got.ravel()] == entry["strings"], entry["name"]
            else:
                assert hashlib.sha256(got.tobytes()).hexdigest() == entry["sha256"], entry["name"]
    # TensorFlow's partitioned variables, joined, read back by h5py.
    source = FIXTURES / "tf" / "tf1_partitioned"
    warmstart.convert(source, tmp_path / "copy.h5", to="hdf5")
    reader = warmstart.load_checkpoint(source)
    with h5py.File(tmp_path / "copy.h5", "r") as f:
        assert sorted(f.keys()) == sorted(reader.keys())
        for name in reader.keys():
            want = reader.get_tensor(name)
            assert np.array_equal(f[name][()], want) and f[name].dtype == want.dtype, name
    # A dtype TF bundles cannot hold: refused, naming the tensor, and nothing is left.
    with pytest.raises(warmstart.CheckpointError, match="t_f8_e8m0"):
        warmstart.convert(FIXTURES / "safetensors" / "dtypes" / "model.safetensors", tmp_path / "x" / "model.ckpt")
    assert not (tmp_path / "x").exists()
    # Strings cannot go into safetensors: left out, with a warning.
    warmstart.save({"vocab": np.array([b"a", b"b"], dtype=object), "w": np.ones(2)}, tmp_path / "s" / "model.ckpt")
    with pytest.warns(UserWarning, match="vocab"):
        warmstart.convert(tmp_path / "s" / "model.ckpt", tmp_path / "no_strings.safetensors")
    assert list(safetensors.numpy.load_file(tmp_path / "no_strings.safetensors")) == ["w"]


def test_bad_arguments_leave_nothing(empty_dir):
    out = empty_dir / "x" / "y" / "model.safetensors"
    with pytest.raises(TypeError):
        warmstart.save({1: np.zeros(2)}, out)
    with pytest.raises(TypeError):
        warmstart.save({"t": np.array(["2020-01-01"], dtype="datetime64[D]")}, out)
    with pytest.raises(TypeError):
        warmstart.save([("t", np.zeros(2))], out)
    with pytest.raises(TypeError):
        warmstart.save({"s": np.array([1, "a"], dtype=object)}, empty_dir / "model.h5")
    # safetensors has no string tensors.
    with pytest.raises(warmstart.CheckpointError):
        warmstart.save({"s": np.array([b"a"], dtype=object)}, out)
    with pytest.raises(ValueError, match="onnx"):
        warmstart.save({"t": np.zeros(2)}, out, to="onnx")
    with pytest.raises(warmstart.CheckpointError):
        warmstart.save({"t": np.zeros(2)}, empty_dir / "model.bin")
    with pytest.raises(warmstart.CheckpointError):
        warmstart.save({"t": np.zeros(2)}, out, shards=2)
    with pytest.raises(FileNotFoundError):
        warmstart.convert(empty_dir / "missing.safetensors", out)
    assert files_under(empty_dir) == []
