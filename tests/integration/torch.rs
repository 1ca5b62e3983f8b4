//! PyTorch checkpoints through the binary, against what torch wrote (`tests/fixtures/gen_torch.py`):
//! `inspect --json` lists them, `convert` to every output format keeps every byte `torch.load` reads,
//! a torch checkpoint is a warm-start source, and the files that must be refused (a disallowed
//! global, the legacy format) are refused with exit 1, a message saying why, and no output.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::util::{expected, files_in, fixture, sha256_hex, warmstart};

const CASES: [&str; 7] = ["plain", "views", "tied", "bigendian", "nested", "protocol5", "sharded"];

fn source_of(case: &str) -> PathBuf {
    fixture("torch", case).join(expected("torch", case)["source"].as_str().unwrap())
}

/// Checks that the checkpoint at `path` holds the case's tensors and bytes (in any order).
fn assert_holds_case(path: &Path, case: &str) {
    let src = warmstart_formats::open(path).unwrap_or_else(|e| panic!("{case}: {e}"));
    let want = expected("torch", case);
    let want = want["tensors"].as_array().unwrap();
    assert_eq!(src.tensors().len(), want.len(), "{case}: {}", path.display());
    for t in want {
        let name = t["name"].as_str().unwrap();
        let info = src.tensor(name).unwrap_or_else(|| panic!("{case}: no {name} in {}", path.display()));
        assert_eq!(info.dtype.to_string(), t["dtype"].as_str().unwrap(), "{case}: {name}");
        assert_eq!(sha256_hex(&src.read(name).unwrap()), t["sha256"].as_str().unwrap(), "{case}: {name}");
    }
}

#[test]
fn inspect_json_lists_what_torch_load_reads() {
    for case in CASES {
        let run = warmstart(["inspect".as_ref(), "--json".as_ref(), source_of(case).as_os_str()]).expect_code(0);
        let got: Value = serde_json::from_str(&run.stdout).unwrap();
        let tensors: Vec<Value> = expected("torch", case)["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| json!({"name": t["name"], "dtype": t["dtype"], "shape": t["shape"]}))
            .collect();
        assert_eq!(got, json!({"format": "torch", "tensors": tensors}), "{case}");
    }
}

#[test]
fn convert_to_every_format_keeps_every_byte() {
    let dir = tempfile::tempdir().unwrap();
    let mut outputs = vec!["m.safetensors"];
    if cfg!(feature = "tf") {
        outputs.push("m.ckpt");
    }
    if cfg!(feature = "hdf5") {
        outputs.push("m.h5");
    }
    for case in CASES {
        for out in &outputs {
            // HDF5 output has no bfloat16 or float8 type here (as h5py writes them), which these hold.
            if matches!(case, "plain" | "bigendian") && out.ends_with(".h5") {
                continue;
            }
            let dst = dir.path().join(format!("{case}-{out}"));
            // TensorFlow has no float8_e8m0: refused naming it, leaving nothing.
            if case == "plain" && out.ends_with(".ckpt") {
                let run = warmstart(["convert".as_ref(), source_of(case).as_os_str(), dst.as_os_str()]).expect_code(1);
                assert!(run.stderr.contains("\"f8_e8m0\": TensorFlow has no dtype F8_E8M0"), "{}", run.stderr);
                assert!(
                    !files_in(dir.path()).iter().any(|f| f.starts_with("plain-m.ckpt")),
                    "{:?}",
                    files_in(dir.path())
                );
                continue;
            }
            warmstart(["convert".as_ref(), source_of(case).as_os_str(), dst.as_os_str()]).expect_code(0);
            assert_holds_case(&dst, case);
        }
    }
}

#[test]
fn a_torch_checkpoint_warm_starts_a_model() {
    use safetensors::tensor::{Dtype, TensorView};
    let dir = tempfile::tempdir().unwrap();
    // The new model: the views case's names and shapes, all zeros.
    let src = warmstart_formats::open(&source_of("views")).unwrap();
    let zeros: Vec<(String, Vec<usize>, Vec<u8>)> = src
        .tensors()
        .iter()
        .map(|t| {
            (t.name.clone(), t.shape.iter().map(|&d| d as usize).collect(), vec![0; t.byte_len().unwrap() as usize])
        })
        .collect();
    let views = zeros.iter().map(|(n, s, b)| (n.clone(), TensorView::new(Dtype::F32, s.clone(), b).unwrap()));
    safetensors::serialize_to_file(views, None, &dir.path().join("new.safetensors")).unwrap();
    let toml = format!(
        "ckpt_to_initialize_from = {:?}\ntarget = \"new.safetensors\"\n",
        source_of("views").display().to_string()
    );
    std::fs::write(dir.path().join("w.toml"), toml).unwrap();
    let out = dir.path().join("out.safetensors");
    let config = dir.path().join("w.toml");
    warmstart(["run".as_ref(), "--config".as_ref(), config.as_os_str(), "--out".as_ref(), out.as_os_str()])
        .expect_code(0);
    assert_holds_case(&out, "views");
}

#[test]
fn refused_files_say_why_and_leave_nothing() {
    let refusals = [
        ("disallowed", vec!["posix.system", "not allowed", "nothing was run"]),
        ("legacy", vec!["legacy PyTorch format"]),
    ];
    for (case, says) in refusals {
        let src = source_of(case);
        let run = warmstart(["inspect".as_ref(), src.as_os_str()]).expect_code(1);
        for s in &says {
            assert!(run.stderr.contains(s) && run.stderr.contains("model.pt"), "{case}: {s:?} not in {}", run.stderr);
        }
        let dir = tempfile::tempdir().unwrap();
        let dst = dir.path().join("o.safetensors");
        let run = warmstart(["convert".as_ref(), src.as_os_str(), dst.as_os_str()]).expect_code(1);
        assert!(run.stderr.contains(says[0]), "{case}: {}", run.stderr);
        assert!(files_in(dir.path()).is_empty(), "{case}: convert left {:?}", files_in(dir.path()));
    }
}

#[test]
fn damaged_archives_are_refused_with_no_output() {
    let bytes = std::fs::read(source_of("plain")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.pt");
    let out = tempfile::tempdir().unwrap();
    for len in [bytes.len() / 3, bytes.len() - 30, bytes.len() - 1] {
        std::fs::write(&input, &bytes[..len]).unwrap();
        let dst = out.path().join("o.safetensors");
        let run = warmstart(["convert".as_ref(), input.as_os_str(), dst.as_os_str()]).expect_code(1);
        assert!(run.stderr.contains("in.pt"), "{}", run.stderr);
        assert!(files_in(out.path()).is_empty(), "convert left {:?}", files_in(out.path()));
    }
}

#[test]
fn torch_output_is_refused_as_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let dst = dir.path().join("o.bin");
    let run = warmstart([
        "convert".as_ref(),
        source_of("tied").as_os_str(),
        dst.as_os_str(),
        "--to".as_ref(),
        "torch".as_ref(),
    ])
    .expect_code(1);
    assert!(run.stderr.contains("read only"), "{}", run.stderr);
    assert!(files_in(dir.path()).is_empty());
}
