// Helpers that builds with only some formats do not all use.
#![cfg_attr(not(all(feature = "tf", feature = "safetensors", feature = "hdf5")), allow(dead_code))]

//! Helpers shared by the integration tests: running the built binary, finding fixtures, reading their
//! `expected.json`, hashing bytes, and listing a folder.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use sha2::{Digest, Sha256};

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    /// The exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Asserts the exit code, showing the output if it differs, and that nothing panicked.
    pub fn expect_code(self, code: i32) -> Self {
        assert_eq!(self.code, Some(code), "exit code; stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        self
    }
}

/// Runs the built `warmstart` with `args`.
pub fn warmstart<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let output = Command::new(env!("CARGO_BIN_EXE_warmstart")).args(args).output().expect("run warmstart");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

pub use warmstart_core::test_support::fixture;

/// The case's `expected.json`, written by the fixture generator.
pub fn expected(area: &str, case: &str) -> serde_json::Value {
    let path = fixture(area, case).join("expected.json");
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The lowercase hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The names in a folder, sorted.
pub fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// Copies every file of folder `from` into folder `to` (not recursing).
pub fn copy_folder(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}
