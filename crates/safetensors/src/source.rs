//! [`SafetensorsSource`]: a single safetensors file, a sharded checkpoint named by its index, or a
//! folder holding either, memory-mapped and served as zero-copy row ranges. The maps are guarded
//! ([`InputMap`]): a file truncated while being read is an error naming it (not SIGBUS), and one
//! rewritten in place is noticed by its size and modification time ([`CheckpointSource::check_unchanged`]).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};

use warmstart_core::mapped::InputMap;
use warmstart_core::shard_index::{ShardIndex, ShardIndexError};
use warmstart_core::{CheckpointSource, Error, Format, Result, TensorInfo};

use crate::header;
use crate::SafetensorsError;

/// The index file name Hugging Face writes for a sharded checkpoint.
pub(crate) const INDEX_FILE_NAME: &str = "model.safetensors.index.json";

/// The largest index file read (shared with the other sharded readers and format detection).
pub(crate) use warmstart_core::shard_index::MAX_INDEX_LEN;

/// A safetensors checkpoint opened for reading.
#[derive(Debug)]
pub struct SafetensorsSource {
    path: PathBuf,
    maps: Vec<InputMap>,
    tensors: Vec<TensorInfo>,
    locations: HashMap<String, Location>,
    metadata: Option<BTreeMap<String, String>>,
}

/// Where a tensor's bytes are: which map, which range of it.
#[derive(Debug, Clone)]
struct Location {
    map: usize,
    bytes: Range<usize>,
}

impl SafetensorsSource {
    /// Opens a `.safetensors` file, a `*.safetensors.index.json` index (and the shards it names), or a
    /// folder holding an index or exactly one `.safetensors` file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        let source =
            if meta.is_dir() { Self::open_file(path, &find_in_folder(path)?)? } else { Self::open_file(path, path)? };
        Ok(source)
    }

    /// Opens `file` (an index or a single file) and reports it as opened from `opened_as`.
    fn open_file(opened_as: &Path, file: &Path) -> Result<Self> {
        let mut source = if is_index_name(file) { Self::open_index(file)? } else { Self::open_single(file)? };
        source.path = opened_as.to_path_buf();
        Ok(source)
    }

    fn open_single(path: &Path) -> Result<Self> {
        let map = map_file(path).map_err(|source| SafetensorsError::Io { path: path.to_path_buf(), source })?;
        let header = header::parse(path, &map)?;
        let mut locations = HashMap::with_capacity(header.tensors.len());
        let mut tensors = Vec::with_capacity(header.tensors.len());
        for (info, bytes) in header.tensors {
            locations.insert(info.name.clone(), Location { map: 0, bytes });
            tensors.push(info);
        }
        Ok(SafetensorsSource {
            path: path.to_path_buf(),
            maps: vec![map],
            tensors,
            locations,
            metadata: header.metadata,
        })
    }

    fn open_index(index: &Path) -> Result<Self> {
        let parsed = ShardIndex::read(index).map_err(|e| match e {
            ShardIndexError::Io(source) => SafetensorsError::Io { path: index.to_path_buf(), source },
            ShardIndexError::TooLarge { len } => {
                SafetensorsError::IndexTooLarge { path: index.to_path_buf(), len, max: MAX_INDEX_LEN }
            }
            ShardIndexError::Bad(source) => SafetensorsError::BadIndex { path: index.to_path_buf(), source },
        })?;
        let shards = parsed.shards();
        let mut source = SafetensorsSource {
            path: index.to_path_buf(),
            maps: Vec::with_capacity(shards.len()),
            tensors: Vec::new(),
            locations: HashMap::new(),
            metadata: None,
        };
        for shard in shards {
            let shard_path = ShardIndex::shard_path(index, shard);
            let map = map_file(&shard_path).map_err(|source| SafetensorsError::MissingShard {
                index: index.to_path_buf(),
                shard: shard.to_string(),
                tensor: parsed.first_tensor_in(shard),
                source,
            })?;
            let header = header::parse(&shard_path, &map)?;
            for (info, bytes) in header.tensors {
                if parsed.weight_map.get(&info.name).map(String::as_str) != Some(shard) {
                    return Err(SafetensorsError::TensorNotInIndex {
                        index: index.to_path_buf(),
                        shard: shard.to_string(),
                        tensor: info.name,
                    }
                    .into());
                }
                source.locations.insert(info.name.clone(), Location { map: source.maps.len(), bytes });
                source.tensors.push(info);
            }
            if source.metadata.is_none() {
                source.metadata = header.metadata;
            }
            source.maps.push(map);
        }
        if let Some((tensor, shard)) = parsed.first_missing(|t| source.locations.contains_key(t)) {
            return Err(SafetensorsError::TensorNotInShard {
                index: index.to_path_buf(),
                shard: shard.to_string(),
                tensor: tensor.to_string(),
            }
            .into());
        }
        Ok(source)
    }

    fn location(&self, name: &str) -> Result<&Location> {
        self.locations
            .get(name)
            .ok_or_else(|| Error::TensorNotFound { path: self.path.clone(), name: name.to_string() })
    }
}

