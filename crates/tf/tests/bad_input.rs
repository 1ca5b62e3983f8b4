//! Damaged copies of TensorFlow-written checkpoints: truncated files, flipped bytes, bad magic, missing
//! shards and a bad state file give a clear error naming the file (and tensor), never a panic; a bounded
//! loop of random byte flips (fixed seed) over every file of a few fixtures must never panic.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use warmstart_core::test_support::{read_everything, Rng};
use warmstart_core::CheckpointSource;
use warmstart_tf::{TfError, TfSource};

fn copy_to_temp(case: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    copy_case(case, dir.path());
    let p = dir.path().join(prefix(case).file_name().unwrap());
    (dir, p)
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", p.display()))
}

#[test]
fn truncated_index() {
    let (_dir, p) = copy_to_temp("tf1_single");
    let index = with_suffix(&p, ".index");
    let bytes = std::fs::read(&index).unwrap();
    for len in [0, 1, 47, 48, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&index, &bytes[..len]).unwrap();
        let e = TfSource::open(&p).err().expect("truncated index opened");
        assert!(e.to_string().contains(".index"), "{len}: {e}");
        if len < 48 {
            assert!(matches!(e, TfError::TooShort { .. }), "{e}");
        }
    }
}

#[test]
fn bad_magic() {
    let (_dir, p) = copy_to_temp("tf1_single");
    let index = with_suffix(&p, ".index");
    let mut bytes = std::fs::read(&index).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0xff;
    std::fs::write(&index, &bytes).unwrap();
    let e = TfSource::open(&p).err().unwrap();
    assert!(matches!(e, TfError::BadMagic { .. }), "{e}");
    assert!(e.to_string().contains("bad magic number"), "{e}");
}

#[test]
fn flipped_byte_in_an_index_block() {
    let (_dir, p) = copy_to_temp("tf1_single");
    let index = with_suffix(&p, ".index");
    let mut bytes = std::fs::read(&index).unwrap();
    bytes[20] ^= 0x01;
    std::fs::write(&index, &bytes).unwrap();
    let e = TfSource::open(&p).err().unwrap();
    assert!(matches!(e, TfError::BlockChecksum { offset: 0, .. }), "{e}");
    assert!(e.to_string().contains("model.ckpt-12.index"), "{e}");
}

#[test]
fn flipped_byte_in_a_tensor() {
    let (_dir, p) = copy_to_temp("tf1_single");
    let data = with_suffix(&p, ".data-00000-of-00001");
    let mut bytes = std::fs::read(&data).unwrap();
    bytes[0] ^= 0x01;
    std::fs::write(&data, &bytes).unwrap();
    let ckpt = TfSource::open(&p).unwrap();
    let first = ckpt.tensors().iter().find(|t| {
        // The tensor stored at offset 0 is the first in name order.
        t.name == "counts"
    });
    assert!(first.is_some());
    let e = ckpt.read_rows("counts", 0..1).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("checksum mismatch") && msg.contains("\"counts\"") && msg.contains(".data-00000-of-00001"),
        "{msg}"
    );
    // The error stays on every read; other tensors are unaffected.
    assert!(ckpt.read("counts").is_err());
    assert!(ckpt.read("dense/kernel").is_ok());
}

#[test]
fn flipped_byte_in_a_partitioned_tensor() {
    let (_dir, p) = copy_to_temp("tf1_partitioned");
    let data = with_suffix(&p, ".data-00000-of-00001");
    let mut bytes = std::fs::read(&data).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0x80;
    std::fs::write(&data, &bytes).unwrap();
    let ckpt = TfSource::open(&p).unwrap();
    let failures: Vec<String> =
        ckpt.tensors().iter().filter_map(|t| ckpt.read(&t.name).err().map(|e| e.to_string())).collect();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0].contains("checksum mismatch") && failures[0].contains("slice"), "{failures:?}");
}

#[test]
fn truncated_data_file() {
    let (_dir, p) = copy_to_temp("tf1_single");
    let data = with_suffix(&p, ".data-00000-of-00001");
    let bytes = std::fs::read(&data).unwrap();
    std::fs::write(&data, &bytes[..bytes.len() - 3]).unwrap();
    let e = TfSource::open(&p).err().unwrap();
    assert!(matches!(e, TfError::DataOutOfRange { .. }), "{e}");
    assert!(e.to_string().contains(".data-00000-of-00001"), "{e}");
}

#[test]
fn missing_shard() {
    let (_dir, p) = copy_to_temp("tf1_sharded");
    let shard = with_suffix(&p, ".data-00001-of-00002");
    std::fs::remove_file(&shard).unwrap();
    let e = TfSource::open(&p).err().unwrap();
    assert!(matches!(e, TfError::MissingShard { shard: 1, num_shards: 2, .. }), "{e}");
    assert!(e.to_string().contains("model.data-00001-of-00002"), "{e}");
}

#[test]
fn bad_state_file() {
    let (dir, _p) = copy_to_temp("tf1_single");
    std::fs::write(dir.path().join("checkpoint"), "model_checkpoint_path: \"unterminated\n").unwrap();
    let e = TfSource::open(dir.path()).err().unwrap();
    assert!(matches!(e, TfError::BadCheckpointState { .. }), "{e}");
    std::fs::write(dir.path().join("checkpoint"), "model_checkpoint_path: \"gone\"\n").unwrap();
    let e = TfSource::open(dir.path()).err().unwrap();
    assert!(e.to_string().contains("gone"), "{e}");
}

#[test]
fn corrupt_meta_file() {
    let (_dir, p) = copy_to_temp("tf1_partitioned");
    std::fs::write(with_suffix(&p, ".meta"), [0x22, 0xff, 0xff, 0xff, 0x0f]).unwrap();
    let e = TfSource::open(&p).err().unwrap();
    assert!(e.to_string().contains("model-0.meta"), "{e}");
}

#[test]
fn random_byte_flips_never_panic() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut outcomes = [0usize; 3]; // opened and read, open failed, a read failed
    for case in ["tf1_partitioned", "dtypes", "tf2_keras", "tf1_sharded"] {
        let (dir, p) = copy_to_temp(case);
        let files: Vec<PathBuf> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|f| {
                let n = f.file_name().unwrap().to_string_lossy().into_owned();
                n.contains(".index") || n.contains(".data-") || n.ends_with(".meta")
            })
            .collect();
        let originals: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
        for _ in 0..150 {
            let which = rng.below(files.len());
            let mut bytes = originals[which].clone();
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(bytes.len());
                bytes[at] ^= 1 << rng.below(8);
            }
            if rng.below(8) == 0 {
                bytes.truncate(rng.below(bytes.len()));
            }
            std::fs::write(&files[which], &bytes).unwrap();
            match TfSource::open(&p) {
                Ok(ckpt) => match read_everything(&ckpt) {
                    Ok(()) => outcomes[0] += 1,
                    Err(e) => {
                        assert!(!e.to_string().is_empty());
                        outcomes[2] += 1
                    }
                },
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    outcomes[1] += 1
                }
            }
            std::fs::write(&files[which], &originals[which]).unwrap();
        }
    }
    eprintln!(
        "random flips: {} read fine, {} refused at open, {} refused at read",
        outcomes[0], outcomes[1], outcomes[2]
    );
    // The flips must actually have been caught, at open and at read.
    assert!(outcomes[1] > 100 && outcomes[2] > 20, "{outcomes:?}");
}
