//! Reading the Keras and h5py fixtures: names, dtypes, shapes and bytes equal what h5py read; row
//! ranges; string datasets; damaged files give errors.

mod common;

use warmstart_core::{CheckpointSource, DType};
use warmstart_hdf5::{Hdf5Error, Hdf5Source, KerasLayout};

#[test]
fn every_fixture_lists_and_reads_what_h5py_read() {
    for case in common::CASES {
        let (file, layout, expected) = common::expected(case);
        let src = Hdf5Source::open(&file).unwrap();
        assert_eq!(src.format(), warmstart_core::Format::Hdf5);
        let want_layout = match layout.as_str() {
            "keras3" => Some(KerasLayout::Keras3),
            "keras_legacy" => Some(KerasLayout::Legacy),
            _ => None,
        };
        assert_eq!(src.keras_layout(), want_layout, "{case}");
        let names: Vec<&str> = src.tensors().iter().map(|t| t.name.as_str()).collect();
        let want: Vec<&str> = expected.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, want, "{case}: names in order");
        for t in &expected {
            let info = src.tensor(&t.name).unwrap();
            assert_eq!(info.dtype.name(), t.dtype, "{case} {}", t.name);
            assert_eq!(info.shape, t.shape, "{case} {}", t.name);
            assert_eq!(src.dataset_path(&t.name), Some(t.path.as_str()), "{case} {}", t.name);
            if let Some(bytes) = &t.bytes {
                assert_eq!(src.read(&t.name).unwrap().as_ref(), bytes.as_slice(), "{case} {}", t.name);
            }
            if let Some(strings) = &t.strings {
                assert_eq!(info.dtype, DType::String);
                assert_eq!(&src.read_strings(&t.name).unwrap(), strings, "{case} {}", t.name);
                assert!(src.read(&t.name).is_err(), "{case} {}: bytes of a string tensor", t.name);
            }
        }
    }
}

#[test]
fn row_ranges_are_the_matching_bytes() {
    let (file, _, expected) = common::expected("plain");
    let src = Hdf5Source::open(&file).unwrap();
    for t in expected.iter().filter(|t| t.bytes.is_some() && !t.shape.is_empty()) {
        let info = src.tensor(&t.name).unwrap();
        let rows = info.rows();
        let row_bytes = info.row_bytes().unwrap() as usize;
        let all = t.bytes.as_ref().unwrap();
        for (a, b) in [(0, rows), (0, 0), (rows / 2, rows), (rows.min(1), rows.min(3)), (rows, rows)] {
            let got = src.read_rows(&t.name, a..b).unwrap();
            assert_eq!(got.as_ref(), &all[a as usize * row_bytes..b as usize * row_bytes], "{} {a}..{b}", t.name);
        }
        assert!(src.read_rows(&t.name, 0..rows + 1).is_err());
        #[allow(clippy::reversed_empty_ranges)]
        let backwards = 2..1;
        assert!(src.read_rows(&t.name, backwards).is_err());
    }
    // A scalar has one row.
    assert_eq!(src.read_rows("scalar/f64", 0..1).unwrap().as_ref(), 3.25f64.to_le_bytes());
    assert!(src.read_rows("scalar/f64", 0..2).is_err());
    assert!(src.read("no/such").is_err());
}

#[test]
fn damaged_files_are_errors_naming_the_file() {
    let dir = common::case_dir("bad");
    for name in ["truncated.h5", "not_hdf5.h5", "missing.h5"] {
        let err = Hdf5Source::open(&dir.join(name)).unwrap_err();
        assert!(err.to_string().contains(name), "{err}");
    }
    // A contiguous dataset declaring more bytes than it stores: refused when opened, naming it (by the
    // library built from source, which checks it, or else by this crate's own check).
    let err = Hdf5Source::open(&dir.join("size_mismatch.h5")).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("size_mismatch.h5") && msg.contains("\"w\""), "{msg}");
    assert!(
        matches!(err, Hdf5Error::Dataset { .. } | Hdf5Error::DeclaredSizeMismatch { declared: 36400, stored: 364, .. }),
        "{msg}"
    );
    // A chunk whose gzip stream is damaged: listed, but reading it fails with the dataset named.
    let src = Hdf5Source::open(&dir.join("bad_chunk.h5")).unwrap();
    let err = src.read("z").unwrap_err();
    assert!(err.to_string().contains("\"z\"") && err.to_string().contains("bad_chunk.h5"), "{err}");
    assert!(src.read_rows("z", 0..10).is_ok(), "the undamaged first chunk still reads");
}
