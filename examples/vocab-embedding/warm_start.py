"""The example warm-start in Python, called as TensorFlow's own `warm_start` is, without TensorFlow.

    pip install ./crates/python
    python examples/vocab-embedding/warm_start.py /tmp/warm.safetensors

Writes the new model's checkpoint with the embedding's rows remapped from the old vocabulary to the new
one and the dense layer copied, and checks it against TensorFlow's result (expected.safetensors).
"""
import pathlib
import sys

import warmstart

here = pathlib.Path(__file__).resolve().parent
out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "warm.safetensors").resolve()

embedding = warmstart.VocabInfo(
    new_vocab=here / "new_vocab.txt",
    new_vocab_size=10,
    num_oov_buckets=1,
    old_vocab=here / "old_vocab.txt",
)
report = warmstart.warm_start(
    here / "old",                       # ckpt_to_initialize_from
    "(input|dense)/",                   # vars_to_warm_start
    {"input/embedding": embedding},     # var_name_to_vocab_info
    target=here / "new" / "model.ckpt",  # the new model's initial values
    output=out,
)
print(f"wrote {report['report']['tensors_written']} tensors to {out}")
for variable in report["plan"]["variables"]:
    print(f"  {variable['name']}: {variable['reason']}")

with warmstart.load_checkpoint(out) as got, warmstart.load_checkpoint(here / "expected.safetensors") as tf:
    for name in tf.keys():
        assert got.get_tensor(name).tobytes() == tf.get_tensor(name).tobytes(), name
print("equal to TensorFlow's warm_start, bit for bit")
