//! One test per way a PyTorch checkpoint is refused, each from a hand-made archive (the `zip` crate
//! writes it, members stored as `torch.save` stores them) or index, checking the variant and that
//! the message names the file.

use std::io::Write;
use std::path::{Path, PathBuf};

use warmstart_core::{CheckpointSource, Error, PickleProblem, TorchError};
use warmstart_torch::TorchSource;
use zip::write::SimpleFileOptions;

/// One tensor of a hand-made pickle: name, storage class, key, storage length, offset, shape, strides.
struct T<'a>(&'a str, &'a str, &'a str, u8, u8, &'a [u8], &'a [u8]);

/// `{name: _rebuild_tensor_v2(...)}` for each tensor, as torch pickles it (protocol 2).
fn pickle(tensors: &[T<'_>]) -> Vec<u8> {
    let s = |p: &mut Vec<u8>, text: &str| {
        p.push(b'X');
        p.extend_from_slice(&(text.len() as u32).to_le_bytes());
        p.extend_from_slice(text.as_bytes());
    };
    let mut p = b"\x80\x02}(".to_vec();
    for T(name, class, key, numel, offset, shape, strides) in tensors {
        s(&mut p, name);
        p.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n((");
        s(&mut p, "storage");
        p.extend_from_slice(format!("ctorch\n{class}\n").as_bytes());
        s(&mut p, key);
        s(&mut p, "cpu");
        p.extend_from_slice(&[b'K', *numel, b't', b'Q', b'K', *offset, b'(']);
        shape.iter().for_each(|&d| p.extend_from_slice(&[b'K', d]));
        p.extend_from_slice(b"t(");
        strides.iter().for_each(|&d| p.extend_from_slice(&[b'K', d]));
        p.extend_from_slice(b"t\x89}tR");
    }
    p.extend_from_slice(b"u.");
    p
}

/// A zip of `members`, stored.
fn archive(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in members {
        zip.start_file(*name, stored).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The torch error of opening `path`, checking that its message names the file.
fn refusal(path: &Path) -> TorchError {
    match TorchSource::open(path) {
        Ok(_) => panic!("{} opened", path.display()),
        Err(Error::Torch(e)) => {
            let name = path.file_name().unwrap().to_string_lossy();
            assert!(e.to_string().contains(&*name), "{e}");
            *e
        }
        Err(other) => panic!("not a torch error: {other}"),
    }
}

const F32_2X3: T<'static> = T("w", "FloatStorage", "0", 6, 0, &[2, 3], &[3, 1]);

#[test]
fn a_hand_made_archive_reads() {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..24).collect();
    let p = pickle(&[F32_2X3, T("v", "FloatStorage", "0", 6, 1, &[2], &[2])]);
    let path = write(dir.path(), "m.pt", &archive(&[("m/data.pkl", &p), ("m/data/0", &data), ("m/version", b"3\n")]));
    let src = TorchSource::open(&path).unwrap();
    assert_eq!(&*src.read("w").unwrap(), &data[..]);
    assert_eq!(&*src.read("v").unwrap(), &[4, 5, 6, 7, 12, 13, 14, 15]);
    // Folders with the one archive open too; other files beside it are left alone.
    write(dir.path(), "notes.txt", b"hello");
    assert_eq!(TorchSource::open(dir.path()).unwrap().tensors().len(), 2);
}

#[test]
fn big_endian_storages_are_swapped() {
    let dir = tempfile::tempdir().unwrap();
    let p = pickle(&[T("s", "ShortStorage", "0", 2, 0, &[2], &[1])]);
    let members: [(&str, &[u8]); 3] = [("a/data.pkl", &p), ("a/byteorder", b"big"), ("a/data/0", &[0, 1, 0, 2])];
    let src = TorchSource::open(write(dir.path(), "m.pt", &archive(&members))).unwrap();
    assert_eq!(&*src.read("s").unwrap(), &[1, 0, 2, 0]);
}

#[test]
fn archive_structure_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let p = pickle(&[F32_2X3]);
    let data = [0u8; 24];
    let path = write(dir.path(), "none.pt", &archive(&[("a/version", b"3")]));
    assert!(matches!(refusal(&path), TorchError::NoDataPkl { .. }));
    let path = write(dir.path(), "two.pt", &archive(&[("a/data.pkl", &p), ("b/data.pkl", &p)]));
    assert!(matches!(refusal(&path), TorchError::SeveralRecords { prefixes, .. } if prefixes == ["a", "b"]));
    let path = write(dir.path(), "order.pt", &archive(&[("a/data.pkl", &p), ("a/byteorder", b"middle")]));
    assert!(matches!(refusal(&path), TorchError::BadByteOrder { value, .. } if value == "middle"));
    let path = write(dir.path(), "nozip.pt", b"PK\x03\x04 but nothing else");
    assert!(matches!(refusal(&path), TorchError::BadZip { .. }));
    let mut legacy = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.".to_vec();
    legacy.extend_from_slice(&data);
    let path = write(dir.path(), "legacy.pt", &legacy);
    assert!(matches!(refusal(&path), TorchError::LegacyFormat { .. }));
    let path = write(dir.path(), "list.pt", &archive(&[("a/data.pkl", b"\x80\x02]."), ("a/data/0", &data)]));
    assert!(matches!(refusal(&path), TorchError::NotAStateDict { found: "list", .. }));
    let path = write(dir.path(), "pickle.pt", &archive(&[("a/data.pkl", b"\x80\x02}"), ("a/data/0", &data)]));
    assert!(matches!(refusal(&path), TorchError::Pickle { problem: PickleProblem::Truncated, offset: 3, .. }));
}

#[test]
fn tensor_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let open = |name: &str, tensor: T<'_>, data: &[u8]| {
        let p = pickle(&[tensor]);
        refusal(&write(dir.path(), name, &archive(&[("a/data.pkl", &p), ("a/data/0", data)])))
    };
    let missing = T("w", "FloatStorage", "7", 6, 0, &[2, 3], &[3, 1]);
    assert!(matches!(open("missing.pt", missing, &[0; 24]), TorchError::MissingStorage { key, .. } if key == "7"));
    let err = open("short.pt", F32_2X3, &[0; 20]);
    assert!(matches!(err, TorchError::StorageTooShort { needed: 24, has: 20, .. }), "{err}");
    let outside = T("w", "FloatStorage", "0", 6, 0, &[3, 3], &[3, 1]);
    let err = open("outside.pt", outside, &[0; 24]);
    assert!(matches!(err, TorchError::ViewOutOfStorage { extent: Some(9), numel: 6, .. }), "{err}");
    // A broadcast of one element to 255 x 255: more bytes than the file, refused unallocated.
    let broadcast = T("w", "FloatStorage", "0", 1, 0, &[255, 255], &[0, 0]);
    assert!(matches!(open("broadcast.pt", broadcast, &[0; 4]), TorchError::ViewTooLarge { bytes: Some(260_100), .. }));
    let untyped = T("w", "UntypedStorage", "0", 24, 0, &[2, 3], &[3, 1]);
    let err = open("untyped.pt", untyped, &[0; 24]);
    assert!(matches!(err, TorchError::Pickle { problem: PickleProblem::UntypedStorage, .. }), "{err}");
}

/// Two archives (`a` in the first, `b` and `c` in the second) and an index.
fn sharded(dir: &Path, index: &str) -> PathBuf {
    let one = pickle(&[T("a", "ByteStorage", "0", 2, 0, &[2], &[1])]);
    let two = pickle(&[T("b", "ByteStorage", "0", 2, 0, &[1], &[1]), T("c", "ByteStorage", "0", 2, 1, &[1], &[1])]);
    write(dir, "m-1.bin", &archive(&[("m-1/data.pkl", &one), ("m-1/data/0", &[1, 2])]));
    write(dir, "m-2.bin", &archive(&[("m-2/data.pkl", &two), ("m-2/data/0", &[3, 4])]));
    write(dir, "pytorch_model.bin.index.json", index.as_bytes())
}

const INDEX: &str = r#"{"metadata":{"total_size":4},"weight_map":{"c":"m-2.bin","a":"m-1.bin","b":"m-2.bin"}}"#;

#[test]
fn sharded_checkpoints_and_their_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let index = sharded(dir.path(), INDEX);
    let src = TorchSource::open(dir.path()).unwrap();
    assert_eq!(src.tensors().iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["a", "b", "c"]);
    assert_eq!((&*src.read("a").unwrap(), &*src.read("c").unwrap()), (&[1u8, 2][..], &[4u8][..]));
    sharded(dir.path(), &INDEX.replace("m-1.", "gone."));
    assert!(
        matches!(refusal(&index), TorchError::MissingShard { shard, tensor, .. } if shard == "gone.bin" && tensor == "a")
    );
    sharded(dir.path(), &INDEX.replace(r#""c":"m-2.bin","#, r#""c":"m-2.bin","d":"m-1.bin","#));
    assert!(matches!(refusal(&index), TorchError::TensorNotInShard { tensor, .. } if tensor == "d"));
    sharded(dir.path(), &INDEX.replace(r#","b":"m-2.bin""#, ""));
    assert!(
        matches!(refusal(&index), TorchError::TensorNotInIndex { tensor, shard, .. } if tensor == "b" && shard == "m-2.bin")
    );
    sharded(dir.path(), r#"{"metadata":{}}"#);
    assert!(matches!(refusal(&index), TorchError::BadIndex { .. }));
    // Sparse after its `{`: refused after reading one byte past the limit.
    std::fs::write(&index, b"{").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&index)
        .unwrap()
        .set_len(warmstart_core::shard_index::MAX_INDEX_LEN + 1)
        .unwrap();
    assert!(matches!(refusal(dir.path()), TorchError::IndexTooLarge { .. }));
}

#[test]
fn folders_without_one_checkpoint_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "README.md", b"hello");
    assert!(matches!(refusal(dir.path()), TorchError::NoCheckpointInFolder { .. }));
    let p = pickle(&[F32_2X3]);
    let bytes = archive(&[("a/data.pkl", &p), ("a/data/0", &[0; 24])]);
    write(dir.path(), "a.pt", &bytes);
    write(dir.path(), "b.pt", &bytes);
    assert!(
        matches!(refusal(dir.path()), TorchError::AmbiguousFolder { candidates, .. } if candidates == ["a.pt", "b.pt"])
    );
}
