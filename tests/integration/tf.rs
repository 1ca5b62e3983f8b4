//! TensorFlow checkpoints through the binary: `inspect` lists what `tf.train.load_checkpoint` read from
//! the bundles TensorFlow wrote (`tests/fixtures/gen_tf.py`), `convert` TF to safetensors (string
//! tensors skipped with a warning naming them), safetensors to TF and TF to TF keep every byte, and
//! damaged bundles are refused with exit 1 and a message naming the file.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::util::{copy_folder, expected, files_in, fixture, sha256_hex, warmstart};

/// Cases TensorFlow can read whole (`slice_keys` holds slices that do not cover their tensors).
const CASES: [&str; 5] = ["tf1_single", "tf1_sharded", "tf1_partitioned", "dtypes", "tf2_keras"];

/// The prefix `tf.train.latest_checkpoint` resolved for the case.
fn prefix_of(case: &str) -> PathBuf {
    fixture("tf", case).join(expected("tf", case)["checkpoint"].as_str().unwrap())
}

fn inspect_json(path: &Path) -> Value {
    let run = warmstart(["inspect".as_ref(), "--json".as_ref(), path.as_os_str()]).expect_code(0);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

/// What TensorFlow read, as `{name: {dtype, shape, sha256|strings}}`.
fn tf_tensors(case: &str) -> serde_json::Map<String, Value> {
    expected("tf", case)["tensors"].as_object().unwrap().clone()
}

/// What our reader reads from `path`, in the same form.
fn our_tensors(path: &Path) -> serde_json::Map<String, Value> {
    let src = warmstart_formats::open(path).unwrap();
    let mut out = serde_json::Map::new();
    for t in src.tensors() {
        let mut v = json!({"dtype": t.dtype.name(), "shape": t.shape});
        if t.dtype == warmstart_core::DType::String {
            let hex: Vec<String> = src
                .read_strings(&t.name)
                .unwrap()
                .iter()
                .map(|s| s.iter().map(|b| format!("{b:02x}")).collect())
                .collect();
            v["strings"] = json!(hex);
        } else {
            v["sha256"] = json!(sha256_hex(&src.read(&t.name).unwrap()));
        }
        out.insert(t.name.clone(), v);
    }
    out
}

fn convert(src: &Path, dst: &Path, extra: &[&str]) -> crate::util::Run {
    let mut args: Vec<&std::ffi::OsStr> = vec!["convert".as_ref(), src.as_os_str(), dst.as_os_str()];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    warmstart(args).expect_code(0)
}

#[test]
fn inspect_lists_what_tensorflow_read() {
    for case in CASES {
        let want: Vec<Value> = tf_tensors(case)
            .iter()
            .map(|(name, t)| json!({"name": name, "dtype": t["dtype"], "shape": t["shape"]}))
            .collect();
        // The folder (its `checkpoint` file), the prefix and the .index file all open the same bundle.
        let mut paths = vec![prefix_of(case), PathBuf::from(format!("{}.index", prefix_of(case).display()))];
        if fixture("tf", case).join("checkpoint").is_file() {
            paths.push(fixture("tf", case));
        }
        for path in paths {
            assert_eq!(inspect_json(&path), json!({"format": "tf", "tensors": want}), "{}", path.display());
        }
    }
}

#[test]
fn inspect_table_spells_strings_and_partitioned_full_shapes() {
    let run = warmstart(["inspect".as_ref(), prefix_of("dtypes").as_os_str()]).expect_code(0);
    assert!(run.stdout.starts_with("tf checkpoint "), "{}", run.stdout);
    let line = run.stdout.lines().find(|l| l.starts_with("str_vec ")).unwrap();
    assert!(line.contains("STRING") && line.contains("[4]"), "{line}");
    let run = warmstart(["inspect".as_ref(), fixture("tf", "tf1_partitioned").as_os_str()]).expect_code(0);
    let line = run.stdout.lines().find(|l| l.starts_with("emb ")).unwrap();
    assert!(line.contains("F32") && line.contains("[300, 2]"), "{line}");
    assert!(!run.stdout.contains("part_"), "slice keys are hidden:\n{}", run.stdout);
}

#[test]
fn tf_to_safetensors_skips_strings_with_a_warning() {
    for case in ["tf1_single", "tf1_partitioned", "tf2_keras", "tf1_sharded"] {
        let dir = tempfile::tempdir().unwrap();
        let dst = dir.path().join("out.safetensors");
        let run = convert(&prefix_of(case), &dst, &[]);
        let mut want = tf_tensors(case);
        let strings: Vec<String> =
            want.iter().filter(|(_, t)| t["dtype"] == "STRING").map(|(n, _)| n.clone()).collect();
        for name in &strings {
            assert!(run.stderr.contains("warning") && run.stderr.contains(name.as_str()), "{}", run.stderr);
            want.remove(name);
        }
        assert_eq!(strings.is_empty(), case != "tf2_keras");
        assert_eq!(files_in(dir.path()), ["out.safetensors"]);
        assert_eq!(our_tensors(&dst), want, "{case}");
    }
}

#[test]
fn tf_to_tf_and_back_from_safetensors_keep_every_byte() {
    for case in CASES {
        let dir = tempfile::tempdir().unwrap();
        // TF to TF, into a folder: model.ckpt and a `checkpoint` file that names it.
        let out = dir.path().join("copy");
        std::fs::create_dir(&out).unwrap();
        convert(&prefix_of(case), &out, &[]);
        assert_eq!(our_tensors(&out), tf_tensors(case), "{case}: TF to TF");
        assert!(files_in(&out).contains(&"checkpoint".to_string()));
        if case == "dtypes" {
            continue; // complex128 and strings have no safetensors dtype
        }
        // TF to safetensors to TF.
        let st = dir.path().join("m.safetensors");
        convert(&prefix_of(case), &st, &[]);
        let back = dir.path().join("back.ckpt");
        convert(&st, &back, &[]);
        let mut want = tf_tensors(case);
        want.retain(|_, t| t["dtype"] != "STRING");
        assert_eq!(our_tensors(&back), want, "{case}: via safetensors");
    }
}

#[test]
fn convert_writes_the_data_shards_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("three.ckpt");
    convert(&prefix_of("tf1_partitioned"), &out, &["--shards", "3"]);
    let data: Vec<String> = files_in(dir.path()).into_iter().filter(|f| f.contains(".data-")).collect();
    let want = ["three.ckpt.data-00000-of-00003", "three.ckpt.data-00001-of-00003", "three.ckpt.data-00002-of-00003"];
    assert_eq!(data, want);
    assert_eq!(our_tensors(&out), tf_tensors("tf1_partitioned"));

    // Formats without shards refuse the flag, writing nothing; 0 shards is a usage error.
    let st = dir.path().join("x.safetensors");
    let run = warmstart([
        "convert".as_ref(),
        prefix_of("tf1_single").as_os_str(),
        st.as_os_str(),
        "--shards".as_ref(),
        "2".as_ref(),
    ]);
    run.expect_code(1);
    assert!(!st.exists());
    let run = warmstart([
        "convert".as_ref(),
        prefix_of("tf1_single").as_os_str(),
        out.as_os_str(),
        "--shards".as_ref(),
        "0".as_ref(),
    ]);
    run.expect_code(2);
}

