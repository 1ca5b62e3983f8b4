//! Telling a checkpoint's format from its content: the safetensors header, a shard index's
//! `weight_map` (Keras's if it names `.weights.h5` shards, else PyTorch or safetensors, told by its
//! shards), the HDF5 superblock signature, the LevelDB table footer of a TF bundle's `.index` file, a
//! Keras archive's members (a zip holding `config.json` and `model.weights.h5`), a zip holding
//! `<name>/data.pkl` (`torch.save`), the `.npy` magic or a zip of `.npy` members (`.npz`), and folders
//! holding one of these. File names are never trusted.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use warmstart_core::shard_index::ShardIndex;
use warmstart_core::{Error, Result};

use crate::{Format, FormatsError};

/// The HDF5 superblock signature, found at offset 0, 512, 1024, 2048, ...
const HDF5_SIGNATURE: [u8; 8] = *b"\x89HDF\r\n\x1a\n";

/// The magic number ending every LevelDB table, which a TF bundle's `.index` file is.
const LEVELDB_TABLE_MAGIC: [u8; 8] = [0x57, 0xfb, 0x80, 0x8b, 0x24, 0x75, 0x47, 0xdb];

/// A LevelDB table footer's size: two block handles padded to 40 bytes, then the magic.
const LEVELDB_FOOTER_LEN: u64 = 48;

/// The magic of a NumPy `.npy` file.
const NPY_MAGIC: &[u8; 6] = b"\x93NUMPY";

/// The signature of a zip local file header, with which an `.npz` and a `torch.save` archive start.
const ZIP_LOCAL_HEADER: &[u8; 4] = b"PK\x03\x04";

/// The largest header safetensors allows.
const MAX_SAFETENSORS_HEADER_LEN: u64 = 100_000_000;

/// The largest JSON file read to see whether it is a shard index.
const MAX_INDEX_JSON_LEN: u64 = warmstart_core::shard_index::MAX_INDEX_LEN;

/// What the legacy format of `torch.save` (torch < 1.6) starts with after the protocol byte: LONG1 of
/// 10 bytes, the magic number 0x1950a86a20f9469cfc6c (little-endian).
const TORCH_LEGACY_MAGIC: [u8; 12] = [0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

/// The format of the checkpoint at `path`: a file, a folder holding one checkpoint, or a TF bundle
/// prefix (`path.index` exists).
pub fn detect(path: &Path) -> Result<Format> {
    detect_preferring(path, None)
}

/// As [`detect`], but a folder holding checkpoints of several formats gives `prefer` (`--format`) when
/// it is one of them (and is refused, listing them, when it is not). Elsewhere `prefer` changes nothing:
/// the format is the content's.
pub fn detect_preferring(path: &Path, prefer: Option<Format>) -> Result<Format> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => detect_folder(path, prefer),
        Ok(_) => match detect_file(path)? {
            Some(format) => Ok(format),
            None => detect_prefix(path)?.ok_or_else(|| FormatsError::Undetected { path: path.to_path_buf() }.into()),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => detect_prefix(path)?.ok_or_else(|| Error::io(path, e)),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// `Some(Tf)` if `prefix.index` is a TF bundle index.
fn detect_prefix(prefix: &Path) -> Result<Option<Format>> {
    let mut index = prefix.as_os_str().to_owned();
    index.push(".index");
    let index = PathBuf::from(index);
    // A TF write interrupted mid-commit: the TF reader says so.
    if warmstart_core::journal::journal_path(prefix).is_file() {
        return Ok(Some(Format::Tf));
    }
    if !index.is_file() {
        return Ok(None);
    }
    Ok(detect_file(&index)?.filter(|&f| f == Format::Tf))
}

/// The one format of the checkpoints in a folder (not recursing), or `prefer` among several.
fn detect_folder(dir: &Path, prefer: Option<Format>) -> Result<Format> {
    let mut formats = BTreeSet::new();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if path.is_file() {
            files.push(path);
        }
    }
    // The shards of a sharded Keras index are part of it, not HDF5 checkpoints of their own.
    let mut shards = BTreeSet::new();
    for path in &files {
        shards.extend(keras_index_shards(path)?.unwrap_or_default());
    }
    for path in files {
        if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| shards.contains(n)) {
            continue;
        }
        let journal = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(warmstart_core::journal::JOURNAL_SUFFIX) && !n.starts_with('.'));
        if journal || (path.file_name().is_some_and(|n| n == "checkpoint") && is_tf_state_file(&path)?) {
            formats.insert(FormatOrder(Format::Tf));
        } else if let Some(format) = detect_file(&path)? {
            formats.insert(FormatOrder(format));
        }
    }
    let formats: Vec<Format> = formats.into_iter().map(|f| f.0).collect();
    match formats.as_slice() {
        [] => Err(FormatsError::Undetected { path: dir.to_path_buf() }.into()),
        [one] => Ok(*one),
        _ => match prefer.filter(|p| formats.contains(p)) {
            Some(format) => Ok(format),
            None => Err(FormatsError::AmbiguousFolder { path: dir.to_path_buf(), formats }.into()),
        },
    }
}

