//! The writer: bundles we write read back identically with our reader, are byte-identical to what
//! TensorFlow writes for the same tensors, and (with `WARMSTART_TF_VERIFY_DIR` set, see
//! `write_bundles_for_tensorflow`) are read by TensorFlow itself.

mod common;

use std::path::Path;

use common::*;
use warmstart_core::{CheckpointSink, CheckpointSource, DType, Error, SinkTensor, TensorInfo};
use warmstart_tf::{TfError, TfSink, TfSource};

/// The tensors of `src` as the writer takes them: partitioned ones as their slices (rows read from the
/// source), others whole. Slices that do not cover whole rows are left out.
fn sink_tensors(src: &TfSource) -> Vec<SinkTensor> {
    let mut out = Vec::new();
    for t in src.tensors() {
        match src.slices(&t.name) {
            Some(slices) => {
                for s in slices {
                    if (1..t.shape.len()).all(|d| s.start[d] == 0 && s.len[d] == t.shape[d]) {
                        out.push(SinkTensor { info: t.clone(), slice: Some(s) });
                    }
                }
            }
            None => out.push(SinkTensor::whole(t.clone())),
        }
    }
    out
}

/// Copies `src` into a new bundle at `prefix` through the `CheckpointSink` trait, in `chunk`-byte pieces.
fn copy(src: &TfSource, prefix: &Path, shards: usize, chunk: usize) -> Vec<SinkTensor> {
    let tensors = sink_tensors(src);
    let mut sink: Box<dyn CheckpointSink> = Box::new(TfSink::create(prefix, &tensors, shards).unwrap());
    for t in &tensors {
        if t.info.dtype == DType::String {
            sink.write_strings(t, &src.read_strings(&t.info.name).unwrap()).unwrap();
            continue;
        }
        let bytes = match &t.slice {
            Some(s) => src.read_rows(&t.info.name, s.start[0]..s.start[0] + s.len[0]).unwrap().into_owned(),
            None => src.read(&t.info.name).unwrap().into_owned(),
        };
        sink.begin_tensor(t).unwrap();
        for piece in bytes.chunks(chunk.max(1)) {
            sink.write_data(piece).unwrap();
        }
        sink.end_tensor().unwrap();
    }
    sink.finish().unwrap();
    tensors
}

#[test]
fn copies_read_back_identically() {
    for case in CASES {
        if case == "slice_keys" {
            continue;
        }
        for shards in [1, 3] {
            let dir = tempfile::tempdir().unwrap();
            let src = TfSource::open(&prefix(case)).unwrap();
            let out = dir.path().join("copy");
            copy(&src, &out, shards, 7);
            // The directory's state file points at the copy.
            let back = TfSource::open(dir.path()).unwrap();
            assert_eq!(back.prefix(), out);
            assert_eq!(back.tensors(), src.tensors(), "{case}");
            for t in src.tensors() {
                assert_eq!(describe(&back, &t.name), describe(&src, &t.name), "{case}/{}", t.name);
                assert_eq!(back.slices(&t.name), src.slices(&t.name), "{case}/{}", t.name);
            }
            assert_eq!(back.object_graph_keys().unwrap(), src.object_graph_keys().unwrap());
            for i in 0..shards {
                assert!(dir.path().join(format!("copy.data-{i:05}-of-{shards:05}")).is_file());
            }
            // Only the bundle and the state file are left: no temporary files.
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), shards + 2, "{case}");
        }
    }
}

/// TensorFlow's `SaveV2` from a TF1 `Saver` (or called directly) adds tensors in name order into one
/// shard: the same tensors through our writer give the same `.index` and `.data` bytes. (TF2's
/// `Checkpoint` adds the object graph last, so its data order differs.)
#[test]
fn byte_identical_to_tensorflow() {
    for case in ["dtypes", "tf1_single", "tf1_partitioned"] {
        let src_prefix = prefix(case);
        let src = TfSource::open(&src_prefix).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("same");
        copy(&src, &out, 1, 1 << 20);
        let read = |p: &Path, suffix: &str| std::fs::read(format!("{}{suffix}", p.display())).unwrap();
        assert!(read(&src_prefix, ".index") == read(&out, ".index"), "{case}: .index differs");
        let data = ".data-00000-of-00001";
        assert!(read(&src_prefix, data) == read(&out, data), "{case}: .data differs");
    }
}

