use super::*;
use warmstart_core::test_support::{fixture, read_everything, Rng};
use warmstart_core::DType;

/// The tensors of an expected JSON: name, dtype, shape, bytes.
fn expected(json: &Path) -> Vec<(String, DType, Vec<u64>, Vec<u8>)> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap();
    let hex = |s: &str| (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect();
    v["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["dtype"].as_str().unwrap().parse().unwrap(),
                t["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).collect(),
                hex(t["hex"].as_str().unwrap()),
            )
        })
        .collect()
}

/// Opens `case/file` and checks it reads as numpy read it (`case/<stem>.json`), in order.
fn reads_as_numpy(case: &str, file: &str) -> NumpySource {
    let dir = fixture("numpy", case);
    let src = NumpySource::open(dir.join(file)).unwrap();
    let stem = Path::new(file).file_stem().unwrap().to_str().unwrap();
    let want = expected(&dir.join(format!("{stem}.json")));
    assert_eq!(src.tensors().len(), want.len(), "{case}/{file}");
    for (info, (name, dtype, shape, bytes)) in src.tensors().iter().zip(&want) {
        assert_eq!((&info.name, info.dtype, &info.shape), (name, *dtype, shape), "{case}/{file}");
        assert_eq!(&*src.read(name).unwrap(), &bytes[..], "{case}/{file}: {name}");
    }
    src
}

#[test]
fn savez_is_read_in_place_and_savez_compressed_inflated() {
    let src = reads_as_numpy("savez", "model.npz");
    assert_eq!(src.format(), Format::Numpy);
    assert!(src.data.iter().all(|d| matches!(d, Data::Mapped(_))), "stored members are read from the map");
    assert_eq!(src.tensor("dense/kernel").unwrap().shape, [3, 4]);
    let src = reads_as_numpy("savez", "compressed.npz");
    assert!(src.data.iter().all(|d| matches!(d, Data::Owned(_))));
}

#[test]
fn fortran_order_and_big_endian_arrays_come_out_row_major_little_endian() {
    for file in ["model.npz", "compressed.npz"] {
        reads_as_numpy("layouts", file);
    }
}

#[test]
fn npy_versions_1_2_and_3() {
    for v in 1..=3 {
        let src = reads_as_numpy("npy", &format!("v{v}.npy"));
        assert_eq!(src.tensors()[0].name, format!("v{v}"));
    }
}

#[test]
fn rows_are_served_and_checked() {
    let src = NumpySource::open(fixture("numpy", "savez").join("model.npz")).unwrap();
    let all = src.read("ids").unwrap().into_owned();
    assert_eq!(&*src.read_rows("ids", 1..2).unwrap(), &all[12..]);
    assert!(matches!(src.read_rows("ids", 1..3), Err(Error::RowsOutOfRange { rows: 2, .. })));
    assert!(matches!(src.read("nope"), Err(Error::TensorNotFound { .. })));
    assert!(src.read("wide_empty").unwrap().is_empty());
    assert_eq!(src.read("step").unwrap().len(), 8);
    src.release("ids", 0..2);
    src.check_unchanged().unwrap();
}

#[test]
fn refused_dtypes_name_their_kind() {
    let dir = fixture("numpy", "refused");
    let kinds: HashMap<String, String> =
        serde_json::from_slice(&std::fs::read(dir.join("refused.json")).unwrap()).unwrap();
    assert_eq!(kinds.len(), 5);
    for (file, kind) in kinds {
        let err = NumpySource::open(dir.join(&file)).unwrap_err();
        match err.numpy() {
            Some(NumpyError::UnsupportedDtype { kind: got, .. }) => assert!(got.starts_with(&kind), "{file}: {got}"),
            _ => panic!("{file}: {err}"),
        }
        assert!(err.to_string().contains(&file), "{err}");
    }
}

/// Writes `bytes` to a file in `dir` and opens it.
fn open_bytes(dir: &Path, name: &str, bytes: &[u8]) -> Result<NumpySource> {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    NumpySource::open(&path)
}