/// Orders formats as [`Format::ALL`] lists them.
#[derive(PartialEq, Eq)]
struct FormatOrder(Format);

impl Ord for FormatOrder {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let pos = |f: Format| Format::ALL.iter().position(|&g| g == f);
        pos(self.0).cmp(&pos(other.0))
    }
}

impl PartialOrd for FormatOrder {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Whether `path` is TF's `checkpoint` state file (text naming `model_checkpoint_path`).
fn is_tf_state_file(path: &Path) -> Result<bool> {
    let mut head = Vec::new();
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    file.take(4096).read_to_end(&mut head).map_err(|e| Error::io(path, e))?;
    Ok(String::from_utf8_lossy(&head).contains("model_checkpoint_path"))
}

/// The format of one file, or `None` if it is none of ours.
fn detect_file(path: &Path) -> Result<Option<Format>> {
    if let Some(format) = detect_data_file(path)? {
        return Ok(Some(format));
    }
    index_format(path)
}

/// The format of one file that is not an index.
fn detect_data_file(path: &Path) -> Result<Option<Format>> {
    let io = |e| Error::io(path, e);
    let mut file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();

    // Before HDF5: an archive's weights may happen to start at an offset HDF5 looks for a signature at.
    if is_keras_archive(&mut file).map_err(io)? {
        return Ok(Some(Format::Keras));
    }
    if is_numpy(&mut file).map_err(io)? {
        return Ok(Some(Format::Numpy));
    }
    if has_hdf5_signature(&mut file, len).map_err(io)? {
        return Ok(Some(Format::Hdf5));
    }
    if len >= LEVELDB_FOOTER_LEN && read_at(&mut file, len - 8).map_err(io)? == Some(LEVELDB_TABLE_MAGIC) {
        return Ok(Some(Format::Tf));
    }
    let mut head = [0u8; 14];
    let got = read_up_to(&mut file, 0, &mut head).map_err(io)?;
    if got >= 9 {
        let header_len = u64::from_le_bytes(head[..8].try_into().unwrap_or_default());
        // A header longer than the file is still reported as safetensors, so that the reader can
        // say exactly what is wrong with it.
        if head[8] == b'{' && (2..=MAX_SAFETENSORS_HEADER_LEN).contains(&header_len) {
            return Ok(Some(Format::Safetensors));
        }
    }
    if (got == head.len() && head[0] == 0x80 && head[2..] == TORCH_LEGACY_MAGIC)
        || is_torch_zip(&mut file, &head[..got])
    {
        return Ok(Some(Format::Torch));
    }
    Ok(None)
}

/// The shards a Keras index's `weight_map` names (a string or a list of strings for each layer), if
/// it names any and all of them are `.weights.h5` files.
fn keras_shards(map: &serde_json::Map<String, serde_json::Value>) -> Option<Vec<String>> {
    let mut shards = Vec::new();
    for value in map.values() {
        let files = match value {
            serde_json::Value::Array(list) => list.iter().collect(),
            one => vec![one],
        };
        for file in files {
            shards.push(file.as_str().filter(|f| f.ends_with(".weights.h5"))?.to_string());
        }
    }
    (!shards.is_empty()).then_some(shards)
}

/// The shards the file `path` names if it is a sharded Keras index.
fn keras_index_shards(path: &Path) -> Result<Option<Vec<String>>> {
    let len = std::fs::metadata(path).map_err(|e| Error::io(path, e))?.len();
    let mut head = [0u8; 1];
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let got = file.take(1).read(&mut head).map_err(|e| Error::io(path, e))?;
    if len > MAX_INDEX_JSON_LEN || got == 0 || head[0] != b'{' {
        return Ok(None);
    }
    let text = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(&text) else { return Ok(None) };
    Ok(json.get("weight_map").and_then(|m| m.as_object()).and_then(keras_shards))
}

/// Whether `file` is a Keras archive: a zip whose central directory lists `config.json` and the
/// weights (`model.weights.h5`, or the `.npz` the reader then refuses by name). A damaged zip is not.
fn is_keras_archive(file: &mut File) -> std::io::Result<bool> {
    let mut head = [0u8; 4];
    if read_up_to(file, 0, &mut head)? != 4 || head != *b"PK\x03\x04" {
        return Ok(false);
    }
    file.seek(SeekFrom::Start(0))?;
    let Ok(archive) = zip::ZipArchive::new(&mut *file) else { return Ok(false) };
    let has = |name: &str| archive.file_names().any(|n| n.is_ok_and(|n| n == name));
    Ok(has("config.json") && (has("model.weights.h5") || has("model.weights.npz")))
}

/// Whether `file` (starting with `head`) is a `torch.save` zip archive: it holds `<name>/data.pkl` and
/// `<name>/version` (or `<name>/.data/version`). An archive whose central directory is unreadable
/// still is one if its first member is `<name>/data.pkl`, as torch writes it, so that the reader can
/// say what is wrong.
fn is_torch_zip(file: &mut File, head: &[u8]) -> bool {
    if !head.starts_with(ZIP_LOCAL_HEADER) {
        return false;
    }
    let Ok(archive) = zip::ZipArchive::new(&mut *file) else {
        let mut local = [0u8; 30 + 256];
        let got = read_up_to(file, 0, &mut local).unwrap_or(0);
        let name_len = usize::from(u16::from_le_bytes([local[26], local[27]]));
        return got >= 30 + name_len && local[30..30 + name_len].ends_with(b"/data.pkl");
    };
    let names: BTreeSet<String> = archive.file_names().filter_map(|n| n.ok()).map(|n| n.into_owned()).collect();
    names.iter().filter_map(|n| n.strip_suffix("/data.pkl")).any(|prefix| {
        names.contains(&format!("{prefix}/version")) || names.contains(&format!("{prefix}/.data/version"))
    })
}

/// The format of the checkpoint a shard index (a JSON object with a `weight_map` object) names: Keras's
/// if every file it maps to is a `.weights.h5` shard, else told by the content of its first shard that
/// exists: PyTorch shards, else safetensors (whose reader then says
/// which shard is missing, or what is wrong with the index).
fn index_format(path: &Path) -> Result<Option<Format>> {
    let io = |e| Error::io(path, e);
    let mut file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mut head = [0u8; 9];
    let got = read_up_to(&mut file, 0, &mut head).map_err(io)?;
    let first = head[..got].iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') || len > MAX_INDEX_JSON_LEN {
        return Ok(None);
    }
    let text = std::fs::read(path).map_err(io)?;
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(&text) else { return Ok(None) };
    let Some(weight_map) = json.get("weight_map").and_then(|m| m.as_object()) else { return Ok(None) };
    if keras_shards(weight_map).is_some() {
        return Ok(Some(Format::Keras));
    }
    let shards: BTreeSet<&str> = weight_map.values().filter_map(|s| s.as_str()).collect();
    for shard in shards {
        let shard = ShardIndex::shard_path(path, shard);
        if shard.is_file() {
            let torch = detect_data_file(&shard)? == Some(Format::Torch);
            return Ok(Some(if torch { Format::Torch } else { Format::Safetensors }));
        }
    }
    Ok(Some(Format::Safetensors))
}

