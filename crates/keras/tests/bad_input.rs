//! Damaged archives and indexes: a bounded, deterministic corruption loop over the archives Keras
//! wrote (bit flips anywhere, truncations, forged 4-byte fields in the zip structures), forged member
//! sizes and offsets, compressed or missing weights, and indexes naming shards that are missing,
//! outside the folder or holding the same tensor. Opening and reading everything never panics, hangs
//! or allocates by a forged size: it succeeds, or the error names the file. `KERAS_FUZZ_SEED=n` runs
//! the loop with seed `n`.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use warmstart_core::test_support::{read_everything, Rng};
use warmstart_core::{CheckpointSource, Error, KerasError};
use warmstart_keras::{KerasShardedSource, KerasSource};

/// The model archive's bytes.
fn model_bytes() -> Vec<u8> {
    std::fs::read(common::json("model").0).unwrap()
}

fn le32(bytes: &[u8], at: usize) -> usize {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize
}

/// The offset of the central directory entry of member `name`.
fn central_entry(bytes: &[u8], name: &str) -> usize {
    let eocd = bytes.windows(4).rposition(|w| w == b"PK\x05\x06").unwrap();
    let mut at = le32(bytes, eocd + 16);
    loop {
        assert_eq!(&bytes[at..at + 4], b"PK\x01\x02");
        let (name_len, extra, comment) = (
            u16::from_le_bytes([bytes[at + 28], bytes[at + 29]]) as usize,
            u16::from_le_bytes([bytes[at + 30], bytes[at + 31]]) as usize,
            u16::from_le_bytes([bytes[at + 32], bytes[at + 33]]) as usize,
        );
        if &bytes[at + 46..at + 46 + name_len] == name.as_bytes() {
            return at;
        }
        at += 46 + name_len + extra + comment;
    }
}

/// Writes `bytes` to `dir/name` and opens it.
fn open(dir: &Path, name: &str, bytes: &[u8]) -> (PathBuf, Result<KerasSource, Error>) {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    let opened = KerasSource::open(&path);
    (path, opened)
}

fn keras_error(e: &Error) -> &KerasError {
    e.keras().unwrap_or_else(|| panic!("not a Keras error: {e}"))
}

/// Outcome of one damaged archive: 0 read whole, 1 refused at open, 2 refused at read.
fn outcome(path: &Path, opened: Result<KerasSource, Error>) -> usize {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let refused = |e: Error| assert!(e.to_string().contains(&name), "the error does not name {name}: {e}");
    match opened {
        Ok(src) => match read_everything(&src) {
            Ok(()) => 0,
            Err(e) => {
                refused(e);
                2
            }
        },
        Err(e) => {
            refused(e);
            1
        }
    }
}

#[test]
fn random_corruption_never_panics_or_hangs() {
    let seed = std::env::var("KERAS_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x6b65_7261_7301);
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let original = model_bytes();
    let mut outcomes = [0usize; 3];
    for i in 0..300 {
        let mut bytes = original.clone();
        match i % 3 {
            0 => {
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(bytes.len());
                    bytes[at] ^= 1 << rng.below(8);
                }
            }
            1 => bytes.truncate(rng.below(bytes.len())),
            _ => {
                // A forged 4-byte field (a size, offset or count) somewhere in the zip structures.
                let zip_parts: Vec<usize> =
                    bytes.windows(4).enumerate().filter(|(_, w)| w.starts_with(b"PK")).map(|(i, _)| i).collect();
                let at = (zip_parts[rng.below(zip_parts.len())] + 4 + rng.below(40)).min(bytes.len() - 4);
                let value = [0u32, 1, 0xffff_ffff, 0x7fff_ffff, bytes.len() as u32][rng.below(5)];
                bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
            }
        }
        let start = Instant::now();
        let (path, opened) = open(dir.path(), "damaged.keras", &bytes);
        outcomes[outcome(&path, opened)] += 1;
        assert!(start.elapsed() < Duration::from_secs(10), "input {i} took {:?}", start.elapsed());
    }
    eprintln!("keras: {outcomes:?} (read fine, refused at open, refused at read)");
    assert!(outcomes[1] > 100, "{outcomes:?}");
}

#[test]
fn forged_member_sizes_and_offsets_are_refused_before_use() {
    let dir = tempfile::tempdir().unwrap();
    let original = model_bytes();
    let entry = central_entry(&original, warmstart_keras::WEIGHTS);
    // Sizes past the end of the file, in the central directory.
    for forged in [0xffff_fff0u32, original.len() as u32] {
        let mut bytes = original.clone();
        bytes[entry + 20..entry + 24].copy_from_slice(&forged.to_le_bytes());
        bytes[entry + 24..entry + 28].copy_from_slice(&forged.to_le_bytes());
        let (path, opened) = open(dir.path(), "size.keras", &bytes);
        let err = opened.unwrap_err();
        assert!(err.to_string().contains("size.keras"), "{err}");
        assert!(
            matches!(keras_error(&err), KerasError::MemberOutOfBounds { member, .. } if member == "model.weights.h5")
                || matches!(keras_error(&err), KerasError::Zip { .. }),
            "{err}"
        );
        drop(path);
    }
    // Stored and declared sizes that differ.
    let mut bytes = original.clone();
    let size = le32(&bytes, entry + 24) as u32;
    bytes[entry + 24..entry + 28].copy_from_slice(&(size + 1).to_le_bytes());
    let err = open(dir.path(), "mismatch.keras", &bytes).1.unwrap_err();
    assert!(matches!(keras_error(&err), KerasError::StoredSizeMismatch { .. }), "{err}");
    // A local header offset past the end.
    let mut bytes = original.clone();
    bytes[entry + 42..entry + 46].copy_from_slice(&(original.len() as u32 + 10).to_le_bytes());
    let err = open(dir.path(), "offset.keras", &bytes).1.unwrap_err();
    assert!(err.to_string().contains("offset.keras"), "{err}");
    // Compressed weights (the method forged to deflate) cannot be read in place.
    let mut bytes = original.clone();
    bytes[entry + 10..entry + 12].copy_from_slice(&8u16.to_le_bytes());
    let err = open(dir.path(), "deflated.keras", &bytes).1.unwrap_err();
    assert!(matches!(keras_error(&err), KerasError::Compressed { .. }), "{err}");
}