#[test]
fn archives_with_foreign_members_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let zip_of = |members: &[(&str, &[u8], CompressionMethod)]| {
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, data, method) in members {
            zip.start_file(*name, zip::write::SimpleFileOptions::default().compression_method(*method)).unwrap();
            std::io::Write::write_all(&mut zip, data).unwrap();
        }
        zip.finish().unwrap().into_inner()
    };
    let npy = std::fs::read(fixture("numpy", "npy").join("v1.npy")).unwrap();
    let err = |bytes: Vec<u8>| open_bytes(dir.path(), "a.npz", &bytes).unwrap_err();
    let e = err(zip_of(&[("a.npy", &npy, CompressionMethod::Stored), ("notes.txt", b"hi", CompressionMethod::Stored)]));
    assert!(matches!(e.numpy(), Some(NumpyError::NotNpyMember { member, .. }) if member == "notes.txt"), "{e}");
    let e = err(zip_of(&[("a.npy", b"not an array", CompressionMethod::Stored)]));
    assert!(matches!(e.numpy(), Some(NumpyError::BadMagic { member, .. }) if member == "a.npy"), "{e}");
    let e = err(zip_of(&[("a.npy", &npy[..npy.len() - 1], CompressionMethod::Deflated)]));
    assert!(matches!(e.numpy(), Some(NumpyError::InflatedSize { .. } | NumpyError::DataSizeMismatch { .. })), "{e}");
    let e = err(zip_of(&[("a.npy", &npy[..npy.len() - 1], CompressionMethod::Stored)]));
    assert!(matches!(e.numpy(), Some(NumpyError::DataSizeMismatch { expected: Some(40), actual: 39, .. })), "{e}");
    let e = err(b"PK\x03\x04 not really a zip".to_vec());
    assert!(matches!(e.numpy(), Some(NumpyError::BadArchive { .. })), "{e}");
    // Zip allows a name twice: the last one is read, as np.load (Python's zipfile) reads it.
    let mut twice = zip_of(&[("a.npy", &npy, CompressionMethod::Stored), ("b.npy", &npy, CompressionMethod::Stored)]);
    for at in 0..twice.len() - 5 {
        if &twice[at..at + 5] == b"b.npy" {
            twice[at] = b'a';
        }
    }
    let src = open_bytes(dir.path(), "twice.npz", &twice).unwrap();
    assert_eq!(src.tensors().len(), 1);
    assert!(matches!(&src.data[0], Data::Mapped(r) if r.start > npy.len() + 30), "{:?}", src.data);
}

#[test]
fn a_deflated_member_claiming_more_than_deflate_gives_is_refused_before_inflating() {
    let dir = tempfile::tempdir().unwrap();
    // A header claiming 2^40 float32s, deflated: the archive records the header's size, the data
    // is missing. Refused from the sizes alone.
    let head = header::write("<f4", &[1 << 40]);
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    zip.start_file("big.npy", opts).unwrap();
    std::io::Write::write_all(&mut zip, &head).unwrap();
    let bytes = zip.finish().unwrap().into_inner();
    let e = open_bytes(dir.path(), "big.npz", &bytes).unwrap_err();
    assert!(matches!(e.numpy(), Some(NumpyError::InflatedSize { why: "the archive records another size", .. })), "{e}");
}

/// Truncations at every length and flipped bytes of every fixture: an error or a source that reads
/// through, never a panic.
#[test]
fn corrupted_files_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(16);
    for (case, file) in
        [("savez", "model.npz"), ("savez", "compressed.npz"), ("layouts", "model.npz"), ("npy", "v2.npy")]
    {
        let good = std::fs::read(fixture("numpy", case).join(file)).unwrap();
        for len in 0..good.len() {
            if let Ok(src) = open_bytes(dir.path(), file, &good[..len]) {
                read_everything(&src).unwrap();
            }
        }
        for _ in 0..200 {
            let mut bad = good.clone();
            for _ in 0..=rng.below(3) {
                let at = rng.below(bad.len());
                bad[at] ^= 1 << rng.below(8);
            }
            if let Ok(src) = open_bytes(dir.path(), file, &bad) {
                let _ = read_everything(&src);
            }
        }
    }
}