/// Whether the file is a `.npy` (its magic) or an `.npz`: a zip whose first member is `<key>.npy`.
fn is_numpy(file: &mut File) -> std::io::Result<bool> {
    let mut head = [0u8; 30 + 512];
    let got = read_up_to(file, 0, &mut head)?;
    let head = &head[..got];
    if head.starts_with(NPY_MAGIC) {
        return Ok(true);
    }
    if !head.starts_with(ZIP_LOCAL_HEADER) || head.len() < 30 {
        return Ok(false);
    }
    let name_len = usize::from(u16::from_le_bytes([head[26], head[27]]));
    Ok(head.get(30..30 + name_len).is_some_and(|name| name.ends_with(b".npy")))
}

/// Whether the HDF5 signature is at offset 0, 512, 1024, 2048, ... of the file.
fn has_hdf5_signature(file: &mut File, len: u64) -> std::io::Result<bool> {
    let mut offset = 0u64;
    while offset.saturating_add(8) <= len {
        if read_at(file, offset)? == Some(HDF5_SIGNATURE) {
            return Ok(true);
        }
        offset = if offset == 0 { 512 } else { offset.saturating_mul(2) };
    }
    Ok(false)
}

/// The 8 bytes at `offset`, or `None` if the file ends first.
fn read_at(file: &mut File, offset: u64) -> std::io::Result<Option<[u8; 8]>> {
    let mut buf = [0u8; 8];
    Ok((read_up_to(file, offset, &mut buf)? == 8).then_some(buf))
}

