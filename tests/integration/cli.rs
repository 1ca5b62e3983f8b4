//! The command line itself: usage errors exit 2, help exits 0, missing inputs and formats this build
//! lacks exit 1 with a message naming the path.

use crate::util::warmstart;

#[test]
fn usage_errors_exit_2() {
    let bad: [&[&str]; 7] = [
        &[],
        &["frobnicate"],
        &["inspect"],
        &["inspect", "--bogus", "x"],
        &["convert", "a.safetensors"],
        &["convert", "a.safetensors", "b.safetensors", "--to", "onnx"],
        // `--window` is gone: the remap is one pass over the old tensor in bounded memory.
        &["run", "--config", "w.toml", "--out", "o.safetensors", "--window", "64"],
    ];
    for args in bad {
        let run = warmstart(args).expect_code(2);
        assert!(run.stderr.contains("Usage") || run.stderr.contains("error"), "{args:?}: {}", run.stderr);
    }
}

/// A destination whose name tells no format takes the input's (`tests/integration/outputs.rs`); with
/// no input there is nothing to take it from, and the missing input is the error.
#[test]
fn a_destination_whose_format_cannot_be_told_needs_an_input() {
    let dir = tempfile::tempdir().unwrap();
    let dst = dir.path().join("out.bin");
    let run = warmstart(["convert".as_ref(), dir.path().join("in").as_os_str(), dst.as_os_str()]).expect_code(1);
    assert!(run.stderr.contains("in") && !dst.exists(), "{}", run.stderr);
}

#[test]
fn help_and_version_exit_0() {
    let run = warmstart(["--help"]).expect_code(0);
    assert!(run.stdout.contains("inspect") && run.stdout.contains("convert"));
    let run = warmstart(["--version"]).expect_code(0);
    assert!(run.stdout.starts_with("warmstart "));
}

#[test]
fn a_missing_source_exits_1_naming_it() {
    let run = warmstart(["inspect", "/nonexistent/model.safetensors"]).expect_code(1);
    assert!(run.stderr.starts_with("error: /nonexistent/model.safetensors: "), "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "the cause is printed once: {}", run.stderr);
}

#[test]
fn an_unrecognised_file_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "hello").unwrap();
    let run = warmstart(["inspect".as_ref(), path.as_os_str()]).expect_code(1);
    assert!(run.stderr.contains("notes.txt") && run.stderr.contains("not a checkpoint"), "{}", run.stderr);
}

#[cfg(not(feature = "hdf5"))]
#[test]
fn formats_not_compiled_in_exit_1_saying_so() {
    let dir = tempfile::tempdir().unwrap();
    let h5 = dir.path().join("model.weights.h5");
    let mut bytes = vec![0u8; 96];
    bytes[..8].copy_from_slice(b"\x89HDF\r\n\x1a\n");
    std::fs::write(&h5, bytes).unwrap();
    let run = warmstart(["inspect".as_ref(), h5.as_os_str()]).expect_code(1);
    assert!(
        run.stderr.contains("model.weights.h5") && run.stderr.contains("this build has no hdf5 support"),
        "{}",
        run.stderr
    );

    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let run = warmstart(["convert".as_ref(), h5.as_os_str(), out.join("model.ckpt").as_os_str()]).expect_code(1);
    assert!(run.stderr.contains("this build has no hdf5 support"), "{}", run.stderr);
    assert!(crate::util::files_in(&out).is_empty());
}
