//! NumPy through the binary: `inspect --json` against what np.load read (`tests/fixtures/gen_numpy.py`),
//! `.npz` -> safetensors -> `.npz` giving np.save's members back, and a TF-made warm-start case run with
//! its old checkpoint and target converted to `.npz` (source and target) into an `.npz` output that
//! holds TF's values.

use std::path::Path;

use serde_json::{json, Value};

use crate::util::{files_in, fixture, warmstart};

fn npz_members(path: &Path) -> Vec<(String, Vec<u8>)> {
    use std::io::Read;
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    (0..zip.len())
        .map(|i| {
            let mut file = zip.by_index(i).unwrap();
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes).unwrap();
            (file.name().unwrap().into_owned(), bytes)
        })
        .collect()
}

#[test]
fn inspect_json_lists_what_np_load_read() {
    for (case, file) in [("savez", "model"), ("savez", "compressed"), ("layouts", "model"), ("npy", "v2")] {
        let dir = fixture("numpy", case);
        let want: Value = serde_json::from_slice(&std::fs::read(dir.join(format!("{file}.json"))).unwrap()).unwrap();
        let path = dir.join(want["file"].as_str().unwrap());
        let run = warmstart(["inspect".as_ref(), "--json".as_ref(), path.as_os_str()]).expect_code(0);
        let got: Value = serde_json::from_str(&run.stdout).unwrap();
        let tensors: Vec<Value> = want["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| json!({"name": t["name"], "dtype": t["dtype"], "shape": t["shape"]}))
            .collect();
        assert_eq!(got, json!({"format": "numpy", "tensors": tensors}), "{case}/{file}");
    }
}

#[test]
fn npz_to_safetensors_to_npz_gives_np_save_members_back() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture("numpy", "savez").join("compressed.npz");
    let st = dir.path().join("m.safetensors");
    let back = dir.path().join("back.npz");
    warmstart(["convert".as_ref(), src.as_os_str(), st.as_os_str()]).expect_code(0);
    let run = warmstart(["convert".as_ref(), st.as_os_str(), back.as_os_str()]).expect_code(0);
    assert!(run.stdout.contains("(numpy)"), "{}", run.stdout);
    // safetensors orders tensors its own way; the members are np.save's bytes, by name.
    let mut ours = npz_members(&back);
    let mut numpy = npz_members(&fixture("numpy", "savez").join("model.npz"));
    ours.sort();
    numpy.sort();
    assert_eq!(ours, numpy);
    // Compressed as np.savez_compressed: the same members once inflated.
    let small = dir.path().join("small.npz");
    warmstart(["convert".as_ref(), st.as_os_str(), small.as_os_str(), "--compress".as_ref()]).expect_code(0);
    let mut inflated = npz_members(&small);
    inflated.sort();
    assert_eq!(inflated, numpy);
    assert!(std::fs::metadata(&small).unwrap().len() < std::fs::metadata(&back).unwrap().len());
    assert_eq!(files_in(dir.path()), ["back.npz", "m.safetensors", "small.npz"]);
}

#[test]
fn refused_dtypes_are_named_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let refused = fixture("numpy", "refused");
    for (file, kind) in [("object.npy", "an object dtype"), ("structured.npy", "a structured dtype")] {
        let out = dir.path().join("o.safetensors");
        let run = warmstart(["convert".as_ref(), refused.join(file).as_os_str(), out.as_os_str()]).expect_code(1);
        assert!(run.stderr.contains(file) && run.stderr.contains(kind), "{}", run.stderr);
    }
    assert!(files_in(dir.path()).is_empty());
}

/// A TF-made case (a vocabulary remap) with both checkpoints as `.npz`: the binary's `.npz` output
/// holds TF's values.
#[test]
fn npz_source_and_target_give_tf_values_through_the_binary() {
    let case = crate::warmstart::fixtures().join("accept_baseline");
    let tmp = tempfile::tempdir().unwrap();
    let (old, new) = (tmp.path().join("old.npz"), tmp.path().join("new.npz"));
    warmstart(["convert".as_ref(), case.join("old").as_os_str(), old.as_os_str()]).expect_code(0);
    warmstart(["convert".as_ref(), case.join("new/model.ckpt").as_os_str(), new.as_os_str()]).expect_code(0);
    for vocab in ["old_vocab", "new_vocab"] {
        std::fs::copy(case.join(vocab), tmp.path().join(vocab)).unwrap();
    }
    let config = std::fs::read_to_string(case.join("config.toml")).unwrap();
    let config = config.replace("\"old\"", "\"old.npz\"").replace("\"new/model.ckpt\"", "\"new.npz\"");
    assert!(config.contains("old.npz") && config.contains("new.npz"), "{config}");
    let config_path = tmp.path().join("config.toml");
    std::fs::write(&config_path, config).unwrap();
    let out = tmp.path().join("warm.npz");
    warmstart(["run".as_ref(), "--config".as_ref(), config_path.as_os_str(), "--out".as_ref(), out.as_os_str()])
        .expect_code(0);
    let written = warmstart_formats::open(&out).unwrap();
    let bytes = std::fs::read(case.join("expected.safetensors")).unwrap();
    let expected = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert!(!expected.tensors().is_empty());
    for (name, view) in expected.tensors() {
        assert_eq!(&*written.read(&name).unwrap(), view.data(), "{name}");
    }
}
