//! A bounded, deterministic corruption loop over the files the official Python package wrote: random
//! bit flips, truncations at random lengths, forged header lengths and forged numbers in the JSON (the
//! header's shapes and data offsets, the index's), on single files and on a sharded checkpoint's index
//! and shards. Opening and reading every tensor must never panic: either it succeeds, or the error
//! names the file.

use std::path::{Path, PathBuf};

use warmstart_core::test_support::{read_everything, Rng};
use warmstart_safetensors::SafetensorsSource;

/// `tests/fixtures/safetensors/<case>` of the workspace.
fn case_dir(case: &str) -> PathBuf {
    warmstart_core::test_support::fixture("safetensors", case)
}

/// Numbers an attacker would forge: zero, off by one, the edges of 32 and 64 bits, past 64 bits,
/// negative.
fn forged_number(rng: &mut Rng, original: &str) -> String {
    let n: u64 = original.parse().unwrap_or(0);
    match rng.below(9) {
        0 => "0".into(),
        1 => n.saturating_add(1).to_string(),
        2 => n.saturating_sub(1).to_string(),
        3 => u64::MAX.to_string(),
        4 => (1u64 << 32).to_string(),
        5 => (1u64 << 62).to_string(),
        6 => "184467440737095516160".into(),
        7 => "-1".into(),
        _ => (rng.next() >> rng.below(64)).to_string(),
    }
}

/// Replaces one run of ASCII digits inside `range` of `bytes` with a forged number.
fn forge_a_number(rng: &mut Rng, bytes: &mut Vec<u8>, range: std::ops::Range<usize>) {
    let range = range.start.min(bytes.len())..range.end.min(bytes.len());
    let runs: Vec<(usize, usize)> = {
        let mut runs = Vec::new();
        let mut i = range.start;
        while i < range.end {
            if bytes[i].is_ascii_digit() {
                let start = i;
                while i < range.end && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                runs.push((start, i));
            } else {
                i += 1;
            }
        }
        runs
    };
    if runs.is_empty() {
        return;
    }
    let (start, end) = runs[rng.below(runs.len())];
    let original = String::from_utf8(bytes[start..end].to_vec()).unwrap();
    let forged = forged_number(rng, &original);
    bytes.splice(start..end, forged.into_bytes());
}

/// One to three flipped bits, or (as often) a truncation at a random length.
fn flip_or_truncate(rng: &mut Rng, bytes: &mut Vec<u8>) {
    if rng.below(2) == 0 {
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(bytes.len());
            bytes[at] ^= 1 << rng.below(8);
        }
    } else {
        bytes.truncate(rng.below(bytes.len()));
    }
}

/// One random corruption of a safetensors file: flipped bits, a truncation, a forged header length, or
/// a forged number in the header (a shape or a data offset). The header length prefix is kept in step
/// when a number changes length, so the forged JSON is what gets parsed.
fn corrupt_safetensors(rng: &mut Rng, original: &[u8]) -> Vec<u8> {
    let mut bytes = original.to_vec();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    match rng.below(4) {
        0 | 1 => flip_or_truncate(rng, &mut bytes),
        2 => {
            let forged = match rng.below(5) {
                0 => 0,
                1 => u64::MAX,
                2 => header_len as u64 + 1 + rng.below(16) as u64,
                3 => (header_len as u64).saturating_sub(1 + rng.below(16) as u64),
                _ => rng.next() >> rng.below(64),
            };
            bytes[..8].copy_from_slice(&forged.to_le_bytes());
        }
        _ => {
            let before = bytes.len();
            forge_a_number(rng, &mut bytes, 8..8 + header_len);
            let new_len = (header_len as isize + bytes.len() as isize - before as isize) as u64;
            bytes[..8].copy_from_slice(&new_len.to_le_bytes());
        }
    }
    bytes
}

