//! safetensors through the binary: `inspect` and `inspect --json` against what the official Python
//! package wrote (`tests/fixtures/gen_safetensors.py`), conversions that keep every byte and
//! `__metadata__`, and bad inputs refused with exit 1, a message naming file and tensor, and no output.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::util::{copy_folder, expected, files_in, fixture, sha256_hex, warmstart, Run};

const CASES: [&str; 3] = ["dtypes", "shapes", "sharded"];

/// The path the case's expected.json says to open.
fn source_of(case: &str) -> PathBuf {
    let expected = expected("safetensors", case);
    fixture("safetensors", case).join(expected["source"].as_str().unwrap())
}

/// The expected (name, dtype, shape) listing of a case.
fn listing(expected: &Value) -> Vec<Value> {
    expected["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| json!({"name": t["name"], "dtype": t["dtype"], "shape": t["shape"]}))
        .collect()
}

fn inspect_json(path: &Path) -> Value {
    let run = warmstart(["inspect".as_ref(), "--json".as_ref(), path.as_os_str()]).expect_code(0);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

#[test]
fn inspect_json_lists_what_python_wrote() {
    for case in CASES {
        let expected = expected("safetensors", case);
        let got = inspect_json(&source_of(case));
        assert_eq!(got, json!({"format": "safetensors", "tensors": listing(&expected)}), "{case}");
    }
}

#[test]
fn every_safetensors_dtype_is_listed_with_its_spelling() {
    let got = inspect_json(&source_of("dtypes"));
    let mut dtypes: Vec<&str> =
        got["tensors"].as_array().unwrap().iter().map(|t| t["dtype"].as_str().unwrap()).collect();
    dtypes.sort();
    assert_eq!(
        dtypes,
        [
            "BF16",
            "BOOL",
            "C64",
            "F16",
            "F32",
            "F64",
            "F8_E4M3",
            "F8_E4M3FNUZ",
            "F8_E5M2",
            "F8_E5M2FNUZ",
            "F8_E8M0",
            "I16",
            "I32",
            "I64",
            "I8",
            "U16",
            "U32",
            "U64",
            "U8"
        ]
    );
}

#[test]
fn inspect_table_has_every_tensor_and_the_totals() {
    for case in CASES {
        let expected = expected("safetensors", case);
        let run = warmstart(["inspect".as_ref(), source_of(case).as_os_str()]).expect_code(0);
        let tensors = expected["tensors"].as_array().unwrap();
        for t in tensors {
            let shape: Vec<String> = t["shape"].as_array().unwrap().iter().map(|d| d.to_string()).collect();
            let shape = format!("[{}]", shape.join(", "));
            let line = run.stdout.lines().find(|l| l.split_whitespace().next() == t["name"].as_str());
            let line = line.unwrap_or_else(|| panic!("{case}: no row for {}:\n{}", t["name"], run.stdout));
            assert!(line.contains(t["dtype"].as_str().unwrap()) && line.contains(&shape), "{line}");
        }
        assert!(run.stdout.contains(&format!("{} tensors, ", tensors.len())), "{}", run.stdout);
        assert!(run.stdout.starts_with("safetensors checkpoint "), "{}", run.stdout);
    }
}

#[test]
fn the_reader_returns_the_bytes_python_wrote() {
    for case in CASES {
        let expected = expected("safetensors", case);
        let src = warmstart_formats::open(&source_of(case)).unwrap();
        for t in expected["tensors"].as_array().unwrap() {
            let bytes = src.read(t["name"].as_str().unwrap()).unwrap();
            assert_eq!(sha256_hex(&bytes), t["sha256"], "{case}: {}", t["name"]);
        }
        let metadata = src.metadata().map(|m| serde_json::to_value(m).unwrap()).unwrap_or(Value::Null);
        assert_eq!(metadata, expected["metadata"], "{case}");
    }
}

/// Converts `src` to `dst` with the binary, expecting success.
fn convert(src: &Path, dst: &Path, extra: &[&str]) -> Run {
    let mut args: Vec<&std::ffi::OsStr> = vec!["convert".as_ref(), src.as_os_str(), dst.as_os_str()];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    warmstart(args).expect_code(0)
}

/// Checks that the safetensors file `path` holds exactly the case's tensors, bytes and metadata.
fn assert_holds_case(path: &Path, case: &str) {
    let expected = expected("safetensors", case);
    let out = warmstart_formats::open(path).unwrap();
    let mut want = listing(&expected);
    let mut got = inspect_json(path)["tensors"].as_array().unwrap().clone();
    if case == "sharded" {
        // One file now: laid out by the official writer's order, not shard by shard.
        let by_name = |v: &Value| v["name"].as_str().unwrap().to_string();
        want.sort_by_key(by_name);
        got.sort_by_key(by_name);
    }
    assert_eq!(got, want, "{case}");
    for t in expected["tensors"].as_array().unwrap() {
        let bytes = out.read(t["name"].as_str().unwrap()).unwrap();
        assert_eq!(sha256_hex(&bytes), t["sha256"], "{case}: {}", t["name"]);
    }
    let metadata = out.metadata().map(|m| serde_json::to_value(m).unwrap()).unwrap_or(Value::Null);
    assert_eq!(metadata, expected["metadata"], "{case}: __metadata__");
}

#[test]
fn convert_keeps_every_byte_and_the_metadata() {
    for case in CASES {
        let dir = tempfile::tempdir().unwrap();
        let dst = dir.path().join("out.safetensors");
        let run = convert(&source_of(case), &dst, &[]);
        assert!(run.stdout.contains("out.safetensors"), "{}", run.stdout);
        assert_eq!(files_in(dir.path()), ["out.safetensors"], "no temporary file left");
        assert_holds_case(&dst, case);

        // And once more, from our own output, with --to and a name that says nothing.
        let again = dir.path().join("again.bin");
        convert(&dst, &again, &["--to", "safetensors"]);
        assert_holds_case(&again, case);
    }
}

#[test]
fn convert_over_an_existing_destination_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    let dst = dir.path().join("out.safetensors");
    std::fs::write(&dst, b"old").unwrap();
    convert(&source_of("shapes"), &dst, &[]);
    assert_holds_case(&dst, "shapes");
}

/// Runs `inspect` and `convert` on a bad input: both exit 1 with a message containing every one of
/// `says`, and `convert` leaves nothing behind.
fn assert_refused(src: &Path, says: &[&str]) {
    let run = warmstart(["inspect".as_ref(), src.as_os_str()]).expect_code(1);
    for s in says {
        assert!(run.stderr.contains(s), "inspect: {s:?} not in {}", run.stderr);
    }
    let out = tempfile::tempdir().unwrap();
    let dst = out.path().join("out.safetensors");
    let run = warmstart(["convert".as_ref(), src.as_os_str(), dst.as_os_str()]).expect_code(1);
    for s in says {
        assert!(run.stderr.contains(s), "convert: {s:?} not in {}", run.stderr);
    }
    assert!(files_in(out.path()).is_empty(), "convert left {:?}", files_in(out.path()));
}

/// A copy of the dtypes fixture in a temp dir, its header rewritten by `forge`.
fn forged(dir: &Path, forge: impl FnOnce(&mut serde_json::Map<String, Value>)) -> PathBuf {
    let bytes = std::fs::read(source_of("dtypes")).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Map<String, Value> = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    forge(&mut header);
    let header = serde_json::to_vec(&header).unwrap();
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header);
    out.extend(&bytes[8 + n..]);
    let path = dir.join("model.safetensors");
    std::fs::write(&path, out).unwrap();
    path
}

