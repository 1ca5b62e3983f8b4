//! Every tensor of every checkpoint TensorFlow wrote, compared byte for byte with what
//! `tf.train.load_checkpoint` read (tests/fixtures/tf/*/expected.json), plus the `.meta` collections, the
//! TF2 object graph and path resolution.

mod common;

use std::collections::{BTreeMap, HashMap};

use common::*;
use serde_json::Value;
use warmstart_core::{CheckpointSource, Slice};
use warmstart_tf::{TfError, TfSource};

#[test]
fn every_tensor_matches_tensorflow() {
    for case in CASES {
        let exp = expected(case);
        let ckpt = TfSource::open(&prefix(case)).unwrap();
        assert_eq!(ckpt.format(), warmstart_core::Format::Tf);
        let want: &serde_json::Map<String, Value> = exp["tensors"].as_object().unwrap();
        let names: Vec<&str> = ckpt.tensors().iter().map(|t| t.name.as_str()).collect();
        let want_names: Vec<&str> = want.keys().map(|s| s.as_str()).collect();
        assert_eq!(names, want_names, "{case}: tensor list");
        let mut compared = 0;
        for (name, w) in want {
            if w.get("unreadable").is_some() {
                continue;
            }
            assert_eq!(describe(&ckpt, name), *w, "{case}/{name}");
            compared += 1;
        }
        assert!(compared > 0 || case == "slice_keys", "{case}: nothing compared");
    }
}

#[test]
fn row_reads_concatenate_to_the_whole() {
    for case in CASES {
        let ckpt = TfSource::open(&prefix(case)).unwrap();
        for t in ckpt.tensors() {
            if t.dtype == warmstart_core::DType::String || ckpt.slices(&t.name).is_some() && case == "slice_keys" {
                continue;
            }
            let whole = ckpt.read(&t.name).unwrap();
            let mut joined = Vec::new();
            let rows = t.rows();
            let step = (rows / 3).max(1);
            let mut r = 0;
            while r < rows {
                let end = (r + step).min(rows);
                joined.extend_from_slice(&ckpt.read_rows(&t.name, r..end).unwrap());
                r = end;
            }
            assert_eq!(joined, &whole[..], "{case}/{}", t.name);
            assert!(ckpt.read_rows(&t.name, 0..rows + 1).is_err());
        }
    }
}

#[test]
fn whole_tensors_are_borrowed_from_the_map() {
    let ckpt = TfSource::open(&prefix("tf1_single")).unwrap();
    assert!(matches!(ckpt.read("dense/kernel").unwrap(), std::borrow::Cow::Borrowed(_)));
    assert!(matches!(ckpt.read_rows("dense/kernel", 1..2).unwrap(), std::borrow::Cow::Borrowed(_)));
}

#[test]
fn partitioned_variables_are_one_tensor_with_their_slices() {
    let ckpt = TfSource::open(&prefix("tf1_partitioned")).unwrap();
    let emb = ckpt.tensor("emb").unwrap();
    assert_eq!(emb.shape, [300, 2]);
    let slices = ckpt.slices("emb").unwrap();
    let starts: Vec<u64> = slices.iter().map(|s| s.start[0]).collect();
    assert_eq!(starts, [0, 100, 200]);
    assert_eq!(ckpt.slices("plain"), None);
    // A row range across two slices equals the same rows of the whole.
    let whole = ckpt.read("emb").unwrap();
    let mid = ckpt.read_rows("emb", 95..205).unwrap();
    assert_eq!(&mid[..], &whole[95 * 8..205 * 8]);
    let mask = ckpt.tensor("mask").unwrap();
    assert_eq!(mask.shape, [16400]);
}

/// Slices `SaveV2` wrote with starts needing 1 to 9 bytes of OrderedCode: every slice key our encoder
/// builds must find TensorFlow's entry (the checkpoint opens), and rows the slices cover read back as
/// written.
#[test]
fn multi_byte_slice_keys_written_by_tensorflow() {
    let exp = expected("slice_keys");
    let ckpt = TfSource::open(&prefix("slice_keys")).unwrap();
    for (name, p) in exp["partial"].as_object().unwrap() {
        let nums = |k: &str| -> Vec<u64> { p[k].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect() };
        let (shape, start, len) = (nums("shape"), nums("start"), nums("len"));
        assert_eq!(ckpt.tensor(name).unwrap().shape, shape, "{name}");
        assert_eq!(ckpt.slices(name).unwrap(), vec![Slice { start: start.clone(), len: len.clone() }], "{name}");
        let rows = start[0]..start[0] + len[0];
        let covers_rows = (1..shape.len()).all(|d| start[d] == 0 && len[d] == shape[d]);
        match ckpt.read_rows(name, rows.clone()) {
            Ok(bytes) => {
                assert!(covers_rows, "{name}");
                assert_eq!(sha256_hex(&bytes), p["sha256"].as_str().unwrap(), "{name}");
            }
            Err(e) => {
                assert!(!covers_rows, "{name}: {e}");
                assert!(e.to_string().contains("does not have sufficient slices"), "{e}");
            }
        }
        // Rows outside the slice are not covered.
        let before = rows.start.saturating_sub(1)..rows.start;
        if !before.is_empty() {
            assert!(ckpt.read_rows(name, before).is_err());
        }
    }
}

