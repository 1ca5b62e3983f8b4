//! Writing: every fixture copied through `Hdf5Sink` reads back with the same names, dtypes, shapes and
//! bytes; a Keras template's groups and attributes are written back; misuse and failures leave no file.

mod common;

use std::path::{Path, PathBuf};

use hdf5::types::{VarLenAscii, VarLenUnicode};
use warmstart_core::{CheckpointSink, CheckpointSource, DType, SinkTensor, TensorInfo};
use warmstart_hdf5::{Hdf5Sink, Hdf5Source};

/// Copies every tensor of `src` into a new file at `out`, numeric data in `chunk`-byte pieces that cut
/// rows anywhere.
fn copy(src: &Hdf5Source, out: &Path, template: Option<&Path>, chunk: usize) {
    let tensors: Vec<SinkTensor> = src.tensors().iter().cloned().map(SinkTensor::whole).collect();
    let mut sink: Box<dyn CheckpointSink> = Box::new(Hdf5Sink::create(out, &tensors, template).unwrap());
    for t in &tensors {
        if t.info.dtype == DType::String {
            sink.write_strings(t, &src.read_strings(&t.info.name).unwrap()).unwrap();
            continue;
        }
        sink.begin_tensor(t).unwrap();
        let bytes = src.read(&t.info.name).unwrap();
        for piece in bytes.chunks(chunk) {
            sink.write_data(piece).unwrap();
        }
        sink.end_tensor().unwrap();
    }
    sink.finish().unwrap();
}

fn assert_same_tensors(a: &Hdf5Source, b: &Hdf5Source) {
    assert_eq!(a.tensors(), b.tensors());
    for t in a.tensors() {
        assert_eq!(a.dataset_path(&t.name), b.dataset_path(&t.name), "{}", t.name);
        if t.dtype == DType::String {
            assert_eq!(a.read_strings(&t.name).unwrap(), b.read_strings(&t.name).unwrap(), "{}", t.name);
        } else {
            assert_eq!(a.read(&t.name).unwrap(), b.read(&t.name).unwrap(), "{}", t.name);
        }
    }
}

/// Every group's path with its attributes' names, types and shapes, sorted.
fn layout_of(path: &Path) -> Vec<String> {
    fn walk(g: &hdf5::Group, prefix: &str, out: &mut Vec<String>) {
        let mut attrs: Vec<String> = g
            .attr_names()
            .unwrap()
            .into_iter()
            .map(|n| {
                let a = g.attr(&n).unwrap();
                format!(
                    "{n}: {} {:?}",
                    a.dtype().unwrap().to_descriptor().map(|d| d.to_string()).unwrap_or_default(),
                    a.shape()
                )
            })
            .collect();
        attrs.sort();
        out.push(format!("{prefix}/ {attrs:?}"));
        for child in g.groups().unwrap() {
            let name = child.name();
            walk(&child, &name, out);
        }
    }
    let f = hdf5::File::open(path).unwrap();
    let mut out = Vec::new();
    walk(&f, "", &mut out);
    out.sort();
    out
}

#[test]
fn copies_keep_every_tensor_and_byte() {
    let dir = tempfile::tempdir().unwrap();
    for case in common::CASES {
        let (file, _, _) = common::expected(case);
        let src = Hdf5Source::open(&file).unwrap();
        for (chunk, template) in [(7, true), (1 << 20, true), (3, false)] {
            let out = dir.path().join(format!("{case}-{chunk}-{template}.h5"));
            copy(&src, &out, template.then_some(src.path()), chunk);
            let back = Hdf5Source::open(&out).unwrap();
            if template || src.keras_layout().is_none() {
                assert_same_tensors(&src, &back);
                assert_eq!(back.keras_layout(), src.keras_layout(), "{case}");
            } else {
                // Without the template, a legacy file's weights are plain datasets at their names.
                let names: Vec<&str> = back.tensors().iter().map(|t| t.name.as_str()).collect();
                let mut want: Vec<&str> = src.tensors().iter().map(|t| t.name.as_str()).collect();
                let mut got = names.clone();
                want.sort();
                got.sort();
                assert_eq!(got, want, "{case}");
                for t in src.tensors() {
                    assert_eq!(src.read(&t.name).unwrap(), back.read(&t.name).unwrap(), "{case} {}", t.name);
                }
            }
        }
    }
    let left: Vec<PathBuf> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(left.iter().all(|p| !p.to_string_lossy().ends_with(".tmp")), "{left:?}");
}