#[test]
fn safetensors_fixtures_convert_to_tf() {
    for case in ["dtypes", "shapes"] {
        let e = expected("safetensors", case);
        let src = fixture("safetensors", case).join(e["source"].as_str().unwrap());
        let dir = tempfile::tempdir().unwrap();
        let dst = dir.path().join("model.ckpt");
        let names: Vec<&str> = e["tensors"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
        let run = warmstart(["convert".as_ref(), src.as_os_str(), dst.as_os_str(), "--to".as_ref(), "tf".as_ref()]);
        // TensorFlow has every safetensors dtype but F8_E8M0.
        let has_e8m0 = e["tensors"].as_array().unwrap().iter().any(|t| t["dtype"] == "F8_E8M0");
        assert_eq!(run.code == Some(0), !has_e8m0, "{case}: {}", run.stderr);
        if run.code == Some(0) {
            let out = warmstart_formats::open(&dst).unwrap();
            for t in e["tensors"].as_array().unwrap() {
                let bytes = out.read(t["name"].as_str().unwrap()).unwrap();
                assert_eq!(sha256_hex(&bytes), t["sha256"], "{case}: {}", t["name"]);
            }
        } else {
            // F8_E8M0 has no TensorFlow dtype: refused, naming the tensor.
            let run = run.expect_code(1);
            assert!(names.iter().any(|n| run.stderr.contains(n)), "{}", run.stderr);
            assert!(run.stderr.contains("TensorFlow has no dtype"), "{}", run.stderr);
            assert!(files_in(dir.path()).is_empty(), "{:?}", files_in(dir.path()));
        }
    }
}

#[test]
fn damaged_bundles_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("ckpt");
    copy_folder(&fixture("tf", "tf1_sharded"), &folder);
    std::fs::remove_file(folder.join("model.data-00001-of-00002")).unwrap();
    let run = warmstart(["inspect".as_ref(), folder.as_os_str()]).expect_code(1);
    assert!(run.stderr.contains("model.data-00001-of-00002") && run.stderr.contains("missing"), "{}", run.stderr);

    let folder = dir.path().join("flipped");
    copy_folder(&fixture("tf", "tf1_single"), &folder);
    let data = folder.join("model.ckpt-12.data-00000-of-00001");
    let mut bytes = std::fs::read(&data).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&data, bytes).unwrap();
    let out = dir.path().join("out.safetensors");
    let run = warmstart(["convert".as_ref(), folder.as_os_str(), out.as_os_str()]).expect_code(1);
    assert!(run.stderr.contains("checksum mismatch") && run.stderr.contains("\"counts\""), "{}", run.stderr);
    assert!(!out.exists());
}
