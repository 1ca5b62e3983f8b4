//! Keras archives through the binary: `inspect --json` lists what h5py read from the archive's weights;
//! `convert` between archives, and from archives and sharded weights to other formats; `run` with a
//! `.keras` target and a `.keras` output (the Keras user's whole warm-start); damaged archives refused
//! with exit 1 and no output.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::util::{expected, files_in, fixture, warmstart};

fn file_of(case: &str) -> PathBuf {
    fixture("keras", case).join(expected("keras", case)["file"].as_str().unwrap())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every tensor of `case`'s expected.json, by name, with h5py's hex.
fn expected_hex(case: &str) -> Vec<(String, String)> {
    let json = expected("keras", case);
    let tensors = json["tensors"].as_array().unwrap();
    tensors.iter().map(|t| (t["name"].as_str().unwrap().into(), t["hex"].as_str().unwrap().into())).collect()
}

/// Asserts that the checkpoint at `path` holds exactly `case`'s tensors with h5py's bytes.
fn assert_holds(path: &Path, case: &str) {
    let out = warmstart_formats::open(path).unwrap();
    let want = expected_hex(case);
    let mut names: Vec<&str> = out.tensors().iter().map(|t| t.name.as_str()).collect();
    let mut want_names: Vec<&str> = want.iter().map(|(n, _)| n.as_str()).collect();
    names.sort();
    want_names.sort();
    assert_eq!(names, want_names, "{}", path.display());
    for (name, h) in &want {
        assert_eq!(&hex(&out.read(name).unwrap()), h, "{}: {name}", path.display());
    }
}

#[test]
fn inspect_json_lists_the_weights_h5py_read() {
    for case in ["model", "bf16", "sharded"] {
        let json = expected("keras", case);
        let tensors: Vec<Value> = json["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| json!({"name": t["name"], "dtype": t["dtype"], "shape": t["shape"]}))
            .collect();
        let run = warmstart(["inspect".as_ref(), "--json".as_ref(), file_of(case).as_os_str()]).expect_code(0);
        let got: Value = serde_json::from_str(&run.stdout).unwrap();
        assert_eq!(got, json!({"format": "keras", "tensors": tensors}), "{case}");
    }
}

#[test]
fn convert_keeps_every_byte_between_archives() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("copy.keras");
    warmstart(["convert".as_ref(), file_of("bf16").as_os_str(), out.as_os_str()]).expect_code(0);
    assert_holds(&out, "bf16");
    let again = dir.path().join("again.keras");
    warmstart(["convert".as_ref(), out.as_os_str(), again.as_os_str()]).expect_code(0);
    assert_holds(&again, "bf16");
    // An archive needs an archive to come from: its config is in no other format.
    let refused = dir.path().join("from_index.keras");
    let run = warmstart(["convert".as_ref(), file_of("sharded").as_os_str(), refused.as_os_str()]).expect_code(1);
    assert!(run.stderr.contains("a .keras archive is written from another .keras archive"), "{}", run.stderr);
    assert_eq!(files_in(dir.path()), ["again.keras", "copy.keras"]);
}

#[cfg(feature = "hdf5")]
#[test]
fn convert_archives_and_sharded_weights_to_hdf5_keeps_every_byte() {
    let dir = tempfile::tempdir().unwrap();
    let h5 = dir.path().join("bf16.weights.h5");
    warmstart(["convert".as_ref(), file_of("bf16").as_os_str(), h5.as_os_str()]).expect_code(0);
    assert_holds(&h5, "bf16");
    // Sharded weights read as one checkpoint.
    let sharded = dir.path().join("sharded.weights.h5");
    warmstart(["convert".as_ref(), file_of("sharded").as_os_str(), sharded.as_os_str()]).expect_code(0);
    assert_holds(&sharded, "model");
    assert_eq!(files_in(dir.path()), ["bf16.weights.h5", "sharded.weights.h5"]);
}

#[cfg(all(feature = "tf", feature = "hdf5"))]
#[test]
fn a_tf_checkpoint_of_bf16_tensors_converts_to_hdf5() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("from_tf.weights.h5");
    warmstart(["convert".as_ref(), file_of("tf_bf16").as_os_str(), out.as_os_str()]).expect_code(0);
    assert_holds(&out, "tf_bf16");
    let src = warmstart_formats::open(&out).unwrap();
    assert!(src.tensors().iter().all(|t| t.dtype == warmstart_core::DType::BF16));
}

