"""Bad input: damaged files raise CheckpointError (a ValueError) naming the file, never a panic (pyo3
would raise its PanicException, a BaseException) or a crash, and a conversion from them leaves nothing."""
import random
import shutil

import pytest

import warmstart
from conftest import FIXTURES, files_under

EXPECTED = (warmstart.CheckpointError, KeyError, FileNotFoundError)


def read_everything(path):
    with warmstart.load_checkpoint(path) as reader:
        reader.get_variable_to_dtype_map()
        for name in reader.keys():
            reader.get_tensor(name)
            reader.get_tensor(name, copy=True)


@pytest.mark.parametrize("name", sorted(p.name for p in (FIXTURES / "hdf5" / "bad").iterdir()))
def test_damaged_hdf5_files(name, empty_dir):
    path = FIXTURES / "hdf5" / "bad" / name
    with pytest.raises(warmstart.CheckpointError) as failed:
        read_everything(path)
    assert name in str(failed.value)
    with pytest.raises(warmstart.CheckpointError):
        warmstart.convert(path, empty_dir / "out" / "model.safetensors")
    with pytest.raises(warmstart.CheckpointError):
        warmstart.warm_start(path, target=path, output=empty_dir / "out" / "model.ckpt")


# Files the readers must survive in every damaged form: one of each format.
SOURCES = [
    ("model.safetensors", FIXTURES / "safetensors" / "dtypes" / "model.safetensors"),
    ("all.index", FIXTURES / "tf" / "dtypes" / "all.index"),
    ("all.data-00000-of-00001", FIXTURES / "tf" / "dtypes" / "all.data-00000-of-00001"),
    ("data.h5", FIXTURES / "hdf5" / "plain" / "data.h5"),
]


def damaged(data, rng):
    """`data` truncated, or with a few bytes overwritten."""
    data = bytearray(data)
    if rng.random() < 0.3:
        return bytes(data[: rng.randrange(len(data))])
    for _ in range(rng.randrange(1, 6)):
        at = rng.randrange(len(data))
        data[at] = rng.randrange(256)
    return bytes(data)


@pytest.mark.parametrize("name,source", SOURCES, ids=[n for n, _ in SOURCES])
def test_randomly_damaged_files_raise_checkpoint_errors(name, source, tmp_path):
    rng = random.Random(name)
    failures = 0
    for i in range(40):
        case = tmp_path / str(i)
        case.mkdir()
        if name.startswith("all."):
            for f in source.parent.glob("all.*"):
                shutil.copy(f, case / f.name)
        (case / name).write_bytes(damaged(source.read_bytes(), rng))
        path = case / ("all" if name.startswith("all.") else name)
        try:
            read_everything(path)
        except EXPECTED:
            failures += 1
        out = tmp_path / "out" / str(i)
        try:
            warmstart.convert(path, out / "model.ckpt")
        except EXPECTED:
            assert not out.exists(), "a failed conversion left files"
    # The damage is real: most variants are refused.
    assert failures >= 10


def test_a_failed_warm_start_leaves_nothing(empty_dir):
    case = FIXTURES / "warmstart" / "accept_baseline"
    bad = empty_dir / "bad"
    bad.mkdir()
    for f in (case / "old").iterdir():
        shutil.copy(f, bad / f.name)
    data = next(bad.glob("*.data-*"))
    data.write_bytes(data.read_bytes()[:-3])
    with pytest.raises(warmstart.CheckpointError):
        warmstart.warm_start(bad, target=case / "new" / "model.ckpt", output=empty_dir / "o" / "out.safetensors")
    shutil.rmtree(bad)
    assert files_under(empty_dir) == []
