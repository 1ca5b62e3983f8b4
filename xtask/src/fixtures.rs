//! `cargo xtask fixtures [AREA ...]`: regenerates the committed test fixtures with the reference Python
//! libraries, from the repository alone. Makes a virtual environment `target/fixtures-venv` from the
//! pinned `tests/fixtures/requirements.txt` (reused while that file is unchanged: the venv keeps the
//! hash of the requirements it was made from), then runs `tests/fixtures/generate.py [AREA ...]` with
//! it. Areas listed in [`OWN_VENV`] (torch, which crashes when loaded beside TensorFlow) run in a venv
//! of their own, made the same way from their own requirements file. Needs `python3` with the `venv`
//! module and network access to PyPI on the first run; no cmake.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{root, run};

const USAGE: &str = "usage: cargo xtask fixtures [AREA ...]

Regenerates the fixtures under tests/fixtures/ (every area, or the named ones: an area is a
tests/fixtures/gen_<area>.py) with TensorFlow, Keras, h5py and safetensors at the versions pinned in
tests/fixtures/requirements.txt, installed into target/fixtures-venv (remade when that file changes).
Area torch runs with torch and transformers from tests/fixtures/requirements-torch.txt, in
target/fixtures-torch-venv (about 5 GB).
The files come out byte for byte as committed (`git status --porcelain tests/fixtures examples` stays
empty); tests/fixtures/README.md says what makes that so.";

/// The file the venv's requirements hash is kept in, inside the venv.
const STAMP: &str = "warmstart-requirements.hash";

/// Areas generated in a venv of their own: (area, requirements file in tests/fixtures, venv under
/// target/). torch with its CUDA libraries takes about 5 GB.
const OWN_VENV: [(&str, &str, &str); 1] = [("torch", "requirements-torch.txt", "fixtures-torch-venv")];

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
    let all: Vec<String>;
    let areas: &[String] = if args.is_empty() {
        all = all_areas(&fixtures)?;
        &all
    } else {
        args
    };
    let own = |area: &String| OWN_VENV.iter().find(|(name, _, _)| name == area);
    let shared: Vec<String> = areas.iter().filter(|a| own(a).is_none()).cloned().collect();
    if !shared.is_empty() {
        let python = ensure_venv(&root.join("target/fixtures-venv"), &fixtures.join("requirements.txt"))?;
        // gen_port.py and gen_safetensors_shards.py run transformers and huggingface_hub in the torch venv,
        // in processes of their own.
        let needs_torch = shared.iter().any(|a| a == "port" || a == "safetensors_shards");
        let torch = if needs_torch && std::env::var_os("WARMSTART_TORCH_PYTHON").is_none() {
            Some(ensure_venv(&root.join("target/fixtures-torch-venv"), &fixtures.join("requirements-torch.txt"))?)
        } else {
            None
        };
        generate(&root, &python, &shared, torch.as_deref())?;
    }
    for (area, requirements, venv) in OWN_VENV {
        if areas.iter().any(|a| a == area) {
            let python = ensure_venv(&root.join("target").join(venv), &fixtures.join(requirements))?;
            generate(&root, &python, &[area.to_string()], None)?;
        }
    }
    Ok(())
}

/// Every area: each `tests/fixtures/gen_<area>.py`, in name order.
fn all_areas(fixtures: &Path) -> Result<Vec<String>, String> {
    let entries = fs::read_dir(fixtures).map_err(|e| format!("cannot read {}: {e}", fixtures.display()))?;
    let mut areas: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name().to_str().and_then(|n| n.strip_prefix("gen_")?.strip_suffix(".py")).map(String::from)
        })
        .collect();
    areas.sort();
    Ok(areas)
}

/// Runs `generate.py AREAS` with `python` (and `torch` as `$WARMSTART_TORCH_PYTHON`, if given).
fn generate(root: &Path, python: &Path, areas: &[String], torch: Option<&Path>) -> Result<(), String> {
    println!("xtask: regenerating fixtures {} with {}", areas.join(", "), python.display());
    let mut command = Command::new(python);
    if let Some(torch) = torch {
        command.env("WARMSTART_TORCH_PYTHON", torch);
    }
    run(command
        .arg(root.join("tests/fixtures/generate.py"))
        .args(areas)
        .current_dir(root)
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
