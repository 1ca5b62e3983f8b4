//! A bounded, deterministic corruption loop over the files Keras and h5py wrote: random bit flips
//! anywhere (global heaps with variable-length strings included), truncations at random lengths,
//! forged 4- and 8-byte fields at random places, and forged dataset dimensions (a dataspace's dims
//! found by their known values and replaced with huge ones). Opening and reading every tensor (all
//! rows, and strings) must never panic, crash, hang or allocate by a forged number: either it
//! succeeds, or the error names the file. `HDF5_FUZZ_SEED=n` runs the loop with seed `n`.
//!
//! This holds because the crate links the HDF5 C library it builds from source (2.2, through
//! hdf5-metno-src), and checks the file's global heaps before reading variable-length strings, on
//! which the library can loop forever (`a_global_heap_the_library_would_loop_on_is_refused`). Linked
//! to the system libhdf5 1.10 instead (without the heap check), this loop segfaults inside the
//! library on 10 of the seeds 1 to 40 (`forged_global_heap_index` is one such crash) and hangs on 3
//! more; with 2.2 and the check, seeds 1 to 100 pass, in debug and release builds.

mod common;

use std::path::Path;

use warmstart_core::test_support::{read_everything, Rng};
use warmstart_core::CheckpointSource;
use warmstart_hdf5::{Hdf5Error, Hdf5Source};

/// Values a forged length, count or dimension would take.
fn forged_value(rng: &mut Rng) -> u64 {
    match rng.below(7) {
        0 => 0,
        1 => u64::MAX,
        2 => u32::MAX as u64,
        3 => 1 << 40,
        4 => 1 << 62,
        5 => 1 + rng.below(1 << 20) as u64,
        _ => rng.next() >> rng.below(64),
    }
}

/// Where the dimensions of the datasets the fixture lists are stored: each dataspace keeps its dims as
/// consecutive 8-byte little-endian numbers.
fn dims_offsets(bytes: &[u8], shapes: &[Vec<u64>]) -> Vec<usize> {
    let mut found = Vec::new();
    for shape in shapes.iter().filter(|s| !s.is_empty()) {
        let pattern: Vec<u8> = shape.iter().flat_map(|d| d.to_le_bytes()).collect();
        let rank = shape.len() as u8;
        // A dataspace message: version 1 (version, rank, flags, 5 reserved bytes) or version 2
        // (version, rank, flags, type) before the dims.
        let is_dataspace = |i: usize| {
            (i >= 8 && bytes[i - 8] == 1 && bytes[i - 7] == rank)
                || (i >= 4 && bytes[i - 4] == 2 && bytes[i - 3] == rank)
        };
        found.extend(
            bytes.windows(pattern.len()).enumerate().filter(|(i, w)| *w == pattern && is_dataspace(*i)).map(|(i, _)| i),
        );
    }
    found.sort();
    found.dedup();
    found
}

fn corrupt(rng: &mut Rng, original: &[u8], dims: &[usize]) -> Vec<u8> {
    let mut bytes = original.to_vec();
    match rng.below(6) {
        0 | 2 | 3 => {
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(bytes.len());
                bytes[at] ^= 1 << rng.below(8);
            }
        }
        1 => bytes.truncate(rng.below(bytes.len())),
        4 => {
            // A forged 4- or 8-byte field (a length, count, address or index) at a random place.
            let width = if rng.below(2) == 0 { 4 } else { 8 };
            let at = rng.below(bytes.len() - width);
            let value = forged_value(rng).to_le_bytes();
            bytes[at..at + width].copy_from_slice(&value[..width]);
        }
        _ => {
            // A forged dimension of a known dataset: one of its (8-byte) dims.
            if !dims.is_empty() {
                let at = dims[rng.below(dims.len())];
                bytes[at..at + 8].copy_from_slice(&forged_value(rng).to_le_bytes());
            }
        }
    }
    bytes
}

/// Where the file's global heap collections (signature `GCOL`), which hold variable-length strings,
/// begin.
fn global_heaps(bytes: &[u8]) -> Vec<usize> {
    bytes.windows(4).enumerate().filter(|(_, w)| *w == b"GCOL").map(|(i, _)| i).collect()
}