/// Whether `path` names a safetensors index (`*.safetensors.index.json`, or any `.json`).
fn is_index_name(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "json")
}

impl SafetensorsSource {
    /// The map and byte range holding rows `rows` of `name`, if it has them.
    fn mapped_rows(&self, name: &str, rows: Range<u64>) -> Option<(&InputMap, Range<usize>)> {
        let (info, location) = (self.tensor(name)?, self.location(name).ok()?);
        let row_bytes = info.row_bytes()?;
        let offset = |row: u64| row.checked_mul(row_bytes).and_then(|b| usize::try_from(b).ok());
        let (start, end) = (offset(rows.start)?, offset(rows.end)?);
        let tensor = &location.bytes;
        (start <= end && end <= tensor.len())
            .then(|| (&self.maps[location.map], tensor.start + start..tensor.start + end))
    }
}

/// Memory-maps a whole file (guarded: see [`InputMap`]).
fn map_file(path: &Path) -> std::io::Result<InputMap> {
    InputMap::open(path)
}

/// The file to open in a folder: its `model.safetensors.index.json`, else its only
/// `*.safetensors.index.json`, else its only `*.safetensors`.
pub(crate) fn find_in_folder(dir: &Path) -> Result<PathBuf> {
    let preferred = dir.join(INDEX_FILE_NAME);
    if preferred.is_file() {
        return Ok(preferred);
    }
    let mut indexes = Vec::new();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !entry.path().is_file() {
            continue;
        }
        if name.ends_with(".safetensors.index.json") {
            indexes.push(name);
        } else if name.ends_with(".safetensors") {
            files.push(name);
        }
    }
    indexes.sort();
    files.sort();
    let candidates = if indexes.is_empty() { files } else { indexes };
    match candidates.as_slice() {
        [] => Err(SafetensorsError::NoCheckpointInFolder { path: dir.to_path_buf() }.into()),
        [one] => Ok(dir.join(one)),
        _ => Err(SafetensorsError::AmbiguousFolder { path: dir.to_path_buf(), candidates }.into()),
    }
}

impl CheckpointSource for SafetensorsSource {
    fn format(&self) -> Format {
        Format::Safetensors
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    fn read_rows(&self, name: &str, rows: Range<u64>) -> Result<Cow<'_, [u8]>> {
        let info = self.require(name)?;
        let location = self.location(name)?;
        let total_rows = info.rows();
        let out_of_range = || Error::RowsOutOfRange {
            path: self.path.clone(),
            name: name.to_string(),
            start: rows.start,
            end: rows.end,
            rows: total_rows,
        };
        if rows.start > rows.end || rows.end > total_rows {
            return Err(out_of_range());
        }
        if rows.start == rows.end {
            // No rows, including every read of a tensor with no rows, whose row size may overflow
            // (shape [0, 2^62] is a valid empty tensor).
            return Ok(Cow::Borrowed(&[]));
        }
        // With at least one row, the row size is at most the tensor's size, which the header check
        // made fit in the map; checked all the same.
        let too_large = || Error::TooLarge { path: self.path.clone(), name: name.to_string() };
        let row_bytes = info.row_bytes().ok_or_else(too_large)?;
        let offset =
            |row: u64| row.checked_mul(row_bytes).and_then(|b| usize::try_from(b).ok()).ok_or_else(out_of_range);
        let (start, end) = (offset(rows.start)?, offset(rows.end)?);
        let map = &self.maps[location.map];
        // Bytes read before may have vanished since (the file truncated): an error from then on.
        map.check_read()?;
        let bytes = &map[location.bytes.clone()];
        bytes.get(start..end).map(Cow::Borrowed).ok_or_else(out_of_range)
    }

