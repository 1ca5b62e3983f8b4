"""The module's names, signatures and exception types: TensorFlow's, as the issue fixes them."""
import inspect

import pytest

import warmstart
from conftest import REPO


def parameters(function):
    return [(p.name, p.kind.name, p.default) for p in inspect.signature(function).parameters.values()]


E = inspect.Parameter.empty


def test_signatures():
    assert parameters(warmstart.warm_start) == [
        ("ckpt_to_initialize_from", "POSITIONAL_OR_KEYWORD", E),
        ("vars_to_warm_start", "POSITIONAL_OR_KEYWORD", ".*"),
        ("var_name_to_vocab_info", "POSITIONAL_OR_KEYWORD", None),
        ("var_name_to_prev_var_name", "POSITIONAL_OR_KEYWORD", None),
        ("target", "KEYWORD_ONLY", E),
        ("output", "KEYWORD_ONLY", E),
        ("non_trainable", "KEYWORD_ONLY", None),
        ("to", "KEYWORD_ONLY", None),
        ("shards", "KEYWORD_ONLY", None),
        ("format", "KEYWORD_ONLY", None),
    ]
    assert parameters(warmstart.plan) == parameters(warmstart.warm_start)[:5] + [
        ("non_trainable", "KEYWORD_ONLY", None),
        ("format", "KEYWORD_ONLY", None),
    ]
    assert parameters(warmstart.VocabInfo) == [
        ("new_vocab", "POSITIONAL_OR_KEYWORD", E),
        ("new_vocab_size", "POSITIONAL_OR_KEYWORD", E),
        ("num_oov_buckets", "POSITIONAL_OR_KEYWORD", E),
        ("old_vocab", "POSITIONAL_OR_KEYWORD", E),
        ("old_vocab_size", "POSITIONAL_OR_KEYWORD", -1),
        ("backup_initializer", "POSITIONAL_OR_KEYWORD", None),
        ("axis", "POSITIONAL_OR_KEYWORD", 0),
    ]
    assert parameters(warmstart.load_checkpoint) == [
        ("path", "POSITIONAL_OR_KEYWORD", E),
        ("format", "KEYWORD_ONLY", None),
        ("names", "KEYWORD_ONLY", "keys"),
    ]
    assert parameters(warmstart.list_variables) == parameters(warmstart.load_checkpoint)
    assert parameters(warmstart.save) == [
        ("tensors", "POSITIONAL_OR_KEYWORD", E),
        ("path", "POSITIONAL_OR_KEYWORD", E),
        ("to", "KEYWORD_ONLY", None),
        ("metadata", "KEYWORD_ONLY", None),
        ("shards", "KEYWORD_ONLY", None),
        ("max_shard_size", "KEYWORD_ONLY", None),
    ]
    assert parameters(warmstart.convert) == [
        ("src", "POSITIONAL_OR_KEYWORD", E),
        ("dst", "POSITIONAL_OR_KEYWORD", E),
        ("to", "KEYWORD_ONLY", None),
        ("shards", "KEYWORD_ONLY", None),
        ("max_shard_size", "KEYWORD_ONLY", None),
    ]


def test_exceptions_are_value_errors():
    assert issubclass(warmstart.WarmStartError, ValueError)
    assert issubclass(warmstart.CheckpointError, ValueError)
    assert not issubclass(warmstart.WarmStartError, warmstart.CheckpointError)


def test_version_is_the_workspace_version():
    text = (REPO / "Cargo.toml").read_text()
    workspace = text[text.index("[workspace.package]"):]
    version = workspace.split('version = "', 1)[1].split('"', 1)[0]
    assert warmstart.__version__ == version


def test_variable_and_bad_argument_types(tmp_path):
    v = warmstart.Variable("dense/kernel")
    assert v.name == "dense/kernel" and "dense/kernel" in repr(v)
    old = REPO / "tests" / "fixtures" / "warmstart" / "accept_baseline" / "old"
    target = REPO / "tests" / "fixtures" / "warmstart" / "accept_baseline" / "new" / "model.ckpt"
    for bad in [3, [1, 2], ["v", warmstart.Variable("v")]]:
        with pytest.raises(TypeError):
            warmstart.plan(old, bad, target=target)
    with pytest.raises(TypeError):
        warmstart.plan(old, ".*", {"v": "not a VocabInfo"}, target=target)
    with pytest.raises(TypeError):
        warmstart.plan(old, ".*", {"v": warmstart.VocabInfo("a", 1, 0, "b", backup_initializer=object())},
                       target=target)
    with pytest.raises(ValueError):
        warmstart.plan(old, ".*", {"v": warmstart.VocabInfo("a", 1, 0, "b", backup_initializer="twos")},
                       target=target)
    with pytest.raises(TypeError):
        warmstart.plan(old, target=target, non_trainable="global_step")
    with pytest.raises(TypeError):
        warmstart.warm_start(old, target=target)
    with pytest.raises(ValueError, match="onnx"):
        warmstart.warm_start(old, target=target, output=tmp_path / "o", to="onnx")
    with pytest.raises(FileNotFoundError):
        warmstart.plan(tmp_path / "missing", target=target)
    assert list(tmp_path.iterdir()) == []


def test_a_bad_pattern_is_a_warm_start_error():
    """Python's own `re.error` for a bad pattern, as TF raises it, comes out as a WarmStartError."""
    case = REPO / "tests" / "fixtures" / "warmstart" / "accept_baseline"
    with pytest.raises(warmstart.WarmStartError) as refused:
        warmstart.plan(case / "old", "(", target=case / "new" / "model.ckpt")
    assert refused.value.tf_class == "error"
    assert refused.value.variable == "("
    assert "missing ), unterminated subpattern at position 0" == str(refused.value)


def test_the_example_gives_tensorflows_values(tmp_path):
    import subprocess
    import sys

    script = REPO / "examples" / "vocab-embedding" / "warm_start.py"
    run = subprocess.run([sys.executable, script, tmp_path / "warm.safetensors"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "equal to TensorFlow's warm_start, bit for bit" in run.stdout
