//! Damaged PyTorch archives: every fixture truncated, with bytes flipped, and with forged lengths in
//! its zip directory and its pickle. Opening and reading each must return (an error or tensors),
//! never panic, hang, or allocate by an unchecked length (the fuzz targets go further).

use std::path::Path;

use warmstart_core::test_support::{fixture, read_everything, Rng};
use warmstart_core::TorchError;
use warmstart_torch::TorchSource;

const ARCHIVES: [&str; 6] = ["plain", "views", "tied", "bigendian", "nested", "protocol5"];

/// Opens `bytes` as `model.pt` in `dir` and reads everything it lists; returns the open error.
fn try_open(dir: &Path, bytes: &[u8]) -> Option<warmstart_core::Error> {
    let path = dir.join("model.pt");
    std::fs::write(&path, bytes).unwrap();
    match TorchSource::open(&path) {
        Ok(src) => {
            let _ = read_everything(&src);
            None
        }
        Err(e) => Some(e),
    }
}

fn original(case: &str) -> Vec<u8> {
    std::fs::read(fixture("torch", case).join("model.pt")).unwrap()
}

#[test]
fn truncated_archives_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    for case in ARCHIVES {
        let bytes = original(case);
        for len in (0..bytes.len()).step_by(7) {
            let err = try_open(dir.path(), &bytes[..len]);
            // Cut anywhere, the zip directory at the end is gone.
            assert!(err.is_some(), "{case}: truncated to {len} bytes opened");
        }
    }
}

#[test]
fn flipped_bytes_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x70c4);
    for case in ARCHIVES {
        let bytes = original(case);
        for _ in 0..300 {
            let mut damaged = bytes.clone();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(damaged.len());
                damaged[at] ^= 1 << rng.below(8);
            }
            try_open(dir.path(), &damaged);
        }
    }
}

/// Offsets of `pattern` in `bytes`.
fn find_all(bytes: &[u8], pattern: &[u8]) -> Vec<usize> {
    bytes.windows(pattern.len()).enumerate().filter(|(_, w)| *w == pattern).map(|(i, _)| i).collect()
}

#[test]
fn forged_zip_lengths_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    for case in ARCHIVES {
        let bytes = original(case);
        // Each central directory entry's compressed and uncompressed sizes (offsets 20 and 24), and
        // local header offset (42); the end record's directory size and offset (12 and 16).
        let mut fields: Vec<usize> = Vec::new();
        for at in find_all(&bytes, b"PK\x01\x02") {
            fields.extend([at + 20, at + 24, at + 42]);
        }
        for at in find_all(&bytes, b"PK\x05\x06") {
            fields.extend([at + 12, at + 16]);
        }
        assert!(fields.len() > 10, "{case}");
        for field in fields {
            for value in [u32::MAX, u32::MAX - 1, 1 << 31, bytes.len() as u32, 1] {
                let mut forged = bytes.clone();
                forged[field..field + 4].copy_from_slice(&value.to_le_bytes());
                try_open(dir.path(), &forged);
            }
        }
    }
}

#[test]
fn forged_pickle_lengths_and_sizes_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = original("plain");
    // Every BINUNICODE length (`X` and 4 bytes) in data.pkl, and every BININT1 (`K`, a size, stride,
    // offset or storage length) set to the largest value.
    let mut refused = 0;
    for at in find_all(&bytes, b"X\x01\x00\x00\x00").into_iter().chain(find_all(&bytes, b"X\x07\x00\x00\x00")) {
        let mut forged = bytes.clone();
        forged[at + 1..at + 5].copy_from_slice(&u32::MAX.to_le_bytes());
        refused += usize::from(try_open(dir.path(), &forged).is_some());
    }
    assert!(refused > 10, "{refused}");
    let mut storage_errors = 0;
    for at in find_all(&bytes, b"K") {
        let mut forged = bytes.clone();
        forged[at + 1] = 0xff;
        if let Some(err) = try_open(dir.path(), &forged) {
            storage_errors += usize::from(matches!(
                err.torch(),
                Some(TorchError::StorageTooShort { .. } | TorchError::ViewOutOfStorage { .. })
            ));
        }
    }
    assert!(storage_errors > 5, "{storage_errors}");
}

#[test]
fn a_compressed_storage_is_refused_naming_it() {
    // Members re-zipped with deflate: compression method 8 in the local and central headers.
    let dir = tempfile::tempdir().unwrap();
    let bytes = original("tied");
    let mut forged = bytes.clone();
    for at in find_all(&bytes, b"PK\x01\x02") {
        let name_len = u16::from_le_bytes([bytes[at + 28], bytes[at + 29]]) as usize;
        if bytes[at + 46..at + 46 + name_len].ends_with(b"/data/0") {
            forged[at + 10] = 8;
        }
    }
    let err = try_open(dir.path(), &forged).unwrap();
    assert!(matches!(err.torch(), Some(TorchError::CompressedMember { member, .. }) if member == "data/0"), "{err}");
}
