//! Shared helpers of the TF tests: the fixtures TensorFlow wrote and what TensorFlow read from them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};
use warmstart_core::CheckpointSource;
use warmstart_tf::TfSource;

/// `tests/fixtures/tf` of the workspace.
pub fn fixtures() -> PathBuf {
    warmstart_core::test_support::fixtures().join("tf")
}

/// The cases, each a directory with `expected.json`.
pub const CASES: [&str; 6] = ["tf1_single", "tf1_sharded", "tf1_partitioned", "dtypes", "slice_keys", "tf2_keras"];

pub fn expected(case: &str) -> Value {
    let text = std::fs::read_to_string(fixtures().join(case).join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The prefix TensorFlow's `latest_checkpoint` resolves in a case directory.
pub fn prefix(case: &str) -> PathBuf {
    let exp = expected(case);
    fixtures().join(case).join(exp["checkpoint"].as_str().unwrap())
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What TensorFlow recorded for one tensor, as our reader sees it: `{dtype, shape, sha256|strings}`.
pub fn describe(ckpt: &TfSource, name: &str) -> Value {
    let info = ckpt.tensor(name).unwrap();
    let mut v = serde_json::json!({"dtype": info.dtype.name(), "shape": info.shape});
    if info.dtype == warmstart_core::DType::String {
        let strings: Vec<String> = ckpt.read_strings(name).unwrap().iter().map(|s| hex(s)).collect();
        v["strings"] = serde_json::json!(strings);
    } else {
        v["sha256"] = serde_json::json!(sha256_hex(&ckpt.read(name).unwrap()));
    }
    v
}

/// Copies a case directory into `dest`.
pub fn copy_case(case: &str, dest: &Path) {
    for entry in std::fs::read_dir(fixtures().join(case)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dest.join(entry.file_name())).unwrap();
    }
}
