use super::*;
use crate::{SafetensorsSink, SafetensorsSource};
use std::path::Path;
use warmstart_core::test_support::fixtures;
use warmstart_core::{CheckpointSink, CheckpointSource, SinkTensor};

fn area() -> std::path::PathBuf {
    fixtures().join("safetensors_shards")
}

#[test]
fn split_gives_a_large_tensor_its_own_shard_before_the_one_being_filled() {
    assert_eq!(split(&[6, 6, 2, 6, 2, 2], 10), [vec![0], vec![1, 2], vec![3, 4, 5]]);
    assert_eq!(split(&[3, 20, 3, 3], 10), [vec![1], vec![0, 2, 3]]);
    assert_eq!(split(&[], 10), Vec::<Vec<usize>>::new());
    assert_eq!(shard_names(1), ["model.safetensors"]);
    assert_eq!(shard_names(2), ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]);
}

#[test]
fn the_index_escapes_as_python_json_does() {
    let map = BTreeMap::from([("é😀\"\n".to_string(), "a".to_string())]);
    let text = String::from_utf8(index_json(3, &map)).unwrap();
    let want = "{\n  \"metadata\": {\n    \"total_size\": 3\n  },\n  \"weight_map\": {\n    \"\\u00e9\\ud83d\\ude00\\\"\\n\": \"a\"\n  }\n}\n";
    assert_eq!(text, want);
}

/// Every file of `dir`, sorted, with its bytes.
fn files(dir: &Path, skip: &[&str]) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .filter(|(n, _)| !skip.contains(&n.as_str()))
        .collect();
    out.sort();
    out
}

/// Writes the input's tensors sharded for `max` bytes into `out`.
fn write_sharded(out: &Path, max: u64) -> SafetensorsSource {
    let src = SafetensorsSource::open(area().join("input/model.safetensors")).unwrap();
    let tensors: Vec<_> = src.tensors().iter().cloned().map(SinkTensor::whole).collect();
    let mut sink = Box::new(SafetensorsSink::create_sharded(out, &tensors, src.metadata().cloned(), max).unwrap());
    for t in &tensors {
        sink.begin_tensor(t).unwrap();
        sink.write_data(&src.read(&t.info.name).unwrap()).unwrap();
        sink.end_tensor().unwrap();
    }
    sink.finish().unwrap();
    src
}

#[test]
fn shards_and_index_are_byte_identical_to_hugging_faces() {
    let mut cases = 0;
    for case in ["kb5", "kib3", "kb2_5", "mb1"] {
        let dir = area().join(case);
        let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("case.json")).unwrap()).unwrap();
        let max = meta["bytes"].as_u64().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let src = write_sharded(&out, max);
        assert_eq!(files(&out, &[]), files(&dir, &["case.json"]), "{case}");
        // It reads back as one checkpoint.
        let back = SafetensorsSource::open(&out).unwrap();
        assert_eq!(back.tensors().len(), src.tensors().len());
        for t in src.tensors() {
            assert_eq!(back.read(&t.name).unwrap(), src.read(&t.name).unwrap(), "{case}: {}", t.name);
        }
        cases += 1;
    }
    assert_eq!(cases, 4);
}

#[test]
fn a_new_save_removes_the_shards_and_index_of_an_earlier_one() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    write_sharded(&out, 3072);
    std::fs::write(out.join("notes.txt"), "kept").unwrap();
    std::fs::write(out.join("model-1-of-2.safetensors"), "not a shard name: kept").unwrap();
    write_sharded(&out, 5000);
    let mut want = files(&area().join("kb5"), &["case.json"]);
    want.push(("model-1-of-2.safetensors".into(), b"not a shard name: kept".to_vec()));
    want.push(("notes.txt".into(), b"kept".to_vec()));
    want.sort();
    assert_eq!(files(&out, &[]), want);
    write_sharded(&out, 1_000_000);
    let names: Vec<String> = files(&out, &[]).into_iter().map(|f| f.0).collect();
    assert_eq!(names, ["model-1-of-2.safetensors", "model.safetensors", "notes.txt"]);
}

#[test]
fn an_unfinished_sharded_output_leaves_nothing_not_even_its_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let src = SafetensorsSource::open(area().join("input/model.safetensors")).unwrap();
    let tensors: Vec<_> = src.tensors().iter().cloned().map(SinkTensor::whole).collect();
    let mut sink = SafetensorsSink::create_sharded(tmp.path().join("out"), &tensors, None, 5000).unwrap();
    sink.begin_tensor(&tensors[0]).unwrap();
    sink.write_data(&src.read(&tensors[0].info.name).unwrap()).unwrap();
    sink.end_tensor().unwrap();
    let err = Box::new(sink).finish().unwrap_err();
    assert!(err.to_string().contains("declared but never written"), "{err}");
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

/// `gen_safetensors_shards.py verify` loaded what this writes with safetensors and transformers; its
/// committed result says every check passed.
#[test]
fn safetensors_and_transformers_loaded_the_output() {
    let text = std::fs::read_to_string(area().join("verify.txt")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.iter().all(|l| l.starts_with("ok ")), "{text}");
    for case in ["kb5", "kib3", "kb2_5"] {
        assert!(lines.iter().any(|l| l.contains(&format!("{case}: transformers"))), "{case}: {text}");
        assert!(lines.iter().any(|l| l.contains(&format!("{case}: safetensors"))), "{case}: {text}");
    }
}

/// Writes each case into `$WARMSTART_SHARDS_OUT/<case>/` for `gen_safetensors_shards.py verify`.
#[test]
#[ignore = "writes folders for tests/fixtures/gen_safetensors_shards.py verify; needs WARMSTART_SHARDS_OUT"]
fn write_for_verify() {
    let out = std::path::PathBuf::from(std::env::var_os("WARMSTART_SHARDS_OUT").expect("WARMSTART_SHARDS_OUT"));
    for (case, max) in [("kb5", 5000), ("kib3", 3072), ("kb2_5", 2500), ("mb1", 1_000_000)] {
        write_sharded(&out.join(case), max);
    }
}