/// The name of the `i`th tensor of the dtypes fixture in storage order.
fn nth_tensor(i: usize) -> String {
    expected("safetensors", "dtypes")["tensors"][i]["name"].as_str().unwrap().to_string()
}

fn shift_offsets(header: &mut serde_json::Map<String, Value>, name: &str, by: i64) {
    let offsets = header[name]["data_offsets"].as_array_mut().unwrap();
    for o in offsets {
        *o = json!(o.as_i64().unwrap() + by);
    }
}

#[test]
fn truncated_file_is_refused_naming_file_and_last_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let mut bytes = std::fs::read(source_of("dtypes")).unwrap();
    bytes.pop();
    std::fs::write(&path, bytes).unwrap();
    let last = expected("safetensors", "dtypes")["tensors"].as_array().unwrap().last().unwrap()["name"].clone();
    assert_refused(&path, &["model.safetensors", last.as_str().unwrap(), "past the"]);
}

#[test]
fn header_longer_than_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let bytes = std::fs::read(source_of("dtypes")).unwrap();
    std::fs::write(&path, &bytes[..40]).unwrap();
    assert_refused(&path, &["model.safetensors", "the header claims", "only 32 follow"]);
}

#[test]
fn non_json_header_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let mut bytes = std::fs::read(source_of("dtypes")).unwrap();
    bytes[9] = b'#';
    std::fs::write(&path, bytes).unwrap();
    assert_refused(&path, &["model.safetensors", "not a JSON object"]);
}

