"""`save(..., max_shard_size=)` and `convert(..., max_shard_size=)`: safetensors split by size, against
what huggingface_hub and transformers split the same tensors into at the same size
(tests/fixtures/safetensors_shards, made by tests/fixtures/gen_safetensors_shards.py)."""
import json

import numpy as np
import pytest
import safetensors
import safetensors.numpy

import warmstart
from conftest import FIXTURES

SHARDS = FIXTURES / "safetensors_shards"
INPUT = SHARDS / "input" / "model.safetensors"
CASES = sorted(p.parent.name for p in SHARDS.glob("*/case.json"))


def file_order(path):
    """The tensor names of a safetensors file in the order of their data (the generator's order)."""
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    header.pop("__metadata__", None)
    return sorted(header, key=lambda k: header[k]["data_offsets"][0])


def input_tensors():
    loaded = safetensors.numpy.load_file(INPUT)
    return {name: loaded[name] for name in file_order(INPUT)}


def assert_like_fixture(out, case):
    """`out` has the fixture's files, the same index, and each shard (read by safetensors) holds the
    fixture shard's tensors with the input's values."""
    want_dir = SHARDS / case
    want_files = sorted(p.name for p in want_dir.iterdir() if p.name != "case.json")
    assert sorted(p.name for p in out.iterdir()) == want_files, case
    index = want_dir / "model.safetensors.index.json"
    if index.exists():
        assert json.loads((out / index.name).read_text()) == json.loads(index.read_text()), case
    tensors = input_tensors()
    for shard in (n for n in want_files if n.endswith(".safetensors")):
        got = safetensors.numpy.load_file(out / shard)
        want = safetensors.numpy.load_file(want_dir / shard)
        assert sorted(got) == sorted(want), (case, shard)
        for name, array in got.items():
            assert array.dtype == tensors[name].dtype and array.shape == tensors[name].shape, name
            assert np.array_equal(array.view(np.uint8), tensors[name].view(np.uint8)), name
        with safetensors.safe_open(out / shard, framework="numpy") as f:
            assert f.metadata() == {"format": "pt"}, (case, shard)


def test_the_cases_are_there():
    assert CASES == ["kb2_5", "kb5", "kib3", "mb1"]


@pytest.mark.parametrize("case", CASES)
def test_save_splits_as_hugging_face_does(tmp_path, case):
    size = json.loads((SHARDS / case / "case.json").read_text())["max_shard_size"]
    out = tmp_path / "model"
    warmstart.save(input_tensors(), out, metadata={"format": "pt"}, max_shard_size=size)
    assert_like_fixture(out, case)


@pytest.mark.parametrize("case", CASES)
def test_convert_splits_as_hugging_face_does(tmp_path, case):
    size = json.loads((SHARDS / case / "case.json").read_text())["max_shard_size"]
    out = tmp_path / "model"
    warmstart.convert(INPUT, out, max_shard_size=size)
    assert_like_fixture(out, case)
    # The shards read back as one checkpoint equal to the input.
    reader = warmstart.load_checkpoint(out)
    for name, want in input_tensors().items():
        assert np.array_equal(reader.get_tensor(name).view(np.uint8), want.view(np.uint8)), name


def test_sizes_are_read_as_the_cli_reads_them(tmp_path):
    # Strings the Hugging Face libraries refuse are refused; the others split the same way.
    sizes = json.loads((SHARDS / "sizes.json").read_text())
    for given, parsed in sizes.items():
        out = tmp_path / "out"
        if parsed is None:
            with pytest.raises(ValueError, match="shard size"):
                warmstart.save({"a": np.zeros(3, np.float32)}, out, max_shard_size=given)
            assert not out.exists()
    with pytest.raises(ValueError, match="shard size"):
        warmstart.convert(INPUT, tmp_path / "bad", max_shard_size="0")
    assert not (tmp_path / "bad").exists()


def test_max_shard_size_is_for_safetensors_only(tmp_path):
    with pytest.raises(warmstart.CheckpointError, match="safetensors"):
        warmstart.save({"a": np.zeros(3, np.float32)}, tmp_path / "x.npz", to="numpy", max_shard_size="1KB")
    assert list(tmp_path.iterdir()) == []