/// A graph variable as (name, full shape, trainable, parts as (name, slice)).
type Grouped = (String, Vec<u64>, bool, Vec<(String, Slice)>);

#[test]
fn meta_graph_collections_match_tensorflow() {
    for case in ["tf1_single", "tf1_sharded", "tf1_partitioned"] {
        let exp = expected(case);
        let ckpt = TfSource::open(&prefix(case)).unwrap();
        let graph = ckpt.graph().expect("a .meta file");
        // Group TensorFlow's global list as the reader does: partitions under their full name.
        let trainable: Vec<&str> =
            exp["meta"]["trainable"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
        let mut want: Vec<Grouped> = Vec::new();
        for v in exp["meta"]["global"].as_array().unwrap() {
            let name = v["name"].as_str().unwrap().to_string();
            let is_trainable = trainable.contains(&name.as_str());
            match v.get("save_slice_info") {
                Some(info) => {
                    let nums = |k: &str| -> Vec<u64> {
                        info[k].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect()
                    };
                    let full = info["full_name"].as_str().unwrap().to_string();
                    let part = (name, Slice { start: nums("var_offset"), len: nums("var_shape") });
                    match want.iter_mut().find(|w| w.0 == full) {
                        Some(w) => {
                            w.2 |= is_trainable;
                            w.3.push(part)
                        }
                        None => want.push((full, nums("full_shape"), is_trainable, vec![part])),
                    }
                }
                None => {
                    let shape = exp["tensors"][&name]["shape"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_u64().unwrap())
                        .collect();
                    want.push((name, shape, is_trainable, Vec::new()))
                }
            }
        }
        let got: Vec<Grouped> = graph
            .variables
            .iter()
            .map(|v| {
                (
                    v.name.clone(),
                    v.shape.clone(),
                    v.trainable,
                    v.parts.iter().map(|p| (p.name.clone(), p.slice.clone())).collect(),
                )
            })
            .collect();
        assert_eq!(got, want, "{case}");
    }
    assert!(TfSource::open(&prefix("tf2_keras")).unwrap().graph().is_none());
}

#[test]
fn object_graph_matches_tensorflow() {
    let exp = expected("tf2_keras");
    let ckpt = TfSource::open(&prefix("tf2_keras")).unwrap();
    let got: BTreeMap<String, String> = ckpt.object_graph_keys().unwrap().unwrap().into_iter().collect();
    let want: BTreeMap<String, String> = exp["object_graph"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    assert_eq!(got, want);
    for key in got.values() {
        assert!(ckpt.tensor(key).is_some(), "{key}");
    }
    let none: Option<HashMap<String, String>> =
        TfSource::open(&prefix("tf1_single")).unwrap().object_graph_keys().unwrap();
    assert!(none.is_none());
}

#[test]
fn paths_resolve_like_load_checkpoint_and_friendlier() {
    for case in ["tf1_single", "tf1_sharded", "tf2_keras"] {
        let want = prefix(case);
        let dir = fixtures().join(case);
        assert_eq!(TfSource::open(&dir).unwrap().prefix(), want, "directory of {case}");
        let index = format!("{}.index", want.display());
        assert_eq!(TfSource::open(index.as_ref()).unwrap().prefix(), want);
        let data = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().contains(".data-"))
            .unwrap();
        assert_eq!(TfSource::open(&data).unwrap().prefix(), want);
    }
    // The dtypes case has no state file: a clear error naming the directory.
    let err = TfSource::open(&fixtures().join("dtypes")).err().unwrap();
    assert!(matches!(err, TfError::NoCheckpoint { .. }), "{err}");
    assert!(err.to_string().contains("dtypes"), "{err}");
    let err = TfSource::open(&fixtures().join("dtypes/nothing")).err().unwrap();
    assert!(err.to_string().contains("nothing"), "{err}");
}

#[test]
fn sharded_checkpoint_uses_both_shards() {
    let ckpt = TfSource::open(&prefix("tf1_sharded")).unwrap();
    assert_eq!(ckpt.tensors().len(), 4);
    assert!(!ckpt.is_big_endian());
}

#[test]
fn wrong_requests_are_errors() {
    let ckpt = TfSource::open(&prefix("dtypes")).unwrap();
    assert!(ckpt.read("str_vec").unwrap_err().to_string().contains("str_vec"));
    assert!(ckpt.read_strings("f32").unwrap_err().to_string().contains("f32"));
    assert!(ckpt.read("nope").unwrap_err().to_string().contains("nope"));
    let scalar = ckpt.read("scalar_i32").unwrap();
    assert_eq!(&scalar[..], 42i32.to_le_bytes());
    assert!(ckpt.read("empty_f32").unwrap().is_empty());
}
