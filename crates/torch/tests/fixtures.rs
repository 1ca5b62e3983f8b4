//! The reader against what torch wrote (`tests/fixtures/gen_torch.py`): every tensor's name, dtype,
//! shape and bytes as `torch.load` reads them back, for state dicts, views, tied weights, big-endian
//! archives, nested dicts, pickle protocol 5 and a sharded transformers folder; and the files that
//! must be refused (a disallowed global, the legacy format), refused with a message that says why.

use std::path::PathBuf;

use serde_json::Value;
use sha2::{Digest, Sha256};
use warmstart_core::test_support::{fixture, read_everything};
use warmstart_core::{CheckpointSource, Error, TorchError};
use warmstart_torch::TorchSource;

const CASES: [&str; 7] = ["plain", "views", "tied", "bigendian", "nested", "protocol5", "sharded"];

fn expected(case: &str) -> (PathBuf, Value) {
    let dir = fixture("torch", case);
    let expected: Value = serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
    (dir.join(expected["source"].as_str().unwrap()), expected)
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn every_tensor_reads_as_torch_load_reads_it() {
    for case in CASES {
        let (path, expected) = expected(case);
        let src = TorchSource::open(&path).unwrap_or_else(|e| panic!("{case}: {e}"));
        let want = expected["tensors"].as_array().unwrap();
        let names: Vec<&str> = src.tensors().iter().map(|t| t.name.as_str()).collect();
        let want_names: Vec<&str> = want.iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert_eq!(names, want_names, "{case}");
        for (t, w) in src.tensors().iter().zip(want) {
            assert_eq!(t.dtype.to_string(), w["dtype"].as_str().unwrap(), "{case}: {}", t.name);
            let shape: Vec<u64> = w["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).collect();
            assert_eq!(t.shape, shape, "{case}: {}", t.name);
            let bytes = src.read(&t.name).unwrap();
            assert_eq!(sha256_hex(&bytes), w["sha256"].as_str().unwrap(), "{case}: {}", t.name);
        }
        read_everything(&src).unwrap();
        src.check_unchanged().unwrap();
    }
}

#[test]
fn rows_of_views_are_the_rows_of_the_whole() {
    for case in ["views", "bigendian", "plain"] {
        let (path, _) = expected(case);
        let src = TorchSource::open(&path).unwrap();
        for t in src.tensors() {
            let whole = src.read(&t.name).unwrap().into_owned();
            let row_bytes = t.row_bytes().unwrap() as usize;
            for row in 0..t.rows() {
                let got = src.read_rows(&t.name, row..row + 1).unwrap();
                let at = row as usize * row_bytes;
                assert_eq!(&*got, &whole[at..at + row_bytes], "{case}: {} row {row}", t.name);
                src.release(&t.name, row..row + 1);
            }
        }
    }
}

#[test]
fn tied_weights_are_two_tensors_with_the_same_bytes() {
    let (path, _) = expected("tied");
    let src = TorchSource::open(&path).unwrap();
    assert_eq!(src.read("embed.weight").unwrap(), src.read("lm_head.weight").unwrap());
    assert_eq!(&*src.read("head_rows").unwrap(), &src.read("embed.weight").unwrap()[6..18]);
}

#[test]
fn a_disallowed_global_is_refused_by_name() {
    let (path, expected) = expected("disallowed");
    let err = TorchSource::open(&path).unwrap_err();
    let global = expected["refused"]["global"].as_str().unwrap();
    let (module, name) = global.rsplit_once('.').unwrap();
    assert!(
        matches!(err.torch(), Some(TorchError::DisallowedGlobal { module: m, name: n, .. }) if m == module && n == name),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains(global) && text.contains("model.pt") && text.contains("nothing was run"), "{text}");
}

#[test]
fn the_legacy_format_is_refused_saying_so() {
    let (path, _) = expected("legacy");
    let err = TorchSource::open(&path).unwrap_err();
    assert!(matches!(err.torch(), Some(TorchError::LegacyFormat { .. })), "{err}");
    assert!(err.to_string().contains("legacy PyTorch format (torch < 1.6"), "{err}");
}

#[test]
fn the_sharded_folder_opens_by_its_index_too() {
    let (folder, expected) = expected("sharded");
    let index = folder.join("pytorch_model.bin.index.json");
    let src = TorchSource::open(&index).unwrap();
    assert_eq!(src.tensors().len(), expected["tensors"].as_array().unwrap().len());
    let shard = folder.join("pytorch_model-00002-of-00002.bin");
    let one = TorchSource::open(&shard).unwrap();
    assert!(one.tensors().len() < src.tensors().len());
    assert!(matches!(src.read_rows("nope", 0..1), Err(Error::TensorNotFound { .. })));
}

#[test]
fn an_archive_truncated_under_the_reader_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.pt");
    std::fs::copy(expected("plain").0, &path).unwrap();
    let src = TorchSource::open(&path).unwrap();
    std::fs::File::options().write(true).open(&path).unwrap().set_len(4096).unwrap();
    // Bytes past the new end read as zeros (no SIGBUS), and the reads from then on fail.
    let results: Vec<_> =
        src.tensors().iter().map(|t| src.read(&t.name).map(|b| b.iter().map(|&x| u64::from(x)).sum::<u64>())).collect();
    let err = results.into_iter().find_map(Result::err).expect("a read after the truncation failed");
    assert!(err.to_string().contains("model.pt") && err.to_string().contains("truncated"), "{err}");
    let err = src.check_unchanged().unwrap_err().to_string();
    assert!(err.contains("changed while being read"), "{err}");
}