#[test]
fn archives_without_weights_or_config_are_refused_naming_the_member() {
    let dir = tempfile::tempdir().unwrap();
    let original = model_bytes();
    let mut bytes = original.clone();
    // Both the local header's and the central directory's name.
    for at in
        bytes.windows(16).enumerate().filter(|(_, w)| *w == b"model.weights.h5").map(|(i, _)| i).collect::<Vec<_>>()
    {
        bytes[at..at + 16].copy_from_slice(b"model.weights.xy");
    }
    let err = open(dir.path(), "noweights.keras", &bytes).1.unwrap_err();
    assert!(
        matches!(keras_error(&err), KerasError::MissingMember { member, .. } if member == "model.weights.h5"),
        "{err}"
    );
    // Weights saved as npz (`weights_format="npz"`): refused by name.
    let path = dir.path().join("npz.keras");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    for member in ["metadata.json", "config.json", "model.weights.npz"] {
        let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        zip.start_file(member, stored).unwrap();
        std::io::Write::write_all(&mut zip, b"{}").unwrap();
    }
    zip.finish().unwrap();
    let err = KerasSource::open(&path).unwrap_err();
    assert!(matches!(keras_error(&err), KerasError::UnsupportedWeights { .. }), "{err}");
    assert!(err.to_string().contains("model.weights.npz") && err.to_string().contains("npz.keras"), "{err}");
    let mut bytes = original.clone();
    for at in bytes.windows(11).enumerate().filter(|(_, w)| *w == b"config.json").map(|(i, _)| i).collect::<Vec<_>>() {
        bytes[at..at + 11].copy_from_slice(b"config.jsox");
    }
    let err = open(dir.path(), "noconfig.keras", &bytes).1.unwrap_err();
    assert!(matches!(keras_error(&err), KerasError::MissingMember { member, .. } if member == "config.json"), "{err}");
}

/// A copy of the sharded fixture in a new folder, with the index replaced by `index`.
fn sharded_with(index: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(common::case_dir("sharded")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    let path = dir.path().join("model.weights.json");
    std::fs::write(&path, index).unwrap();
    (dir, path)
}

#[test]
fn bad_indexes_are_refused_naming_the_index_or_shard() {
    let cases = [
        (r#"{"weight_map": {"/vars": "missing.weights.h5"}}"#, "missing.weights.h5"),
        (r#"{"weight_map": {"/vars": "../model_00000.weights.h5"}}"#, "not a file name beside the index"),
        (r#"{"weight_map": {"/vars": 7}}"#, "not a file name"),
        (r#"{"weights": {}}"#, "no \"weight_map\" object"),
        (r#"{"weight_map": "#, "not readable JSON"),
        (r#"{"weight_map": {"/a": "model_00000.weights.h5", "/b": "copy.weights.h5"}}"#, "is in two shards"),
    ];
    for (index, want) in cases {
        let (dir, path) = sharded_with(index);
        std::fs::copy(dir.path().join("model_00000.weights.h5"), dir.path().join("copy.weights.h5")).unwrap();
        let err = KerasShardedSource::open(&path).unwrap_err().to_string();
        assert!(err.contains(want), "{index}: {err}");
        assert!(err.contains("model.weights.json") || err.contains(".weights.h5"), "{index}: {err}");
    }
    // Truncated at every length, the index is refused or read; never a panic.
    let text = std::fs::read_to_string(common::case_dir("sharded").join("model.weights.json")).unwrap();
    let (_dir, path) = sharded_with(&text);
    for len in 0..text.len() {
        std::fs::write(&path, &text.as_bytes()[..len]).unwrap();
        if let Ok(src) = KerasShardedSource::open(&path) {
            read_everything(&src).unwrap();
        }
    }
}

#[test]
fn an_archive_truncated_while_open_is_an_input_changed_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shrinking.keras");
    std::fs::write(&path, model_bytes()).unwrap();
    let src = KerasSource::open(&path).unwrap();
    let offset = common::json("model").1["weights_offset"].as_u64().unwrap();
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(offset + 10).unwrap();
    let results: Vec<_> = src.tensors().iter().map(|t| src.read(&t.name).map(|_| ())).collect();
    let err = results.into_iter().find_map(Result::err).expect("a read noticed the truncation");
    assert!(matches!(err, Error::InputChanged { .. }), "{err}");
    assert!(err.to_string().contains("shrinking.keras"), "{err}");
    assert!(src.check_unchanged().is_err());
}
