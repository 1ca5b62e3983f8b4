//! Shared by the Keras tests: the fixtures and what Keras and h5py read from them.
#![allow(dead_code)]

use std::path::PathBuf;

use serde_json::Value;
use warmstart_core::CheckpointSource;

/// `tests/fixtures/keras/<case>` of the workspace.
pub fn case_dir(case: &str) -> PathBuf {
    warmstart_core::test_support::fixture("keras", case)
}

/// One tensor as h5py listed it.
#[derive(Debug, Clone)]
pub struct Expected {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<u64>,
    pub bytes: Vec<u8>,
}

/// `expected.json` of `case`, and its file.
pub fn json(case: &str) -> (PathBuf, Value) {
    let dir = case_dir(case);
    let json: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    (dir.join(json["file"].as_str().unwrap()), json)
}

/// The tensors `expected.json` of `case` lists.
pub fn tensors(case: &str) -> Vec<Expected> {
    let (_, json) = json(case);
    json["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| Expected {
            name: t["name"].as_str().unwrap().to_string(),
            dtype: t["dtype"].as_str().unwrap().to_string(),
            shape: t["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).collect(),
            bytes: from_hex(t["hex"].as_str().unwrap()),
        })
        .collect()
}

pub fn from_hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// Asserts that `src` lists exactly `expected`, in order, with the same dtypes, shapes and bytes.
pub fn assert_lists(src: &dyn CheckpointSource, expected: &[Expected]) {
    let names: Vec<&str> = src.tensors().iter().map(|t| t.name.as_str()).collect();
    let want: Vec<&str> = expected.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, want, "names in order");
    for t in expected {
        let info = src.tensor(&t.name).unwrap();
        assert_eq!(info.dtype.name(), t.dtype, "{}", t.name);
        assert_eq!(info.shape, t.shape, "{}", t.name);
        assert_eq!(src.read(&t.name).unwrap().as_ref(), t.bytes.as_slice(), "{}", t.name);
    }
}
