//! Conversions that cannot complete fail cleanly: a destination folder that cannot be written is an
//! error naming the path (one that does not exist is made, in every format), and a conversion that fails midway (a source tensor whose
//! CRC is wrong, after others were written) leaves the destination folder as it was: no temporary
//! files, no partial checkpoint, an existing destination file untouched.
#![cfg(all(feature = "safetensors", feature = "tf", feature = "hdf5"))]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use warmstart_core::test_support::fixture;
use warmstart_core::CheckpointSource;
use warmstart_formats::{convert, open, Format, WriteOptions};

/// A safetensors source written by the Python package.
fn safetensors_source() -> Box<dyn CheckpointSource> {
    open(&fixture("safetensors", "shapes").join("model.safetensors")).unwrap()
}

/// The names in `dir`.
/// (In `/proc`, used when running as root, the entries of processes come and go between two listings:
/// they are left out.)
fn listing(dir: &Path) -> BTreeSet<String> {
    let names = std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok());
    let names = names.map(|e| e.file_name().to_string_lossy().into_owned());
    names.filter(|n| !(dir == Path::new("/proc") && n.bytes().all(|b| b.is_ascii_digit()))).collect()
}

/// Destinations in `dir`, one per format, with the name `convert` is given for each.
fn destinations(dir: &Path) -> [(Format, PathBuf); 3] {
    [
        (Format::Safetensors, dir.join("out.safetensors")),
        (Format::Hdf5, dir.join("out.h5")),
        (Format::Tf, dir.join("model.ckpt")),
    ]
}

#[test]
fn a_destination_whose_folder_does_not_exist_gets_it_made() {
    let src = safetensors_source();
    let dir = tempfile::tempdir().unwrap();
    for (i, (format, _)) in destinations(dir.path()).into_iter().enumerate() {
        let missing = dir.path().join(format!("no{i}")).join("such");
        let dst = &destinations(&missing)[i].1;
        let result = convert(src.as_ref(), dst, format, &WriteOptions::default());
        // As TensorFlow's savers make the destination folder, every format does (HDF5 too: the
        // source's BF16 tensors are written as Keras writes them).
        result.unwrap();
        assert!(open(dst).is_ok(), "{format}");
    }
}

/// A folder no one can create files in: a read-only folder for an ordinary user; `/proc` when the
/// tests run as root (root ignores permission bits).
fn unwritable_folder(dir: &Path) -> PathBuf {
    let ro = dir.join("read-only");
    std::fs::create_dir(&ro).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    if std::fs::write(ro.join("probe"), b"").is_ok() {
        std::fs::remove_file(ro.join("probe")).unwrap();
        return PathBuf::from("/proc");
    }
    ro
}

#[test]
fn a_destination_folder_that_cannot_be_written_is_an_error_naming_it() {
    let src = safetensors_source();
    let dir = tempfile::tempdir().unwrap();
    let ro = unwritable_folder(dir.path());
    let before = listing(&ro);
    for (format, dst) in destinations(&ro) {
        let err = convert(src.as_ref(), &dst, format, &WriteOptions::default()).unwrap_err().to_string();
        assert!(err.contains(&ro.display().to_string()), "{format}: {err}");
        assert_eq!(listing(&ro), before, "{format}");
    }
}

/// A copy of the TF checkpoint `tf1_single` whose last tensor (in storage order, the last by name) has
/// a flipped byte, so that a conversion writes the others before its CRC check fails.
fn tf_source_bad_in_the_middle(dir: &Path) -> (PathBuf, String) {
    let case = fixture("tf", "tf1_single");
    for entry in std::fs::read_dir(&case).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    let data = dir.join("model.ckpt-12.data-00000-of-00001");
    let mut bytes = std::fs::read(&data).unwrap();
    *bytes.last_mut().unwrap() ^= 0x40;
    std::fs::write(&data, bytes).unwrap();
    let src = open(&dir.join("model.ckpt-12")).unwrap();
    let names: Vec<&str> = src.tensors().iter().map(|t| t.name.as_str()).collect();
    let bad = names.iter().copied().filter(|n| src.read(n).is_err()).collect::<Vec<_>>();
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_ne!(names.first(), bad.first(), "the damaged tensor must not be the first converted");
    (dir.join("model.ckpt-12"), bad[0].to_string())
}

#[test]
fn a_conversion_failing_midway_leaves_the_destination_folder_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let src_dir = tmp.path().join("src");
    std::fs::create_dir(&src_dir).unwrap();
    let (prefix, bad) = tf_source_bad_in_the_middle(&src_dir);
    let src = open(&prefix).unwrap();

    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    // An unrelated file, and an existing destination of each format, to be left untouched.
    std::fs::write(out.join("notes.txt"), b"keep").unwrap();
    for (_, dst) in destinations(&out) {
        std::fs::write(&dst, b"old").unwrap();
    }
    let before = listing(&out);
    for (format, dst) in destinations(&out) {
        let err = convert(src.as_ref(), &dst, format, &WriteOptions::default()).unwrap_err().to_string();
        assert!(err.contains(&bad) && err.contains("data-00000-of-00001"), "{format}: {err}");
        assert_eq!(listing(&out), before, "{format}: files left behind");
        assert_eq!(std::fs::read(&dst).unwrap(), b"old", "{format}: the existing destination was changed");
    }
    // A TF destination given as a folder (written as folder/model.ckpt with a `checkpoint` file).
    let folder = tmp.path().join("run");
    std::fs::create_dir(&folder).unwrap();
    assert!(convert(src.as_ref(), &folder, Format::Tf, &WriteOptions::default()).is_err());
    assert!(listing(&folder).is_empty(), "{:?}", listing(&folder));
    // ... and into folders that do not exist yet: the TF writer makes them, and removes them again.
    let deep = tmp.path().join("new").join("run");
    for (format, dst) in destinations(&deep) {
        assert!(convert(src.as_ref(), &dst, format, &WriteOptions::default()).is_err(), "{format}");
        assert!(!tmp.path().join("new").exists(), "{format}");
    }
}
