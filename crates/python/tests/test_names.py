"""`names="variables"`: a TF2 object-based checkpoint under its variables' names (issue 17), as
`--names variables` gives it, against the object graph TensorFlow recorded
(tests/fixtures/tf/tf2_keras/expected.json, by gen_tf.py: variable name -> checkpoint key, and each
key's sha256)."""
import hashlib
import json

import pytest

import warmstart
from conftest import FIXTURES

CASE = FIXTURES / "tf" / "tf2_keras"
EXPECTED = json.loads((CASE / "expected.json").read_text())
CHECKPOINT = CASE / EXPECTED["checkpoint"]
SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"


def name_of(key):
    """TF's variable name for `key` (the smallest, were there several), else the key without its suffix."""
    names = sorted(n for n, k in EXPECTED["object_graph"].items() if k == key)
    return names[0] if names else key.removesuffix(SUFFIX)


def test_variables_names_from_the_object_graph():
    keys = warmstart.load_checkpoint(CHECKPOINT)
    assert sorted(keys.keys()) == sorted(EXPECTED["tensors"])
    named = warmstart.load_checkpoint(CHECKPOINT, names="variables")
    assert named.keys() == [name_of(k) for k in keys.keys()]
    assert "sequential/hidden/kernel" in named and "sequential/hidden/kernel" not in keys
    for key, t in EXPECTED["tensors"].items():
        name = name_of(key)
        assert named.get_variable_to_shape_map()[name] == t["shape"], name
        if t["dtype"] != "STRING":
            got = named.get_tensor(name)
            assert hashlib.sha256(got.tobytes()).hexdigest() == t["sha256"], name
            assert got.tobytes() == keys.get_tensor(key).tobytes(), name
    listed = warmstart.list_variables(CHECKPOINT, names="variables")
    assert listed == sorted((name_of(k), t["shape"]) for k, t in EXPECTED["tensors"].items())


def test_keys_are_the_default_and_other_checkpoints_keep_their_names():
    assert warmstart.load_checkpoint(CHECKPOINT, names="keys").keys() == warmstart.load_checkpoint(CHECKPOINT).keys()
    tf1 = FIXTURES / "tf" / "tf1_single"
    prefix = json.loads((tf1 / "expected.json").read_text())["checkpoint"]
    assert warmstart.load_checkpoint(tf1 / prefix, names="variables").keys() == warmstart.load_checkpoint(tf1 / prefix).keys()


def test_an_unknown_names_value():
    with pytest.raises(ValueError, match="names must be"):
        warmstart.load_checkpoint(CHECKPOINT, names="both")
