use super::*;
use crate::NumpySource;
use std::io::Read;
use warmstart_core::test_support::fixture;
use warmstart_core::{CheckpointSource, DType, Slice, TensorInfo};

fn t(name: &str, dtype: DType, shape: &[u64]) -> SinkTensor {
    SinkTensor::whole(TensorInfo::new(name, dtype, shape.to_vec()))
}

/// Writes every tensor of `src` to `dst` through a `NumpySink`.
fn copy_all(src: &dyn CheckpointSource, dst: &Path) {
    copy_all_compressed(src, dst, false);
}

fn copy_all_compressed(src: &dyn CheckpointSource, dst: &Path, compress: bool) {
    let tensors: Vec<_> = src.tensors().iter().cloned().map(SinkTensor::whole).collect();
    let mut sink: Box<dyn CheckpointSink> = Box::new(NumpySink::create(dst, &tensors).unwrap().compressed(compress));
    for tensor in &tensors {
        sink.begin_tensor(tensor).unwrap();
        let bytes = src.read(&tensor.info.name).unwrap();
        // In two pieces, as a streaming copy gives them.
        let half = bytes.len() / 2;
        sink.write_data(&bytes[..half]).unwrap();
        sink.write_data(&bytes[half..]).unwrap();
        sink.end_tensor().unwrap();
    }
    sink.finish().unwrap();
}

/// Every member of a zip, in order: name and bytes.
fn members(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut zip = zip::ZipArchive::new(File::open(path).unwrap()).unwrap();
    (0..zip.len())
        .map(|i| {
            let mut file = zip.by_index(i).unwrap();
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes).unwrap();
            (file.name().unwrap().into_owned(), bytes)
        })
        .collect()
}

/// np.savez's members are what np.save writes: ours must be the same bytes.
#[test]
fn every_member_is_what_np_save_writes() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = fixture("numpy", "savez").join("model.npz");
    let src = NumpySource::open(&fixture).unwrap();
    let out = dir.path().join("out.npz");
    copy_all(&src, &out);
    let (ours, numpy) = (members(&out), members(&fixture));
    assert_eq!(ours.len(), 15);
    assert_eq!(ours, numpy);
    // Stored, as np.savez stores them, so the reader maps them in place.
    let back = NumpySource::open(&out).unwrap();
    assert_eq!(back.tensors(), src.tensors());
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["out.npz"]);
}

/// Compressed as np.savez_compressed compresses: deflated members inflating to np.save's bytes.
#[test]
fn compressed_members_inflate_to_what_np_save_writes() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = fixture("numpy", "savez").join("model.npz");
    let src = NumpySource::open(&fixture).unwrap();
    let out = dir.path().join("out.npz");
    copy_all_compressed(&src, &out, true);
    assert_eq!(members(&out), members(&fixture));
    let mut zip = zip::ZipArchive::new(File::open(&out).unwrap()).unwrap();
    for i in 0..zip.len() {
        assert_eq!(zip.by_index_raw(i).unwrap().compression(), CompressionMethod::Deflated);
    }
    assert!(std::fs::metadata(&out).unwrap().len() < std::fs::metadata(&fixture).unwrap().len());
    let back = NumpySource::open(&out).unwrap();
    for info in src.tensors() {
        assert_eq!(back.read(&info.name).unwrap(), src.read(&info.name).unwrap(), "{}", info.name);
    }
}

/// Arrays numpy stored Fortran-ordered or big-endian are written C-ordered little-endian, as np.save
/// writes what np.load gave: checked by `gen_numpy.py verify`; here they read back the same.
#[test]
fn converted_layouts_read_back_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let src = NumpySource::open(fixture("numpy", "layouts").join("compressed.npz")).unwrap();
    let out = dir.path().join("out.npz");
    copy_all(&src, &out);
    let back = NumpySource::open(&out).unwrap();
    for info in src.tensors() {
        assert_eq!(back.read(&info.name).unwrap(), src.read(&info.name).unwrap(), "{}", info.name);
    }
}

#[test]
fn a_single_npy_is_what_np_save_writes() {
    let dir = tempfile::tempdir().unwrap();
    let src = NumpySource::open(fixture("numpy", "savez").join("model.npz")).unwrap();
    let cube = src.tensor("cube").unwrap().clone();
    let out = dir.path().join("cube.npy");
    let tensors = [SinkTensor::whole(cube)];
    let mut sink = Box::new(NumpySink::create(&out, &tensors).unwrap().sync_on_finish(true));
    sink.begin_tensor(&tensors[0]).unwrap();
    sink.write_data(&src.read("cube").unwrap()).unwrap();
    sink.end_tensor().unwrap();
    sink.finish().unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(fixture("numpy", "npy").join("saved.npy")).unwrap());

    let two = [t("a", DType::F32, &[1]), t("b", DType::F32, &[1])];
    let err = NumpySink::create(dir.path().join("two.npy"), &two).err().unwrap();
    assert!(matches!(err.numpy(), Some(NumpyError::SinkNotOneTensor { count: 2, .. })), "{err}");
}

