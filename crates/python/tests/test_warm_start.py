"""Every warm-start case TensorFlow made (tests/fixtures/warmstart/<case>, by gen_warmstart.py) through
`warmstart.warm_start`, called as TF's `warm_start` is: accepted cases give TF's values bit for bit
(`expected.safetensors`), refused ones raise `WarmStartError` with TF's message, class and variable, and
write nothing. The call is made from the case folder with the case's relative paths, as TF ran."""
import collections
import json
try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

import numpy as np
import pytest
import safetensors.numpy

import warmstart
from conftest import FIXTURES, files_under

CASES = sorted(p.name for p in (FIXTURES / "warmstart").iterdir() if p.is_dir())


def test_every_case_is_found():
    assert len(CASES) >= 100


def backup(value):
    """A TOML `backup_initializer` as a Python one: None, a name, or a number for `{ constant = X }`."""
    if isinstance(value, dict):
        return float(value["constant"])
    return value


def call_args(config):
    """TF's positional arguments and the keyword arguments of the case's `config.toml`."""
    vars_to_warm_start = config.get("vars_to_warm_start", ".*")
    if vars_to_warm_start is False:
        vars_to_warm_start = None
    elif isinstance(vars_to_warm_start, dict):
        vars_to_warm_start = [warmstart.Variable(name) for name in vars_to_warm_start["variables"]]
    vocab = {
        name: warmstart.VocabInfo(
            new_vocab=v["new_vocab"],
            new_vocab_size=v["new_vocab_size"],
            num_oov_buckets=v["num_oov_buckets"],
            old_vocab=v["old_vocab"],
            old_vocab_size=v.get("old_vocab_size", -1),
            backup_initializer=backup(v.get("backup_initializer")),
            axis=v.get("axis", 0),
        )
        for name, v in config.get("var_name_to_vocab_info", {}).items()
    }
    positional = (
        config["ckpt_to_initialize_from"],
        vars_to_warm_start,
        vocab or None,
        config.get("var_name_to_prev_var_name") or None,
    )
    keywords = {"target": config["target"]}
    for key in ("non_trainable", "format"):
        if key in config:
            keywords[key] = config[key]
    return positional, keywords


def assert_tf_values(expected_file, read):
    """Every tensor of TF's `expected_file` equals `read(name)` in dtype, shape and bytes."""
    expected = safetensors.numpy.load_file(expected_file)
    for name, want in expected.items():
        got = read(name)
        assert (got.dtype, got.shape) == (want.dtype, want.shape), name
        assert got.tobytes() == want.tobytes(), f"{name}: {got} != TF's {want}"


@pytest.mark.parametrize("case", CASES)
def test_case(case, tmp_path, monkeypatch):
    folder = FIXTURES / "warmstart" / case
    monkeypatch.chdir(folder)
    with open("config.toml", "rb") as f:
        positional, keywords = call_args(tomllib.load(f))
    if (folder / "expected_error.json").exists():
        expected = json.loads((folder / "expected_error.json").read_text())
        for out in [tmp_path / "o" / "out.safetensors", tmp_path / "t" / "model.ckpt"]:
            with pytest.raises(warmstart.WarmStartError) as refused:
                warmstart.warm_start(*positional, **keywords, output=out)
            assert str(refused.value) == expected["message"]
            assert refused.value.tf_class == expected["class"]
            assert refused.value.variable == expected["variable"]
            assert isinstance(refused.value, ValueError)
        with pytest.raises(warmstart.WarmStartError):
            warmstart.plan(*positional, **keywords)
        assert files_under(tmp_path) == [], "a refused warm-start left files"
        return
    out = tmp_path / "out.safetensors"
    report = warmstart.warm_start(*positional, **keywords, output=str(out))
    assert report["format"] == "safetensors" and report["report"]["tensors_written"] >= 1
    assert_tf_values(folder / "expected.safetensors", safetensors.numpy.load_file(out).__getitem__)
    # Into a TF bundle (partitions kept as the target has them), read back through load_checkpoint.
    prefix = tmp_path / "tf" / "model.ckpt"
    warmstart.warm_start(*positional, **keywords, output=prefix)
    with warmstart.load_checkpoint(prefix) as reader:
        assert_tf_values(folder / "expected.safetensors", reader.get_tensor)
    planned = warmstart.plan(*positional, **keywords)
    assert isinstance(planned, list) and {"name", "action"} <= set(planned[0])


def test_a_tf_style_call_with_a_namedtuple_vocab_info(tmp_path, monkeypatch):
    """TF's own call shape: positional arguments, a VocabInfo namedtuple that is not warmstart's (as
    `tf.estimator.VocabInfo` is), TF's `constant_initializer`-shaped backup, plus target= and output=."""
    folder = FIXTURES / "warmstart" / "accept_backup_constant"
    monkeypatch.chdir(folder)
    VocabInfo = collections.namedtuple(
        "VocabInfo",
        ["new_vocab", "new_vocab_size", "num_oov_buckets", "old_vocab", "old_vocab_size", "backup_initializer",
         "axis"],
    )

    class constant_initializer:  # noqa: N801 - TF's name and shape (an object with `value`)
        def __init__(self, value):
            self.value = value

    info = VocabInfo("new_vocab", 5, 1, "old_vocab", -1, constant_initializer(0.25), 0)
    out = tmp_path / "out.safetensors"
    warmstart.warm_start("old", ".*", {"w": info}, None, target="new/model.ckpt", output=out)
    assert_tf_values(folder / "expected.safetensors", safetensors.numpy.load_file(out).__getitem__)
    # warmstart's own VocabInfo is a namedtuple with TF's defaults.
    ours = warmstart.VocabInfo("new_vocab", 5, 1, "old_vocab", backup_initializer=0.25)
    assert isinstance(ours, tuple) and ours._fields == VocabInfo._fields
    assert (ours.old_vocab_size, ours.axis) == (-1, 0)
    out2 = tmp_path / "out2.safetensors"
    warmstart.warm_start("old", var_name_to_vocab_info={"w": ours}, target="new/model.ckpt", output=out2)
    assert out.read_bytes() == out2.read_bytes()
    assert np.array_equal(safetensors.numpy.load_file(out2)["w"], safetensors.numpy.load_file(out)["w"])
    # An output name that tells no format gets the target's (a TF bundle here), as on the command line.
    out3 = tmp_path / "run" / "ckpt"
    report = warmstart.warm_start("old", ".*", {"w": info}, None, target="new/model.ckpt", output=out3)
    assert report["format"] == "tf"
    with warmstart.load_checkpoint(out3) as reader:
        assert_tf_values(folder / "expected.safetensors", reader.get_tensor)