/// Warm-starts `model` (the target) from `source` into `out` with `vars_to_warm_start` ".*".
fn warm_start(dir: &Path, out: &Path) -> crate::util::Run {
    let config = dir.join("warm.toml");
    let text = format!(
        "ckpt_to_initialize_from = {:?}\ntarget = {:?}\nvars_to_warm_start = \".*\"\n",
        file_of("source").to_str().unwrap(),
        file_of("model").to_str().unwrap()
    );
    std::fs::write(&config, text).unwrap();
    warmstart(["run".as_ref(), "--config".as_ref(), config.as_os_str(), "--out".as_ref(), out.as_os_str()])
}

#[test]
fn run_warm_starts_a_keras_archive_into_a_new_archive() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("warm.keras");
    warm_start(dir.path(), &out).expect_code(0);
    let got = warmstart_formats::open(&out).unwrap();
    let (source, target) = (expected_hex("source"), expected_hex("model"));
    assert_eq!(got.tensors().len(), target.len());
    let mut warmed = 0;
    for ((name, from_source), (tname, from_target)) in source.iter().zip(&target) {
        assert_eq!(name, tname);
        let value = hex(&got.read(name).unwrap());
        assert!(&value == from_source || &value == from_target, "{name}: neither the source's nor the target's");
        warmed += usize::from(&value == from_source && from_source != from_target);
    }
    // The layers' weights (not the optimizer's step counter) come from the source.
    for name in ["layers/dense/vars/0", "layers/dense/vars/1", "layers/dense_1/vars/0"] {
        let i = source.iter().position(|(n, _)| n == name).unwrap();
        assert_eq!(hex(&got.read(name).unwrap()), source[i].1, "{name}");
    }
    assert!(warmed >= 3, "{warmed} warmed");
    assert_eq!(files_in(dir.path()), ["warm.keras", "warm.toml"]);
}

#[test]
fn damaged_archives_are_refused_with_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(file_of("model")).unwrap();
    let offset = expected("keras", "model")["weights_offset"].as_u64().unwrap() as usize;
    let cases: [(&str, Vec<u8>); 3] = [
        ("truncated.keras", good[..good.len() / 2].to_vec()),
        // The superblock of the weights zeroed: the zip is fine, the HDF5 file in it is not.
        ("no_superblock.keras", {
            let mut b = good.clone();
            b[offset..offset + 8].fill(0);
            b
        }),
        ("short_weights.keras", {
            let mut b = good.clone();
            b.truncate(offset + 100);
            b
        }),
    ];
    for (name, bytes) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let out = dir.path().join("out.safetensors");
        let run = warmstart(["convert".as_ref(), path.as_os_str(), out.as_os_str()]).expect_code(1);
        assert!(run.stderr.contains(name), "{name}: {}", run.stderr);
        assert!(!out.exists(), "{name}");
    }
}

/// A digest of what the checkpoint at `path` holds: every tensor's name, dtype, shape and bytes, in
/// order (the files themselves may differ in HDF5's bookkeeping from run to run).
fn content_digest(path: &Path) -> String {
    let src = warmstart_formats::open(path).unwrap();
    let mut all = Vec::new();
    for t in src.tensors() {
        let shape: Vec<String> = t.shape.iter().map(u64::to_string).collect();
        all.extend(format!("{}\0{}\0{}\0", t.name, t.dtype, shape.join(",")).into_bytes());
        all.extend_from_slice(&src.read(&t.name).unwrap());
    }
    crate::util::sha256_hex(&all)
}

/// The outputs `tests/fixtures/verify_keras.py` has Keras load, written into `dir` by the binary.
fn write_verified_outputs(dir: &Path) -> Vec<(&'static str, PathBuf)> {
    let warm = dir.join("warm.keras");
    warm_start(dir, &warm).expect_code(0);
    let bf16 = dir.join("bf16.keras");
    warmstart(["convert".as_ref(), file_of("bf16").as_os_str(), bf16.as_os_str()]).expect_code(0);
    let mut out = vec![("warm.keras", warm), ("bf16.keras", bf16)];
    if cfg!(all(feature = "tf", feature = "hdf5")) {
        let from_tf = dir.join("tf_bf16.weights.h5");
        warmstart(["convert".as_ref(), file_of("tf_bf16").as_os_str(), from_tf.as_os_str()]).expect_code(0);
        out.push(("tf_bf16.weights.h5", from_tf));
    }
    out
}

