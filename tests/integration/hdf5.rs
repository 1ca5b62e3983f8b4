//! HDF5 through the binary: `inspect --json` against what h5py read from files Keras 3 and h5py wrote
//! (`tests/fixtures/gen_hdf5.py`), conversions HDF5 -> safetensors -> HDF5 that keep every byte, HDF5 ->
//! HDF5 that keeps a Keras layout, and damaged files refused with exit 1 and no output.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use warmstart_hdf5::{Hdf5Source, KerasLayout};

use crate::util::{expected, files_in, fixture, warmstart, Run};

const CASES: [&str; 4] = ["keras3", "keras_legacy", "legacy_tf2_style", "plain"];

fn source_of(case: &str) -> PathBuf {
    fixture("hdf5", case).join(expected("hdf5", case)["file"].as_str().unwrap())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn inspect_json(path: &Path) -> Value {
    let run = warmstart(["inspect".as_ref(), "--json".as_ref(), path.as_os_str()]).expect_code(0);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

fn convert(src: &Path, dst: &Path) -> Run {
    warmstart(["convert".as_ref(), src.as_os_str(), dst.as_os_str()]).expect_code(0)
}

/// Every numeric tensor of the case is in the file at `path` with h5py's bytes; its names are the
/// case's (strings left out if `strings` is false).
fn assert_holds_case(path: &Path, case: &str, strings: bool) {
    let expected = expected("hdf5", case);
    let out = warmstart_formats::open(path).unwrap();
    let mut want: Vec<&str> = expected["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| strings || t["dtype"] != "STRING")
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    let mut got: Vec<&str> = out.tensors().iter().map(|t| t.name.as_str()).collect();
    want.sort();
    got.sort();
    assert_eq!(got, want, "{case}: {}", path.display());
    for t in expected["tensors"].as_array().unwrap() {
        if let Some(h) = t.get("hex") {
            let name = t["name"].as_str().unwrap();
            assert_eq!(hex(&out.read(name).unwrap()), h.as_str().unwrap(), "{case}: {name}");
        }
    }
}

#[test]
fn inspect_json_lists_what_h5py_read() {
    for case in CASES {
        let expected = expected("hdf5", case);
        let tensors: Vec<Value> = expected["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| json!({"name": t["name"], "dtype": t["dtype"], "shape": t["shape"]}))
            .collect();
        assert_eq!(inspect_json(&source_of(case)), json!({"format": "hdf5", "tensors": tensors}), "{case}");
    }
}

#[cfg(feature = "safetensors")]
#[test]
fn hdf5_to_safetensors_to_hdf5_keeps_every_byte() {
    for case in ["keras3", "keras_legacy", "legacy_tf2_style"] {
        let dir = tempfile::tempdir().unwrap();
        let st = dir.path().join("m.safetensors");
        convert(&source_of(case), &st);
        assert_holds_case(&st, case, false);
        let back = dir.path().join("back.h5");
        convert(&st, &back);
        assert_holds_case(&back, case, false);
        assert_eq!(files_in(dir.path()), ["back.h5", "m.safetensors"], "no temporary file left");
    }
}

#[test]
fn hdf5_to_hdf5_keeps_the_keras_layout_and_strings() {
    for case in CASES {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("copy.h5");
        convert(&source_of(case), &out);
        assert_holds_case(&out, case, true);
        let original = Hdf5Source::open(&source_of(case)).unwrap();
        let copy = Hdf5Source::open(&out).unwrap();
        assert_eq!(copy.keras_layout(), original.keras_layout(), "{case}");
        for t in expected("hdf5", case)["tensors"].as_array().unwrap() {
            let name = t["name"].as_str().unwrap();
            assert_eq!(copy.dataset_path(name), t["path"].as_str(), "{case}: {name}");
        }
    }
    let copy = tempfile::tempdir().unwrap();
    convert(&source_of("keras_legacy"), &copy.path().join("m.h5"));
    assert_eq!(Hdf5Source::open(&copy.path().join("m.h5")).unwrap().keras_layout(), Some(KerasLayout::Legacy));
}

#[cfg(feature = "safetensors")]
#[test]
fn complex128_has_no_safetensors_type_and_leaves_nothing() {
    // The h5py file holds every dtype; safetensors has no C128, so the conversion is refused whole.
    let dir = tempfile::tempdir().unwrap();
    let run =
        warmstart(["convert".as_ref(), source_of("plain").as_os_str(), dir.path().join("m.safetensors").as_os_str()])
            .expect_code(1);
    assert!(run.stderr.contains("\"dtypes/c128\""), "{}", run.stderr);
    assert!(files_in(dir.path()).is_empty(), "convert left {:?}", files_in(dir.path()));
}

/// `inspect` exits 1 with every one of `says` in its message; `convert` too, leaving nothing behind.
fn assert_refused(src: &Path, says: &[&str]) {
    let run = warmstart(["inspect".as_ref(), src.as_os_str()]).expect_code(1);
    for s in says {
        assert!(run.stderr.contains(s), "inspect: {s:?} not in {}", run.stderr);
    }
    assert!(!run.stderr.contains("HDF5-DIAG"), "the C library's own error stack leaked: {}", run.stderr);
    for dst in ["out.safetensors", "out.h5"].into_iter().filter(|d| cfg!(feature = "safetensors") || d.ends_with(".h5"))
    {
        let dir = tempfile::tempdir().unwrap();
        let run = warmstart(["convert".as_ref(), src.as_os_str(), dir.path().join(dst).as_os_str()]).expect_code(1);
        for s in says {
            assert!(run.stderr.contains(s), "convert: {s:?} not in {}", run.stderr);
        }
        assert!(files_in(dir.path()).is_empty(), "convert left {:?}", files_in(dir.path()));
    }
}

#[test]
fn damaged_files_are_refused_with_no_output() {
    let bad = fixture("hdf5", "bad");
    assert_refused(&bad.join("truncated.h5"), &["truncated.h5", "cannot open as HDF5", "truncated file"]);
    // The HDF5 library built from source refuses the size itself when the dataset is opened.
    assert_refused(&bad.join("size_mismatch.h5"), &["size_mismatch.h5", "dataset \"w\"", "invalid dataset size"]);

    // A signature and nothing else.
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("model.weights.h5");
    let mut bytes = vec![0u8; 96];
    bytes[..8].copy_from_slice(b"\x89HDF\r\n\x1a\n");
    std::fs::write(&fake, bytes).unwrap();
    assert_refused(&fake, &["model.weights.h5", "cannot open as HDF5"]);

    // A damaged gzip chunk: listed, but converting it fails naming the dataset, and leaves nothing.
    let chunk = bad.join("bad_chunk.h5");
    warmstart(["inspect".as_ref(), chunk.as_os_str()]).expect_code(0);
    let out = tempfile::tempdir().unwrap();
    let run = warmstart(["convert".as_ref(), chunk.as_os_str(), out.path().join("o.h5").as_os_str()]).expect_code(1);
    assert!(run.stderr.contains("bad_chunk.h5") && run.stderr.contains("dataset \"z\""), "{}", run.stderr);
    assert!(files_in(out.path()).is_empty(), "convert left {:?}", files_in(out.path()));
}