#[test]
fn keras_templates_write_their_layout_back() {
    let dir = tempfile::tempdir().unwrap();
    for case in ["keras3", "keras_legacy", "legacy_tf2_style"] {
        let (file, _, _) = common::expected(case);
        let src = Hdf5Source::open(&file).unwrap();
        let out = dir.path().join(format!("{case}.h5"));
        copy(&src, &out, Some(src.path()), 64);
        assert_eq!(layout_of(&out), layout_of(&file), "{case}");
    }
    // The values too (as Keras wrote them: UTF-8 in Keras 3 files, ASCII in legacy ones).
    let f = hdf5::File::open(dir.path().join("keras3.h5")).unwrap();
    let name: VarLenUnicode = f.group("layers/dense/vars").unwrap().attr("name").unwrap().read_scalar().unwrap();
    assert_eq!(name.as_str(), "d1");
    let f = hdf5::File::open(dir.path().join("keras_legacy.h5")).unwrap();
    let layers: Vec<VarLenAscii> = f.group("model_weights").unwrap().attr("layer_names").unwrap().read_raw().unwrap();
    assert_eq!(layers.iter().map(|s| s.as_str()).collect::<Vec<_>>(), ["x", "d1", "bn", "d2"]);
    let config: VarLenAscii = f.attr("model_config").unwrap().read_scalar().unwrap();
    assert!(config.as_str().contains("\"tiny\""));
}

#[test]
fn plain_template_is_ignored_and_names_become_paths() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _, _) = common::expected("plain");
    let src = Hdf5Source::open(&file).unwrap();
    let out = dir.path().join("x.h5");
    copy(&src, &out, Some(src.path()), 5);
    let f = hdf5::File::open(&out).unwrap();
    assert!(f.group("enc/empty").is_err(), "no layout copied from a plain file");
    assert_eq!(f.dataset("dec/deep/deeper/v").unwrap().shape(), [2, 3, 4]);
}

fn t(name: &str, dtype: DType, shape: &[u64]) -> SinkTensor {
    SinkTensor::whole(TensorInfo::new(name, dtype, shape.to_vec()))
}

fn files_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
}

#[test]
fn misuse_is_an_error_and_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.h5");
    let w = t("a/w", DType::F32, &[2, 3]);
    let s = t("s", DType::F64, &[]);

    // Too many bytes, too few, unknown tensor, out of order, unwritten at finish, dropped.
    let mut sink = Hdf5Sink::create(&out, &[w.clone(), s.clone()], None).unwrap();
    assert!(sink.write_data(&[0; 4]).is_err(), "data before begin");
    sink.begin_tensor(&w).unwrap();
    assert!(sink.begin_tensor(&s).is_err(), "begin inside a tensor");
    assert!(sink.write_data(&[0; 25]).is_err(), "more than 24 bytes");
    sink.write_data(&[0; 20]).unwrap();
    assert!(sink.end_tensor().is_err(), "4 bytes short");
    assert!(sink.begin_tensor(&t("zzz", DType::F32, &[1])).is_err());
    assert!(Box::new(sink).finish().is_err(), "s never written");
    assert!(files_in(dir.path()).is_empty(), "{:?}", files_in(dir.path()));

    let sink = Hdf5Sink::create(&out, std::slice::from_ref(&w), None).unwrap();
    drop(sink);
    assert!(files_in(dir.path()).is_empty());

    // Unsupported dtypes, bad names, duplicate paths, slices: refused at creation.
    assert!(Hdf5Sink::create(&out, &[t("b", DType::F8E8M0, &[2])], None).is_err());
    assert!(Hdf5Sink::create(&out, &[t("a//b", DType::F32, &[2])], None).is_err());
    assert!(Hdf5Sink::create(&out, &[t("", DType::F32, &[2])], None).is_err());
    assert!(Hdf5Sink::create(&out, &[t("a", DType::F32, &[2]), t("/a", DType::F32, &[2])], None).is_err());
    let mut sliced = t("p", DType::F32, &[4]);
    sliced.slice = Some(warmstart_core::Slice { start: vec![2], len: vec![2] });
    assert!(Hdf5Sink::create(&out, &[sliced], None).is_err());
    assert!(files_in(dir.path()).is_empty(), "{:?}", files_in(dir.path()));

    // A good file: scalars, zero-row tensors, byte-at-a-time rows, strings.
    let e = t("e", DType::U8, &[0, 5]);
    let strs = t("names", DType::String, &[2]);
    let mut sink = Hdf5Sink::create(&out, &[w.clone(), s.clone(), e.clone(), strs.clone()], None).unwrap();
    sink.begin_tensor(&s).unwrap();
    sink.write_data(&1.5f64.to_le_bytes()).unwrap();
    sink.end_tensor().unwrap();
    sink.begin_tensor(&w).unwrap();
    let data: Vec<u8> = (0..24).collect();
    for b in &data {
        sink.write_data(std::slice::from_ref(b)).unwrap();
    }
    sink.end_tensor().unwrap();
    sink.begin_tensor(&e).unwrap();
    sink.end_tensor().unwrap();
    assert!(sink.write_strings(&strs, &[b"x".to_vec()]).is_err(), "one string for two");
    sink.write_strings(&strs, &[b"alpha".to_vec(), "β".as_bytes().to_vec()]).unwrap();
    Box::new(sink).finish().unwrap();
    assert_eq!(files_in(dir.path()), ["o.h5"]);
    let back = Hdf5Source::open(&out).unwrap();
    assert_eq!(back.read("a/w").unwrap().as_ref(), data.as_slice());
    assert_eq!(back.read("s").unwrap().as_ref(), 1.5f64.to_le_bytes());
    assert_eq!(back.tensor("e").unwrap().shape, [0, 5]);
    assert_eq!(back.read_strings("names").unwrap(), [b"alpha".to_vec(), "β".as_bytes().to_vec()]);
}