/// Writes the outputs verify_keras.py checks into `$WARMSTART_KERAS_OUT`, with their digests.
#[test]
#[ignore = "writes files for tests/fixtures/verify_keras.py"]
fn write_outputs_for_verify_keras() {
    let dir = PathBuf::from(std::env::var_os("WARMSTART_KERAS_OUT").expect("WARMSTART_KERAS_OUT"));
    std::fs::create_dir_all(&dir).unwrap();
    let outputs = write_verified_outputs(&dir);
    let manifest: serde_json::Map<String, Value> =
        outputs.iter().map(|(name, path)| (name.to_string(), Value::from(content_digest(path)))).collect();
    std::fs::write(dir.join("manifest.json"), serde_json::to_string_pretty(&manifest).unwrap()).unwrap();
}

/// Keras (verify_keras.py, result committed) loaded what the binary writes today: every check passed,
/// and today's outputs hold what the verified ones held.
#[test]
fn keras_loads_what_we_write() {
    let verified: Value = serde_json::from_slice(&std::fs::read(fixture("keras", "verified.json")).unwrap()).unwrap();
    let checks = verified["checks"].as_array().unwrap();
    assert!(checks.iter().all(|c| c["ok"] == true), "{checks:#?}");
    let dir = tempfile::tempdir().unwrap();
    for (name, path) in write_verified_outputs(dir.path()) {
        assert!(checks.iter().any(|c| c["file"] == name), "{name} was not checked by Keras");
        assert_eq!(verified["digests"][name], content_digest(&path), "{name} holds other tensors than Keras loaded");
    }
}

/// A `.keras` archive at `path` (`model`'s members) whose weights are one tensor of `rows` x 1024
/// zeros at `model`'s first kernel's path: a large archive made at test time.
#[cfg(unix)]
pub(crate) fn big_archive(path: &Path, rows: u64) {
    use warmstart_core::{DType, SinkTensor, TensorInfo};
    use warmstart_formats::{Format, LayoutTemplate, WriteOptions};
    let tensor = SinkTensor::whole(TensorInfo::new("layers/dense/vars/0", DType::F32, vec![rows, 1024]));
    let template = LayoutTemplate { format: Format::Keras, path: file_of("model") };
    let opts = WriteOptions { template: Some(template), ..Default::default() };
    let mut sink = warmstart_formats::create_sink(path, Format::Keras, std::slice::from_ref(&tensor), &opts).unwrap();
    sink.begin_tensor(&tensor).unwrap();
    let block = vec![0u8; 4 << 20];
    let mut left = rows * 4096;
    while left > 0 {
        let n = left.min(block.len() as u64);
        sink.write_data(&block[..n as usize]).unwrap();
        left -= n;
    }
    sink.end_tensor().unwrap();
    sink.finish().unwrap();
}

/// SIGINT in the middle of `run` writing a large `.keras` output: exit 130, and neither the staged
/// weights nor the staged archive nor the folders made are left.
#[cfg(unix)]
#[test]
fn a_signal_mid_run_into_an_archive_leaves_nothing() {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.keras");
    big_archive(&big, 1 << 16);
    let config = dir.path().join("w.toml");
    std::fs::write(&config, "ckpt_to_initialize_from = \"big.keras\"\ntarget = \"big.keras\"\n").unwrap();
    let out = dir.path().join("new/deeper/warm.keras");
    let mut command = Command::new(env!("CARGO_BIN_EXE_warmstart"));
    // SAFETY: between fork and exec, only signal(), which is async-signal-safe, is called.
    unsafe {
        command.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        });
    }
    let mut child = command
        .args(["run".as_ref(), "--config".as_ref(), config.as_os_str(), "--out".as_ref(), out.as_os_str()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let made = dir.path().join("new/deeper");
    let start = Instant::now();
    loop {
        let staged = std::fs::read_dir(&made).into_iter().flatten().flatten().any(|e| {
            e.file_name().to_string_lossy().ends_with(".tmp") && e.metadata().is_ok_and(|m| m.len() > 1 << 20)
        });
        if staged {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "ended before writing");
        assert!(start.elapsed() < Duration::from_secs(60), "nothing staged");
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: kill() only sends a signal to the child this test started and has not waited for.
    assert_eq!(unsafe { libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGINT) }, 0);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted by SIGINT; nothing was written"), "{stderr}");
    assert_eq!(files_in(dir.path()), ["big.keras", "w.toml"]);
}
