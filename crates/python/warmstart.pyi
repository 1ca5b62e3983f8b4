"""warmstart: TensorFlow's `warm_start` and `load_checkpoint` for TF, safetensors and HDF5 checkpoints,
without TensorFlow (type stubs of the extension module)."""

import os
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple, Optional, Union

import numpy as np

__version__: str

_Path = Union[str, os.PathLike[str]]

class WarmStartError(ValueError):
    """TensorFlow's refusal of a warm-start, with TF's message."""

    tf_class: Optional[str]
    """The class TF raised: `ValueError`, `InvalidArgumentError`, `error` (`re.error`), ...; `None`
    for a refusal past what TF can express."""
    variable: str
    """The variable (or pattern) the refusal is about."""

class CheckpointError(ValueError):
    """A checkpoint that cannot be read or written; the message names the file and the tensor."""

class VocabInfo(NamedTuple):
    """TF's `VocabInfo`."""

    new_vocab: _Path
    new_vocab_size: int
    num_oov_buckets: int
    old_vocab: _Path
    old_vocab_size: int = -1
    backup_initializer: Any = None
    """None (zeros), "zeros", "ones", "initial", a number, `constant_initializer(x)`, `Zeros()`, `Ones()`."""
    axis: int = 0

class Variable:
    """A variable named by its name, as TF's `Variable` objects are in `vars_to_warm_start`."""

    name: str
    def __init__(self, name: str) -> None: ...

_VarsToWarmStart = Union[str, Iterable[str], Iterable[Any], None]

def warm_start(
    ckpt_to_initialize_from: _Path,
    vars_to_warm_start: _VarsToWarmStart = ".*",
    var_name_to_vocab_info: Optional[Mapping[str, Any]] = None,
    var_name_to_prev_var_name: Optional[Mapping[str, str]] = None,
    *,
    target: _Path,
    output: _Path,
    non_trainable: Optional[list[str]] = None,
    to: Optional[str] = None,
    shards: Optional[int] = None,
    format: Optional[str] = None,
) -> dict[str, Any]:
    """Warm-starts `target` (the new model's initial checkpoint) from `ckpt_to_initialize_from` exactly as
    TF's `tf.compat.v1.train.warm_start`, writing `output` (format from `to` or the name). Returns the
    report (`warmstart run --json`). Ctrl-C stops it, leaving nothing."""

def plan(
    ckpt_to_initialize_from: _Path,
    vars_to_warm_start: _VarsToWarmStart = ".*",
    var_name_to_vocab_info: Optional[Mapping[str, Any]] = None,
    var_name_to_prev_var_name: Optional[Mapping[str, str]] = None,
    *,
    target: _Path,
    non_trainable: Optional[list[str]] = None,
    format: Optional[str] = None,
) -> list[dict[str, Any]]:
    """The dry run of `warm_start`: what every target variable gets, and why (`warmstart plan --json`).
    `format` (here and in `warm_start`): the configuration's `format`, the one to open in a folder
    holding checkpoints of several formats."""

class CheckpointReader:
    """TensorFlow's `CheckpointReader`, for every format."""

    @property
    def format(self) -> str: ...
    def get_variable_to_shape_map(self) -> dict[str, list[int]]: ...
    def get_variable_to_dtype_map(self) -> dict[str, np.dtype[Any]]: ...
    def has_tensor(self, name: str) -> bool: ...
    def __contains__(self, name: str) -> bool: ...
    def get_tensor(self, name: str, *, copy: bool = False) -> np.ndarray[Any, Any]:
        """The tensor: read-only over the memory map where it is stored whole (its base keeps the reader
        alive), else assembled once; `copy=True` gives an array of its own. Strings: an object array of
        `bytes`."""
    def get_rows(self, name: str, start: int, stop: int, *, copy: bool = False) -> np.ndarray[Any, Any]:
        """Rows `start:stop` of the tensor (along its first dimension)."""
    def keys(self) -> list[str]: ...
    def metadata(self) -> Optional[dict[str, str]]: ...
    def close(self) -> None: ...
    def __enter__(self) -> "CheckpointReader": ...
    def __exit__(self, *args: object) -> bool: ...

def load_checkpoint(path: _Path, *, format: Optional[str] = None, names: str = "keys") -> CheckpointReader:
    """TF's `tf.train.load_checkpoint`, for a TF bundle, a safetensors file or folder, an HDF5 file, a
    PyTorch or NumPy file. `format` ("safetensors", "tf", "hdf5", "numpy", ...) picks one in a folder
    holding checkpoints of several formats, as `--format` does. `names="variables"`: a TF2
    object-based checkpoint's tensors under their variables' names (`dense/kernel`), as
    `--names variables`; `"keys"` keeps the checkpoint keys."""

def list_variables(path: _Path, *, format: Optional[str] = None, names: str = "keys") -> list[tuple[str, list[int]]]:
    """TF's `tf.train.list_variables`: (name, shape) of every tensor, sorted by name."""

def save(
    tensors: Mapping[str, Any],
    path: _Path,
    *,
    to: Optional[str] = None,
    metadata: Optional[Mapping[str, str]] = None,
    shards: Optional[int] = None,
    max_shard_size: Optional[str] = None,
) -> None:
    """Writes numpy arrays as a checkpoint (format from `to` or the name), atomically. `shards`: a TF
    bundle's data-file count; `max_shard_size` ("5GB", "500MB", "10KiB", as `--max-shard-size`):
    safetensors split as Hugging Face splits it, into the folder `path`."""

def convert(
    src: _Path,
    dst: _Path,
    *,
    to: Optional[str] = None,
    shards: Optional[int] = None,
    max_shard_size: Optional[str] = None,
) -> None:
    """Converts a checkpoint into another format, atomically; Ctrl-C stops it, leaving nothing.
    `shards` and `max_shard_size` as in `save`."""
