//! `cargo xtask fixtures [AREA ...]`: regenerates the committed test fixtures with the reference Python
//! libraries, from the repository alone. Makes a virtual environment `target/fixtures-venv` from the
//! pinned `tests/fixtures/requirements.txt` (reused while that file is unchanged: the venv keeps the
//! hash of the requirements it was made from), then runs `tests/fixtures/generate.py [AREA ...]` with
//! it. Needs `python3` with the `venv` module and network access to PyPI on the first run; no cmake.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{root, run};

const USAGE: &str = "usage: cargo xtask fixtures [AREA ...]

Regenerates the fixtures under tests/fixtures/ (every area, or the named ones: an area is a
tests/fixtures/gen_<area>.py) with TensorFlow, Keras, h5py and safetensors at the versions pinned in
tests/fixtures/requirements.txt, installed into target/fixtures-venv (remade when that file changes).
The files come out byte for byte as committed (`git status --porcelain tests/fixtures examples` stays
empty); tests/fixtures/README.md says what makes that so.";

/// The file the venv's requirements hash is kept in, inside the venv.
const STAMP: &str = "warmstart-requirements.hash";

pub fn fixtures(args: &[String]) -> Result<(), String> {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return Ok(());
    }
    let root = root();
    let fixtures = root.join("tests/fixtures");
    for area in args {
        if area.starts_with('-') || !fixtures.join(format!("gen_{area}.py")).is_file() {
            return Err(format!("no fixture area {area:?} (no tests/fixtures/gen_{area}.py)\n\n{USAGE}"));
        }
    }
    let python = ensure_venv(&root.join("target/fixtures-venv"), &fixtures.join("requirements.txt"))?;
    println!("xtask: regenerating fixtures with {}", python.display());
    run(Command::new(&python)
        .arg(fixtures.join("generate.py"))
        .args(args)
        .current_dir(&root)
        // Python's string hashing is salted per process; fix it so that set and dict orders repeat.
        .env("PYTHONHASHSEED", "0")
        .env("PYTHONDONTWRITEBYTECODE", "1"))
}

/// The venv's python, after making the venv at `venv` from `requirements` unless it was already made
/// from the same requirements (also the venv of the Python tests, `python::test`).
pub(crate) fn ensure_venv(venv: &Path, requirements: &Path) -> Result<PathBuf, String> {
    let wanted = fs::read(requirements).map_err(|e| format!("cannot read {}: {e}", requirements.display()))?;
    let wanted = format!("{:016x}\n", fnv1a64(&wanted));
    let python = venv.join("bin/python");
    let stamp = venv.join(STAMP);
    if python.is_file() && fs::read_to_string(&stamp).is_ok_and(|have| have == wanted) {
        return Ok(python);
    }
    if venv.exists() {
        eprintln!("xtask: {} was made from other requirements; making it again", venv.display());
        fs::remove_dir_all(venv).map_err(|e| format!("cannot remove {}: {e}", venv.display()))?;
    }
    eprintln!(
        "xtask: making {} from {} (from PyPI; with TensorFlow this takes a few minutes)",
        venv.display(),
        requirements.display()
    );
    run(Command::new("python3").arg("-m").arg("venv").arg(venv))
        .map_err(|e| format!("{e}; python3 with the venv module (Debian: apt-get install python3-venv) is needed"))?;
    // pip's words on stderr: stdout stays the caller's (`cargo xtask bench --json`).
    run(Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"])
        .arg(requirements)
        .stdout(std::io::stderr()))?;
    // Written last: a venv whose install failed or was interrupted is made again next time.
    fs::write(&stamp, wanted).map_err(|e| format!("cannot write {}: {e}", stamp.display()))?;
    Ok(python)
}

/// 64-bit FNV-1a: stable across Rust versions (unlike `DefaultHasher`), enough to notice a change.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_the_reference_values() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