/// Reads as much of `buf` as the file has from `offset`, returning how much that was.
fn read_up_to(file: &mut File, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
    file.seek(SeekFrom::Start(offset))?;
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal valid safetensors file with one U8 tensor of one byte.
    pub(crate) fn safetensors_bytes() -> Vec<u8> {
        let header = br#"{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}  "#;
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(header);
        out.push(7);
        out
    }

    /// Bytes ending like a LevelDB table (what a TF bundle's `.index` file is).
    pub(crate) fn leveldb_table_bytes() -> Vec<u8> {
        let mut out = vec![0u8; 100];
        out.extend_from_slice(&LEVELDB_TABLE_MAGIC);
        out
    }

    /// Bytes with the HDF5 signature at `offset`.
    pub(crate) fn hdf5_bytes(offset: usize) -> Vec<u8> {
        let mut out = vec![0u8; offset + 64];
        out[offset..offset + 8].copy_from_slice(&HDF5_SIGNATURE);
        out
    }

    /// Writes `bytes` to `dir/name`.
    pub(crate) fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn safetensors_file_whatever_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "weights.bin", &safetensors_bytes());
        assert_eq!(detect(&path).unwrap(), Format::Safetensors);
    }

    #[test]
    fn safetensors_index_and_sharded_folder() {
        let dir = tempfile::tempdir().unwrap();
        let index = write(
            dir.path(),
            "model.safetensors.index.json",
            br#" {"metadata":{},"weight_map":{"w":"a.safetensors"}}"#,
        );
        write(dir.path(), "config.json", br#"{"hidden": 4}"#);
        assert_eq!(detect(&index).unwrap(), Format::Safetensors);
        assert_eq!(detect(dir.path()).unwrap(), Format::Safetensors);
        let other = write(dir.path(), "other.json", br#"{"weights":{}}"#);
        assert!(matches!(detect(&other), Err(Error::Formats(e)) if matches!(*e, FormatsError::Undetected { .. })));
    }

    #[test]
    fn hdf5_signature_at_0_and_at_powers_of_two_times_512() {
        let dir = tempfile::tempdir().unwrap();
        for offset in [0, 512, 1024, 2048, 4096] {
            let path = write(dir.path(), "w.bin", &hdf5_bytes(offset));
            assert_eq!(detect(&path).unwrap(), Format::Hdf5, "offset {offset}");
        }
        let path = write(dir.path(), "w.bin", &hdf5_bytes(100));
        assert!(detect(&path).is_err());
    }

    #[test]
    fn tf_index_file_prefix_and_folder() {
        let dir = tempfile::tempdir().unwrap();
        let index = write(dir.path(), "model.ckpt-10.index", &leveldb_table_bytes());
        write(dir.path(), "model.ckpt-10.data-00000-of-00001", &[0; 16]);
        assert_eq!(detect(&index).unwrap(), Format::Tf);
        assert_eq!(detect(&dir.path().join("model.ckpt-10")).unwrap(), Format::Tf);
        assert_eq!(detect(dir.path()).unwrap(), Format::Tf);

        let state_only = tempfile::tempdir().unwrap();
        write(state_only.path(), "checkpoint", b"model_checkpoint_path: \"model.ckpt-10\"\n");
        assert_eq!(detect(state_only.path()).unwrap(), Format::Tf);
    }

    #[test]
    fn checkpoints_written_by_tensorflow_are_tf() {
        let old = warmstart_core::test_support::fixture("warmstart", "warm_start_var").join("old");
        for path in [old.join("model-0"), old.join("model-0.index"), old.clone()] {
            assert_eq!(detect(&path).unwrap(), Format::Tf, "{}", path.display());
        }
        // The data and graph files alone are not a checkpoint.
        assert!(detect(&old.join("model-0.data-00000-of-00001")).is_err());
        assert!(detect(&old.join("model-0.meta")).is_err());
    }

    #[test]
    fn files_written_by_h5py_are_hdf5() {
        let dir = warmstart_core::test_support::fixture("formats", "hdf5");
        for name in ["plain.h5", "userblock.h5"] {
            assert_eq!(detect(&dir.join(name)).unwrap(), Format::Hdf5, "{name}");
        }
    }

    #[test]
    fn keras_archives_indexes_and_sharded_folders_are_keras() {
        let fixtures = warmstart_core::test_support::fixtures().join("keras");
        for path in [fixtures.join("model/model.keras"), fixtures.join("bf16/model.keras")] {
            assert_eq!(detect(&path).unwrap(), Format::Keras, "{}", path.display());
        }
        let sharded = fixtures.join("sharded");
        assert_eq!(detect(&sharded.join("model.weights.json")).unwrap(), Format::Keras);
        // The shards belong to the index; alone, each is an HDF5 file.
        assert_eq!(detect(&sharded).unwrap(), Format::Keras);
        assert_eq!(detect(&sharded.join("model_00000.weights.h5")).unwrap(), Format::Hdf5);
        // A folder with the archive and its weights beside it holds two formats.
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(fixtures.join("bf16/model.keras"), dir.path().join("m.keras")).unwrap();
        std::fs::copy(fixtures.join("bf16/model.weights.h5"), dir.path().join("m.weights.h5")).unwrap();
        let err = detect(dir.path()).unwrap_err().to_string();
        assert!(err.contains("several formats (hdf5, keras)"), "{err}");
    }

    #[test]
    fn zips_without_keras_members_and_damaged_zips_are_not_keras() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.keras");
        let mut zip = zip::ZipWriter::new(File::create(&path).unwrap());
        zip.start_file("config.json", zip::write::SimpleFileOptions::default()).unwrap();
        zip.write_all(b"{}").unwrap();
        zip.finish().unwrap();
        assert!(detect(&path).unwrap_err().to_string().contains("not a checkpoint"));
        let mut bytes = std::fs::read(fixtures_model()).unwrap();
        let len = bytes.len();
        bytes.truncate(len - 10);
        let damaged = write(dir.path(), "d.keras", &bytes);
        assert!(detect(&damaged).is_err());
        // A safetensors index stays one.
        let index = write(dir.path(), "i.json", br#"{"weight_map":{"w":"model.safetensors"}}"#);
        assert_eq!(detect(&index).unwrap(), Format::Safetensors);
        let index = write(dir.path(), "k.json", br#"{"weight_map":{"/vars":["m_00000.weights.h5"]}}"#);
        assert_eq!(detect(&index).unwrap(), Format::Keras);
    }

    fn fixtures_model() -> PathBuf {
        warmstart_core::test_support::fixtures().join("keras/model/model.keras")
    }

    #[test]
    fn a_prefix_whose_index_is_not_a_table_is_not_tf() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "model.ckpt.index", b"not a table");
        let err = detect(&dir.path().join("model.ckpt")).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err}");
    }

    #[test]
    fn undetected_files_and_folders_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        for bytes in [&b""[..], b"hello world", &[0xff; 9]] {
            let path = write(dir.path(), "x.safetensors", bytes);
            let err = detect(&path).unwrap_err().to_string();
            assert!(err.contains("x.safetensors") && err.contains("not a checkpoint"), "{err}");
        }
        std::fs::remove_file(dir.path().join("x.safetensors")).unwrap();
        write(dir.path(), "notes.txt", b"nothing");
        assert!(detect(dir.path()).unwrap_err().to_string().contains("not a checkpoint"));
    }

    #[test]
    fn safetensors_with_a_header_longer_than_the_file_is_still_safetensors() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = safetensors_bytes();
        bytes[0] = 200;
        let path = write(dir.path(), "m.safetensors", &bytes);
        assert_eq!(detect(&path).unwrap(), Format::Safetensors);
        bytes[..8].copy_from_slice(&(MAX_SAFETENSORS_HEADER_LEN + 1).to_le_bytes());
        let path = write(dir.path(), "m.safetensors", &bytes);
        assert!(detect(&path).is_err());
    }

    #[test]
    fn folder_of_several_formats_is_ambiguous() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.safetensors", &safetensors_bytes());
        write(dir.path(), "b.h5", &hdf5_bytes(0));
        let err = detect(dir.path()).unwrap_err().to_string();
        assert!(err.contains("several formats (safetensors, hdf5)"), "{err}");
    }

    #[test]
    fn archives_written_by_torch_are_torch_whatever_their_name() {
        let torch = warmstart_core::test_support::fixtures().join("torch");
        for case in [
            "plain/model.pt",
            "legacy/model.pt",
            "bigendian/model.pt",
            "sharded",
            "sharded/pytorch_model.bin.index.json",
        ] {
            assert_eq!(detect(&torch.join(case)).unwrap(), Format::Torch, "{case}");
        }
        let dir = tempfile::tempdir().unwrap();
        let renamed = write(dir.path(), "weights.safetensors", &std::fs::read(torch.join("plain/model.pt")).unwrap());
        assert_eq!(detect(&renamed).unwrap(), Format::Torch);
        // A torch archive and a safetensors file side by side: refused with both named.
        write(dir.path(), "model.safetensors", &safetensors_bytes());
        let err = detect(dir.path()).unwrap_err().to_string();
        assert!(err.contains("several formats (safetensors, torch)"), "{err}");
    }

    #[test]
    fn zips_of_other_kinds_and_broken_ones_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        // A local header whose first member is not <name>/data.pkl, and no central directory.
        let mut other = b"PK\x03\x04".to_vec();
        other.extend_from_slice(&[0; 22]);
        other.extend_from_slice(&13u16.to_le_bytes());
        other.extend_from_slice(&[0, 0]);
        other.extend_from_slice(b"metadata.json");
        let path = write(dir.path(), "m.zip", &other);
        assert!(detect(&path).is_err());
        // The same with archive/data.pkl first: a damaged torch archive, for the reader to describe.
        let mut broken = other[..26].to_vec();
        broken.extend_from_slice(&16u16.to_le_bytes());
        broken.extend_from_slice(&[0, 0]);
        broken.extend_from_slice(b"archive/data.pkl");
        let path = write(dir.path(), "m.zip", &broken);
        assert_eq!(detect(&path).unwrap(), Format::Torch);
    }

    #[test]
    fn missing_path_is_an_io_error() {
        let err = detect(Path::new("/nonexistent/model")).unwrap_err();
        assert!(matches!(err, Error::Io { .. }));
    }
}
