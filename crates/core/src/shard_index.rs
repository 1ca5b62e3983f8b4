//! Hugging Face shard indexes (`model.safetensors.index.json`, `pytorch_model.bin.index.json`): a JSON
//! object whose `weight_map` maps each tensor name to the shard file holding it. Every sharded reader
//! (safetensors, PyTorch) and format detection read them through [`ShardIndex`], with one size limit,
//! so that they agree on what an index is. Each reader maps [`ShardIndexError`] to its own error type.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::LibraryError;

/// The largest index file read (Hugging Face's run to a few hundred KB).
pub const MAX_INDEX_LEN: u64 = 64 << 20;

/// A parsed shard index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardIndex {
    /// Each tensor's shard file, as the index names it (relative to the index's folder).
    pub weight_map: BTreeMap<String, String>,
}

/// Why an index file could not be read.
#[derive(Debug)]
pub enum ShardIndexError {
    /// Reading the file failed.
    Io(std::io::Error),
    /// The file is longer than [`MAX_INDEX_LEN`].
    TooLarge {
        /// Its length.
        len: u64,
    },
    /// The file is not JSON with a `weight_map` object of strings.
    Bad(LibraryError),
}

/// The part of an index that says where each tensor is.
#[derive(serde::Deserialize)]
struct IndexFile {
    weight_map: BTreeMap<String, String>,
}

impl ShardIndex {
    /// Reads and parses the index at `path`, reading at most one byte past the limit, so that a huge
    /// file is refused without reading it.
    pub fn read(path: &Path) -> Result<ShardIndex, ShardIndexError> {
        let mut text = Vec::new();
        File::open(path).and_then(|f| f.take(MAX_INDEX_LEN + 1).read_to_end(&mut text)).map_err(ShardIndexError::Io)?;
        if text.len() as u64 > MAX_INDEX_LEN {
            let len = std::fs::metadata(path).map_err(ShardIndexError::Io)?.len();
            return Err(ShardIndexError::TooLarge { len });
        }
        ShardIndex::parse(&text).map_err(ShardIndexError::Bad)
    }

    /// Parses index JSON.
    pub fn parse(text: &[u8]) -> Result<ShardIndex, LibraryError> {
        let parsed: IndexFile = serde_json::from_slice(text)?;
        Ok(ShardIndex { weight_map: parsed.weight_map })
    }

    /// The shard files, each once, in name order.
    pub fn shards(&self) -> BTreeSet<&str> {
        self.weight_map.values().map(String::as_str).collect()
    }

    /// The first tensor (in name order) the index places in `shard` (empty if none).
    pub fn first_tensor_in(&self, shard: &str) -> String {
        self.weight_map.iter().find(|(_, s)| *s == shard).map(|(t, _)| t.clone()).unwrap_or_default()
    }

    /// The path of `shard` for the index at `index`: beside it.
    pub fn shard_path(index: &Path, shard: &str) -> PathBuf {
        index.parent().unwrap_or(Path::new(".")).join(shard)
    }

    /// The tensor (and its shard) that the index places in a shard whose tensors, as read, are not
    /// said to hold it: `holds(tensor)` says whether the shards read had it.
    pub fn first_missing(&self, holds: impl Fn(&str) -> bool) -> Option<(&str, &str)> {
        self.weight_map.iter().find(|(t, _)| !holds(t)).map(|(t, s)| (t.as_str(), s.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_weight_map_and_lists_shards_once() {
        let index =
            ShardIndex::parse(br#"{"metadata":{"total_size":3},"weight_map":{"b":"2.bin","a":"1.bin","c":"2.bin"}}"#)
                .unwrap();
        assert_eq!(index.shards().into_iter().collect::<Vec<_>>(), ["1.bin", "2.bin"]);
        assert_eq!(index.first_tensor_in("2.bin"), "b");
        assert_eq!(index.first_tensor_in("3.bin"), "");
        assert_eq!(index.first_missing(|t| t != "c"), Some(("c", "2.bin")));
        assert_eq!(ShardIndex::shard_path(Path::new("/m/i.json"), "1.bin"), Path::new("/m/1.bin"));
    }

    #[test]
    fn refuses_what_is_not_an_index() {
        for text in [&b"{}"[..], br#"{"weight_map":{"a":1}}"#, b"[1]", b"not json"] {
            assert!(ShardIndex::parse(text).is_err(), "{}", String::from_utf8_lossy(text));
        }
    }

    #[test]
    fn reads_files_and_refuses_huge_ones_unread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.json");
        std::fs::write(&path, br#"{"weight_map":{"a":"x"}}"#).unwrap();
        assert_eq!(ShardIndex::read(&path).unwrap().weight_map["a"], "x");
        File::create(&path).unwrap().set_len(MAX_INDEX_LEN + 1).unwrap();
        assert!(matches!(ShardIndex::read(&path), Err(ShardIndexError::TooLarge { len }) if len == MAX_INDEX_LEN + 1));
        assert!(matches!(ShardIndex::read(&dir.path().join("none")), Err(ShardIndexError::Io(_))));
    }
}