/// One random corruption of a JSON index: flipped bits, a truncation, a forged number, or a shard file
/// name replaced by one that escapes, is empty, or names the index itself.
fn corrupt_index(rng: &mut Rng, original: &[u8]) -> Vec<u8> {
    let mut bytes = original.to_vec();
    match rng.below(4) {
        0 | 1 => flip_or_truncate(rng, &mut bytes),
        2 => {
            let len = bytes.len();
            forge_a_number(rng, &mut bytes, 0..len);
        }
        _ => {
            let text = String::from_utf8(bytes).unwrap();
            let shard = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"][rng.below(2)];
            let other = ["", ".", "..", "../nowhere.safetensors", "/", "model.safetensors.index.json"][rng.below(6)];
            bytes = text.replacen(shard, other, 1 + rng.below(2)).into_bytes();
        }
    }
    bytes
}

/// Asserts that `err` names one of `names` (file names).
fn assert_names_a_file(err: &warmstart_core::Error, names: &[&str]) {
    let msg = err.to_string();
    assert!(names.iter().any(|n| msg.contains(n)), "error names none of {names:?}: {msg}");
}

/// Outcome counts: (opened and read, refused at open, refused at read).
type Outcomes = [usize; 3];

fn try_open(opened: &Path, names: &[&str], outcomes: &mut Outcomes) {
    match SafetensorsSource::open(opened) {
        Ok(src) => match read_everything(&src) {
            Ok(()) => outcomes[0] += 1,
            Err(e) => {
                assert_names_a_file(&e, names);
                outcomes[2] += 1;
            }
        },
        Err(e) => {
            assert_names_a_file(&e, names);
            outcomes[1] += 1;
        }
    }
}

#[test]
fn random_corruption_of_single_files_never_panics() {
    let mut rng = Rng(0x5afe_7e45_0125_0001);
    let mut outcomes = Outcomes::default();
    for case in ["dtypes", "shapes"] {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("model.safetensors");
        let original = std::fs::read(case_dir(case).join("model.safetensors")).unwrap();
        for _ in 0..200 {
            std::fs::write(&file, corrupt_safetensors(&mut rng, &original)).unwrap();
            try_open(&file, &["model.safetensors"], &mut outcomes);
        }
    }
    eprintln!("single files: {outcomes:?} (read fine, refused at open, refused at read)");
    // Most corruptions of the header must be caught at open.
    assert!(outcomes[1] > 150, "{outcomes:?}");
    // The header check is complete: what opens, reads.
    assert_eq!(outcomes[2], 0, "{outcomes:?}");
}

#[test]
fn random_corruption_of_sharded_checkpoints_never_panics() {
    let mut rng = Rng(0x5afe_7e45_0125_0002);
    let mut outcomes = Outcomes::default();
    let dir = tempfile::tempdir().unwrap();
    let files =
        ["model.safetensors.index.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"];
    let originals: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(case_dir("sharded").join(f)).unwrap()).collect();
    for (f, bytes) in files.iter().zip(&originals) {
        std::fs::write(dir.path().join(f), bytes).unwrap();
    }
    for i in 0..300 {
        let which = rng.below(files.len());
        let corrupted = if which == 0 {
            corrupt_index(&mut rng, &originals[0])
        } else {
            corrupt_safetensors(&mut rng, &originals[which])
        };
        std::fs::write(dir.path().join(files[which]), corrupted).unwrap();
        // Opened by the index, and by the folder.
        let opened = if i % 2 == 0 { dir.path().join(files[0]) } else { dir.path().to_path_buf() };
        try_open(&opened, &files, &mut outcomes);
        std::fs::write(dir.path().join(files[which]), &originals[which]).unwrap();
    }
    eprintln!("sharded: {outcomes:?} (read fine, refused at open, refused at read)");
    assert!(outcomes[1] > 200, "{outcomes:?}");
    assert_eq!(outcomes[2], 0, "{outcomes:?}");
}