fn check_names_the_file(msg: &str, file: &Path) {
    let name = file.file_name().unwrap().to_string_lossy();
    assert!(msg.contains(name.as_ref()), "the error does not name {name}: {msg}");
}

#[test]
fn random_corruption_never_panics() {
    let mut rng =
        Rng(std::env::var("HDF5_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x4df5_c0de_0125_0001));
    let mut outcomes = [0usize; 3]; // opened and read, refused at open, refused at read
    let dir = tempfile::tempdir().unwrap();
    for case in ["plain", "keras_legacy", "keras3"] {
        let (fixture, _, expected) = common::expected(case);
        let original = std::fs::read(&fixture).unwrap();
        let shapes: Vec<Vec<u64>> = expected.iter().map(|t| t.shape.clone()).collect();
        let dims = dims_offsets(&original, &shapes);
        assert!(!dims.is_empty(), "{case}: no dataspace found");
        let file = dir.path().join(fixture.file_name().unwrap());
        for _ in 0..100 {
            std::fs::write(&file, corrupt(&mut rng, &original, &dims)).unwrap();
            match Hdf5Source::open(&file) {
                Ok(src) => match read_everything(&src) {
                    Ok(()) => outcomes[0] += 1,
                    Err(e) => {
                        check_names_the_file(&e.to_string(), &file);
                        outcomes[2] += 1;
                    }
                },
                Err(e) => {
                    check_names_the_file(&e.to_string(), &file);
                    outcomes[1] += 1;
                }
            }
        }
    }
    eprintln!("hdf5: {outcomes:?} (read fine, refused at open, refused at read)");
    // Most damaged files are refused when opened; some open, and are read whole or refused then.
    assert!(outcomes[1] > 50 && outcomes[0] + outcomes[2] > 0, "{outcomes:?}");
}

#[test]
fn forged_huge_dimensions_are_refused_not_allocated() {
    // Found by the corruption loop: a chunked dataset's dims forged to 2^33 rows opened (chunked
    // datasets may declare more than they store), and reading it aborted the process with "memory
    // allocation of 171798691840 bytes failed". Now the allocation is fallible, and every such file is
    // refused, when opened or when read, naming the file.
    let dir = tempfile::tempdir().unwrap();
    let (mut forged_files, mut refused) = (0, 0);
    for case in ["plain", "keras_legacy", "keras3"] {
        let (fixture, _, expected) = common::expected(case);
        let original = std::fs::read(&fixture).unwrap();
        let shapes: Vec<Vec<u64>> = expected.iter().map(|t| t.shape.clone()).collect();
        let file = dir.path().join(fixture.file_name().unwrap());
        for at in dims_offsets(&original, &shapes) {
            for forged in [1u64 << 33, 1 << 40, 1 << 62, u64::MAX] {
                let mut bytes = original.clone();
                bytes[at..at + 8].copy_from_slice(&forged.to_le_bytes());
                std::fs::write(&file, &bytes).unwrap();
                forged_files += 1;
                let outcome = match Hdf5Source::open(&file) {
                    Ok(src) => read_everything(&src).map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                if let Err(message) = outcome {
                    check_names_the_file(&message, &file);
                    refused += 1;
                }
            }
        }
    }
    assert_eq!(refused, forged_files);

    // The case found: `chunked/gz` (37 x 5 F32) forged to 2^33 rows; and `chunked/shuffled` (20 x 3
    // I64) forged to 20 x 1310723, which opened and then spent minutes inside libhdf5 1.10 walking
    // 870 000 unwritten chunks. The library built from source refuses both when the dataset is opened
    // (a dim above its maximum dim); this crate's own check refuses them as implausible otherwise.
    let (fixture, _, _) = common::expected("plain");
    let original = std::fs::read(&fixture).unwrap();
    let file = dir.path().join("data.h5");
    for (shape, dim, forged, name) in
        [(vec![37, 5], 0, 1u64 << 33, "chunked/gz"), (vec![20, 3], 1, 1_310_723, "chunked/shuffled")]
    {
        let at = dims_offsets(&original, &[shape])[0] + 8 * dim;
        let mut bytes = original.clone();
        bytes[at..at + 8].copy_from_slice(&forged.to_le_bytes());
        std::fs::write(&file, &bytes).unwrap();
        let err = Hdf5Source::open(&file).unwrap_err();
        assert!(
            matches!(&err, Hdf5Error::Dataset { dataset, .. } | Hdf5Error::ChunkedSizeImplausible { dataset, .. } if dataset == name),
            "{err}"
        );
    }
}

#[test]
fn a_resizable_dataset_grown_far_beyond_its_chunks_is_refused() {
    // A resizable chunked dataset may legally declare any size up to its (unlimited) maximum dims while
    // storing a few chunks; reading it would walk every unwritten chunk. Far more than compression
    // explains is refused when opened.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("grown.h5");
    let f = hdf5::File::create(&file).unwrap();
    let ds = f.new_dataset::<f32>().chunk([4, 4]).shape([4.., 4..]).create("grown").unwrap();
    ds.write_raw(&[1f32; 16]).unwrap();
    ds.resize([1 << 20, 4]).unwrap();
    drop((ds, f));
    let err = Hdf5Source::open(&file).unwrap_err();
    assert!(matches!(&err, Hdf5Error::ChunkedSizeImplausible { dataset, .. } if dataset == "grown"), "{err}");
    assert!(err.to_string().contains("grown.h5"), "{err}");
}

/// libhdf5 1.10 (the system library this crate linked before it built its own) does not check the
/// index of a variable-length value's global heap object before copying it (`H5HG_read`): a forged
/// index crashed the process inside the library when the strings were read. The library built from
/// source refuses it.
#[test]
fn forged_global_heap_index() {
    let (fixture, _, _) = common::expected("plain");
    let mut bytes = std::fs::read(&fixture).unwrap();
    let heap = global_heaps(&bytes)[0];
    // The second object's 2-byte index (after the 16-byte collection header and the first object).
    bytes[heap + 40..heap + 44].copy_from_slice(&0x000e_fdc5u32.to_le_bytes());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data.h5");
    std::fs::write(&file, &bytes).unwrap();
    let src = Hdf5Source::open(&file).unwrap();
    let err = src.read_strings("strings/vlen").unwrap_err().to_string();
    assert!(err.contains("data.h5") && err.contains("strings/vlen"), "{err}");
}

#[test]
fn a_global_heap_the_library_would_loop_on_is_refused() {
    // Found by the corruption loop (seed 25): HDF5 2.2 decodes a global heap collection object by
    // object and moves on by each one's size; a free-space object (index 0) of size 0 ahead of the
    // collection's end kept it in place forever. The file's heaps are checked first.
    let (fixture, _, _) = common::expected("plain");
    let mut bytes = std::fs::read(&fixture).unwrap();
    let heap = global_heaps(&bytes)[0];
    let heap_end = heap + u64::from_le_bytes(bytes[heap + 8..heap + 16].try_into().unwrap()) as usize;
    // Walk the objects (index, references, reserved, 8-byte size, then the data padded to 8) to the
    // free-space object, and empty it.
    let mut at = heap + 16;
    while u16::from_le_bytes([bytes[at], bytes[at + 1]]) != 0 {
        let size = u64::from_le_bytes(bytes[at + 8..at + 16].try_into().unwrap()) as usize;
        at += 16 + size.next_multiple_of(8);
    }
    assert!(at + 16 < heap_end, "the free space is a whole object");
    bytes[at + 8..at + 16].copy_from_slice(&0u64.to_le_bytes());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data.h5");
    std::fs::write(&file, &bytes).unwrap();
    let src = Hdf5Source::open(&file).unwrap();
    let (done, outcome) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(src.read_strings("strings/vlen").map_err(|e| e.to_string())));
    let outcome = outcome.recv_timeout(std::time::Duration::from_secs(60)).expect("reading the strings hung");
    let err = outcome.unwrap_err();
    assert!(err.contains("data.h5") && err.contains("strings/vlen") && err.contains("global heap"), "{err}");
}
