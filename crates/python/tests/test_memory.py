"""Zero copy: a tensor stored whole in numpy's byte order comes back as a read-only array over the
memory map, whose base holds the reader; `copy=True` gives an array of its own."""
import gc
import weakref

import numpy as np
import pytest
import safetensors.numpy

import warmstart
from conftest import FIXTURES


def owner(array):
    """The object at the end of an array's chain of bases: what holds its memory."""
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array.base


@pytest.mark.parametrize(
    "path", [FIXTURES / "safetensors" / "shapes" / "model.safetensors", FIXTURES / "tf" / "tf1_single"]
)
def test_arrays_borrow_the_map_and_keep_the_reader_alive(path):
    reader = warmstart.load_checkpoint(path)
    name = max(reader.keys(), key=lambda n: reader.get_tensor(n, copy=True).nbytes)
    want = reader.get_tensor(name, copy=True)
    array = reader.get_tensor(name)
    assert not array.flags.writeable and not array.flags.owndata
    with pytest.raises(ValueError):
        array[...] = 0
    assert owner(array).reader is reader
    # The bytes are the map's: a second read gives the same address.
    again = reader.get_tensor(name)
    assert again.__array_interface__["data"][0] == array.__array_interface__["data"][0]
    alive = weakref.ref(reader)
    del reader, again
    gc.collect()
    assert alive() is not None, "the array's base keeps the reader"
    assert np.array_equal(array, want)
    del array
    gc.collect()
    assert alive() is None


def test_copy_gives_an_array_of_its_own():
    path = FIXTURES / "safetensors" / "shapes" / "model.safetensors"
    want = safetensors.numpy.load_file(path)
    with warmstart.load_checkpoint(path) as reader:
        for name in reader.keys():
            array = reader.get_tensor(name, copy=True)
            assert array.flags.writeable and array.flags.owndata and array.base is None
            assert array.dtype == want[name].dtype and np.array_equal(array, want[name])
            array[...] = 0


def test_arrays_outlive_a_closed_reader():
    path = FIXTURES / "safetensors" / "shapes" / "model.safetensors"
    want = safetensors.numpy.load_file(path)
    with warmstart.load_checkpoint(path) as reader:
        arrays = {name: reader.get_tensor(name) for name in reader.keys()}
    with pytest.raises(ValueError):
        reader.get_tensor(next(iter(arrays)))
    for name, array in arrays.items():
        assert np.array_equal(array, want[name])


def test_a_partitioned_tensor_is_assembled_once_into_a_writeable_array():
    reader = warmstart.load_checkpoint(FIXTURES / "tf" / "tf1_partitioned")
    array = reader.get_tensor("emb")
    assert array.shape == (300, 2) and array.flags.writeable
    assert owner(array).writeable
