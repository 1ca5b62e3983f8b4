"""`format=`: the one format to open in a folder holding checkpoints of several (the CLI's `--format`,
the configuration's `format`), in `load_checkpoint`, `list_variables`, `warm_start` and `plan`. The
files are written by the reference writers (safetensors, numpy)."""
import numpy as np
import pytest
import safetensors.numpy

import warmstart

A = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(3, np.float32)}
B = {"w": np.full((2, 3), 7.0, np.float32), "b": np.zeros(3, np.float32)}


@pytest.fixture
def mixed(tmp_path):
    """A folder with a safetensors file (A) and a NumPy one (B)."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    safetensors.numpy.save_file(A, folder / "model.safetensors")
    np.savez(folder / "model.npz", **B)
    return folder


def test_a_folder_of_several_formats_is_refused_without_format(mixed):
    for call in (warmstart.load_checkpoint, warmstart.list_variables):
        with pytest.raises(warmstart.CheckpointError, match="several formats") as refused:
            call(mixed)
        assert str(mixed) in str(refused.value) and "safetensors" in str(refused.value)


@pytest.mark.parametrize("name, want", [("safetensors", A), ("numpy", B)])
def test_format_picks_one(mixed, name, want):
    reader = warmstart.load_checkpoint(mixed, format=name)
    assert reader.format == name
    for tensor, array in want.items():
        assert np.array_equal(reader.get_tensor(tensor), array), tensor
    assert warmstart.list_variables(mixed, format=name) == [("b", [3]), ("w", [2, 3])]


def test_a_format_not_there_or_unknown(mixed):
    with pytest.raises(warmstart.CheckpointError, match="several formats"):
        warmstart.load_checkpoint(mixed, format="hdf5")
    with pytest.raises(ValueError, match="bogus"):
        warmstart.load_checkpoint(mixed, format="bogus")
    with pytest.raises(ValueError, match="bogus"):
        warmstart.list_variables(mixed, format="bogus")


def test_a_single_file_keeps_its_own_format(mixed):
    # Elsewhere `format` changes nothing: the format is the content's.
    assert warmstart.load_checkpoint(mixed / "model.npz", format="safetensors").format == "numpy"


def test_warm_start_and_plan_take_the_configs_format(mixed, tmp_path):
    target = tmp_path / "target.safetensors"
    safetensors.numpy.save_file({"w": np.zeros((2, 3), np.float32)}, target)
    with pytest.raises(ValueError, match="several formats"):
        warmstart.plan(mixed, target=target)
    planned = warmstart.plan(mixed, target=target, format="numpy")
    assert [v["name"] for v in planned] == ["w"]
    for name, want in (("numpy", B), ("safetensors", A)):
        out = tmp_path / f"{name}.safetensors"
        warmstart.warm_start(mixed, target=target, output=out, format=name)
        assert np.array_equal(safetensors.numpy.load_file(out)["w"], want["w"]), name
    with pytest.raises(ValueError, match="several formats"):
        warmstart.warm_start(mixed, target=target, output=tmp_path / "none.safetensors")
    assert not (tmp_path / "none.safetensors").exists()