/// A tensor whose dataset would be a group of another's (TF's `k` and its slot `k/Adam`) is refused
/// before the file is made, naming both, in either order and at any depth.
#[test]
fn a_dataset_that_would_be_a_group_is_refused_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.h5");
    let cases = [
        (["k", "k/Adam"], ("k", "k/Adam")),
        (["k/Adam", "k"], ("k", "k/Adam")),
        (["/a", "a/b/c"], ("/a", "a/b/c")),
        (["a/b", "a/b/c/d"], ("a/b", "a/b/c/d")),
    ];
    for (names, (tensor, nested)) in cases {
        let tensors: Vec<SinkTensor> = names.iter().map(|n| t(n, DType::F32, &[2])).collect();
        let err = Hdf5Sink::create(&out, &tensors, None).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err.hdf5(), Some(warmstart_hdf5::Hdf5Error::DatasetIsGroup { tensor: a, nested: b, .. })
                if a == tensor && b == nested),
            "{text}"
        );
        assert!(text.contains("cannot hold a dataset") && text.contains("map one of the names"), "{text}");
        assert!(files_in(dir.path()).is_empty(), "{:?}", files_in(dir.path()));
    }
    // Siblings and names sharing a prefix that is not a whole component are fine.
    let tensors = [t("k/Adam", DType::F32, &[1]), t("k/Adam_1", DType::F32, &[1]), t("ka", DType::F32, &[1])];
    drop(Hdf5Sink::create(&out, &tensors, None).unwrap());
}

/// Writes copies of the fixtures into `$WARMSTART_HDF5_OUT` for `tests/fixtures/verify_hdf5.py`:
/// each Keras file through itself as template, the same without template (which Keras must refuse),
/// and the plain h5py file.
#[test]
#[ignore = "writes files for the Python check; run with WARMSTART_HDF5_OUT=DIR"]
fn write_outputs_for_python_check() {
    let out = PathBuf::from(std::env::var("WARMSTART_HDF5_OUT").expect("set WARMSTART_HDF5_OUT"));
    std::fs::create_dir_all(&out).unwrap();
    for case in common::CASES {
        let (file, _, _) = common::expected(case);
        let src = Hdf5Source::open(&file).unwrap();
        let ext = if case == "keras3" { "weights.h5" } else { "h5" };
        copy(&src, &out.join(format!("{case}.{ext}")), Some(src.path()), 13);
        if src.keras_layout().is_some() {
            copy(&src, &out.join(format!("{case}.no_template.{ext}")), None, 13);
        }
    }
}
