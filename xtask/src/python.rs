//! The Python package's tests (`cargo xtask test` runs them after the Rust tests): makes the venv
//! `target/python-venv` from the pinned `crates/python/tests/requirements.txt` (maturin, pytest, numpy,
//! ml_dtypes, safetensors, h5py; remade when that file changes), builds the extension into it with
//! `maturin develop`, and runs pytest on `crates/python/tests`. The tests need no TensorFlow.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::fixtures::ensure_venv;
use crate::root;

/// `cargo xtask test`'s Python step; `args` go to pytest.
pub fn test(args: &[String]) -> Result<(), String> {
    let root = root();
    let python = install(&root.join("target/python-venv"), false)?;
    let status = Command::new(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(root.join("crates/python/tests"))
        .args(args)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .current_dir(&root)
        .status()
        .map_err(|e| format!("cannot run pytest with {}: {e}", python.display()))?;
    pytest_outcome(status.code())
}

/// Makes the venv `venv` from the tests' pinned requirements (unless made from them already) and
/// builds the extension into it (`release`: optimised, as the bench measures it); returns its python.
pub fn install(venv: &Path, release: bool) -> Result<PathBuf, String> {
    let root = root();
    let python = ensure_venv(venv, &root.join("crates/python/tests/requirements.txt"))?;
    let bin = venv.join("bin");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![bin.clone()];
    paths.extend(std::env::split_paths(&path));
    let path = std::env::join_paths(paths).map_err(|e| format!("cannot extend PATH: {e}"))?;
    // On stderr, maturin's and pip's words too: `cargo xtask bench --json` keeps stdout for its JSON.
    eprintln!("xtask: building the warmstart Python package into {}", venv.display());
    let mut maturin = Command::new(bin.join("maturin"));
    maturin.args(["develop", "--quiet", "--manifest-path"]).arg(root.join("crates/python/Cargo.toml"));
    if release {
        maturin.arg("--release");
    }
    maturin.env("VIRTUAL_ENV", venv).env("PATH", &path).current_dir(&root).stdout(std::io::stderr());
    crate::run(&mut maturin)?;
    Ok(python)
}

/// What pytest's exit code says: 0 is success; 5 (no tests collected) is a failure too, since the
/// suite always has tests.
fn pytest_outcome(code: Option<i32>) -> Result<(), String> {
    let why = match code {
        Some(0) => return Ok(()),
        Some(1) => "some Python tests failed",
        Some(2) => "the Python test run was interrupted",
        Some(3) => "pytest had an internal error",
        Some(4) => "pytest was called wrongly",
        Some(5) => "pytest collected no tests",
        Some(_) => "pytest failed",
        None => "pytest was killed by a signal",
    };
    Err(format!("{why} (exit {})", code.map_or("-".to_string(), |c| c.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pytest_exit_codes() {
        assert!(pytest_outcome(Some(0)).is_ok());
        for code in [Some(1), Some(2), Some(3), Some(4), Some(5), Some(9), None] {
            assert!(pytest_outcome(code).is_err(), "{code:?}");
        }
        assert!(pytest_outcome(Some(5)).unwrap_err().contains("no tests"));
    }
}