#[test]
fn dropping_an_unfinished_sink_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let t = SinkTensor::whole(TensorInfo::new("w", DType::F32, vec![2]));
    let mut sink = TfSink::create(&dir.path().join("m"), std::slice::from_ref(&t), 2).unwrap();
    sink.begin_tensor(&t).unwrap();
    sink.write_data(&[0; 4]).unwrap();
    drop(sink);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn writer_misuse_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m");
    let w = SinkTensor::whole(TensorInfo::new("w", DType::F32, vec![2]));
    let s = SinkTensor::whole(TensorInfo::new("s", DType::String, vec![2]));
    let f8 = SinkTensor::whole(TensorInfo::new("f8", DType::F8E8M0, vec![2]));
    assert!(matches!(
        TfSink::create(&p, &[f8], 1).err().as_ref().and_then(Error::tf),
        Some(TfError::BadSinkTensor { .. })
    ));
    assert!(matches!(
        TfSink::create(&p, &[w.clone(), w.clone()], 1).err().as_ref().and_then(Error::tf),
        Some(TfError::BadSinkTensor { .. })
    ));
    assert!(matches!(
        TfSink::create(&p, std::slice::from_ref(&w), 0).err().as_ref().and_then(Error::tf),
        Some(TfError::SinkMisuse { .. })
    ));
    let bad_slice =
        SinkTensor { info: w.info.clone(), slice: Some(warmstart_core::Slice { start: vec![1], len: vec![2] }) };
    assert!(matches!(
        TfSink::create(&p, &[bad_slice], 1).err().as_ref().and_then(Error::tf),
        Some(TfError::BadSinkTensor { .. })
    ));

    let mut sink = TfSink::create(&p, &[w.clone(), s.clone()], 1).unwrap();
    let err = sink.write_data(&[0; 4]).unwrap_err();
    assert!(err.to_string().contains("outside a tensor"), "{err}");
    sink.begin_tensor(&w).unwrap();
    assert!(sink.write_data(&[0; 12]).unwrap_err().to_string().contains("\"w\""));
    sink.write_data(&[0; 4]).unwrap();
    assert!(sink.end_tensor().is_err());
    assert!(sink.write_strings(&s, &[b"a".to_vec()]).is_err());
    sink.write_strings(&s, &[b"a".to_vec(), Vec::new()]).unwrap();
    let err = Box::new(sink).finish().unwrap_err();
    assert!(err.to_string().contains("\"w\""), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// Writes bundles for TensorFlow to read into `$WARMSTART_TF_VERIFY_DIR`, each with a `meant.json`
/// saying what TensorFlow should see (what it read from the fixture we copied). Then run
/// `"$PY" tests/fixtures/gen_tf.py verify "$WARMSTART_TF_VERIFY_DIR"`.
#[test]
#[ignore = "writes bundles for tests/fixtures/gen_tf.py verify; needs WARMSTART_TF_VERIFY_DIR"]
fn write_bundles_for_tensorflow() {
    let root = std::path::PathBuf::from(std::env::var("WARMSTART_TF_VERIFY_DIR").expect("WARMSTART_TF_VERIFY_DIR"));
    for case in CASES {
        if case == "slice_keys" {
            continue;
        }
        for shards in [1, 3] {
            let dir = root.join(format!("{case}-{shards}shards"));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let src = TfSource::open(&prefix(case)).unwrap();
            copy(&src, &dir.join("ours.ckpt-3"), shards, 5);
            let mut tensors = expected(case)["tensors"].clone();
            tensors.as_object_mut().unwrap().retain(|_, v| v.get("unreadable").is_none());
            let meant = serde_json::json!({"prefix": "ours.ckpt-3", "tensors": tensors});
            std::fs::write(dir.join("meant.json"), serde_json::to_string_pretty(&meant).unwrap()).unwrap();
        }
    }
    // More shards than tensors: some data files are empty.
    let dir = root.join("empty-shards");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let w = SinkTensor::whole(TensorInfo::new("w", DType::I16, vec![2]));
    let mut sink = TfSink::create(&dir.join("few"), std::slice::from_ref(&w), 4).unwrap();
    sink.begin_tensor(&w).unwrap();
    sink.write_data(&[1, 0, 255, 255]).unwrap();
    sink.end_tensor().unwrap();
    Box::new(sink).finish().unwrap();
    let sha = sha256_hex(&[1, 0, 255, 255]);
    let meant = serde_json::json!({"prefix": "few", "tensors": {"w": {"dtype": "I16", "shape": [2], "sha256": sha}}});
    std::fs::write(dir.join("meant.json"), serde_json::to_string_pretty(&meant).unwrap()).unwrap();
    assert_eq!(describe(&TfSource::open(&dir).unwrap(), "w")["sha256"], sha);

    // Enough tensors for an index of several 256 KiB blocks.
    let dir = root.join("many-tensors");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let tensors: Vec<SinkTensor> = (0..8000)
        .map(|i| {
            let name = format!("layer_{i:05}/a/rather/long/variable/name/so/the/index/needs/blocks");
            SinkTensor::whole(TensorInfo::new(name, DType::I32, vec![]))
        })
        .collect();
    let mut sink = TfSink::create(&dir.join("many"), &tensors, 1).unwrap();
    let mut meant_tensors = serde_json::Map::new();
    for (i, t) in tensors.iter().enumerate() {
        let bytes = (i as i32).to_le_bytes();
        sink.begin_tensor(t).unwrap();
        sink.write_data(&bytes).unwrap();
        sink.end_tensor().unwrap();
        meant_tensors.insert(
            t.info.name.clone(),
            serde_json::json!({"dtype": "I32", "shape": [], "sha256": sha256_hex(&bytes)}),
        );
    }
    Box::new(sink).finish().unwrap();
    let index_len = std::fs::metadata(dir.join("many.index")).unwrap().len();
    assert!(index_len > 2 * 262_144, "{index_len}");
    let meant = serde_json::json!({"prefix": "many", "tensors": meant_tensors, "compare_with_tf_save": true});
    std::fs::write(dir.join("meant.json"), serde_json::to_string(&meant).unwrap()).unwrap();
    let back = TfSource::open(&dir).unwrap();
    assert_eq!(back.tensors().len(), 8000);
    assert_eq!(&back.read(&tensors[7999].info.name).unwrap()[..], 7999i32.to_le_bytes());
}

#[test]
fn an_empty_tensor_whose_row_size_overflows_writes_and_reads_as_empty() {
    // Shape [0, 2^62] holds no bytes, but its row size overflows: reading its (zero) rows was refused
    // as too large.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m");
    let t = SinkTensor::whole(TensorInfo::new("e", DType::F32, vec![0, 1 << 62]));
    let mut sink = TfSink::create(&p, std::slice::from_ref(&t), 1).unwrap();
    sink.begin_tensor(&t).unwrap();
    sink.end_tensor().unwrap();
    Box::new(sink).finish().unwrap();
    let ckpt = TfSource::open(&p).unwrap();
    assert_eq!(ckpt.tensor("e").unwrap(), &t.info);
    assert_eq!(ckpt.read("e").unwrap().len(), 0);
    assert!(ckpt.read_rows("e", 0..1).is_err());
}

#[test]
fn blocks_of_several_mib_are_hashed_piece_by_piece_and_read_back() {
    // 5 MiB + 12 bytes in one write: several 1 MiB pieces and a short one; the reader checks the CRC.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m");
    let t = SinkTensor::whole(TensorInfo::new("big", DType::U8, vec![(5 << 20) + 12]));
    let data: Vec<u8> = (0..(5u32 << 20) + 12).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
    let mut sink = TfSink::create(&p, std::slice::from_ref(&t), 1).unwrap();
    sink.begin_tensor(&t).unwrap();
    sink.write_data(&data[..7]).unwrap();
    sink.write_data(&data[7..]).unwrap();
    sink.end_tensor().unwrap();
    Box::new(sink).finish().unwrap();
    let ckpt = TfSource::open(&p).unwrap();
    assert!(ckpt.read("big").unwrap() == data);
}

#[test]
fn a_failed_finish_leaves_no_partial_checkpoint() {
    // The data shards were renamed into place before the index; when the index (or the `checkpoint`
    // state file) then could not be, the shards stayed behind beside an error.
    for blocker in ["m.index", "checkpoint"] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(blocker)).unwrap();
        std::fs::write(dir.path().join(blocker).join("keep"), b"x").unwrap();
        let t = SinkTensor::whole(TensorInfo::new("w", DType::F32, vec![2]));
        let mut sink = TfSink::create(&dir.path().join("m"), std::slice::from_ref(&t), 2).unwrap();
        sink.begin_tensor(&t).unwrap();
        sink.write_data(&[0; 8]).unwrap();
        sink.end_tensor().unwrap();
        let err = Box::new(sink).finish().unwrap_err();
        assert!(err.to_string().contains(blocker), "{err}");
        let left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, [blocker], "{blocker}");
    }
}

