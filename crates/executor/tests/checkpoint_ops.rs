//! TF's `checkpoint_ops_test.py` (8 tests) on the fixtures real TensorFlow generated
//! (`tests/fixtures/checkpoint_ops/<case>`): each partition computed by [`load_and_remap`] (or
//! [`load_and_remap_matrix`]) must equal TF's bit for bit.

use std::path::{Path, PathBuf};

use warmstart_executor::{load_and_remap, load_and_remap_matrix};
use warmstart_planner::{BackupInitializer, RemapParams, VocabFile};

fn fixtures() -> PathBuf {
    warmstart_core::test_support::fixtures().join("checkpoint_ops")
}

fn vocab(dir: &Path, p: &serde_json::Value) -> Option<VocabFile> {
    let name = p.as_str()?;
    Some(VocabFile::new(name, std::fs::read(dir.join(name)).unwrap()))
}

fn check_case(name: &str) {
    let dir = fixtures().join(name);
    let p: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("params.json")).unwrap()).unwrap();
    let old = warmstart_tf::TfSource::open(&dir.join(p["ckpt_path"].as_str().unwrap())).unwrap();
    let int = |k: &str| p[k].as_i64().unwrap();
    let (old_rows, new_rows) = (vocab(&dir, &p["old_row_vocab_file"]), vocab(&dir, &p["new_row_vocab_file"]));
    let (old_cols, new_cols) = (vocab(&dir, &p["old_col_vocab_file"]), vocab(&dir, &p["new_col_vocab_file"]));
    let params = RemapParams {
        variable: "v",
        old_tensor: p["old_tensor_name"].as_str().unwrap(),
        new_row_vocab_size: int("new_row_vocab_size"),
        new_col_vocab_size: int("new_col_vocab_size"),
        old_row_vocab_size: int("old_row_vocab_size"),
        row_vocab: old_rows.as_ref().zip(new_rows.as_ref()),
        col_vocab: old_cols.as_ref().zip(new_cols.as_ref()),
        num_row_oov_buckets: int("num_row_oov_buckets"),
        num_col_oov_buckets: int("num_col_oov_buckets"),
    };
    let backup = BackupInitializer::Constant(p["initializer_constant"].as_f64().unwrap() as f32);
    let bytes = std::fs::read(dir.join("expected.safetensors")).unwrap();
    let expected = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let partitions = p["partitions"].as_array().unwrap();
    for (i, part) in partitions.iter().enumerate() {
        let dims = |k: &str| part[k].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).collect::<Vec<u64>>();
        let (offset, shape) = (dims("offset"), dims("shape"));
        let got = if p["function"] == "_load_and_remap_matrix" {
            load_and_remap_matrix(
                &old,
                &params,
                int("new_row_vocab_offset") as u64,
                int("num_rows_to_load") as u64,
                backup,
            )
        } else {
            load_and_remap(&old, &params, &shape, offset[0], backup)
        }
        .unwrap_or_else(|e| panic!("{name} part {i}: {e}"));
        let want = expected.tensor(&format!("part_{i}")).unwrap();
        assert_eq!(want.shape(), shape.iter().map(|&d| d as usize).collect::<Vec<_>>(), "{name} part {i}");
        let got_bytes: Vec<u8> = got.iter().flat_map(|x| x.to_le_bytes()).collect();
        assert_eq!(got_bytes, want.data(), "{name} part {i}: got {got:?}");
    }
    assert_eq!(expected.len(), partitions.len(), "{name}: every expected partition checked");
}

#[test]
fn load_and_remap_matrix_test() {
    check_case("load_and_remap_matrix");
}

#[test]
fn load_and_remap_output_layer_weight_initializer_linear() {
    check_case("load_and_remap_output_layer_weight_initializer_linear");
}

#[test]
fn load_and_remap_output_layer_weight_initializer_dnn_output() {
    check_case("load_and_remap_output_layer_weight_initializer_dnn_output");
}

#[test]
fn initializer_with_oov_only_partition() {
    check_case("initializer_with_oov_only_partition");
}

#[test]
fn load_and_remap_linear_multiclass_initializer_default_init() {
    check_case("load_and_remap_linear_multiclass_initializer_default_init");
}

#[test]
fn load_embedding_initializer() {
    check_case("load_embedding_initializer");
}

#[test]
fn load_embedding_initializer_large_oov() {
    check_case("load_embedding_initializer_large_oov");
}

#[test]
fn load_embedding_initializer_old_row_vocab() {
    check_case("load_embedding_initializer_old_row_vocab");
}
