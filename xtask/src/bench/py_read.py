"""Reads every tensor of a checkpoint from Python, one at a time, each touched and then dropped, timed by
`cargo xtask bench --with-tf PYTHON` (the peak memory is measured from outside).

Usage: python py_read.py READER PATH

READER is `warmstart` (warmstart.load_checkpoint, any format), `tensorflow` (tf.train.load_checkpoint,
a TF bundle) or `safetensors` (safetensors.numpy.load_file, which loads the whole file first). Prints
`seconds=S`, the time from opening to the last tensor (the imports excluded), and `tensors=N bytes=B`.
"""

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def tensors(reader, path):
    """The tensors of `path`, one at a time, as numpy arrays."""
    if reader == "warmstart":
        import warmstart

        with warmstart.load_checkpoint(path) as r:
            for name in r.keys():
                yield r.get_tensor(name)
    elif reader == "tensorflow":
        import tensorflow as tf

        r = tf.train.load_checkpoint(path)
        for name in sorted(r.get_variable_to_shape_map()):
            yield r.get_tensor(name)
    elif reader == "safetensors":
        import safetensors.numpy

        loaded = safetensors.numpy.load_file(path)
        for name in list(loaded):
            yield loaded.pop(name)
    else:
        sys.exit(f"unknown reader {reader!r}\n\n{__doc__}")


def main(reader, path):
    import numpy as np

    # The imports are made before the clock starts.
    if reader == "warmstart":
        import warmstart  # noqa: F401
    elif reader == "tensorflow":
        import tensorflow  # noqa: F401
    elif reader == "safetensors":
        import safetensors.numpy  # noqa: F401
    start = time.perf_counter()
    count = total = 0
    for array in tensors(reader, path):
        # Touch every byte (a view as bytes, summed), so that a lazily mapped array is really read.
        if array.dtype != object and array.size:
            np.frombuffer(np.ascontiguousarray(array).data, dtype=np.uint8).sum(dtype=np.uint64)
        count += 1
        total += array.nbytes
        del array
    print(f"seconds={time.perf_counter() - start:.6f}")
    print(f"tensors={count} bytes={total}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
