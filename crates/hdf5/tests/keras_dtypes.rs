//! bfloat16 and float8 as Keras stores them: opaque datasets of their size marked with a `dtype`
//! attribute. Files Keras and h5py wrote read as h5py read them; what this crate writes reads back and
//! is marked as Keras marks it; opaque datasets without the mark are refused, saying what is missing.

use warmstart_core::{CheckpointSink, CheckpointSource, DType, SinkTensor, TensorInfo};
use warmstart_hdf5::{Hdf5Error, Hdf5Sink, Hdf5Source};

fn fixture(case: &str) -> std::path::PathBuf {
    warmstart_core::test_support::fixture("keras", case)
}

fn from_hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// (name, dtype, shape, bytes) of every tensor `expected.json` of `case` lists.
fn expected(case: &str) -> Vec<(String, String, Vec<u64>, Vec<u8>)> {
    let text = std::fs::read_to_string(fixture(case).join("expected.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let shape = t["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).collect();
            let name = t["name"].as_str().unwrap().to_string();
            (name, t["dtype"].as_str().unwrap().to_string(), shape, from_hex(t["hex"].as_str().unwrap()))
        })
        .collect()
}

#[test]
fn keras_bf16_weights_read_as_keras_wrote_them() {
    let src = Hdf5Source::open(&fixture("bf16").join("model.weights.h5")).unwrap();
    let want = expected("bf16");
    assert!(want.iter().filter(|t| t.1 == "BF16").count() >= 3);
    for (name, dtype, shape, bytes) in want {
        let info = src.tensor(&name).unwrap();
        assert_eq!((info.dtype.name(), &info.shape), (dtype.as_str(), &shape), "{name}");
        assert_eq!(src.read(&name).unwrap().as_ref(), bytes.as_slice(), "{name}");
        let rows = info.rows();
        if rows > 1 {
            let row = info.row_bytes().unwrap() as usize;
            assert_eq!(src.read_rows(&name, 1..rows).unwrap().as_ref(), &bytes[row..], "{name}");
        }
    }
}

#[test]
fn marked_float8_and_bf16_read_unmarked_opaque_is_refused() {
    let dir = fixture("float8");
    let want = expected("float8");
    // The marked ones alone: the unmarked dataset beside them makes opening the file fail.
    let err = Hdf5Source::open(&dir.join("marked.h5")).unwrap_err();
    assert!(matches!(&err, Hdf5Error::UnsupportedType { dataset, .. } if dataset == "unmarked/v2"), "{err}");
    assert!(err.to_string().contains("opaque (2 bytes) without a \"dtype\" attribute"), "{err}");
    // Keras 3.15's own float8_e4m3fn: 1-byte opaque, unmarked (Keras cannot read it back either).
    let err = Hdf5Source::open(&dir.join("keras_e4m3fn.weights.h5")).unwrap_err();
    assert!(matches!(&err, Hdf5Error::UnsupportedType { dataset, .. } if dataset == "layers/f8/vars/0"), "{err}");
    assert!(err.to_string().contains("opaque (1 bytes)"), "{err}");

    // Written again without the unmarked one, through this crate, from h5py's values: read back the same.
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("f8.h5");
    let tensors: Vec<SinkTensor> = want
        .iter()
        .map(|(n, d, s, _)| SinkTensor::whole(TensorInfo::new(n.as_str(), d.parse::<DType>().unwrap(), s.clone())))
        .collect();
    let mut sink: Box<dyn CheckpointSink> = Box::new(Hdf5Sink::create(&out, &tensors, None).unwrap());
    for (tensor, (_, _, _, bytes)) in tensors.iter().zip(&want) {
        sink.begin_tensor(tensor).unwrap();
        sink.write_data(bytes).unwrap();
        sink.end_tensor().unwrap();
    }
    sink.finish().unwrap();
    let back = Hdf5Source::open(&out).unwrap();
    for (name, dtype, shape, bytes) in &want {
        let info = back.tensor(name).unwrap();
        assert_eq!((info.dtype.name(), &info.shape), (dtype.as_str(), shape), "{name}");
        assert_eq!(back.read(name).unwrap().as_ref(), bytes.as_slice(), "{name}");
    }
    // Marked as Keras marks bfloat16: a variable-length UTF-8 string attribute.
    let file = hdf5::File::open(&out).unwrap();
    let mark: hdf5::types::VarLenUnicode =
        file.dataset("marked/bfloat16").unwrap().attr("dtype").unwrap().read_scalar().unwrap();
    assert_eq!(mark.as_str(), "bfloat16");
    let mark: hdf5::types::VarLenUnicode =
        file.dataset("marked/float8_e5m2").unwrap().attr("dtype").unwrap().read_scalar().unwrap();
    assert_eq!(mark.as_str(), "float8_e5m2");
}
