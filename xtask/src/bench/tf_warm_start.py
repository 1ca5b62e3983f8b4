"""TensorFlow's own warm-start of the W1 workload, timed by `cargo xtask bench --with-tf PYTHON`.

Usage: python tf_warm_start.py WORKLOAD_DIR OUT_PREFIX

Builds the new model's variables in a TF1 graph (shapes and dtypes from the new model's initial
checkpoint; the Adam slots and global_step non-trainable), gives the non-trainable ones their values from
that initial checkpoint (tf.compat.v1.train.init_from_checkpoint), calls
tf.compat.v1.train.warm_start with the workload's settings (remap the embedding through the vocabularies,
copy every other trainable variable), runs the initializers and saves a V2 checkpoint to OUT_PREFIX:
what `warmstart run` does. Prints one line `seconds=S` with the time from graph construction to the
saved checkpoint (TensorFlow's import excluded).
"""

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402


def main(workload_dir, out_prefix):
    old_prefix = os.path.join(workload_dir, "old", "model.ckpt")
    new_prefix = os.path.join(workload_dir, "new", "model.ckpt")
    old_vocab = os.path.join(workload_dir, "old_vocab.txt")
    new_vocab = os.path.join(workload_dir, "new_vocab.txt")
    with open(new_vocab, "rb") as f:
        new_vocab_size = sum(1 for _ in f)
    start = time.perf_counter()
    reader = tf.train.load_checkpoint(new_prefix)
    dtypes = reader.get_variable_to_dtype_map()
    shapes = reader.get_variable_to_shape_map()
    graph = tf.Graph()
    with graph.as_default():
        non_trainable = {}
        for name in sorted(shapes):
            trainable = not (name == "global_step" or "/Adam" in name)
            var = tf.compat.v1.get_variable(
                name,
                shape=shapes[name],
                dtype=dtypes[name],
                initializer=tf.compat.v1.zeros_initializer(),
                trainable=trainable,
                use_resource=False,
            )
            if not trainable:
                non_trainable[name] = var
        tf.compat.v1.train.init_from_checkpoint(new_prefix, {name: name for name in non_trainable})
        vocab_info = tf.compat.v1.train.VocabInfo(
            new_vocab=new_vocab,
            new_vocab_size=new_vocab_size,
            num_oov_buckets=0,
            old_vocab=old_vocab,
            old_vocab_size=-1,
        )
        tf.compat.v1.train.warm_start(
            ckpt_to_initialize_from=old_prefix,
            vars_to_warm_start=".*",
            var_name_to_vocab_info={"embedding": vocab_info},
        )
        saver = tf.compat.v1.train.Saver(write_version=tf.compat.v1.train.SaverDef.V2)
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            saver.save(sess, out_prefix, write_meta_graph=False, write_state=False)
    print(f"seconds={time.perf_counter() - start:.6f}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
