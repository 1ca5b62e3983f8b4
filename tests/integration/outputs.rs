//! Where outputs go and in which format: a destination whose name tells no format takes the input's
//! (with a note saying so), `--format` chooses among the formats of a folder holding several (which is
//! refused without it, listing them), and `--max-shard-size` writes Hugging Face's shards and index
//! (byte for byte as `tests/fixtures/gen_safetensors_shards.py` had huggingface_hub and transformers
//! write them).

use std::path::Path;

use crate::util::{files_in, warmstart};

fn shards_area() -> std::path::PathBuf {
    warmstart_core::test_support::fixtures().join("safetensors_shards")
}

/// Every file of `dir` but `skip`, sorted, with its bytes.
fn files_with_bytes(dir: &Path, skip: &[&str]) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = files_in(dir)
        .into_iter()
        .filter(|n| !skip.contains(&n.as_str()))
        .map(|n| {
            let bytes = std::fs::read(dir.join(&n)).unwrap();
            (n, bytes)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn convert_writes_the_sources_format_when_the_name_tells_none() {
    let dir = tempfile::tempdir().unwrap();
    let src = shards_area().join("input/model.safetensors");
    let dst = dir.path().join("ckpt-5");
    let run = warmstart(["convert".as_ref(), src.as_os_str(), dst.as_os_str()]).expect_code(0);
    assert!(
        run.stderr.contains("ckpt-5: the name tells no format; writing safetensors (the source's format"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read(&dst).unwrap(), std::fs::read(&src).unwrap(), "a safetensors copy, byte for byte");
    // A name that tells is taken without a note.
    let run = warmstart(["convert".as_ref(), dst.as_os_str(), dir.path().join("w.safetensors").as_os_str()]);
    assert!(!run.stderr.contains("note:"), "{}", run.stderr);
}

#[test]
fn run_writes_the_targets_format_when_the_name_tells_none() {
    let case = crate::warmstart::fixtures().join("accept_baseline");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out/ckpt");
    let config = case.join("config.toml");
    let run = warmstart(["run".as_ref(), "--config".as_ref(), config.as_os_str(), "--out".as_ref(), out.as_os_str()])
        .expect_code(0);
    assert!(
        run.stderr.contains("out/ckpt: the name tells no format; writing tf (the target's format"),
        "{}",
        run.stderr
    );
    let written = warmstart_tf::TfSource::open(&out).unwrap();
    let bytes = std::fs::read(case.join("expected.safetensors")).unwrap();
    for (name, view) in safetensors::SafeTensors::deserialize(&bytes).unwrap().tensors() {
        assert_eq!(&*warmstart_core::CheckpointSource::read(&written, &name).unwrap(), view.data(), "{name}");
    }
}

#[cfg(feature = "hdf5")]
#[test]
fn format_chooses_in_a_hub_folder_and_its_absence_lists_the_choices() {
    let hub = tempfile::tempdir().unwrap();
    let src = warmstart_core::test_support::fixture("numpy", "savez").join("model.npz");
    warmstart(["convert".as_ref(), src.as_os_str(), hub.path().join("model.safetensors").as_os_str()]).expect_code(0);
    let h5 = hub.path().join("tf_model.h5");
    warmstart(["convert".as_ref(), src.as_os_str(), h5.as_os_str()]).expect_code(0);
    let run = warmstart(["inspect".as_ref(), hub.path().as_os_str()]).expect_code(1);
    assert!(
        run.stderr.contains("several formats (safetensors, hdf5)") && run.stderr.contains("--format"),
        "{}",
        run.stderr
    );
    for format in ["safetensors", "hdf5"] {
        let run = warmstart([
            "inspect".as_ref(),
            "--json".as_ref(),
            "--format".as_ref(),
            format.as_ref(),
            hub.path().as_os_str(),
        ])
        .expect_code(0);
        assert!(run.stdout.contains(&format!("\"format\": \"{format}\"")), "{}", run.stdout);
    }
    let out = tempfile::tempdir().unwrap();
    let dst = out.path().join("copy.safetensors");
    warmstart(["convert".as_ref(), "--format".as_ref(), "hdf5".as_ref(), hub.path().as_os_str(), dst.as_os_str()])
        .expect_code(0);
    let run =
        warmstart(["convert".as_ref(), hub.path().as_os_str(), out.path().join("no.npz").as_os_str()]).expect_code(1);
    assert!(run.stderr.contains("several formats"), "{}", run.stderr);
    assert_eq!(files_in(out.path()), ["copy.safetensors"]);
}

#[test]
fn max_shard_size_writes_hugging_faces_shards_and_index() {
    for (case, size) in [("kb5", "5KB"), ("kib3", "3KiB"), ("mb1", "1MB")] {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("sharded");
        let src = shards_area().join("input/model.safetensors");
        let args = ["convert".as_ref(), src.as_os_str(), out.as_os_str(), "--max-shard-size".as_ref(), size.as_ref()];
        warmstart(args).expect_code(0);
        assert_eq!(files_with_bytes(&out, &[]), files_with_bytes(&shards_area().join(case), &["case.json"]), "{case}");
        let run = warmstart(["inspect".as_ref(), out.as_os_str()]).expect_code(0);
        assert!(run.stdout.contains("embed.weight"), "{}", run.stdout);
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = shards_area().join("input/model.safetensors");
    let bad = warmstart([
        "convert".as_ref(),
        src.as_os_str(),
        tmp.path().join("o").as_os_str(),
        "--max-shard-size".as_ref(),
        "5 parsecs".as_ref(),
    ]);
    assert!(bad.expect_code(2).stderr.contains("not a shard size"));
    let h5 = tmp.path().join("o.h5");
    let flags = ["--to", "hdf5", "--max-shard-size", "5KB"];
    let run =
        warmstart(["convert".as_ref(), src.as_os_str(), h5.as_os_str()].into_iter().chain(flags.map(|f| f.as_ref())));
    let run = run.expect_code(1);
    assert!(run.stderr.contains("--max-shard-size is for safetensors"), "{}", run.stderr);
    assert!(files_in(tmp.path()).is_empty());
}

/// A warm-start written sharded: the shards read back as one checkpoint holding TF's values.
#[test]
fn run_writes_sharded_output() {
    let case = crate::warmstart::fixtures().join("list_of_variables_parts");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("warm");
    let config = case.join("config.toml");
    let args = [
        "run".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--max-shard-size".as_ref(),
        "20".as_ref(),
    ];
    warmstart(args).expect_code(0);
    let names = files_in(&out);
    assert!(names.contains(&"model.safetensors.index.json".to_string()) && names.len() > 2, "{names:?}");
    let written = warmstart_formats::open(&out).unwrap();
    let bytes = std::fs::read(case.join("expected.safetensors")).unwrap();
    for (name, view) in safetensors::SafeTensors::deserialize(&bytes).unwrap().tensors() {
        assert_eq!(&*written.read(&name).unwrap(), view.data(), "{name}");
    }
}

/// The configuration's `format` (and `--format` over it) chooses the old checkpoint's format in a
/// folder holding it as safetensors and as HDF5.
#[cfg(feature = "hdf5")]
#[test]
fn config_format_chooses_like_the_flag() {
    let case = crate::warmstart::fixtures().join("accept_baseline");
    let tmp = tempfile::tempdir().unwrap();
    let old = tmp.path().join("old");
    std::fs::create_dir(&old).unwrap();
    for name in ["model.safetensors", "model.h5"] {
        warmstart(["convert".as_ref(), case.join("old").as_os_str(), old.join(name).as_os_str()]).expect_code(0);
    }
    for vocab in ["old_vocab", "new_vocab"] {
        std::fs::copy(case.join(vocab), tmp.path().join(vocab)).unwrap();
    }
    let text = std::fs::read_to_string(case.join("config.toml")).unwrap();
    let new = case.join("new/model.ckpt");
    let text = text.replace("\"new/model.ckpt\"", &format!("{:?}", new.to_string_lossy()));
    let (plain, chosen) = (tmp.path().join("plain.toml"), tmp.path().join("chosen.toml"));
    std::fs::write(&plain, &text).unwrap();
    std::fs::write(&chosen, format!("format = \"hdf5\"\n{text}")).unwrap();
    let plan = |config: &Path, extra: &[&str]| {
        let args = ["plan".as_ref(), "--config".as_ref(), config.as_os_str()];
        warmstart(args.into_iter().chain(extra.iter().map(|a| a.as_ref())))
    };
    let run = plan(&plain, &[]).expect_code(1);
    assert!(run.stderr.contains("several formats (safetensors, hdf5)"), "{}", run.stderr);
    plan(&chosen, &[]).expect_code(0);
    plan(&plain, &["--format", "safetensors"]).expect_code(0);
    let out = tmp.path().join("warm.safetensors");
    let args = ["run".as_ref(), "--config".as_ref(), chosen.as_os_str(), "--out".as_ref(), out.as_os_str()];
    warmstart(args).expect_code(0);
    let written = warmstart_formats::open(&out).unwrap();
    let bytes = std::fs::read(case.join("expected.safetensors")).unwrap();
    for (name, view) in safetensors::SafeTensors::deserialize(&bytes).unwrap().tensors() {
        assert_eq!(&*written.read(&name).unwrap(), view.data(), "{name}");
    }
}

/// The library chooses as the binary does: `max_shard_size` alone means safetensors shards, a name
/// that tells nothing the target's format.
#[test]
fn run_files_chooses_the_format_as_the_binary_does() {
    let case = crate::warmstart::fixtures().join("list_of_variables_parts");
    let settings = warmstart::WarmStartSettings::from_file(&case.join("config.toml")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let sharded = warmstart::OutputOptions { max_shard_size: Some(20), ..Default::default() };
    warmstart::run_files(&settings, &tmp.path().join("warm"), &sharded, &Default::default()).unwrap();
    assert!(files_in(&tmp.path().join("warm")).contains(&"model.safetensors.index.json".to_string()));
    warmstart::run_files(&settings, &tmp.path().join("ckpt-5"), &Default::default(), &Default::default()).unwrap();
    assert!(tmp.path().join("ckpt-5.index").is_file(), "{:?}", files_in(tmp.path()));
}
