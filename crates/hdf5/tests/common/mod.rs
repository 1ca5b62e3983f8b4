//! Shared by the HDF5 tests: the fixtures and what h5py read from them.
#![allow(dead_code)]

use std::path::PathBuf;

use serde_json::Value;

/// `tests/fixtures/hdf5/<case>` of the workspace.
pub fn case_dir(case: &str) -> PathBuf {
    warmstart_core::test_support::fixture("hdf5", case)
}

/// The cases written by Keras and h5py, each with an `expected.json`.
pub const CASES: [&str; 4] = ["keras3", "keras_legacy", "legacy_tf2_style", "plain"];

/// One tensor as h5py listed it.
#[derive(Debug, Clone)]
pub struct Expected {
    pub name: String,
    pub path: String,
    pub dtype: String,
    pub shape: Vec<u64>,
    /// Little-endian bytes (numeric tensors).
    pub bytes: Option<Vec<u8>>,
    /// Values (string tensors).
    pub strings: Option<Vec<Vec<u8>>>,
}

/// The fixture file of `case` and what h5py read from it.
pub fn expected(case: &str) -> (PathBuf, String, Vec<Expected>) {
    let dir = case_dir(case);
    let json: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let file = dir.join(json["file"].as_str().unwrap());
    let layout = json["layout"].as_str().unwrap().to_string();
    let tensors = json["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| Expected {
            name: t["name"].as_str().unwrap().to_string(),
            path: t["path"].as_str().unwrap().to_string(),
            dtype: t["dtype"].as_str().unwrap().to_string(),
            shape: t["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).collect(),
            bytes: t.get("hex").map(|h| from_hex(h.as_str().unwrap())),
            strings: t
                .get("values")
                .map(|v| v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().as_bytes().to_vec()).collect()),
        })
        .collect();
    (file, layout, tensors)
}

fn from_hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}