#[test]
fn overlapping_offsets_are_refused_naming_both_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (nth_tensor(0), nth_tensor(1));
    let path = forged(dir.path(), |h| shift_offsets(h, &second, -1));
    assert_refused(&path, &["model.safetensors", &format!("{second:?} overlaps tensor {first:?}")]);
}

#[test]
fn non_contiguous_offsets_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let second = nth_tensor(1);
    let path = forged(dir.path(), |h| shift_offsets(h, &second, 1));
    assert_refused(&path, &["model.safetensors", &format!("{second:?}"), "contiguous"]);
}

#[test]
fn dtype_and_shape_not_matching_the_byte_range_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = nth_tensor(0);
    let path = forged(dir.path(), |h| h[&first]["shape"] = json!([3, 3]));
    assert_refused(&path, &["model.safetensors", &format!("{first:?}"), "shape [3, 3]"]);
}

#[test]
fn missing_shard_is_refused_naming_index_shard_and_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("model");
    copy_folder(&fixture("safetensors", "sharded"), &folder);
    std::fs::remove_file(folder.join("model-00002-of-00002.safetensors")).unwrap();
    let index: Value =
        serde_json::from_slice(&std::fs::read(folder.join("model.safetensors.index.json")).unwrap()).unwrap();
    let (tensor, _) = index["weight_map"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, shard)| *shard == "model-00002-of-00002.safetensors")
        .unwrap();
    assert_refused(
        &folder,
        &["model.safetensors.index.json", "model-00002-of-00002.safetensors", &format!("{tensor:?}")],
    );
}

#[test]
fn sub_byte_dtypes_are_refused_naming_the_tensor() {
    let expected = expected("safetensors", "unsupported_f4");
    let path = fixture("safetensors", "unsupported_f4").join(expected["source"].as_str().unwrap());
    let refused = &expected["refused"];
    let tensor = format!("{:?}", refused["tensor"].as_str().unwrap());
    let dtype = format!("dtype {}", refused["dtype"].as_str().unwrap());
    assert_refused(&path, &["model.safetensors", &tensor, &dtype]);
}

#[cfg(not(feature = "tf"))]
#[test]
fn converting_to_a_format_this_build_lacks_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let run =
        warmstart(["convert".as_ref(), source_of("shapes").as_os_str(), dir.path().join("model.ckpt").as_os_str()])
            .expect_code(1);
    assert!(run.stderr.contains("this build has no tf support"), "{}", run.stderr);
    assert!(files_in(dir.path()).is_empty());
}