#[test]
fn types_numpy_lacks_and_partial_slices_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.npz");
    for dtype in [DType::BF16, DType::F8E4M3, DType::C64, DType::String] {
        let err = NumpySink::create(&out, &[t("x", dtype, &[2])]).err().unwrap();
        assert!(matches!(&err, Error::Unsupported { name, .. } if name == "x"), "{err}");
    }
    let mut part = t("p", DType::F32, &[4]);
    part.slice = Some(Slice { start: vec![0], len: vec![2] });
    assert!(matches!(NumpySink::create(&out, &[part]), Err(Error::Unsupported { .. })));
    let dup = [t("a", DType::F32, &[1]), t("a", DType::F32, &[1])];
    let err = NumpySink::create(&out, &dup).err().unwrap();
    assert!(matches!(err.numpy(), Some(NumpyError::SinkDuplicateTensor { .. })), "{err}");
    let mut sink = NumpySink::create(&out, &[t("s", DType::F32, &[1])]).unwrap();
    assert!(matches!(sink.write_strings(&t("s", DType::String, &[1]), &[]), Err(Error::Unsupported { .. })));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "only the staged file");
}

#[test]
fn misuse_is_an_error_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.npz");
    let tensors = [t("a", DType::U8, &[2]), t("b", DType::U8, &[1])];
    let kind = |r: Result<()>| r.unwrap_err().numpy().map(|e| format!("{e:?}")).unwrap_or_default();
    let mut sink = NumpySink::create(&out, &tensors).unwrap();
    assert!(kind(sink.write_data(&[1])).starts_with("SinkNoTensorOpen"));
    assert!(kind(sink.end_tensor()).starts_with("SinkNoTensorOpen"));
    assert!(kind(sink.begin_tensor(&t("a", DType::U8, &[3]))).starts_with("SinkUndeclaredTensor"));
    sink.begin_tensor(&tensors[0]).unwrap();
    assert!(kind(sink.begin_tensor(&tensors[1])).starts_with("SinkTensorOpen"));
    assert!(matches!(sink.write_data(&[1, 2, 3]), Err(Error::SizeMismatch { given: 3, expected: 2, .. })));
    sink.write_data(&[1]).unwrap();
    assert!(matches!(sink.end_tensor(), Err(Error::SizeMismatch { given: 1, expected: 2, .. })));
    sink.begin_tensor(&tensors[0]).unwrap_err();
    let err = Box::new(sink).finish().unwrap_err();
    assert!(format!("{err:?}").contains("SinkTensorMissing"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    let mut sink = NumpySink::create(&out, &tensors).unwrap();
    sink.begin_tensor(&tensors[1]).unwrap();
    sink.write_data(&[1]).unwrap();
    sink.end_tensor().unwrap();
    assert!(kind(sink.begin_tensor(&tensors[1])).starts_with("SinkTensorRepeated"));
    drop(sink);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "a dropped sink leaves nothing");
}

/// `gen_numpy.py verify` loaded what `write_for_numpy_verify` writes with numpy; its committed result
/// says every member, stored or deflated, is np.save's bytes.
#[test]
fn numpy_loaded_the_output() {
    let text = std::fs::read_to_string(fixture("numpy", "verify.txt")).unwrap();
    assert!(text.lines().all(|l| l.starts_with("ok ")), "{text}");
    for file in ["savez_model.npz", "savez_compressed_ours.npz", "layouts_model.npz", "fortran_big.npy"] {
        let members = text.lines().filter(|l| l.contains(&format!(" {file}:"))).count();
        assert!(members >= 1, "{file}: {text}");
    }
    assert_eq!(text.lines().filter(|l| l.contains(" savez_compressed_ours.npz:")).count(), 15);
}

/// Writes the fixtures' arrays into `$WARMSTART_NUMPY_OUT` for `gen_numpy.py verify`, which checks with
/// numpy that every member is what np.save writes.
#[test]
#[ignore = "writes files for tests/fixtures/gen_numpy.py verify; needs WARMSTART_NUMPY_OUT"]
fn write_for_numpy_verify() {
    let out = PathBuf::from(std::env::var_os("WARMSTART_NUMPY_OUT").expect("WARMSTART_NUMPY_OUT"));
    std::fs::create_dir_all(&out).unwrap();
    for (case, file) in [("savez", "model.npz"), ("savez", "compressed.npz"), ("layouts", "model.npz")] {
        let src = NumpySource::open(fixture("numpy", case).join(file)).unwrap();
        copy_all(&src, &out.join(format!("{case}_{file}")));
    }
    let src = NumpySource::open(fixture("numpy", "savez").join("model.npz")).unwrap();
    copy_all_compressed(&src, &out.join("savez_compressed_ours.npz"), true);
    let src = NumpySource::open(fixture("numpy", "layouts").join("model.npz")).unwrap();
    let one = [SinkTensor::whole(src.tensor("fortran_big").unwrap().clone())];
    let mut sink = Box::new(NumpySink::create(out.join("fortran_big.npy"), &one).unwrap());
    sink.begin_tensor(&one[0]).unwrap();
    sink.write_data(&src.read("fortran_big").unwrap()).unwrap();
    sink.end_tensor().unwrap();
    sink.finish().unwrap();
}