    fn release(&self, name: &str, rows: Range<u64>) {
        if let Some((map, bytes)) = self.mapped_rows(name, rows) {
            map.release(bytes);
        }
    }

    /// Every tensor: its bytes in its file, as stored.
    fn stored_bytes(&self, name: &str) -> Option<warmstart_core::StoredBytes<'_>> {
        let location = self.locations.get(name)?;
        let map = &self.maps[location.map];
        Some(warmstart_core::StoredBytes {
            file: map.file(),
            path: map.path(),
            offset: location.bytes.start as u64,
            len: (location.bytes.end - location.bytes.start) as u64,
        })
    }

    fn metadata(&self) -> Option<&BTreeMap<String, String>> {
        self.metadata.as_ref()
    }

    fn check_unchanged(&self) -> Result<()> {
        self.maps.iter().try_for_each(InputMap::check_unchanged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::tests::file;

    const HEADER: &str = r#"{"__metadata__":{"k":"v"},"w":{"dtype":"U16","shape":[3,2],"data_offsets":[0,12]},"s":{"dtype":"U8","shape":[],"data_offsets":[12,13]}}"#;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn data() -> Vec<u8> {
        (0..13).collect()
    }

    fn format_err(err: Error) -> SafetensorsError {
        match err {
            Error::Safetensors(e) => *e,
            other => panic!("not a format error: {other}"),
        }
    }

    #[test]
    fn single_file_rows_are_borrowed_from_the_map() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "m.safetensors", &file(HEADER, &data()));
        let src = SafetensorsSource::open(&path).unwrap();
        assert_eq!(src.format(), Format::Safetensors);
        assert_eq!(src.tensors().iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["w", "s"]);
        let rows = src.read_rows("w", 1..3).unwrap();
        assert!(matches!(rows, Cow::Borrowed(_)));
        assert_eq!(&*rows, &data()[4..12]);
        assert_eq!(&*src.read("s").unwrap(), &[12]);
        assert_eq!(src.read_rows("w", 2..2).unwrap().len(), 0);
        assert_eq!(src.metadata().unwrap()["k"], "v");
    }

    #[test]
    fn rows_out_of_range_and_unknown_tensors_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "m.safetensors", &file(HEADER, &data()));
        let src = SafetensorsSource::open(&path).unwrap();
        assert!(matches!(src.read_rows("w", 2..4), Err(Error::RowsOutOfRange { rows: 3, .. })));
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = 2..1;
        assert!(matches!(src.read_rows("w", reversed), Err(Error::RowsOutOfRange { .. })));
        assert!(matches!(src.read_rows("x", 0..1), Err(Error::TensorNotFound { .. })));
        assert!(matches!(src.read_strings("w"), Err(Error::WrongDType { .. })));
    }

    #[test]
    fn released_rows_read_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "m.safetensors", &file(HEADER, &data()));
        let src = SafetensorsSource::open(&path).unwrap();
        let before = src.read("w").unwrap().into_owned();
        src.release("w", 0..3);
        src.release("w", 1..2);
        // Out of range or unknown: ignored.
        src.release("w", 0..9);
        src.release("x", 0..1);
        assert_eq!(src.read("w").unwrap().into_owned(), before);
    }

    #[test]
    fn an_empty_tensor_whose_row_size_overflows_reads_as_empty() {
        // Found by the corruption test: shape [0, 2^62] holds no bytes, so the header is valid, but
        // its row size overflows; reading its (zero) rows was refused as "rows 0..0 out of range".
        let header = r#"{"e":{"dtype":"F32","shape":[0,4611686018427387904],"data_offsets":[0,0]}}"#;
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "m.safetensors", &file(header, &[]));
        let src = SafetensorsSource::open(&path).unwrap();
        assert_eq!(src.read("e").unwrap().len(), 0);
        assert_eq!(src.read_rows("e", 0..0).unwrap().len(), 0);
        assert!(matches!(src.read_rows("e", 0..1), Err(Error::RowsOutOfRange { rows: 0, .. })));
    }

    #[test]
    fn missing_file_is_an_io_error_naming_it() {
        let err = SafetensorsSource::open("/nonexistent/m.safetensors").unwrap_err();
        assert!(err.to_string().contains("/nonexistent/m.safetensors"), "{err}");
    }

    /// Two shards and an index: `a` in the first, `b` and `c` in the second.
    fn sharded(dir: &Path, index: &str) -> PathBuf {
        let one = r#"{"__metadata__":{"format":"pt"},"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}"#;
        let two = r#"{"b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"c":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}"#;
        write(dir, "m-1.safetensors", &file(one, &[1, 2]));
        write(dir, "m-2.safetensors", &file(two, &[3, 4]));
        write(dir, INDEX_FILE_NAME, index.as_bytes())
    }

    const INDEX: &str = r#"{"metadata":{"total_size":4},"weight_map":{"c":"m-2.safetensors","a":"m-1.safetensors","b":"m-2.safetensors"}}"#;

    #[test]
    fn sharded_index_and_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let index = sharded(dir.path(), INDEX);
        for opened in [index.clone(), dir.path().to_path_buf()] {
            let src = SafetensorsSource::open(&opened).unwrap();
            assert_eq!(src.path(), opened);
            assert_eq!(src.tensors().iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["a", "b", "c"]);
            assert_eq!(&*src.read("a").unwrap(), &[1, 2]);
            assert_eq!(&*src.read("c").unwrap(), &[4]);
            assert_eq!(src.metadata().unwrap()["format"], "pt");
        }
    }

    #[test]
    fn bad_index() {
        let dir = tempfile::tempdir().unwrap();
        let index = sharded(dir.path(), r#"{"metadata":{}}"#);
        let err = format_err(SafetensorsSource::open(&index).unwrap_err());
        assert!(matches!(err, SafetensorsError::BadIndex { .. }), "{err}");
    }

    #[test]
    fn an_index_too_large_is_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let index = dir.path().join(INDEX_FILE_NAME);
        // Sparse: 64 MiB + 1 of nothing, refused after reading one byte past the limit.
        std::fs::File::create(&index).unwrap().set_len(MAX_INDEX_LEN + 1).unwrap();
        let err = format_err(SafetensorsSource::open(&index).unwrap_err());
        assert!(matches!(err, SafetensorsError::IndexTooLarge { len, .. } if len == MAX_INDEX_LEN + 1), "{err}");
        assert!(err.to_string().contains(INDEX_FILE_NAME));
    }

    #[test]
    fn missing_shard() {
        let dir = tempfile::tempdir().unwrap();
        let index = sharded(dir.path(), &INDEX.replace("m-1.", "gone."));
        let err = format_err(SafetensorsSource::open(&index).unwrap_err());
        assert!(
            matches!(&err, SafetensorsError::MissingShard { shard, tensor, .. } if shard == "gone.safetensors" && tensor == "a")
        );
        assert!(err.to_string().contains(INDEX_FILE_NAME));
    }

    #[test]
    fn tensor_not_in_shard() {
        let dir = tempfile::tempdir().unwrap();
        let index = sharded(
            dir.path(),
            &INDEX.replace(r#""c":"m-2.safetensors","#, r#""c":"m-2.safetensors","d":"m-1.safetensors","#),
        );
        let err = format_err(SafetensorsSource::open(&index).unwrap_err());
        assert!(
            matches!(&err, SafetensorsError::TensorNotInShard { shard, tensor, .. } if shard == "m-1.safetensors" && tensor == "d")
        );
    }

    #[test]
    fn tensor_not_in_index() {
        let dir = tempfile::tempdir().unwrap();
        let index = sharded(dir.path(), &INDEX.replace(r#","b":"m-2.safetensors""#, ""));
        let err = format_err(SafetensorsSource::open(&index).unwrap_err());
        assert!(
            matches!(&err, SafetensorsError::TensorNotInIndex { shard, tensor, .. } if shard == "m-2.safetensors" && tensor == "b")
        );
    }

    #[test]
    fn a_bad_shard_is_reported_with_the_shard_file() {
        let dir = tempfile::tempdir().unwrap();
        let index = sharded(dir.path(), INDEX);
        let shard = dir.path().join("m-2.safetensors");
        let mut bytes = std::fs::read(&shard).unwrap();
        bytes.pop();
        std::fs::write(&shard, bytes).unwrap();
        let err = SafetensorsSource::open(&index).unwrap_err().to_string();
        assert!(err.contains("m-2.safetensors") && err.contains("\"c\""), "{err}");
    }

    #[test]
    fn folder_with_one_file() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "only.safetensors", &file(HEADER, &data()));
        write(dir.path(), "README.md", b"hello");
        let src = SafetensorsSource::open(dir.path()).unwrap();
        assert_eq!(src.tensors().len(), 2);
    }

    #[test]
    fn no_checkpoint_in_folder() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "README.md", b"hello");
        let err = format_err(SafetensorsSource::open(dir.path()).unwrap_err());
        assert!(matches!(err, SafetensorsError::NoCheckpointInFolder { .. }));
    }

    #[test]
    fn ambiguous_folder() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.safetensors", &file(HEADER, &data()));
        write(dir.path(), "b.safetensors", &file(HEADER, &data()));
        let err = format_err(SafetensorsSource::open(dir.path()).unwrap_err());
        assert!(matches!(&err, SafetensorsError::AmbiguousFolder { candidates, .. } if candidates.len() == 2));
        assert!(err.to_string().contains("a.safetensors, b.safetensors"));
    }

    #[test]
    fn a_file_truncated_under_the_source_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let header = r#"{"big":{"dtype":"U8","shape":[4,4096],"data_offsets":[0,16384]}}"#;
        let path = write(dir.path(), "m.safetensors", &file(header, &[9u8; 16384]));
        let src = SafetensorsSource::open(&path).unwrap();
        assert!(src.check_unchanged().is_ok());
        let rows = src.read_rows("big", 0..4).unwrap();
        assert!(rows.iter().all(|&b| b == 9));
        std::fs::File::options().write(true).open(&path).unwrap().set_len(4096).unwrap();
        // The bytes borrowed before read zeros past the new end, without SIGBUS.
        assert!(rows[8192..].iter().all(|&b| b == 0));
        let err = src.read_rows("big", 3..4).unwrap_err().to_string();
        assert!(err.contains("m.safetensors") && err.contains("truncated"), "{err}");
        let err = src.check_unchanged().unwrap_err().to_string();
        assert!(err.contains("m.safetensors") && err.contains("changed while being read"), "{err}");
    }

    #[test]
    fn a_file_rewritten_in_place_is_noticed() {
        use std::os::unix::fs::FileExt;
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "m.safetensors", &file(HEADER, &data()));
        let src = SafetensorsSource::open(&path).unwrap();
        // Past the clock tick that file times are taken from.
        std::thread::sleep(std::time::Duration::from_millis(30));
        let len = std::fs::metadata(&path).unwrap().len();
        std::fs::File::options().write(true).open(&path).unwrap().write_all_at(&[0xff], len - 1).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), len);
        let err = src.check_unchanged().unwrap_err().to_string();
        assert!(err.contains("m.safetensors") && err.contains("it was modified"), "{err}");
    }
}