#[test]
fn folders_made_for_an_unfinished_checkpoint_are_removed() {
    // As TensorFlow's savers do, the writer makes the destination folder; when the checkpoint is
    // never finished, the folders it made went on existing, empty.
    let dir = tempfile::tempdir().unwrap();
    let t = SinkTensor::whole(TensorInfo::new("w", DType::F32, vec![2]));
    let prefix = dir.path().join("a").join("b").join("m");
    let mut sink = TfSink::create(&prefix, std::slice::from_ref(&t), 2).unwrap();
    assert!(dir.path().join("a/b").is_dir());
    sink.begin_tensor(&t).unwrap();
    drop(sink);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    // A folder that existed is kept; one made and then finished into is kept.
    std::fs::create_dir(dir.path().join("a")).unwrap();
    let mut sink = TfSink::create(&prefix, std::slice::from_ref(&t), 1).unwrap();
    sink.begin_tensor(&t).unwrap();
    sink.write_data(&[0; 8]).unwrap();
    sink.end_tensor().unwrap();
    Box::new(sink).finish().unwrap();
    assert!(TfSource::open(&prefix).is_ok());
    let sink = TfSink::create(&dir.path().join("a/c/m"), std::slice::from_ref(&t), 1).unwrap();
    drop(sink);
    let mut left: Vec<_> = std::fs::read_dir(dir.path().join("a")).unwrap().map(|e| e.unwrap().file_name()).collect();
    left.sort();
    assert_eq!(left, ["b"]);
}

#[cfg(unix)]
#[test]
fn written_files_get_the_permissions_of_an_ordinary_new_file() {
    // Not the private 0600 of a temporary file: 0666 less the umask, as TensorFlow's files get.
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain");
    std::fs::write(&plain, b"").unwrap();
    let t = SinkTensor::whole(TensorInfo::new("w", DType::F32, vec![2]));
    let mut sink = TfSink::create(&dir.path().join("m"), std::slice::from_ref(&t), 2).unwrap().sync_on_finish(true);
    sink.begin_tensor(&t).unwrap();
    sink.write_data(&[0; 8]).unwrap();
    sink.end_tensor().unwrap();
    Box::new(sink).finish().unwrap();
    let mode = |name: &str| std::fs::metadata(dir.path().join(name)).unwrap().permissions().mode() & 0o777;
    for name in ["m.index", "m.data-00000-of-00002", "m.data-00001-of-00002", "checkpoint"] {
        assert_eq!(mode(name), mode("plain"), "{name}");
    }
}
